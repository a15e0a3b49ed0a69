// Package sqlite keeps orders in a SQLite file, through the pure-Go driver
// modernc.org/sqlite.
//
// A Store holds two pools on the same file: a writer with a single connection,
// whose transactions begin IMMEDIATE so every write is serialized and never
// upgrades a read lock halfway, and a small read-only pool for queries, which
// WAL mode lets run alongside the writer. Writes are group-committed: those
// that arrive together share one transaction and one sync of the disk (see
// batch.go).
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shopcheckout/shop/internal/orders"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// migrations holds the numbered schema changes, applied in order by Open.
//
//go:embed migrations/*.sql
var migrations embed.FS

// Store is an orders.Store backed by a SQLite file. It is safe for concurrent
// use; build it with Open.
type Store struct {
	w        *sql.DB // one connection, BEGIN IMMEDIATE: every write goes through here
	r        *sql.DB // read-only pool
	prepared statements
	reads    readPool // r, with its prepared statements
	now      func() time.Time
	lock     *os.File // the shared lock on path + ".lock", until Close (see lock.go)

	mu      sync.Mutex
	queue   []*writeOp // writes waiting for the writer goroutine
	closed  bool
	wake    chan struct{} // a write was queued
	quit    chan struct{} // Close: the writer stops
	stopped chan struct{} // the writer has stopped
	commits atomic.Int64  // batches committed, for tests and benchmarks
	busy    atomic.Int64  // nanoseconds the writer spent running batches, for benchmarks
}

var _ orders.Store = (*Store)(nil)

// Option configures Open.
type Option func(*options)

type options struct {
	now         func() time.Time
	busyTimeout time.Duration
	readConns   int
}

// WithClock sets the clock used for the created, updated, paid and fulfilled
// times the store records. The default is time.Now.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// WithBusyTimeout sets how long a connection waits for another process's lock
// before failing with SQLITE_BUSY. The default is five seconds.
func WithBusyTimeout(d time.Duration) Option {
	return func(o *options) { o.busyTimeout = d }
}

// WithReadConns sets the size of the read-only pool. The default is 4.
func WithReadConns(n int) Option {
	return func(o *options) { o.readConns = n }
}

// Open opens, creating it and its directory if needed, the database at path
// and brings its schema up to date. The Store holds a shared lock on the
// file path + ".lock" until Close, which Restore checks for; while a restore
// runs, Open waits for it up to the busy timeout.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	o := options{now: time.Now, busyTimeout: 5 * time.Second, readConns: 4}
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case path == "" || strings.ContainsRune(path, '?'):
		return nil, fmt.Errorf("sqlite: invalid path %q", path)
	case o.now == nil:
		return nil, errors.New("sqlite: nil clock")
	case o.busyTimeout < 0:
		return nil, fmt.Errorf("sqlite: negative busy timeout %v", o.busyTimeout)
	case o.readConns < 1:
		return nil, fmt.Errorf("sqlite: %d read connections, want at least 1", o.readConns)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	lock, err := lockShared(ctx, path, o.busyTimeout)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}

	w, err := sql.Open("sqlite", dsn(path, o.busyTimeout, false))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite: open writer: %w", err), lock.Close())
	}
	w.SetMaxOpenConns(1)
	s := &Store{w: w, now: o.now, lock: lock, wake: make(chan struct{}, 1), quit: make(chan struct{}), stopped: make(chan struct{})}
	go s.writer()
	// Connect and migrate before the readers exist, so the file is already in
	// WAL mode and has its tables when they first look at it.
	if err := w.PingContext(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite: open %s: %w", path, err), closeWriter(s))
	}
	if err := s.migrate(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite: migrate %s: %w", path, err), closeWriter(s))
	}
	if s.prepared, err = prepare(ctx, w, writeQueries); err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite: %w", err), closeWriter(s))
	}

	r, err := sql.Open("sqlite", dsn(path, o.busyTimeout, true))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite: open readers: %w", err), closeWriter(s))
	}
	r.SetMaxOpenConns(o.readConns)
	r.SetMaxIdleConns(o.readConns)
	s.r = r
	s.reads.db = r
	if err := r.PingContext(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite: open %s: %w", path, err), s.Close())
	}
	if s.reads.st, err = prepare(ctx, r, readQueries); err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite: %w", err), s.Close())
	}
	return s, nil
}

