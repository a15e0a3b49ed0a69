package sqlite

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shopcheckout/shop/internal/orders"
	"github.com/shopcheckout/shop/internal/storetest"
)

// openTest opens a store in a fresh directory (one level down, so Open has to
// create it) and closes it when the test ends.
func openTest(t testing.TB, opts ...Option) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "data", "shop.db")
	s, err := Open(t.Context(), path, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, path
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t testing.TB) orders.Store {
		s, _ := openTest(t)
		return s
	})
}

func TestMigrationsIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shop.db")
	for i := range 3 {
		s, err := Open(t.Context(), path)
		if err != nil {
			t.Fatalf("Open #%d: %v", i+1, err)
		}
		var versions []int
		rows, err := s.r.QueryContext(t.Context(), `SELECT version FROM schema_migrations ORDER BY version`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var v int
			if err := rows.Scan(&v); err != nil {
				t.Fatal(err)
			}
			versions = append(versions, v)
		}
		if err := errors.Join(rows.Err(), rows.Close(), s.Close()); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(embeddedVersions(t), versions); diff != "" {
			t.Errorf("open #%d: schema_migrations mismatch (-want +got):\n%s", i+1, diff)
		}
	}
}

func TestReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "shop.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	o := storetest.NewOrder("ord_keep")
	storetest.Seed(t, s, o)
	svc := storetest.NewService(s, storetest.NewClock())
	res, err := svc.HandleEvent(ctx, storetest.CompletedEvent("evt_keep", o, "paid"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	got, err := s.Order(ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(res.Order, got); diff != "" {
		t.Errorf("order after reopening mismatch (-before +after):\n%s", diff)
	}
	svc = storetest.NewService(s, storetest.NewClock())
	again, err := svc.HandleEvent(ctx, storetest.CompletedEvent("evt_keep", o, "paid"))
	if err != nil || !again.Duplicate {
		t.Errorf("HandleEvent after reopening = %+v, %v; want a duplicate", again, err)
	}
}

// TestMigrateExisting opens a database made by the first schema, with an
// order and its event in it, and checks that the later migrations keep both
// and the shop can go on with them.
func TestMigrateExisting(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite", dsn(path, time.Second, false))
	if err != nil {
		t.Fatal(err)
	}
	first, err := migrations.ReadFile("migrations/0001_orders.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL) STRICT`,
		string(first),
		`INSERT INTO schema_migrations VALUES (1, 0)`,
		`INSERT INTO orders (id, status, items, amount_total, currency, session_id, email, review, created_at, updated_at, paid_at, fulfilled_at)
			VALUES ('ord_old', 'paid', '[{"productId":"tshirt","name":"T-shirt","unitAmount":2000,"quantity":1}]', 2000, 'usd',
			'cs_old', 'old@example.com', '', 1000, 2000, 2000, NULL)`,
		`INSERT INTO events (id, type, api_version, session_id, order_id, outcome, created_at, received_at, payload)
			VALUES ('evt_old', 'checkout.session.completed', '2023-10-16', 'cs_old', 'ord_old', 'applied', 1, 2, x'7b7d')`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open on the old schema: %v", err)
	}
	defer s.Close()
	o, err := s.Order(ctx, "ord_old")
	if err != nil || o.Status != orders.StatusPaid || o.Email != "old@example.com" || o.FulfilledAt != nil {
		t.Fatalf("old order after migrating: %+v, %v", o, err)
	}
	var fk int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM pragma_foreign_key_check`).Scan(&fk); err != nil || fk != 0 {
		t.Errorf("foreign key check: %d violations, %v", fk, err)
	}
	// The old paid order was never fulfilled: the sweep completes it, and
	// the old event is still known.
	svc := storetest.NewService(s, storetest.NewClock())
	if n, err := svc.FulfilPending(ctx); err != nil || n != 1 {
		t.Errorf("FulfilPending = %d, %v; want 1", n, err)
	}
	res, err := svc.HandleEvent(ctx, orders.Event{ID: "evt_old", Type: orders.EventSessionCompleted, Session: orders.Session{ID: "cs_old"}})
	if err != nil || !res.Duplicate {
		t.Errorf("the old event again: %+v, %v; want a duplicate", res, err)
	}
}

func TestPragmas(t *testing.T) {
	ctx := t.Context()
	s, _ := openTest(t, WithBusyTimeout(1234*time.Millisecond), WithReadConns(4))
	want := map[string]string{"journal_mode": "wal", "synchronous": "2", "busy_timeout": "1234", "foreign_keys": "1"}
	check := func(name string, c *sql.Conn, queryOnly string) {
		t.Helper()
		got, err := pragmas(ctx, c)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want["query_only"] = queryOnly
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: pragmas mismatch (-want +got):\n%s", name, diff)
		}
	}

	// Readers: hold the whole pool at once, so every connection is a distinct one.
	var held []*sql.Conn
	for i := range 4 {
		c, err := s.r.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		check(fmt.Sprintf("reader %d", i), c, "1")
	}
	for _, c := range held {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.r.ExecContext(ctx, `DELETE FROM orders`); err == nil {
		t.Error("a write through the read pool: got nil error, want one")
	}

	// The writer has one connection at a time: mark it, discard it, and check
	// that its replacement is a new connection set up the same way.
	for i := range 3 {
		c, err := s.w.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var cache int
		if err := c.QueryRowContext(ctx, `PRAGMA cache_size`).Scan(&cache); err != nil {
			t.Fatal(err)
		}
		if cache == -777 {
			t.Fatalf("writer %d: got the previous, discarded connection", i)
		}
		check(fmt.Sprintf("writer %d", i), c, "0")
		if _, err := c.ExecContext(ctx, `PRAGMA cache_size = -777`); err != nil {
			t.Fatal(err)
		}
		if err := c.Raw(func(any) error { return driver.ErrBadConn }); !errors.Is(err, driver.ErrBadConn) {
			t.Fatalf("discarding the writer connection: %v", err)
		}
	}
}

func TestEventRows(t *testing.T) {
	ctx := t.Context()
	s, _ := openTest(t)
	o := storetest.NewOrder("ord_ev")
	storetest.Seed(t, s, o)
	svc := storetest.NewService(s, storetest.NewClock())
	events := []orders.Event{
		storetest.CompletedEvent("evt_applied", o, "paid"),
		storetest.EventFor("evt_ignored", "customer.created", o),
		storetest.CompletedEvent("evt_unmatched", o, "paid", func(s *orders.Session) { s.ID, s.OrderID = "cs_x", "" }),
	}
	events[0].Payload = nil // an empty body is still stored
	for _, ev := range events {
		if _, err := svc.HandleEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	type row struct{ ID, Type, Session, Order, Outcome, Payload string }
	var got []row
	rows, err := s.r.QueryContext(ctx, `SELECT id, type, session_id, coalesce(order_id, ''), outcome, payload FROM events ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.ID, &r.Type, &r.Session, &r.Order, &r.Outcome, &r.Payload); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
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

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name string
		path string
		opts []Option
	}{
		{"empty path", "", nil},
		{"query in path", filepath.Join(dir, "a.db?mode=ro"), nil},
		{"no clock", filepath.Join(dir, "b.db"), []Option{WithClock(nil)}},
		{"no readers", filepath.Join(dir, "c.db"), []Option{WithReadConns(0)}},
	} {
		if s, err := Open(t.Context(), tt.path, tt.opts...); err == nil {
			s.Close()
			t.Errorf("%s: got nil error, want one", tt.name)
		}
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
