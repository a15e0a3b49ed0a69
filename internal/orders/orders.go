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

// Status is where an order stands.
type Status string

// The states of an order's payment, which the state machine (Next) moves: a
// paid payment never leaves StatusPaid, and an order in StatusNeedsReview is
// never fulfilled automatically.
const (
	StatusPending     Status = "pending"      // Checkout Session created, shopper not done yet
	StatusProcessing  Status = "processing"   // completed, payment not settled (delayed methods)
	StatusPaid        Status = "paid"         // money received
	StatusFailed      Status = "failed"       // the delayed payment failed
	StatusExpired     Status = "expired"      // the session expired unpaid
	StatusNeedsReview Status = "needs_review" // a person must look: Stripe's figures differ, it was paid twice...
)

// What a paid order looks like once money went back or is contested (see
// Order.settle): its payment stays StatusPaid underneath.
const (
	StatusPartiallyRefunded Status = "partially_refunded" // some of the payment was refunded
	StatusRefunded          Status = "refunded"           // all of it was refunded
	StatusDisputed          Status = "disputed"           // the shopper disputes the charge, not decided yet
	StatusDisputeLost       Status = "dispute_lost"       // the dispute was lost: the money went back
)

// Statuses lists every status an order can show, in lifecycle order.
func Statuses() []Status {
	return []Status{StatusPending, StatusProcessing, StatusPaid, StatusPartiallyRefunded, StatusRefunded,
		StatusDisputed, StatusDisputeLost, StatusFailed, StatusExpired, StatusNeedsReview}
}

// lifecycle reports whether s is a state of the payment itself.
func (s Status) lifecycle() bool {
	switch s {
	case StatusPending, StatusProcessing, StatusPaid, StatusFailed, StatusExpired, StatusNeedsReview:
		return true
	}
	return false
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
	ID string `json:"id"`
	// Status is what the order looks like: its payment's state, or for a
	// paid one its refunds and dispute on top (see settle).
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
	// PaymentIntentID is the payment's PaymentIntent, once the session is
	// paid: refunds and disputes find the order by it.
	PaymentIntentID string `json:"paymentIntentId,omitempty"`
	// AmountPaid is what Stripe charged (the session's amount_total), once
	// paid; refunds are measured against it.
	AmountPaid int64 `json:"amountPaid,omitempty"`
	// AmountRefunded is what Stripe says was refunded and not failed or
	// canceled, in minor units.
	AmountRefunded int64 `json:"amountRefunded"`
	// Refunds are the refunds seen one by one, by id.
	Refunds []Refund `json:"refunds"`
	// Dispute is the charge's dispute, if the shopper opened one.
	Dispute *Dispute `json:"dispute,omitempty"`
	// HoldState is the order's hold on limited stock (see the Hold
	// constants); HoldUntil when it ends unless the order is paid.
	HoldState string     `json:"hold,omitempty"`
	HoldUntil *time.Time `json:"holdUntil,omitempty"`
	// Source is how the order came: SourceShop, placed in the shop, or
	// SourcePaymentLink, a Payment Link or Buy Button sale.
	Source string `json:"source"`
	// Payment is the payment's own state, which the state machine moves;
	// Status shows it with the refunds and dispute on top.
	Payment Status `json:"-"`
	// ChargeRefunded and RefundsAsOf are the latest charge view of the
	// refunds: its amount_refunded and its Stripe time (unix seconds). An
	// older view never undoes it (see refundedAmount).
	ChargeRefunded int64 `json:"-"`
	RefundsAsOf    int64 `json:"-"`
	// Version counts the order's updates; a store writes an update only over
	// the version it was read at, so a lost update shows as an error.
	Version int64 `json:"-"`
}

// Public returns o as the shop shows it to receivers and the admin: lists
// that are empty are [] rather than null.
func (o Order) Public() Order {
	if o.Source == "" {
		o.Source = SourceShop
	}
	if o.Refunds == nil {
		o.Refunds = []Refund{}
	}
	if o.Items == nil {
		o.Items = []Item{}
	}
	return o
}

// Where orders come from (Order.Source).
const (
	SourceShop        = "shop"
	SourcePaymentLink = "payment_link"
)

