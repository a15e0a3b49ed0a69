package web

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/shopcheckout/shop/internal/money"
	"github.com/shopcheckout/shop/internal/orders"
)

// adminOrdersPage is the view model of admin_orders.html.
type adminOrdersPage struct {
	Page
	Orders   []adminOrderRow
	Statuses []statusOption
	// Filter is the filter as the admin typed it, to fill in the form;
	// Filtered is whether it narrows the list at all.
	Filter   orderQuery
	Filtered bool
	// Zone names the time zone of the times shown.
	Zone string
	// NextURL is the next page ("" on the last), FirstURL the first page
	// of the same list ("" on the first), ExportURL its CSV export.
	NextURL, FirstURL, ExportURL string
}

type adminOrderRow struct {
	ID, Created, Status, Review, Items, Amount, Currency, Email, SessionID, Fulfilled string
	Notifications                                                                     []notificationView
}

type notificationView struct {
	ID, Type, Channel, Status, LastError string
	Attempts                             int
	Dead                                 bool
}

type statusOption struct {
	Value    string
	Selected bool
}

// adminOrder is an order as the admin JSON shows it: every field of the
// order, plus its notifications.
type adminOrder struct {
	orders.Order
	Notifications []orders.Notification `json:"notifications"`
}

type adminOrdersBody struct {
	Orders []adminOrder `json:"orders"`
	// Next is the cursor of the next page (?after=), null on the last.
	Next *string `json:"next"`
}

// adminPageSize is how many orders a page of the admin's list shows unless
// ?limit= asks for another number.
const adminPageSize = 50

// orderQuery is the list's filter as its URL spells it: the form shows it
// back and the links to other pages and to the export keep it.
type orderQuery struct {
	Status, From, To, Q, Limit string
}

// values is q as URL query parameters, leaving out the empty ones.
func (q orderQuery) values() url.Values {
	v := url.Values{}
	for _, kv := range [][2]string{{"status", q.Status}, {"from", q.From}, {"to", q.To}, {"q", q.Q}, {"limit", q.Limit}} {
		if kv[1] != "" {
			v.Set(kv[0], kv[1])
		}
	}
	return v
}

// link is path with q's parameters and the extra ones (name, value pairs).
func (q orderQuery) link(path string, extra ...string) string {
	v := q.values()
	for i := 0; i+1 < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}

// orderFilter reads the filter of the admin's list (and, with paged false,
// of the export, which takes every matching order) from a request's query.
// Dates are days of the shop's time zone; to includes its whole day. A
// problem comes back as a message to show the admin.
func (s *Server) orderFilter(v url.Values, paged bool) (orders.ListFilter, orderQuery, string) {
	q := orderQuery{
		Status: v.Get("status"), From: strings.TrimSpace(v.Get("from")), To: strings.TrimSpace(v.Get("to")),
		Q: strings.TrimSpace(v.Get("q")), Limit: strings.TrimSpace(v.Get("limit")),
	}
	f := orders.ListFilter{Status: orders.Status(q.Status), Query: q.Q, Limit: adminPageSize}
	if f.Status != "" && !f.Status.Valid() {
		return f, q, "Unknown status filter."
	}
	day := func(name, value string) (time.Time, string) {
		if value == "" {
			return time.Time{}, ""
		}
		d, err := time.ParseInLocation(time.DateOnly, value, s.cfg.Location)
		if err != nil {
			return time.Time{}, "The " + name + " date must be a day written as YYYY-MM-DD, such as 2026-01-31."
		}
		return d, ""
	}
	var problem string
	if f.From, problem = day("from", q.From); problem != "" {
		return f, q, problem
	}
	var to time.Time
	if to, problem = day("to", q.To); problem != "" {
		return f, q, problem
	}
	if !to.IsZero() {
		if !f.From.IsZero() && f.From.After(to) {
			return f, q, "The from date is after the to date."
		}
		f.To = to.AddDate(0, 0, 1) // the whole of the to day
	}
	if len(q.Q) > orders.MaxQueryLength {
		return f, q, "Search for at most " + strconv.Itoa(orders.MaxQueryLength) + " characters."
	}
	after := v.Get("after")
	if !paged {
		if q.Limit != "" || after != "" {
			return f, q, "The export has every matching order: it takes no limit or after."
		}
		return f, q, ""
	}
	if q.Limit != "" {
		n, err := strconv.Atoi(q.Limit)
		if err != nil || n < 1 || n > orders.MaxListLimit {
			return f, q, "The limit must be a whole number from 1 to " + strconv.Itoa(orders.MaxListLimit) + "."
		}
		f.Limit = n
	}
	if after != "" {
		c, err := orders.ParseCursor(after)
		if err != nil {
			return f, q, "The after parameter is not a place in this list; start again from the first page."
		}
		f.After = &c
	}
	return f, q, ""
}

