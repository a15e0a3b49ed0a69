package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shopcheckout/shop/internal/orders"
)

const orderColumns = `id, status, items, amount_total, currency, session_id, email, review,
	created_at, updated_at, paid_at, fulfilled_at`

// querier is what reads need from the pool or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// CreateOrder records a new order, or returns an error wrapping
// orders.ErrDuplicate if its id is taken. A zero CreatedAt is set from the
// store's clock, and a zero UpdatedAt to CreatedAt; times are kept to the
// microsecond.
func (s *Store) CreateOrder(ctx context.Context, o orders.Order) error {
	switch {
	case o.ID == "":
		return errors.New("postgres: create order: empty id")
	case !o.Status.Valid():
		return fmt.Errorf("postgres: create order %s: invalid status %q", o.ID, o.Status)
	}
	items, err := json.Marshal(o.Items)
	if err != nil {
		return fmt.Errorf("postgres: create order %s: %w", o.ID, err)
	}
	if o.CreatedAt.IsZero() {
		o.CreatedAt = s.clock()
	}
	if o.UpdatedAt.IsZero() {
		o.UpdatedAt = o.CreatedAt
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO orders (`+orderColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (id) DO NOTHING`,
		o.ID, string(o.Status), string(items), o.AmountTotal, o.Currency, nullString(o.SessionID), o.Email, o.Review,
		micros(o.CreatedAt), micros(o.UpdatedAt), nullTime(o.PaidAt), nullTime(o.FulfilledAt))
	if err != nil {
		return fmt.Errorf("postgres: create order %s: %w", o.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: create order %s: %w", o.ID, orders.ErrDuplicate)
	}
	return nil
}

// SetSession records the Checkout Session of an order that has none yet.
// Setting the session it already has is a no-op; replacing a different one, or
// taking another order's, is an error.
func (s *Store) SetSession(ctx context.Context, orderID, sessionID string) error {
	if sessionID == "" {
		return fmt.Errorf("postgres: set session of order %s: empty session id", orderID)
	}
	err := inTx(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE orders SET session_id = $1, updated_at = $2
			WHERE id = $3 AND session_id IS NULL`, sessionID, s.clock(), orderID)
		if err != nil {
			if isUniqueViolation(err) {
				return fmt.Errorf("session %s belongs to another order: %w", sessionID, err)
			}
			return err
		}
		if tag.RowsAffected() == 1 {
			return nil
		}
		// A session, once set, never changes: no lock needed to compare it.
		o, err := getOrder(ctx, tx, "id = $1", orderID)
		if err != nil {
			return err
		}
		if o.SessionID != sessionID {
			return fmt.Errorf("order already has session %s", o.SessionID)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: set session of order %s: %w", orderID, err)
	}
	return nil
}

// Order returns one order, or an error wrapping orders.ErrNotFound.
func (s *Store) Order(ctx context.Context, id string) (orders.Order, error) {
	o, err := getOrder(ctx, s.pool, "id = $1", id)
	if err != nil {
		return orders.Order{}, fmt.Errorf("postgres: order %s: %w", id, err)
	}
	return o, nil
}

// OrderBySession returns the order of a Checkout Session, or an error wrapping
// orders.ErrNotFound.
func (s *Store) OrderBySession(ctx context.Context, sessionID string) (orders.Order, error) {
	o, err := getOrder(ctx, s.pool, "session_id = $1", sessionID)
	if err != nil {
		return orders.Order{}, fmt.Errorf("postgres: order of session %s: %w", sessionID, err)
	}
	return o, nil
}

// ListOrders returns orders newest first (the greater id first among orders
// created at the same time): at most 200 by default, and never more than 1000.
func (s *Store) ListOrders(ctx context.Context, f orders.ListFilter) ([]orders.Order, error) {
	limit := f.Bound()
	query, args := `SELECT `+orderColumns+` FROM orders`, []any{}
	if f.Status != "" {
		if !f.Status.Valid() {
			return nil, fmt.Errorf("postgres: list orders: invalid status %q", f.Status)
		}
		query, args = query+` WHERE status = $1`, append(args, string(f.Status))
	}
	query, args = query+fmt.Sprintf(` ORDER BY created_at DESC, id DESC LIMIT $%d`, len(args)+1), append(args, limit)
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: list orders: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (orders.Order, error) { return scanOrder(row) })
	if err != nil {
		return nil, fmt.Errorf("postgres: list orders: %w", err)
	}
	return list, nil
}

// ApplyEvent stores ev and applies it to its order in one transaction. An
// event id already stored is reported as a duplicate and changes nothing.
//
// The insert comes first: a second delivery of the same event, from this
// process or another, waits on the primary key until the first commits, then
// finds the id taken. The order is then read FOR UPDATE, so events of one
// order, and Fulfil and Reconcile on it, take turns.
func (s *Store) ApplyEvent(ctx context.Context, ev orders.Event) (orders.ApplyResult, error) {
	if ev.ID == "" {
		return orders.ApplyResult{}, errors.New("postgres: apply event: empty id")
	}
	var res orders.ApplyResult
	err := inTx(ctx, s.pool, func(tx pgx.Tx) error {
		payload := ev.Payload
		if payload == nil {
			payload = []byte{} // bytea NOT NULL: an empty body is still a body
		}
		tag, err := tx.Exec(ctx, `INSERT INTO events
			(id, type, api_version, session_id, outcome, created_at, received_at, payload)
			VALUES ($1, $2, $3, $4, 'unmatched', $5, $6, $7) ON CONFLICT (id) DO NOTHING`,
			ev.ID, ev.Type, ev.APIVersion, ev.Session.ID, micros(ev.Created), s.clock(), payload)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			res.Duplicate = true
			return nil
		}

		// Only an event the shop acts on may bind a session to an order.
		handled := orders.Handled(ev.Type)
		o, ok, err := s.findOrder(ctx, tx, ev.Session, handled)
		if err != nil {
			return err
		}
		outcome := "ignored"
		switch {
		case ok && handled:
			outcome = "applied"
			res.Matched, res.Previous = true, o.Status
			if res.Order, err = s.apply(ctx, tx, o, ev.Type, ev.Session); err != nil {
				return err
			}
		case ok:
			res.Matched, res.Previous, res.Order = true, o.Status, o
		case handled:
			outcome = "unmatched"
		}
		_, err = tx.Exec(ctx, `UPDATE events SET outcome = $1, order_id = $2 WHERE id = $3`,
			outcome, nullString(o.ID), ev.ID)
		return err
	})
	if err != nil {
		return orders.ApplyResult{}, fmt.Errorf("postgres: apply event %s: %w", ev.ID, err)
	}
	return res, nil
}

// Reconcile applies a direct read of a Checkout Session to its order and
// returns the order afterwards, or an error wrapping orders.ErrNotFound.
func (s *Store) Reconcile(ctx context.Context, sess orders.Session) (orders.Order, error) {
	var o orders.Order
	err := inTx(ctx, s.pool, func(tx pgx.Tx) error {
		found, ok, err := s.findOrder(ctx, tx, sess, true)
		switch {
		case err != nil:
			return err
		case !ok:
			return orders.ErrNotFound
		}
		o, err = s.apply(ctx, tx, found, "", sess)
		return err
	})
	if err != nil {
		return orders.Order{}, fmt.Errorf("postgres: reconcile session %s: %w", sess.ID, err)
	}
	return o, nil
}

// Fulfil calls fn for a paid, unfulfilled order inside the transaction that
// then records fulfilled_at. The order's row stays locked (FOR UPDATE) from
// the read to the commit, so concurrent calls, in this process or another,
// run one after another and only the first finds the order unfulfilled.
//
// Callers waiting for the lock hold a pool connection each, so fn should be
// quick and must not use the store itself: with the pool taken by waiters it
// could wait for a connection forever.
func (s *Store) Fulfil(ctx context.Context, orderID string, fn func(context.Context, orders.Order) error) (bool, error) {
	fulfilled := false
	err := inTx(ctx, s.pool, func(tx pgx.Tx) error {
		o, err := getOrder(ctx, tx, "id = $1 FOR UPDATE", orderID)
		if err != nil {
			return err
		}
		if o.Status != orders.StatusPaid || o.FulfilledAt != nil {
			return nil // not ready, or done already
		}
		if err := fn(ctx, o); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE orders SET fulfilled_at = $1
			WHERE id = $2 AND fulfilled_at IS NULL AND status = 'paid'`, s.clock(), orderID)
		if err != nil {
			return err
		}
		if err := oneRow(tag); err != nil {
			return err
		}
		fulfilled = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("postgres: fulfil order %s: %w", orderID, err)
	}
	return fulfilled, nil
}

// Unfulfilled lists the ids of paid orders not yet fulfilled, oldest order
// first.
func (s *Store) Unfulfilled(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT id FROM orders
		WHERE status = 'paid' AND fulfilled_at IS NULL ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("postgres: unfulfilled: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: unfulfilled: %w", err)
	}
	return ids, nil
}

