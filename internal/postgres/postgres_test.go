package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopcheckout/shop/internal/orders"
	"github.com/shopcheckout/shop/internal/storetest"
	"github.com/shopcheckout/shop/internal/testenv"
)

// adminURL returns the URL of the server's test database, from which each
// test creates its own, or skips the test when there is none; in CI, where
// .ci/run starts PostgreSQL, it fails instead.
func adminURL(t testing.TB) string {
	t.Helper()
	return testenv.Postgres(t)
}

// newSchema returns the URL of an empty schema for one test, dropped when the
// test ends: the test server's database with search_path set to the schema,
// so the store's unqualified tables land there. It is much quicker than a
// database per test; params are extra query parameters for the URL.
func newSchema(t testing.TB, params ...string) string {
	t.Helper()
	admin := adminURL(t)
	name := uniqueName()
	adminExec(t, admin, `CREATE SCHEMA `+quoted(name))
	t.Cleanup(func() { adminExec(t, admin, `DROP SCHEMA `+quoted(name)+` CASCADE`) })
	return withURL(t, admin, "", append([]string{"search_path", name}, params...)...)
}

// newDatabase creates an empty database for one test, dropped when the test
// ends, and returns its URL: for tests that need a database of their own.
func newDatabase(t testing.TB, params ...string) string {
	t.Helper()
	admin := adminURL(t)
	name := uniqueName()
	adminExec(t, admin, `CREATE DATABASE `+quoted(name))
	// FORCE ends any connection still open.
	t.Cleanup(func() { adminExec(t, admin, `DROP DATABASE IF EXISTS `+quoted(name)+` WITH (FORCE)`) })
	return withURL(t, admin, name, params...)
}

// uniqueName returns a fresh name for a test's schema or database.
func uniqueName() string {
	var b [6]byte
	rand.Read(b[:])
	return "shop_t_" + hex.EncodeToString(b[:])
}

func quoted(name string) string { return pgx.Identifier{name}.Sanitize() }

