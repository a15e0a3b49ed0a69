package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/shopcheckout/shop/internal/orders"
)

// The shop's rules, run over the store under test.

// testTimes checks that a store records created, updated, paid and
// fulfilled times from the Service's clock, and returns them in UTC to the
// microsecond.
func testTimes(t *testing.T, s orders.Store) {
	clock := NewClock()
	svc := NewService(s, clock)
	o, _, err := svc.PlaceOrder(t.Context(), placement(""))
	if err != nil {
		t.Fatal(err)
	}
	created := clock.Want()
	clock.Advance(time.Minute)
	o.SessionID = "cs_times"
	if err := svc.AttachSession(t.Context(), o.ID, o.SessionID); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	mustHandle(t, svc, CompletedEvent("evt_times", o, "paid"))
	paid := clock.Want()
	got := mustOrder(t, s, o.ID)
	for _, tt := range []struct {
		name      string
		got, want *time.Time
	}{
		{"CreatedAt", &got.CreatedAt, &created},
		{"UpdatedAt", &got.UpdatedAt, &paid},
		{"PaidAt", got.PaidAt, &paid},
		{"FulfilledAt", got.FulfilledAt, &paid},
	} {
		if tt.got == nil || !tt.got.Equal(*tt.want) || tt.got.Location() != time.UTC {
			t.Errorf("%s: got %v, want %v in UTC", tt.name, tt.got, *tt.want)
		}
	}
}

func placement(key string) orders.Placement {
	return orders.Placement{RequestKey: key, Currency: "usd",
		Items: []orders.Item{{ProductID: "tshirt", Name: "T-shirt", UnitAmount: 2000, Quantity: 2}}}
}

