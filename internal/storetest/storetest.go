package storetest

import (
	"context"
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

// Run runs the conformance suite. open returns a fresh, empty, migrated store
// and registers its cleanup with t.
//
// Beyond the doc comments of orders.Store, the suite expects a store to keep
// the CreatedAt it is given (to the microsecond), so that ordering can be
// tested, and reads "oldest first" in Unfulfilled as "oldest order first".
func Run(t *testing.T, open func(t testing.TB) orders.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, orders.Store)
	}{
		{"CreateAndGet", testCreateAndGet},
		{"SetSession", testSetSession},
		{"ListOrders", testListOrders},
		{"ListLimits", testListLimits},
		{"Lifecycle", testLifecycle},
		{"ArrivalOrder", testArrivalOrder},
		{"PaidIsFinal", testPaidIsFinal},
		{"Mismatch", testMismatch},
		{"DuplicateEvent", testDuplicateEvent},
		{"SequentialDuplicates", testSequentialDuplicates},
		{"ConcurrentDuplicates", testConcurrentDuplicates},
		{"ConcurrentDistinct", testConcurrentDistinct},
		{"Unmatched", testUnmatched},
		{"Unhandled", testUnhandled},
		{"ClientReferenceID", testClientReferenceID},
		{"Reconcile", testReconcile},
		{"Fulfil", testFulfil},
		{"ConcurrentFulfil", testConcurrentFulfil},
		{"Unfulfilled", testUnfulfilled},
		{"Ping", testPing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
	}
}

// Clock checks that a store records created, updated, paid and fulfilled
// times from the clock it was opened with, and returns them in UTC to the
// microsecond. open returns a fresh store using now as its clock.
func Clock(t *testing.T, open func(t testing.TB, now func() time.Time) orders.Store) {
	ctx := t.Context()
	var mu sync.Mutex
	now := time.Date(2025, 6, 7, 8, 9, 10, 123456789, time.FixedZone("UTC+5", 5*60*60))
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func() { mu.Lock(); defer mu.Unlock(); now = now.Add(time.Minute) }
	want := func() time.Time { return clock().UTC().Truncate(time.Microsecond) }
	s := open(t, clock)

	o := NewOrder("ord_clock")
	if err := s.CreateOrder(ctx, o); err != nil {
		t.Fatal(err)
	}
	created := want()
	advance()
	if _, err := s.ApplyEvent(ctx, CompletedEvent("evt_clock", o, "paid")); err != nil {
		t.Fatal(err)
	}
	paid := want()
	advance()
	if _, err := s.Fulfil(ctx, o.ID, func(context.Context, orders.Order) error { return nil }); err != nil {
		t.Fatal(err)
	}
	fulfilled := want()

	got := mustOrder(t, s, o.ID)
	for _, tt := range []struct {
		name      string
		got, want *time.Time
	}{
		{"CreatedAt", &got.CreatedAt, &created},
		{"UpdatedAt", &got.UpdatedAt, &paid},
		{"PaidAt", got.PaidAt, &paid},
		{"FulfilledAt", got.FulfilledAt, &fulfilled},
	} {
		if tt.got == nil || !tt.got.Equal(*tt.want) || tt.got.Location() != time.UTC {
			t.Errorf("%s: got %v, want %v in UTC", tt.name, tt.got, *tt.want)
		}
	}
}

