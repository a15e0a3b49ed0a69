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
		if diff := cmp.Diff([]int{1}, versions); diff != "" {
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
	if err := s.CreateOrder(ctx, o); err != nil {
		t.Fatal(err)
	}
	res, err := s.ApplyEvent(ctx, storetest.CompletedEvent("evt_keep", o, "paid"))
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
	again, err := s.ApplyEvent(ctx, storetest.CompletedEvent("evt_keep", o, "paid"))
	if err != nil || !again.Duplicate {
		t.Errorf("ApplyEvent after reopening = %+v, %v; want a duplicate", again, err)
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

func TestClock(t *testing.T) {
	storetest.Clock(t, func(t testing.TB, now func() time.Time) orders.Store {
		s, _ := openTest(t, WithClock(now))
		return s
	})
}

func TestEventRows(t *testing.T) {
	ctx := t.Context()
	s, _ := openTest(t)
	o := storetest.NewOrder("ord_ev")
	if err := s.CreateOrder(ctx, o); err != nil {
		t.Fatal(err)
	}
	events := []orders.Event{
		storetest.CompletedEvent("evt_applied", o, "paid"),
		storetest.EventFor("evt_ignored", "customer.created", o),
		storetest.CompletedEvent("evt_unmatched", o, "paid", func(s *orders.Session) { s.ID, s.OrderID = "cs_x", "" }),
	}
	events[0].Payload = nil // an empty body is still stored
	for _, ev := range events {
		if _, err := s.ApplyEvent(ctx, ev); err != nil {
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