// handleAdminOrders lists orders, newest first, a page at a time: a page,
// or for Accept: application/json the orders and the next page's cursor.
func (s *Server) handleAdminOrders(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	f, q, problem := s.orderFilter(r.URL.Query(), true)
	if problem != "" {
		s.fail(w, r, http.StatusBadRequest, problem, nil)
		return
	}
	page, err := s.orders.ListOrders(r.Context(), f)
	if errors.Is(err, orders.ErrRule) {
		s.fail(w, r, http.StatusBadRequest, "That filter is not valid.", err)
		return
	}
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "Orders could not be loaded.", err)
		return
	}
	list := page.Orders
	byOrder, err := s.notificationsOf(r, list)
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "Orders could not be loaded.", err)
		return
	}
	var next string
	if page.Next != nil {
		next = page.Next.String()
	}
	if wantsJSON(r) {
		body := adminOrdersBody{Orders: make([]adminOrder, 0, len(list))}
		for _, o := range list {
			ns := byOrder[o.ID]
			if ns == nil {
				ns = []orders.Notification{}
			}
			body.Orders = append(body.Orders, adminOrder{Order: o.Public(), Notifications: ns})
		}
		if next != "" {
			body.Next = &next
		}
		s.writeJSON(w, r, http.StatusOK, body)
		return
	}
	loc := s.cfg.Location
	v := adminOrdersPage{
		Page: s.page("Orders"), Filter: q, Zone: loc.String(),
		Filtered:  q.Status != "" || q.From != "" || q.To != "" || q.Q != "",
		ExportURL: orderQuery{Status: q.Status, From: q.From, To: q.To, Q: q.Q}.link("/admin/orders.csv"),
	}
	if next != "" {
		v.NextURL = q.link("/admin/orders", "after", next)
	}
	if f.After != nil {
		v.FirstURL = q.link("/admin/orders")
	}
	for _, st := range orders.Statuses() {
		v.Statuses = append(v.Statuses, statusOption{Value: string(st), Selected: st == f.Status})
	}
	for _, o := range list {
		row := adminOrderRow{
			ID: o.ID, Created: o.CreatedAt.In(loc).Format(time.DateTime), Status: string(o.Status), Review: o.Review,
			Amount: money.Format(o.AmountTotal, o.Currency), Currency: strings.ToUpper(o.Currency),
			Email: o.Email, SessionID: o.SessionID,
		}
		var items []string
		for _, it := range o.Items {
			items = append(items, fmt.Sprintf("%d × %s", it.Quantity, it.Name))
		}
		row.Items = strings.Join(items, ", ")
		if o.FulfilledAt != nil {
			row.Fulfilled = o.FulfilledAt.In(loc).Format(time.DateTime)
		}
		row.Notifications = notificationViews(byOrder[o.ID])
		v.Orders = append(v.Orders, row)
	}
	s.render(w, r, http.StatusOK, "admin_orders", v)
}

// notificationViews shows an order's notifications to the admin.
func notificationViews(ns []orders.Notification) []notificationView {
	var out []notificationView
	for _, n := range ns {
		out = append(out, notificationView{
			ID: n.ID, Type: n.Type, Channel: string(n.Channel), Status: string(n.Status), LastError: n.LastError,
			Attempts: n.Attempts, Dead: n.Status == orders.NotificationDead,
		})
	}
	return out
}

// notificationsOf loads the notifications of the listed orders in one query.
func (s *Server) notificationsOf(r *http.Request, list []orders.Order) (map[string][]orders.Notification, error) {
	ids := make([]string, len(list))
	for i, o := range list {
		ids[i] = o.ID
	}
	ns, err := s.orders.Notifications(r.Context(), ids)
	if err != nil {
		return nil, err
	}
	by := make(map[string][]orders.Notification, len(list))
	for _, n := range ns {
		by[n.OrderID] = append(by[n.OrderID], n)
	}
	return by, nil
}

// maxAdminForm caps the admin's small form posts.
const maxAdminForm = 8 << 10

type notificationBody struct {
	Notification orders.Notification `json:"notification"`
}

// handleNotificationRetry queues a dead notification again. A form sent
// from an order's page (back=order) returns there, others to the list.
func (s *Server) handleNotificationRetry(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	r.Body = http.MaxBytesReader(w, r.Body, maxAdminForm)
	id := chi.URLParam(r, "id")
	n, err := s.orders.Requeue(r.Context(), id)
	switch {
	case errors.Is(err, orders.ErrNotFound):
		s.fail(w, r, http.StatusNotFound, "There is no such notification.", nil)
		return
	case errors.Is(err, orders.ErrNotDead):
		s.fail(w, r, http.StatusConflict, "Only a dead notification can be retried; this one is still being delivered or was delivered.", nil)
		return
	case err != nil:
		s.fail(w, r, http.StatusServiceUnavailable, "The notification could not be re-queued; try again.", err)
		return
	}
	s.logAdminAction(r, "retry_notification", slog.String("notification_id", n.ID), slog.String("order_id", n.OrderID),
		slog.String("type", n.Type), slog.String("channel", string(n.Channel)), slog.String("from", "dead"), slog.String("to", string(n.Status)))
	if wantsJSON(r) {
		s.writeJSON(w, r, http.StatusOK, notificationBody{Notification: n})
		return
	}
	if r.PostFormValue("back") == "order" {
		http.Redirect(w, r, adminOrderPath(n.OrderID), http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/admin/orders", http.StatusSeeOther)
}
