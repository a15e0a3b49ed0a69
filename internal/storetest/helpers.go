// Package storetest is the conformance suite every orders.Store must pass, and
// the fixtures other tests build orders and Stripe events with.
package storetest

import (
	"fmt"
	"time"

	"github.com/shopcheckout/shop/internal/orders"
)

// Email is the shopper's address in the sessions the fixtures build.
const Email = "shopper@example.com"

// NewOrder returns a pending order with the given id: two "T-shirt" at 20.00
// USD, 40.00 in all, for the Checkout Session "cs_" + id. Its times are zero,
// so a store sets them from its clock.
func NewOrder(id string) orders.Order {
	return orders.Order{
		ID:          id,
		Status:      orders.StatusPending,
		Items:       []orders.Item{{ProductID: "tshirt", Name: "T-shirt", UnitAmount: 2000, Quantity: 2}},
		AmountTotal: 4000,
		Currency:    "usd",
		SessionID:   "cs_" + id,
	}
}

// EventFor returns a verified Stripe event of type typ, with id, about o's
// Checkout Session as Stripe would describe it for that type: its figures
// match o's, and it names o as client_reference_id. mutate functions edit the
// session afterwards, to make it say something else.
func EventFor(id, typ string, o orders.Order, mutate ...func(*orders.Session)) orders.Event {
	amount := o.AmountTotal
	s := orders.Session{
		ID:            o.SessionID,
		OrderID:       o.ID,
		Status:        "complete",
		PaymentStatus: "paid",
		AmountTotal:   &amount,
		Currency:      o.Currency,
		Email:         Email,
	}
	switch typ {
	case orders.EventAsyncPaymentFailed:
		s.PaymentStatus = "unpaid"
	case orders.EventSessionExpired:
		s.Status, s.PaymentStatus, s.Email = "expired", "unpaid", ""
	}
	for _, m := range mutate {
		m(&s)
	}
	return orders.Event{
		ID:         id,
		Type:       typ,
		APIVersion: "2024-06-20",
		Created:    time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		Session:    s,
		Payload:    fmt.Appendf(nil, `{"id":%q,"object":"event","type":%q}`, id, typ),
	}
}

// CompletedEvent returns a checkout.session.completed event for o whose
// session has the given payment status: paid, unpaid or no_payment_required.
// mutate functions then edit the session, as for EventFor.
func CompletedEvent(id string, o orders.Order, paymentStatus string, mutate ...func(*orders.Session)) orders.Event {
	setStatus := func(s *orders.Session) { s.PaymentStatus = paymentStatus }
	return EventFor(id, orders.EventSessionCompleted, o, append([]func(*orders.Session){setStatus}, mutate...)...)
}
