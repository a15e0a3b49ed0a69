// Package orders is the shop's domain: an order, the states it moves through as
// Stripe reports on its Checkout Session, and the Store that keeps it.
//
// The state machine is pure (see Next), so every store applies exactly the same
// rules inside its own transaction.
package orders

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
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
	// Version counts the order's updates; a store writes an update only over
	// the version it was read at, so a lost update shows as an error.
	Version int64 `json:"-"`
}

// Validate checks what every store relies on before an order is written.
func (o Order) Validate() error {
	switch {
	case o.ID == "":
		return errors.New("empty order id")
	case !o.Status.Valid():
		return fmt.Errorf("order %s: invalid status %q", o.ID, o.Status)
	case o.AmountTotal < 0:
		return fmt.Errorf("order %s: negative amount %d", o.ID, o.AmountTotal)
	case o.Currency == "":
		return fmt.Errorf("order %s: no currency", o.ID)
	}
	for _, it := range o.Items {
		if it.Quantity < 1 || it.UnitAmount < 0 || it.ProductID == "" {
			return fmt.Errorf("order %s: invalid item %+v", o.ID, it)
		}
	}
	return nil
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
	Livemode   bool // whether Stripe sent it from live mode
	Session    Session
	Payload    []byte // the raw body, kept for audit and replay
}