func testPlaceOrder(t *testing.T, s orders.Store) {
	ctx := t.Context()
	svc := NewService(s, NewClock())
	o, reused, err := svc.PlaceOrder(ctx, placement(""))
	if err != nil || reused {
		t.Fatalf("PlaceOrder = %v, %v; want a new order", reused, err)
	}
	if o.AmountTotal != 4000 || o.Status != orders.StatusPending || o.Currency != "usd" {
		t.Errorf("placed %+v, want pending 4000 usd", o)
	}
	if diff := cmp.Diff(o, mustOrder(t, s, o.ID)); diff != "" {
		t.Errorf("stored order differs (-placed +stored):\n%s", diff)
	}
	// The same request key names the same order while it is pending.
	first, _, err := svc.PlaceOrder(ctx, placement("token-1"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var reuses atomic.Int32
	for range 10 {
		wg.Go(func() {
			again, reused, err := svc.PlaceOrder(ctx, placement("token-1"))
			if err != nil || again.ID != first.ID {
				t.Errorf("repeat: got %s, %v; want %s", again.ID, err, first.ID)
			}
			if reused {
				reuses.Add(1)
			}
		})
	}
	wg.Wait()
	if n := reuses.Load(); n != 10 {
		t.Errorf("repeats reported reused %d times, want 10", n)
	}
	// Once it went on, the same key is a new purchase.
	first.SessionID = "cs_place"
	if err := svc.AttachSession(ctx, first.ID, first.SessionID); err != nil {
		t.Fatal(err)
	}
	mustHandle(t, svc, CompletedEvent("evt_place", first, "paid"))
	next, reused, err := svc.PlaceOrder(ctx, placement("token-1"))
	if err != nil || reused || next.ID == first.ID {
		t.Errorf("after payment: got %s reused=%v, %v; want a new order", next.ID, reused, err)
	}
	bad := placement("")
	bad.Items[0].Quantity = 0
	if _, _, err := svc.PlaceOrder(ctx, bad); !errors.Is(err, orders.ErrRule) {
		t.Errorf("PlaceOrder with quantity 0: got %v, want orders.ErrRule", err)
	}
}

func testAttachSession(t *testing.T, s orders.Store) {
	ctx := t.Context()
	svc := NewService(s, NewClock())
	o := NewOrder("ord_set")
	o.SessionID = ""
	other := NewOrder("ord_other")
	other.SessionID = ""
	Seed(t, s, o, other)
	if err := svc.AttachSession(ctx, o.ID, "cs_1"); err != nil {
		t.Fatalf("AttachSession: %v", err)
	}
	if err := svc.AttachSession(ctx, o.ID, "cs_1"); err != nil {
		t.Errorf("AttachSession with the same session: %v", err)
	}
	if err := svc.AttachSession(ctx, o.ID, "cs_2"); !errors.Is(err, orders.ErrRule) {
		t.Errorf("AttachSession with another session: got %v, want orders.ErrRule", err)
	}
	if got, err := s.OrderBySession(ctx, "cs_1"); err != nil || got.ID != o.ID {
		t.Errorf("OrderBySession(cs_1) = %q, %v; want %q", got.ID, err, o.ID)
	}
	if err := svc.AttachSession(ctx, "ord_missing", "cs_3"); !errors.Is(err, orders.ErrNotFound) {
		t.Errorf("AttachSession on a missing order: got %v, want orders.ErrNotFound", err)
	}
	if err := svc.AttachSession(ctx, other.ID, "cs_1"); err == nil {
		t.Error("AttachSession with another order's session: got nil error, want one")
	}
	if err := svc.Health(ctx); err != nil {
		t.Errorf("Health after refused writes: %v (a refusal is not a store failure)", err)
	}
}

func testLifecycle(t *testing.T, s orders.Store) {
	svc := NewService(s, NewClock())
	tests := []struct {
		name   string
		events func(o orders.Order) []orders.Event
		want   orders.Status
	}{
		{"completed paid", one(func(o orders.Order) orders.Event { return CompletedEvent("evt_1", o, "paid") }), orders.StatusPaid},
		{"completed no payment required", one(func(o orders.Order) orders.Event { return CompletedEvent("evt_1", o, "no_payment_required") }), orders.StatusPaid},
		{"completed unpaid", one(func(o orders.Order) orders.Event { return CompletedEvent("evt_1", o, "unpaid") }), orders.StatusProcessing},
		{"async succeeded", func(o orders.Order) []orders.Event {
			return []orders.Event{CompletedEvent("evt_1", o, "unpaid"), EventFor("evt_2", orders.EventAsyncPaymentSucceeded, o)}
		}, orders.StatusPaid},
		{"async failed", func(o orders.Order) []orders.Event {
			return []orders.Event{CompletedEvent("evt_1", o, "unpaid"), EventFor("evt_2", orders.EventAsyncPaymentFailed, o)}
		}, orders.StatusFailed},
		{"expired", one(func(o orders.Order) orders.Event { return EventFor("evt_1", orders.EventSessionExpired, o) }), orders.StatusExpired},
	}
	for i, tt := range tests {
		o := NewOrder(fmt.Sprintf("ord_life%d", i))
		Seed(t, s, o)
		for _, ev := range tt.events(o) {
			ev.ID += "_" + o.ID
			before := mustOrder(t, s, o.ID)
			res := mustHandle(t, svc, ev)
			if !res.Matched || res.Duplicate || res.Previous != before.Status || res.Outcome() != orders.OutcomeApplied {
				t.Errorf("%s: %s: got matched %v, duplicate %v, previous %q, outcome %q; want true, false, %q, applied",
					tt.name, ev.Type, res.Matched, res.Duplicate, res.Previous, res.Outcome(), before.Status)
			}
			if diff := cmp.Diff(mustOrder(t, s, o.ID), res.Order); diff != "" {
				t.Errorf("%s: %s: ApplyResult.Order differs from the stored order (-stored +result):\n%s", tt.name, ev.Type, diff)
			}
		}
		got := mustOrder(t, s, o.ID)
		if got.Status != tt.want {
			t.Errorf("%s: got status %q, want %q", tt.name, got.Status, tt.want)
		}
		isPaid := tt.want == orders.StatusPaid
		if (got.PaidAt != nil) != isPaid || (got.FulfilledAt != nil) != isPaid {
			t.Errorf("%s: got PaidAt %v, FulfilledAt %v; want both set only when paid", tt.name, got.PaidAt, got.FulfilledAt)
		}
		wantEmail := Email
		if tt.want == orders.StatusExpired {
			wantEmail = "" // an expired session has no email
		}
		if got.Email != wantEmail {
			t.Errorf("%s: got email %q, want %q", tt.name, got.Email, wantEmail)
		}
	}
}

func testArrivalOrder(t *testing.T, s orders.Store) {
	svc := NewService(s, NewClock())
	type mk func(id string, o orders.Order) orders.Event
	var (
		unpaid mk = func(id string, o orders.Order) orders.Event { return CompletedEvent(id, o, "unpaid") }
		paid   mk = func(id string, o orders.Order) orders.Event { return CompletedEvent(id, o, "paid") }
		ok     mk = func(id string, o orders.Order) orders.Event {
			return EventFor(id, orders.EventAsyncPaymentSucceeded, o)
		}
		failed   mk = func(id string, o orders.Order) orders.Event { return EventFor(id, orders.EventAsyncPaymentFailed, o) }
		expired  mk = func(id string, o orders.Order) orders.Event { return EventFor(id, orders.EventSessionExpired, o) }
		wrongAmt mk = func(id string, o orders.Order) orders.Event {
			return CompletedEvent(id, o, "paid", func(s *orders.Session) { *s.AmountTotal++ })
		}
	)
	sets := []struct {
		name   string
		events []mk
		want   orders.Status
	}{
		{"completed unpaid, async succeeded", []mk{unpaid, ok}, orders.StatusPaid},
		{"completed unpaid, async failed", []mk{unpaid, failed}, orders.StatusFailed},
		{"completed paid, expired", []mk{paid, expired}, orders.StatusPaid},
		{"completed unpaid, expired", []mk{unpaid, expired}, orders.StatusExpired},
		{"completed unpaid, async succeeded, expired", []mk{unpaid, ok, expired}, orders.StatusPaid},
		{"completed unpaid, async failed, expired", []mk{unpaid, failed, expired}, orders.StatusFailed},
		{"wrong amount, expired", []mk{wrongAmt, expired}, orders.StatusNeedsReview},
	}
	for si, set := range sets {
		for pi, perm := range permutations(set.events) {
			o := NewOrder(fmt.Sprintf("ord_perm%d_%d", si, pi))
			Seed(t, s, o)
			for ei, ev := range perm {
				mustHandle(t, svc, ev(fmt.Sprintf("evt_%s_%d", o.ID, ei), o))
			}
			got := mustOrder(t, s, o.ID)
			if got.Status != set.want {
				t.Errorf("%s, permutation %d: got status %q, want %q", set.name, pi, got.Status, set.want)
			}
			if n := len(mustNotifications(t, s, o.ID)); (got.Status == orders.StatusPaid) != (n == 3) || (got.Status != orders.StatusPaid && n != 0) {
				t.Errorf("%s, permutation %d: %d notifications queued for a %s order, want 3 when paid, else 0", set.name, pi, n, got.Status)
			}
		}
	}
}

func testPaidIsFinal(t *testing.T, s orders.Store) {
	svc := NewService(s, NewClock())
	later := map[string]func(o orders.Order) orders.Event{
		"async failed":     func(o orders.Order) orders.Event { return EventFor("evt_2_"+o.ID, orders.EventAsyncPaymentFailed, o) },
		"expired":          func(o orders.Order) orders.Event { return EventFor("evt_2_"+o.ID, orders.EventSessionExpired, o) },
		"completed unpaid": func(o orders.Order) orders.Event { return CompletedEvent("evt_2_"+o.ID, o, "unpaid") },
		"wrong amount": func(o orders.Order) orders.Event {
			return CompletedEvent("evt_2_"+o.ID, o, "paid", func(s *orders.Session) { *s.AmountTotal = 1 })
		},
		"wrong currency": func(o orders.Order) orders.Event {
			return CompletedEvent("evt_2_"+o.ID, o, "paid", func(s *orders.Session) { s.Currency = "eur" })
		},
	}
	i := 0
	for name, ev := range later {
		i++
		o := NewOrder(fmt.Sprintf("ord_final%d", i))
		Seed(t, s, o)
		paid := mustHandle(t, svc, CompletedEvent("evt_1_"+o.ID, o, "paid")).Order
		res := mustHandle(t, svc, ev(o))
		if diff := cmp.Diff(paid, res.Order); diff != "" {
			t.Errorf("paid, then %s: the order changed (-paid +after):\n%s", name, diff)
		}
		if diff := cmp.Diff(paid, mustOrder(t, s, o.ID)); diff != "" {
			t.Errorf("paid, then %s: the stored order changed (-paid +stored):\n%s", name, diff)
		}
	}
}

func testMismatch(t *testing.T, s orders.Store) {
	svc := NewService(s, NewClock())
	tests := []struct {
		name   string
		mutate func(*orders.Session)
		want   orders.Status
	}{
		{"amount", func(s *orders.Session) { *s.AmountTotal = 3999 }, orders.StatusNeedsReview},
		{"currency", func(s *orders.Session) { s.Currency = "eur" }, orders.StatusNeedsReview},
		{"currency in upper case", func(s *orders.Session) { s.Currency = "USD" }, orders.StatusPaid},
		{"amount not given", func(s *orders.Session) { s.AmountTotal = nil }, orders.StatusPaid},
	}
	for i, tt := range tests {
		o := NewOrder(fmt.Sprintf("ord_mismatch%d", i))
		Seed(t, s, o)
		got := mustHandle(t, svc, CompletedEvent("evt_1_"+o.ID, o, "paid", tt.mutate)).Order
		if got.Status != tt.want {
			t.Errorf("%s: got status %q, want %q", tt.name, got.Status, tt.want)
		}
		if review := got.Review != ""; review != (tt.want == orders.StatusNeedsReview) {
			t.Errorf("%s: got review %q, want one only when the order needs review", tt.name, got.Review)
		}
		if tt.want != orders.StatusNeedsReview {
			continue
		}
		// Events that carry the right figures do not clear the review.
		mustHandle(t, svc, EventFor("evt_2_"+o.ID, orders.EventAsyncPaymentSucceeded, o))
		mustHandle(t, svc, CompletedEvent("evt_3_"+o.ID, o, "paid"))
		if _, err := svc.SyncSession(t.Context(), CompletedEvent("", o, "paid").Session); err != nil {
			t.Fatalf("%s: SyncSession: %v", tt.name, err)
		}
		after := mustOrder(t, s, o.ID)
		if after.Status != orders.StatusNeedsReview || after.Review != got.Review || after.PaidAt != nil || after.FulfilledAt != nil {
			t.Errorf("%s: after paid events got status %q, review %q, paid %v, fulfilled %v; want %q, %q, nil, nil",
				tt.name, after.Status, after.Review, after.PaidAt, after.FulfilledAt, orders.StatusNeedsReview, got.Review)
		}
		if n := len(mustNotifications(t, s, o.ID)); n != 0 {
			t.Errorf("%s: %d notifications for an order that needs review, want 0", tt.name, n)
		}
	}
}

func testDuplicateEvent(t *testing.T, s orders.Store) {
	svc := NewService(s, NewClock())
	o := NewOrder("ord_dup")
	Seed(t, s, o)
	first := mustHandle(t, svc, CompletedEvent("evt_dup", o, "unpaid"))
	// The same id with other content: still the same event, so ignored.
	res := mustHandle(t, svc, EventFor("evt_dup", orders.EventAsyncPaymentSucceeded, o))
	if diff := cmp.Diff(orders.ApplyResult{Duplicate: true}, res); diff != "" {
		t.Errorf("ApplyResult mismatch (-want +got):\n%s", diff)
	}
	if res.Outcome() != orders.OutcomeDuplicate {
		t.Errorf("Outcome() = %q, want %q", res.Outcome(), orders.OutcomeDuplicate)
	}
	if diff := cmp.Diff(first.Order, mustOrder(t, s, o.ID)); diff != "" {
		t.Errorf("a duplicate changed the order (-before +after):\n%s", diff)
	}
}

func testSequentialDuplicates(t *testing.T, s orders.Store) {
	svc := NewService(s, NewClock())
	o := NewOrder("ord_seq")
	Seed(t, s, o)
	ev := CompletedEvent("evt_seq", o, "paid")
	dups := 0
	for range 100 {
		if mustHandle(t, svc, ev).Duplicate {
			dups++
		}
	}
	if dups != 99 {
		t.Errorf("got %d duplicates, want 99", dups)
	}
	if got := mustOrder(t, s, o.ID); got.Status != orders.StatusPaid || got.FulfilledAt == nil {
		t.Errorf("got status %q, fulfilled %v; want paid and fulfilled", got.Status, got.FulfilledAt)
	}
	if n := len(mustNotifications(t, s, o.ID)); n != 3 {
		t.Errorf("got %d notifications, want 3 (webhook, shopper, owner)", n)
	}
}

func testConcurrentDuplicates(t *testing.T, s orders.Store) {
	var fulfilments atomic.Int32
	svc := NewService(s, NewClock(), orders.OnFulfilled(func(orders.Order) { fulfilments.Add(1) }))
	o := NewOrder("ord_conc")
	Seed(t, s, o)
	ev := CompletedEvent("evt_conc", o, "paid")
	var applied atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			res, err := svc.HandleEvent(t.Context(), ev)
			if err != nil {
				t.Errorf("HandleEvent: %v", err)
				return
			}
			if !res.Duplicate {
				applied.Add(1)
			}
		})
	}
	wg.Wait()
	if n, f := applied.Load(), fulfilments.Load(); n != 1 || f != 1 {
		t.Errorf("got %d applications and %d fulfilments, want 1 and 1", n, f)
	}
	if got := mustOrder(t, s, o.ID).Status; got != orders.StatusPaid {
		t.Errorf("got status %q, want %q", got, orders.StatusPaid)
	}
}

