package web

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/shopcheckout/shop/internal/money"
	"github.com/shopcheckout/shop/internal/orders"
)

// adminOrderPage is the view model of admin_order.html: one order, all of
// it, with its refunds, its dispute, its notifications and a refund form.
type adminOrderPage struct {
	Page
	ID, Status, Review, Created, Updated, Paid, Fulfilled string
	Email, SessionID, PaymentIntentID, Currency           string
	// Amounts, formatted: what the order costs, what Stripe charged, what
	// went back, and what may still be refunded.
	Total, AmountPaid, AmountRefunded, Refundable string
	Items                                         []adminItemView
	Refunds                                       []refundView
	Dispute                                       *disputeView
	Notifications                                 []notificationView
	// Refund is the refund form, or nil when nothing may be refunded
	// (NoRefund says why).
	Refund   *refundForm
	NoRefund string
}

type adminItemView struct {
	ProductID, Name, UnitAmount, Amount string
	Quantity                            int64
}

type refundView struct {
	ID, Amount, Status, Reason, Created string
	// Counts is false for a refund that failed or was canceled: its money
	// went back to the balance.
	Counts bool
}

type disputeView struct {
	ID, Status, Reason, Amount, EvidenceDueBy string
	Open, NeedsResponse                       bool
}

// refundForm is the refund form. Amount is in minor units, as the POST
// takes it; Max is the refundable rest in minor units, and Hint says what
// those units are worth.
type refundForm struct {
	Action  string
	Max     int64
	Hint    string
	Token   string
	Reasons []string
	// Restock offers to put the order's quantities back in stock (its
	// stock was counted and sold).
	Restock bool
}

// handleAdminOrder shows one order to the admin: a page, or for
// Accept: application/json the order (as receivers see it) and its
// notifications.
func (s *Server) handleAdminOrder(w http.ResponseWriter, r *http.Request) {
	noStore(w) // the page carries its own form token
	o, err := s.orders.Order(r.Context(), chi.URLParam(r, "id"))
	if errors.Is(err, orders.ErrNotFound) {
		s.fail(w, r, http.StatusNotFound, "There is no such order.", nil)
		return
	}
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "The order could not be loaded.", err)
		return
	}
	ns, err := s.orders.Notifications(r.Context(), []string{o.ID})
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "The order could not be loaded.", err)
		return
	}
	if wantsJSON(r) {
		if ns == nil {
			ns = []orders.Notification{}
		}
		s.writeJSON(w, r, http.StatusOK, adminOrder{Order: o.Public(), Notifications: ns})
		return
	}
	s.render(w, r, http.StatusOK, "admin_order", s.adminOrderView(o, ns))
}

func (s *Server) adminOrderView(o orders.Order, ns []orders.Notification) adminOrderPage {
	cur := o.Currency
	v := adminOrderPage{
		Page: s.page("Order " + o.ID),
		ID:   o.ID, Status: string(o.Status), Review: o.Review,
		Created: when(&o.CreatedAt), Updated: when(&o.UpdatedAt), Paid: when(o.PaidAt), Fulfilled: when(o.FulfilledAt),
		Email: o.Email, SessionID: o.SessionID, PaymentIntentID: o.PaymentIntentID, Currency: strings.ToUpper(cur),
		Total: money.Format(o.AmountTotal, cur), AmountRefunded: money.Format(o.AmountRefunded, cur),
		Refundable:    money.Format(o.Refundable(), cur),
		Notifications: notificationViews(ns),
	}
	if o.AmountPaid > 0 {
		v.AmountPaid = money.Format(o.AmountPaid, cur)
	}
	for _, it := range o.Items {
		v.Items = append(v.Items, adminItemView{
			ProductID: it.ProductID, Name: it.Name, Quantity: it.Quantity,
			UnitAmount: money.Format(it.UnitAmount, cur), Amount: money.Format(it.UnitAmount*it.Quantity, cur),
		})
	}
	for _, rf := range o.Refunds {
		v.Refunds = append(v.Refunds, refundView{
			ID: rf.ID, Amount: money.Format(rf.Amount, cur), Status: rf.Status, Reason: rf.Reason,
			Created: when(&rf.CreatedAt), Counts: rf.FailedAt == 0,
		})
	}
	if d := o.Dispute; d != nil {
		v.Dispute = &disputeView{ID: d.ID, Status: d.Status, Reason: d.Reason, Amount: money.Format(d.Amount, cur),
			EvidenceDueBy: when(d.EvidenceDueBy), Open: d.Open(), NeedsResponse: d.NeedsResponse()}
	}
	if v.NoRefund = refundRefusal(o); v.NoRefund == "" {
		rest := o.Refundable()
		v.Refund = &refundForm{
			Action: adminOrderPath(o.ID) + "/refund", Max: rest, Token: s.tokens.issue(), Reasons: refundReasons(),
			Restock: o.HoldState == orders.HoldSold,
			Hint: "In minor units of " + strings.ToUpper(cur) + ": 1 is " + money.Format(1, cur) + ". Up to " +
				strconv.FormatInt(rest, 10) + " (" + money.Format(rest, cur) + ") is left to refund; leave it empty to refund all of that.",
		}
	}
	return v
}

// adminOrderPath is the admin's page of an order.
func adminOrderPath(id string) string { return "/admin/orders/" + url.PathEscape(id) }

// when shows a time to the admin, in UTC; "" for none.
func when(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.DateTime)
}
