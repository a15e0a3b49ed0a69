// Package storetest is the conformance suite every orders.Store must pass, and
// the fixtures other tests build orders and Stripe events with.
package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/shopcheckout/shop/internal/orders"
)

// Email is the shopper's address in the sessions the fixtures build.
const Email = "shopper@example.com"

// OwnerEmail is the shop owner's address in the Service the suite builds.
const OwnerEmail = "owner@example.com"

// NewOrder returns a pending order with the given id: two "T-shirt" at 20.00
// USD, 40.00 in all, for the Checkout Session "cs_" + id, created at a fixed
// instant with microseconds.
func NewOrder(id string) orders.Order {
	return orders.Order{
		ID:          id,
		Status:      orders.StatusPending,
		Payment:     orders.StatusPending,
		Items:       []orders.Item{{ProductID: "tshirt", Name: "T-shirt", UnitAmount: 2000, Quantity: 2}},
		AmountTotal: 4000,
		Currency:    "usd",
		SessionID:   "cs_" + id,
		Source:      orders.SourceShop,
		CreatedAt:   at(0),
		UpdatedAt:   at(0),
	}
}

// Seed inserts orders as they are, in one write, or fails the test. Tests
// and benchmarks use it to set up a store; the shop itself places orders
// through orders.Service.
func Seed(t testing.TB, s orders.Store, list ...orders.Order) {
	t.Helper()
	err := s.Write(context.Background(), func(ctx context.Context, tx orders.Tx) error {
		for _, o := range list {
			if err := tx.InsertOrder(ctx, o); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("seed %d orders: %v", len(list), err)
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

// Clock is a settable clock for the Service under test.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock at a fixed instant with sub-microsecond digits,
// in a zone other than UTC, so tests see what stores keep of it.
func NewClock() *Clock {
	return &Clock{now: time.Date(2025, 6, 7, 8, 9, 10, 123456789, time.FixedZone("UTC+5", 5*60*60))}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Want is the clock's time as stores keep it: UTC, to the microsecond.
func (c *Clock) Want() time.Time { return c.Now().UTC().Truncate(time.Microsecond) }

// AllChannels queues every kind of notification.
var AllChannels = orders.Channels{Webhook: true, EmailCustomer: true, OwnerEmail: OwnerEmail}

// NewService returns a Service over s with clock, every notification
// channel on, and a log that goes nowhere.
func NewService(s orders.Store, clock *Clock, opts ...orders.ServiceOption) *orders.Service {
	base := []orders.ServiceOption{orders.WithClock(clock.Now), orders.WithChannels(AllChannels)}
	return orders.NewService(s, slog.New(slog.NewTextHandler(io.Discard, nil)), append(base, opts...)...)
}

// PaidEventJSON is the checkout.session.completed event that pays o, as
// Stripe sends it (in a newer API version than the shop pins, whose
// version-stable fields are all the shop reads).
func PaidEventJSON(t testing.TB, evtID string, o orders.Order) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"id": evtID, "object": "event", "api_version": "2025-09-30.clover", "created": time.Now().Unix(),
		"type": orders.EventSessionCompleted,
		"data": map[string]any{"object": map[string]any{
			"id": o.SessionID, "object": "checkout.session", "status": "complete", "payment_status": "paid",
			"amount_subtotal": o.AmountTotal, "amount_total": o.AmountTotal, "currency": o.Currency,
			"client_reference_id": o.ID, "customer_details": map[string]any{"email": Email},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}