func testConcurrentDistinct(t *testing.T, s orders.Store) {
	svc := NewService(s, NewClock())
	var all []orders.Order
	for i := range 50 {
		all = append(all, NewOrder(fmt.Sprintf("ord_many%02d", i)))
	}
	Seed(t, s, all...)
	var wg sync.WaitGroup
	for _, o := range all {
		wg.Go(func() {
			res, err := svc.HandleEvent(t.Context(), CompletedEvent("evt_"+o.ID, o, "paid"))
			if err != nil {
				t.Errorf("HandleEvent for %s: %v", o.ID, err)
				return
			}
			if res.Duplicate || !res.Matched || res.Order.Status != orders.StatusPaid || res.Order.FulfilledAt == nil {
				t.Errorf("%s: got duplicate %v, matched %v, status %q, fulfilled %v; want false, true, paid, set",
					o.ID, res.Duplicate, res.Matched, res.Order.Status, res.Order.FulfilledAt)
			}
		})
	}
	wg.Wait()
	paid, err := s.ListOrders(t.Context(), orders.ListFilter{Status: orders.StatusPaid})
	if err != nil {
		t.Fatalf("ListOrders: %v", err)
	}
	if len(paid) != len(all) {
		t.Errorf("got %d paid orders, want %d", len(paid), len(all))
	}
}

