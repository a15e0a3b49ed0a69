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
)

// AlarmFilter narrows Store.Alarms.
type AlarmFilter struct {
	Open  bool // only alarms not resolved
	Limit int  // 0 or less means DefaultListLimit, at most MaxListLimit
}

// newAlarm returns the alarm of kind about ref, raised at now.
func newAlarm(kind, ref, orderID, detail string, now time.Time) Alarm {
	sum := sha256.Sum256([]byte("alarm\x00" + kind + "\x00" + ref))
	return Alarm{
		ID:   "alm_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:16])),
		Kind: kind, Ref: ref, OrderID: orderID, Detail: detail, CreatedAt: now,
	}
}
