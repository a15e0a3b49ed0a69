package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/shopcheckout/shop/internal/orders"
)

// The back office's reads: filters, search, pages, an order's events and
// the sales sums, run over the store under test.

func testListFilters(t *testing.T, s orders.Store) {
	ctx := t.Context()
	mk := func(id string, minute int, st orders.Status, email, pi string) orders.Order {
		o := NewOrder(id)
		o.Status, o.Payment, o.CreatedAt, o.Email, o.PaymentIntentID = st, st, at(time.Duration(minute)*time.Minute), email, pi
		return o
	}
	Seed(t, s,
		mk("ord_f0", 0, orders.StatusPaid, "Jane.Doe@Example.com", "pi_f0"),
		mk("ord_f1", 10, orders.StatusPending, "", ""),
		mk("ord_f2", 20, orders.StatusPaid, "bob_smith@example.org", "pi_f2"),
		mk("ord_f3", 30, orders.StatusFailed, "bobXsmith@example.org", ""),
		mk("ord_f4", 40, orders.StatusPaid, "100%real@example.net", "pi_f4"),
	)
	// An email set after the order was placed is found too.
	err := s.Write(ctx, func(ctx context.Context, tx orders.Tx) error {
		o, err := tx.Order(ctx, "ord_f1")
		if err != nil {
			return err
		}
		o.Email = "late.payer@Example.com"
		return tx.UpdateOrder(ctx, &o)
	})
	if err != nil {
		t.Fatal(err)
	}
	// ...and one changed afterwards is found only by the new address.
	err = s.Write(ctx, func(ctx context.Context, tx orders.Tx) error {
		o, err := tx.Order(ctx, "ord_f3")
		if err != nil {
			return err
		}
		o.Email = "robert@example.org"
		return tx.UpdateOrder(ctx, &o)
	})
	if err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		name   string
		filter orders.ListFilter
		want   []string
	}{
		{"everything", orders.ListFilter{}, []string{"ord_f4", "ord_f3", "ord_f2", "ord_f1", "ord_f0"}},
		{"from", orders.ListFilter{From: at(20 * time.Minute)}, []string{"ord_f4", "ord_f3", "ord_f2"}},
		{"to is exclusive", orders.ListFilter{To: at(20 * time.Minute)}, []string{"ord_f1", "ord_f0"}},
		{"period and status", orders.ListFilter{From: at(time.Minute), To: at(45 * time.Minute), Status: orders.StatusPaid}, []string{"ord_f4", "ord_f2"}},
		{"order id", orders.ListFilter{Query: "ord_f2"}, []string{"ord_f2"}},
		{"session id", orders.ListFilter{Query: "cs_ord_f3"}, []string{"ord_f3"}},
		{"payment intent", orders.ListFilter{Query: "pi_f4"}, []string{"ord_f4"}},
		{"part of an id finds nothing", orders.ListFilter{Query: "ord_f"}, nil},
		{"email, any case", orders.ListFilter{Query: "jane.doe@EXAMPLE.COM"}, []string{"ord_f0"}},
		{"part of an email", orders.ListFilter{Query: "doe@exa"}, []string{"ord_f0"}},
		{"the domain", orders.ListFilter{Query: "example.org"}, []string{"ord_f3", "ord_f2"}},
		{"underscore is a letter", orders.ListFilter{Query: "bob_smith"}, []string{"ord_f2"}},
		{"percent is a letter", orders.ListFilter{Query: "100%real"}, []string{"ord_f4"}},
		{"percent alone", orders.ListFilter{Query: "%"}, []string{"ord_f4"}},
		{"two letters", orders.ListFilter{Query: "Xs"}, nil},
		{"an email set later", orders.ListFilter{Query: "late.payer"}, []string{"ord_f1"}},
		{"the new email", orders.ListFilter{Query: "robert"}, []string{"ord_f3"}},
		{"not the old email", orders.ListFilter{Query: "bobXsmith"}, nil},
		{"search and status", orders.ListFilter{Query: "example", Status: orders.StatusPaid}, []string{"ord_f4", "ord_f2", "ord_f0"}},
		{"search and limit", orders.ListFilter{Query: "example", Limit: 2}, []string{"ord_f4", "ord_f3"}},
		{"no match", orders.ListFilter{Query: "nobody@nowhere"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			list, err := s.ListOrders(ctx, tt.filter)
			if err != nil {
				t.Fatalf("ListOrders(%+v): %v", tt.filter, err)
			}
			if diff := cmp.Diff(tt.want, ids(list), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ListOrders(%+v) mismatch (-want +got):\n%s", tt.filter, diff)
			}
		})
	}
}

