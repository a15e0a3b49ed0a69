// Package orders is the shop's domain: an order, the states it moves through as
// Stripe reports on its Checkout Session, and the Store that keeps it.
//
// The state machine is pure (see Next), so every store applies exactly the same
// rules inside its own transaction.
package orders

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"strings"
	"time"
)

// ErrNotFound is returned when an order does not exist.
var ErrNotFound = errors.New("order not found")

// ErrDuplicate is returned by CreateOrder for an id that is taken.
var ErrDuplicate = errors.New("order already exists")

// Status is where an order stands in its lifecycle.
type Status string

// The states of an order. A paid order never leaves StatusPaid, and an order in
// StatusNeedsReview is never fulfilled automatically.
const (
	StatusPending     Status = "pending"      // Checkout Session created, shopper not done yet
	StatusProcessing  Status = "processing"   // completed, payment not settled (delayed methods)
	StatusPaid        Status = "paid"         // money received
	StatusFailed      Status = "failed"       // the delayed payment failed
	StatusExpired     Status = "expired"      // the session expired unpaid
	StatusNeedsReview Status = "needs_review" // Stripe's amount or currency differs from ours
)

// Statuses lists every status, in lifecycle order.
func Statuses() []Status {
	return []Status{StatusPending, StatusProcessing, StatusPaid, StatusFailed, StatusExpired, StatusNeedsReview}
}

// Valid reports whether s is a known status.
func (s Status) Valid() bool {
	for _, v := range Statuses() {
		if s == v {
			return true
		}
	}
	return false
}

// Item is one line of an order, priced from the server's catalogue.
type Item struct {
	ProductID  string `json:"productId"`
	Name       string `json:"name"`
	UnitAmount int64  `json:"unitAmount"` // minor units (cents)
	Quantity   int64  `json:"quantity"`
}

// Order is one purchase attempt: created pending before the Checkout Session,
// then moved along by what Stripe reports.
type Order struct {
	ID          string     `json:"id"`
	Status      Status     `json:"status"`
	Items       []Item     `json:"items"`
	AmountTotal int64      `json:"amountTotal"` // minor units, what we expect Stripe to charge
	Currency    string     `json:"currency"`    // lower-case ISO 4217
	SessionID   string     `json:"sessionId,omitempty"`
	Email       string     `json:"email,omitempty"`
	CreatedAt   time.Time  `json:"createdAt"`
	UpdatedAt   time.Time  `json:"updatedAt"`
	PaidAt      *time.Time `json:"paidAt,omitempty"`
	FulfilledAt *time.Time `json:"fulfilledAt,omitempty"`
	// Review says why the order needs a person, when Status is StatusNeedsReview.
	Review string `json:"review,omitempty"`
}

// NewID returns a fresh, unguessable order id: "ord_" and 24 lower-case
// base32 characters.
func NewID() string {
	var b [15]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("orders: crypto/rand failed: " + err.Error()) // never happens on supported platforms
	}
	return "ord_" + strings.ToLower(base32.StdEncoding.EncodeToString(b[:]))
}

// IDFor derives an order id from a client's request key, so that the same
// request sent twice (a double click, a retried post) names the same order.
// The key must hold a secret the server handed out, such as a random form
// token, so that nobody can aim at another shopper's order.
func IDFor(requestKey string) string {
	sum := sha256.Sum256([]byte("order-request:" + requestKey))
	return "ord_" + strings.ToLower(base32.StdEncoding.EncodeToString(sum[:15]))
}

// Event types the shop acts on. Every other type is stored-and-ignored.
const (
	EventSessionCompleted      = "checkout.session.completed"
	EventAsyncPaymentSucceeded = "checkout.session.async_payment_succeeded"
	EventAsyncPaymentFailed    = "checkout.session.async_payment_failed"
	EventSessionExpired        = "checkout.session.expired"
)

// Handled reports whether the shop acts on events of this type.
func Handled(eventType string) bool {
	switch eventType {
	case EventSessionCompleted, EventAsyncPaymentSucceeded, EventAsyncPaymentFailed, EventSessionExpired:
		return true
	}
	return false
}

// Session is what Stripe says about a Checkout Session: only the fields whose
// meaning is the same in every API version, so events of any version can be
// read safely.
type Session struct {
	ID             string // cs_...
	OrderID        string // client_reference_id, or metadata.order_id
	Status         string // open, complete, expired
	PaymentStatus  string // paid, unpaid, no_payment_required
	AmountSubtotal *int64 // before discounts, tax and shipping; nil when Stripe did not say
	AmountTotal    *int64 // what the shopper pays; nil when Stripe did not say
	Currency       string
	Email          string
}

// Event is a verified Stripe event about a Checkout Session.
type Event struct {
	ID         string
	Type       string
	APIVersion string
	Created    time.Time
	Session    Session
	Payload    []byte // the raw body, kept for audit and replay
}

// Outcome is the status an observation asks for, before the order's own state
// and the amount check are taken into account. "" means no change.
func Outcome(eventType string, s Session) Status {
	switch eventType {
	case EventSessionCompleted, "": // "" is a direct read of the session
		switch {
		case s.Status == "expired":
			return StatusExpired
		case s.Status != "complete" && eventType == "":
			return "" // still open
		case s.PaymentStatus == "paid" || s.PaymentStatus == "no_payment_required":
			return StatusPaid
		default:
			return StatusProcessing
		}
	case EventAsyncPaymentSucceeded:
		return StatusPaid
	case EventAsyncPaymentFailed:
		return StatusFailed
	case EventSessionExpired:
		return StatusExpired
	}
	return ""
}

