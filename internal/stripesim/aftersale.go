package stripesim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/shopcheckout/shop/internal/money"
)

// After the sale: a paid session has a charge, which the shop can refund
// through POST /v1/refunds and a /sim control can dispute, with the events
// Stripe sends about them. All of it is guarded by Sim.mu and lives as
// long as its session.

// Refund and dispute statuses and defaults, as Stripe spells them.
const (
	refundSucceeded        = "succeeded"
	refundPending          = "pending"
	refundFailed           = "failed"
	defaultFailureReason   = "expired_or_canceled_card"
	disputeNeedsResponse   = "needs_response"
	disputeWon             = "won"
	disputeLost            = "lost"
	defaultDisputeReason   = "fraudulent"
	disputeResponseWindow  = 7 * 24 * time.Hour
	eventChargeRefunded    = "charge.refunded"
	eventRefundUpdated     = "charge.refund.updated"
	eventDisputeCreated    = "charge.dispute.created"
	eventDisputeWithdrawn  = "charge.dispute.funds_withdrawn"
	eventDisputeClosed     = "charge.dispute.closed"
	eventDisputeReinstated = "charge.dispute.funds_reinstated"
)

// Values Stripe accepts for a refund's failure_reason and a dispute's reason.
var (
	failureReasons = []string{"expired_or_canceled_card", "lost_or_stolen_card", "unknown"}
	disputeReasons = []string{"bank_cannot_process", "check_returned", "credit_not_processed", "customer_initiated",
		"debit_not_authorized", "duplicate", "fraudulent", "general", "incorrect_account_details", "insufficient_funds",
		"product_not_received", "product_unacceptable", "subscription_canceled", "unrecognized"}
	evidenceFields = []string{"access_activity_log", "billing_address", "cancellation_policy", "cancellation_policy_disclosure",
		"cancellation_rebuttal", "customer_communication", "customer_email_address", "customer_name", "customer_purchase_ip",
		"customer_signature", "duplicate_charge_documentation", "duplicate_charge_explanation", "duplicate_charge_id",
		"product_description", "receipt", "refund_policy", "refund_policy_disclosure", "refund_refusal_explanation",
		"service_date", "service_documentation", "shipping_address", "shipping_carrier", "shipping_date",
		"shipping_documentation", "shipping_tracking_number", "uncategorized_file", "uncategorized_text"}
)

// charge is the payment of a paid session. Metadata is the PaymentIntent's
// (payment_intent_data[metadata] of the create request), never mutated.
type charge struct {
	ID, PaymentIntent, Session string
	Amount, AmountRefunded     int64 // AmountRefunded counts refunds that have not failed
	Currency, Email            string
	Metadata                   map[string]string
	Refunds                    []string // ids, oldest first
	Dispute                    string   // a charge has at most one
	Created                    int64
}

func (c *charge) unrefunded() int64 { return c.Amount - c.AmountRefunded }

type refund struct {
	ID, Charge, PaymentIntent string
	Amount                    int64
	Currency                  string
	Status, Reason            string
	FailureReason             string // once failed
	Metadata                  map[string]string
	Created                   int64
	base                      []byte // stripe-mock's answer to the create request
}

type dispute struct {
	ID, Charge, PaymentIntent string
	Amount                    int64
	Currency, Reason, Status  string
	Created, DueBy            int64
}

func (d *dispute) closed() bool { return d.Status == disputeWon || d.Status == disputeLost }

// chargeRefundable reports whether a charge with this dispute can still be
// refunded: not while a chargeback is open or lost.
func (d *dispute) chargeRefundable() bool { return d.Status == disputeWon }

// assignPaymentIntentLocked gives a completing session its PaymentIntent.
func (s *Sim) assignPaymentIntentLocked(ss *session) {
	if ss.PaymentIntent == "" {
		ss.PaymentIntent = newID("pi_", 24)
	}
	s.piSession[ss.PaymentIntent] = ss.ID
}