// Refund is one refund of an order's payment, as Stripe last described it.
type Refund struct {
	ID        string    `json:"id"` // re_...
	Amount    int64     `json:"amount"`
	Status    string    `json:"status"` // pending, succeeded, failed, canceled, requires_action
	Reason    string    `json:"reason,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	// AsOf is the Stripe time (unix seconds) of that description;
	// FailedAt the earliest at which it was seen failed or canceled (0:
	// never), from when it no longer counts.
	AsOf     int64 `json:"asOf"`
	FailedAt int64 `json:"failedAt,omitempty"`
}

// counts reports whether a refund in this status takes money back: a failed
// or canceled one returned it to the balance.
func refundCounts(status string) bool { return status != "failed" && status != "canceled" }

// Dispute is the dispute of an order's charge, as Stripe last described it.
type Dispute struct {
	ID            string     `json:"id"` // dp_...
	Status        string     `json:"status"`
	Reason        string     `json:"reason,omitempty"`
	Amount        int64      `json:"amount"`
	EvidenceDueBy *time.Time `json:"evidenceDueBy,omitempty"`
	// AsOf is the Stripe time (unix seconds) of that description.
	AsOf int64 `json:"asOf"`
}

// Open reports whether the dispute is still to be decided.
func (d *Dispute) Open() bool {
	switch d.Status {
	case "warning_needs_response", "warning_under_review", "needs_response", "under_review":
		return true
	}
	return false
}

// NeedsResponse reports whether the shop must answer before the deadline.
func (d *Dispute) NeedsResponse() bool {
	return d.Status == "needs_response" || d.Status == "warning_needs_response"
}

// PaymentState is the payment's own state, as stores keep it.
func (o Order) PaymentState() Status { return o.lifecycle() }

// lifecycle returns the payment's own state (orders made before the two
// were told apart have only Status).
func (o Order) lifecycle() Status {
	if o.Payment != "" {
		return o.Payment
	}
	return o.Status
}

// settle sets Status from the payment's state and, for a paid order, its
// refunds and dispute: a dispute only ever shows on a paid order, so no
// dispute makes an unpaid, expired or failed order look paid, and a won one
// leaves the order as it was.
func (o *Order) settle() {
	o.Payment = o.lifecycle()
	o.Status = o.Payment
	if o.Payment != StatusPaid {
		return
	}
	paid := o.AmountPaid
	if paid <= 0 {
		paid = o.AmountTotal
	}
	switch {
	case o.Dispute != nil && o.Dispute.Open():
		o.Status = StatusDisputed
	case o.Dispute != nil && o.Dispute.Status == "lost":
		o.Status = StatusDisputeLost
	case o.AmountRefunded > 0 && o.AmountRefunded >= paid:
		o.Status = StatusRefunded
	case o.AmountRefunded > 0:
		o.Status = StatusPartiallyRefunded
	}
}

// Refundable is what may still be refunded of a paid order; 0 for one that
// was never paid (or whose payment the shop cannot name).
func (o Order) Refundable() int64 {
	if o.lifecycle() != StatusPaid || o.PaymentIntentID == "" {
		return 0
	}
	paid := o.AmountPaid
	if paid <= 0 {
		paid = o.AmountTotal
	}
	return max(0, paid-o.AmountRefunded)
}

// Validate checks what every store relies on before an order is written.
func (o Order) Validate() error {
	switch {
	case o.ID == "":
		return errors.New("empty order id")
	case !o.Status.Valid():
		return fmt.Errorf("order %s: invalid status %q", o.ID, o.Status)
	case o.Payment != "" && !o.Payment.lifecycle():
		return fmt.Errorf("order %s: invalid payment state %q", o.ID, o.Payment)
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

	EventChargeRefunded = "charge.refunded"       // the charge's amount_refunded is the truth
	EventRefundUpdated  = "charge.refund.updated" // one refund, by id (a failed one gives the money back)

	EventDisputeCreated         = "charge.dispute.created"
	EventDisputeUpdated         = "charge.dispute.updated"
	EventDisputeClosed          = "charge.dispute.closed"
	EventDisputeFundsWithdrawn  = "charge.dispute.funds_withdrawn"
	EventDisputeFundsReinstated = "charge.dispute.funds_reinstated"
)

// Handled reports whether the shop acts on checkout.session events of this
// type: the ones that move an order's payment.
func Handled(eventType string) bool {
	switch eventType {
	case EventSessionCompleted, EventAsyncPaymentSucceeded, EventAsyncPaymentFailed, EventSessionExpired:
		return true
	}
	return false
}

// Acts reports whether the shop acts on events of this type at all: the
// session's, the refunds' and the disputes'.
func Acts(eventType string) bool {
	switch eventType {
	case EventChargeRefunded, EventRefundUpdated, EventDisputeCreated, EventDisputeUpdated, EventDisputeClosed,
		EventDisputeFundsWithdrawn, EventDisputeFundsReinstated:
		return true
	}
	return Handled(eventType)
}

// ReconciledTypes are the event types reconciliation lists through the
// Events API: every type the shop acts on.
func ReconciledTypes() []string {
	return []string{EventSessionCompleted, EventAsyncPaymentSucceeded, EventAsyncPaymentFailed, EventSessionExpired,
		EventChargeRefunded, EventRefundUpdated, EventDisputeCreated, EventDisputeUpdated, EventDisputeClosed,
		EventDisputeFundsWithdrawn, EventDisputeFundsReinstated}
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
	PaymentIntent  string // pi_..., once paid
	PaymentLink    string // plink_..., when a Payment Link or Buy Button made the session
}

// Event is a verified Stripe event about a Checkout Session.
type Event struct {
	ID         string
	Type       string
	APIVersion string
	Created    time.Time
	Livemode   bool // whether Stripe sent it from live mode
	Session    Session
	Charge     *Charge      // charge.refunded
	Refund     *RefundInfo  // charge.refund.updated
	Dispute    *DisputeInfo // charge.dispute.*
	Payload    []byte       // the raw body, kept for audit and replay
}
