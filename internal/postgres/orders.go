package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shopcheckout/shop/internal/orders"
)

const orderColumns = `id, status, items, amount_total, currency, session_id, email, review,
	created_at, updated_at, paid_at, fulfilled_at, version,
	payment_state, payment_intent_id, amount_paid, amount_refunded, refunds, dispute, refunds_as_of, charge_refunded, hold_state, hold_until, source`

const notificationColumns = `id, order_id, type, channel, recipient, status, attempts, last_error,
	next_attempt_at, created_at, delivered_at, deadline, claimed_by, claimed_until, payload`

// querier is what reads need from the pool or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Write runs fn in one READ COMMITTED transaction (see inTx). The orders
// and notifications fn reads through tx are locked FOR UPDATE, so writes of
// one order, in this process or another, take turns, and the second reads
// what the first committed. A duplicate event waits on the events table's
// primary key instead, and finds the id taken once the first delivery
// commits.
func (s *Store) Write(ctx context.Context, fn func(context.Context, orders.Tx) error) error {
	err := inTx(ctx, s.pool, func(t pgx.Tx) error { return fn(ctx, tx{t: t}) })
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return nil
}

// tx is orders.Tx on a PostgreSQL transaction.
type tx struct{ t pgx.Tx }

func (t tx) Order(ctx context.Context, id string) (orders.Order, error) {
	return getOrder(ctx, t.t, "id = $1 FOR UPDATE", id)
}

func (t tx) OrderBySession(ctx context.Context, sessionID string) (orders.Order, error) {
	return getOrder(ctx, t.t, "session_id = $1 FOR UPDATE", sessionID)
}

func (t tx) OrderByPaymentIntent(ctx context.Context, id string) (orders.Order, error) {
	return getOrder(ctx, t.t, "payment_intent_id = $1 ORDER BY created_at, id LIMIT 1 FOR UPDATE", id)
}

func (t tx) StockLevel(ctx context.Context, productID string) (orders.StockLevel, error) {
	l, err := scanStock(t.t.QueryRow(ctx, `SELECT product_id, available, held, sold FROM stock WHERE product_id = $1 FOR UPDATE`, productID))
	if errors.Is(err, pgx.ErrNoRows) {
		return orders.StockLevel{}, fmt.Errorf("stock of %s: %w", productID, orders.ErrNotFound)
	}
	return l, err
}

// PutStockLevel writes a product's stock row. A first row for a product
// that two instances insert at once waits on the primary key and then
// updates, so both see the same count.
func (t tx) PutStockLevel(ctx context.Context, l orders.StockLevel) error {
	_, err := t.t.Exec(ctx, `INSERT INTO stock (product_id, available, held, sold) VALUES ($1, $2, $3, $4)
		ON CONFLICT (product_id) DO UPDATE SET available = EXCLUDED.available, held = EXCLUDED.held, sold = EXCLUDED.sold`,
		l.ProductID, l.Stock, l.Held, l.Sold)
	return err
}

func scanStock(row pgx.Row) (orders.StockLevel, error) {
	var l orders.StockLevel
	if err := row.Scan(&l.ProductID, &l.Stock, &l.Held, &l.Sold); err != nil {
		return orders.StockLevel{}, err
	}
	return l, nil
}

