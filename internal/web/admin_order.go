package web

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/shopcheckout/shop/internal/money"
	"github.com/shopcheckout/shop/internal/orders"
)

// adminOrderPage is the view model of admin_order.html: one order, all of
// it: its lines and amounts, its states, its payment, refunds and dispute,
// a timeline of the Stripe events and notifications about it, and a refund
// form.
type adminOrderPage struct {
	Page
	ID, Status, Review, Created, Updated, Paid, Fulfilled string
	Email, SessionID, PaymentIntentID, Currency           string
	// PaymentState is the payment's own state, under the refunds and
	// dispute that Status shows on top; Hold is the order's hold on
	// counted stock, in words.
	PaymentState, Hold string
	// DashboardURL is the payment's page in the Stripe Dashboard, in the
	// mode of the shop's keys; "" while the order has no PaymentIntent.
	DashboardURL string
	// Amounts, formatted: what the order costs, what Stripe charged, what
	// went back, and what may still be refunded.
	Total, AmountPaid, AmountRefunded, Refundable string
	Items                                         []adminItemView
	Refunds                                       []refundView
	Dispute                                       *disputeView
	// Timeline is every stored Stripe event and every notification of the
	// order, oldest first.
	Timeline []timelineEntry
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

// timelineEntry is one line of an order's timeline: a Stripe event the
// shop stored (Event) or a notification it queued (Notification).
type timelineEntry struct {
	// at orders the timeline: when the event was received, when the
	// notification was queued. When shows it.
	at           time.Time
	When         string
	Event        *eventView
	Notification *timelineNotification
}

// eventView is a stored Stripe event as the admin sees it.
type eventView struct {
	ID, Type, Outcome, Created, APIVersion string
}

// timelineNotification is a notification as the order's timeline shows it;
// RetryAction is the retry form's target, for a dead one only.
type timelineNotification struct {
	ID, Type, Channel, Status, LastError, Delivered, NextAttempt, RetryAction string
	Attempts                                                                  int
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

// adminOrderBody is GET /admin/orders/{id} as JSON: the order (as
// receivers see it), its notifications, the Stripe events stored about it
// and the payment's page in the Stripe Dashboard.
type adminOrderBody struct {
	orders.Order
	Notifications []orders.Notification `json:"notifications"`
	Events        []orderEvent          `json:"events"`
	DashboardURL  string                `json:"dashboardUrl,omitempty"`
}

// orderEvent is a stored Stripe event in the admin's JSON, without its
// payload.
type orderEvent struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	APIVersion string    `json:"apiVersion,omitempty"`
	SessionID  string    `json:"sessionId,omitempty"`
	Outcome    string    `json:"outcome"`
	Created    time.Time `json:"createdAt"`  // Stripe's time
	Received   time.Time `json:"receivedAt"` // the shop's
}

// handleAdminOrder shows one order to the admin: a page, or for
// Accept: application/json the order with its notifications and events.
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
	evs, err := s.orders.OrderEvents(r.Context(), o.ID)
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "The order could not be loaded.", err)
		return
	}
	if wantsJSON(r) {
		if ns == nil {
			ns = []orders.Notification{}
		}
		body := adminOrderBody{Order: o.Public(), Notifications: ns, Events: make([]orderEvent, 0, len(evs)), DashboardURL: s.dashboardURL(o.PaymentIntentID)}
		for _, e := range evs {
			body.Events = append(body.Events, orderEvent{ID: e.ID, Type: e.Type, APIVersion: e.APIVersion, SessionID: e.SessionID,
				Outcome: e.Outcome, Created: e.Created, Received: e.Received})
		}
		s.writeJSON(w, r, http.StatusOK, body)
		return
	}
	s.render(w, r, http.StatusOK, "admin_order", s.adminOrderView(o, ns, evs))
}

