package sqlite

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopcheckout/shop/internal/orders"
	"github.com/shopcheckout/shop/internal/storetest"
)

// hold keeps the writer busy in a batch of its own until release is called,
// so that the writes queued meanwhile all land in the next batch.
func hold(t testing.TB, s *Store) (release func()) {
	t.Helper()
	started, unblock, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- s.write(context.Background(), func(context.Context, conn) error {
			close(started)
			<-unblock
			return nil
		})
	}()
	<-started
	var once sync.Once
	release = func() {
		once.Do(func() {
			close(unblock)
			if err := <-done; err != nil {
				t.Errorf("holding write: %v", err)
			}
		})
	}
	t.Cleanup(release)
	return release
}

// waitQueued waits until n writes are queued.
func waitQueued(t testing.TB, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		got := len(s.queue)
		s.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d queued writes, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// batch queues each write in turn (so they run in this order), all behind a
// held writer, then lets them run as one batch and returns their errors.
func batch(t testing.TB, s *Store, writes ...func() error) []error {
	t.Helper()
	release := hold(t, s)
	before := s.commits.Load()
	errs := make([]error, len(writes))
	var wg sync.WaitGroup
	for i, w := range writes {
		wg.Go(func() { errs[i] = w() })
		waitQueued(t, s, i+1)
	}
	release()
	wg.Wait()
	if n := s.commits.Load() - before; n > 2 { // the holding batch, and this one
		t.Errorf("got %d commits, want the writes in one batch", n-1)
	}
	return errs
}

// create inserts o in a write of its own.
func create(ctx context.Context, s *Store, o orders.Order) error {
	return s.Write(ctx, func(ctx context.Context, tx orders.Tx) error { return tx.InsertOrder(ctx, o) })
}

func TestBatchFailingWriteAlone(t *testing.T) {
	ctx := t.Context()
	s, _ := openTest(t)
	svc := storetest.NewService(s, storetest.NewClock())
	taken := storetest.NewOrder("ord_taken")
	storetest.Seed(t, s, taken)
	fresh := storetest.NewOrder("ord_fresh")
	errBoom := errors.New("boom")
	var applied orders.ApplyResult
	errs := batch(t, s,
		func() error { return create(ctx, s, fresh) },
		func() error { return create(ctx, s, taken) }, // a duplicate id
		func() error { // half done, then fails: its insert is undone
			return s.Write(ctx, func(ctx context.Context, tx orders.Tx) error {
				if err := tx.InsertOrder(ctx, storetest.NewOrder("ord_half")); err != nil {
					return err
				}
				return errBoom
			})
		},
		func() error { // the order created earlier in the same batch
			var err error
			applied, err = svc.HandleEvent(ctx, storetest.CompletedEvent("evt_fresh", fresh, "paid"))
			return err
		},
	)
	for i, want := range []error{nil, orders.ErrDuplicate, errBoom, nil} {
		if (want == nil) != (errs[i] == nil) || (want != nil && !errors.Is(errs[i], want)) {
			t.Errorf("write %d: got error %v, want %v", i, errs[i], want)
		}
	}
	if !applied.Matched || applied.Order.Status != orders.StatusPaid || applied.Order.FulfilledAt == nil {
		t.Errorf("event for the order created in the batch: got matched %v, status %q, fulfilled %v; want true, paid, set",
			applied.Matched, applied.Order.Status, applied.Order.FulfilledAt)
	}
	if o, err := s.Order(ctx, fresh.ID); err != nil || o.Status != orders.StatusPaid {
		t.Errorf("Order(%s) = %q, %v; want paid", fresh.ID, o.Status, err)
	}
	if _, err := s.Order(ctx, "ord_half"); !errors.Is(err, orders.ErrNotFound) {
		t.Errorf("the failed write's insert: got %v, want orders.ErrNotFound", err)
	}
}

func TestBatchCommitFailure(t *testing.T) {
	ctx := t.Context()
	s, _ := openTest(t)
	var fulfilled atomic.Int32
	svc := storetest.NewService(s, storetest.NewClock(), orders.OnFulfilled(func(orders.Order) { fulfilled.Add(1) }))
	// A deferred foreign key is checked at COMMIT: a write that breaks it
	// succeeds, and makes the commit of its whole batch fail.
	mustExec(t, s.w, `CREATE TABLE poison (order_id TEXT REFERENCES orders (id) DEFERRABLE INITIALLY DEFERRED)`)
	paid, fresh := storetest.NewOrder("ord_paid"), storetest.NewOrder("ord_fresh")
	storetest.Seed(t, s, paid)
	ev := storetest.CompletedEvent("evt_paid", paid, "paid")
	errs := batch(t, s,
		func() error { return second(svc.HandleEvent(ctx, ev)) },
		func() error { return create(ctx, s, fresh) },
		func() error {
			return s.write(ctx, func(ctx context.Context, c conn) error {
				_, err := c.ExecContext(ctx, `INSERT INTO poison VALUES ('ord_missing')`)
				return err
			})
		},
	)
	for i, err := range errs {
		if err == nil {
			t.Errorf("write %d: got nil error, want the commit's failure", i)
		}
	}
	if n := fulfilled.Load(); n != 0 {
		t.Errorf("a fulfilment was announced for a batch that did not commit (%d)", n)
	}
	if err := svc.Health(ctx); !errors.Is(err, orders.ErrWritesFailing) {
		t.Errorf("Health after a failed commit: got %v, want orders.ErrWritesFailing", err)
	}
	// Nothing of the batch is stored, and the store goes on working.
	if _, err := s.Order(ctx, fresh.ID); !errors.Is(err, orders.ErrNotFound) {
		t.Errorf("Order(%s): got %v, want orders.ErrNotFound", fresh.ID, err)
	}
	if got, _ := s.Order(ctx, paid.ID); got.Status != orders.StatusPending {
		t.Errorf("paid order after the failed commit: %q, want pending", got.Status)
	}
	mustExec(t, s.w, `DROP TABLE poison`)
	res, err := svc.HandleEvent(ctx, ev)
	if err != nil || res.Duplicate || res.Order.Status != orders.StatusPaid || res.Order.FulfilledAt == nil {
		t.Errorf("redelivery after the failed commit = %+v, %v; want applied, paid, fulfilled", res, err)
	}
	if n := fulfilled.Load(); n != 1 {
		t.Errorf("got %d fulfilments, want 1", n)
	}
	if err := svc.Health(ctx); err != nil {
		t.Errorf("Health after a good write: %v", err)
	}
}

func TestBatchDuplicates(t *testing.T) {
	ctx := t.Context()
	s, _ := openTest(t)
	var fulfilled atomic.Int32
	svc := storetest.NewService(s, storetest.NewClock(), orders.OnFulfilled(func(orders.Order) { fulfilled.Add(1) }))
	o := storetest.NewOrder("ord_dup")
	storetest.Seed(t, s, o)
	ev := storetest.CompletedEvent("evt_dup", o, "paid")
	var applied atomic.Int32
	writes := make([]func() error, 0, 100)
	for range 50 {
		writes = append(writes,
			func() error {
				res, err := svc.HandleEvent(ctx, ev)
				if err == nil && !res.Duplicate {
					applied.Add(1)
				}
				return err
			},
			func() error { return second(svc.SyncSession(ctx, ev.Session)) })
	}
	for i, err := range batch(t, s, writes...) {
		if err != nil {
			t.Errorf("write %d: %v", i, err)
		}
	}
	if a, f := applied.Load(), fulfilled.Load(); a != 1 || f != 1 {
		t.Errorf("got %d applications, %d fulfilments; want 1 each", a, f)
	}
	if got, err := s.Order(ctx, o.ID); err != nil || got.Status != orders.StatusPaid || got.FulfilledAt == nil {
		t.Errorf("Order = %q, fulfilled %v, %v; want paid and fulfilled", got.Status, got.FulfilledAt, err)
	}
}

func TestBatchCancel(t *testing.T) {
	s, _ := openTest(t)
	release := hold(t, s)

	// Cancelled while queued: it leaves the queue at once and never runs.
	ctx, cancel := context.WithCancel(t.Context())
	gone := make(chan error, 1)
	go func() { gone <- create(ctx, s, storetest.NewOrder("ord_cancelled")) }()
	waitQueued(t, s, 1)
	kept := make(chan error, 1)
	go func() { kept <- create(t.Context(), s, storetest.NewOrder("ord_kept")) }()
	waitQueued(t, s, 2)
	cancel()
	if err := <-gone; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled write: got %v, want context.Canceled", err)
	}
	waitQueued(t, s, 1)
	release()
	if err := <-kept; err != nil {
		t.Errorf("the write queued beside it: %v", err)
	}
	if _, err := s.Order(t.Context(), "ord_cancelled"); !errors.Is(err, orders.ErrNotFound) {
		t.Errorf("cancelled write's order: got %v, want orders.ErrNotFound", err)
	}

	// Cancelled while running: its statements go on, and its caller gets
	// the outcome of the commit.
	ctx, cancel = context.WithCancel(t.Context())
	running, proceed := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.Write(ctx, func(ctx context.Context, tx orders.Tx) error {
			close(running)
			<-proceed
			return tx.InsertOrder(ctx, storetest.NewOrder("ord_running"))
		})
	}()
	<-running
	cancel()
	close(proceed)
	if err := <-done; err != nil {
		t.Errorf("write cancelled while running: got %v, want nil", err)
	}
	if _, err := s.Order(t.Context(), "ord_running"); err != nil {
		t.Errorf("its order: %v", err)
	}
}