// StockLevels returns every product's stock row, by product id.
func (s *Store) StockLevels(ctx context.Context) ([]orders.StockLevel, error) {
	rows, err := s.pool.Query(ctx, `SELECT product_id, available, held, sold FROM stock ORDER BY product_id`)
	if err != nil {
		return nil, fmt.Errorf("postgres: stock: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (orders.StockLevel, error) { return scanStock(r) })
	if err != nil {
		return nil, fmt.Errorf("postgres: stock: %w", err)
	}
	return list, nil
}

// DueHolds returns the held orders whose hold ended at or before now.
func (s *Store) DueHolds(ctx context.Context, now time.Time, limit int) ([]orders.Order, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+orderColumns+` FROM orders
		WHERE hold_state = 'held' AND hold_until <= $1 ORDER BY hold_until, id LIMIT $2`, micros(now), limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: due holds: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (orders.Order, error) { return scanOrder(r) })
	if err != nil {
		return nil, fmt.Errorf("postgres: due holds: %w", err)
	}
	return list, nil
}

func (t tx) ResolveAlarm(ctx context.Context, id string, at time.Time) error {
	_, err := t.t.Exec(ctx, `UPDATE alarms SET resolved_at = $1 WHERE id = $2 AND resolved_at IS NULL`, micros(at), id)
	return err
}

func (t tx) InsertOrder(ctx context.Context, o orders.Order) error {
	items, refunds, dispute, err := o.JSONColumns()
	if err != nil {
		return err
	}
	tag, err := t.t.Exec(ctx, `INSERT INTO orders (`+orderColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 0, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23) ON CONFLICT (id) DO NOTHING`,
		o.ID, string(o.Status), items, o.AmountTotal, o.Currency, nullString(o.SessionID), o.Email, o.Review,
		micros(o.CreatedAt), micros(o.UpdatedAt), nullTime(o.PaidAt), nullTime(o.FulfilledAt),
		string(o.PaymentState()), nullString(o.PaymentIntentID), o.AmountPaid, o.AmountRefunded, refunds, dispute, o.RefundsAsOf, o.ChargeRefunded, o.HoldState, nullTime(o.HoldUntil), o.Source)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("order %s: %w", o.ID, orders.ErrDuplicate)
	}
	return nil
}

func (t tx) UpdateOrder(ctx context.Context, o *orders.Order) error {
	refunds, dispute, err := o.RefundColumns()
	if err != nil {
		return err
	}
	tag, err := t.t.Exec(ctx, `UPDATE orders SET status = $1, session_id = $2, email = $3, review = $4,
		updated_at = $5, paid_at = $6, fulfilled_at = $7, payment_state = $8, payment_intent_id = $9,
		amount_paid = $10, amount_refunded = $11, refunds = $12, dispute = $13, refunds_as_of = $14, charge_refunded = $15, hold_state = $16, hold_until = $17, version = version + 1
		WHERE id = $18 AND version = $19`,
		string(o.Status), nullString(o.SessionID), o.Email, o.Review, micros(o.UpdatedAt),
		nullTime(o.PaidAt), nullTime(o.FulfilledAt), string(o.PaymentState()), nullString(o.PaymentIntentID),
		o.AmountPaid, o.AmountRefunded, refunds, dispute, o.RefundsAsOf, o.ChargeRefunded, o.HoldState, nullTime(o.HoldUntil), o.ID, o.Version)
	if err != nil {
		if isUniqueViolation(err) {
			return fmt.Errorf("update order %s: session %s belongs to another order: %w", o.ID, o.SessionID, err)
		}
		return err
	}
	if err := oneRow(tag); err != nil {
		return fmt.Errorf("update order %s: %w", o.ID, err)
	}
	o.Version++
	return nil
}

func (t tx) InsertEvent(ctx context.Context, e orders.EventRecord) (bool, error) {
	payload := e.Payload
	if payload == nil {
		payload = []byte{} // bytea NOT NULL: an empty body is still a body
	}
	tag, err := t.t.Exec(ctx, `INSERT INTO events
		(id, type, api_version, session_id, order_id, outcome, created_at, received_at, payload)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING`,
		e.ID, e.Type, e.APIVersion, e.SessionID, nullString(e.OrderID), e.Outcome, micros(e.Created), micros(e.Received), payload)
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}

func (t tx) InsertNotifications(ctx context.Context, ns []orders.Notification) error {
	if len(ns) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for _, n := range ns {
		b.Queue(`INSERT INTO notifications (`+notificationColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) ON CONFLICT (id) DO NOTHING`,
			n.ID, n.OrderID, n.Type, string(n.Channel), n.Recipient, string(n.Status), n.Attempts, n.LastError,
			nullTime(n.NextAttempt), micros(n.CreatedAt), nullTime(n.DeliveredAt), micros(n.Deadline),
			n.ClaimedBy, epochIfZero(n.ClaimedUntil), n.Payload)
	}
	if err := t.t.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("queue notifications: %w", err)
	}
	return nil
}

