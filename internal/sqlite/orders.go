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

// Limits of ListOrders.
const (
	defaultLimit = 200
	maxLimit     = 1000
)

const orderColumns = `id, status, items, amount_total, currency, session_id, email, review,
	created_at, updated_at, paid_at, fulfilled_at`

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
	res, err := s.w.ExecContext(ctx, `INSERT INTO orders (`+orderColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
		o.ID, o.Status, string(items), o.AmountTotal, o.Currency, nullString(o.SessionID), o.Email, o.Review,
		o.CreatedAt.UnixMicro(), o.UpdatedAt.UnixMicro(), nullTime(o.PaidAt), nullTime(o.FulfilledAt))
	if err != nil {
		return fmt.Errorf("sqlite: create order %s: %w", o.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: create order %s: %w", o.ID, err)
	} else if n == 0 {
		return fmt.Errorf("sqlite: create order %s: %w", o.ID, orders.ErrDuplicate)
	}
	return nil
}

// SetSession records the Checkout Session of an order that has none yet. Setting
// the session it already has is a no-op; replacing a different one is an error.
func (s *Store) SetSession(ctx context.Context, orderID, sessionID string) error {
	if sessionID == "" {
		return fmt.Errorf("sqlite: set session of order %s: empty session id", orderID)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE orders SET session_id = ?, updated_at = ?
			WHERE id = ? AND session_id IS NULL`, sessionID, s.clock().UnixMicro(), orderID)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil || n == 1 {
			return err // n == 1: the session is recorded
		}
		o, err := getOrder(ctx, tx, "id = ?", orderID)
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
	o, err := getOrder(ctx, s.r, "id = ?", id)
	if err != nil {
		return orders.Order{}, fmt.Errorf("sqlite: order %s: %w", id, err)
	}
	return o, nil
}

// OrderBySession returns the order of a Checkout Session, or an error wrapping
// orders.ErrNotFound.
func (s *Store) OrderBySession(ctx context.Context, sessionID string) (orders.Order, error) {
	o, err := getOrder(ctx, s.r, "session_id = ?", sessionID)
	if err != nil {
		return orders.Order{}, fmt.Errorf("sqlite: order of session %s: %w", sessionID, err)
	}
	return o, nil
}

// ListOrders returns orders newest first: at most 200 by default, and never
// more than 1000.
func (s *Store) ListOrders(ctx context.Context, f orders.ListFilter) ([]orders.Order, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = defaultLimit
	}
	limit = min(limit, maxLimit)
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
	err := s.write(ctx, func(tx *sql.Tx) error {
		payload := ev.Payload
		if payload == nil {
			payload = []byte{}
		}
		ins, err := tx.ExecContext(ctx, `INSERT INTO events
			(id, type, api_version, session_id, outcome, created_at, received_at, payload)
			VALUES (?, ?, ?, ?, 'unmatched', ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
			ev.ID, ev.Type, ev.APIVersion, ev.Session.ID, ev.Created.UnixMicro(), s.clock().UnixMicro(), payload)
		if err != nil {
			return err
		}
		n, err := ins.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
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
		_, err = tx.ExecContext(ctx, `UPDATE events SET outcome = ?, order_id = ? WHERE id = ?`,
			outcome, nullString(o.ID), ev.ID)
		return err
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
	err := s.write(ctx, func(tx *sql.Tx) error {
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
		return orders.Order{}, fmt.Errorf("sqlite: reconcile session %s: %w", sess.ID, err)
	}
	return o, nil
}

// Fulfil calls fn for a paid, unfulfilled order inside the write transaction
// that then records fulfilled_at. Because that transaction holds the database's
// write lock, concurrent calls run one after another and only the first finds
// the order unfulfilled. fn runs while every other write waits, so it should be
// quick.
func (s *Store) Fulfil(ctx context.Context, orderID string, fn func(context.Context, orders.Order) error) (bool, error) {
	called := false
	err := s.write(ctx, func(tx *sql.Tx) error {
		o, err := getOrder(ctx, tx, "id = ?", orderID)
		if err != nil {
			return err
		}
		if o.Status != orders.StatusPaid || o.FulfilledAt != nil {
			return nil // not ready, or done already
		}
		called = true
		if err := fn(ctx, o); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE orders SET fulfilled_at = ?
			WHERE id = ? AND fulfilled_at IS NULL AND status = 'paid'`, s.clock().UnixMicro(), orderID)
		if err != nil {
			return err
		}
		return oneRow(res)
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
// if that order has no other session. With bind, a session matched by order id
// is recorded on the order.
func (s *Store) findOrder(ctx context.Context, tx *sql.Tx, sess orders.Session, bind bool) (orders.Order, bool, error) {
	if sess.ID != "" {
		o, err := getOrder(ctx, tx, "session_id = ?", sess.ID)
		if !errors.Is(err, orders.ErrNotFound) {
			return o, err == nil, err
		}
	}
	if sess.OrderID == "" {
		return orders.Order{}, false, nil
	}
	o, err := getOrder(ctx, tx, "id = ?", sess.OrderID)
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
		res, err := tx.ExecContext(ctx, `UPDATE orders SET session_id = ?, updated_at = ?
			WHERE id = ? AND session_id IS NULL`, sess.ID, now.UnixMicro(), o.ID)
		if err != nil {
			return orders.Order{}, false, err
		}
		if err := oneRow(res); err != nil {
			return orders.Order{}, false, err
		}
		o.SessionID, o.UpdatedAt = sess.ID, now
	}
	return o, true, nil
}

// apply runs the state machine on o for an observation of its session and
// saves the change, if any. The update is conditional on the status read in
// this transaction.
func (s *Store) apply(ctx context.Context, tx *sql.Tx, o orders.Order, eventType string, sess orders.Session) (orders.Order, error) {
	c := orders.Next(o, eventType, sess)
	if !c.Changed {
		return o, nil
	}
	now := s.clock()
	paidAt := o.PaidAt
	if c.Status == orders.StatusPaid && paidAt == nil {
		paidAt = &now
	}
	res, err := tx.ExecContext(ctx, `UPDATE orders SET status = ?, email = ?, review = ?, updated_at = ?, paid_at = ?
		WHERE id = ? AND status = ?`,
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

// getOrder returns the order matching where, or an error wrapping
// orders.ErrNotFound.
func getOrder(ctx context.Context, q querier, where string, args ...any) (orders.Order, error) {
	o, err := scanOrder(q.QueryRowContext(ctx, `SELECT `+orderColumns+` FROM orders WHERE `+where, args...))
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
