package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/shopcheckout/shop/internal/orders"
)

const orderColumns = `id, status, items, amount_total, currency, session_id, email, review,
	created_at, updated_at, paid_at, fulfilled_at`

// The statements of the hot paths, prepared once by Open (see statements).
const (
	qInsertOrder = `INSERT INTO orders (` + orderColumns + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`
	qBindSession = `UPDATE orders SET session_id = ?, updated_at = ? WHERE id = ? AND session_id IS NULL`
	qOrderByID   = `SELECT ` + orderColumns + ` FROM orders WHERE id = ?`
	qOrderBySess = `SELECT ` + orderColumns + ` FROM orders WHERE session_id = ?`
	qInsertEvent = `INSERT INTO events (id, type, api_version, session_id, order_id, outcome, created_at, received_at, payload)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`
	qApply = `UPDATE orders SET status = ?, email = ?, review = ?, updated_at = ?, paid_at = ?
		WHERE id = ? AND status = ?`
	qFulfil = `UPDATE orders SET fulfilled_at = ?
		WHERE id = ? AND fulfilled_at IS NULL AND status = 'paid' RETURNING ` + orderColumns
)

var (
	writeQueries = []string{qInsertOrder, qBindSession, qOrderByID, qOrderBySess, qInsertEvent, qApply, qFulfil,
		qSavepoint, qRelease, qRollbackTo}
	readQueries = []string{qOrderByID, qOrderBySess}
)

// querier is what reads need from a pool or a transaction.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// CreateOrder records a new order. A zero CreatedAt is set from the store's
// clock, and a zero UpdatedAt to CreatedAt; times are kept to the microsecond.
func (s *Store) CreateOrder(ctx context.Context, o orders.Order) error {
	switch {
	case o.ID == "":
		return errors.New("sqlite: create order: empty id")
	case !o.Status.Valid():
		return fmt.Errorf("sqlite: create order %s: invalid status %q", o.ID, o.Status)
	}
	items, err := json.Marshal(o.Items)
	if err != nil {
		return fmt.Errorf("sqlite: create order %s: %w", o.ID, err)
	}
	if o.CreatedAt.IsZero() {
		o.CreatedAt = s.clock()
	}
	if o.UpdatedAt.IsZero() {
		o.UpdatedAt = o.CreatedAt
	}
	err = s.write(ctx, func(ctx context.Context, tx conn) error {
		res, err := tx.ExecContext(ctx, qInsertOrder,
			o.ID, o.Status, string(items), o.AmountTotal, o.Currency, nullString(o.SessionID), o.Email, o.Review,
			o.CreatedAt.UnixMicro(), o.UpdatedAt.UnixMicro(), nullTime(o.PaidAt), nullTime(o.FulfilledAt))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
		return orders.ErrDuplicate
	})
	if err != nil {
		return fmt.Errorf("sqlite: create order %s: %w", o.ID, err)
	}
	return nil
}

// SetSession records the Checkout Session of an order that has none yet. Setting
// the session it already has is a no-op; replacing a different one is an error.
func (s *Store) SetSession(ctx context.Context, orderID, sessionID string) error {
	if sessionID == "" {
		return fmt.Errorf("sqlite: set session of order %s: empty session id", orderID)
	}
	err := s.write(ctx, func(ctx context.Context, tx conn) error {
		res, err := tx.ExecContext(ctx, qBindSession, sessionID, s.clock().UnixMicro(), orderID)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil || n == 1 {
			return err // n == 1: the session is recorded
		}
		o, err := getOrder(ctx, tx, qOrderByID, orderID)
		if err != nil {
			return err
		}
		if o.SessionID != sessionID {
			return fmt.Errorf("order already has session %s", o.SessionID)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: set session of order %s: %w", orderID, err)
	}
	return nil
}

// Order returns one order, or an error wrapping orders.ErrNotFound.
func (s *Store) Order(ctx context.Context, id string) (orders.Order, error) {
	o, err := getOrder(ctx, s.reads, qOrderByID, id)
	if err != nil {
		return orders.Order{}, fmt.Errorf("sqlite: order %s: %w", id, err)
	}
	return o, nil
}

// OrderBySession returns the order of a Checkout Session, or an error wrapping
// orders.ErrNotFound.
func (s *Store) OrderBySession(ctx context.Context, sessionID string) (orders.Order, error) {
	o, err := getOrder(ctx, s.reads, qOrderBySess, sessionID)
	if err != nil {
		return orders.Order{}, fmt.Errorf("sqlite: order of session %s: %w", sessionID, err)
	}
	return o, nil
}

// ListOrders returns orders newest first: at most 200 by default, and never
// more than 1000.
func (s *Store) ListOrders(ctx context.Context, f orders.ListFilter) ([]orders.Order, error) {
	limit := f.Bound()
	query, args := `SELECT `+orderColumns+` FROM orders`, []any{}
	if f.Status != "" {
		if !f.Status.Valid() {
			return nil, fmt.Errorf("sqlite: list orders: invalid status %q", f.Status)
		}
		query, args = query+` WHERE status = ?`, append(args, f.Status)
	}
	query, args = query+` ORDER BY created_at DESC, id DESC LIMIT ?`, append(args, limit)
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list orders: %w", err)
	}
	defer rows.Close()
	var list []orders.Order
	for rows.Next() {
		o, err := scanOrder(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list orders: %w", err)
		}
		list = append(list, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list orders: %w", err)
	}
	return list, nil
}

// ApplyEvent stores ev and applies it to its order in one transaction. An
// event id already stored is reported as a duplicate and changes nothing.
func (s *Store) ApplyEvent(ctx context.Context, ev orders.Event) (orders.ApplyResult, error) {
	if ev.ID == "" {
		return orders.ApplyResult{}, errors.New("sqlite: apply event: empty id")
	}
	var res orders.ApplyResult
	err := s.write(ctx, func(ctx context.Context, tx conn) error {
		o, ok, err := s.findOrder(ctx, tx, ev.Session)
		if err != nil {
			return err
		}
		handled := orders.Handled(ev.Type)
		outcome := "ignored"
		switch {
		case ok && handled:
			outcome = "applied"
		case handled:
			outcome = "unmatched"
		}
		// The event is stored with its outcome in one insert (an UPDATE
		// afterwards would write its payload twice); a known id inserts
		// nothing, and then nothing else is done.
		payload := ev.Payload
		if payload == nil {
			payload = []byte{}
		}
		ins, err := tx.ExecContext(ctx, qInsertEvent, ev.ID, ev.Type, ev.APIVersion, ev.Session.ID, nullString(o.ID), outcome,
			ev.Created.UnixMicro(), s.clock().UnixMicro(), payload)
		if err != nil {
			return err
		}
		if n, err := ins.RowsAffected(); err != nil || n == 0 {
			res.Duplicate = err == nil
			return err
		}
		switch {
		case ok && handled:
			// Only an event the shop acts on may bind a session to an order.
			if err := s.bindSession(ctx, tx, &o, ev.Session); err != nil {
				return err
			}
			res.Matched, res.Previous = true, o.Status
			res.Order, err = s.apply(ctx, tx, o, ev.Type, ev.Session)
			return err
		case ok:
			res.Matched, res.Previous, res.Order = true, o.Status, o
		}
		return nil
	})
	if err != nil {
		return orders.ApplyResult{}, fmt.Errorf("sqlite: apply event %s: %w", ev.ID, err)
	}
	return res, nil
}

// Reconcile applies a direct read of a Checkout Session to its order and
// returns the order afterwards, or an error wrapping orders.ErrNotFound.
func (s *Store) Reconcile(ctx context.Context, sess orders.Session) (orders.Order, error) {
	var o orders.Order
	err := s.write(ctx, func(ctx context.Context, tx conn) error {
		found, ok, err := s.findOrder(ctx, tx, sess)
		switch {
		case err != nil:
			return err
		case !ok:
			return orders.ErrNotFound
		}
		if err := s.bindSession(ctx, tx, &found, sess); err != nil {
			return err
		}
		o, err = s.apply(ctx, tx, found, "", sess)
		return err
	})
	if err != nil {
		return orders.Order{}, fmt.Errorf("sqlite: reconcile session %s: %w", sess.ID, err)
	}
	return o, nil
}

// Fulfil calls fn for a paid, unfulfilled order inside the write transaction
// that then records fulfilled_at. Writes run one after another on the single
// writer connection, each re-reading the order (in a batch too, where it sees
// the writes before it), so only the first of concurrent calls finds the order
// unfulfilled. fn runs on the writer goroutine while the whole batch, and every
// write behind it, waits: it should be quick.
func (s *Store) Fulfil(ctx context.Context, orderID string, fn func(context.Context, orders.Order) error) (bool, error) {
	called := false
	err := s.write(ctx, func(wctx context.Context, tx conn) error {
		// Record first, then call fn: if fn fails, the write's savepoint
		// takes the record back. One statement finds and claims the order.
		o, err := scanOrder(tx.QueryRowContext(wctx, qFulfil, s.clock().UnixMicro(), orderID))
		if errors.Is(err, sql.ErrNoRows) {
			// Not paid, fulfilled already, or no such order.
			_, err = getOrder(wctx, tx, qOrderByID, orderID)
			return err
		}
		if err != nil {
			return err
		}
		called, o.FulfilledAt = true, nil // fn sees the order as it was
		return fn(ctx, o)                 // the caller's ctx: fn may heed it
	})
	if err != nil {
		return false, fmt.Errorf("sqlite: fulfil order %s: %w", orderID, err)
	}
	return called, nil
}

// Unfulfilled lists the ids of paid orders not yet fulfilled, oldest order
// first.
func (s *Store) Unfulfilled(ctx context.Context) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id FROM orders
		WHERE status = 'paid' AND fulfilled_at IS NULL ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: unfulfilled: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("sqlite: unfulfilled: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: unfulfilled: %w", err)
	}
	return ids, nil
}

// findOrder finds the order a Checkout Session belongs to: the one that
// recorded the session, or else the one the session names (client_reference_id)
// if that order has no other session.
func (s *Store) findOrder(ctx context.Context, tx querier, sess orders.Session) (orders.Order, bool, error) {
	if sess.ID != "" {
		o, err := getOrder(ctx, tx, qOrderBySess, sess.ID)
		if !errors.Is(err, orders.ErrNotFound) {
			return o, err == nil, err
		}
	}
	if sess.OrderID == "" {
		return orders.Order{}, false, nil
	}
	o, err := getOrder(ctx, tx, qOrderByID, sess.OrderID)
	switch {
	case errors.Is(err, orders.ErrNotFound):
		return orders.Order{}, false, nil
	case err != nil:
		return orders.Order{}, false, err
	case o.SessionID != "" && o.SessionID != sess.ID:
		return orders.Order{}, false, nil // the order belongs to another session
	}
	return o, true, nil
}

// bindSession records on an order found by its id (see findOrder) the
// session that named it.
func (s *Store) bindSession(ctx context.Context, tx conn, o *orders.Order, sess orders.Session) error {
	if o.SessionID != "" || sess.ID == "" {
		return nil
	}
	now := s.clock()
	res, err := tx.ExecContext(ctx, qBindSession, sess.ID, now.UnixMicro(), o.ID)
	if err != nil {
		return err
	}
	if err := oneRow(res); err != nil {
		return err
	}
	o.SessionID, o.UpdatedAt = sess.ID, now
	return nil
}

// apply runs the state machine on o for an observation of its session and
// saves the change, if any. The update is conditional on the status read in
// this transaction.
func (s *Store) apply(ctx context.Context, tx conn, o orders.Order, eventType string, sess orders.Session) (orders.Order, error) {
	c := orders.Next(o, eventType, sess)
	if !c.Changed {
		return o, nil
	}
	now := s.clock()
	paidAt := o.PaidAt
	if c.Status == orders.StatusPaid && paidAt == nil {
		paidAt = &now
	}
	res, err := tx.ExecContext(ctx, qApply,
		c.Status, c.Email, c.Review, now.UnixMicro(), nullTime(paidAt), o.ID, o.Status)
	if err != nil {
		return orders.Order{}, err
	}
	if err := oneRow(res); err != nil {
		return orders.Order{}, err
	}
	o.Status, o.Email, o.Review, o.UpdatedAt, o.PaidAt = c.Status, c.Email, c.Review, now, paidAt
	return o, nil
}

// getOrder returns the order query (qOrderByID or qOrderBySess) finds, or an
// error wrapping orders.ErrNotFound.
func getOrder(ctx context.Context, q querier, query string, arg string) (orders.Order, error) {
	o, err := scanOrder(q.QueryRowContext(ctx, query, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return orders.Order{}, orders.ErrNotFound
	}
	return o, err
}

// scanOrder reads a row of orderColumns.
func scanOrder(row interface{ Scan(...any) error }) (orders.Order, error) {
	var (
		o                orders.Order
		items            string
		session          sql.NullString
		created, updated int64
		paid, fulfilled  sql.NullInt64
	)
	err := row.Scan(&o.ID, &o.Status, &items, &o.AmountTotal, &o.Currency, &session, &o.Email, &o.Review,
		&created, &updated, &paid, &fulfilled)
	if err != nil {
		return orders.Order{}, err
	}
	if err := json.Unmarshal([]byte(items), &o.Items); err != nil {
		return orders.Order{}, fmt.Errorf("order %s: items: %w", o.ID, err)
	}
	o.SessionID = session.String
	o.CreatedAt, o.UpdatedAt = fromMicros(created), fromMicros(updated)
	o.PaidAt, o.FulfilledAt = timePtr(paid), timePtr(fulfilled)
	return o, nil
}

// oneRow checks that an update touched exactly one row: the conditions it was
// written under still held.
func oneRow(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n != 1 {
		return fmt.Errorf("order changed concurrently: %d rows updated, want 1", n)
	}
	return nil
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

func nullTime(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMicro(), Valid: true}
}

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

func timePtr(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := fromMicros(n.Int64)
	return &t
}
