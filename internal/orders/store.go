package orders

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Store keeps orders, the events applied to them and the notifications they
// cause. A store knows its SQL dialect and how it locks; every rule about
// what a write does lives in this package (see Service), which drives the
// store through Write and the Tx it hands in.
type Store interface {
	// Write runs fn in one transaction and commits it if fn returns nil; if
	// fn fails, nothing it did is kept. fn may run on another goroutine and
	// must not wait on anything but tx: it never talks to a network.
	Write(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error

	// Order returns one order, or an error wrapping ErrNotFound.
	Order(ctx context.Context, id string) (Order, error)
	// OrderBySession returns the order that recorded a Checkout Session, or
	// an error wrapping ErrNotFound.
	OrderBySession(ctx context.Context, sessionID string) (Order, error)
	// ListOrders returns orders, newest first (the greater id first among
	// orders created at the same instant), within f.Bound().
	ListOrders(ctx context.Context, f ListFilter) ([]Order, error)
	// Unfulfilled lists the ids of paid orders not yet fulfilled, oldest
	// order first.
	Unfulfilled(ctx context.Context) ([]string, error)
	// OrderEvents returns the events stored for an order, without their
	// payloads, in the order they were received.
	OrderEvents(ctx context.Context, orderID string) ([]EventRecord, error)
	// Sales sums, per currency, the orders paid at or after since.
	Sales(ctx context.Context, since time.Time) ([]Sales, error)

	// Notifications returns the notifications of the given orders, oldest
	// first.
	Notifications(ctx context.Context, orderIDs []string) ([]Notification, error)
	// ClaimNotifications marks up to c.Limit pending notifications that are
	// due at c.Now and not claimed by anyone else (or whose claim ran out)
	// as claimed by c.Holder until c.Until, and returns them, in no
	// particular order. Concurrent claimers, in this process or another, never get the
	// same notification while its claim lasts.
	ClaimNotifications(ctx context.Context, c Claim) ([]Notification, error)
	// OutboxStats counts the notifications not yet delivered.
	OutboxStats(ctx context.Context) (OutboxStats, error)
	// Alarms returns alarms, newest first, within f's limit.
	Alarms(ctx context.Context, f AlarmFilter) ([]Alarm, error)
	// Alarm returns one stored alarm, or an error wrapping ErrNotFound.
	Alarm(ctx context.Context, id string) (Alarm, error)
	// DeadNotifications returns up to limit notifications that ran out
	// of attempts, newest first.
	DeadNotifications(ctx context.Context, limit int) ([]Notification, error)
	// StockLevels returns every product's stock row, by product id.
	StockLevels(ctx context.Context) ([]StockLevel, error)
	// DueHolds returns up to limit orders whose hold is still held and
	// ended at or before now, the longest overdue first.
	DueHolds(ctx context.Context, now time.Time, limit int) ([]Order, error)

	// TryLease takes the named lease for holder for ttl if it is free,
	// expired or already holder's, and reports whether holder has it.
	TryLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	// Ping reports whether the store answers.
	Ping(ctx context.Context) error
	// Close releases the store.
	Close() error
}

// Tx is one store transaction, as the Service drives it. The lookups lock
// what they return until the transaction ends, so two writes of the same
// order take turns and the second sees what the first committed.
type Tx interface {
	// Order returns the order with id, or an error wrapping ErrNotFound.
	Order(ctx context.Context, id string) (Order, error)
	// OrderBySession returns the order that recorded the session, or an
	// error wrapping ErrNotFound.
	OrderBySession(ctx context.Context, sessionID string) (Order, error)
	// OrderByPaymentIntent returns the (oldest) order that recorded the
	// PaymentIntent, or an error wrapping ErrNotFound.
	OrderByPaymentIntent(ctx context.Context, id string) (Order, error)
	// InsertOrder adds a validated order, or returns an error wrapping
	// ErrDuplicate if its id is taken.
	InsertOrder(ctx context.Context, o Order) error
	// UpdateOrder writes the mutable fields of o (everything but its id,
	// items, amount, currency and creation) if the stored order is still at
	// o.Version, and moves
	// o.Version on. Anything else is an error: the order changed under the
	// caller.
	UpdateOrder(ctx context.Context, o *Order) error
	// InsertEvent stores an event and reports whether it was new; a known id
	// stores nothing.
	InsertEvent(ctx context.Context, e EventRecord) (bool, error)
	// InsertNotifications queues notifications; an id already queued is
	// left as it is.
	InsertNotifications(ctx context.Context, ns []Notification) error
	// Notification returns one notification, or an error wrapping
	// ErrNotFound.
	Notification(ctx context.Context, id string) (Notification, error)
	// UpdateNotification writes n's delivery state (status, attempts, last
	// error, next attempt, deadline, delivered time, claim).
	UpdateNotification(ctx context.Context, n Notification) error
	// Setting returns the value stored under name, storing init first if
	// there is none: the first writer's value wins, on every instance.
	Setting(ctx context.Context, name string, init []byte) ([]byte, error)
	// PutSetting stores value under name, replacing what was there.
	PutSetting(ctx context.Context, name string, value []byte) error
	// InsertAlarm raises an alarm; an id already raised is left as it is.
	InsertAlarm(ctx context.Context, a Alarm) error
	// StockLevel returns a product's stock row, or an error wrapping
	// ErrNotFound; the row stays locked until the transaction ends.
	StockLevel(ctx context.Context, productID string) (StockLevel, error)
	// PutStockLevel writes a product's stock row. The store refuses a
	// negative count, so no mistake can sell what is not there.
	PutStockLevel(ctx context.Context, l StockLevel) error
	// ResolveAlarm marks an open alarm resolved at at; an unknown or
	// resolved one is left as it is.
	ResolveAlarm(ctx context.Context, id string, at time.Time) error
}

// EventRecord is a Stripe event as the store keeps it, with what the shop
// made of it.
type EventRecord struct {
	ID         string
	Type       string
	APIVersion string
	SessionID  string
	OrderID    string // "" when it matched no order
	Outcome    string // see the Outcome constants
	Created    time.Time
	Received   time.Time
	Payload    []byte
}

// What the shop made of a stored event.
const (
	OutcomeApplied   = "applied"   // it belongs to an order and was applied
	OutcomeIgnored   = "ignored"   // a type the shop does not act on
	OutcomeUnmatched = "unmatched" // it names no order of this shop
	// OutcomeWrongMode: a live event for a test-mode shop, or the reverse;
	// stored and logged, never applied.
	OutcomeWrongMode = "wrong_mode"
	// OutcomeUnreadable: signed by Stripe but not readable (wrong types, no
	// object, absurd figures); stored raw with an alarm.
	OutcomeUnreadable = "unreadable"
	// OutcomeDuplicate is never stored: it is what a known event id gets.
	OutcomeDuplicate = "duplicate"
)

// ApplyResult says what storing and applying an event did.
type ApplyResult struct {
	Duplicate bool   // the event id was already stored: nothing new was recorded
	Matched   bool   // the event belongs to an order of this shop
	Order     Order  // the order after the event, when Matched
	Previous  Status // the order's status before the event, when Matched
	Stored    string // the outcome stored with the event, when not a duplicate
}

// Outcome names what happened to the event: the stored outcome, or
// OutcomeDuplicate. Logs, metrics and the webhook's answer all use it.
func (r ApplyResult) Outcome() string {
	if r.Duplicate {
		return OutcomeDuplicate
	}
	return r.Stored
}

// ListFilter narrows ListOrders. Every field left zero narrows nothing.
type ListFilter struct {
	Status Status // "" for every status
	Limit  int    // how many: 0 or less means DefaultListLimit, more than MaxListLimit means MaxListLimit
	// After lists only the orders after it in the list's order (older, or
	// as old with a smaller id): the next page of a list that ended there.
	After *Cursor
	// From and To keep orders created at or after From and before To.
	From, To time.Time
	// Query keeps the orders whose id, Checkout Session id or
	// PaymentIntent id is Query, or whose email contains it, ignoring
	// case.
	Query string
}

// Limits of ListOrders, the same in every store.
const (
	DefaultListLimit = 200
	MaxListLimit     = 1000
)

// Bound is the number of orders the filter asks for, within the limits.
func (f ListFilter) Bound() int {
	if f.Limit <= 0 {
		return DefaultListLimit
	}
	return min(f.Limit, MaxListLimit)
}

// Claim asks a store for due notifications (see Store.ClaimNotifications).
type Claim struct {
	Holder string
	Now    time.Time
	Until  time.Time
	Limit  int
}

// OutboxStats describes the notifications not yet delivered.
type OutboxStats struct {
	Pending      int        // waiting for a (first or next) delivery attempt
	Dead         int        // given up on, waiting for an operator
	OldestQueued *time.Time // creation time of the oldest pending one, nil if none
}

// JSONColumns encodes the parts of o that stores keep as JSON text: its
// lines, and what RefundColumns encodes.
func (o Order) JSONColumns() (items, refunds string, dispute *string, err error) {
	b, err := json.Marshal(o.Items)
	if err != nil {
		return "", "", nil, fmt.Errorf("order %s: %w", o.ID, err)
	}
	refunds, dispute, err = o.RefundColumns()
	return string(b), refunds, dispute, err
}

// RefundColumns encodes the JSON columns an order's update writes (its
// lines never change): its refunds (an empty list, never null) and its
// dispute (nil when there is none).
func (o Order) RefundColumns() (refunds string, dispute *string, err error) {
	r := o.Refunds
	if r == nil {
		r = []Refund{}
	}
	rb, err := json.Marshal(r)
	if err != nil {
		return "", nil, fmt.Errorf("order %s: %w", o.ID, err)
	}
	if o.Dispute != nil {
		db, err := json.Marshal(o.Dispute)
		if err != nil {
			return "", nil, fmt.Errorf("order %s: %w", o.ID, err)
		}
		d := string(db)
		dispute = &d
	}
	return string(rb), dispute, nil
}

// SetJSONColumns decodes what JSONColumns encoded into o (whose ID names
// it in errors); a nil dispute is none.
func (o *Order) SetJSONColumns(items, refunds, dispute []byte) error {
	if err := json.Unmarshal(items, &o.Items); err != nil {
		return fmt.Errorf("order %s: items: %w", o.ID, err)
	}
	if err := json.Unmarshal(refunds, &o.Refunds); err != nil {
		return fmt.Errorf("order %s: refunds: %w", o.ID, err)
	}
	if len(o.Refunds) == 0 {
		o.Refunds = nil
	}
	if dispute != nil {
		if err := json.Unmarshal(dispute, &o.Dispute); err != nil {
			return fmt.Errorf("order %s: dispute: %w", o.ID, err)
		}
	}
	return nil
}
