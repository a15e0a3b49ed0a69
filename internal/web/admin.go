package web

import (
	"errors"
	"fmt"
	"net/http"
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
}

func (s *Server) handleAdminOrders(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	status := orders.Status(r.URL.Query().Get("status"))
	if status != "" && !status.Valid() {
		s.fail(w, r, http.StatusBadRequest, "Unknown status filter.", nil)
		return
	}
	page, err := s.orders.ListOrders(r.Context(), orders.ListFilter{Status: status})
	list := page.Orders
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "Orders could not be loaded.", err)
		return
	}
	byOrder, err := s.notificationsOf(r, list)
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "Orders could not be loaded.", err)
		return
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
		s.writeJSON(w, r, http.StatusOK, body)
		return
	}
	v := adminOrdersPage{Page: s.page("Orders")}
	for _, st := range orders.Statuses() {
		v.Statuses = append(v.Statuses, statusOption{Value: string(st), Selected: st == status})
	}
	for _, o := range list {
		row := adminOrderRow{
			ID: o.ID, Created: o.CreatedAt.UTC().Format(time.DateTime), Status: string(o.Status), Review: o.Review,
			Amount: money.Format(o.AmountTotal, o.Currency), Currency: strings.ToUpper(o.Currency),
			Email: o.Email, SessionID: o.SessionID,
		}
		var items []string
		for _, it := range o.Items {
			items = append(items, fmt.Sprintf("%d × %s", it.Quantity, it.Name))
		}
		row.Items = strings.Join(items, ", ")
		if o.FulfilledAt != nil {
			row.Fulfilled = o.FulfilledAt.UTC().Format(time.DateTime)
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
