package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/shopcheckout/shop/internal/orders"
)

const (
	// maxWebhookBody is far above any real Stripe event (checkout events with
	// many line items run past 50 KB) and still bounded.
	maxWebhookBody = 512 << 10
	// webhookTolerance is how old a signature may be before it counts as a
	// replay.
	webhookTolerance = 300 * time.Second
)

// eventEnvelope is the part of a Stripe event the shop reads. It is decoded
// by hand, not by stripe-go's Event, so that events of any API version work:
// these fields mean the same in every version.
type eventEnvelope struct {
	ID         string `json:"id"`
	Object     string `json:"object"`
	Type       string `json:"type"`
	APIVersion string `json:"api_version"`
	Created    int64  `json:"created"`
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

type webhookResponse struct {
	Received  bool `json:"received"`
	Duplicate bool `json:"duplicate,omitempty"`
}

func (s *Server) handleWebhook(w http.ResponseWriter, r *http.Request) {
	if len(s.cfg.WebhookSecrets) == 0 {
		s.fail(w, r, http.StatusServiceUnavailable, "Webhooks are not configured: set STRIPE_WEBHOOK_SECRET.", errors.New("webhook received but STRIPE_WEBHOOK_SECRET is not set"))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.fail(w, r, http.StatusRequestEntityTooLarge, "Event too large.", err)
			return
		}
		s.fail(w, r, http.StatusBadRequest, "Could not read the event.", err)
		return
	}
	if err := s.verifySignature(body, r.Header.Get("Stripe-Signature")); err != nil {
		s.fail(w, r, http.StatusBadRequest, "Invalid signature.", err)
		return
	}
	ev, err := parseEvent(body)
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, "Malformed event.", err)
		return
	}
	res, err := s.orders.HandleEvent(r.Context(), ev)
	if err != nil {
		// Not stored: a 5xx makes Stripe deliver it again later.
		s.fail(w, r, http.StatusServiceUnavailable, "Event not stored; retry later.", err)
		return
	}
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "webhook event",
		slog.String("event_id", ev.ID), slog.String("type", ev.Type), slog.String("api_version", ev.APIVersion),
		slog.Bool("duplicate", res.Duplicate), slog.Bool("matched", res.Matched))
	s.writeJSON(w, r, http.StatusOK, webhookResponse{Received: true, Duplicate: res.Duplicate})
}

// verifySignature accepts the payload if any configured secret signed it
// within the tolerance.
func (s *Server) verifySignature(body []byte, header string) error {
	if header == "" {
		return errors.New("missing Stripe-Signature header")
	}
	var last error
	for _, secret := range s.cfg.WebhookSecrets {
		err := webhook.ValidatePayloadWithTolerance(body, header, secret, webhookTolerance)
		if err == nil {
			return nil
		}
		last = err
	}
	return fmt.Errorf("signature rejected: %w", last)
}

// parseEvent reads a verified event body.
func parseEvent(body []byte) (orders.Event, error) {
	var env eventEnvelope
	if err := json.Unmarshal(body, &env); err != nil {
		return orders.Event{}, fmt.Errorf("decode event: %w", err)
	}
	if env.ID == "" || env.Type == "" || env.Object != "event" {
		return orders.Event{}, errors.New("decode event: not a Stripe event")
	}
	ev := orders.Event{
		ID:         env.ID,
		Type:       env.Type,
		APIVersion: env.APIVersion,
		Created:    time.Unix(env.Created, 0).UTC(),
		Payload:    body,
	}
	if !strings.HasPrefix(env.Type, "checkout.session.") {
		return ev, nil
	}
	var so sessionObject
	if err := json.Unmarshal(env.Data.Object, &so); err != nil {
		return orders.Event{}, fmt.Errorf("decode checkout session: %w", err)
	}
	if so.Object != "checkout.session" || so.ID == "" {
		return orders.Event{}, errors.New("decode checkout session: not a checkout.session")
	}
	ev.Session = orders.Session{
		ID:             so.ID,
		OrderID:        so.ClientReferenceID,
		Status:         so.Status,
		PaymentStatus:  so.PaymentStatus,
		AmountSubtotal: so.AmountSubtotal,
		AmountTotal:    so.AmountTotal,
		Currency:       so.Currency,
		Email:          so.CustomerEmail,
	}
	if ev.Session.OrderID == "" {
		ev.Session.OrderID = so.Metadata["order_id"]
	}
	if so.CustomerDetails != nil && so.CustomerDetails.Email != "" {
		ev.Session.Email = so.CustomerDetails.Email
	}
	return ev, nil
}
