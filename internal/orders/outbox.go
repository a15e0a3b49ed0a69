package orders

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// The outbox. Whatever an order change must tell the world (the order
// webhook, the emails) is written as a notification in the same transaction
// as the change, and delivered afterwards, outside any transaction, by a
// dispatcher that retries until the receiver takes it. Delivery is at least
// once; each notification keeps one id and one body for all its attempts,
// so receivers de-duplicate on the id.

// Notification types, as receivers see them in "type".
const (
	NotifyOrderPaid              = "order.paid"
	NotifyOrderRefunded          = "order.refunded"           // all of the payment went back
	NotifyOrderPartiallyRefunded = "order.partially_refunded" // some of it did
	NotifyDisputeOpened          = "order.dispute_opened"
	NotifyDisputeClosed          = "order.dispute_closed"
	NotifyOrderNeedsReview       = "order.needs_review" // paid, but a person must act (out of stock)
)

// audience says who beside the order webhook hears of each type: the
// shopper (email_customer), the owner (email_owner).
func audience(typ string) (customer, owner bool) {
	switch typ {
	case NotifyOrderPaid:
		return true, true
	case NotifyOrderRefunded, NotifyOrderPartiallyRefunded:
		return true, false
	case NotifyDisputeOpened, NotifyDisputeClosed, NotifyOrderNeedsReview:
		return false, true
	}
	return false, false
}

// Channel says where a notification goes.
type Channel string

// The channels.
const (
	ChannelWebhook       Channel = "webhook"        // FULFILMENT_WEBHOOK_URL
	ChannelEmailCustomer Channel = "email_customer" // the shopper, at the email Stripe collected
	ChannelEmailOwner    Channel = "email_owner"    // SHOP_OWNER_EMAIL
)

// NotificationStatus is where a notification stands.
type NotificationStatus string

// The statuses of a notification.
const (
	NotificationPending   NotificationStatus = "pending"   // waiting for its next attempt
	NotificationDelivered NotificationStatus = "delivered" // the receiver took it
	NotificationDead      NotificationStatus = "dead"      // retried until RetryFor ran out; an operator may re-queue it
)

// Retry policy: the first retry comes after FirstRetry, each later one after
// twice the wait before it, at most MaxRetryWait, for RetryFor after the
// notification was queued; then it is dead.
const (
	FirstRetry   = time.Second
	MaxRetryWait = time.Hour
	RetryFor     = 72 * time.Hour
)

// Notification is one message the outbox delivers.
type Notification struct {
	ID        string             `json:"id"` // ntf_..., stable across attempts
	OrderID   string             `json:"orderId"`
	Type      string             `json:"type"`
	Channel   Channel            `json:"channel"`
	Recipient string             `json:"recipient,omitempty"` // the email address, for email channels
	Status    NotificationStatus `json:"status"`
	Attempts  int                `json:"attempts"`
	LastError string             `json:"lastError,omitempty"`
	// NextAttempt is when a pending notification is due; nil otherwise.
	NextAttempt *time.Time `json:"nextAttempt,omitempty"`
	CreatedAt   time.Time  `json:"createdAt"`
	DeliveredAt *time.Time `json:"deliveredAt,omitempty"`
	// Deadline is when retrying stops (CreatedAt + RetryFor, or the time of
	// an operator's re-queue + RetryFor).
	Deadline time.Time `json:"-"`
	// Payload is the body every attempt sends (see WebhookBody).
	Payload      []byte    `json:"-"`
	ClaimedBy    string    `json:"-"`
	ClaimedUntil time.Time `json:"-"`
}

// WebhookBody is the JSON of every notification: what the order webhook
// POSTs, and what the emails are written from.
type WebhookBody struct {
	ID      string      `json:"id"`
	Type    string      `json:"type"`
	Created int64       `json:"created"` // unix seconds
	Data    WebhookData `json:"data"`
}

// WebhookData carries the order as it was when the notification was queued.
type WebhookData struct {
	Order Order `json:"order"`
	// RefundedNow is what the change behind an order.refunded or
	// order.partially_refunded refunded, in minor units.
	RefundedNow int64 `json:"refundedNow,omitempty"`
}