func TestBatchPanic(t *testing.T) {
	ctx := t.Context()
	s, _ := openTest(t)
	var recovered any
	errs := batch(t, s,
		func() error { return create(ctx, s, storetest.NewOrder("ord_before")) },
		func() (err error) {
			defer func() { recovered = recover() }()
			return s.Write(ctx, func(ctx context.Context, tx orders.Tx) error {
				if err := tx.InsertOrder(ctx, storetest.NewOrder("ord_panic")); err != nil {
					return err
				}
				panic("kaboom")
			})
		},
		func() error { return create(ctx, s, storetest.NewOrder("ord_after")) },
	)
	if recovered != "kaboom" {
		t.Errorf("the caller recovered %v, want the write's panic", recovered)
	}
	if errs[0] != nil || errs[2] != nil {
		t.Errorf("the other writes: got %v, %v; want nil, nil", errs[0], errs[2])
	}
	for id, want := range map[string]error{"ord_before": nil, "ord_panic": orders.ErrNotFound, "ord_after": nil} {
		if _, err := s.Order(ctx, id); !errors.Is(err, want) {
			t.Errorf("Order(%s): got %v, want %v", id, err, want)
		}
	}
}

// TestBatchDurability checks the settings a batch commits under, on the
// writer connection itself.
func TestBatchDurability(t *testing.T) {
	s, _ := openTest(t)
	got := map[string]string{}
	err := s.write(t.Context(), func(ctx context.Context, c conn) error {
		for _, name := range []string{"journal_mode", "synchronous", "query_only"} {
			var v string
			if err := c.QueryRowContext(ctx, "PRAGMA "+name).Scan(&v); err != nil {
				return err
			}
			got[name] = v
		}
		// Inside a transaction already: BEGIN would fail.
		if _, err := c.ExecContext(ctx, "BEGIN"); err == nil {
			return errors.New("BEGIN succeeded: the write is not inside the batch's transaction")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"journal_mode": "wal", "synchronous": "2", "query_only": "0"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestGroupCommit checks that concurrent writes share commits.
func TestGroupCommit(t *testing.T) {
	ctx := t.Context()
	s, _ := openTest(t)
	const n = 200
	before := s.commits.Load()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := create(ctx, s, storetest.NewOrder(fmt.Sprintf("ord_%03d", i))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	commits := s.commits.Load() - before
	if commits >= n/2 {
		t.Errorf("%d concurrent writes took %d commits, want far fewer", n, commits)
	}
	t.Logf("%d writes in %d commits", n, commits)
}

func TestClosedStore(t *testing.T) {
	s, _ := openTest(t)
	release := hold(t, s)
	queued := make(chan error, 1)
	go func() { queued <- create(context.Background(), s, storetest.NewOrder("ord_queued")) }()
	waitQueued(t, s, 1)
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	if err := <-queued; !errors.Is(err, ErrClosed) {
		t.Errorf("write queued at Close: got %v, want ErrClosed", err)
	}
	release()
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := create(context.Background(), s, storetest.NewOrder("ord_late")); !errors.Is(err, ErrClosed) {
		t.Errorf("write after Close: got %v, want ErrClosed", err)
	}
}

func second[T any](_ T, err error) error { return err }
