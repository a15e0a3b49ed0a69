package orders

import (
	"strings"
	"time"
)

// Outcome is the status an observation asks for, before the order's own state
// and the amount check are taken into account. "" means no change.
func Outcome(eventType string, s Session) Status {
	switch eventType {
	case EventSessionCompleted, "": // "" is a direct read of the session
		switch {
		case s.Status == "expired":
			return StatusExpired
		case s.Status != "complete" && eventType == "":
			return "" // still open
		case s.PaymentStatus == "paid" || s.PaymentStatus == "no_payment_required":
			return StatusPaid
		default:
			return StatusProcessing
		}
	case EventAsyncPaymentSucceeded:
		return StatusPaid
	case EventAsyncPaymentFailed:
		return StatusFailed
	case EventSessionExpired:
		return StatusExpired
	}
	return ""
}

// rank orders statuses so that the result of a set of events does not depend
// on the order they arrive in: an order only ever moves up.
func rank(s Status) int {
	switch s {
	case StatusPending:
		return 0
	case StatusProcessing:
		return 1
	case StatusExpired:
		return 2
	case StatusFailed:
		return 3
	case StatusPaid:
		return 4
	case StatusNeedsReview:
		return 5
	}
	return -1
}

// Change is the result of applying an observation to an order.
type Change struct {
	Status  Status
	Email   string
	Review  string
	Changed bool // whether anything about the order changed
}

// Next decides what an observation of the order's Checkout Session (from an
// event of eventType, or "" for a direct read) does to the order. It is pure:
// stores call it inside the transaction that holds the order.
//
// The rules: the state only moves up the lifecycle (so any arrival order of the
// same events ends in the same state, and paid never goes back); an amount or
// currency that differs from what the order recorded sends it to needs_review
// unless it is already paid. Stripe's figures are fixed for a session, so
// every event of one session agrees on them.
func Next(o Order, eventType string, s Session) Change {
	o.Status = o.lifecycle() // the machine moves the payment's own state
	c := Change{Status: o.Status, Email: o.Email, Review: o.Review}
	if eventType != "" && !Handled(eventType) {
		return c
	}
	if c.Email == "" && s.Email != "" {
		c.Email = s.Email
	}
	want := Outcome(eventType, s)
	if want != "" && o.Status != StatusPaid && o.Status != StatusNeedsReview {
		if reason := mismatch(o, s); reason != "" {
			want, c.Review = StatusNeedsReview, reason
		}
	}
	if want != "" && rank(want) > rank(o.Status) && o.Status != StatusPaid {
		c.Status = want
	}
	if c.Status != StatusNeedsReview {
		c.Review = o.Review
	}
	c.Changed = c.Status != o.Status || c.Email != o.Email || c.Review != o.Review
	return c
}

// mismatch says how Stripe's figures differ from the order's, or "". The
// subtotal is compared when Stripe gives it, since promotion codes, tax and
// shipping legitimately change the total; otherwise the total is.
func mismatch(o Order, s Session) string {
	amount := s.AmountSubtotal
	if amount == nil {
		amount = s.AmountTotal
	}
	if amount != nil && *amount != o.AmountTotal {
		return "amount differs from the order"
	}
	if s.Currency != "" && !strings.EqualFold(s.Currency, o.Currency) {
		return "currency differs from the order"
	}
	return ""
}

// Observe applies Next to o and returns the order as it should be stored
// afterwards: the new payment state, email and review, paid_at set the
// first time the order is paid (with what Stripe charged and the
// PaymentIntent), the status settled on top, and updated_at moved to now
// when anything changed.
func Observe(o Order, eventType string, s Session, now time.Time) (Order, bool) {
	c := Next(o, eventType, s)
	changed := c.Changed
	if c.Changed {
		o.Payment, o.Email, o.Review = c.Status, c.Email, c.Review
		if o.Payment == StatusPaid && o.PaidAt == nil {
			o.PaidAt = &now
		}
	}
	if o.lifecycle() == StatusPaid || o.lifecycle() == StatusNeedsReview {
		if o.PaymentIntentID == "" && s.PaymentIntent != "" {
			o.PaymentIntentID, changed = s.PaymentIntent, true
		}
		if o.AmountPaid == 0 && s.AmountTotal != nil && o.lifecycle() == StatusPaid {
			o.AmountPaid, changed = *s.AmountTotal, true
		}
	}
	if !changed {
		return o, false
	}
	o.settle()
	o.UpdatedAt = now
	return o, true
}