func testUnmatched(t *testing.T, s orders.Store) {
	svc := NewService(s, NewClock())
	o := NewOrder("ord_um")
	Seed(t, s, o)
	tests := []struct {
		name   string
		mutate func(*orders.Session)
	}{
		{"unknown session, no order id", func(s *orders.Session) { s.ID, s.OrderID = "cs_unknown", "" }},
		{"unknown session and order", func(s *orders.Session) { s.ID, s.OrderID = "cs_unknown2", "ord_unknown" }},
	}
	for i, tt := range tests {
		ev := CompletedEvent(fmt.Sprintf("evt_um%d", i), o, "unpaid", tt.mutate)
		if diff := cmp.Diff(orders.ApplyResult{Stored: orders.OutcomeUnmatched}, mustHandle(t, svc, ev)); diff != "" {
			t.Errorf("%s: ApplyResult mismatch (-want +got):\n%s", tt.name, diff)
		}
		if res := mustHandle(t, svc, ev); !res.Duplicate {
			t.Errorf("%s: second apply: got duplicate false, want true: the event was not stored", tt.name)
		}
	}
	if diff := cmp.Diff(o, mustOrder(t, s, o.ID)); diff != "" {
		t.Errorf("unmatched events changed the order (-want +got):\n%s", diff)
	}
}

func testUnhandled(t *testing.T, s orders.Store) {
	svc := NewService(s, NewClock())
	o := NewOrder("ord_unh")
	Seed(t, s, o)
	before := mustOrder(t, s, o.ID)
	ev := EventFor("evt_unh", "customer.created", o)
	if res := mustHandle(t, svc, ev); res.Duplicate || res.Outcome() != orders.OutcomeIgnored {
		t.Errorf("got duplicate %v, outcome %q; want false, ignored", res.Duplicate, res.Outcome())
	}
	if res := mustHandle(t, svc, ev); !res.Duplicate {
		t.Error("second apply: got duplicate false, want true: the event was not stored")
	}
	if diff := cmp.Diff(before, mustOrder(t, s, o.ID)); diff != "" {
		t.Errorf("an unhandled event changed the order (-before +after):\n%s", diff)
	}
}