// testPages walks the list a page at a time while new orders keep coming:
// every order that was there when the walk began is seen exactly once, in
// order, and none placed during the walk is seen.
func testPages(t *testing.T, s orders.Store) {
	ctx := t.Context()
	var first []orders.Order
	for i := range 95 {
		o := NewOrder(fmt.Sprintf("ord_pg%03d", i))
		o.SessionID = ""
		o.CreatedAt = at(time.Duration(i/3) * time.Second) // three at each instant
		first = append(first, o)
	}
	Seed(t, s, first...)
	svc := NewService(s, NewClock())

	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { // newer orders placed while the walk goes on
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			o := NewOrder(fmt.Sprintf("ord_pgnew%04d", i))
			o.SessionID, o.CreatedAt = "", at(time.Hour+time.Duration(i)*time.Millisecond)
			err := s.Write(ctx, func(ctx context.Context, tx orders.Tx) error { return tx.InsertOrder(ctx, o) })
			if err != nil {
				done <- err
				return
			}
		}
	}()
	// The walk starts below the newest order there was when it began.
	var seen []string
	top := orders.CursorOf(first[len(first)-1])
	top.CreatedAt = top.CreatedAt.Add(time.Microsecond)
	next := &top
	pages := 0
	for next != nil {
		page, err := svc.ListOrders(ctx, orders.ListFilter{Limit: 10, After: next})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		seen = append(seen, ids(page.Orders)...)
		if page.Next != nil {
			// The cursor survives a trip through a URL.
			c, err := orders.ParseCursor(page.Next.String())
			if err != nil {
				t.Fatal(err)
			}
			page.Next = &c
		}
		next = page.Next
		if pages > 20 {
			t.Fatal("the walk does not end")
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Among orders of one instant, the greater id first.
	want := ids(sortedNewestFirst(first))
	if diff := cmp.Diff(want, seen); diff != "" {
		t.Errorf("the walk mismatch (-want +got):\n%s", diff)
	}
	if pages != 10 {
		t.Errorf("%d pages for 95 orders at 10 a page, want 10 (no empty last page)", pages)
	}

	// A page that ends the list exactly says there is no next one.
	page, err := svc.ListOrders(ctx, orders.ListFilter{Limit: 5, After: &top, From: first[90].CreatedAt})
	if err != nil || len(page.Orders) != 5 || page.Next != nil {
		t.Errorf("the last full page: %d orders, next %v, %v; want 5 and no next", len(page.Orders), page.Next, err)
	}
	for _, bad := range []string{"", "!!", "bm90LWEtY3Vyc29y", orders.Cursor{}.String()[:3]} {
		if _, err := orders.ParseCursor(bad); !errors.Is(err, orders.ErrRule) {
			t.Errorf("ParseCursor(%q): %v, want a refusal", bad, err)
		}
	}
}

// sortedNewestFirst orders list as ListOrders does.
func sortedNewestFirst(list []orders.Order) []orders.Order {
	out := append([]orders.Order(nil), list...)
	less := func(a, b orders.Order) bool {
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.After(b.CreatedAt)
		}
		return a.ID > b.ID
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && less(out[j], out[j-1]); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// testEachOrder reads more than a page's worth through EachOrder.
func testEachOrder(t *testing.T, s orders.Store) {
	const n = orders.MaxListLimit + 7
	batch := make([]orders.Order, 0, 200)
	for i := range n {
		o := NewOrder(fmt.Sprintf("ord_each_%04d", i))
		o.SessionID, o.CreatedAt = "", at(time.Duration(i/2)*time.Second)
		if i%3 == 0 {
			o.Status, o.Payment = orders.StatusPaid, orders.StatusPaid
		}
		batch = append(batch, o)
		if len(batch) == cap(batch) || i == n-1 {
			Seed(t, s, batch...)
			batch = batch[:0]
		}
	}
	svc := NewService(s, NewClock())
	count := func(f orders.ListFilter) (int, map[string]bool) {
		seen := map[string]bool{}
		var last *orders.Order
		err := svc.EachOrder(t.Context(), f, func(o orders.Order) error {
			if seen[o.ID] {
				t.Errorf("%s twice", o.ID)
			}
			if last != nil && (o.CreatedAt.After(last.CreatedAt) || (o.CreatedAt.Equal(last.CreatedAt) && o.ID > last.ID)) {
				t.Errorf("%s after %s: not newest first", o.ID, last.ID)
			}
			seen[o.ID], last = true, &o
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return len(seen), seen
	}
	if got, _ := count(orders.ListFilter{Limit: 3}); got != n {
		t.Errorf("EachOrder saw %d orders, want all %d whatever the limit", got, n)
	}
	if got, _ := count(orders.ListFilter{Status: orders.StatusPaid}); got != (n+2)/3 {
		t.Errorf("EachOrder(paid) saw %d orders, want %d", got, (n+2)/3)
	}
	stop := errors.New("enough")
	calls := 0
	err := svc.EachOrder(t.Context(), orders.ListFilter{}, func(orders.Order) error {
		calls++
		if calls == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 3 {
		t.Errorf("EachOrder after fn failed: %v after %d calls, want the error after 3", err, calls)
	}
}

func testOrderEvents(t *testing.T, s orders.Store) {
	svc := NewService(s, NewClock())
	o := NewOrder("ord_timeline")
	Seed(t, s, o, NewOrder("ord_other"))
	mustHandle(t, svc, CompletedEvent("evt_t1", o, "unpaid"))
	mustHandle(t, svc, EventFor("evt_t2", orders.EventAsyncPaymentSucceeded, o))
	mustHandle(t, svc, CompletedEvent("evt_t1", o, "unpaid")) // a duplicate: stored once
	mustHandle(t, svc, CompletedEvent("evt_other", NewOrder("ord_other"), "paid"))
	list, err := s.OrderEvents(t.Context(), o.ID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range list {
		got = append(got, e.ID+" "+e.Type+" "+e.Outcome)
		if e.Payload != nil || e.Received.IsZero() || e.Created.IsZero() || e.OrderID != o.ID {
			t.Errorf("event %s: payload %d bytes, received %v, created %v, order %q", e.ID, len(e.Payload), e.Received, e.Created, e.OrderID)
		}
	}
	want := []string{"evt_t1 checkout.session.completed applied", "evt_t2 checkout.session.async_payment_succeeded applied"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events mismatch (-want +got):\n%s", diff)
	}
	if list, err := s.OrderEvents(t.Context(), "ord_none"); err != nil || len(list) != 0 {
		t.Errorf("events of an unknown order: %v, %v; want none", list, err)
	}
}

func testSales(t *testing.T, s orders.Store) {
	paid := func(id string, d time.Duration, currency string, total, refunded int64) orders.Order {
		o := NewOrder(id)
		when := at(d)
		o.Status, o.Payment, o.PaidAt, o.Currency, o.AmountTotal, o.AmountPaid, o.AmountRefunded = orders.StatusPaid, orders.StatusPaid, &when, currency, total, total, refunded
		o.Items = []orders.Item{{ProductID: "x", Name: "X", UnitAmount: total, Quantity: 1}}
		return o
	}
	old := paid("ord_s_old", -48*time.Hour, "usd", 9999, 0)
	legacy := paid("ord_s_legacy", time.Hour, "usd", 700, 0)
	legacy.AmountPaid = 0 // stored before amounts paid were kept: its total counts
	Seed(t, s,
		old, legacy,
		paid("ord_s1", 2*time.Hour, "usd", 2000, 500),
		paid("ord_s2", 3*time.Hour, "eur", 1500, 0),
		NewOrder("ord_s_pending"),
	)
	got, err := s.Sales(t.Context(), at(0))
	if err != nil {
		t.Fatal(err)
	}
	want := []orders.Sales{{Currency: "eur", Orders: 1, Paid: 1500}, {Currency: "usd", Orders: 2, Paid: 2700, Refunded: 500}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Sales mismatch (-want +got):\n%s", diff)
	}
	if got, err := s.Sales(t.Context(), at(24*time.Hour)); err != nil || len(got) != 0 {
		t.Errorf("Sales of a quiet day: %v, %v; want none", got, err)
	}
}

func testAlarmLifecycle(t *testing.T, s orders.Store) {
	ctx := t.Context()
	clock := NewClock()
	svc := NewService(s, clock)
	kinds := func() map[string]orders.Alarm {
		t.Helper()
		list, err := svc.Alarms(ctx, orders.AlarmFilter{Open: true})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]orders.Alarm{}
		for _, a := range list {
			out[a.Kind+" "+a.Ref] = a
		}
		return out
	}

	// A stored alarm, resolved by hand.
	stored := orders.Alarm{ID: "alm_hand", Kind: orders.AlarmUnreadableEvent, Ref: "evt_bad", Detail: "unreadable", CreatedAt: at(0)}
	write(t, s, func(ctx context.Context, tx orders.Tx) error { return tx.InsertAlarm(ctx, stored) })
	if _, ok := kinds()[orders.AlarmUnreadableEvent+" evt_bad"]; !ok {
		t.Fatal("the stored alarm is not listed as open")
	}
	got, err := svc.ResolveAlarm(ctx, stored.ID)
	if err != nil || got.ResolvedAt == nil || !got.ResolvedAt.Equal(clock.Want()) {
		t.Fatalf("ResolveAlarm = %+v, %v; want resolved now", got, err)
	}
	if _, ok := kinds()[orders.AlarmUnreadableEvent+" evt_bad"]; ok {
		t.Error("a resolved alarm is still listed as open")
	}
	clock.Advance(time.Hour)
	if again, err := svc.ResolveAlarm(ctx, stored.ID); err != nil || !again.ResolvedAt.Equal(*got.ResolvedAt) {
		t.Errorf("resolving again: %+v, %v; want it left as it was", again, err)
	}
	if _, err := svc.ResolveAlarm(ctx, "alm_missing"); !errors.Is(err, orders.ErrNotFound) {
		t.Errorf("ResolveAlarm(missing): %v, want ErrNotFound", err)
	}

	// A dead notification is an alarm until it is queued again.
	o := NewOrder("ord_alarm_dead")
	Seed(t, s, o)
	dead := notification("ntf_alarm_dead", o.ID, at(0))
	dead.Status, dead.NextAttempt, dead.Attempts, dead.LastError = orders.NotificationDead, nil, 9, "connection refused"
	write(t, s, func(ctx context.Context, tx orders.Tx) error {
		return tx.InsertNotifications(ctx, []orders.Notification{dead})
	})
	a, ok := kinds()[orders.AlarmDeadNotification+" "+dead.ID]
	if !ok || a.OrderID != o.ID || !a.Derived() || !strings.Contains(a.Detail, "connection refused") {
		t.Fatalf("dead notification alarm: %+v (listed %v); want one for %s, derived, with the last error", a, ok, o.ID)
	}
	if _, err := svc.ResolveAlarm(ctx, a.ID); !errors.Is(err, orders.ErrNotFound) {
		t.Errorf("resolving a derived alarm by hand: %v, want ErrNotFound", err)
	}
	if _, err := svc.Requeue(ctx, dead.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok := kinds()[orders.AlarmDeadNotification+" "+dead.ID]; ok {
		t.Error("the dead notification's alarm outlived its retry")
	}

	// An oversold order's alarm ends with its full refund.
	if err := svc.SeedStock(ctx, map[string]int64{"print": 1}); err != nil {
		t.Fatal(err)
	}
	p := sessionFor(t, svc, placed(t, svc, "", 1))
	mustHandle(t, svc, EventFor("evt_alarm_exp", orders.EventSessionExpired, p))
	zero := int64(0)
	if _, err := svc.SetStock(ctx, "print", &zero); err != nil {
		t.Fatal(err)
	}
	mustHandle(t, svc, CompletedEvent("evt_alarm_paid", p, "paid", func(s *orders.Session) { s.PaymentIntent = PaymentIntent(p) }))
	if _, ok := kinds()[orders.AlarmOversold+" "+p.ID]; !ok {
		t.Fatal("no oversold alarm for a payment without stock")
	}
	mustHandle(t, svc, ChargeRefunded("evt_alarm_part", p, 400, 1_800_000_000))
	if _, ok := kinds()[orders.AlarmOversold+" "+p.ID]; !ok {
		t.Error("a partial refund ended the oversold alarm")
	}
	mustHandle(t, svc, ChargeRefunded("evt_alarm_full", p, 1000, 1_800_000_100))
	if _, ok := kinds()[orders.AlarmOversold+" "+p.ID]; ok {
		t.Error("the full refund did not end the oversold alarm")
	}
}

// testBroadSearch searches for a part of many emails (more than a store
// may fetch from its index at once) and for a rare one among them.
func testBroadSearch(t *testing.T, s orders.Store) {
	const n = 1300
	batch := make([]orders.Order, 0, 200)
	for i := range n {
		o := NewOrder(fmt.Sprintf("ord_broad_%04d", i))
		o.SessionID, o.CreatedAt = "", at(time.Duration(i)*time.Second)
		o.Email = fmt.Sprintf("buyer%d@common.example", i)
		if i%500 == 7 {
			o.Email = fmt.Sprintf("buyer%d@rare.example", i)
		}
		batch = append(batch, o)
		if len(batch) == cap(batch) || i == n-1 {
			Seed(t, s, batch...)
			batch = batch[:0]
		}
	}
	list, err := s.ListOrders(t.Context(), orders.ListFilter{Query: "@COMMON.example", Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := n - 1; len(want) < 50; i-- {
		if i%500 != 7 {
			want = append(want, fmt.Sprintf("ord_broad_%04d", i))
		}
	}
	if diff := cmp.Diff(want, ids(list)); diff != "" {
		t.Errorf("a common part of the emails (-want +got):\n%s", diff)
	}
	list, err = s.ListOrders(t.Context(), orders.ListFilter{Query: "rare.example"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"ord_broad_1007", "ord_broad_0507", "ord_broad_0007"}, ids(list)); diff != "" {
		t.Errorf("a rare part (-want +got):\n%s", diff)
	}
	list, err = s.ListOrders(t.Context(), orders.ListFilter{Query: "common", After: &orders.Cursor{CreatedAt: at(100 * time.Second), ID: "ord_broad_0100"}, Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"ord_broad_0099", "ord_broad_0098", "ord_broad_0097"}, ids(list)); diff != "" {
		t.Errorf("a common part, after a cursor (-want +got):\n%s", diff)
	}
}
