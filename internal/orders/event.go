package orders

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// MaxAmount bounds the amounts the shop believes: no Stripe payment comes
// near it in any currency, so a larger figure is a broken event.
const MaxAmount int64 = 1_000_000_000_000

// maxUnix is the last second a timestamp may name (the year 9999).
const maxUnix = 253402300799

// eventEnvelope is the part of a Stripe event the shop reads. It is decoded
// by hand, not by stripe-go's Event, so that events of any API version work:
// these fields mean the same in every version.
type eventEnvelope struct {
	ID         string `json:"id"`
	Object     string `json:"object"`
	Type       string `json:"type"`
	APIVersion string `json:"api_version"`
	Created    int64  `json:"created"`
	Livemode   bool   `json:"livemode"`
	Data       struct {
		Object json.RawMessage `json:"object"`
	} `json:"data"`
}

// sessionObject is the part of a checkout.session object the shop reads.
type sessionObject struct {
	ID                string            `json:"id"`
	Object            string            `json:"object"`
	Status            string            `json:"status"`
	PaymentStatus     string            `json:"payment_status"`
	AmountSubtotal    *int64            `json:"amount_subtotal"`
	AmountTotal       *int64            `json:"amount_total"`
	Currency          string            `json:"currency"`
	ClientReferenceID string            `json:"client_reference_id"`
	Metadata          map[string]string `json:"metadata"`
	CustomerEmail     string            `json:"customer_email"`
	CustomerDetails   *struct {
		Email string `json:"email"`
	} `json:"customer_details"`
	PaymentIntent      idOrObject `json:"payment_intent"`
	PaymentLink        idOrObject `json:"payment_link"`
	CurrencyConversion *struct {
		AmountSubtotal *int64 `json:"amount_subtotal"`
		AmountTotal    *int64 `json:"amount_total"`
		SourceCurrency string `json:"source_currency"`
	} `json:"currency_conversion"`
}

// idOrObject reads a field Stripe sends as an id, or as the object when
// expanded.
type idOrObject string

func (v *idOrObject) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*v = ""
		return nil
	}
	var id string
	if err := json.Unmarshal(b, &id); err == nil {
		*v = idOrObject(id)
		return nil
	}
	var obj struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(b, &obj); err != nil {
		return err
	}
	*v = idOrObject(obj.ID)
	return nil
}

// AdaptivePricingMoved is the API version from which a session's currency
// and amounts are the shop's even with Adaptive Pricing; before it they are
// the shopper's, and the shop's are under currency_conversion.
const AdaptivePricingMoved = "2025-03-31"

// PinnedAPIVersion is the API version stripe-go v76 speaks: the shop's own
// reads (the success page's) come back in it.
const PinnedAPIVersion = "2023-10-16"

// ParseEvent reads a Stripe event (a webhook body, or an event from the
// Events API) of any API version. Only checkout.session.* events carry a
// Session; others keep just their id and type. The caller checks the
// signature first.
func ParseEvent(body []byte) (Event, error) {
	var env eventEnvelope
	if err := json.Unmarshal(body, &env); err != nil {
		return Event{}, fmt.Errorf("decode event: %w", err)
	}
	if env.ID == "" || env.Type == "" || env.Object != "event" {
		return Event{}, errors.New("decode event: not a Stripe event")
	}
	if env.Created <= 0 || env.Created > maxUnix {
		return Event{}, fmt.Errorf("decode event: created %d is not a time", env.Created)
	}
	ev := Event{
		ID:         env.ID,
		Type:       env.Type,
		APIVersion: env.APIVersion,
		Created:    time.Unix(env.Created, 0).UTC(),
		Livemode:   env.Livemode,
		Payload:    body,
	}
	switch {
	case strings.HasPrefix(env.Type, "checkout.session."):
		s, err := ParseSession(env.Data.Object, env.APIVersion)
		if err != nil {
			return Event{}, err
		}
		ev.Session = s
	case env.Type == EventChargeRefunded:
		c, err := parseCharge(env.Data.Object)
		if err != nil {
			return Event{}, err
		}
		ev.Charge = &c
	case env.Type == EventRefundUpdated:
		r, err := parseRefund(env.Data.Object)
		if err != nil {
			return Event{}, err
		}
		ev.Refund = &r
	case strings.HasPrefix(env.Type, "charge.dispute."):
		d, err := parseDispute(env.Data.Object)
		if err != nil {
			return Event{}, err
		}
		ev.Dispute = &d
	}
	return ev, nil
}