func testClientReferenceID(t *testing.T, s orders.Store) {
	svc := NewService(s, NewClock())
	o := NewOrder("ord_ref")
	o.SessionID = ""
	Seed(t, s, o)
	withSession := func(s *orders.Session) { s.ID = "cs_late" }
	res := mustHandle(t, svc, CompletedEvent("evt_ref1", o, "unpaid", withSession))
	if !res.Matched || res.Order.Status != orders.StatusProcessing || res.Order.SessionID != "cs_late" {
		t.Errorf("got matched %v, status %q, session %q; want true, processing, cs_late",
			res.Matched, res.Order.Status, res.Order.SessionID)
	}
	got, err := s.OrderBySession(t.Context(), "cs_late")
	if err != nil || got.ID != o.ID {
		t.Fatalf("OrderBySession(cs_late) = %q, %v; want %q", got.ID, err, o.ID)
	}
	// A later event names only the session, now recorded.
	ev := EventFor("evt_ref2", orders.EventAsyncPaymentSucceeded, o, withSession, func(s *orders.Session) { s.OrderID = "" })
	if res := mustHandle(t, svc, ev); !res.Matched || res.Order.Status != orders.StatusPaid {
		t.Errorf("by session: got matched %v, status %q; want true, paid", res.Matched, res.Order.Status)
	}
	// An event the shop does not act on never binds a session.
	other := NewOrder("ord_ref_other")
	other.SessionID = ""
	Seed(t, s, other)
	mustHandle(t, svc, EventFor("evt_ref3", "checkout.session.something_new", other, func(s *orders.Session) { s.ID = "cs_nobind" }))
	if got := mustOrder(t, s, other.ID); got.SessionID != "" {
		t.Errorf("an unhandled event bound session %q, want none", got.SessionID)
	}
}

func testSyncSession(t *testing.T, s orders.Store) {
	ctx := t.Context()
	svc := NewService(s, NewClock())
	o := NewOrder("ord_rec")
	Seed(t, s, o)
	before := mustOrder(t, s, o.ID)
	open := CompletedEvent("", o, "unpaid", func(s *orders.Session) { s.Status, s.Email = "open", "" }).Session
	got, err := svc.SyncSession(ctx, open)
	if err != nil {
		t.Fatalf("SyncSession(open): %v", err)
	}
	if diff := cmp.Diff(before, got); diff != "" {
		t.Errorf("SyncSession(open) changed the order (-before +after):\n%s", diff)
	}
	got, err = svc.SyncSession(ctx, CompletedEvent("", o, "paid").Session)
	if err != nil {
		t.Fatalf("SyncSession(paid): %v", err)
	}
	if got.Status != orders.StatusPaid || got.PaidAt == nil || got.FulfilledAt == nil {
		t.Errorf("SyncSession(paid): got status %q, paid %v, fulfilled %v; want paid, set, set", got.Status, got.PaidAt, got.FulfilledAt)
	}
	if diff := cmp.Diff(mustOrder(t, s, o.ID), got); diff != "" {
		t.Errorf("SyncSession result differs from the stored order (-stored +result):\n%s", diff)
	}
	unknown := orders.Session{ID: "cs_unknown", Status: "complete", PaymentStatus: "paid"}
	if _, err := svc.SyncSession(ctx, unknown); !errors.Is(err, orders.ErrNotFound) {
		t.Errorf("SyncSession(unknown): got error %v, want orders.ErrNotFound", err)
	}

	// A session never recorded is found by its client_reference_id, and recorded.
	late := NewOrder("ord_rec_late")
	late.SessionID = ""
	Seed(t, s, late)
	sess := CompletedEvent("", late, "paid").Session
	sess.ID = "cs_rec_late"
	if got, err := svc.SyncSession(ctx, sess); err != nil || got.Status != orders.StatusPaid || got.SessionID != sess.ID {
		t.Errorf("SyncSession(late) = status %q, session %q, %v; want paid, %s, nil", got.Status, got.SessionID, err, sess.ID)
	}
}

