package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/shopcheckout/shop/internal/orders"
)

// Payment Link sales made into orders, run over the store under test.

// linkShop is a Service that reads Payment Link sessions' lines from a
// table, counting the reads, with the print as a stocked catalogue product
// sold by price_print.
type linkShop struct {
	svc   *orders.Service
	mu    sync.Mutex
	lines map[string][]orders.LinkLine
	reads atomic.Int32
	fail  atomic.Bool
}

func newLinkShop(t *testing.T, s orders.Store, clock *Clock) *linkShop {
	ls := &linkShop{lines: map[string][]orders.LinkLine{}}
	read := func(_ context.Context, sessionID string) ([]orders.LinkLine, error) {
		ls.reads.Add(1)
		if ls.fail.Load() {
			return nil, errors.New("stripe is down")
		}
		ls.mu.Lock()
		defer ls.mu.Unlock()
		return ls.lines[sessionID], nil
	}
	products := func(priceID string) (string, bool) {
		if priceID == "price_print" {
			return "print", true
		}
		return "", false
	}
	ls.svc = NewService(s, clock, orders.WithLineItems(read), orders.WithPriceProducts(products))
	if err := ls.svc.SeedStock(t.Context(), map[string]int64{"print": 3}); err != nil {
		t.Fatal(err)
	}
	return ls
}

// sale sets up a Payment Link session of prints (and a sticker) and
// returns an event maker for it.
func (ls *linkShop) sale(session string, prints int64) func(id, typ, payment string) orders.Event {
	ls.mu.Lock()
	ls.lines[session] = []orders.LinkLine{
		{PriceID: "price_print", Name: "Print", UnitAmount: 1000, Quantity: prints, AmountTotal: 1000 * prints, Currency: "usd"},
		{PriceID: "price_sticker", Name: "Sticker", UnitAmount: 300, Quantity: 1, AmountTotal: 300, Currency: "usd"},
	}
	ls.mu.Unlock()
	total := 1000*prints + 300
	return func(id, typ, payment string) orders.Event {
		o := orders.Order{SessionID: session, AmountTotal: total, Currency: "usd"}
		return EventFor(id, typ, o, func(s *orders.Session) {
			s.OrderID, s.PaymentLink = "", "plink_test"
			if payment != "" {
				s.PaymentStatus = payment
			}
		})
	}
}

func testPaymentLinkOrders(t *testing.T, s orders.Store) {
	ls := newLinkShop(t, s, NewClock())
	svc := ls.svc
	ev := ls.sale("cs_link_paid", 2)
	res := mustHandle(t, svc, ev("evt_link_1", orders.EventSessionCompleted, "paid"))
	if !res.Matched || res.Order.ID != orders.LinkOrderID("cs_link_paid") {
		t.Fatalf("a payment link sale: %+v, want an order made of it", res)
	}
	o := mustOrder(t, s, res.Order.ID)
	if o.Source != orders.SourcePaymentLink || o.Status != orders.StatusPaid || o.FulfilledAt == nil || o.AmountTotal != 2300 ||
		o.SessionID != "cs_link_paid" || o.Email != Email {
		t.Errorf("the sale's order: %+v; want a paid, fulfilled payment_link order of 23.00 for the session", o)
	}
	if len(o.Items) != 2 || o.Items[0] != (orders.Item{ProductID: "print", Name: "Print", UnitAmount: 1000, Quantity: 2}) ||
		o.Items[1] != (orders.Item{ProductID: "price_sticker", Name: "Sticker", UnitAmount: 300, Quantity: 1}) {
		t.Errorf("items %+v: want the print matched to the catalogue by its price and the sticker by its price id", o.Items)
	}
	if c := types(t, s, o.ID); c["order.paid/webhook"] != 1 || c["order.paid/email_customer"] != 1 {
		t.Errorf("notifications %v, want order.paid like a shop order", c)
	}
	wantLevel(t, svc, "print", 1, 0, 2)
	if got := o.Public().Source; got != "payment_link" {
		t.Errorf("public source %q", got)
	}

	// Redelivered: the same order, and Stripe is not asked again.
	reads := ls.reads.Load()
	if res := mustHandle(t, svc, ev("evt_link_1", orders.EventSessionCompleted, "paid")); !res.Duplicate {
		t.Errorf("redelivery: %+v, want a duplicate", res)
	}
	if res := mustHandle(t, svc, ev("evt_link_1b", orders.EventSessionCompleted, "paid")); res.Order.ID != o.ID {
		t.Errorf("another event of the session: order %s, want %s", res.Order.ID, o.ID)
	}
	if ls.reads.Load() != reads {
		t.Errorf("Stripe was asked for the lines again (%d reads, want %d)", ls.reads.Load(), reads)
	}
	wantLevel(t, svc, "print", 1, 0, 2)

	// Stripe down: nothing is stored, so Stripe's retry is applied later.
	ev2 := ls.sale("cs_link_retry", 1)
	ls.fail.Store(true)
	if _, err := svc.HandleEvent(t.Context(), ev2("evt_link_2", orders.EventSessionCompleted, "paid")); err == nil {
		t.Error("a sale whose lines cannot be read was acknowledged")
	}
	if _, err := s.Order(t.Context(), orders.LinkOrderID("cs_link_retry")); !errors.Is(err, orders.ErrNotFound) {
		t.Errorf("an order was stored for it: %v", err)
	}
	ls.fail.Store(false)
	if res := mustHandle(t, svc, ev2("evt_link_2", orders.EventSessionCompleted, "paid")); res.Duplicate || !res.Matched {
		t.Errorf("the retry: %+v, want applied", res)
	}
	wantLevel(t, svc, "print", 0, 0, 3)

	// Sold out: paid, but a person decides; the stock never goes below 0.
	ev3 := ls.sale("cs_link_short", 1)
	mustHandle(t, svc, ev3("evt_link_3", orders.EventSessionCompleted, "paid"))
	short := mustOrder(t, s, orders.LinkOrderID("cs_link_short"))
	if short.Status != orders.StatusNeedsReview || short.FulfilledAt != nil {
		t.Errorf("a sale without stock: %s, fulfilled %v; want needs_review, not fulfilled", short.Status, short.FulfilledAt)
	}
	if n := openAlarms(t, svc, orders.AlarmOversold, short.ID); n != 1 {
		t.Errorf("%d oversold alarms, want 1", n)
	}
	wantLevel(t, svc, "print", 0, 0, 3)

	// Not a payment link and no order: an unattributed payment, as before.
	stray := EventFor("evt_stray", orders.EventSessionCompleted, orders.Order{SessionID: "cs_stray", AmountTotal: 500, Currency: "usd"},
		func(s *orders.Session) { s.OrderID = "" })
	if res := mustHandle(t, svc, stray); res.Matched {
		t.Errorf("a session of another integration made an order: %+v", res)
	}
	if n := openAlarms(t, svc, orders.AlarmUnattributedPayment, ""); n != 1 {
		t.Errorf("%d unattributed alarms, want 1", n)
	}
}

