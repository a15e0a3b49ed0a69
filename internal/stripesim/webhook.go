package stripesim

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"
)

// Delivery states.
const (
	deliveryPending   = "pending"
	deliveryDelivered = "delivered"
	deliveryFailed    = "failed"
)

// delivery records one delivery of an event (with its retries). Its fields
// are guarded by Sim.mu.
type delivery struct {
	State      string `json:"state"`
	Attempts   int    `json:"attempts"`
	LastStatus int    `json:"last_status,omitempty"`
	LastError  string `json:"last_error,omitempty"`
}

// deliver starts an asynchronous delivery of ev to the webhook endpoint. It
// reports false if delivery is disabled or the simulator is closed. A nil
// ev (a change that changed nothing) is not delivered.
func (s *Sim) deliver(ev *event) bool {
	if s.cfg.WebhookURL == "" || ev == nil {
		return false
	}
	d := &delivery{State: deliveryPending}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	ev.deliveries = append(ev.deliveries, d)
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		s.retry(ev, d)
	}()
	return true
}

// retry posts ev until the endpoint answers 2xx, backing off exponentially,
// for at most RetryFor or until Close.
func (s *Sim) retry(ev *event, d *delivery) {
	deadline := time.Now().Add(s.cfg.RetryFor)
	backoff := firstBackoff
	for attempt := 1; ; attempt++ {
		status, err := s.post(ev)
		s.mu.Lock()
		d.Attempts, d.LastStatus, d.LastError = attempt, status, ""
		if err != nil {
			d.LastError = err.Error()
		} else {
			d.State = deliveryDelivered
		}
		s.mu.Unlock()
		if err == nil {
			s.log.Info("webhook delivered", "event", ev.ID, "type", ev.Type, "attempt", attempt, "status", status)
			return
		}
		s.log.Warn("webhook delivery failed", "event", ev.ID, "type", ev.Type, "attempt", attempt, "err", err)
		if time.Now().Add(backoff).After(deadline) {
			s.giveUp(ev, d, "retry window exhausted")
			return
		}
		t := time.NewTimer(backoff)
		select {
		case <-s.ctx.Done():
			t.Stop()
			s.giveUp(ev, d, "simulator closed")
			return
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

func (s *Sim) giveUp(ev *event, d *delivery, why string) {
	s.mu.Lock()
	d.State = deliveryFailed
	s.mu.Unlock()
	s.log.Warn("webhook delivery abandoned", "event", ev.ID, "type", ev.Type, "reason", why)
}

// post makes one signed delivery attempt, with a fresh signature timestamp.
func (s *Sim) post(ev *event) (int, error) {
	ctx, cancel := context.WithTimeout(s.ctx, attemptTimeout)
	defer cancel()
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{
		Payload:   ev.payload,
		Secret:    s.cfg.WebhookSecret,
		Timestamp: s.now(),
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.WebhookURL, bytes.NewReader(ev.payload))
	if err != nil {
		return 0, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)")
	req.Header.Set("Accept", "*/*; q=0.5, application/xml")
	req.Header.Set("Cache-Control", "no-cache")
	req.Header.Set("Stripe-Signature", signed.Header)
	resp, err := s.hooks.Do(req)
	if err != nil {
		return 0, fmt.Errorf("post: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("endpoint answered %s", resp.Status)
	}
	return resp.StatusCode, nil
}
