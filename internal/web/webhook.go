package web

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
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

type webhookResponse struct {
	Received  bool `json:"received"`
	Duplicate bool `json:"duplicate,omitempty"`
}

func (s *Server) handleWebhook(w http.ResponseWriter, r *http.Request) {
	if len(s.cfg.WebhookSecrets) == 0 {
		s.metrics.Webhook("", "rejected")
		s.fail(w, r, http.StatusServiceUnavailable, "Webhooks are not configured: set STRIPE_WEBHOOK_SECRET.", errors.New("webhook received but STRIPE_WEBHOOK_SECRET is not set"))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		s.metrics.Webhook("", "rejected")
		if errors.As(err, &tooBig) {
			s.fail(w, r, http.StatusRequestEntityTooLarge, "Event too large.", err)
			return
		}
		s.fail(w, r, http.StatusBadRequest, "Could not read the event.", err)
		return
	}
	if err := s.verifySignature(body, r.Header.Get("Stripe-Signature")); err != nil {
		s.metrics.Webhook("", "rejected")
		s.fail(w, r, http.StatusBadRequest, "Invalid signature.", err)
		return
	}
	ev, err := orders.ParseEvent(body)
	if err != nil {
		s.metrics.Webhook("", "rejected")
		s.fail(w, r, http.StatusBadRequest, "Malformed event.", err)
		return
	}
	res, err := s.orders.HandleEvent(r.Context(), ev)
	if err != nil {
		// Not stored: a 5xx makes Stripe deliver it again later.
		s.metrics.Webhook(ev.Type, "failed")
		s.fail(w, r, http.StatusServiceUnavailable, "Event not stored; retry later.", err)
		return
	}
	s.metrics.Webhook(ev.Type, res.Outcome())
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "webhook event",
		slog.String("event_id", ev.ID), slog.String("type", ev.Type), slog.String("api_version", ev.APIVersion),
		slog.String("outcome", res.Outcome()))
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
