package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/shopcheckout/shop/internal/orders"
)

const orderColumns = `id, status, items, amount_total, currency, session_id, email, review,
	created_at, updated_at, paid_at, fulfilled_at, version,
	payment_state, payment_intent_id, amount_paid, amount_refunded, refunds, dispute, refunds_as_of, charge_refunded, hold_state, hold_until, source`

const notificationColumns = `id, order_id, type, channel, recipient, status, attempts, last_error,
	next_attempt_at, created_at, delivered_at, deadline, claimed_by, claimed_until, payload`

// The statements of the hot paths, prepared once by Open (see statements).
const (
	qInsertOrder = `INSERT INTO orders (` + orderColumns + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`
	qOrderByPI    = `SELECT ` + orderColumns + ` FROM orders WHERE payment_intent_id = ? ORDER BY created_at, id LIMIT 1`
	qResolveAlarm = `UPDATE alarms SET resolved_at = ? WHERE id = ? AND resolved_at IS NULL`
	qStockLevel   = `SELECT product_id, available, held, sold FROM stock WHERE product_id = ?`
	qPutStock     = `INSERT INTO stock (product_id, available, held, sold) VALUES (?, ?, ?, ?)
		ON CONFLICT (product_id) DO UPDATE SET available = excluded.available, held = excluded.held, sold = excluded.sold`
	qOrderByID   = `SELECT ` + orderColumns + ` FROM orders WHERE id = ?`
	qOrderBySess = `SELECT ` + orderColumns + ` FROM orders WHERE session_id = ?`
	qUpdateOrder = `UPDATE orders SET status = ?, session_id = ?, email = ?, review = ?, updated_at = ?,
		paid_at = ?, fulfilled_at = ?, payment_state = ?, payment_intent_id = ?, amount_paid = ?,
		amount_refunded = ?, refunds = ?, dispute = ?, refunds_as_of = ?, charge_refunded = ?, hold_state = ?, hold_until = ?, version = version + 1
		WHERE id = ? AND version = ?`
	qInsertEvent = `INSERT INTO events (id, type, api_version, session_id, order_id, outcome, created_at, received_at, payload)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`
	qInsertNotification = `INSERT INTO notifications (` + notificationColumns + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`
	qNotification       = `SELECT ` + notificationColumns + ` FROM notifications WHERE id = ?`
	qUpdateNotification = `UPDATE notifications SET status = ?, attempts = ?, last_error = ?, next_attempt_at = ?,
		delivered_at = ?, deadline = ?, claimed_by = ?, claimed_until = ? WHERE id = ?`
	qClaim = `UPDATE notifications SET claimed_by = ?, claimed_until = ?
		WHERE id IN (SELECT id FROM notifications
			WHERE status = 'pending' AND next_attempt_at <= ? AND claimed_until <= ?
			ORDER BY next_attempt_at, id LIMIT ?)
		RETURNING ` + notificationColumns
	qInsertAlarm = `INSERT INTO alarms (id, kind, ref, order_id, detail, created_at, resolved_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`
	qSettingInsert = `INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`
	qSetting       = `SELECT value FROM settings WHERE name = ?`
	qPutSetting    = `INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value`
	qLease         = `INSERT INTO leases (name, holder, until) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
		WHERE leases.until < ? OR leases.holder = excluded.holder`
)

var (
	writeQueries = []string{qInsertOrder, qOrderByID, qOrderBySess, qOrderByPI, qUpdateOrder, qResolveAlarm, qStockLevel, qPutStock, qInsertEvent,
		qInsertNotification, qNotification, qUpdateNotification, qClaim, qSettingInsert, qSetting, qPutSetting, qLease, qInsertAlarm,
		qSavepoint, qRelease, qRollbackTo}
	readQueries = []string{qOrderByID, qOrderBySess}
)

// querier is what reads need from a pool or a transaction.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Write runs fn as one write of the next batch: in its own savepoint of the
// batch's transaction, answered once that transaction has committed. Writes
// run one at a time on the single writer connection, so what fn reads stays
// as it read it until it returns.
func (s *Store) Write(ctx context.Context, fn func(context.Context, orders.Tx) error) error {
	err := s.write(ctx, func(ctx context.Context, c conn) error { return fn(ctx, tx{c: c}) })
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	return nil
}

// tx is orders.Tx on a write of a batch.
type tx struct{ c conn }

func (t tx) Order(ctx context.Context, id string) (orders.Order, error) {
	return getOrder(ctx, t.c, qOrderByID, id)
}

func (t tx) OrderBySession(ctx context.Context, sessionID string) (orders.Order, error) {
	return getOrder(ctx, t.c, qOrderBySess, sessionID)
}

func (t tx) OrderByPaymentIntent(ctx context.Context, id string) (orders.Order, error) {
	return getOrder(ctx, t.c, qOrderByPI, id)
}

func (t tx) StockLevel(ctx context.Context, productID string) (orders.StockLevel, error) {
	l, err := scanStock(t.c.QueryRowContext(ctx, qStockLevel, productID))
	if errors.Is(err, sql.ErrNoRows) {
		return orders.StockLevel{}, fmt.Errorf("stock of %s: %w", productID, orders.ErrNotFound)
	}
	return l, err
}

func (t tx) PutStockLevel(ctx context.Context, l orders.StockLevel) error {
	var available sql.NullInt64
	if l.Stock != nil {
		available = sql.NullInt64{Int64: *l.Stock, Valid: true}
	}
	_, err := t.c.ExecContext(ctx, qPutStock, l.ProductID, available, l.Held, l.Sold)
	return err
}

func scanStock(row scanner) (orders.StockLevel, error) {
	var l orders.StockLevel
	var available sql.NullInt64
	if err := row.Scan(&l.ProductID, &available, &l.Held, &l.Sold); err != nil {
		return orders.StockLevel{}, err
	}
	if available.Valid {
		l.Stock = &available.Int64
	}
	return l, nil
}

// StockLevels returns every product's stock row, by product id.
func (s *Store) StockLevels(ctx context.Context) ([]orders.StockLevel, error) {
	list, err := queryAll(ctx, s.r, `SELECT product_id, available, held, sold FROM stock ORDER BY product_id`, nil, scanStock)
	if err != nil {
		return nil, fmt.Errorf("sqlite: stock: %w", err)
	}
	return list, nil
}

// DueHolds returns the held orders whose hold ended at or before now.
func (s *Store) DueHolds(ctx context.Context, now time.Time, limit int) ([]orders.Order, error) {
	list, err := queryAll(ctx, s.r, `SELECT `+orderColumns+` FROM orders
		WHERE hold_state = 'held' AND hold_until <= ? ORDER BY hold_until, id LIMIT ?`, []any{micros(now), limit}, scanOrder)
	if err != nil {
		return nil, fmt.Errorf("sqlite: due holds: %w", err)
	}
	return list, nil
}

func (t tx) ResolveAlarm(ctx context.Context, id string, at time.Time) error {
	_, err := t.c.ExecContext(ctx, qResolveAlarm, micros(at), id)
	return err
}

func (t tx) InsertOrder(ctx context.Context, o orders.Order) error {
	items, refunds, dispute, err := o.JSONColumns()
	if err != nil {
		return err
	}
	res, err := t.c.ExecContext(ctx, qInsertOrder,
		o.ID, o.Status, items, o.AmountTotal, o.Currency, nullString(o.SessionID), o.Email, o.Review,
		micros(o.CreatedAt), micros(o.UpdatedAt), nullTime(o.PaidAt), nullTime(o.FulfilledAt),
		o.PaymentState(), nullString(o.PaymentIntentID), o.AmountPaid, o.AmountRefunded, refunds, dispute, o.RefundsAsOf, o.ChargeRefunded, o.HoldState, nullTime(o.HoldUntil), o.Source)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return err
	}
	return fmt.Errorf("order %s: %w", o.ID, orders.ErrDuplicate)
}

