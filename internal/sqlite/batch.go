package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Group commit. With synchronous=FULL every COMMIT waits for the disk, so one
// transaction per write caps the store at the disk's sync rate. Instead every
// write is queued for a single writer goroutine, which runs the writes queued
// together in one BEGIN IMMEDIATE transaction on the writer connection, each
// inside a savepoint of its own, and answers them all after the one COMMIT.
//
//   - A write that fails rolls back to its savepoint: only it sees the error.
//   - A failed COMMIT (or a transaction SQLite abandoned) fails every write
//     in the batch, so nothing unstored is ever reported stored.
//   - Writes in a batch run one after another on one connection, so each sees
//     the ones before it: the same event twice is a duplicate the second
//     time, and Fulfil re-reads an order the batch just paid.
//   - A write leaves the queue if its context ends first; once the writer has
//     taken it, it runs, its statements do not see the caller's cancellation
//     (SQLite's interrupt would roll back the whole batch), and its caller
//     waits for the outcome, which is then the truth.
const (
	// maxBatch caps the writes in one transaction, so a batch's latency
	// stays bounded however long the queue grows.
	maxBatch = 128
	// maxLinger bounds how long the writer keeps collecting while more
	// writes keep arriving.
	maxLinger = 200 * time.Microsecond
)

// ErrClosed is returned by writes to a closed Store.
var ErrClosed = errors.New("sqlite: store closed")

// conn is what a write runs its statements on: the writer connection, inside
// the batch's transaction and the write's own savepoint.
type conn interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// writeOp is one write waiting for a batch, or in one.
type writeOp struct {
	ctx   context.Context
	fn    func(context.Context, conn) error
	taken bool       // guarded by Store.mu: the writer has it, so it will run
	err   error      // fn's own outcome, set by the writer
	done  chan error // buffered, so answering never blocks the writer
}

// panicError carries a panic in a write's fn back to its caller's goroutine.
type panicError struct{ value any }

func (p panicError) Error() string { return fmt.Sprintf("panic in write: %v", p.value) }

// write runs fn in the next batch, and returns once that batch has committed
// (nil), or with fn's error, or the batch's if it failed as a whole. fn runs
// on the writer goroutine; its ctx keeps the caller's values but not its
// cancellation.
func (s *Store) write(ctx context.Context, fn func(context.Context, conn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	op := &writeOp{ctx: ctx, fn: fn, done: make(chan error, 1)}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.queue = append(s.queue, op)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default: // the writer has been woken already
	}

	var err error
	select {
	case err = <-op.done:
	case <-ctx.Done():
		s.mu.Lock()
		taken := op.taken
		if !taken {
			s.queue = slices.DeleteFunc(s.queue, func(o *writeOp) bool { return o == op })
		}
		s.mu.Unlock()
		if !taken {
			return ctx.Err()
		}
		err = <-op.done
	}
	if p, ok := err.(panicError); ok {
		panic(p.value)
	}
	return err
}

// writer runs batches until Close.
func (s *Store) writer() {
	defer close(s.stopped)
	var batch []*writeOp
	for {
		select {
		case <-s.wake:
		case <-s.quit:
			return
		}
		for {
			if batch = s.collect(batch[:0]); len(batch) == 0 {
				break
			}
			start := time.Now()
			err := s.runBatch(batch)
			s.busy.Add(int64(time.Since(start)))
			for _, op := range batch {
				if op.err == nil {
					op.err = err
				}
				op.done <- op.err
			}
			clear(batch)
		}
	}
}

// collect takes queued writes for the next batch. When more arrive right
// after the first (callers answered by the last batch, each with its next
// write), it keeps collecting as long as they keep coming, briefly.
func (s *Store) collect(batch []*writeOp) []*writeOp {
	batch = s.take(batch)
	deadline := time.Now().Add(maxLinger)
	for len(batch) > 0 && len(batch) < maxBatch && time.Now().Before(deadline) {
		runtime.Gosched()
		n := len(batch)
		if batch = s.take(batch); len(batch) == n {
			break
		}
	}
	return batch
}

// take moves queued writes into batch, up to maxBatch.
func (s *Store) take(batch []*writeOp) []*writeOp {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := min(len(s.queue), maxBatch-len(batch))
	for _, op := range s.queue[:n] {
		op.taken = true
	}
	batch = append(batch, s.queue[:n]...)
	s.queue = slices.Delete(s.queue, 0, n)
	return batch
}

// The statements that delimit each write of a batch.
const (
	qSavepoint  = "SAVEPOINT write"
	qRelease    = "RELEASE write"
	qRollbackTo = "ROLLBACK TO write"
)

// runBatch runs batch in one transaction (BEGIN IMMEDIATE, from the DSN),
// setting each write's own error, and returns an error if the transaction as
// a whole did not commit.
func (s *Store) runBatch(batch []*writeOp) error {
	ctx := context.Background()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	bt := &batchTx{tx: tx, prepared: s.prepared, bound: make(map[string]*sql.Stmt, len(s.prepared))}
	for _, op := range batch {
		if _, err := bt.ExecContext(ctx, qSavepoint); err != nil {
			return s.abort(tx, fmt.Errorf("savepoint: %w", err))
		}
		if op.err = run(bt, op); op.err != nil {
			// Some errors (I/O, a full disk) can make SQLite abandon the
			// whole transaction; then the savepoint is gone too, and so is
			// every write before this one.
			if _, err := bt.ExecContext(ctx, qRollbackTo); err != nil {
				return s.abort(tx, fmt.Errorf("transaction abandoned after a failed write: %v", op.err))
			}
		}
		if _, err := bt.ExecContext(ctx, qRelease); err != nil {
			return s.abort(tx, fmt.Errorf("release savepoint: %w", err))
		}
	}
	if err := tx.Commit(); err != nil {
		// SQLite may keep the transaction open after a failed COMMIT (a
		// deferred constraint, a full disk), while database/sql has
		// returned the connection to the pool: end it there.
		s.endTransaction()
		return fmt.Errorf("commit: %w", err)
	}
	s.commits.Add(1)
	return nil
}

// abort rolls back a failed batch and returns err.
func (s *Store) abort(tx *sql.Tx, err error) error {
	if rbErr := tx.Rollback(); rbErr != nil {
		s.endTransaction()
	}
	return err
}

// endTransaction makes sure the writer connection is not left inside a
// transaction, rolling back whatever is open; a connection that cannot is
// dropped, and the pool opens a fresh one for the next batch.
func (s *Store) endTransaction() {
	ctx := context.Background()
	c, err := s.w.Conn(ctx)
	if err != nil {
		return
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, "ROLLBACK"); err != nil && !strings.Contains(err.Error(), "no transaction is active") {
		_ = c.Raw(func(any) error { return driver.ErrBadConn })
	}
}

// run calls op's fn, turning a panic into a panicError.
func run(c conn, op *writeOp) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = panicError{v}
		}
	}()
	return op.fn(context.WithoutCancel(op.ctx), c)
}
