package web

import (
	"encoding/json"
	"log/slog"
	"mime"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

// errorPage is the view model of error.html.
type errorPage struct {
	Page
	Heading   string
	Message   string
	RequestID string
}

// errorBody is the JSON shape of every error: {"error": {"message": "..."}}.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Message   string `json:"message"`
	RequestID string `json:"requestId,omitempty"`
	// Code, ProductID and Left tell a JSON client what a refusal was
	// about, where the message says it in words: "out_of_stock", the
	// product, and how many are left of it.
	Code      string `json:"code,omitempty"`
	ProductID string `json:"productId,omitempty"`
	Left      *int64 `json:"left,omitempty"`
}

// fail is the one place that decides how an error looks. The handler picks
// the status and a message safe to show; err, if any, is only logged, with
// the request id, and never reaches the client.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, message string, err error) {
	s.failWith(w, r, status, errorDetail{Message: message}, err)
}

// failWith is fail with more for JSON clients: what d adds to its message
// is sent to them as fields, and browsers see the message.
func (s *Server) failWith(w http.ResponseWriter, r *http.Request, status int, d errorDetail, err error) {
	reqID := middleware.GetReqID(r.Context())
	d.RequestID = reqID
	if err != nil {
		level := slog.LevelWarn
		if status >= 500 {
			level = slog.LevelError
		}
		s.log.LogAttrs(r.Context(), level, "request failed",
			slog.Int("status", status), slog.String("request_id", reqID), slog.String("path", r.URL.Path), slog.Any("error", err))
	}
	w.Header().Set("Cache-Control", "no-store")
	if wantsJSON(r) {
		s.writeJSON(w, r, status, errorBody{Error: d})
		return
	}
	s.render(w, r, status, "error", errorPage{
		Page:      s.page(http.StatusText(status)),
		Heading:   errorHeading(status),
		Message:   d.Message,
		RequestID: reqID,
	})
}

func errorHeading(status int) string {
	switch status {
	case http.StatusNotFound:
		return "Page not found"
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusMethodNotAllowed:
		return "That request didn't work"
	case http.StatusForbidden:
		return "Request refused"
	case http.StatusTooManyRequests:
		return "Too many attempts"
	case http.StatusConflict:
		return "That can't be done now"
	case http.StatusBadGateway, http.StatusGatewayTimeout:
		return "Payments are unavailable"
	}
	if status >= 500 {
		return "Something went wrong on our side"
	}
	return http.StatusText(status)
}

// wantsJSON reports whether the client speaks JSON: it sent JSON, or it asks
// for JSON rather than HTML.
func wantsJSON(r *http.Request) bool {
	if sentJSON(r) {
		return true
	}
	accept := r.Header.Get("Accept")
	return strings.Contains(accept, "application/json") && !strings.Contains(accept, "text/html")
}

// sentJSON reports whether the request body is JSON.
func sentJSON(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/json"
}

// writeJSON encodes v first, then writes the headers and body.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.log.ErrorContext(r.Context(), "encode json", "error", err)
		status, b = http.StatusInternalServerError, []byte(`{"error":{"message":"internal error"}}`)
	}
	writeJSONBytes(w, status, append(b, '\n'))
}

// writeJSONBytes writes an encoded JSON body.
func writeJSONBytes(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (s *Server) handleNotFound(w http.ResponseWriter, r *http.Request) {
	s.fail(w, r, http.StatusNotFound, "There is nothing at this address.", nil)
}

// handleMethodNotAllowed answers 405 with the Allow header chi would have set
// for its default handler.
func (s *Server) handleMethodNotAllowed(w http.ResponseWriter, r *http.Request) {
	if rctx := chi.RouteContext(r.Context()); rctx != nil && rctx.Routes != nil {
		path := rctx.RoutePath
		if path == "" {
			path = r.URL.Path
		}
		var allowed []string
		for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
			if rctx.Routes.Match(chi.NewRouteContext(), m, path) {
				allowed = append(allowed, m)
			}
		}
		if len(allowed) > 0 {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
		}
	}
	s.fail(w, r, http.StatusMethodNotAllowed, "This address does not accept "+r.Method+" requests.", nil)
}
