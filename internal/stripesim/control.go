package stripesim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// Control endpoints under /sim/, the simulator's counterpart of
// `stripe trigger` and `stripe events resend`. They answer JSON
// {"session": ...}, {"event": ...}, {"dispute": ...} or {"refund": ...}; a
// form field return=page makes the session state endpoints redirect back
// to the hosted page instead. The dispute and refund controls are in
// aftersale.go.

// eventInfo is an event log entry with its delivery records.
type eventInfo struct {
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	Created    int64           `json:"created"`
	Deliveries []delivery      `json:"deliveries"`
	Event      json.RawMessage `json:"event"`
}

func (s *Sim) infoLocked(ev *event) eventInfo {
	ds := make([]delivery, 0, len(ev.deliveries))
	for _, d := range ev.deliveries {
		ds = append(ds, *d)
	}
	return eventInfo{ID: ev.ID, Type: ev.Type, Created: ev.Created, Deliveries: ds, Event: ev.payload}
}

// writeSession answers a session's state, with its payment once paid:
// {"session": ..., "charge": ...|null, "refunds": [...], "dispute": ...|null}.
func (s *Sim) writeSession(w http.ResponseWriter, ss session) {
	out := map[string]any{
		"session": json.RawMessage(s.renderSession(ss.base, &ss, map[string]bool{"line_items": true})),
		"charge":  nil, "refunds": []json.RawMessage{}, "dispute": nil,
	}
	s.mu.Lock()
	if c := s.charges[ss.Charge]; c != nil {
		out["charge"] = s.chargeObjectLocked(c)
		refunds := make([]json.RawMessage, 0, len(c.Refunds))
		for _, id := range c.Refunds {
			refunds = append(refunds, s.renderRefundLocked(s.refunds[id].base, s.refunds[id], nil))
		}
		out["refunds"] = refunds
		if d := s.disputes[c.Dispute]; d != nil {
			out["dispute"] = s.disputeObject(d)
		}
	}
	s.mu.Unlock()
	jsonResponse(http.StatusOK, out).write(w)
}

func (s *Sim) handleSimSession(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	ss, ok := s.lookup(id)
	if !ok {
		missing("checkout.session", id, "id").write(w)
		return
	}
	s.writeSession(w, ss)
}

func (s *Sim) handleAsync(succeed bool) http.HandlerFunc {
	return s.sessionAction(func(ss *session) (string, error) {
		if ss.Status != statusComplete || ss.PaymentStatus != paymentUnpaid || ss.AsyncResult != "" {
			return "", &stateError{fmt.Sprintf("checkout session %s is not awaiting a delayed payment (status %s, payment_status %s)", ss.ID, ss.Status, ss.PaymentStatus)}
		}
		if succeed {
			ss.PaymentStatus, ss.AsyncResult = paymentPaid, "succeeded"
			s.chargeLocked(ss, s.now())
			return "checkout.session.async_payment_succeeded", nil
		}
		ss.AsyncResult = "failed"
		return "checkout.session.async_payment_failed", nil
	})
}

func (s *Sim) handleSimExpire(w http.ResponseWriter, r *http.Request) {
	s.sessionAction(expireSession)(w, r)
}

// sessionAction wraps a state transition as a control endpoint.
func (s *Sim) sessionAction(fn func(ss *session) (string, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		_ = r.ParseForm() // only "return" is read; a bad form means JSON
		id := r.PathValue("id")
		ss, err := s.update(id, fn)
		switch {
		case r.PostFormValue("return") == "page":
			http.Redirect(w, r, "/pay/"+id, http.StatusSeeOther)
		case err == nil:
			s.writeSession(w, ss)
		case statusFor(err) == http.StatusNotFound:
			missing("checkout.session", id, "id").write(w)
		default:
			stripeError(statusFor(err), "invalid_request_error", "", "", err.Error()).write(w)
		}
	}
}

func (s *Sim) handleSimEvents(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	infos := make([]eventInfo, 0, len(s.events))
	for i := len(s.events) - 1; i >= 0; i-- {
		infos = append(infos, s.infoLocked(s.events[i]))
	}
	s.mu.Unlock()
	jsonResponse(http.StatusOK, map[string]any{"events": infos}).write(w)
}

func (s *Sim) handleResend(w http.ResponseWriter, r *http.Request) {
	s.redeliver(w, r, 1)
}

func (s *Sim) handleDuplicate(w http.ResponseWriter, r *http.Request) {
	n := 2
	if v := r.URL.Query().Get("n"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > maxDuplicates {
			invalid("n", fmt.Sprintf("n must be an integer between 1 and %d", maxDuplicates)).write(w)
			return
		}
	}
	s.redeliver(w, r, n)
}

// redeliver delivers an existing event n more times, concurrently, each
// attempt freshly signed.
func (s *Sim) redeliver(w http.ResponseWriter, r *http.Request, n int) {
	id := r.PathValue("id")
	s.mu.Lock()
	ev := s.eventByID[id]
	s.mu.Unlock()
	if ev == nil {
		missing("event", id, "id").write(w)
		return
	}
	for range n {
		if !s.deliver(ev) {
			stripeError(http.StatusConflict, "invalid_request_error", "", "", "webhook delivery is disabled or the simulator is closing").write(w)
			return
		}
	}
	s.log.Info("event redelivered", "event", id, "times", n)
	s.mu.Lock()
	info := s.infoLocked(ev)
	s.mu.Unlock()
	jsonResponse(http.StatusOK, map[string]any{"event": info}).write(w)
}