// testListLimits checks orders.DefaultListLimit and orders.MaxListLimit.
func testListLimits(t *testing.T, s orders.Store) {
	ctx := t.Context()
	const n = orders.MaxListLimit + 1
	ids := make(chan int, n)
	for i := range n {
		ids <- i
	}
	close(ids)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range ids {
				o := NewOrder(fmt.Sprintf("ord_limit_%04d", i))
				o.SessionID, o.CreatedAt = "", at(time.Duration(i)*time.Second)
				if err := s.CreateOrder(ctx, o); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, tt := range []struct{ limit, want int }{
		{0, orders.DefaultListLimit}, {-1, orders.DefaultListLimit}, {5, 5},
		{orders.MaxListLimit, orders.MaxListLimit}, {5 * orders.MaxListLimit, orders.MaxListLimit},
	} {
		list, err := s.ListOrders(ctx, orders.ListFilter{Limit: tt.limit})
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != tt.want {
			t.Errorf("limit %d: got %d orders, want %d", tt.limit, len(list), tt.want)
		}
	}
}

// at returns a creation time for the suite's orders, d after a fixed instant
// with microseconds, the precision stores must keep.
func at(d time.Duration) time.Time {
	return time.Date(2025, 3, 4, 5, 6, 7, 890123000, time.UTC).Add(d)
}

func testCreateAndGet(t *testing.T, s orders.Store) {
	ctx := t.Context()
	o := NewOrder("ord_get")
	o.Email, o.CreatedAt, o.UpdatedAt = "a@example.com", at(0), at(time.Second)
	mustCreate(t, s, o)
	if diff := cmp.Diff(o, mustOrder(t, s, o.ID)); diff != "" {
		t.Errorf("Order mismatch (-want +got):\n%s", diff)
	}
	got, err := s.OrderBySession(ctx, o.SessionID)
	if err != nil {
		t.Fatalf("OrderBySession: %v", err)
	}
	if diff := cmp.Diff(o, got); diff != "" {
		t.Errorf("OrderBySession mismatch (-want +got):\n%s", diff)
	}

	// A store sets the times it is not given, in UTC.
	bare := NewOrder("ord_bare")
	bare.SessionID = ""
	mustCreate(t, s, bare)
	got = mustOrder(t, s, bare.ID)
	if got.CreatedAt.IsZero() || got.CreatedAt.Location() != time.UTC || !got.UpdatedAt.Equal(got.CreatedAt) {
		t.Errorf("CreatedAt, UpdatedAt = %v, %v; want the same non-zero UTC time", got.CreatedAt, got.UpdatedAt)
	}
	if got.SessionID != "" || got.PaidAt != nil || got.FulfilledAt != nil {
		t.Errorf("got session %q, paid %v, fulfilled %v; want none", got.SessionID, got.PaidAt, got.FulfilledAt)
	}

	for name, err := range map[string]error{
		"Order(missing)":        second(s.Order(ctx, "ord_missing")),
		"OrderBySession(miss)":  second(s.OrderBySession(ctx, "cs_missing")),
		"OrderBySession(empty)": second(s.OrderBySession(ctx, "")),
	} {
		if !errors.Is(err, orders.ErrNotFound) {
			t.Errorf("%s: got error %v, want orders.ErrNotFound", name, err)
		}
	}
	if err := s.CreateOrder(ctx, NewOrder(o.ID)); !errors.Is(err, orders.ErrDuplicate) {
		t.Errorf("CreateOrder with a duplicate id: got %v, want orders.ErrDuplicate", err)
	}
	bad := NewOrder("ord_bad")
	bad.Status = "shipped"
	if err := s.CreateOrder(ctx, bad); err == nil {
		t.Error("CreateOrder with an invalid status: got nil error, want one")
	}
}

func testSetSession(t *testing.T, s orders.Store) {
	ctx := t.Context()
	o := NewOrder("ord_set")
	o.SessionID = ""
	mustCreate(t, s, o)
	if err := s.SetSession(ctx, o.ID, "cs_1"); err != nil {
		t.Fatalf("SetSession: %v", err)
	}
	if err := s.SetSession(ctx, o.ID, "cs_1"); err != nil {
		t.Errorf("SetSession with the same session: %v", err)
	}
	if err := s.SetSession(ctx, o.ID, "cs_2"); err == nil {
		t.Error("SetSession with another session: got nil error, want one")
	}
	got, err := s.OrderBySession(ctx, "cs_1")
	if err != nil || got.ID != o.ID {
		t.Errorf("OrderBySession(cs_1) = %q, %v; want %q", got.ID, err, o.ID)
	}
	if err := s.SetSession(ctx, "ord_missing", "cs_3"); !errors.Is(err, orders.ErrNotFound) {
		t.Errorf("SetSession on a missing order: got error %v, want orders.ErrNotFound", err)
	}
	other := NewOrder("ord_other")
	other.SessionID = ""
	mustCreate(t, s, other)
	if err := s.SetSession(ctx, other.ID, "cs_1"); err == nil {
		t.Error("SetSession with another order's session: got nil error, want one")
	}
}

func testListOrders(t *testing.T, s orders.Store) {
	ctx := t.Context()
	statuses := []orders.Status{orders.StatusPending, orders.StatusPaid, orders.StatusPending, orders.StatusPaid, orders.StatusFailed}
	for i, st := range statuses {
		o := NewOrder(fmt.Sprintf("ord_list%d", i))
		o.Status, o.CreatedAt = st, at(time.Duration(i)*time.Minute)
		mustCreate(t, s, o)
	}
	tie := NewOrder("ord_list9") // same time as ord_list4: the greater id comes first
	tie.CreatedAt = at(4 * time.Minute)
	mustCreate(t, s, tie)

	for _, tt := range []struct {
		filter orders.ListFilter
		want   []string
	}{
		{orders.ListFilter{}, []string{"ord_list9", "ord_list4", "ord_list3", "ord_list2", "ord_list1", "ord_list0"}},
		{orders.ListFilter{Status: orders.StatusPaid}, []string{"ord_list3", "ord_list1"}},
		{orders.ListFilter{Status: orders.StatusExpired}, nil},
		{orders.ListFilter{Limit: 2}, []string{"ord_list9", "ord_list4"}},
		{orders.ListFilter{Status: orders.StatusPending, Limit: 1}, []string{"ord_list9"}},
	} {
		list, err := s.ListOrders(ctx, tt.filter)
		if err != nil {
			t.Fatalf("ListOrders(%+v): %v", tt.filter, err)
		}
		if diff := cmp.Diff(tt.want, ids(list), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("ListOrders(%+v) mismatch (-want +got):\n%s", tt.filter, diff)
		}
	}
}

func testLifecycle(t *testing.T, s orders.Store) {
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
		mustCreate(t, s, o)
		for _, ev := range tt.events(o) {
			ev.ID += "_" + o.ID
			before := mustOrder(t, s, o.ID)
			res := mustApply(t, s, ev)
			if !res.Matched || res.Duplicate || res.Previous != before.Status {
				t.Errorf("%s: %s: got matched %v, duplicate %v, previous %q; want true, false, %q",
					tt.name, ev.Type, res.Matched, res.Duplicate, res.Previous, before.Status)
			}
			if diff := cmp.Diff(mustOrder(t, s, o.ID), res.Order); diff != "" {
				t.Errorf("%s: %s: ApplyResult.Order differs from the stored order (-stored +result):\n%s", tt.name, ev.Type, diff)
			}
		}
		got := mustOrder(t, s, o.ID)
		if got.Status != tt.want {
			t.Errorf("%s: got status %q, want %q", tt.name, got.Status, tt.want)
		}
		if paid := got.PaidAt != nil; paid != (tt.want == orders.StatusPaid) {
			t.Errorf("%s: got PaidAt %v, want it set only when paid", tt.name, got.PaidAt)
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
			mustCreate(t, s, o)
			for ei, ev := range perm {
				mustApply(t, s, ev(fmt.Sprintf("evt_%s_%d", o.ID, ei), o))
			}
			if got := mustOrder(t, s, o.ID).Status; got != set.want {
				t.Errorf("%s, permutation %d: got status %q, want %q", set.name, pi, got, set.want)
			}
		}
	}
}