// withURL returns base with its database replaced by database, unless that
// is "", and the query parameters in params (name, value, name, value...) set.
// The URL's pool_max_conns is 8 unless params say otherwise.
func withURL(t testing.TB, base, database string, params ...string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("SHOP_TEST_POSTGRES_URL: want a postgres:// URL, got %q", base)
	}
	if database != "" {
		u.Path = "/" + database
	}
	q := u.Query()
	// Bound each pool, whatever the machine's CPU count, as the tests run
	// in parallel against one server.
	q.Set("pool_max_conns", "8")
	for i := 0; i+1 < len(params); i += 2 {
		q.Set(params[i], params[i+1])
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// adminExec runs one statement on the database at url, outside a transaction.
func adminExec(t testing.TB, url, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // also from Cleanup, after t.Context is done
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect to the test server: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// openTest opens a store on a fresh schema and closes it when the test
// ends.
func openTest(t testing.TB, opts ...Option) *Store {
	t.Helper()
	return openURL(t, newSchema(t), opts...)
}

// openURL opens a store on the database at dbURL and closes it when the test
// ends.
func openURL(t testing.TB, dbURL string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(t.Context(), dbURL, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	adminURL(t)
	storetest.Run(t, func(t testing.TB) orders.Store {
		return openTest(t)
	})
}

// versions returns the versions recorded in schema_migrations.
func versions(t testing.TB, pool *pgxpool.Pool) []int {
	t.Helper()
	rows, err := pool.Query(t.Context(), `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	v, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestMigrationsIdempotent(t *testing.T) {
	t.Parallel()
	dbURL := newSchema(t)
	for i := range 3 {
		s, err := Open(t.Context(), dbURL)
		if err != nil {
			t.Fatalf("Open #%d: %v", i+1, err)
		}
		got := versions(t, s.pool)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(embeddedVersions(t), got); diff != "" {
			t.Errorf("open #%d: schema_migrations mismatch (-want +got):\n%s", i+1, diff)
		}
	}
}

// TestMigrationsConcurrent starts five instances at once on a fresh database,
// as a deployment of several replicas does.
func TestMigrationsConcurrent(t *testing.T) {
	t.Parallel()
	dbURL := newDatabase(t)
	const n = 5
	stores := make([]*Store, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = Open(t.Context(), dbURL)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open #%d: %v", i+1, err)
			continue
		}
		t.Cleanup(func() { stores[i].Close() })
	}
	if t.Failed() {
		t.FailNow()
	}
	if diff := cmp.Diff(embeddedVersions(t), versions(t, stores[0].pool)); diff != "" {
		t.Errorf("schema_migrations mismatch (-want +got):\n%s", diff)
	}
	for i, s := range stores {
		storetest.Seed(t, s, storetest.NewOrder(fmt.Sprintf("ord_m%d", i)))
	}
}

// TestMigrationAtomic checks that a failing migration leaves nothing behind,
// and that bad migration sets are refused before anything runs.
func TestMigrationAtomic(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	now := func() time.Time { return time.Now().UTC() }
	broken := fstest.MapFS{
		"migrations/0001_orders.sql": {Data: []byte(`-- already applied`)},
		"migrations/0100_ok.sql":     {Data: []byte(`CREATE TABLE t2 (x int);`)},
		"migrations/0101_bad.sql":    {Data: []byte(`CREATE TABLE t3 (x int); INSERT INTO t3 VALUES (1 / 0);`)},
	}
	if err := migrate(ctx, s.pool, broken, now); err == nil {
		t.Fatal("migrate with a failing migration: got nil error, want one")
	}
	want := append(embeddedVersions(t), 100)
	if diff := cmp.Diff(want, versions(t, s.pool)); diff != "" {
		t.Errorf("schema_migrations mismatch (-want +got):\n%s", diff)
	}
	var t2, t3 bool
	err := s.pool.QueryRow(ctx, `SELECT to_regclass('t2') IS NOT NULL, to_regclass('t3') IS NOT NULL`).Scan(&t2, &t3)
	if err != nil {
		t.Fatal(err)
	}
	if !t2 || t3 {
		t.Errorf("got table t2 %v, t3 %v; want true, false", t2, t3)
	}

	for name, fsys := range map[string]fstest.MapFS{
		"no version":     {"migrations/init.sql": {Data: []byte(`SELECT 1`)}},
		"version zero":   {"migrations/0000_x.sql": {Data: []byte(`SELECT 1`)}},
		"shared version": {"migrations/0104_a.sql": {Data: []byte(`SELECT 1`)}, "migrations/104_b.sql": {Data: []byte(`SELECT 1`)}},
	} {
		if err := migrate(ctx, s.pool, fsys, now); err == nil {
			t.Errorf("%s: got nil error, want one", name)
		}
	}
	if diff := cmp.Diff(want, versions(t, s.pool)); diff != "" {
		t.Errorf("after refused sets: schema_migrations mismatch (-want +got):\n%s", diff)
	}
}

func TestReopen(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dbURL := newSchema(t)
	s, err := Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	o := storetest.NewOrder("ord_keep")
	storetest.Seed(t, s, o)
	res, err := storetest.NewService(s, storetest.NewClock()).HandleEvent(ctx, storetest.CompletedEvent("evt_keep", o, "paid"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openURL(t, dbURL)
	got, err := s.Order(ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(res.Order, got); diff != "" {
		t.Errorf("order after reopening mismatch (-before +after):\n%s", diff)
	}
	again, err := storetest.NewService(s, storetest.NewClock()).HandleEvent(ctx, storetest.CompletedEvent("evt_keep", o, "paid"))
	if err != nil || !again.Duplicate {
		t.Errorf("HandleEvent after reopening = %+v, %v; want a duplicate", again, err)
	}
}

// TestTwoInstances runs two stores, each with its own pool, on one database,
// as two shop processes behind a load balancer: Stripe's retries and the
// success page may reach either.
func TestTwoInstances(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dbURL := newSchema(t)
	stores := []*Store{openURL(t, dbURL), openURL(t, dbURL)}
	var fulfilments atomic.Int32
	clock := storetest.NewClock()
	svcs := []*orders.Service{
		storetest.NewService(stores[0], clock, orders.OnFulfilled(func(orders.Order) { fulfilments.Add(1) })),
		storetest.NewService(stores[1], clock, orders.OnFulfilled(func(orders.Order) { fulfilments.Add(1) })),
	}

	// 20 orders with two events each (completed but unpaid, then paid), every
	// event delivered twice to each instance, all at once.
	var events []orders.Event
	var all []orders.Order
	for i := range 20 {
		o := storetest.NewOrder(fmt.Sprintf("ord_two%02d", i))
		storetest.Seed(t, stores[i%2], o)
		all = append(all, o)
		events = append(events,
			storetest.CompletedEvent("evt_"+o.ID+"_1", o, "unpaid"),
			storetest.EventFor("evt_"+o.ID+"_2", orders.EventAsyncPaymentSucceeded, o))
	}
	applied := make([]atomic.Int32, len(events))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, ev := range events {
		for range 2 {
			for _, svc := range svcs {
				wg.Go(func() {
					<-start
					res, err := svc.HandleEvent(ctx, ev)
					switch {
					case err != nil:
						t.Errorf("HandleEvent(%s): %v", ev.ID, err)
					case res.Duplicate:
					case !res.Matched:
						t.Errorf("HandleEvent(%s): got matched false, want true", ev.ID)
					default:
						applied[i].Add(1)
					}
				})
			}
		}
	}
	close(start)
	wg.Wait()
	for i := range applied {
		if n := applied[i].Load(); n != 1 {
			t.Errorf("event %s: applied %d times, want 1", events[i].ID, n)
		}
	}
	for _, o := range all {
		got, err := stores[0].Order(ctx, o.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != orders.StatusPaid || got.PaidAt == nil || got.FulfilledAt == nil {
			t.Errorf("%s: got status %q, paid %v, fulfilled %v; want paid, set, set", o.ID, got.Status, got.PaidAt, got.FulfilledAt)
		}
	}
	if n := fulfilments.Load(); n != int32(len(all)) {
		t.Errorf("got %d fulfilments, want %d", n, len(all))
	}
	var rows, appliedRows, notes int
	err := stores[1].pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE outcome = 'applied'),
		(SELECT count(*) FROM notifications) FROM events`).Scan(&rows, &appliedRows, &notes)
	if err != nil {
		t.Fatal(err)
	}
	if rows != 40 || appliedRows != 40 || notes != 3*len(all) {
		t.Errorf("got %d event rows, %d applied, %d notifications; want 40, 40, %d", rows, appliedRows, notes, 3*len(all))
	}

	// The success page, the sweep and a redelivery race on a fresh order
	// across both instances: one fulfilment.
	late := storetest.NewOrder("ord_two_late")
	storetest.Seed(t, stores[0], late)
	fulfilments.Store(0)
	start = make(chan struct{})
	for i := range 20 {
		svc := svcs[i%2]
		wg.Go(func() {
			<-start
			var err error
			switch i % 3 {
			case 0:
				_, err = svc.SyncSession(ctx, storetest.CompletedEvent("", late, "paid").Session)
			case 1:
				_, err = svc.HandleEvent(ctx, storetest.CompletedEvent("evt_late", late, "paid"))
			case 2:
				_, err = svc.FulfilPending(ctx)
			}
			if err != nil {
				t.Error(err)
			}
		})
	}
	close(start)
	wg.Wait()
	if n := fulfilments.Load(); n != 1 {
		t.Errorf("racing paths fulfilled %d times, want 1", n)
	}
}

// TestStoredInstants checks that the session's own time zone does not leak
// into what the store returns, and that what is stored is the instant, to
// the microsecond.
func TestStoredInstants(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openURL(t, newSchema(t, "timezone", "America/Sao_Paulo"))
	clock := storetest.NewClock()
	svc := storetest.NewService(s, clock)
	o, _, err := svc.PlaceOrder(ctx, orders.Placement{Currency: "usd", Items: storetest.NewOrder("x").Items})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Order(ctx, o.ID); err != nil || got.CreatedAt.Location() != time.UTC || !got.CreatedAt.Equal(clock.Want()) {
		t.Errorf("CreatedAt = %v, %v; want %v in UTC", got.CreatedAt, err, clock.Want())
	}
	var createdText string
	err = s.pool.QueryRow(ctx, `SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') FROM orders`).Scan(&createdText)
	if err != nil {
		t.Fatal(err)
	}
	if createdText != "2025-06-07 03:09:10.123456" {
		t.Errorf("stored created_at %s, want 2025-06-07 03:09:10.123456", createdText)
	}
}

// TestSynchronousCommit checks that every connection of the pool commits to
// disk before it answers, even when the URL and the database ask otherwise:
// an event acknowledged to Stripe must survive a crash.
func TestSynchronousCommit(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	// Ask for synchronous_commit off twice: in the database's settings and
	// in the URL.
	dbURL := newDatabase(t, "synchronous_commit", "off", "pool_max_conns", "3")
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	adminExec(t, adminURL(t), `ALTER DATABASE `+quoted(u.Path[1:])+` SET synchronous_commit = off`)

	// A pool the store did not set up gets what was asked for.
	plain, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	var setting string
	err = plain.QueryRow(ctx, `SHOW synchronous_commit`).Scan(&setting)
	plain.Close()
	if err != nil {
		t.Fatal(err)
	}
	if setting != "off" {
		t.Fatalf("a plain connection: got synchronous_commit %q, want off (the test's setup did not work)", setting)
	}

	// The store's connections, all of them held at once so that each is a
	// distinct one, have it on.
	s := openURL(t, dbURL)
	var held []*pgxpool.Conn
	defer func() {
		for _, c := range held {
			c.Release()
		}
	}()
	for i := range 3 {
		c, err := s.pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		if err := c.QueryRow(ctx, `SHOW synchronous_commit`).Scan(&setting); err != nil {
			t.Fatal(err)
		}
		if setting != "on" {
			t.Errorf("connection %d: got synchronous_commit %q, want on", i+1, setting)
		}
	}
}

func TestEventRows(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openTest(t)
	o := storetest.NewOrder("ord_ev")
	storetest.Seed(t, s, o)
	svc := storetest.NewService(s, storetest.NewClock())
	events := []orders.Event{
		storetest.CompletedEvent("evt_applied", o, "paid"),
		storetest.EventFor("evt_ignored", "customer.created", o),
		storetest.CompletedEvent("evt_unmatched", o, "paid", func(s *orders.Session) { s.ID, s.OrderID = "cs_x", "" }),
	}
	events[0].Payload = nil // an empty body is still stored
	events[1].Payload = append(events[1].Payload, "\x00\xff not JSON"...)
	for _, ev := range events {
		if _, err := svc.HandleEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	type row struct{ ID, Type, Session, Order, Outcome, Payload string }
	rows, err := s.pool.Query(ctx, `SELECT id, type, session_id, coalesce(order_id, ''), outcome, payload FROM events ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		var payload []byte
		err := r.Scan(&x.ID, &x.Type, &x.Session, &x.Order, &x.Outcome, &payload)
		x.Payload = string(payload)
		return x, err
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []row{
		{"evt_applied", orders.EventSessionCompleted, o.SessionID, o.ID, "applied", ""},
		{"evt_ignored", "customer.created", o.SessionID, o.ID, "ignored", string(events[1].Payload)},
		{"evt_unmatched", orders.EventSessionCompleted, "cs_x", "", "unmatched", string(events[2].Payload)},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events mismatch (-want +got):\n%s", diff)
	}
}

// TestOpenErrors needs no server.
func TestOpenErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		url  string
		opts []Option
	}{
		{"empty url", "", nil},
		{"bad url", "postgres://%zz", nil},
		{"no clock", "postgres://postgres@127.0.0.1:1/x", []Option{WithClock(nil)}},
		{"nobody listening", "postgres://postgres@127.0.0.1:1/x?connect_timeout=5", nil},
	} {
		s, err := Open(t.Context(), tt.url, tt.opts...)
		if err == nil {
			s.Close()
			t.Errorf("%s: got nil error, want one", tt.name)
		}
	}
}

// TestErrorsKeepSentinels checks the wrapping the orders package relies on.
func TestErrorsKeepSentinels(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	o := storetest.NewOrder("ord_err")
	storetest.Seed(t, s, o)
	err := s.Write(t.Context(), func(ctx context.Context, tx orders.Tx) error {
		dup := storetest.NewOrder(o.ID)
		dup.SessionID = "cs_other" // a conflict on the id alone
		if err := tx.InsertOrder(ctx, dup); !errors.Is(err, orders.ErrDuplicate) {
			t.Errorf("InsertOrder(taken id): got %v, want orders.ErrDuplicate", err)
		}
		if _, err := tx.Order(ctx, "ord_missing"); !errors.Is(err, orders.ErrNotFound) {
			t.Errorf("Order(missing): got %v, want orders.ErrNotFound", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Write(t.Context(), func(ctx context.Context, tx orders.Tx) error {
		taken := storetest.NewOrder("ord_err2") // a new id with o's session
		taken.SessionID = o.SessionID
		return tx.InsertOrder(ctx, taken)
	})
	if err == nil || errors.Is(err, orders.ErrDuplicate) {
		t.Errorf("InsertOrder(taken session): got %v, want an error other than orders.ErrDuplicate", err)
	}
	if _, err := s.Order(t.Context(), "ord_missing"); !errors.Is(err, orders.ErrNotFound) {
		t.Errorf("Order(missing): got %v, want orders.ErrNotFound", err)
	}
}

// embeddedVersions lists the versions of the embedded migrations.
func embeddedVersions(t testing.TB) []int {
	t.Helper()
	list, err := orders.ReadMigrations(migrations, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	var v []int
	for _, m := range list {
		v = append(v, m.Version)
	}
	return v
}
