package orders

import (
	"crypto/sha256"
	"encoding/base32"
	"strings"
	"time"
)

// Alarm is something that needs a person: the admin's alarms page lists
// them, each with what to do. An alarm has one id per cause, so raising it
// again changes nothing.
type Alarm struct {
	ID         string     `json:"id"` // alm_...
	Kind       string     `json:"kind"`
	Ref        string     `json:"ref"` // what it is about: an event id, a session id...
	OrderID    string     `json:"orderId,omitempty"`
	Detail     string     `json:"detail"`
	CreatedAt  time.Time  `json:"createdAt"`
	ResolvedAt *time.Time `json:"resolvedAt,omitempty"`
}

// Alarm kinds.
const (
	// AlarmUnreadableEvent: Stripe signed an event the shop cannot read;
	// it is stored raw for a person to look at.
	AlarmUnreadableEvent = "unreadable_event"
	// AlarmUnattributedPayment: a paid Checkout Session names no order of
	// this shop.
	AlarmUnattributedPayment = "unattributed_payment"
	// AlarmPaidTwice: one order was paid by two Checkout Sessions; refund one.
	AlarmPaidTwice = "paid_twice"
	// AlarmDispute: a dispute awaits the shop's response, by its deadline.
	AlarmDispute = "dispute"
	// AlarmOversold: an order was paid after its hold ended and its stock
	// is gone; it is not fulfilled.
	AlarmOversold = "oversold"

	// The kinds below are worked out from the shop's state each time the
	// alarms are read, never stored: they go away with their cause.

	// AlarmDeadNotification: a notification ran out of attempts.
	AlarmDeadNotification = "dead_notification"
	// AlarmStoreWrites: the latest write to the database failed.
	AlarmStoreWrites = "store_writes_failing"
)

// AlarmKinds lists every kind, stored and derived.
func AlarmKinds() []string {
	return []string{AlarmUnreadableEvent, AlarmUnattributedPayment, AlarmPaidTwice, AlarmDispute, AlarmOversold,
		AlarmDeadNotification, AlarmStoreWrites}
}

// Derived reports whether the alarm is worked out from the shop's state
// rather than stored: it cannot be resolved by hand, only by its cause
// going away.
func (a Alarm) Derived() bool {
	return a.Kind == AlarmDeadNotification || a.Kind == AlarmStoreWrites
}

// Advice is what the owner should do about an alarm of kind, and how it
// ends.
func Advice(kind string) string {
	switch kind {
	case AlarmUnreadableEvent:
		return "Stripe sent an event the shop could not read. Find it by its id in the Stripe Dashboard (Developers, Events) and check the order it concerns by hand; resolve the alarm when done."
	case AlarmUnattributedPayment:
		return "Someone paid through a Checkout Session this shop did not create (another integration, or a Payment Link). Find the payment in the Stripe Dashboard, then fulfil or refund it there; resolve the alarm when done."
	case AlarmPaidTwice:
		return "The shopper paid twice for one order. Refund one of the payments from the Stripe Dashboard; resolve the alarm when done."
	case AlarmDispute:
		return "Respond in the Stripe Dashboard before the deadline, with evidence or by accepting. The alarm ends when Stripe closes the dispute or no longer needs a response."
	case AlarmOversold:
		return "The payment landed after its stock was sold to someone else. Refund the order in full (which ends the alarm) or find the goods and ship them, then resolve the alarm."
	case AlarmDeadNotification:
		return "A notification ran out of attempts. Fix what its last error says (the receiver, the mail server), then press retry on the order; the alarm ends once it is delivered."
	case AlarmStoreWrites:
		return "The database refuses writes (a full disk, a read-only file, a lost connection). Webhooks are answered 503 so Stripe retries them; fix the database and the alarm ends with the next write."
	}
	return "Look at the order and resolve the alarm when done."
}

// AlarmFilter narrows Store.Alarms.
type AlarmFilter struct {
	Open  bool // only alarms not resolved
	Limit int  // 0 or less means DefaultListLimit, at most MaxListLimit
}

func (f AlarmFilter) bound() int { return ListFilter{Limit: f.Limit}.Bound() }

// newAlarm returns the alarm of kind about ref, raised at now.
func newAlarm(kind, ref, orderID, detail string, now time.Time) Alarm {
	sum := sha256.Sum256([]byte("alarm\x00" + kind + "\x00" + ref))
	return Alarm{
		ID:   "alm_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:16])),
		Kind: kind, Ref: ref, OrderID: orderID, Detail: detail, CreatedAt: now,
	}
}