func testPaidIsFinal(t *testing.T, s orders.Store) {
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
		mustCreate(t, s, o)
		paid := mustApply(t, s, CompletedEvent("evt_1_"+o.ID, o, "paid")).Order
		res := mustApply(t, s, ev(o))
		if diff := cmp.Diff(paid, res.Order); diff != "" {
			t.Errorf("paid, then %s: the order changed (-paid +after):\n%s", name, diff)
		}
		if diff := cmp.Diff(paid, mustOrder(t, s, o.ID)); diff != "" {
			t.Errorf("paid, then %s: the stored order changed (-paid +stored):\n%s", name, diff)
		}
	}
}

func testMismatch(t *testing.T, s orders.Store) {
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
		mustCreate(t, s, o)
		got := mustApply(t, s, CompletedEvent("evt_1_"+o.ID, o, "paid", tt.mutate)).Order
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
		mustApply(t, s, EventFor("evt_2_"+o.ID, orders.EventAsyncPaymentSucceeded, o))
		mustApply(t, s, CompletedEvent("evt_3_"+o.ID, o, "paid"))
		if _, err := s.Reconcile(t.Context(), CompletedEvent("", o, "paid").Session); err != nil {
			t.Fatalf("%s: Reconcile: %v", tt.name, err)
		}
		if after := mustOrder(t, s, o.ID); after.Status != orders.StatusNeedsReview || after.Review != got.Review || after.PaidAt != nil {
			t.Errorf("%s: after paid events got status %q, review %q, paid %v; want %q, %q, nil",
				tt.name, after.Status, after.Review, after.PaidAt, orders.StatusNeedsReview, got.Review)
		}
	}
}