// findOrder finds, and locks FOR UPDATE, the order a Checkout Session belongs
// to: the one that recorded the session, or else the one the session names
// (client_reference_id) if that order has no other session. With bind, a
// session matched by order id is recorded on the order.
//
// Under READ COMMITTED a locking read that waited for another transaction
// sees the row as that transaction committed it, so a session bound
// meanwhile is seen by the second lookup.
func (s *Store) findOrder(ctx context.Context, tx pgx.Tx, sess orders.Session, bind bool) (orders.Order, bool, error) {
	if sess.ID != "" {
		o, err := getOrder(ctx, tx, "session_id = $1 FOR UPDATE", sess.ID)
		if !errors.Is(err, orders.ErrNotFound) {
			return o, err == nil, err
		}
	}
	if sess.OrderID == "" {
		return orders.Order{}, false, nil
	}
	o, err := getOrder(ctx, tx, "id = $1 FOR UPDATE", sess.OrderID)
	switch {
	case errors.Is(err, orders.ErrNotFound):
		return orders.Order{}, false, nil
	case err != nil:
		return orders.Order{}, false, err
	case o.SessionID != "" && o.SessionID != sess.ID:
		return orders.Order{}, false, nil // the order belongs to another session
	}
	if bind && o.SessionID == "" && sess.ID != "" {
		now := s.clock()
		tag, err := tx.Exec(ctx, `UPDATE orders SET session_id = $1, updated_at = $2
			WHERE id = $3 AND session_id IS NULL`, sess.ID, now, o.ID)
		if err != nil {
			return orders.Order{}, false, err
		}
		if err := oneRow(tag); err != nil {
			return orders.Order{}, false, err
		}
		o.SessionID, o.UpdatedAt = sess.ID, now
	}
	return o, true, nil
}

