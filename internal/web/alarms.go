package web

import (
	"net/http"
	"strings"
	"time"

	"github.com/shopcheckout/shop/internal/orders"
)

// adminAlarmsPage is the view model of admin_alarms.html.
type adminAlarmsPage struct {
	Page
	Open   bool
	Alarms []alarmRow
}

type alarmRow struct {
	Created, Kind, Ref, OrderID, Detail, Resolved string
}

type alarmsBody struct {
	Alarms []orders.Alarm `json:"alarms"`
}

// handleAdminAlarms lists the alarms, open ones only unless ?all=1.
func (s *Server) handleAdminAlarms(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	open := r.URL.Query().Get("all") == ""
	list, err := s.orders.Alarms(r.Context(), orders.AlarmFilter{Open: open})
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "Alarms could not be loaded.", err)
		return
	}
	if list == nil {
		list = []orders.Alarm{}
	}
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		s.writeJSON(w, r, http.StatusOK, alarmsBody{Alarms: list})
		return
	}
	v := adminAlarmsPage{Page: s.page("Alarms"), Open: open}
	for _, a := range list {
		row := alarmRow{Created: a.CreatedAt.UTC().Format(time.DateTime), Kind: a.Kind, Ref: a.Ref, OrderID: a.OrderID, Detail: a.Detail}
		if a.ResolvedAt != nil {
			row.Resolved = a.ResolvedAt.UTC().Format(time.DateTime)
		}
		v.Alarms = append(v.Alarms, row)
	}
	s.render(w, r, http.StatusOK, "admin_alarms", v)
}