// chargeLocked records the successful charge of a session that was just
// paid, unless it has one.
func (s *Sim) chargeLocked(ss *session, now time.Time) {
	if ss.Charge != "" {
		return
	}
	s.assignPaymentIntentLocked(ss)
	email := ss.Email
	if email == "" {
		email = ss.CustomerEmail
	}
	c := &charge{
		ID: newID("ch_", 24), PaymentIntent: ss.PaymentIntent, Session: ss.ID,
		Amount: ss.AmountTotal, Currency: ss.Currency, Email: email, Metadata: ss.PIMetadata, Created: now.Unix(),
	}
	s.charges[c.ID] = c
	ss.Charge = c.ID
}

// forgetLocked drops what hangs off a session that is being forgotten.
func (s *Sim) forgetLocked(ss *session) {
	if ss == nil {
		return
	}
	delete(s.piSession, ss.PaymentIntent)
	c := s.charges[ss.Charge]
	if c == nil {
		return
	}
	for _, id := range c.Refunds {
		delete(s.refunds, id)
	}
	delete(s.disputes, c.Dispute)
	delete(s.charges, c.ID)
}

func (s *Sim) encode(what string, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil { // cannot happen: only plain values and decoded JSON
		s.log.Error("encode object", "object", what, "err", err)
		return []byte("{}")
	}
	return b
}

// chargeObjectLocked renders a charge as Stripe does since API version
// 2022-11-15, without its refunds list (which is no longer expanded by
// default).
func (s *Sim) chargeObjectLocked(c *charge) map[string]any {
	return map[string]any{
		"id":                  c.ID,
		"object":              "charge",
		"amount":              c.Amount,
		"amount_captured":     c.Amount,
		"amount_refunded":     c.AmountRefunded,
		"balance_transaction": nil,
		"billing_details":     map[string]any{"address": nil, "email": nullable(c.Email), "name": nil, "phone": nil},
		"captured":            true,
		"created":             c.Created,
		"currency":            c.Currency,
		"customer":            nil,
		"description":         nil,
		"disputed":            c.Dispute != "",
		"failure_code":        nil,
		"failure_message":     nil,
		"livemode":            false,
		"metadata":            c.Metadata,
		"paid":                true,
		"payment_intent":      c.PaymentIntent,
		"payment_method":      nil,
		"receipt_email":       nil,
		"refunded":            c.AmountRefunded == c.Amount,
		"status":              "succeeded",
	}
}

// renderRefundLocked overwrites a stripe-mock refund object (base) with the
// refund's state; rf.base stands in if base is not a JSON object.
func (s *Sim) renderRefundLocked(base []byte, rf *refund, expand map[string]bool) []byte {
	obj, err := decodeObject(base)
	if err != nil {
		obj, _ = decodeObject(rf.base)
	}
	for k, v := range map[string]any{
		"id":             rf.ID,
		"object":         "refund",
		"amount":         rf.Amount,
		"charge":         rf.Charge,
		"created":        rf.Created,
		"currency":       rf.Currency,
		"metadata":       rf.Metadata,
		"payment_intent": rf.PaymentIntent,
		"reason":         nullable(rf.Reason),
		"status":         rf.Status,
	} {
		obj[k] = v
	}
	if rf.Status == refundFailed {
		obj["failure_reason"] = rf.FailureReason
	}
	c := s.charges[rf.Charge]
	if expand["charge"] && c != nil {
		obj["charge"] = s.chargeObjectLocked(c)
	}
	if expand["payment_intent"] && c != nil {
		obj["payment_intent"] = map[string]any{
			"id": c.PaymentIntent, "object": "payment_intent", "amount": c.Amount, "amount_received": c.Amount,
			"currency": c.Currency, "latest_charge": c.ID, "livemode": false, "metadata": c.Metadata, "status": "succeeded",
		}
	}
	return s.encode("refund", obj)
}

