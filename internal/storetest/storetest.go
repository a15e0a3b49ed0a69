package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
// The first half checks the store's own contract (orders.Store and
// orders.Tx); the second runs the shop's rules (orders.Service) over the
// store, since a rule is only as good as the transactions under it.
func Run(t *testing.T, open func(t testing.TB) orders.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, orders.Store)
	}{
		{"CreateAndGet", testCreateAndGet},
		{"UpdateOrder", testUpdateOrder},
		{"WriteRollsBack", testWriteRollsBack},
		{"InsertEvent", testInsertEvent},
		{"ConcurrentWritesOfOneOrder", testConcurrentWritesOfOneOrder},
		{"ListOrders", testListOrders},
		{"ListLimits", testListLimits},
		{"Unfulfilled", testUnfulfilled},
		{"Notifications", testNotifications},
		{"Claims", testClaims},
		{"ConcurrentClaims", testConcurrentClaims},
		{"Settings", testSettings},
		{"Leases", testLeases},
		{"Alarms", testAlarms},
		{"Ping", testPing},

		{"Times", testTimes},
		{"PlaceOrder", testPlaceOrder},
		{"AttachSession", testAttachSession},
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
		{"SyncSession", testSyncSession},
		{"FulfilmentIsOneWrite", testFulfilmentIsOneWrite},
		{"FulfilOnceAcrossPaths", testFulfilOnceAcrossPaths},
		{"RedeliveryCompletesFulfilment", testRedeliveryCompletesFulfilment},
		{"DeliveryRecords", testDeliveryRecords},
		{"Requeue", testRequeue},
		{"Secret", testSecret},
		{"SignedEvents", testSignedEvents},
		{"Refunds", testRefunds},
		{"RefundArrivalOrder", testRefundArrivalOrder},
		{"RecordRefund", testRecordRefund},
		{"Disputes", testDisputes},
		{"SecondSession", testSecondSession},
		{"Unattributed", testUnattributed},
		{"AdaptivePricing", testAdaptivePricing},
		{"PlaceOrderReuseWindow", testPlaceOrderReuseWindow},
		{"SeedStock", testSeedStock},
		{"HoldOnPlacement", testHoldOnPlacement},
		{"ConcurrentHolds", testConcurrentHolds},
		{"HoldPaths", testHoldPaths},
		{"Restock", testRestock},
		{"ListFilters", testListFilters},
		{"BroadSearch", testBroadSearch},
		{"Pages", testPages},
		{"EachOrder", testEachOrder},
		{"OrderEvents", testOrderEvents},
		{"Sales", testSales},
		{"AlarmLifecycle", testAlarmLifecycle},
		{"PaymentLinkOrders", testPaymentLinkOrders},
		{"PaymentLinkDelayed", testPaymentLinkDelayed},
		{"PaymentLinkConcurrent", testPaymentLinkConcurrent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
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
	Seed(t, s, o)
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
	if got.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt in %v, want UTC", got.CreatedAt.Location())
	}
	// The same through a transaction.
	err = s.Write(ctx, func(ctx context.Context, tx orders.Tx) error {
		byID, err := tx.Order(ctx, o.ID)
		if err != nil {
			return err
		}
		bySession, err := tx.OrderBySession(ctx, o.SessionID)
		if err != nil {
			return err
		}
		if diff := cmp.Diff(o, byID); diff != "" {
			t.Errorf("Tx.Order mismatch (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(o, bySession); diff != "" {
			t.Errorf("Tx.OrderBySession mismatch (-want +got):\n%s", diff)
		}
		for name, err := range map[string]error{
			"Tx.Order(missing)":          second(tx.Order(ctx, "ord_missing")),
			"Tx.OrderBySession(missing)": second(tx.OrderBySession(ctx, "cs_missing")),
		} {
			if !errors.Is(err, orders.ErrNotFound) {
				t.Errorf("%s: got error %v, want orders.ErrNotFound", name, err)
			}
		}
		if err := tx.InsertOrder(ctx, NewOrder(o.ID)); !errors.Is(err, orders.ErrDuplicate) {
			t.Errorf("InsertOrder with a taken id: got %v, want orders.ErrDuplicate", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
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
	bare := NewOrder("ord_bare")
	bare.SessionID = ""
	Seed(t, s, bare)
	if got := mustOrder(t, s, bare.ID); got.SessionID != "" || got.PaidAt != nil || got.FulfilledAt != nil {
		t.Errorf("got session %q, paid %v, fulfilled %v; want none", got.SessionID, got.PaidAt, got.FulfilledAt)
	}
}

func testUpdateOrder(t *testing.T, s orders.Store) {
	ctx := t.Context()
	o := NewOrder("ord_upd")
	o.SessionID = ""
	Seed(t, s, o)
	paid, fulfilled := at(time.Minute), at(2*time.Minute)
	want := o
	want.Status, want.SessionID, want.Email, want.Review = orders.StatusNeedsReview, "cs_upd", "b@example.com", "checked"
	want.UpdatedAt, want.PaidAt, want.FulfilledAt = at(3*time.Minute), &paid, &fulfilled
	err := s.Write(ctx, func(ctx context.Context, tx orders.Tx) error {
		cur, err := tx.Order(ctx, o.ID)
		if err != nil {
			return err
		}
		next := want
		next.Version = cur.Version
		if err := tx.UpdateOrder(ctx, &next); err != nil {
			return err
		}
		if next.Version != cur.Version+1 {
			t.Errorf("UpdateOrder left version %d, want %d", next.Version, cur.Version+1)
		}
		stale := want
		stale.Version = cur.Version // read before the update above
		if err := tx.UpdateOrder(ctx, &stale); err == nil {
			t.Error("UpdateOrder over a stale version: got nil error, want one")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want.Version = 1
	if diff := cmp.Diff(want, mustOrder(t, s, o.ID)); diff != "" {
		t.Errorf("stored order mismatch (-want +got):\n%s", diff)
	}
	if got, err := s.OrderBySession(ctx, "cs_upd"); err != nil || got.ID != o.ID {
		t.Errorf("OrderBySession(cs_upd) = %q, %v; want %q", got.ID, err, o.ID)
	}
}

func testWriteRollsBack(t *testing.T, s orders.Store) {
	ctx := t.Context()
	errBoom := errors.New("boom")
	o := NewOrder("ord_rb")
	err := s.Write(ctx, func(ctx context.Context, tx orders.Tx) error {
		if err := tx.InsertOrder(ctx, o); err != nil {
			return err
		}
		if _, err := tx.InsertEvent(ctx, record("evt_rb", o.ID)); err != nil {
			return err
		}
		if err := tx.InsertNotifications(ctx, []orders.Notification{notification("ntf_rb", o.ID, at(0))}); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Write: got %v, want %v", err, errBoom)
	}
	if _, err := s.Order(ctx, o.ID); !errors.Is(err, orders.ErrNotFound) {
		t.Errorf("after a failed write: Order got %v, want orders.ErrNotFound", err)
	}
	// The event and notification were rolled back too: inserting them again succeeds.
	Seed(t, s, o)
	err = s.Write(ctx, func(ctx context.Context, tx orders.Tx) error {
		if ok, err := tx.InsertEvent(ctx, record("evt_rb", o.ID)); err != nil || !ok {
			t.Errorf("InsertEvent after rollback = %v, %v; want true, nil", ok, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if ns := mustNotifications(t, s, o.ID); len(ns) != 0 {
		t.Errorf("after a failed write got %d notifications, want 0", len(ns))
	}
}

func testInsertEvent(t *testing.T, s orders.Store) {
	o := NewOrder("ord_ev")
	Seed(t, s, o)
	for i, want := range []bool{true, false, false} {
		err := s.Write(t.Context(), func(ctx context.Context, tx orders.Tx) error {
			ok, err := tx.InsertEvent(ctx, record("evt_1", o.ID))
			if ok != want {
				t.Errorf("InsertEvent #%d: got %v, want %v", i+1, ok, want)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	unmatched := record("evt_2", "")
	unmatched.Payload = nil
	if err := s.Write(t.Context(), func(ctx context.Context, tx orders.Tx) error {
		_, err := tx.InsertEvent(ctx, unmatched)
		return err
	}); err != nil {
		t.Errorf("InsertEvent without order or payload: %v", err)
	}
}

// testConcurrentWritesOfOneOrder has many writers read and update one order
// at once: the store must make them take turns, so no update is lost.
func testConcurrentWritesOfOneOrder(t *testing.T, s orders.Store) {
	o := NewOrder("ord_turns")
	Seed(t, s, o)
	const n = 40
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			err := s.Write(t.Context(), func(ctx context.Context, tx orders.Tx) error {
				cur, err := tx.Order(ctx, o.ID)
				if err != nil {
					return err
				}
				cur.Review += "x"
				return tx.UpdateOrder(ctx, &cur)
			})
			if err != nil {
				t.Errorf("Write: %v", err)
			}
		})
	}
	wg.Wait()
	if got := mustOrder(t, s, o.ID); len(got.Review) != n || got.Version != n {
		t.Errorf("got review of %d characters at version %d, want %d and %d", len(got.Review), got.Version, n, n)
	}
}

func testListOrders(t *testing.T, s orders.Store) {
	ctx := t.Context()
	statuses := []orders.Status{orders.StatusPending, orders.StatusPaid, orders.StatusPending, orders.StatusPaid, orders.StatusFailed}
	for i, st := range statuses {
		o := NewOrder(fmt.Sprintf("ord_list%d", i))
		o.Status, o.Payment, o.CreatedAt = st, st, at(time.Duration(i)*time.Minute)
		Seed(t, s, o)
	}
	tie := NewOrder("ord_list9") // same time as ord_list4: the greater id comes first
	tie.CreatedAt = at(4 * time.Minute)
	Seed(t, s, tie)

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

// testListLimits checks orders.DefaultListLimit and orders.MaxListLimit.
func testListLimits(t *testing.T, s orders.Store) {
	ctx := t.Context()
	const n = orders.MaxListLimit + 1
	batch := make([]orders.Order, 0, 100)
	for i := range n {
		o := NewOrder(fmt.Sprintf("ord_limit_%04d", i))
		o.SessionID, o.CreatedAt = "", at(time.Duration(i)*time.Second)
		batch = append(batch, o)
		if len(batch) == cap(batch) || i == n-1 {
			Seed(t, s, batch...)
			batch = batch[:0]
		}
	}
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

func testUnfulfilled(t *testing.T, s orders.Store) {
	fulfilled := at(time.Hour)
	var list []orders.Order
	for i, st := range []orders.Status{orders.StatusPaid, orders.StatusPaid, orders.StatusPending, orders.StatusPaid, orders.StatusPaid} {
		o := NewOrder(fmt.Sprintf("ord_unf%d", i))
		o.Status, o.Payment, o.CreatedAt = st, st, at(-time.Duration(i)*time.Minute) // later ids are older
		if i == 1 {
			o.FulfilledAt = &fulfilled
		}
		list = append(list, o)
	}
	Seed(t, s, list...)
	got, err := s.Unfulfilled(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"ord_unf4", "ord_unf3", "ord_unf0"}, got); diff != "" {
		t.Errorf("Unfulfilled mismatch (-want +got):\n%s", diff)
	}
}

func testNotifications(t *testing.T, s orders.Store) {
	ctx := t.Context()
	a, b := NewOrder("ord_na"), NewOrder("ord_nb")
	Seed(t, s, a, b)
	n1 := notification("ntf_1", a.ID, at(time.Second))
	n2 := notification("ntf_2", a.ID, at(2*time.Second))
	n2.Channel, n2.Recipient = orders.ChannelEmailCustomer, Email
	n3 := notification("ntf_3", b.ID, at(0))
	write(t, s, func(ctx context.Context, tx orders.Tx) error {
		return tx.InsertNotifications(ctx, []orders.Notification{n2, n1, n3})
	})
	// A second insert of a queued id leaves it as it was.
	changed := n1
	changed.Payload = []byte(`{"other":true}`)
	write(t, s, func(ctx context.Context, tx orders.Tx) error {
		return tx.InsertNotifications(ctx, []orders.Notification{changed})
	})
	got := mustNotifications(t, s, a.ID, b.ID)
	if diff := cmp.Diff([]orders.Notification{n3, n1, n2}, got); diff != "" {
		t.Errorf("Notifications mismatch (-want +got):\n%s", diff)
	}
	if got := mustNotifications(t, s, "ord_none"); len(got) != 0 {
		t.Errorf("Notifications of an unknown order: got %d, want 0", len(got))
	}

	// Every field of the delivery state round-trips.
	next, delivered := at(time.Hour), at(2*time.Hour)
	upd := n1
	upd.Status, upd.Attempts, upd.LastError, upd.NextAttempt = orders.NotificationDelivered, 3, "last one", &next
	upd.DeliveredAt, upd.Deadline, upd.ClaimedBy, upd.ClaimedUntil = &delivered, at(5*time.Hour), "me", at(3*time.Hour)
	write(t, s, func(ctx context.Context, tx orders.Tx) error {
		if err := tx.UpdateNotification(ctx, upd); err != nil {
			return err
		}
		got, err := tx.Notification(ctx, n1.ID)
		if diff := cmp.Diff(upd, got); diff != "" {
			t.Errorf("Tx.Notification after update mismatch (-want +got):\n%s", diff)
		}
		if _, err := tx.Notification(ctx, "ntf_missing"); !errors.Is(err, orders.ErrNotFound) {
			t.Errorf("Tx.Notification(missing): got %v, want orders.ErrNotFound", err)
		}
		return err
	})

	st, err := s.OutboxStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Pending != 2 || st.Dead != 0 || st.OldestQueued == nil || !st.OldestQueued.Equal(n3.CreatedAt) {
		t.Errorf("OutboxStats = %+v, want 2 pending, 0 dead, oldest %v", st, n3.CreatedAt)
	}
}

func testClaims(t *testing.T, s orders.Store) {
	ctx := t.Context()
	o := NewOrder("ord_claim")
	Seed(t, s, o)
	now := at(time.Hour)
	due := func(id string, d time.Duration) orders.Notification {
		n := notification(id, o.ID, now.Add(-time.Hour))
		next := now.Add(d)
		n.NextAttempt = &next
		return n
	}
	dead := due("ntf_dead", -time.Minute)
	dead.Status, dead.NextAttempt = orders.NotificationDead, nil
	write(t, s, func(ctx context.Context, tx orders.Tx) error {
		return tx.InsertNotifications(ctx, []orders.Notification{
			due("ntf_a", -time.Minute), due("ntf_b", -time.Second), due("ntf_c", 0), due("ntf_later", time.Minute), dead,
		})
	})
	claim := func(holder string, now time.Time, limit int) []string {
		t.Helper()
		list, err := s.ClaimNotifications(ctx, orders.Claim{Holder: holder, Now: now, Until: now.Add(30 * time.Second), Limit: limit})
		if err != nil {
			t.Fatalf("ClaimNotifications: %v", err)
		}
		var out []string
		for _, n := range list {
			if n.ClaimedBy != holder || !n.ClaimedUntil.Equal(now.Add(30*time.Second)) {
				t.Errorf("%s claimed by %q until %v, want %q until %v", n.ID, n.ClaimedBy, n.ClaimedUntil, holder, now.Add(30*time.Second))
			}
			out = append(out, n.ID)
		}
		return sorted(out)
	}
	if got := claim("one", now, 2); !cmp.Equal(got, []string{"ntf_a", "ntf_b"}) {
		t.Errorf("first claim: got %v, want the two due first", got)
	}
	if got := claim("two", now, 10); !cmp.Equal(got, []string{"ntf_c"}) {
		t.Errorf("second claim: got %v, want only ntf_c (the rest is claimed, not due or dead)", got)
	}
	if got := claim("two", now.Add(10*time.Second), 10); len(got) != 0 {
		t.Errorf("claim while the claims last: got %v, want none", got)
	}
	if got := claim("three", now.Add(31*time.Second), 10); !cmp.Equal(got, []string{"ntf_a", "ntf_b", "ntf_c"}) {
		t.Errorf("claim after the claims ran out: got %v, want ntf_a, ntf_b, ntf_c", got)
	}
	if got := claim("four", now.Add(time.Minute+500*time.Millisecond), 10); !cmp.Equal(got, []string{"ntf_later"}) {
		t.Errorf("claim once ntf_later is due: got %v, want it", got)
	}
}

func testConcurrentClaims(t *testing.T, s orders.Store) {
	o := NewOrder("ord_cclaim")
	Seed(t, s, o)
	var ns []orders.Notification
	for i := range 200 {
		ns = append(ns, notification(fmt.Sprintf("ntf_%03d", i), o.ID, at(0)))
	}
	write(t, s, func(ctx context.Context, tx orders.Tx) error { return tx.InsertNotifications(ctx, ns) })
	var mu sync.Mutex
	seen := map[string]string{}
	var wg sync.WaitGroup
	for w := range 8 {
		holder := fmt.Sprintf("holder%d", w)
		wg.Go(func() {
			for {
				list, err := s.ClaimNotifications(t.Context(), orders.Claim{Holder: holder, Now: at(time.Hour), Until: at(2 * time.Hour), Limit: 7})
				if err != nil {
					t.Errorf("ClaimNotifications: %v", err)
					return
				}
				if len(list) == 0 {
					return
				}
				mu.Lock()
				for _, n := range list {
					if other, ok := seen[n.ID]; ok {
						t.Errorf("%s claimed by %s and %s", n.ID, other, holder)
					}
					seen[n.ID] = holder
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != len(ns) {
		t.Errorf("claimed %d notifications, want %d", len(seen), len(ns))
	}
}

func testSettings(t *testing.T, s orders.Store) {
	var wg sync.WaitGroup
	got := make([][]byte, 10)
	for i := range got {
		wg.Go(func() {
			err := s.Write(t.Context(), func(ctx context.Context, tx orders.Tx) error {
				v, err := tx.Setting(ctx, "key", []byte{byte(i)})
				got[i] = v
				return err
			})
			if err != nil {
				t.Errorf("Setting: %v", err)
			}
		})
	}
	wg.Wait()
	for i := range got {
		if len(got[i]) != 1 || got[i][0] != got[0][0] {
			t.Fatalf("Setting answers %v: want one value for every caller", got)
		}
	}
}

func testLeases(t *testing.T, s orders.Store) {
	ctx := t.Context()
	take := func(holder string, ttl time.Duration) bool {
		t.Helper()
		ok, err := s.TryLease(ctx, "job", holder, ttl)
		if err != nil {
			t.Fatalf("TryLease: %v", err)
		}
		return ok
	}
	if !take("a", time.Minute) {
		t.Fatal("a free lease was refused")
	}
	if take("b", time.Minute) {
		t.Error("a lease held by another was granted")
	}
	if !take("a", time.Minute) {
		t.Error("the holder could not renew its lease")
	}
	if !take("a", time.Millisecond) {
		t.Fatal("the holder could not shorten its lease")
	}
	time.Sleep(20 * time.Millisecond)
	if !take("b", time.Minute) {
		t.Error("an expired lease was refused")
	}
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			ok, err := s.TryLease(ctx, "race", fmt.Sprintf("h%d", i), time.Minute)
			if err != nil {
				t.Errorf("TryLease: %v", err)
			}
			if ok {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if n := wins.Load(); n != 1 {
		t.Errorf("10 racing holders: %d got the lease, want 1", n)
	}
}

func testAlarms(t *testing.T, s orders.Store) {
	resolved := at(3 * time.Hour)
	list := []orders.Alarm{
		{ID: "alm_1", Kind: "unreadable_event", Ref: "evt_1", Detail: "first", CreatedAt: at(time.Hour)},
		{ID: "alm_2", Kind: "paid_twice", Ref: "cs_2", OrderID: "ord_2", Detail: "second", CreatedAt: at(2 * time.Hour), ResolvedAt: &resolved},
		{ID: "alm_3", Kind: "unreadable_event", Ref: "evt_3", Detail: "third", CreatedAt: at(2 * time.Hour)},
	}
	write(t, s, func(ctx context.Context, tx orders.Tx) error {
		for _, a := range list {
			if err := tx.InsertAlarm(ctx, a); err != nil {
				return err
			}
		}
		again := list[0]
		again.Detail = "changed"
		return tx.InsertAlarm(ctx, again) // raised again: left as it is
	})
	all, err := s.Alarms(t.Context(), orders.AlarmFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]orders.Alarm{list[2], list[1], list[0]}, all); diff != "" {
		t.Errorf("Alarms mismatch (-want +got):\n%s", diff)
	}
	open, err := s.Alarms(t.Context(), orders.AlarmFilter{Open: true, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]orders.Alarm{list[2]}, open); diff != "" {
		t.Errorf("open alarms, limit 1, mismatch (-want +got):\n%s", diff)
	}
}

func testPing(t *testing.T, s orders.Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

// record returns an applied event record for an order.
func record(id, orderID string) orders.EventRecord {
	return orders.EventRecord{
		ID: id, Type: orders.EventSessionCompleted, APIVersion: "2023-10-16", SessionID: "cs_" + orderID, OrderID: orderID,
		Outcome: orders.OutcomeApplied, Created: at(0), Received: at(time.Second), Payload: []byte(`{"id":"` + id + `"}`),
	}
}

// notification returns a pending webhook notification due at created.
func notification(id, orderID string, created time.Time) orders.Notification {
	return orders.Notification{
		ID: id, OrderID: orderID, Type: orders.NotifyOrderPaid, Channel: orders.ChannelWebhook,
		Status: orders.NotificationPending, CreatedAt: created, NextAttempt: &created,
		Deadline: created.Add(orders.RetryFor), Payload: []byte(`{"id":"` + id + `"}`),
	}
}

// write runs fn in one write or fails the test.
func write(t testing.TB, s orders.Store, fn func(context.Context, orders.Tx) error) {
	t.Helper()
	if err := s.Write(t.Context(), fn); err != nil {
		t.Fatalf("Write: %v", err)
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

// mustNotifications returns the notifications of orders or fails the test.
func mustNotifications(t testing.TB, s orders.Store, orderIDs ...string) []orders.Notification {
	t.Helper()
	ns, err := s.Notifications(t.Context(), orderIDs)
	if err != nil {
		t.Fatalf("Notifications: %v", err)
	}
	return ns
}

func second[T any](_ T, err error) error { return err }

func ids(list []orders.Order) []string {
	var out []string
	for _, o := range list {
		out = append(out, o.ID)
	}
	return out
}

func sorted(xs []string) []string {
	out := slices.Clone(xs)
	slices.Sort(out)
	return out
}
