package web

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/shopcheckout/shop/internal/money"
	"github.com/shopcheckout/shop/internal/orders"
)

// sessionIDPattern is the shape of a Checkout Session id.
var sessionIDPattern = regexp.MustCompile(`^cs_(test|live)_[A-Za-z0-9]{1,250}$`)

// successPage is the view model of success.html.
type successPage struct {
	Page
	State   string // paid, processing, pending, confirming, failed, expired, review
	Heading string
	Message string
	Items   []lineView
	Total   string
	Email   string
	OrderID string
	// OrderPage is the link to the order's page, where the shopper can
	// come back to see its state.
	OrderPage string
}

type lineView struct {
	Name     string
	Quantity int64
	Amount   string
}

func (s *Server) handleSuccess(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	id := r.URL.Query().Get("session_id")
	if !sessionIDPattern.MatchString(id) {
		s.fail(w, r, http.StatusBadRequest, "This confirmation link is malformed.", nil)
		return
	}
	order, err := s.orders.OrderBySession(r.Context(), id)
	known := err == nil
	if err != nil && !errors.Is(err, orders.ErrNotFound) {
		s.fail(w, r, http.StatusServiceUnavailable, "We could not look up your order just now. If you paid, it is safe: please reload in a minute.", err)
		return
	}
	// A read of the session can change nothing once the order is settled,
	// and reloads of a pending one need not each reach Stripe. A session
	// the shop has not recorded may still name one of its orders (a second
	// session of it): Stripe says, at most once a second per session.
	switch {
	case known && (settled(order.Status) || !s.sessionReads.take(order.ID)):
		s.renderSuccess(w, r, order, nil, "")
		return
	case !known && !s.sessionReads.take(id):
		s.fail(w, r, http.StatusNotFound, "We have no order for this confirmation link.", nil)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.StripeTimeout)
	defer cancel()
	params := &stripe.CheckoutSessionParams{}
	params.Context = ctx
	sess, err := s.sessions.Get(id, params)
	if err != nil {
		var se *stripe.Error
		if !known && errors.As(err, &se) && se.HTTPStatusCode == http.StatusNotFound {
			s.fail(w, r, http.StatusNotFound, "We have no order for this confirmation link.", nil)
			return
		}
		if !known {
			s.fail(w, r, http.StatusServiceUnavailable, "We could not look up your order just now. If you paid, it is safe: please reload in a minute.", stripeErr("retrieve checkout session", err))
			return
		}
		// Stripe is unreachable or slow: the webhook will still settle the
		// order, so tell the shopper what we know instead of failing.
		s.log.WarnContext(r.Context(), "success page: session not retrieved; showing confirmation pending", "order_id", order.ID, "error", stripeErr("retrieve checkout session", err))
		s.renderSuccess(w, r, order, nil, "confirming")
		return
	}
	read, err := readSession(sess)
	if err == nil {
		order, err = s.orders.SyncSession(r.Context(), read)
	}
	switch {
	case !known && errors.Is(err, orders.ErrNotFound):
		s.fail(w, r, http.StatusNotFound, "We have no order for this confirmation link.", nil)
		return
	case err != nil && !known:
		s.fail(w, r, http.StatusServiceUnavailable, "We could not look up your order just now. If you paid, it is safe: please reload in a minute.", err)
		return
	case err != nil:
		s.log.ErrorContext(r.Context(), "success page: apply the session read", "order_id", order.ID, "error", err)
		s.renderSuccess(w, r, order, nil, "confirming")
		return
	}
	s.renderSuccess(w, r, order, &read, "")
}

// renderSuccess shows the success page of o; a paid order empties the cart
// it bought (see cartAfterSuccess), and the header shows the cart after.
func (s *Server) renderSuccess(w http.ResponseWriter, r *http.Request, o orders.Order, sess *orders.Session, state string) {
	c := s.cartAfterSuccess(w, r, o)
	s.renderFrame(w, r, http.StatusOK, "success", newFrame(s.successView(o, sess, state), c.badge()))
}