// testFulfilmentIsOneWrite checks that the write recording the payment also
// records the fulfilment and queues its notifications, with bodies that name
// the notification and carry the order as recorded.
func testFulfilmentIsOneWrite(t *testing.T, s orders.Store) {
	clock := NewClock()
	svc := NewService(s, clock)
	o := NewOrder("ord_onewrite")
	Seed(t, s, o)
	res := mustHandle(t, svc, CompletedEvent("evt_onewrite", o, "paid"))
	stored := mustOrder(t, s, o.ID)
	if stored.FulfilledAt == nil || !stored.FulfilledAt.Equal(*stored.PaidAt) {
		t.Fatalf("got fulfilled %v, paid %v; want fulfilled in the write that paid", stored.FulfilledAt, stored.PaidAt)
	}
	ns := mustNotifications(t, s, o.ID)
	channels := map[orders.Channel]string{}
	for _, n := range ns {
		channels[n.Channel] = n.Recipient
		if n.Type != orders.NotifyOrderPaid || n.Status != orders.NotificationPending || n.Attempts != 0 ||
			n.NextAttempt == nil || !n.NextAttempt.Equal(clock.Want()) || !n.Deadline.Equal(clock.Want().Add(orders.RetryFor)) {
			t.Errorf("notification %+v: want a pending order.paid due now, retried for %v", n, orders.RetryFor)
		}
		var body orders.WebhookBody
		if err := json.Unmarshal(n.Payload, &body); err != nil {
			t.Fatalf("payload of %s: %v", n.ID, err)
		}
		if body.ID != n.ID || body.Type != n.Type || body.Created != clock.Want().Unix() {
			t.Errorf("payload names %q %q created %d, want %q %q %d", body.ID, body.Type, body.Created, n.ID, n.Type, clock.Want().Unix())
		}
		if diff := cmp.Diff(res.Order, body.Data.Order, cmpopts.IgnoreFields(orders.Order{}, "Version", "Payment", "RefundsAsOf"), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("payload order differs from the recorded one (-recorded +payload):\n%s", diff)
		}
	}
	want := map[orders.Channel]string{orders.ChannelWebhook: "", orders.ChannelEmailCustomer: Email, orders.ChannelEmailOwner: OwnerEmail}
	if diff := cmp.Diff(want, channels); diff != "" {
		t.Errorf("queued channels mismatch (-want +got):\n%s", diff)
	}
	// Without channels, fulfilment is the record alone.
	plain := NewOrder("ord_plain")
	Seed(t, s, plain)
	quiet := NewService(s, clock, orders.WithChannels(orders.Channels{}))
	if got := mustHandle(t, quiet, CompletedEvent("evt_plain", plain, "paid")).Order; got.FulfilledAt == nil {
		t.Error("without channels the order was not fulfilled")
	}
	if n := len(mustNotifications(t, s, plain.ID)); n != 0 {
		t.Errorf("without channels: %d notifications, want 0", n)
	}
}