func (t tx) UpdateOrder(ctx context.Context, o *orders.Order) error {
	refunds, dispute, err := o.RefundColumns()
	if err != nil {
		return err
	}
	res, err := t.c.ExecContext(ctx, qUpdateOrder,
		o.Status, nullString(o.SessionID), o.Email, o.Review, micros(o.UpdatedAt),
		nullTime(o.PaidAt), nullTime(o.FulfilledAt), o.PaymentState(), nullString(o.PaymentIntentID), o.AmountPaid,
		o.AmountRefunded, refunds, dispute, o.RefundsAsOf, o.ChargeRefunded, o.HoldState, nullTime(o.HoldUntil), o.ID, o.Version)
	if err != nil {
		return err
	}
	if err := oneRow(res); err != nil {
		return fmt.Errorf("update order %s: %w", o.ID, err)
	}
	o.Version++
	return nil
}

func (t tx) InsertEvent(ctx context.Context, e orders.EventRecord) (bool, error) {
	payload := e.Payload
	if payload == nil {
		payload = []byte{}
	}
	res, err := t.c.ExecContext(ctx, qInsertEvent, e.ID, e.Type, e.APIVersion, e.SessionID, nullString(e.OrderID),
		e.Outcome, micros(e.Created), micros(e.Received), payload)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (t tx) InsertNotifications(ctx context.Context, ns []orders.Notification) error {
	for _, n := range ns {
		_, err := t.c.ExecContext(ctx, qInsertNotification,
			n.ID, n.OrderID, n.Type, string(n.Channel), n.Recipient, string(n.Status), n.Attempts, n.LastError,
			nullTime(n.NextAttempt), micros(n.CreatedAt), nullTime(n.DeliveredAt), micros(n.Deadline),
			n.ClaimedBy, zeroMicros(n.ClaimedUntil), n.Payload)
		if err != nil {
			return fmt.Errorf("queue notification %s: %w", n.ID, err)
		}
	}
	return nil
}

func (t tx) Notification(ctx context.Context, id string) (orders.Notification, error) {
	n, err := scanNotification(t.c.QueryRowContext(ctx, qNotification, id))
	if errors.Is(err, sql.ErrNoRows) {
		return orders.Notification{}, fmt.Errorf("notification %s: %w", id, orders.ErrNotFound)
	}
	return n, err
}

func (t tx) UpdateNotification(ctx context.Context, n orders.Notification) error {
	res, err := t.c.ExecContext(ctx, qUpdateNotification,
		string(n.Status), n.Attempts, n.LastError, nullTime(n.NextAttempt), nullTime(n.DeliveredAt),
		micros(n.Deadline), n.ClaimedBy, zeroMicros(n.ClaimedUntil), n.ID)
	if err != nil {
		return err
	}
	return oneRow(res)
}

func (t tx) Setting(ctx context.Context, name string, init []byte) ([]byte, error) {
	if _, err := t.c.ExecContext(ctx, qSettingInsert, name, init); err != nil {
		return nil, err
	}
	var v []byte
	if err := t.c.QueryRowContext(ctx, qSetting, name).Scan(&v); err != nil {
		return nil, err
	}
	return v, nil
}

func (t tx) PutSetting(ctx context.Context, name string, value []byte) error {
	_, err := t.c.ExecContext(ctx, qPutSetting, name, value)
	return err
}

func (t tx) InsertAlarm(ctx context.Context, a orders.Alarm) error {
	_, err := t.c.ExecContext(ctx, qInsertAlarm, a.ID, a.Kind, a.Ref, a.OrderID, a.Detail, micros(a.CreatedAt), nullTime(a.ResolvedAt))
	return err
}

// Alarms returns alarms, newest first.
func (s *Store) Alarms(ctx context.Context, f orders.AlarmFilter) ([]orders.Alarm, error) {
	query := `SELECT id, kind, ref, order_id, detail, created_at, resolved_at FROM alarms`
	if f.Open {
		query += ` WHERE resolved_at IS NULL`
	}
	query += ` ORDER BY created_at DESC, id DESC LIMIT ?`
	list, err := queryAll(ctx, s.r, query, []any{orders.ListFilter{Limit: f.Limit}.Bound()}, func(r scanner) (orders.Alarm, error) {
		var a orders.Alarm
		var created int64
		var resolved sql.NullInt64
		err := r.Scan(&a.ID, &a.Kind, &a.Ref, &a.OrderID, &a.Detail, &created, &resolved)
		a.CreatedAt, a.ResolvedAt = fromMicros(created), timePtr(resolved)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: alarms: %w", err)
	}
	return list, nil
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

// ListOrders returns orders newest first, within f.Bound().
func (s *Store) ListOrders(ctx context.Context, f orders.ListFilter) ([]orders.Order, error) {
	var where []string
	var args []any
	if f.Status != "" {
		where, args = append(where, `status = ?`), append(args, f.Status)
	}
	if !f.From.IsZero() {
		where, args = append(where, `created_at >= ?`), append(args, micros(f.From))
	}
	if !f.To.IsZero() {
		where, args = append(where, `created_at < ?`), append(args, micros(f.To))
	}
	if f.After != nil {
		where, args = append(where, `(created_at, id) < (?, ?)`), append(args, micros(f.After.CreatedAt), f.After.ID)
	}
	order := `created_at DESC, id DESC`
	if f.Query != "" {
		// The ids are looked up exactly; the email through the trigram
		// index (three letters or more), whose LIKE may let through more
		// than the substring (a "_" or "%" in it), so instr decides.
		email := `instr(lower(email), lower(?)) > 0`
		emailArgs := []any{f.Query}
		if utf8.RuneCountInString(f.Query) >= 3 {
			ns, err := s.emailCandidates(ctx, f.Query)
			if err != nil {
				return nil, fmt.Errorf("sqlite: search emails: %w", err)
			}
			if len(ns) <= maxEmailCandidates {
				// Few matches: fetch them and sort them, rather than
				// walk the whole list in order.
				email = `0`
				if len(ns) > 0 {
					email = `id IN (SELECT order_id FROM order_emails WHERE n IN (` + placeholders(len(ns)) +
						`) AND instr(lower(email), lower(?)) > 0)`
				}
				emailArgs = append(ns, f.Query)
				if len(ns) == 0 {
					emailArgs = nil
				}
				order = `+created_at DESC, id DESC`
			}
			// Many matches (a domain, say): walking the list newest first
			// fills a page soon, and the candidates are not needed.
		}
		where = append(where, `(id = ? OR session_id = ? OR payment_intent_id = ? OR `+email+`)`)
		args = append(append(args, f.Query, f.Query, f.Query), emailArgs...)
	}
	query := `SELECT ` + orderColumns + ` FROM orders`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, ` AND `)
	}
	query, args = query+` ORDER BY `+order+` LIMIT ?`, append(args, f.Bound())
	list, err := queryAll(ctx, s.r, query, args, scanOrder)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list orders: %w", err)
	}
	return list, nil
}