// successView describes the order; state overrides the order's own status.
func (s *Server) successView(o orders.Order, sess *orders.Session, state string) successPage {
	v := successPage{Page: s.page("Thank you"), OrderID: o.ID, Email: o.Email, OrderPage: s.links.PagePath(o.ID)}
	if state == "" {
		state = stateOf(o.Status)
	}
	v.State = state
	switch state {
	case "paid":
		v.Heading, v.Message = "Payment received", "Thank you! Your order is confirmed."
	case "processing":
		v.Heading, v.Message = "Payment processing", "Your payment is on its way. We will confirm your order as soon as it settles; this can take a few days for bank payments."
	case "pending":
		v.Heading, v.Message = "Waiting for payment", "We have not received your payment yet. If you completed checkout, this page will update shortly."
	case "confirming":
		v.Heading, v.Message = "Confirmation pending", "We could not confirm your payment with Stripe just now. If you paid, your order is safe; reload this page in a minute."
	case "failed":
		v.Heading, v.Message = "Payment failed", "Your payment did not go through and nothing was charged. You can try again from the shop."
	case "expired":
		v.Heading, v.Message = "Checkout expired", "This checkout expired before payment. Nothing was charged."
	case "review":
		v.Heading, v.Message = "We are checking your order", "Your order needs a quick manual check. We will be in touch by email."
	case "refunded":
		v.Heading, v.Message = "Order refunded", "Your payment for this order was refunded."
	}

	// The items are the order's, priced from the catalogue; the total is
	// what Stripe charged when it says (tax, shipping and discounts
	// included), in the order's currency.
	total := o.AmountTotal
	if sess != nil {
		if sess.AmountTotal != nil && strings.EqualFold(sess.Currency, o.Currency) {
			total = *sess.AmountTotal
		}
		if sess.Email != "" {
			v.Email = sess.Email
		}
	}
	for _, it := range o.Items {
		v.Items = append(v.Items, lineView{Name: it.Name, Quantity: it.Quantity, Amount: money.Format(it.UnitAmount*it.Quantity, o.Currency)})
	}
	v.Total = money.Format(total, o.Currency)
	return v
}

// settled reports whether no read of the session could change an order in
// this status.
func settled(st orders.Status) bool {
	switch st {
	case orders.StatusPending, orders.StatusProcessing:
		return false
	}
	return true
}

// readThrottle lets each order's success page read its session from Stripe
// at most once per interval, however often it is reloaded.
type readThrottle struct {
	every time.Duration
	now   func() time.Time
	mu    sync.Mutex
	last  map[string]time.Time
}

func newReadThrottle(every time.Duration, now func() time.Time) *readThrottle {
	return &readThrottle{every: every, now: now, last: map[string]time.Time{}}
}

// take reports whether the order's session may be read now, and if so
// counts the read.
func (t *readThrottle) take(orderID string) bool {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if last, ok := t.last[orderID]; ok && now.Sub(last) < t.every {
		return false
	}
	if len(t.last) >= 10_000 { // bounded: forget what is past the interval
		for id, at := range t.last {
			if now.Sub(at) >= t.every {
				delete(t.last, id)
			}
		}
	}
	t.last[orderID] = now
	return true
}

func stateOf(st orders.Status) string {
	switch st {
	case orders.StatusPaid:
		return "paid"
	case orders.StatusProcessing:
		return "processing"
	case orders.StatusFailed:
		return "failed"
	case orders.StatusExpired:
		return "expired"
	case orders.StatusNeedsReview:
		return "review"
	case orders.StatusPartiallyRefunded, orders.StatusDisputed, orders.StatusDisputeLost:
		return "paid"
	case orders.StatusRefunded:
		return "refunded"
	}
	return "pending"
}

// readSession is what Stripe said about the session, read from the raw JSON
// it answered with through the same parser as the webhook's events.
func readSession(cs *stripe.CheckoutSession) (orders.Session, error) {
	if cs.LastResponse == nil || len(cs.LastResponse.RawJSON) == 0 {
		return orders.Session{}, errors.New("retrieved session has no raw response")
	}
	return orders.ParseSession(cs.LastResponse.RawJSON, orders.PinnedAPIVersion)
}