func (t tx) Notification(ctx context.Context, id string) (orders.Notification, error) {
	n, err := scanNotification(t.t.QueryRow(ctx, `SELECT `+notificationColumns+` FROM notifications WHERE id = $1 FOR UPDATE`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return orders.Notification{}, fmt.Errorf("notification %s: %w", id, orders.ErrNotFound)
	}
	return n, err
}

func (t tx) UpdateNotification(ctx context.Context, n orders.Notification) error {
	tag, err := t.t.Exec(ctx, `UPDATE notifications SET status = $1, attempts = $2, last_error = $3,
		next_attempt_at = $4, delivered_at = $5, deadline = $6, claimed_by = $7, claimed_until = $8 WHERE id = $9`,
		string(n.Status), n.Attempts, n.LastError, nullTime(n.NextAttempt), nullTime(n.DeliveredAt),
		micros(n.Deadline), n.ClaimedBy, epochIfZero(n.ClaimedUntil), n.ID)
	if err != nil {
		return err
	}
	return oneRow(tag)
}

// Setting inserts init unless the name is taken, then reads what is stored.
// Under READ COMMITTED the insert waits for a concurrent one of the same
// name and then does nothing, and the select sees the winner's value.
func (t tx) Setting(ctx context.Context, name string, init []byte) ([]byte, error) {
	if _, err := t.t.Exec(ctx, `INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, name, init); err != nil {
		return nil, err
	}
	var v []byte
	if err := t.t.QueryRow(ctx, `SELECT value FROM settings WHERE name = $1`, name).Scan(&v); err != nil {
		return nil, err
	}
	return v, nil
}

func (t tx) PutSetting(ctx context.Context, name string, value []byte) error {
	_, err := t.t.Exec(ctx, `INSERT INTO settings (name, value) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value`, name, value)
	return err
}

func (t tx) InsertAlarm(ctx context.Context, a orders.Alarm) error {
	_, err := t.t.Exec(ctx, `INSERT INTO alarms (id, kind, ref, order_id, detail, created_at, resolved_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING`,
		a.ID, a.Kind, a.Ref, a.OrderID, a.Detail, micros(a.CreatedAt), nullTime(a.ResolvedAt))
	return err
}

// Alarms returns alarms, newest first.
func (s *Store) Alarms(ctx context.Context, f orders.AlarmFilter) ([]orders.Alarm, error) {
	query := `SELECT id, kind, ref, order_id, detail, created_at, resolved_at FROM alarms`
	if f.Open {
		query += ` WHERE resolved_at IS NULL`
	}
	rows, err := s.pool.Query(ctx, query+` ORDER BY created_at DESC, id DESC LIMIT $1`, orders.ListFilter{Limit: f.Limit}.Bound())
	if err != nil {
		return nil, fmt.Errorf("postgres: alarms: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (orders.Alarm, error) {
		var a orders.Alarm
		var resolved *time.Time
		err := r.Scan(&a.ID, &a.Kind, &a.Ref, &a.OrderID, &a.Detail, &a.CreatedAt, &resolved)
		a.CreatedAt, a.ResolvedAt = a.CreatedAt.UTC(), utcPtr(resolved)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: alarms: %w", err)
	}
	return list, nil
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
// created at the same time), within f.Bound().
func (s *Store) ListOrders(ctx context.Context, f orders.ListFilter) ([]orders.Order, error) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if f.Status != "" {
		where = append(where, `status = `+arg(string(f.Status)))
	}
	if !f.From.IsZero() {
		where = append(where, `created_at >= `+arg(f.From))
	}
	if !f.To.IsZero() {
		where = append(where, `created_at < `+arg(f.To))
	}
	if f.After != nil {
		where = append(where, `(created_at, id) < (`+arg(f.After.CreatedAt)+`, `+arg(f.After.ID)+`)`)
	}
	if f.Query != "" {
		// The ids exactly; the email through the trigram index, where
		// ILIKE finds a substring once its wildcards are escaped.
		q := arg(f.Query)
		where = append(where, `(id = `+q+` OR session_id = `+q+` OR payment_intent_id = `+q+
			` OR email ILIKE `+arg("%"+likeEscaper.Replace(f.Query)+"%")+`)`)
	}
	query := `SELECT ` + orderColumns + ` FROM orders`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, ` AND `)
	}
	query += ` ORDER BY created_at DESC, id DESC LIMIT ` + arg(f.Bound())
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

// likeEscaper escapes LIKE's wildcards and its escape character.
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// OrderEvents returns an order's events, without payloads, as received.
func (s *Store) OrderEvents(ctx context.Context, orderID string) ([]orders.EventRecord, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, type, api_version, session_id, outcome, created_at, received_at
		FROM events WHERE order_id = $1 ORDER BY received_at, id`, orderID)
	if err != nil {
		return nil, fmt.Errorf("postgres: events of %s: %w", orderID, err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (orders.EventRecord, error) {
		e := orders.EventRecord{OrderID: orderID}
		err := row.Scan(&e.ID, &e.Type, &e.APIVersion, &e.SessionID, &e.Outcome, &e.Created, &e.Received)
		e.Created, e.Received = e.Created.UTC(), e.Received.UTC()
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: events of %s: %w", orderID, err)
	}
	return list, nil
}

// Sales sums the orders paid since since, per currency.
func (s *Store) Sales(ctx context.Context, since time.Time) ([]orders.Sales, error) {
	rows, err := s.pool.Query(ctx, `SELECT currency, count(*),
		sum(CASE WHEN amount_paid > 0 THEN amount_paid ELSE amount_total END), sum(amount_refunded)
		FROM orders WHERE paid_at >= $1 GROUP BY currency ORDER BY currency`, since)
	if err != nil {
		return nil, fmt.Errorf("postgres: sales: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (orders.Sales, error) {
		var v orders.Sales
		return v, row.Scan(&v.Currency, &v.Orders, &v.Paid, &v.Refunded)
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: sales: %w", err)
	}
	return list, nil
}

// Unfulfilled lists the ids of paid orders not yet fulfilled, oldest order
// first.
func (s *Store) Unfulfilled(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT id FROM orders
		WHERE payment_state = 'paid' AND fulfilled_at IS NULL ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("postgres: unfulfilled: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: unfulfilled: %w", err)
	}
	return ids, nil
}

// Notifications returns the notifications of the given orders, oldest first.
func (s *Store) Notifications(ctx context.Context, orderIDs []string) ([]orders.Notification, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+notificationColumns+` FROM notifications
		WHERE order_id = ANY($1) ORDER BY created_at, id`, orderIDs)
	if err != nil {
		return nil, fmt.Errorf("postgres: notifications: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (orders.Notification, error) { return scanNotification(row) })
	if err != nil {
		return nil, fmt.Errorf("postgres: notifications: %w", err)
	}
	return list, nil
}

// ClaimNotifications claims due notifications for c.Holder (see
// orders.Store). FOR UPDATE SKIP LOCKED lets instances claim at once without
// waiting for each other, and never two of them the same row.
func (s *Store) ClaimNotifications(ctx context.Context, c orders.Claim) ([]orders.Notification, error) {
	rows, err := s.pool.Query(ctx, `WITH due AS (
			SELECT id FROM notifications
			WHERE status = 'pending' AND next_attempt_at <= $3 AND claimed_until <= $3
			ORDER BY next_attempt_at, id LIMIT $4
			FOR UPDATE SKIP LOCKED)
		UPDATE notifications n SET claimed_by = $1, claimed_until = $2
		FROM due WHERE n.id = due.id
		RETURNING `+prefixed("n.", notificationColumns),
		c.Holder, micros(c.Until), micros(c.Now), c.Limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: claim notifications: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (orders.Notification, error) { return scanNotification(row) })
	if err != nil {
		return nil, fmt.Errorf("postgres: claim notifications: %w", err)
	}
	return list, nil
}

// OutboxStats counts the notifications not yet delivered.
func (s *Store) OutboxStats(ctx context.Context) (orders.OutboxStats, error) {
	var st orders.OutboxStats
	var oldest *time.Time
	err := s.pool.QueryRow(ctx, `SELECT
		count(*) FILTER (WHERE status = 'pending'),
		count(*) FILTER (WHERE status = 'dead'),
		min(created_at) FILTER (WHERE status = 'pending')
		FROM notifications WHERE status <> 'delivered'`).Scan(&st.Pending, &st.Dead, &oldest)
	if err != nil {
		return st, fmt.Errorf("postgres: outbox stats: %w", err)
	}
	st.OldestQueued = utcPtr(oldest)
	return st, nil
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
		status, payment string
		items, refunds  []byte
		dispute         []byte
		session, pi     *string
		paid, fulfilled *time.Time
		holdUntil       *time.Time
	)
	err := row.Scan(&o.ID, &status, &items, &o.AmountTotal, &o.Currency, &session, &o.Email, &o.Review,
		&o.CreatedAt, &o.UpdatedAt, &paid, &fulfilled, &o.Version,
		&payment, &pi, &o.AmountPaid, &o.AmountRefunded, &refunds, &dispute, &o.RefundsAsOf, &o.ChargeRefunded, &o.HoldState, &holdUntil, &o.Source)
	if err != nil {
		return orders.Order{}, err
	}
	if err := o.SetJSONColumns(items, refunds, dispute); err != nil {
		return orders.Order{}, err
	}
	if pi != nil {
		o.PaymentIntentID = *pi
	}
	o.Status, o.Payment = orders.Status(status), orders.Status(payment)
	o.HoldUntil = utcPtr(holdUntil)
	if session != nil {
		o.SessionID = *session
	}
	o.CreatedAt, o.UpdatedAt = o.CreatedAt.UTC(), o.UpdatedAt.UTC()
	o.PaidAt, o.FulfilledAt = utcPtr(paid), utcPtr(fulfilled)
	return o, nil
}

// scanNotification reads a row of notificationColumns.
func scanNotification(row pgx.Row) (orders.Notification, error) {
	var (
		n               orders.Notification
		channel, status string
		next, delivered *time.Time
	)
	err := row.Scan(&n.ID, &n.OrderID, &n.Type, &channel, &n.Recipient, &status, &n.Attempts, &n.LastError,
		&next, &n.CreatedAt, &delivered, &n.Deadline, &n.ClaimedBy, &n.ClaimedUntil, &n.Payload)
	if err != nil {
		return orders.Notification{}, err
	}
	n.Channel, n.Status = orders.Channel(channel), orders.NotificationStatus(status)
	n.NextAttempt, n.DeliveredAt = utcPtr(next), utcPtr(delivered)
	n.CreatedAt, n.Deadline = n.CreatedAt.UTC(), n.Deadline.UTC()
	if n.ClaimedUntil.Equal(time.Unix(0, 0)) {
		n.ClaimedUntil = time.Time{}
	} else {
		n.ClaimedUntil = n.ClaimedUntil.UTC()
	}
	return n, nil
}

// prefixed qualifies each column of a comma-separated list.
func prefixed(prefix, columns string) string {
	cols := strings.Split(columns, ",")
	for i, c := range cols {
		cols[i] = prefix + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}

// oneRow checks that an update touched exactly one row: the conditions it was
// written under still held.
func oneRow(tag pgconn.CommandTag) error {
	if n := tag.RowsAffected(); n != 1 {
		return fmt.Errorf("changed concurrently: %d rows updated, want 1", n)
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

// epochIfZero stores the zero time as the epoch, the column's default.
func epochIfZero(t time.Time) time.Time {
	if t.IsZero() {
		return time.Unix(0, 0).UTC()
	}
	return micros(t)
}

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

// Alarm returns one stored alarm.
func (s *Store) Alarm(ctx context.Context, id string) (orders.Alarm, error) {
	var a orders.Alarm
	err := s.pool.QueryRow(ctx, `SELECT id, kind, ref, order_id, detail, created_at, resolved_at FROM alarms WHERE id = $1`, id).
		Scan(&a.ID, &a.Kind, &a.Ref, &a.OrderID, &a.Detail, &a.CreatedAt, &a.ResolvedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return orders.Alarm{}, fmt.Errorf("alarm %s: %w", id, orders.ErrNotFound)
	}
	if err != nil {
		return orders.Alarm{}, fmt.Errorf("postgres: alarm %s: %w", id, err)
	}
	a.CreatedAt, a.ResolvedAt = a.CreatedAt.UTC(), utcPtr(a.ResolvedAt)
	return a, nil
}

// DeadNotifications returns notifications that ran out of attempts, newest
// first.
func (s *Store) DeadNotifications(ctx context.Context, limit int) ([]orders.Notification, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+notificationColumns+` FROM notifications
		WHERE status = 'dead' ORDER BY created_at DESC, id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: dead notifications: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (orders.Notification, error) { return scanNotification(row) })
	if err != nil {
		return nil, fmt.Errorf("postgres: dead notifications: %w", err)
	}
	return list, nil
}
