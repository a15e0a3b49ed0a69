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
}

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
	if !strings.HasPrefix(env.Type, "checkout.session.") {
		return ev, nil
	}
	s, err := ParseSession(env.Data.Object)
	if err != nil {
		return Event{}, err
	}
	ev.Session = s
	return ev, nil
}

// ParseSession reads a checkout.session object as Stripe sends it, in an
// event or in answer to a retrieve call. It is the one reading of a session:
// the webhook and the success page both go through it, so a null amount is
// nil (not 0) on both paths.
func ParseSession(object []byte) (Session, error) {
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
	return s, nil
}