func (s *Server) adminOrderView(o orders.Order, ns []orders.Notification, evs []orders.EventRecord) adminOrderPage {
	cur := o.Currency
	v := adminOrderPage{
		Page: s.page("Order " + o.ID),
		ID:   o.ID, Status: string(o.Status), Review: o.Review, PaymentState: string(o.PaymentState()), Hold: s.holdText(o),
		Created: s.when(&o.CreatedAt), Updated: s.when(&o.UpdatedAt), Paid: s.when(o.PaidAt), Fulfilled: s.when(o.FulfilledAt),
		Email: o.Email, SessionID: o.SessionID, PaymentIntentID: o.PaymentIntentID, Currency: strings.ToUpper(cur),
		DashboardURL: s.dashboardURL(o.PaymentIntentID),
		Total:        money.Format(o.AmountTotal, cur), AmountRefunded: money.Format(o.AmountRefunded, cur),
		Refundable: money.Format(o.Refundable(), cur),
		Timeline:   s.timeline(ns, evs),
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
			Created: s.when(&rf.CreatedAt), Counts: rf.FailedAt == 0,
		})
	}
	if d := o.Dispute; d != nil {
		v.Dispute = &disputeView{ID: d.ID, Status: d.Status, Reason: d.Reason, Amount: money.Format(d.Amount, cur),
			EvidenceDueBy: s.when(d.EvidenceDueBy), Open: d.Open(), NeedsResponse: d.NeedsResponse()}
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

// timeline merges an order's stored events (by when they were received)
// and its notifications (by when they were queued), oldest first; at the
// same instant the event comes first, as it is what queued them.
func (s *Server) timeline(ns []orders.Notification, evs []orders.EventRecord) []timelineEntry {
	out := make([]timelineEntry, 0, len(ns)+len(evs))
	for _, e := range evs {
		out = append(out, timelineEntry{at: e.Received, When: s.when(&e.Received), Event: &eventView{
			ID: e.ID, Type: e.Type, Outcome: e.Outcome, Created: s.when(&e.Created), APIVersion: e.APIVersion,
		}})
	}
	for _, n := range ns {
		tn := &timelineNotification{ID: n.ID, Type: n.Type, Channel: string(n.Channel), Status: string(n.Status),
			LastError: n.LastError, Attempts: n.Attempts, Delivered: s.when(n.DeliveredAt), NextAttempt: s.when(n.NextAttempt)}
		if n.Status == orders.NotificationDead {
			tn.RetryAction = "/admin/notifications/" + url.PathEscape(n.ID) + "/retry"
		}
		out = append(out, timelineEntry{at: n.CreatedAt, When: s.when(&n.CreatedAt), Notification: tn})
	}
	slices.SortStableFunc(out, func(a, b timelineEntry) int { return a.at.Compare(b.at) })
	return out
}

// holdText says, in words, what the order holds of counted stock.
func (s *Server) holdText(o orders.Order) string {
	switch o.HoldState {
	case orders.HoldNone:
		return "none: no line has a counted stock"
	case orders.HoldHeld:
		if o.HoldUntil != nil {
			return "held until " + s.when(o.HoldUntil) + ", unless paid"
		}
		return "held"
	case orders.HoldSold:
		return "sold: taken from the stock"
	case orders.HoldReleased:
		return "released: given back to the stock unsold"
	case orders.HoldReturned:
		return "restocked: sold, refunded in full and put back"
	}
	return o.HoldState
}

// dashboardURL is a PaymentIntent's page in the Stripe Dashboard, under
// /test/ unless the shop runs on live keys; "" for no PaymentIntent.
func (s *Server) dashboardURL(paymentIntentID string) string {
	if paymentIntentID == "" {
		return ""
	}
	base := "https://dashboard.stripe.com/test/payments/"
	if s.cfg.Live() {
		base = "https://dashboard.stripe.com/payments/"
	}
	return base + url.PathEscape(paymentIntentID)
}

// adminOrderPath is the admin's page of an order.
func adminOrderPath(id string) string { return "/admin/orders/" + url.PathEscape(id) }

// adminTimeLayout is how the admin's pages write a time: in the shop's
// time zone, with the zone's abbreviation, so a time is never read in the
// wrong zone.
const adminTimeLayout = "2006-01-02 15:04:05 MST"

// when shows a time to the admin (see adminTimeLayout); "" for none.
func (s *Server) when(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.In(s.cfg.Location).Format(adminTimeLayout)
}