func testDuplicateEvent(t *testing.T, s orders.Store) {
	o := NewOrder("ord_dup")
	mustCreate(t, s, o)
	first := mustApply(t, s, CompletedEvent("evt_dup", o, "unpaid"))
	// The same id with other content: still the same event, so ignored.
	res := mustApply(t, s, EventFor("evt_dup", orders.EventAsyncPaymentSucceeded, o))
	if diff := cmp.Diff(orders.ApplyResult{Duplicate: true}, res); diff != "" {
		t.Errorf("ApplyResult mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(first.Order, mustOrder(t, s, o.ID)); diff != "" {
		t.Errorf("a duplicate changed the order (-before +after):\n%s", diff)
	}
}

func testSequentialDuplicates(t *testing.T, s orders.Store) {
	o := NewOrder("ord_seq")
	mustCreate(t, s, o)
	ev := CompletedEvent("evt_seq", o, "paid")
	dups := 0
	for range 100 {
		if mustApply(t, s, ev).Duplicate {
			dups++
		}
	}
	if dups != 99 {
		t.Errorf("got %d duplicates, want 99", dups)
	}
	if got := mustOrder(t, s, o.ID).Status; got != orders.StatusPaid {
		t.Errorf("got status %q, want %q", got, orders.StatusPaid)
	}
}

func testConcurrentDuplicates(t *testing.T, s orders.Store) {
	o := NewOrder("ord_conc")
	mustCreate(t, s, o)
	ev := CompletedEvent("evt_conc", o, "paid")
	var applied atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			res, err := s.ApplyEvent(t.Context(), ev)
			if err != nil {
				t.Errorf("ApplyEvent: %v", err)
				return
			}
			if !res.Duplicate {
				applied.Add(1)
			}
		})
	}
	wg.Wait()
	if n := applied.Load(); n != 1 {
		t.Errorf("got %d applications, want 1", n)
	}
	if got := mustOrder(t, s, o.ID).Status; got != orders.StatusPaid {
		t.Errorf("got status %q, want %q", got, orders.StatusPaid)
	}
}

