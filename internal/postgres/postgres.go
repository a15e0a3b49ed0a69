// Package postgres keeps orders in PostgreSQL, through pgx's own pool
// (github.com/jackc/pgx/v5/pgxpool).
//
// It uses pgxpool directly rather than database/sql with pgx's stdlib adapter:
// timestamptz, jsonb and bytea map straight to time.Time, JSON bytes and
// []byte; a statement's rows affected come from its command tag; every
// connection the pool opens carries the session settings given in its startup
// message (see Open); and nothing else in the shop needs a *sql.DB from this
// package, since driver imports stay inside it.
//
// Where the SQLite store serializes every write through one connection, this
// store lets writes run in parallel and serializes what must be serialized
// with row locks, across any number of processes sharing the database: each
// state change reads its order with SELECT ... FOR UPDATE in a READ COMMITTED
// transaction, so a second writer waits for the first to commit and then sees
// its result. A duplicate event waits on the events table's primary key
// instead, and finds the id taken once the first delivery commits.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopcheckout/shop/internal/orders"
)

// migrations holds the numbered schema changes, applied in order by Open.
//
//go:embed migrations/*.sql
var migrations embed.FS

// migrationLock is the key of the advisory lock that migrating instances take
// in turn: the bytes of "shop-mig".
const migrationLock int64 = 0x73686f702d6d6967

// Store is an orders.Store backed by a PostgreSQL database. It is safe for
// concurrent use, also by several processes on one database; build it with
// Open.
type Store struct {
	pool *pgxpool.Pool
	now  func() time.Time
}

var _ orders.Store = (*Store)(nil)

// Option configures Open.
type Option func(*options)

type options struct {
	now func() time.Time
}

// WithClock sets the clock used for the created, updated, paid and fulfilled
// times the store records, and the time it received an event. The default is
// time.Now.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// Open connects to the database at url (a postgres:// URL or a key=value
// connection string, as pgx reads them: pool_max_conns and the other pool_
// settings included) and brings its schema up to date. Tables are created
// unqualified, so in the first schema of the connection's search_path.
//
// Every connection is opened with synchronous_commit=on, whatever the URL,
// the database's or the server's setting: the webhook tells Stripe an event
// is stored only after the commit, so the commit must be on disk.
func Open(ctx context.Context, url string, opts ...Option) (*Store, error) {
	o := options{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case url == "":
		return nil, errors.New("postgres: empty database url")
	case o.now == nil:
		return nil, errors.New("postgres: nil clock")
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err) // pgx leaves the password out
	}
	// Startup parameters outrank ALTER DATABASE/ROLE settings and
	// postgresql.conf, and hold for the connection's life.
	cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "on"
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "shop"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	s := &Store{pool: pool, now: o.now}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect to %s: %w", target(cfg), err)
	}
	if err := migrate(ctx, pool, migrations, s.clock); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: migrate %s: %w", target(cfg), err)
	}
	return s, nil
}

// target names the database of cfg for error messages, without credentials.
func target(cfg *pgxpool.Config) string {
	c := cfg.ConnConfig
	return fmt.Sprintf("database %q on %s:%d", c.Database, c.Host, c.Port)
}

// migrate applies the migrations of fsys not applied yet, each in its own
// transaction together with its row in schema_migrations.
//
// Every transaction first takes a transaction-scoped advisory lock, so
// instances that start at once on a fresh database take turns: the first
// creates schema_migrations and applies a migration, the others wait, then
// find it recorded. The lock goes with the commit or rollback, so a crashed
// migrator never leaves it held.
func migrate(ctx context.Context, pool *pgxpool.Pool, fsys fs.FS, now func() time.Time) error {
	list, err := orders.ReadMigrations(fsys, "migrations/*.sql")
	if err != nil {
		return err
	}
	for _, m := range list {
		err := inTx(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
				return fmt.Errorf("lock: %w", err)
			}
			if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
				version    integer PRIMARY KEY,
				name       text NOT NULL,
				applied_at timestamptz NOT NULL
			)`); err != nil {
				return fmt.Errorf("create schema_migrations: %w", err)
			}
			var done bool
			err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`, m.Version).Scan(&done)
			if err != nil || done {
				return err // done: applied by another instance, or by an earlier start
			}
			// Without arguments pgx sends the file as one simple query, so it
			// may hold several statements.
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
				m.Version, m.Name, now())
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
	}
	return nil
}

// inTx runs fn in a READ COMMITTED transaction and commits it if fn succeeds;
// it rolls back if fn fails or panics. The isolation level is set, not left
// to the server's default, because the row-lock protocol relies on it: a
// statement that waited for a row lock reads the row as committed by the
// holder, where REPEATABLE READ would fail with a serialization error.
func inTx(ctx context.Context, pool *pgxpool.Pool, fn func(pgx.Tx) error) (err error) {
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	committed := false
	defer func() {
		if committed {
			return
		}
		// Roll back even when ctx is done, but do not wait forever on a dead
		// server; pgx closes the connection if the rollback fails.
		rbCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if rbErr := tx.Rollback(rbCtx); rbErr != nil && err != nil && !errors.Is(rbErr, pgx.ErrTxClosed) {
			err = errors.Join(err, fmt.Errorf("rollback: %w", rbErr))
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	committed = true
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// clock returns the store's now at the precision it keeps, in UTC.
func (s *Store) clock() time.Time {
	return s.now().UTC().Truncate(time.Microsecond)
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

// Close closes the pool, waiting for connections in use to be returned. It
// always returns nil; the error is there for orders.Store.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}