// ParseSession reads a checkout.session object as Stripe sends it in
// apiVersion, in an event or in answer to a retrieve call. It is the one
// reading of a session: the webhook and the success page both go through
// it, so a null amount is nil (not 0) on both paths, and a session with
// Adaptive Pricing reports the shop's currency and amounts in every version.
func ParseSession(object []byte, apiVersion string) (Session, error) {
	var so sessionObject
	if err := json.Unmarshal(object, &so); err != nil {
		return Session{}, fmt.Errorf("decode checkout session: %w", err)
	}
	if so.Object != "checkout.session" || so.ID == "" {
		return Session{}, errors.New("decode checkout session: not a checkout.session")
	}
	for _, a := range []*int64{so.AmountSubtotal, so.AmountTotal} {
		if a != nil && (*a < 0 || *a > MaxAmount) {
			return Session{}, fmt.Errorf("decode checkout session: amount %d is out of range", *a)
		}
	}
	s := Session{
		ID:             so.ID,
		OrderID:        so.ClientReferenceID,
		Status:         so.Status,
		PaymentStatus:  so.PaymentStatus,
		AmountSubtotal: so.AmountSubtotal,
		AmountTotal:    so.AmountTotal,
		Currency:       so.Currency,
		Email:          so.CustomerEmail,
	}
	if s.OrderID == "" {
		s.OrderID = so.Metadata["order_id"]
	}
	if so.CustomerDetails != nil && so.CustomerDetails.Email != "" {
		s.Email = so.CustomerDetails.Email
	}
	s.PaymentIntent, s.PaymentLink = string(so.PaymentIntent), string(so.PaymentLink)
	if cc := so.CurrencyConversion; cc != nil && cc.SourceCurrency != "" && apiVersion < AdaptivePricingMoved {
		// The shopper paid in their own currency: the shop's figures are
		// the source ones.
		s.Currency, s.AmountSubtotal, s.AmountTotal = cc.SourceCurrency, cc.AmountSubtotal, cc.AmountTotal
		for _, a := range []*int64{s.AmountSubtotal, s.AmountTotal} {
			if a != nil && (*a < 0 || *a > MaxAmount) {
				return Session{}, fmt.Errorf("decode checkout session: amount %d is out of range", *a)
			}
		}
	}
	return s, nil
}

// Charge is what the shop reads of a charge (in charge.refunded).
type Charge struct {
	ID             string
	PaymentIntent  string
	OrderID        string // metadata.order_id, copied from the PaymentIntent
	Amount         int64
	AmountRefunded int64
	Currency       string
}

// RefundInfo is what the shop reads of a refund (charge.refund.updated, or
// the answer to creating one).
type RefundInfo struct {
	ID            string
	Charge        string
	PaymentIntent string
	OrderID       string // metadata.order_id, when the shop made the refund
	Amount        int64
	Status        string
	Reason        string
	Created       time.Time
}

// DisputeInfo is what the shop reads of a dispute (charge.dispute.*).
type DisputeInfo struct {
	ID            string
	Charge        string
	PaymentIntent string
	Amount        int64
	Currency      string
	Status        string
	Reason        string
	EvidenceDueBy *time.Time
}