func testConcurrentDistinct(t *testing.T, s orders.Store) {
	var all []orders.Order
	for i := range 50 {
		o := NewOrder(fmt.Sprintf("ord_many%02d", i))
		mustCreate(t, s, o)
		all = append(all, o)
	}
	var wg sync.WaitGroup
	for _, o := range all {
		wg.Go(func() {
			res, err := s.ApplyEvent(t.Context(), CompletedEvent("evt_"+o.ID, o, "paid"))
			if err != nil {
				t.Errorf("ApplyEvent for %s: %v", o.ID, err)
				return
			}
			if res.Duplicate || !res.Matched || res.Order.Status != orders.StatusPaid {
				t.Errorf("%s: got duplicate %v, matched %v, status %q; want false, true, paid",
					o.ID, res.Duplicate, res.Matched, res.Order.Status)
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
	o := NewOrder("ord_um")
	mustCreate(t, s, o)
	tests := []struct {
		name   string
		mutate func(*orders.Session)
	}{
		{"unknown session, no order id", func(s *orders.Session) { s.ID, s.OrderID = "cs_unknown", "" }},
		{"unknown session and order", func(s *orders.Session) { s.ID, s.OrderID = "cs_unknown2", "ord_unknown" }},
		{"order of another session", func(s *orders.Session) { s.ID = "cs_other" }},
	}
	for i, tt := range tests {
		ev := CompletedEvent(fmt.Sprintf("evt_um%d", i), o, "paid", tt.mutate)
		if diff := cmp.Diff(orders.ApplyResult{}, mustApply(t, s, ev)); diff != "" {
			t.Errorf("%s: ApplyResult mismatch (-want +got):\n%s", tt.name, diff)
		}
		if res := mustApply(t, s, ev); !res.Duplicate {
			t.Errorf("%s: second apply: got duplicate false, want true: the event was not stored", tt.name)
		}
	}
	if diff := cmp.Diff(o, mustOrder(t, s, o.ID), cmpopts.IgnoreFields(orders.Order{}, "CreatedAt", "UpdatedAt")); diff != "" {
		t.Errorf("unmatched events changed the order (-want +got):\n%s", diff)
	}
}

func testUnhandled(t *testing.T, s orders.Store) {
	o := NewOrder("ord_unh")
	mustCreate(t, s, o)
	before := mustOrder(t, s, o.ID)
	ev := EventFor("evt_unh", "customer.created", o)
	if res := mustApply(t, s, ev); res.Duplicate {
		t.Error("got duplicate true, want false")
	}
	if res := mustApply(t, s, ev); !res.Duplicate {
		t.Error("second apply: got duplicate false, want true: the event was not stored")
	}
	if diff := cmp.Diff(before, mustOrder(t, s, o.ID)); diff != "" {
		t.Errorf("an unhandled event changed the order (-before +after):\n%s", diff)
	}
}

func testClientReferenceID(t *testing.T, s orders.Store) {
	o := NewOrder("ord_ref")
	o.SessionID = ""
	mustCreate(t, s, o)
	withSession := func(s *orders.Session) { s.ID = "cs_late" }
	res := mustApply(t, s, CompletedEvent("evt_ref1", o, "unpaid", withSession))
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
	if res := mustApply(t, s, ev); !res.Matched || res.Order.Status != orders.StatusPaid {
		t.Errorf("by session: got matched %v, status %q; want true, paid", res.Matched, res.Order.Status)
	}
}

func testReconcile(t *testing.T, s orders.Store) {
	ctx := t.Context()
	o := NewOrder("ord_rec")
	mustCreate(t, s, o)
	before := mustOrder(t, s, o.ID)
	open := CompletedEvent("", o, "unpaid", func(s *orders.Session) { s.Status, s.Email = "open", "" }).Session
	got, err := s.Reconcile(ctx, open)
	if err != nil {
		t.Fatalf("Reconcile(open): %v", err)
	}
	if diff := cmp.Diff(before, got); diff != "" {
		t.Errorf("Reconcile(open) changed the order (-before +after):\n%s", diff)
	}
	got, err = s.Reconcile(ctx, CompletedEvent("", o, "paid").Session)
	if err != nil {
		t.Fatalf("Reconcile(paid): %v", err)
	}
	if got.Status != orders.StatusPaid || got.PaidAt == nil {
		t.Errorf("Reconcile(paid): got status %q, paid %v; want paid, set", got.Status, got.PaidAt)
	}
	if diff := cmp.Diff(mustOrder(t, s, o.ID), got); diff != "" {
		t.Errorf("Reconcile result differs from the stored order (-stored +result):\n%s", diff)
	}
	unknown := orders.Session{ID: "cs_unknown", Status: "complete", PaymentStatus: "paid"}
	if _, err := s.Reconcile(ctx, unknown); !errors.Is(err, orders.ErrNotFound) {
		t.Errorf("Reconcile(unknown): got error %v, want orders.ErrNotFound", err)
	}

	// A session never recorded is found by its client_reference_id, and recorded.
	late := NewOrder("ord_rec_late")
	late.SessionID = ""
	mustCreate(t, s, late)
	sess := CompletedEvent("", late, "paid").Session
	sess.ID = "cs_rec_late"
	if got, err := s.Reconcile(ctx, sess); err != nil || got.Status != orders.StatusPaid || got.SessionID != sess.ID {
		t.Errorf("Reconcile(late) = status %q, session %q, %v; want paid, %s, nil", got.Status, got.SessionID, err, sess.ID)
	}
}

func testFulfil(t *testing.T, s orders.Store) {
	ctx := t.Context()
	o := NewOrder("ord_ful")
	mustCreate(t, s, o)
	calls := 0
	fn := func(_ context.Context, got orders.Order) error {
		calls++
		if got.ID != o.ID || got.Status != orders.StatusPaid {
			t.Errorf("fn got order %s in status %q, want %s, paid", got.ID, got.Status, o.ID)
		}
		return nil
	}
	if ok, err := s.Fulfil(ctx, o.ID, fn); ok || err != nil || calls != 0 {
		t.Errorf("Fulfil(pending) = %v, %v with %d calls; want false, nil, 0", ok, err, calls)
	}
	if _, err := s.Fulfil(ctx, "ord_missing", fn); !errors.Is(err, orders.ErrNotFound) {
		t.Errorf("Fulfil(missing): got error %v, want orders.ErrNotFound", err)
	}

	mustApply(t, s, CompletedEvent("evt_ful", o, "paid"))
	errBoom := errors.New("boom")
	ok, err := s.Fulfil(ctx, o.ID, func(context.Context, orders.Order) error { return errBoom })
	if ok || !errors.Is(err, errBoom) {
		t.Errorf("Fulfil with a failing fn = %v, %v; want false, %v", ok, err, errBoom)
	}
	if got := mustOrder(t, s, o.ID); got.FulfilledAt != nil {
		t.Errorf("after a failed fn got FulfilledAt %v, want nil", got.FulfilledAt)
	}

	if ok, err := s.Fulfil(ctx, o.ID, fn); !ok || err != nil || calls != 1 {
		t.Errorf("Fulfil(paid) = %v, %v with %d calls; want true, nil, 1", ok, err, calls)
	}
	if got := mustOrder(t, s, o.ID); got.FulfilledAt == nil || got.Status != orders.StatusPaid {
		t.Errorf("after Fulfil got status %q, FulfilledAt %v; want paid, set", got.Status, got.FulfilledAt)
	}
	if ok, err := s.Fulfil(ctx, o.ID, fn); ok || err != nil || calls != 1 {
		t.Errorf("second Fulfil = %v, %v with %d calls; want false, nil, 1", ok, err, calls)
	}
}

func testConcurrentFulfil(t *testing.T, s orders.Store) {
	o := NewOrder("ord_cful")
	mustCreate(t, s, o)
	mustApply(t, s, CompletedEvent("evt_cful", o, "paid"))
	var calls, fulfilled atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			ok, err := s.Fulfil(t.Context(), o.ID, func(context.Context, orders.Order) error {
				calls.Add(1)
				return nil
			})
			if err != nil {
				t.Errorf("Fulfil: %v", err)
			}
			if ok {
				fulfilled.Add(1)
			}
		})
	}
	wg.Wait()
	if c, f := calls.Load(), fulfilled.Load(); c != 1 || f != 1 {
		t.Errorf("got %d calls of fn and %d true results, want 1 and 1", c, f)
	}
}

func testUnfulfilled(t *testing.T, s orders.Store) {
	ctx := t.Context()
	var all []orders.Order
	for i := range 4 {
		o := NewOrder(fmt.Sprintf("ord_unf%d", i))
		o.CreatedAt = at(time.Duration(i) * time.Hour)
		mustCreate(t, s, o)
		all = append(all, o)
	}
	// Paid newest first, and ord_unf3 left pending.
	for _, o := range []orders.Order{all[2], all[1], all[0]} {
		mustApply(t, s, CompletedEvent("evt_"+o.ID, o, "paid"))
	}
	check := func(want ...string) {
		t.Helper()
		got, err := s.Unfulfilled(ctx)
		if err != nil {
			t.Fatalf("Unfulfilled: %v", err)
		}
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("Unfulfilled mismatch (-want +got):\n%s", diff)
		}
	}
	check("ord_unf0", "ord_unf1", "ord_unf2")
	if ok, err := s.Fulfil(ctx, "ord_unf1", func(context.Context, orders.Order) error { return nil }); !ok || err != nil {
		t.Fatalf("Fulfil = %v, %v; want true, nil", ok, err)
	}
	check("ord_unf0", "ord_unf2")
}