// rank orders statuses so that the result of a set of events does not depend
// on the order they arrive in: an order only ever moves up.
func rank(s Status) int {
	switch s {
	case StatusPending:
		return 0
	case StatusProcessing:
		return 1
	case StatusExpired:
		return 2
	case StatusFailed:
		return 3
	case StatusPaid:
		return 4
	case StatusNeedsReview:
		return 5
	}
	return -1
}

// Change is the result of applying an observation to an order.
type Change struct {
	Status  Status
	Email   string
	Review  string
	Changed bool // whether anything about the order changed
}

// Next decides what an observation of the order's Checkout Session (from an
// event of eventType, or "" for a direct read) does to the order. It is pure:
// stores call it inside the transaction that holds the order.
//
// The rules: the state only moves up the lifecycle (so any arrival order of the
// same events ends in the same state, and paid never goes back); an amount or
// currency that differs from what the order recorded sends it to needs_review
// unless it is already paid. Stripe's figures are fixed for a session, so
// every event of one session agrees on them.
func Next(o Order, eventType string, s Session) Change {
	c := Change{Status: o.Status, Email: o.Email, Review: o.Review}
	if eventType != "" && !Handled(eventType) {
		return c
	}
	if c.Email == "" && s.Email != "" {
		c.Email = s.Email
	}
	want := Outcome(eventType, s)
	if want != "" && o.Status != StatusPaid && o.Status != StatusNeedsReview {
		if reason := mismatch(o, s); reason != "" {
			want, c.Review = StatusNeedsReview, reason
		}
	}
	if want != "" && rank(want) > rank(o.Status) && o.Status != StatusPaid {
		c.Status = want
	}
	if c.Status != StatusNeedsReview {
		c.Review = o.Review
	}
	c.Changed = c.Status != o.Status || c.Email != o.Email || c.Review != o.Review
	return c
}

// mismatch says how Stripe's figures differ from the order's, or "". The
// subtotal is compared when Stripe gives it, since promotion codes, tax and
// shipping legitimately change the total; otherwise the total is.
func mismatch(o Order, s Session) string {
	amount := s.AmountSubtotal
	if amount == nil {
		amount = s.AmountTotal
	}
	if amount != nil && *amount != o.AmountTotal {
		return "amount differs from the order"
	}
	if s.Currency != "" && !strings.EqualFold(s.Currency, o.Currency) {
		return "currency differs from the order"
	}
	return ""
}

// ApplyResult says what storing and applying an event did.
type ApplyResult struct {
	Duplicate bool   // the event id was already stored: nothing was done
	Matched   bool   // the event belongs to an order of this shop
	Order     Order  // the order after the event, when Matched
	Previous  Status // the order's status before the event, when Matched
}

// ListFilter narrows ListOrders.
type ListFilter struct {
	Status Status // "" for every status
	Limit  int    // how many: 0 or less means DefaultListLimit, more than MaxListLimit means MaxListLimit
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

// Store keeps orders and the events applied to them. Implementations make each
// method atomic: ApplyEvent stores the event and changes the order in one
// transaction, and Fulfil never calls fn twice for the same order.
type Store interface {
	// CreateOrder records a new pending order; ErrDuplicate if the id is
	// taken.
	CreateOrder(ctx context.Context, o Order) error
	// SetSession records the Checkout Session created for a pending order.
	SetSession(ctx context.Context, orderID, sessionID string) error
	// Order returns one order, or ErrNotFound.
	Order(ctx context.Context, id string) (Order, error)
	// OrderBySession returns the order for a Checkout Session, or ErrNotFound.
	OrderBySession(ctx context.Context, sessionID string) (Order, error)
	// ListOrders returns orders, newest first.
	ListOrders(ctx context.Context, f ListFilter) ([]Order, error)
	// ApplyEvent stores a verified event (unique on its id) and applies it to
	// its order, all in one transaction. A known event id is a no-op.
	ApplyEvent(ctx context.Context, ev Event) (ApplyResult, error)
	// Reconcile applies a direct read of a Checkout Session to its order, as
	// the success page does. It returns the order afterwards.
	Reconcile(ctx context.Context, s Session) (Order, error)
	// Fulfil calls fn for a paid, unfulfilled order and records fulfilled_at
	// in the same transaction, so concurrent callers fulfil it once. It
	// reports whether this call fulfilled the order; if fn fails nothing is
	// recorded. fn holds the store's write lock while it runs: keep it quick.
	Fulfil(ctx context.Context, orderID string, fn func(context.Context, Order) error) (bool, error)
	// Unfulfilled lists the ids of paid orders not yet fulfilled, oldest
	// first: work left over by a crash.
	Unfulfilled(ctx context.Context) ([]string, error)
	// Ping reports whether the store answers.
	Ping(ctx context.Context) error
	// Close releases the store.
	Close() error
}

// Leaser is implemented by stores that several shop instances share, so that
// a periodic job (reconciliation) runs on one instance at a time. A store
// without it serves one instance, which always runs its jobs.
type Leaser interface {
	// TryLease takes the named lease for holder for ttl if it is free,
	// expired or already holder's, and reports whether holder has it.
	TryLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
}
