package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopcheckout/shop/internal/orders"
)

// Stock and holds, run over the store under test.

// stockPlacement asks for n of the stocked print.
func stockPlacement(key string, n int64) orders.Placement {
	return orders.Placement{RequestKey: key, Currency: "usd",
		Items: []orders.Item{{ProductID: "print", Name: "Print", UnitAmount: 1000, Quantity: n}}}
}

// level returns a product's stock row as the store has it.
func level(t *testing.T, svc *orders.Service, productID string) orders.StockLevel {
	t.Helper()
	list, err := svc.StockLevels(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range list {
		if l.ProductID == productID {
			return l
		}
	}
	t.Fatalf("no stock row for %s", productID)
	return orders.StockLevel{}
}

func wantLevel(t *testing.T, svc *orders.Service, productID string, stock, held, sold int64) {
	t.Helper()
	l := level(t, svc, productID)
	if l.Stock == nil || *l.Stock != stock || l.Held != held || l.Sold != sold {
		left := "unlimited"
		if l.Stock != nil {
			left = fmt.Sprint(*l.Stock)
		}
		t.Errorf("%s: stock %s, held %d, sold %d; want %d, %d, %d", productID, left, l.Held, l.Sold, stock, held, sold)
	}
}

// placed places an order of n prints or fails the test.
func placed(t *testing.T, svc *orders.Service, key string, n int64) orders.Order {
	t.Helper()
	o, _, err := svc.PlaceOrder(t.Context(), stockPlacement(key, n))
	if err != nil {
		t.Fatalf("PlaceOrder(%d): %v", n, err)
	}
	return o
}

// sessionFor gives o a session of its own, as checkout does.
func sessionFor(t *testing.T, svc *orders.Service, o orders.Order) orders.Order {
	t.Helper()
	o.SessionID = "cs_" + o.ID
	if err := svc.AttachSession(t.Context(), o.ID, o.SessionID); err != nil {
		t.Fatal(err)
	}
	return o
}

func testSeedStock(t *testing.T, s orders.Store) {
	svc := NewService(s, NewClock())
	if err := svc.SeedStock(t.Context(), map[string]int64{"print": 5, "poster": 0}); err != nil {
		t.Fatal(err)
	}
	wantLevel(t, svc, "print", 5, 0, 0)
	placed(t, svc, "", 2)
	// The file never overwrites a live count.
	if err := svc.SeedStock(t.Context(), map[string]int64{"print": 100}); err != nil {
		t.Fatal(err)
	}
	wantLevel(t, svc, "print", 3, 2, 0)
	wantLevel(t, svc, "poster", 0, 0, 0)
	// The owner sets what is left; held and sold stay.
	ten := int64(10)
	if l, err := svc.SetStock(t.Context(), "print", &ten); err != nil || *l.Stock != 10 || l.Held != 2 {
		t.Errorf("SetStock = %+v, %v; want 10 left, 2 held", l, err)
	}
	minus := int64(-1)
	if _, err := svc.SetStock(t.Context(), "print", &minus); !errors.Is(err, orders.ErrRule) {
		t.Errorf("SetStock(-1): got %v, want a refusal", err)
	}
	if l, err := svc.SetStock(t.Context(), "print", nil); err != nil || l.Stock != nil {
		t.Errorf("SetStock(nil) = %+v, %v; want unlimited", l, err)
	}
}

func testHoldOnPlacement(t *testing.T, s orders.Store) {
	clock := NewClock()
	svc := NewService(s, clock, orders.WithSessionTTL(30*time.Minute))
	if err := svc.SeedStock(t.Context(), map[string]int64{"print": 5}); err != nil {
		t.Fatal(err)
	}
	o := placed(t, svc, "", 2)
	if o.HoldState != orders.HoldHeld || o.HoldUntil == nil || !o.HoldUntil.Equal(orders.SessionExpiry(o.CreatedAt, 30*time.Minute)) {
		t.Errorf("placed order: hold %q until %v; want held until the session's expiry", o.HoldState, o.HoldUntil)
	}
	wantLevel(t, svc, "print", 3, 2, 0)
	_, _, err := svc.PlaceOrder(t.Context(), stockPlacement("", 4))
	var short *orders.OutOfStock
	if !errors.As(err, &short) || short.Left != 3 || short.Wanted != 4 || !errors.Is(err, orders.ErrOutOfStock) {
		t.Fatalf("4 of 3 left: got %v, want an OutOfStock saying 3 are left", err)
	}
	if err := svc.Health(t.Context()); err != nil {
		t.Errorf("a refusal for stock marked the store unhealthy: %v", err)
	}
	wantLevel(t, svc, "print", 3, 2, 0)
	list, _ := s.ListOrders(t.Context(), orders.ListFilter{})
	if len(list) != 1 {
		t.Errorf("%d orders after a refusal for stock, want 1: no order is placed", len(list))
	}
	// A mixed order holds only its limited lines; unlimited ones pass.
	mixed := stockPlacement("", 1)
	mixed.Items = append(mixed.Items, orders.Item{ProductID: "tshirt", Name: "T-shirt", UnitAmount: 2000, Quantity: 9})
	if _, _, err := svc.PlaceOrder(t.Context(), mixed); err != nil {
		t.Errorf("a mixed order: %v", err)
	}
	wantLevel(t, svc, "print", 2, 3, 0)
	// Counts never go below zero: the last ones go, then nothing.
	placed(t, svc, "", 2)
	wantLevel(t, svc, "print", 0, 5, 0)
	if _, _, err := svc.PlaceOrder(t.Context(), stockPlacement("", 1)); !errors.Is(err, orders.ErrOutOfStock) {
		t.Errorf("sold out: got %v, want ErrOutOfStock", err)
	}
}

// testConcurrentHolds races many shoppers for a few prints: exactly as many
// orders as there are prints.
func testConcurrentHolds(t *testing.T, s orders.Store) {
	svc := NewService(s, NewClock())
	if err := svc.SeedStock(t.Context(), map[string]int64{"print": 10}); err != nil {
		t.Fatal(err)
	}
	var ok, short atomic.Int32
	var wg sync.WaitGroup
	for range 60 {
		wg.Go(func() {
			_, _, err := svc.PlaceOrder(t.Context(), stockPlacement("", 1))
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, orders.ErrOutOfStock):
				short.Add(1)
			default:
				t.Errorf("PlaceOrder: %v", err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 10 || short.Load() != 50 {
		t.Errorf("60 shoppers for 10 prints: %d placed, %d refused; want 10 and 50", ok.Load(), short.Load())
	}
	wantLevel(t, svc, "print", 0, 10, 0)
}

func testHoldPaths(t *testing.T, s orders.Store) {
	ctx := t.Context()
	clock := NewClock()
	svc := NewService(s, clock, orders.WithSessionTTL(30*time.Minute), orders.WithProcessingHold(14*24*time.Hour))
	if err := svc.SeedStock(ctx, map[string]int64{"print": 10}); err != nil {
		t.Fatal(err)
	}
	events := 0
	event := func(typ string, o orders.Order, payment string) orders.Event {
		events++
		ev := EventFor(fmt.Sprintf("evt_hold_%d", events), typ, o, func(s *orders.Session) { s.AmountTotal = nil })
		if typ == orders.EventSessionCompleted {
			ev.Session.PaymentStatus = payment
		}
		return ev
	}

	// Paid: the hold becomes sold.
	a := sessionFor(t, svc, placed(t, svc, "", 2))
	mustHandle(t, svc, event(orders.EventSessionCompleted, a, "paid"))
	wantLevel(t, svc, "print", 8, 0, 2)
	if got := mustOrder(t, s, a.ID); got.HoldState != orders.HoldSold {
		t.Errorf("paid order: hold %q, want sold", got.HoldState)
	}
	// Expired: back in stock.
	b := sessionFor(t, svc, placed(t, svc, "", 3))
	wantLevel(t, svc, "print", 5, 3, 2)
	mustHandle(t, svc, event(orders.EventSessionExpired, b, ""))
	wantLevel(t, svc, "print", 8, 0, 2)
	// A delayed payment keeps its hold for the processing hold, then fails.
	c := sessionFor(t, svc, placed(t, svc, "", 1))
	mustHandle(t, svc, event(orders.EventSessionCompleted, c, "unpaid"))
	if got := mustOrder(t, s, c.ID); got.HoldUntil == nil || !got.HoldUntil.Equal(clock.Want().Add(14*24*time.Hour)) {
		t.Errorf("processing order: hold until %v, want 14 days on", got.HoldUntil)
	}
	mustHandle(t, svc, event(orders.EventAsyncPaymentFailed, c, ""))
	wantLevel(t, svc, "print", 8, 0, 2)
	// A delayed payment that succeeds after days: sold.
	d := sessionFor(t, svc, placed(t, svc, "", 1))
	mustHandle(t, svc, event(orders.EventSessionCompleted, d, "unpaid"))
	clock.Advance(5 * 24 * time.Hour)
	mustHandle(t, svc, event(orders.EventAsyncPaymentSucceeded, d, ""))
	wantLevel(t, svc, "print", 7, 0, 3)
	if got := mustOrder(t, s, d.ID); got.FulfilledAt == nil {
		t.Error("the delayed payment's order was not fulfilled")
	}

	// The sweeper: a pending order past its deadline has its session
	// expired first, then its hold given back.
	e := sessionFor(t, svc, placed(t, svc, "", 2))
	f := sessionFor(t, svc, placed(t, svc, "", 1)) // paid at Stripe meanwhile
	wantLevel(t, svc, "print", 4, 3, 3)
	var expired []string
	expire := func(_ context.Context, id string) (string, error) {
		expired = append(expired, id)
		if id == f.SessionID {
			return "complete", nil
		}
		return "expired", nil
	}
	if n, err := svc.SweepHolds(ctx, expire, 100); err != nil || n != 0 || len(expired) != 0 {
		t.Errorf("sweep before any deadline: %d, %v, expired %v; want nothing", n, err, expired)
	}
	clock.Advance(33 * time.Minute)
	if n, err := svc.SweepHolds(ctx, expire, 100); err != nil || n != 1 {
		t.Errorf("sweep past the deadline: %d released, %v; want 1", n, err)
	}
	if len(expired) != 2 {
		t.Errorf("sessions expired at Stripe: %v, want both due ones", expired)
	}
	wantLevel(t, svc, "print", 6, 1, 3)
	if got := mustOrder(t, s, e.ID); got.HoldState != orders.HoldReleased {
		t.Errorf("swept order: hold %q, want released", got.HoldState)
	}
	// f was paid: its event sells what it still holds.
	mustHandle(t, svc, event(orders.EventSessionCompleted, f, "paid"))
	wantLevel(t, svc, "print", 6, 0, 4)

	// A late payment after the hold was given back takes stock again...
	mustHandle(t, svc, event(orders.EventSessionCompleted, e, "paid"))
	wantLevel(t, svc, "print", 4, 0, 6)
	if got := mustOrder(t, s, e.ID); got.Status != orders.StatusPaid || got.FulfilledAt == nil {
		t.Errorf("late payment with stock: %s, fulfilled %v; want paid and fulfilled", got.Status, got.FulfilledAt)
	}
	// ...and without stock, the order needs a person.
	g := sessionFor(t, svc, placed(t, svc, "", 3))
	mustHandle(t, svc, event(orders.EventSessionExpired, g, ""))
	zero := int64(0)
	if _, err := svc.SetStock(ctx, "print", &zero); err != nil {
		t.Fatal(err)
	}
	mustHandle(t, svc, event(orders.EventSessionCompleted, g, "paid"))
	got := mustOrder(t, s, g.ID)
	if got.Status != orders.StatusNeedsReview || got.FulfilledAt != nil || got.Review == "" {
		t.Errorf("late payment, no stock: %s (%q), fulfilled %v; want needs_review, not fulfilled", got.Status, got.Review, got.FulfilledAt)
	}
	if n := openAlarms(t, svc, orders.AlarmOversold, g.ID); n != 1 {
		t.Errorf("%d oversold alarms, want 1", n)
	}
	if c := types(t, s, g.ID); c["order.needs_review/webhook"] != 1 || c["order.needs_review/email_owner"] != 1 || c["order.paid/webhook"] != 0 {
		t.Errorf("notifications %v, want order.needs_review to the webhook and the owner, and no order.paid", c)
	}
	wantLevel(t, svc, "print", 0, 0, 6)
	// Refunded in full it owes the shopper nothing: the alarm goes, and the
	// shopper hears of the refund as from any paid order.
	mustHandle(t, svc, ChargeRefunded("evt_hold_oversold_refund", got, got.AmountTotal, clock.Now().Unix()))
	if n := openAlarms(t, svc, orders.AlarmOversold, g.ID); n != 0 {
		t.Errorf("%d oversold alarms after the full refund, want 0", n)
	}
	if c := types(t, s, g.ID); c["order.refunded/webhook"] != 1 || c["order.refunded/email_customer"] != 1 {
		t.Errorf("notifications %v, want order.refunded to the webhook and the shopper", c)
	}

	// A processing order past the processing hold gives its hold back
	// without expiring anything (its session is complete).
	ten := int64(10)
	if _, err := svc.SetStock(ctx, "print", &ten); err != nil {
		t.Fatal(err)
	}
	h := sessionFor(t, svc, placed(t, svc, "", 2))
	mustHandle(t, svc, event(orders.EventSessionCompleted, h, "unpaid"))
	clock.Advance(15 * 24 * time.Hour)
	expired = nil
	if n, err := svc.SweepHolds(ctx, expire, 100); err != nil || n != 1 || len(expired) != 0 {
		t.Errorf("processing hold ran out: %d released, %v, expired %v; want 1, none expired", n, err, expired)
	}
	wantLevel(t, svc, "print", 10, 0, 6)
}

func testRestock(t *testing.T, s orders.Store) {
	svc := NewService(s, NewClock())
	if err := svc.SeedStock(t.Context(), map[string]int64{"print": 4}); err != nil {
		t.Fatal(err)
	}
	o := sessionFor(t, svc, placed(t, svc, "", 2))
	o.AmountTotal = 2000
	paid := CompletedEvent("evt_restock_paid", o, "paid", func(s *orders.Session) { s.PaymentIntent = PaymentIntent(o) })
	mustHandle(t, svc, paid)
	wantLevel(t, svc, "print", 2, 0, 2)
	if _, err := svc.Restock(t.Context(), o.ID); !errors.Is(err, orders.ErrRule) {
		t.Errorf("restock before a full refund: got %v, want a refusal", err)
	}
	mustHandle(t, svc, ChargeRefunded("evt_restock_refund", o, 2000, 1_800_000_000))
	got, err := svc.Restock(t.Context(), o.ID)
	if err != nil || got.HoldState != orders.HoldReturned {
		t.Fatalf("Restock = %q, %v; want restocked", got.HoldState, err)
	}
	wantLevel(t, svc, "print", 4, 0, 0)
	if _, err := svc.Restock(t.Context(), o.ID); !errors.Is(err, orders.ErrRule) {
		t.Errorf("a second restock: got %v, want a refusal", err)
	}
	wantLevel(t, svc, "print", 4, 0, 0)
}