func testPing(t *testing.T, s orders.Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

// mustCreate creates o or fails the test.
func mustCreate(t testing.TB, s orders.Store, o orders.Order) {
	t.Helper()
	if err := s.CreateOrder(t.Context(), o); err != nil {
		t.Fatalf("CreateOrder(%s): %v", o.ID, err)
	}
}

// mustOrder returns the order with id or fails the test.
func mustOrder(t testing.TB, s orders.Store, id string) orders.Order {
	t.Helper()
	o, err := s.Order(t.Context(), id)
	if err != nil {
		t.Fatalf("Order(%s): %v", id, err)
	}
	return o
}

// mustApply applies ev or fails the test.
func mustApply(t testing.TB, s orders.Store, ev orders.Event) orders.ApplyResult {
	t.Helper()
	res, err := s.ApplyEvent(t.Context(), ev)
	if err != nil {
		t.Fatalf("ApplyEvent(%s): %v", ev.ID, err)
	}
	return res
}

func one(f func(orders.Order) orders.Event) func(orders.Order) []orders.Event {
	return func(o orders.Order) []orders.Event { return []orders.Event{f(o)} }
}

func second[T any](_ T, err error) error { return err }

func ids(list []orders.Order) []string {
	var out []string
	for _, o := range list {
		out = append(out, o.ID)
	}
	return out
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