// maxEmailCandidates is how many orders an email search fetches from the
// trigram index before it deems the part searched for common and walks
// the list instead.
const maxEmailCandidates = 1000

// emailCandidates returns the order_emails rows whose email the trigram
// index says may contain q: up to maxEmailCandidates+1 of them.
func (s *Store) emailCandidates(ctx context.Context, q string) ([]any, error) {
	return queryAll(ctx, s.r, `SELECT rowid FROM order_emails_fts WHERE email LIKE ? LIMIT ?`,
		[]any{"%" + q + "%", maxEmailCandidates + 1}, func(r scanner) (any, error) {
			var n int64
			return n, r.Scan(&n)
		})
}

// OrderEvents returns an order's events, without payloads, as received.
func (s *Store) OrderEvents(ctx context.Context, orderID string) ([]orders.EventRecord, error) {
	list, err := queryAll(ctx, s.r, `SELECT id, type, api_version, session_id, outcome, created_at, received_at
		FROM events WHERE order_id = ? ORDER BY received_at, id`, []any{orderID}, func(r scanner) (orders.EventRecord, error) {
		e := orders.EventRecord{OrderID: orderID}
		var created, received int64
		err := r.Scan(&e.ID, &e.Type, &e.APIVersion, &e.SessionID, &e.Outcome, &created, &received)
		e.Created, e.Received = fromMicros(created), fromMicros(received)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: events of %s: %w", orderID, err)
	}
	return list, nil
}

// Sales sums the orders paid since since, per currency.
func (s *Store) Sales(ctx context.Context, since time.Time) ([]orders.Sales, error) {
	list, err := queryAll(ctx, s.r, `SELECT currency, count(*),
		sum(CASE WHEN amount_paid > 0 THEN amount_paid ELSE amount_total END), sum(amount_refunded)
		FROM orders WHERE paid_at >= ? GROUP BY currency ORDER BY currency`, []any{micros(since)}, func(r scanner) (orders.Sales, error) {
		var v orders.Sales
		return v, r.Scan(&v.Currency, &v.Orders, &v.Paid, &v.Refunded)
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: sales: %w", err)
	}
	return list, nil
}

// Unfulfilled lists the ids of paid orders not yet fulfilled, oldest order
// first.
func (s *Store) Unfulfilled(ctx context.Context) ([]string, error) {
	ids, err := queryAll(ctx, s.r, `SELECT id FROM orders
		WHERE payment_state = 'paid' AND fulfilled_at IS NULL ORDER BY created_at, id`, nil,
		func(r scanner) (string, error) {
			var id string
			return id, r.Scan(&id)
		})
	if err != nil {
		return nil, fmt.Errorf("sqlite: unfulfilled: %w", err)
	}
	return ids, nil
}

// Notifications returns the notifications of the given orders, oldest first.
func (s *Store) Notifications(ctx context.Context, orderIDs []string) ([]orders.Notification, error) {
	var all []orders.Notification
	for chunk := range chunks(orderIDs, 500) {
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		list, err := queryAll(ctx, s.r, `SELECT `+notificationColumns+` FROM notifications
			WHERE order_id IN (`+placeholders(len(chunk))+`) ORDER BY created_at, id`, args, scanNotification)
		if err != nil {
			return nil, fmt.Errorf("sqlite: notifications: %w", err)
		}
		all = append(all, list...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].CreatedAt.Before(all[j].CreatedAt) })
	return all, nil
}

// ClaimNotifications claims due notifications for c.Holder (see
// orders.Store). Writes are serialized, so two claims never overlap.
func (s *Store) ClaimNotifications(ctx context.Context, c orders.Claim) ([]orders.Notification, error) {
	var list []orders.Notification
	err := s.write(ctx, func(ctx context.Context, tx conn) error {
		rows, err := tx.QueryContext(ctx, qClaim, c.Holder, micros(c.Until), micros(c.Now), micros(c.Now), c.Limit)
		if err != nil {
			return err
		}
		list, err = collect(rows, scanNotification)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim notifications: %w", err)
	}
	return list, nil
}

// OutboxStats counts the notifications not yet delivered.
func (s *Store) OutboxStats(ctx context.Context) (orders.OutboxStats, error) {
	var st orders.OutboxStats
	var oldest sql.NullInt64
	err := s.r.QueryRowContext(ctx, `SELECT
		count(*) FILTER (WHERE status = 'pending'),
		count(*) FILTER (WHERE status = 'dead'),
		min(created_at) FILTER (WHERE status = 'pending')
		FROM notifications WHERE status <> 'delivered'`).Scan(&st.Pending, &st.Dead, &oldest)
	if err != nil {
		return st, fmt.Errorf("sqlite: outbox stats: %w", err)
	}
	st.OldestQueued = timePtr(oldest)
	return st, nil
}

// TryLease takes the named lease for holder until ttl from now if it is
// free, expired or already holder's.
func (s *Store) TryLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	var ok bool
	err := s.write(ctx, func(ctx context.Context, tx conn) error {
		now := s.clock()
		res, err := tx.ExecContext(ctx, qLease, name, holder, micros(now.Add(ttl)), micros(now))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		ok = n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("sqlite: lease %s: %w", name, err)
	}
	return ok, nil
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

type scanner interface{ Scan(...any) error }

// scanOrder reads a row of orderColumns.
func scanOrder(row scanner) (orders.Order, error) {
	var (
		o                 orders.Order
		items, refunds    string
		session, pi, disp sql.NullString
		created, updated  int64
		paid, fulfilled   sql.NullInt64
		holdUntil         sql.NullInt64
		payment           string
	)
	err := row.Scan(&o.ID, &o.Status, &items, &o.AmountTotal, &o.Currency, &session, &o.Email, &o.Review,
		&created, &updated, &paid, &fulfilled, &o.Version,
		&payment, &pi, &o.AmountPaid, &o.AmountRefunded, &refunds, &disp, &o.RefundsAsOf, &o.ChargeRefunded, &o.HoldState, &holdUntil, &o.Source)
	if err != nil {
		return orders.Order{}, err
	}
	var dispute []byte
	if disp.Valid {
		dispute = []byte(disp.String)
	}
	if err := o.SetJSONColumns([]byte(items), []byte(refunds), dispute); err != nil {
		return orders.Order{}, err
	}
	o.Payment, o.PaymentIntentID = orders.Status(payment), pi.String
	o.HoldUntil = timePtr(holdUntil)
	o.SessionID = session.String
	o.CreatedAt, o.UpdatedAt = fromMicros(created), fromMicros(updated)
	o.PaidAt, o.FulfilledAt = timePtr(paid), timePtr(fulfilled)
	return o, nil
}

// scanNotification reads a row of notificationColumns.
func scanNotification(row scanner) (orders.Notification, error) {
	var (
		n                          orders.Notification
		channel, status            string
		next, delivered            sql.NullInt64
		created, deadline, claimed int64
	)
	err := row.Scan(&n.ID, &n.OrderID, &n.Type, &channel, &n.Recipient, &status, &n.Attempts, &n.LastError,
		&next, &created, &delivered, &deadline, &n.ClaimedBy, &claimed, &n.Payload)
	if err != nil {
		return orders.Notification{}, err
	}
	n.Channel, n.Status = orders.Channel(channel), orders.NotificationStatus(status)
	n.NextAttempt, n.DeliveredAt = timePtr(next), timePtr(delivered)
	n.CreatedAt, n.Deadline = fromMicros(created), fromMicros(deadline)
	if claimed != 0 {
		n.ClaimedUntil = fromMicros(claimed)
	}
	return n, nil
}

// queryAll runs a query on the read pool and scans every row.
func queryAll[T any](ctx context.Context, db *sql.DB, query string, args []any, scan func(scanner) (T, error)) ([]T, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return collect(rows, scan)
}

func collect[T any](rows *sql.Rows, scan func(scanner) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// chunks yields xs in pieces of at most n.
func chunks[T any](xs []T, n int) func(yield func([]T) bool) {
	return func(yield func([]T) bool) {
		for len(xs) > 0 {
			k := min(n, len(xs))
			if !yield(xs[:k]) {
				return
			}
			xs = xs[k:]
		}
	}
}

func placeholders(n int) string { return strings.TrimSuffix(strings.Repeat("?,", n), ",") }

// oneRow checks that an update touched exactly one row: the conditions it was
// written under still held.
func oneRow(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n != 1 {
		return fmt.Errorf("changed concurrently: %d rows updated, want 1", n)
	}
	return nil
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// micros is how the store keeps an instant: unix microseconds, UTC.
func micros(t time.Time) int64 { return t.UnixMicro() }

// zeroMicros keeps the zero time as 0.
func zeroMicros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

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

// Alarm returns one stored alarm.
func (s *Store) Alarm(ctx context.Context, id string) (orders.Alarm, error) {
	var a orders.Alarm
	var created int64
	var resolved sql.NullInt64
	err := s.r.QueryRowContext(ctx, `SELECT id, kind, ref, order_id, detail, created_at, resolved_at FROM alarms WHERE id = ?`, id).
		Scan(&a.ID, &a.Kind, &a.Ref, &a.OrderID, &a.Detail, &created, &resolved)
	if errors.Is(err, sql.ErrNoRows) {
		return orders.Alarm{}, fmt.Errorf("alarm %s: %w", id, orders.ErrNotFound)
	}
	if err != nil {
		return orders.Alarm{}, fmt.Errorf("sqlite: alarm %s: %w", id, err)
	}
	a.CreatedAt, a.ResolvedAt = fromMicros(created), timePtr(resolved)
	return a, nil
}

// DeadNotifications returns notifications that ran out of attempts, newest
// first.
func (s *Store) DeadNotifications(ctx context.Context, limit int) ([]orders.Notification, error) {
	list, err := queryAll(ctx, s.r, `SELECT `+notificationColumns+` FROM notifications
		WHERE status = 'dead' ORDER BY created_at DESC, id DESC LIMIT ?`, []any{limit}, scanNotification)
	if err != nil {
		return nil, fmt.Errorf("sqlite: dead notifications: %w", err)
	}
	return list, nil
}