func parseCharge(object []byte) (Charge, error) {
	var c struct {
		ID             string            `json:"id"`
		Object         string            `json:"object"`
		PaymentIntent  idOrObject        `json:"payment_intent"`
		Metadata       map[string]string `json:"metadata"`
		Amount         int64             `json:"amount"`
		AmountRefunded int64             `json:"amount_refunded"`
		Currency       string            `json:"currency"`
	}
	if err := json.Unmarshal(object, &c); err != nil {
		return Charge{}, fmt.Errorf("decode charge: %w", err)
	}
	if c.Object != "charge" || c.ID == "" {
		return Charge{}, errors.New("decode charge: not a charge")
	}
	if err := amounts(c.Amount, c.AmountRefunded); err != nil || c.AmountRefunded > c.Amount {
		return Charge{}, fmt.Errorf("decode charge %s: amounts %d refunded of %d", c.ID, c.AmountRefunded, c.Amount)
	}
	return Charge{ID: c.ID, PaymentIntent: string(c.PaymentIntent), OrderID: c.Metadata["order_id"],
		Amount: c.Amount, AmountRefunded: c.AmountRefunded, Currency: c.Currency}, nil
}

// ParseRefund reads a refund object (an event's, or the answer to creating
// one).
func ParseRefund(object []byte) (RefundInfo, error) { return parseRefund(object) }

func parseRefund(object []byte) (RefundInfo, error) {
	var r struct {
		ID            string            `json:"id"`
		Object        string            `json:"object"`
		Charge        idOrObject        `json:"charge"`
		PaymentIntent idOrObject        `json:"payment_intent"`
		Metadata      map[string]string `json:"metadata"`
		Amount        int64             `json:"amount"`
		Status        string            `json:"status"`
		Reason        string            `json:"reason"`
		Created       int64             `json:"created"`
	}
	if err := json.Unmarshal(object, &r); err != nil {
		return RefundInfo{}, fmt.Errorf("decode refund: %w", err)
	}
	if r.Object != "refund" || r.ID == "" || r.Status == "" {
		return RefundInfo{}, errors.New("decode refund: not a refund")
	}
	if err := amounts(r.Amount); err != nil || r.Created <= 0 || r.Created > maxUnix {
		return RefundInfo{}, fmt.Errorf("decode refund %s: amount %d, created %d", r.ID, r.Amount, r.Created)
	}
	return RefundInfo{ID: r.ID, Charge: string(r.Charge), PaymentIntent: string(r.PaymentIntent), OrderID: r.Metadata["order_id"],
		Amount: r.Amount, Status: r.Status, Reason: r.Reason, Created: time.Unix(r.Created, 0).UTC()}, nil
}

func parseDispute(object []byte) (DisputeInfo, error) {
	var d struct {
		ID              string     `json:"id"`
		Object          string     `json:"object"`
		Charge          idOrObject `json:"charge"`
		PaymentIntent   idOrObject `json:"payment_intent"`
		Amount          int64      `json:"amount"`
		Currency        string     `json:"currency"`
		Status          string     `json:"status"`
		Reason          string     `json:"reason"`
		EvidenceDetails *struct {
			DueBy *int64 `json:"due_by"`
		} `json:"evidence_details"`
	}
	if err := json.Unmarshal(object, &d); err != nil {
		return DisputeInfo{}, fmt.Errorf("decode dispute: %w", err)
	}
	if d.Object != "dispute" || d.ID == "" || d.Status == "" {
		return DisputeInfo{}, errors.New("decode dispute: not a dispute")
	}
	if err := amounts(d.Amount); err != nil {
		return DisputeInfo{}, fmt.Errorf("decode dispute %s: %w", d.ID, err)
	}
	info := DisputeInfo{ID: d.ID, Charge: string(d.Charge), PaymentIntent: string(d.PaymentIntent), Amount: d.Amount, Currency: d.Currency, Status: d.Status, Reason: d.Reason}
	if d.EvidenceDetails != nil && d.EvidenceDetails.DueBy != nil && *d.EvidenceDetails.DueBy > 0 && *d.EvidenceDetails.DueBy <= maxUnix {
		t := time.Unix(*d.EvidenceDetails.DueBy, 0).UTC()
		info.EvidenceDueBy = &t
	}
	return info, nil
}

// amounts checks that Stripe's figures are believable.
func amounts(as ...int64) error {
	for _, a := range as {
		if a < 0 || a > MaxAmount {
			return fmt.Errorf("amount %d is out of range", a)
		}
	}
	return nil
}