// dsn builds the data source name. The pragmas go in the DSN, not in an Exec
// after Open, because database/sql opens connections whenever it likes: only
// the DSN reaches every one of them.
func dsn(path string, busyTimeout time.Duration, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)") // a commit survives power loss, not only a crash
	q.Add("_pragma", "foreign_keys(1)")
	if readOnly {
		q.Set("_query_only", "1")
	} else {
		q.Set("_txlock", "immediate")
	}
	return path + "?" + q.Encode()
}

// migrate applies, each in its own transaction together with its row in
// schema_migrations, the embedded migrations not applied yet.
func (s *Store) migrate(ctx context.Context) error {
	const create = `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at INTEGER NOT NULL -- unix microseconds, UTC
	) STRICT`
	if _, err := s.w.ExecContext(ctx, create); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	list, err := orders.ReadMigrations(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	for _, m := range list {
		version, body, base := m.Version, m.SQL, m.Name
		err = s.write(ctx, func(ctx context.Context, tx conn) error {
			var done bool
			err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?)`, version).Scan(&done)
			if err != nil {
				return err
			}
			if done {
				return nil // applied meanwhile by another process
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, version, s.clock().UnixMicro())
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %s: %w", base, err)
		}
	}
	return nil
}

// clock returns the store's now at the precision it keeps.
func (s *Store) clock() time.Time {
	return s.now().UTC().Truncate(time.Microsecond)
}

// Ping reports whether both pools answer.
func (s *Store) Ping(ctx context.Context) error {
	if err := errors.Join(s.w.PingContext(ctx), s.r.PingContext(ctx)); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	return nil
}

// Close fails the writes still queued, waits for the batch in progress,
// closes both pools and then releases the lock file.
func (s *Store) Close() error {
	s.stopWriter()
	if err := errors.Join(s.prepared.close(), s.reads.st.close(), s.r.Close(), s.w.Close(), s.unlock()); err != nil {
		return fmt.Errorf("sqlite: close: %w", err)
	}
	return nil
}

// stopWriter stops the writer goroutine, answering queued writes with
// ErrClosed. Like Close, it may be called again.
func (s *Store) stopWriter() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	queued := s.queue
	s.queue = nil
	for _, op := range queued {
		op.taken = true
	}
	s.mu.Unlock()
	for _, op := range queued {
		op.done <- ErrClosed
	}
	close(s.quit)
	<-s.stopped
}

// pragmas reports the settings of one connection that the DSN is meant to
// have applied, as SQLite prints them.
func pragmas(ctx context.Context, c *sql.Conn) (map[string]string, error) {
	m := map[string]string{}
	for _, name := range []string{"journal_mode", "synchronous", "busy_timeout", "foreign_keys", "query_only"} {
		var v string
		if err := c.QueryRowContext(ctx, "PRAGMA "+name).Scan(&v); err != nil {
			return nil, fmt.Errorf("pragma %s: %w", name, err)
		}
		m[name] = v
	}
	return m, nil
}

// unlock releases the lock file, once: after it, a restore may replace the
// database.
func (s *Store) unlock() error {
	s.mu.Lock()
	f := s.lock
	s.lock = nil
	s.mu.Unlock()
	if f == nil {
		return nil
	}
	return f.Close()
}

// closeWriter undoes a half-done Open.
func closeWriter(s *Store) error {
	s.stopWriter()
	return errors.Join(s.prepared.close(), s.w.Close(), s.unlock())
}