// testFulfilOnceAcrossPaths races every path that can fulfil an order.
func testFulfilOnceAcrossPaths(t *testing.T, s orders.Store) {
	var fulfilments, queued atomic.Int32
	svc := NewService(s, NewClock(),
		orders.OnFulfilled(func(orders.Order) { fulfilments.Add(1) }), orders.OnQueued(func() { queued.Add(1) }))
	o := NewOrder("ord_race")
	Seed(t, s, o)
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Go(func() {
			var err error
			switch i % 3 {
			case 0:
				_, err = svc.HandleEvent(t.Context(), CompletedEvent("evt_race", o, "paid"))
			case 1:
				_, err = svc.SyncSession(t.Context(), CompletedEvent("", o, "paid").Session)
			case 2:
				_, err = svc.FulfilPending(t.Context())
			}
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if f, q := fulfilments.Load(), queued.Load(); f != 1 || q != 1 {
		t.Errorf("got %d fulfilments and %d wake-ups, want 1 and 1", f, q)
	}
	if n := len(mustNotifications(t, s, o.ID)); n != 3 {
		t.Errorf("got %d notifications, want 3", n)
	}
}

// testRedeliveryCompletesFulfilment starts from an order paid but never
// fulfilled (as a shop before the outbox could leave one): the next
// redelivery, success-page read or sweep completes it, once.
func testRedeliveryCompletesFulfilment(t *testing.T, s orders.Store) {
	svc := NewService(s, NewClock())
	paidAt := at(time.Minute)
	for i, path := range []string{"redelivery", "success page", "sweep"} {
		o := NewOrder(fmt.Sprintf("ord_left%d", i))
		o.Status, o.Payment, o.PaidAt, o.Email = orders.StatusPaid, orders.StatusPaid, &paidAt, Email
		Seed(t, s, o)
		ev := CompletedEvent("evt_left_"+o.ID, o, "paid")
		write(t, s, func(ctx context.Context, tx orders.Tx) error {
			_, err := tx.InsertEvent(ctx, orders.EventRecord{ID: ev.ID, Type: ev.Type, OrderID: o.ID, Outcome: orders.OutcomeApplied, Created: at(0), Received: at(0)})
			return err
		})
		switch path {
		case "redelivery":
			if res := mustHandle(t, svc, ev); !res.Duplicate {
				t.Errorf("%s: got duplicate false, want true", path)
			}
		case "success page":
			if _, err := svc.SyncSession(t.Context(), ev.Session); err != nil {
				t.Fatal(err)
			}
		case "sweep":
			if n, err := svc.FulfilPending(t.Context()); err != nil || n != 1 {
				t.Errorf("%s: FulfilPending = %d, %v; want 1", path, n, err)
			}
		}
		if got := mustOrder(t, s, o.ID); got.FulfilledAt == nil {
			t.Errorf("%s: the order is still unfulfilled", path)
		}
		if n := len(mustNotifications(t, s, o.ID)); n != 3 {
			t.Errorf("%s: %d notifications, want 3", path, n)
		}
		mustHandle(t, svc, ev)
		if n := len(mustNotifications(t, s, o.ID)); n != 3 {
			t.Errorf("%s: after another redelivery %d notifications, want still 3", path, n)
		}
	}
}

func testDeliveryRecords(t *testing.T, s orders.Store) {
	ctx := t.Context()
	clock := NewClock()
	svc := NewService(s, clock, orders.WithChannels(orders.Channels{Webhook: true}))
	o := NewOrder("ord_deliver")
	Seed(t, s, o)
	mustHandle(t, svc, CompletedEvent("evt_deliver", o, "paid"))
	claim := func() []orders.Notification {
		t.Helper()
		ns, err := svc.ClaimNotifications(ctx, "me", 10, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return ns
	}
	ns := claim()
	if len(ns) != 1 {
		t.Fatalf("claimed %d, want 1", len(ns))
	}
	id := ns[0].ID
	// Failures back off: 1 s, 2 s, 4 s...
	for attempt := 1; attempt <= 3; attempt++ {
		got, err := svc.RecordDeliveries(ctx, []orders.Delivery{{ID: id, Err: fmt.Errorf("receiver answered 500 (%d)", attempt)}})
		if err != nil || len(got) != 1 {
			t.Fatalf("RecordDeliveries = %v, %v", got, err)
		}
		wait := orders.RetryWait(attempt)
		if n := got[0]; n.Attempts != attempt || n.Status != orders.NotificationPending || n.ClaimedBy != "" ||
			!n.NextAttempt.Equal(clock.Want().Add(wait)) || n.LastError == "" {
			t.Errorf("after failure %d: got %+v, want pending, next attempt in %v", attempt, n, wait)
		}
		if len(claim()) != 0 {
			t.Errorf("after failure %d: claimed before it was due", attempt)
		}
		clock.Advance(wait)
		if len(claim()) != 1 {
			t.Errorf("after failure %d: not claimable once due", attempt)
		}
	}
	got, err := svc.RecordDeliveries(ctx, []orders.Delivery{{ID: id}})
	if err != nil || len(got) != 1 || got[0].Status != orders.NotificationDelivered || got[0].DeliveredAt == nil || got[0].Attempts != 4 {
		t.Fatalf("after delivery got %+v, %v; want delivered after 4 attempts", got, err)
	}
	if again, _ := svc.RecordDeliveries(ctx, []orders.Delivery{{ID: id, Err: errors.New("late failure")}}); len(again) != 0 {
		t.Errorf("a failure recorded after delivery changed %d notifications, want 0", len(again))
	}
	if st, err := svc.OutboxStats(ctx); err != nil || st.Pending != 0 {
		t.Errorf("OutboxStats = %+v, %v; want nothing pending", st, err)
	}
}

func testRequeue(t *testing.T, s orders.Store) {
	ctx := t.Context()
	clock := NewClock()
	var queued atomic.Int32
	svc := NewService(s, clock, orders.WithChannels(orders.Channels{Webhook: true}), orders.OnQueued(func() { queued.Add(1) }))
	o := NewOrder("ord_dead")
	Seed(t, s, o)
	mustHandle(t, svc, CompletedEvent("evt_dead", o, "paid"))
	id := mustNotifications(t, s, o.ID)[0].ID
	if _, err := svc.Requeue(ctx, id); !errors.Is(err, orders.ErrNotDead) {
		t.Errorf("Requeue of a pending notification: got %v, want orders.ErrNotDead", err)
	}
	// Fail until the deadline passes: RetryFor after queuing, it is dead.
	var last orders.Notification
	for attempt := 1; last.Status != orders.NotificationDead; attempt++ {
		got, err := svc.RecordDeliveries(ctx, []orders.Delivery{{ID: id, Err: errors.New("refused")}})
		if err != nil || len(got) != 1 {
			t.Fatalf("RecordDeliveries: %v, %v", got, err)
		}
		last = got[0]
		if last.Status == orders.NotificationPending {
			clock.Advance(last.NextAttempt.Sub(clock.Want()))
		}
		if attempt > 200 {
			t.Fatal("never died")
		}
	}
	if elapsed := clock.Want().Sub(last.CreatedAt); elapsed > orders.RetryFor || elapsed < orders.RetryFor-orders.MaxRetryWait {
		t.Errorf("dead after %v, want within the last retry wait before %v", elapsed, orders.RetryFor)
	}
	if st, err := svc.OutboxStats(ctx); err != nil || st.Dead != 1 || st.Pending != 0 {
		t.Errorf("OutboxStats = %+v, %v; want 1 dead", st, err)
	}
	before := queued.Load()
	n, err := svc.Requeue(ctx, id)
	if err != nil || n.Status != orders.NotificationPending || !n.NextAttempt.Equal(clock.Want()) || !n.Deadline.Equal(clock.Want().Add(orders.RetryFor)) {
		t.Fatalf("Requeue = %+v, %v; want pending now with a fresh deadline", n, err)
	}
	if queued.Load() != before+1 {
		t.Error("Requeue did not wake the dispatcher")
	}
	if _, err := svc.Requeue(ctx, "ntf_missing"); !errors.Is(err, orders.ErrNotFound) {
		t.Errorf("Requeue(missing): got %v, want orders.ErrNotFound", err)
	}
}

func testSecret(t *testing.T, s orders.Store) {
	a := NewService(s, NewClock())
	b := NewService(s, NewClock())
	k1, err := a.Secret(t.Context(), "order-page")
	if err != nil || len(k1) != 32 {
		t.Fatalf("Secret = %x, %v; want 32 bytes", k1, err)
	}
	k2, err := b.Secret(t.Context(), "order-page")
	if err != nil || !cmp.Equal(k1, k2) {
		t.Errorf("a second Service got %x, %v; want the first one's %x", k2, err, k1)
	}
	if k3, _ := a.Secret(t.Context(), "other"); cmp.Equal(k1, k3) {
		t.Error("two secret names share one value")
	}
}

// mustHandle applies ev through the Service or fails the test.
func mustHandle(t testing.TB, svc *orders.Service, ev orders.Event) orders.ApplyResult {
	t.Helper()
	res, err := svc.HandleEvent(t.Context(), ev)
	if err != nil {
		t.Fatalf("HandleEvent(%s): %v", ev.ID, err)
	}
	return res
}

func one(f func(orders.Order) orders.Event) func(orders.Order) []orders.Event {
	return func(o orders.Order) []orders.Event { return []orders.Event{f(o)} }
}

// permutations returns every ordering of xs, xs itself first.
func permutations[T any](xs []T) [][]T {
	if len(xs) <= 1 {
		return [][]T{append([]T(nil), xs...)}
	}
	var out [][]T
	for i := range xs {
		rest := append(append([]T(nil), xs[:i]...), xs[i+1:]...)
		for _, p := range permutations(rest) {
			out = append(out, append([]T{xs[i]}, p...))
		}
	}
	return out
}

// testSignedEvents runs signed bodies through HandleSigned: readable events
// are applied, the other mode's are stored and not applied, and unreadable
// ones are stored raw with an alarm, once.
func testSignedEvents(t *testing.T, s orders.Store) {
	ctx := t.Context()
	clock := NewClock()
	var alarms atomic.Int32
	svc := NewService(s, clock, orders.OnAlarm(func(orders.Alarm) { alarms.Add(1) }))
	o := NewOrder("ord_signed")
	Seed(t, s, o)
	now := clock.Now().Unix()
	body := func(id string, created int64, livemode bool, object string) []byte {
		return fmt.Appendf(nil, `{"id":%q,"object":"event","created":%d,"livemode":%v,"type":"checkout.session.completed","data":{"object":%s}}`,
			id, created, livemode, object)
	}
	session := fmt.Sprintf(`{"id":%q,"object":"checkout.session","status":"complete","payment_status":"paid","amount_total":4000,"currency":"usd","client_reference_id":%q}`, o.SessionID, o.ID)

	for _, tt := range []struct {
		name, id string
		body     []byte
		want     string
	}{
		{"other mode", "evt_live", body("evt_live", now, true, session), orders.OutcomeWrongMode},
		{"null object", "evt_null", body("evt_null", now, false, "null"), orders.OutcomeUnreadable},
		{"too old", "evt_old", body("evt_old", now-int64(orders.MaxEventAge/time.Second)-60, false, session), orders.OutcomeUnreadable},
		{"from the future", "evt_future", body("evt_future", now+int64(orders.MaxEventFuture/time.Second)+60, false, session), orders.OutcomeUnreadable},
	} {
		ev, res, err := svc.HandleSigned(ctx, tt.body)
		if err != nil || res.Outcome() != tt.want || ev.ID != tt.id {
			t.Errorf("%s: got %q, %q, %v; want %q, %q", tt.name, ev.ID, res.Outcome(), err, tt.id, tt.want)
		}
		if _, res, _ := svc.HandleSigned(ctx, tt.body); !res.Duplicate {
			t.Errorf("%s, again: got %q, want a duplicate", tt.name, res.Outcome())
		}
	}
	if got := mustOrder(t, s, o.ID); got.Status != orders.StatusPending {
		t.Errorf("the order is %s after events that must not apply, want pending", got.Status)
	}
	list, err := svc.Alarms(ctx, orders.AlarmFilter{Open: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || alarms.Load() != 3 {
		t.Errorf("%d alarms stored and %d announced, want 3 and 3 (one per unreadable event)", len(list), alarms.Load())
	}
	for _, a := range list {
		if a.Kind != orders.AlarmUnreadableEvent || a.Detail == "" || !a.CreatedAt.Equal(clock.Want()) {
			t.Errorf("alarm %+v: want an unreadable_event raised now, with a detail", a)
		}
	}
	// A readable event of the shop's mode is applied.
	if _, res, err := svc.HandleSigned(ctx, body("evt_good", now, false, session)); err != nil || res.Order.Status != orders.StatusPaid {
		t.Errorf("readable event: %+v, %v; want the order paid", res, err)
	}
	// A live shop does the reverse.
	liveSvc := NewService(s, clock, orders.WithLiveMode(true))
	other := NewOrder("ord_signed_live")
	Seed(t, s, other)
	liveSession := fmt.Sprintf(`{"id":%q,"object":"checkout.session","status":"complete","payment_status":"paid","amount_total":4000,"currency":"usd"}`, other.SessionID)
	if _, res, err := liveSvc.HandleSigned(ctx, body("evt_test_at_live", now, false, liveSession)); err != nil || res.Outcome() != orders.OutcomeWrongMode {
		t.Errorf("test event at a live shop: %q, %v; want wrong_mode", res.Outcome(), err)
	}
	if _, res, err := liveSvc.HandleSigned(ctx, body("evt_live_at_live", now, true, liveSession)); err != nil || res.Order.Status != orders.StatusPaid {
		t.Errorf("live event at a live shop: %+v, %v; want applied", res, err)
	}
}