func (s *Sim) disputeObject(d *dispute) map[string]any {
	evidence := make(map[string]any, len(evidenceFields))
	for _, f := range evidenceFields {
		evidence[f] = nil
	}
	return map[string]any{
		"id":                   d.ID,
		"object":               "dispute",
		"amount":               d.Amount,
		"balance_transactions": []any{},
		"charge":               d.Charge,
		"created":              d.Created,
		"currency":             d.Currency,
		"evidence":             evidence,
		"evidence_details": map[string]any{
			"due_by": d.DueBy, "has_evidence": false, "past_due": false, "submission_count": 0,
		},
		"is_charge_refundable": d.chargeRefundable(),
		"livemode":             false,
		"metadata":             map[string]string{},
		"payment_intent":       d.PaymentIntent,
		"reason":               d.Reason,
		"status":               d.Status,
	}
}

// refundRequest is what the simulator reads of POST /v1/refunds.
type refundRequest struct {
	PaymentIntent, Charge string
	Amount                int64
	HasAmount             bool
	Reason                string
	Metadata              map[string]string
}

func parseRefundRequest(form url.Values) (refundRequest, apiResponse, bool) {
	req := refundRequest{
		PaymentIntent: form.Get("payment_intent"), Charge: form.Get("charge"), Reason: form.Get("reason"),
		Metadata: map[string]string{},
	}
	for key, vals := range form {
		if parts := formKey(key); parts[0] == "metadata" && len(parts) == 2 {
			req.Metadata[parts[1]] = vals[0]
		}
	}
	if req.PaymentIntent == "" && req.Charge == "" {
		return req, stripeError(http.StatusBadRequest, "invalid_request_error", "parameter_missing", "",
			"One of `charge` or `payment_intent` is required."), false
	}
	if v := form.Get("amount"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return req, stripeError(http.StatusBadRequest, "invalid_request_error", "parameter_invalid_integer", "amount",
				"Invalid positive integer"), false
		}
		req.Amount, req.HasAmount = n, true
	}
	return req, apiResponse{}, true
}

// refundLocked checks req against the charge it names and records the
// refund, like Stripe: never more than what is left on the charge.
func (s *Sim) refundLocked(req refundRequest, base []byte, now time.Time) (*refund, *charge, apiResponse) {
	var c *charge
	if req.PaymentIntent != "" {
		ss := s.sessions[s.piSession[req.PaymentIntent]]
		if ss == nil {
			return nil, nil, missing("payment_intent", req.PaymentIntent, "payment_intent")
		}
		if c = s.charges[ss.Charge]; c == nil {
			return nil, nil, invalid("payment_intent", fmt.Sprintf("This PaymentIntent (%s) does not have a successful charge to refund.", req.PaymentIntent))
		}
		if req.Charge != "" && req.Charge != c.ID {
			return nil, nil, invalid("charge", fmt.Sprintf("Charge %s does not belong to PaymentIntent %s.", req.Charge, req.PaymentIntent))
		}
	} else if c = s.charges[req.Charge]; c == nil {
		return nil, nil, missing("charge", req.Charge, "charge")
	}
	if d := s.disputes[c.Dispute]; d != nil && !d.chargeRefundable() {
		return nil, nil, stripeError(http.StatusBadRequest, "invalid_request_error", "charge_disputed", "",
			fmt.Sprintf("Charge %s has been charged back.", c.ID))
	}
	left := c.unrefunded()
	amount := left
	if req.HasAmount {
		amount = req.Amount
	}
	switch {
	case !req.HasAmount && left == 0:
		return nil, nil, stripeError(http.StatusBadRequest, "invalid_request_error", "charge_already_refunded", "",
			fmt.Sprintf("Charge %s has already been refunded.", c.ID))
	case amount > left:
		return nil, nil, invalid("amount", fmt.Sprintf("Refund amount (%s) is greater than unrefunded amount on charge (%s)",
			money.Format(amount, c.Currency), money.Format(left, c.Currency)))
	}
	rf := &refund{
		ID: newID("re_", 24), Charge: c.ID, PaymentIntent: c.PaymentIntent, Amount: amount, Currency: c.Currency,
		Status: refundSucceeded, Reason: req.Reason, Metadata: req.Metadata, Created: now.Unix(), base: base,
	}
	s.refunds[rf.ID] = rf
	c.Refunds = append(c.Refunds, rf.ID)
	c.AmountRefunded += amount
	return rf, c, apiResponse{}
}

