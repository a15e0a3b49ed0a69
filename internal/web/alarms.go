package web

import (
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/shopcheckout/shop/internal/orders"
)

// adminAlarmsPage is the view model of admin_alarms.html.
type adminAlarmsPage struct {
	Page
	Open   bool
	Alarms []alarmRow
}

// alarmRow is one alarm on the alarms page: when it was raised, its kind
// in words, what it is about, what to do (Advice) and what the shop saw
// (Detail); OrderPath links its order, if it has one, and ResolveAction is
// the resolve form's target, for a stored open alarm only.
type alarmRow struct {
	ID, Created, Kind, Label, Ref, OrderID, OrderPath, Detail, Advice, Resolved, ResolveAction string
	Derived                                                                                    bool
}

type alarmsBody struct {
	Alarms []alarmJSON `json:"alarms"`
}

// alarmBody answers a JSON resolve.
type alarmBody struct {
	Alarm alarmJSON `json:"alarm"`
}

// alarmJSON is an alarm in the admin's JSON: its stored fields, whether it
// is derived (it ends with its cause and cannot be resolved by hand), its
// kind in words and what to do about it.
type alarmJSON struct {
	orders.Alarm
	Derived bool   `json:"derived"`
	Label   string `json:"label"`
	Advice  string `json:"advice"`
}

func newAlarmJSON(a orders.Alarm) alarmJSON {
	return alarmJSON{Alarm: a, Derived: a.Derived(), Label: alarmLabel(a.Kind), Advice: orders.Advice(a.Kind)}
}

// alarmLabel is an alarm kind as the owner reads it.
func alarmLabel(kind string) string {
	switch kind {
	case orders.AlarmUnreadableEvent:
		return "Unreadable Stripe event"
	case orders.AlarmUnattributedPayment:
		return "Payment of no order"
	case orders.AlarmPaidTwice:
		return "Order paid twice"
	case orders.AlarmDispute:
		return "Dispute awaiting a response"
	case orders.AlarmOversold:
		return "Paid but out of stock"
	case orders.AlarmDeadNotification:
		return "Notification gave up"
	case orders.AlarmStoreWrites:
		return "Database refusing writes"
	}
	return kind
}

// handleAdminAlarms lists the alarms, open ones only unless ?all=1: those
// worked out from the shop's state first, then the stored ones, newest
// first.
func (s *Server) handleAdminAlarms(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	open := r.URL.Query().Get("all") == ""
	list, err := s.orders.Alarms(r.Context(), orders.AlarmFilter{Open: open})
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "Alarms could not be loaded.", err)
		return
	}
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		body := alarmsBody{Alarms: make([]alarmJSON, 0, len(list))}
		for _, a := range list {
			body.Alarms = append(body.Alarms, newAlarmJSON(a))
		}
		s.writeJSON(w, r, http.StatusOK, body)
		return
	}
	v := adminAlarmsPage{Page: s.page("Alarms"), Open: open}
	for _, a := range list {
		row := alarmRow{ID: a.ID, Created: s.when(&a.CreatedAt), Kind: a.Kind, Label: alarmLabel(a.Kind), Ref: a.Ref, OrderID: a.OrderID,
			Detail: a.Detail, Advice: orders.Advice(a.Kind), Resolved: s.when(a.ResolvedAt), Derived: a.Derived()}
		if a.OrderID != "" {
			row.OrderPath = adminOrderPath(a.OrderID)
		}
		if !a.Derived() && a.ResolvedAt == nil {
			row.ResolveAction = "/admin/alarms/" + url.PathEscape(a.ID) + "/resolve"
		}
		v.Alarms = append(v.Alarms, row)
	}
	s.render(w, r, http.StatusOK, "admin_alarms", v)
}

// handleAlarmResolve marks a stored alarm resolved: the owner has dealt
// with it. Resolving one already resolved changes nothing. A derived
// alarm (a dead notification, failing database writes) is not stored and
// cannot be resolved by hand: it ends with its cause, so it is not found.
func (s *Server) handleAlarmResolve(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	id := chi.URLParam(r, "id")
	// What it was before, for the admin action line; a stored alarm is
	// never unresolved again, so only the first resolve logs from=open.
	before, err := s.orders.Alarm(r.Context(), id)
	var after orders.Alarm
	if err == nil {
		after, err = s.orders.ResolveAlarm(r.Context(), id)
	}
	switch {
	case errors.Is(err, orders.ErrNotFound):
		s.fail(w, r, http.StatusNotFound, "There is no such alarm to resolve. Alarms worked out from the shop's state "+
			"(a notification that gave up, database writes failing) cannot be resolved by hand: they end with their cause.", nil)
		return
	case err != nil:
		s.fail(w, r, http.StatusServiceUnavailable, "The alarm could not be resolved; try again.", err)
		return
	}
	s.logAdminAction(r, "resolve_alarm", slog.String("alarm_id", after.ID), slog.String("kind", after.Kind),
		slog.String("ref", after.Ref), slog.String("order_id", after.OrderID),
		slog.String("from", alarmState(before)), slog.String("to", alarmState(after)))
	if wantsJSON(r) {
		s.writeJSON(w, r, http.StatusOK, alarmBody{Alarm: newAlarmJSON(after)})
		return
	}
	http.Redirect(w, r, "/admin/alarms", http.StatusSeeOther)
}

// alarmState is an alarm's state in an admin action line.
func alarmState(a orders.Alarm) string {
	if a.ResolvedAt != nil {
		return "resolved"
	}
	return "open"
}
