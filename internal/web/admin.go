package web

import (
	"fmt"
	"net/http"
	"strings"
	"time"

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
	Created, Status, Review, Items, Amount, Currency, Email, SessionID, Fulfilled string
}

type statusOption struct {
	Value    string
	Selected bool
}

type adminOrdersBody struct {
	Orders []orders.Order `json:"orders"`
}

func (s *Server) handleAdminOrders(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	status := orders.Status(r.URL.Query().Get("status"))
	if status != "" && !status.Valid() {
		s.fail(w, r, http.StatusBadRequest, "Unknown status filter.", nil)
		return
	}
	list, err := s.store.ListOrders(r.Context(), orders.ListFilter{Status: status})
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "Orders could not be loaded.", err)
		return
	}
	if list == nil {
		list = []orders.Order{}
	}
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		s.writeJSON(w, r, http.StatusOK, adminOrdersBody{Orders: list})
		return
	}
	v := adminOrdersPage{Page: s.page("Orders")}
	for _, st := range orders.Statuses() {
		v.Statuses = append(v.Statuses, statusOption{Value: string(st), Selected: st == status})
	}
	for _, o := range list {
		row := adminOrderRow{
			Created: o.CreatedAt.UTC().Format(time.DateTime), Status: string(o.Status), Review: o.Review,
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
		v.Orders = append(v.Orders, row)
	}
	s.render(w, r, http.StatusOK, "admin_orders", v)
}