func testPaymentLinkDelayed(t *testing.T, s orders.Store) {
	clock := NewClock()
	ls := newLinkShop(t, s, clock)
	svc := ls.svc
	ev := ls.sale("cs_link_slow", 2)
	mustHandle(t, svc, ev("evt_slow_1", orders.EventSessionCompleted, "unpaid"))
	id := orders.LinkOrderID("cs_link_slow")
	if o := mustOrder(t, s, id); o.Status != orders.StatusProcessing || o.FulfilledAt != nil || o.HoldState != orders.HoldHeld {
		t.Errorf("a delayed payment link sale: %s, hold %q, fulfilled %v; want processing, holding its stock", o.Status, o.HoldState, o.FulfilledAt)
	}
	wantLevel(t, svc, "print", 1, 2, 0)
	mustHandle(t, svc, ev("evt_slow_2", orders.EventAsyncPaymentSucceeded, "paid"))
	if o := mustOrder(t, s, id); o.Status != orders.StatusPaid || o.FulfilledAt == nil {
		t.Errorf("after the delayed payment: %s, fulfilled %v; want paid and fulfilled", o.Status, o.FulfilledAt)
	}
	wantLevel(t, svc, "print", 1, 0, 2)

	// A delayed one that fails gives its hold back.
	ev2 := ls.sale("cs_link_fails", 1)
	mustHandle(t, svc, ev2("evt_fail_1", orders.EventSessionCompleted, "unpaid"))
	wantLevel(t, svc, "print", 0, 1, 2)
	mustHandle(t, svc, ev2("evt_fail_2", orders.EventAsyncPaymentFailed, ""))
	if o := mustOrder(t, s, orders.LinkOrderID("cs_link_fails")); o.Status != orders.StatusFailed {
		t.Errorf("failed delayed payment: %s", o.Status)
	}
	wantLevel(t, svc, "print", 1, 0, 2)

	// The first event seen is the async success (the completed one is
	// late): the order is made of it, paid at once.
	ev3 := ls.sale("cs_link_late", 1)
	mustHandle(t, svc, ev3("evt_late_2", orders.EventAsyncPaymentSucceeded, "paid"))
	mustHandle(t, svc, ev3("evt_late_1", orders.EventSessionCompleted, "unpaid"))
	if o := mustOrder(t, s, orders.LinkOrderID("cs_link_late")); o.Status != orders.StatusPaid || o.FulfilledAt == nil {
		t.Errorf("events out of order: %s, fulfilled %v; want paid", o.Status, o.FulfilledAt)
	}
	wantLevel(t, svc, "print", 0, 0, 3)
}

// testPaymentLinkConcurrent delivers a sale's events many times at once:
// one order, fulfilled once.
func testPaymentLinkConcurrent(t *testing.T, s orders.Store) {
	var fulfilled atomic.Int32
	ls := newLinkShop(t, s, NewClock())
	ls.svc = NewService(s, NewClock(), orders.WithLineItems(func(context.Context, string) ([]orders.LinkLine, error) {
		return []orders.LinkLine{{PriceID: "price_print", Name: "Print", UnitAmount: 1000, Quantity: 1, AmountTotal: 1000, Currency: "usd"}}, nil
	}), orders.WithPriceProducts(func(p string) (string, bool) { return "print", p == "price_print" }),
		orders.OnFulfilled(func(orders.Order) { fulfilled.Add(1) }))
	o := orders.Order{SessionID: "cs_link_race", AmountTotal: 1000, Currency: "usd"}
	var wg sync.WaitGroup
	for i := range 12 {
		typ := orders.EventSessionCompleted
		if i%2 == 1 {
			typ = orders.EventAsyncPaymentSucceeded
		}
		ev := EventFor(fmt.Sprintf("evt_race_%d", i%4), typ, o, func(s *orders.Session) { s.OrderID, s.PaymentLink = "", "plink_race" })
		wg.Go(func() {
			if _, err := ls.svc.HandleEvent(t.Context(), ev); err != nil {
				t.Errorf("HandleEvent: %v", err)
			}
		})
	}
	wg.Wait()
	page, err := ls.svc.ListOrders(t.Context(), orders.ListFilter{})
	if err != nil || len(page.Orders) != 1 {
		t.Fatalf("%d orders (%v), want 1", len(page.Orders), err)
	}
	if n := fulfilled.Load(); n != 1 {
		t.Errorf("fulfilled %d times, want once", n)
	}
	wantLevel(t, ls.svc, "print", 2, 0, 1)
}