// Channels says which notifications the shop sends; the zero value sends
// none (fulfilment is then the record and the log line alone).
type Channels struct {
	Webhook       bool   // FULFILMENT_WEBHOOK_URL is set
	EmailCustomer bool   // SMTP is set: confirmations go to the shopper
	OwnerEmail    string // SHOP_OWNER_EMAIL, or ""
}

// notificationID derives a notification's id from what it is about, so the
// same cause can never queue it twice: ntf_ and 26 lower-case base32
// characters.
func notificationID(orderID, typ string, ch Channel, discriminator string) string {
	sum := sha256.Sum256([]byte(strings.Join([]string{"notification", orderID, typ, string(ch), discriminator}, "\x00")))
	return "ntf_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:16]))
}

// notifications returns what the channels queue for an event of type typ
// about o at now. discriminator tells apart several events of one type for
// one order ("" when there can be only one).
func (c Channels) notifications(typ string, o Order, now time.Time, discriminator string) ([]Notification, error) {
	return c.notificationsWith(typ, WebhookData{Order: o}, now, discriminator)
}

// notificationsWith is notifications with more in the body than the order.
func (c Channels) notificationsWith(typ string, data WebhookData, now time.Time, discriminator string) ([]Notification, error) {
	o := data.Order
	data.Order = o.Public()
	var out []Notification
	add := func(ch Channel, recipient string) error {
		n := Notification{
			ID: notificationID(o.ID, typ, ch, discriminator), OrderID: o.ID, Type: typ, Channel: ch, Recipient: recipient,
			Status: NotificationPending, CreatedAt: now, NextAttempt: &now, Deadline: now.Add(RetryFor),
		}
		body, err := json.Marshal(WebhookBody{ID: n.ID, Type: typ, Created: now.Unix(), Data: data})
		if err != nil {
			return fmt.Errorf("encode notification %s: %w", n.ID, err)
		}
		n.Payload = body
		out = append(out, n)
		return nil
	}
	if c.Webhook {
		if err := add(ChannelWebhook, ""); err != nil {
			return nil, err
		}
	}
	customer, owner := audience(typ)
	if c.EmailCustomer && customer && o.Email != "" {
		if err := add(ChannelEmailCustomer, o.Email); err != nil {
			return nil, err
		}
	}
	if c.OwnerEmail != "" && owner {
		if err := add(ChannelEmailOwner, c.OwnerEmail); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// RetryWait is how long a notification waits after its attempts-th failed
// attempt: FirstRetry, doubling, at most MaxRetryWait.
func RetryWait(attempts int) time.Duration {
	if attempts < 1 {
		attempts = 1
	}
	if attempts > 32 {
		return MaxRetryWait
	}
	return min(FirstRetry<<(attempts-1), MaxRetryWait)
}

// failed returns n after a failed attempt at now: pending again after
// RetryWait, or dead if that would pass its deadline.
func (n Notification) failed(now time.Time, reason string) Notification {
	n.Attempts++
	n.LastError = reason
	n.ClaimedBy, n.ClaimedUntil = "", time.Time{}
	next := now.Add(RetryWait(n.Attempts))
	if next.After(n.Deadline) {
		n.Status, n.NextAttempt = NotificationDead, nil
		return n
	}
	n.NextAttempt = &next
	return n
}

// delivered returns n as taken by its receiver at now.
func (n Notification) delivered(now time.Time) Notification {
	n.Attempts++
	n.Status, n.LastError, n.NextAttempt, n.DeliveredAt = NotificationDelivered, "", nil, &now
	n.ClaimedBy, n.ClaimedUntil = "", time.Time{}
	return n
}

// requeued returns a dead notification queued again by an operator at now,
// with a fresh deadline.
func (n Notification) requeued(now time.Time) Notification {
	n.Status, n.NextAttempt, n.Deadline = NotificationPending, &now, now.Add(RetryFor)
	n.ClaimedBy, n.ClaimedUntil = "", time.Time{}
	return n
}