// apply runs the state machine on o, which the transaction holds locked, for
// an observation of its session, and saves the change, if any. The update is
// still conditional on the status read, so a broken lock shows as an error
// rather than a lost update.
func (s *Store) apply(ctx context.Context, tx pgx.Tx, o orders.Order, eventType string, sess orders.Session) (orders.Order, error) {
	c := orders.Next(o, eventType, sess)
	if !c.Changed {
		return o, nil
	}
	now := s.clock()
	paidAt := o.PaidAt
	if c.Status == orders.StatusPaid && paidAt == nil {
		paidAt = &now
	}
	tag, err := tx.Exec(ctx, `UPDATE orders SET status = $1, email = $2, review = $3, updated_at = $4, paid_at = $5
		WHERE id = $6 AND status = $7`,
		string(c.Status), c.Email, c.Review, now, nullTime(paidAt), o.ID, string(o.Status))
	if err != nil {
		return orders.Order{}, err
	}
	if err := oneRow(tag); err != nil {
		return orders.Order{}, err
	}
	o.Status, o.Email, o.Review, o.UpdatedAt, o.PaidAt = c.Status, c.Email, c.Review, now, paidAt
	return o, nil
}

// getOrder returns the order matching where (which may end in FOR UPDATE), or
// an error wrapping orders.ErrNotFound.
func getOrder(ctx context.Context, q querier, where string, args ...any) (orders.Order, error) {
	o, err := scanOrder(q.QueryRow(ctx, `SELECT `+orderColumns+` FROM orders WHERE `+where, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return orders.Order{}, orders.ErrNotFound
	}
	return o, err
}

// scanOrder reads a row of orderColumns. pgx returns timestamptz values in the
// local time zone; the store hands them out in UTC.
func scanOrder(row pgx.Row) (orders.Order, error) {
	var (
		o               orders.Order
		status          string
		items           []byte
		session         *string
		paid, fulfilled *time.Time
	)
	err := row.Scan(&o.ID, &status, &items, &o.AmountTotal, &o.Currency, &session, &o.Email, &o.Review,
		&o.CreatedAt, &o.UpdatedAt, &paid, &fulfilled)
	if err != nil {
		return orders.Order{}, err
	}
	if err := json.Unmarshal(items, &o.Items); err != nil {
		return orders.Order{}, fmt.Errorf("order %s: items: %w", o.ID, err)
	}
	o.Status = orders.Status(status)
	if session != nil {
		o.SessionID = *session
	}
	o.CreatedAt, o.UpdatedAt = o.CreatedAt.UTC(), o.UpdatedAt.UTC()
	o.PaidAt, o.FulfilledAt = utcPtr(paid), utcPtr(fulfilled)
	return o, nil
}

// oneRow checks that an update touched exactly one row: the conditions it was
// written under still held.
func oneRow(tag pgconn.CommandTag) error {
	if n := tag.RowsAffected(); n != 1 {
		return fmt.Errorf("order changed concurrently: %d rows updated, want 1", n)
	}
	return nil
}

// isUniqueViolation reports whether err is PostgreSQL's unique_violation.
func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// nullString maps "" to NULL.
func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// micros returns t in UTC, cut to the microsecond timestamptz keeps, so what
// is stored is exactly what is read back.
func micros(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// nullTime maps nil to NULL and cuts a time to the microsecond.
func nullTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	m := micros(*t)
	return &m
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
