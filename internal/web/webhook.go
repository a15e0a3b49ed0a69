package web

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"
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
		s.refuseForgery(w, r, err)
		return
	}
	// From here on Stripe signed the body: whatever it holds is stored and
	// answered 2xx (an unreadable event with an alarm), since a 4xx would
	// have Stripe retry it for days and may disable the endpoint.
	ev, res, err := s.orders.HandleSigned(r.Context(), body)
	if err != nil {
		// Not stored: a 5xx makes Stripe deliver it again later.
		s.metrics.Webhook(ev.Type, "failed")
		s.fail(w, r, http.StatusServiceUnavailable, "Event not stored; retry later.", err)
		return
	}
	s.metrics.Webhook(ev.Type, res.Outcome())
	if s.onEvent != nil && !res.Duplicate {
		s.onEvent(ev.Type)
	}
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

// Forged deliveries are throttled per client address: Stripe's own never
// fail their signature, so only forgers (or a wrong secret) spend this
// budget, and its log lines are sampled so they cannot flood the log.
const (
	forgeriesPerMinute = 60
	forgeryLogsPerMin  = 10
)

// refuseForgery answers a delivery whose signature failed: 400, or 429 with
// Retry-After for a client past its budget of failures.
func (s *Server) refuseForgery(w http.ResponseWriter, r *http.Request, err error) {
	client := clientAddr(r, s.cfg.TrustedProxies)
	logged := err
	if logIt, suppressed := s.forgeryLog.take(s.now()); !logIt {
		logged = nil
		quiet(r)
	} else if suppressed > 0 {
		logged = fmt.Errorf("%w (and %d more signature failures not logged in the last minute)", err, suppressed)
	}
	if ok, retry := s.forgeries.Check(client); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(retry.Seconds()+0.999))))
		s.fail(w, r, http.StatusTooManyRequests, "Too many invalid signatures.", logged)
		return
	}
	s.forgeries.Charge(client)
	s.fail(w, r, http.StatusBadRequest, "Invalid signature.", logged)
}

// sampler lets a few log lines a minute through and counts the rest.
type sampler struct {
	perMinute int
	mu        sync.Mutex
	window    time.Time
	seen      int
	dropped   int
}

// take reports whether to log the next line, and how many were dropped
// since the last one logged.
func (l *sampler) take(now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.window) >= time.Minute {
		l.window, l.seen = now, 0
	}
	l.seen++
	if l.seen > l.perMinute {
		l.dropped++
		return false, 0
	}
	dropped := l.dropped
	l.dropped = 0
	return true, dropped
}