func (s *Sim) handleCreateRefund(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	s.idempotent(r, body, func() apiResponse { return s.createRefund(r, body) }).write(w)
}

// createRefund validates the request through stripe-mock, then refunds from
// the simulator's state and records charge.refunded. Stripe sends no
// charge.refund.updated for a refund that simply succeeds.
func (s *Sim) createRefund(r *http.Request, body []byte) apiResponse {
	resp, ok := s.validate(r, body)
	if !ok {
		return resp
	}
	if _, err := decodeObject(resp.body); err != nil {
		return mockUnreachable(err)
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return invalid("", "invalid form body: "+err.Error())
	}
	req, errResp, ok := parseRefundRequest(form)
	if !ok {
		return errResp
	}
	now := s.now()
	s.mu.Lock()
	rf, c, errResp := s.refundLocked(req, resp.body, now)
	if rf == nil {
		s.mu.Unlock()
		return errResp
	}
	ev := s.recordLocked(eventChargeRefunded, s.encode("charge", s.chargeObjectLocked(c)), c.ID, now)
	resp.body = s.renderRefundLocked(resp.body, rf, expandSet(form))
	s.mu.Unlock()
	s.deliver(ev)
	s.log.Info("refund created", "id", rf.ID, "charge", c.ID, "amount", rf.Amount, "currency", rf.Currency)
	return resp
}

func (s *Sim) handleGetRefund(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	rf := s.refunds[id]
	s.mu.Unlock()
	if rf == nil {
		missing("refund", id, "id").write(w)
		return
	}
	resp, ok := s.validate(r, nil)
	if ok {
		s.mu.Lock()
		resp.body = s.renderRefundLocked(resp.body, rf, expandSet(r.URL.Query()))
		s.mu.Unlock()
	}
	resp.write(w)
}

// controlForm reads a control endpoint's small form (body or query).
func controlForm(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	_ = r.ParseForm() // a bad form reads as empty: defaults apply
}

// handleFailRefund makes a refund fail after the fact, as a card refund can
// days later: the money returns to the shop, the charge's amount_refunded
// drops, and Stripe sends charge.refund.updated.
func (s *Sim) handleFailRefund(w http.ResponseWriter, r *http.Request) {
	controlForm(w, r)
	reason := r.FormValue("failure_reason")
	if reason == "" {
		reason = defaultFailureReason
	}
	if !slices.Contains(failureReasons, reason) {
		invalid("failure_reason", fmt.Sprintf("failure_reason must be one of %v", failureReasons)).write(w)
		return
	}
	id := r.PathValue("id")
	now := s.now()
	s.mu.Lock()
	rf := s.refunds[id]
	if rf == nil {
		s.mu.Unlock()
		missing("refund", id, "id").write(w)
		return
	}
	if rf.Status != refundSucceeded && rf.Status != refundPending {
		s.mu.Unlock()
		invalid("", fmt.Sprintf("refund %s has status %s: only a succeeded or pending refund can fail", id, rf.Status)).write(w)
		return
	}
	rf.Status, rf.FailureReason = refundFailed, reason
	if c := s.charges[rf.Charge]; c != nil {
		c.AmountRefunded -= rf.Amount
	}
	obj := s.renderRefundLocked(rf.base, rf, nil)
	ev := s.recordLocked(eventRefundUpdated, obj, rf.ID, now)
	s.mu.Unlock()
	s.deliver(ev)
	s.log.Info("refund failed", "id", id, "failure_reason", reason)
	jsonResponse(http.StatusOK, map[string]any{"refund": json.RawMessage(obj)}).write(w)
}

