package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// statements holds queries prepared once on a pool, by query text. SQLite's
// parser is most of the CPU time of a small statement: a prepared one skips
// it. database/sql keeps each statement prepared on every connection of the
// pool that has run it.
type statements map[string]*sql.Stmt

// prepare prepares queries on db. Open calls it after the migrations, since a
// statement can only be prepared against tables that exist.
func prepare(ctx context.Context, db *sql.DB, queries []string) (statements, error) {
	st := make(statements, len(queries))
	for _, q := range queries {
		if _, ok := st[q]; ok {
			continue
		}
		stmt, err := db.PrepareContext(ctx, q)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("prepare %q: %w", q, err), st.close())
		}
		st[q] = stmt
	}
	return st, nil
}

func (st statements) close() error {
	var errs []error
	for _, stmt := range st {
		errs = append(errs, stmt.Close())
	}
	return errors.Join(errs...)
}

// readPool runs the read pool's queries, prepared ones through their
// statements.
type readPool struct {
	db *sql.DB
	st statements
}

func (p readPool) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if stmt, ok := p.st[query]; ok {
		return stmt.QueryRowContext(ctx, args...)
	}
	return p.db.QueryRowContext(ctx, query, args...)
}

// batchTx is a batch's transaction as its writes see it (their conn). A
// prepared statement is bound to the transaction the first time the batch
// uses it, and then reused by every write of the batch.
type batchTx struct {
	tx       *sql.Tx
	prepared statements
	bound    map[string]*sql.Stmt
}

func (b *batchTx) stmt(ctx context.Context, query string) *sql.Stmt {
	if stmt, ok := b.bound[query]; ok {
		return stmt
	}
	stmt, ok := b.prepared[query]
	if !ok {
		return nil
	}
	stmt = b.tx.StmtContext(ctx, stmt) // closed with the transaction
	b.bound[query] = stmt
	return stmt
}

func (b *batchTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if stmt := b.stmt(ctx, query); stmt != nil {
		return stmt.ExecContext(ctx, args...)
	}
	return b.tx.ExecContext(ctx, query, args...)
}

func (b *batchTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if stmt := b.stmt(ctx, query); stmt != nil {
		return stmt.QueryRowContext(ctx, args...)
	}
	return b.tx.QueryRowContext(ctx, query, args...)
}

func (b *batchTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if stmt := b.stmt(ctx, query); stmt != nil {
		return stmt.QueryContext(ctx, args...)
	}
	return b.tx.QueryContext(ctx, query, args...)
}
