package web

import (
	"log/slog"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5/middleware"
)

// logAdminAction writes the one log line every state-changing admin
// request leaves once its change is made: msg "admin action", the action,
// the ids it touched and the values before and after (attrs), who sent it
// (the client address; the admin has one user) and the request id, which
// joins it to the request's access line. A search for msg="admin action"
// is the back office's audit trail.
func (s *Server) logAdminAction(r *http.Request, action string, attrs ...slog.Attr) {
	line := make([]slog.Attr, 0, len(attrs)+3)
	line = append(line, slog.String("action", action))
	line = append(line, attrs...)
	line = append(line,
		slog.String("client", clientAddr(r, s.cfg.TrustedProxies)),
		slog.String("request_id", middleware.GetReqID(r.Context())),
	)
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "admin action", line...)
}

// stockValue shows a stock in an admin action line: the count, or
// "unlimited".
func stockValue(stock *int64) string {
	if stock == nil {
		return "unlimited"
	}
	return strconv.FormatInt(*stock, 10)
}