// handleOpenDispute opens a chargeback on a paid session's charge: Stripe
// sends charge.dispute.created and, as the disputed amount leaves the
// balance at once, charge.dispute.funds_withdrawn.
func (s *Sim) handleOpenDispute(w http.ResponseWriter, r *http.Request) {
	controlForm(w, r)
	reason := r.FormValue("reason")
	if reason == "" {
		reason = defaultDisputeReason
	}
	if !slices.Contains(disputeReasons, reason) {
		invalid("reason", fmt.Sprintf("reason must be one of %v", disputeReasons)).write(w)
		return
	}
	id := r.PathValue("id")
	now := s.now()
	s.mu.Lock()
	ss := s.sessions[id]
	if ss == nil {
		s.mu.Unlock()
		missing("checkout.session", id, "id").write(w)
		return
	}
	c := s.charges[ss.Charge]
	var problem string
	switch {
	case c == nil:
		problem = fmt.Sprintf("checkout session %s has no successful payment to dispute (status %s, payment_status %s)", id, ss.Status, ss.PaymentStatus)
	case c.Dispute != "":
		problem = fmt.Sprintf("charge %s already has dispute %s", c.ID, c.Dispute)
	case c.unrefunded() == 0:
		problem = fmt.Sprintf("charge %s is fully refunded: a fully refunded card payment cannot be disputed", c.ID)
	}
	if problem != "" {
		s.mu.Unlock()
		invalid("", problem).write(w)
		return
	}
	d := &dispute{
		ID: newID("dp_", 24), Charge: c.ID, PaymentIntent: c.PaymentIntent, Amount: c.unrefunded(), Currency: c.Currency,
		Reason: reason, Status: disputeNeedsResponse, Created: now.Unix(), DueBy: now.Add(disputeResponseWindow).Unix(),
	}
	s.disputes[d.ID] = d
	c.Dispute = d.ID
	obj := s.encode("dispute", s.disputeObject(d))
	evs := []*event{s.recordLocked(eventDisputeCreated, obj, d.ID, now), s.recordLocked(eventDisputeWithdrawn, obj, d.ID, now)}
	s.mu.Unlock()
	for _, ev := range evs {
		s.deliver(ev)
	}
	s.log.Info("dispute opened", "id", d.ID, "charge", c.ID, "reason", reason)
	jsonResponse(http.StatusOK, map[string]any{"dispute": json.RawMessage(obj)}).write(w)
}

// handleCloseDispute decides a dispute: charge.dispute.closed with the
// outcome and, when the shop won, charge.dispute.funds_reinstated after it.
func (s *Sim) handleCloseDispute(w http.ResponseWriter, r *http.Request) {
	controlForm(w, r)
	outcome := r.FormValue("outcome")
	if outcome != disputeWon && outcome != disputeLost {
		invalid("outcome", "outcome must be won or lost").write(w)
		return
	}
	id := r.PathValue("id")
	now := s.now()
	s.mu.Lock()
	d := s.disputes[id]
	if d == nil {
		s.mu.Unlock()
		missing("dispute", id, "id").write(w)
		return
	}
	if d.closed() {
		s.mu.Unlock()
		invalid("", fmt.Sprintf("dispute %s is already closed (%s)", id, d.Status)).write(w)
		return
	}
	d.Status = outcome
	obj := s.encode("dispute", s.disputeObject(d))
	evs := []*event{s.recordLocked(eventDisputeClosed, obj, d.ID, now)}
	if outcome == disputeWon {
		evs = append(evs, s.recordLocked(eventDisputeReinstated, obj, d.ID, now))
	}
	s.mu.Unlock()
	for _, ev := range evs {
		s.deliver(ev)
	}
	s.log.Info("dispute closed", "id", id, "outcome", outcome)
	jsonResponse(http.StatusOK, map[string]any{"dispute": json.RawMessage(obj)}).write(w)
}

func (s *Sim) handleSimDispute(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	d := s.disputes[id]
	var obj []byte
	if d != nil {
		obj = s.encode("dispute", s.disputeObject(d))
	}
	s.mu.Unlock()
	if d == nil {
		missing("dispute", id, "id").write(w)
		return
	}
	jsonResponse(http.StatusOK, map[string]any{"dispute": json.RawMessage(obj)}).write(w)
}
