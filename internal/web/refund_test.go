package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stripe/stripe-go/v76"

	"github.com/shopcheckout/shop/internal/catalog"
	"github.com/shopcheckout/shop/internal/orders"
	"github.com/shopcheckout/shop/internal/sqlite"
	"github.com/shopcheckout/shop/internal/stripeapi"
	"github.com/shopcheckout/shop/internal/testenv"
	"github.com/shopcheckout/shop/static"
	"github.com/shopcheckout/shop/templates"
)

// fakeRefunds stands in for Stripe's Refunds API and remembers every call.
// Like Stripe it keeps idempotency: a key names one refund, and the same
// key with other parameters is an idempotency error.
type fakeRefunds struct {
	mu     sync.Mutex
	calls  []*stripe.RefundParams
	made   []*stripe.Refund
	byKey  map[string]*stripe.Refund
	params map[string]string // key -> the parameters first sent with it
	err    error
	hang   bool // block until the call's context is done
	noRaw  bool // answer without LastResponse
}

func newFakeRefunds() *fakeRefunds {
	return &fakeRefunds{byKey: map[string]*stripe.Refund{}, params: map[string]string{}}
}

func (f *fakeRefunds) New(p *stripe.RefundParams) (*stripe.Refund, error) {
	f.mu.Lock()
	f.calls = append(f.calls, p)
	hang, err := f.hang, f.err
	f.mu.Unlock()
	if hang {
		<-p.Context.Done()
		return nil, p.Context.Err()
	}
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	answer := func(r stripe.Refund) *stripe.Refund {
		if f.noRaw {
			return &r
		}
		return withRefundJSON(r)
	}
	fingerprint := fmt.Sprintf("%s|%d|%s|%v", deref(p.PaymentIntent), *p.Amount, deref(p.Reason), p.Metadata)
	if p.IdempotencyKey != nil {
		if r, ok := f.byKey[*p.IdempotencyKey]; ok {
			if f.params[*p.IdempotencyKey] != fingerprint {
				return nil, &stripe.Error{HTTPStatusCode: 400, Type: stripe.ErrorTypeIdempotency,
					Msg: "Keys for idempotent requests can only be used with the same parameters they were first used with."}
			}
			return answer(*r), nil
		}
	}
	r := &stripe.Refund{
		ID: fmt.Sprintf("re_test_fake%03d", len(f.made)+1), Object: "refund", Amount: *p.Amount, Currency: "usd",
		Status: stripe.RefundStatusSucceeded, Metadata: p.Metadata, Created: time.Now().Unix(),
		PaymentIntent: &stripe.PaymentIntent{ID: deref(p.PaymentIntent)},
		Charge:        &stripe.Charge{ID: "ch_" + strings.TrimPrefix(deref(p.PaymentIntent), "pi_")},
	}
	if p.Reason != nil {
		r.Reason = stripe.RefundReason(*p.Reason)
	}
	f.made = append(f.made, r)
	if p.IdempotencyKey != nil {
		f.byKey[*p.IdempotencyKey], f.params[*p.IdempotencyKey] = r, fingerprint
	}
	return answer(*r), nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// withRefundJSON returns a copy of r with the raw answer stripe-go keeps,
// as Stripe would have sent it: the shop reads refunds from it.
func withRefundJSON(r stripe.Refund) *stripe.Refund {
	raw := map[string]any{
		"id": r.ID, "object": "refund", "amount": r.Amount, "currency": r.Currency, "status": r.Status,
		"reason": nil, "metadata": r.Metadata, "created": r.Created,
		"payment_intent": r.PaymentIntent.ID, "charge": r.Charge.ID,
	}
	if r.Reason != "" {
		raw["reason"] = r.Reason
	}
	b, err := json.Marshal(raw)
	if err != nil {
		panic(err)
	}
	r.LastResponse = &stripe.APIResponse{RawJSON: b}
	return &r
}

// counts returns how many calls the fake took and how many refunds it made.
func (f *fakeRefunds) counts() (calls, made int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls), len(f.made)
}

func (f *fakeRefunds) lastParams(t testing.TB) *stripe.RefundParams {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		t.Fatal("no refund was asked for")
	}
	return f.calls[len(f.calls)-1]
}

var adminAuthHeader = []string{"Authorization", "Basic " + basic("admin", "let-me-in")}

func admin(headers ...string) []string {
	return append(append([]string{}, adminAuthHeader...), headers...)
}

// paidWithIntent checks out two T-shirts ($40.00) and pays them through a
// signed checkout.session.completed naming a PaymentIntent, as Stripe
// sends it.
func (ts *testServer) paidWithIntent(t *testing.T) (orderID, paymentIntent string) {
	t.Helper()
	sid, oid := ts.checkout(t, "tshirt", "2")
	pi := "pi_test_" + strings.TrimPrefix(oid, "ord_")
	session := map[string]any{
		"id": sid, "object": "checkout.session", "mode": "payment", "status": "complete", "payment_status": "paid",
		"amount_subtotal": 4000, "amount_total": 4000, "currency": "usd", "client_reference_id": oid,
		"metadata": map[string]string{"order_id": oid}, "customer_details": map[string]any{"email": "buyer@example.com"},
		"payment_intent": pi,
	}
	if status, _ := ts.deliver(t, stripeEvent(t, "evt_paid_"+oid, orders.EventSessionCompleted, time.Now(), session)); status != 200 {
		t.Fatalf("paid event: got %d, want 200", status)
	}
	o := ts.order(t, oid)
	if o.Status != orders.StatusPaid || o.PaymentIntentID != pi || o.AmountPaid != 4000 {
		t.Fatalf("paid order: got %s, intent %q, paid %d; want paid through %s, 4000", o.Status, o.PaymentIntentID, o.AmountPaid, pi)
	}
	return oid, pi
}

// stripeEvent is a Stripe event about object, created at.
func stripeEvent(t testing.TB, id, typ string, at time.Time, object map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"id": id, "object": "event", "api_version": "2023-10-16", "created": at.Unix(), "livemode": false,
		"pending_webhooks": 1, "type": typ, "data": map[string]any{"object": object},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var refundTokenField = regexp.MustCompile(`name="refund_token" value="([A-Za-z0-9_-]+)"`)

// refundToken loads the admin's page of the order and returns its refund
// form's token.
func (ts *testServer) refundToken(t testing.TB, orderID string) string {
	t.Helper()
	res := ts.do(t, "GET", "/admin/orders/"+orderID, nil, adminAuthHeader...)
	body := readBody(t, res)
	m := refundTokenField.FindStringSubmatch(body)
	if res.StatusCode != 200 || m == nil {
		t.Fatalf("GET /admin/orders/%s: got %d without a refund token:\n%s", orderID, res.StatusCode, body)
	}
	return m[1]
}

// postRefund sends the refund form.
func (ts *testServer) postRefund(t testing.TB, orderID string, kv ...string) *http.Response {
	t.Helper()
	return ts.do(t, "POST", "/admin/orders/"+orderID+"/refund", formBody(kv...), admin("Content-Type", formType)...)
}

// notificationsOfType counts the order's notifications of type typ.
func (ts *testServer) notificationsOfType(t testing.TB, orderID, typ string) int {
	t.Helper()
	ns, err := ts.svc.Notifications(context.Background(), []string{orderID})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, x := range ns {
		if x.Type == typ {
			n++
		}
	}
	return n
}

func TestRefundForm(t *testing.T) {
	ts := newTestServer(t)
	oid, pi := ts.paidWithIntent(t)
	token := ts.refundToken(t, oid)

	for i := range 2 { // a double submit of one form
		res := ts.postRefund(t, oid, "amount", "1000", "reason", "requested_by_customer", "refund_token", token)
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/admin/orders/"+oid {
			t.Fatalf("submit %d: got %d to %q, want 303 to /admin/orders/%s: %s", i+1, res.StatusCode, res.Header.Get("Location"), oid, readBody(t, res))
		}
	}
	if calls, made := ts.refunds.counts(); calls != 2 || made != 1 {
		t.Errorf("Stripe: got %d calls making %d refunds, want 2 calls making 1 (the same idempotency key)", calls, made)
	}
	p := ts.refunds.lastParams(t)
	got := map[string]any{"payment_intent": deref(p.PaymentIntent), "amount": *p.Amount, "reason": deref(p.Reason), "metadata": p.Metadata}
	want := map[string]any{"payment_intent": pi, "amount": int64(1000), "reason": "requested_by_customer", "metadata": map[string]string{"order_id": oid}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("refund parameters (-want +got):\n%s", diff)
	}
	if key := deref(p.IdempotencyKey); !strings.HasPrefix(key, "refund-"+oid+"-") || strings.Contains(key, token) {
		t.Errorf("idempotency key %q: want refund-%s- and a hash of the form token, never the token itself", key, oid)
	}
	if _, ok := p.Context.Deadline(); !ok {
		t.Error("the refund call has no deadline")
	}

	o := ts.order(t, oid)
	if o.Status != orders.StatusPartiallyRefunded || o.AmountRefunded != 1000 || len(o.Refunds) != 1 {
		t.Fatalf("order: got %s, refunded %d, %d refunds; want partially_refunded, 1000, 1", o.Status, o.AmountRefunded, len(o.Refunds))
	}
	if r := o.Refunds[0]; r.ID != "re_test_fake001" || r.Amount != 1000 || r.Status != "succeeded" || r.Reason != "requested_by_customer" {
		t.Errorf("recorded refund: got %+v", r)
	}
	// The webhook and the shopper's email, once.
	if n := ts.notificationsOfType(t, oid, orders.NotifyOrderPartiallyRefunded); n != 2 {
		t.Errorf("order.partially_refunded notifications: got %d, want 2 (webhook, shopper)", n)
	}
	logs := ts.logs.String()
	if !strings.Contains(logs, `msg="admin action" action=refund order_id=`+oid+` refund_id=re_test_fake001 amount=1000`) {
		t.Errorf("the admin's refund is not logged with what changed:\n%s", logs)
	}

	// The order page shows it, and offers to refund the rest.
	body := readBody(t, ts.do(t, "GET", "/admin/orders/"+oid, nil, adminAuthHeader...))
	for _, want := range []string{"re_test_fake001", "$10.00", "requested_by_customer", "partially_refunded", pi, "$30.00", `max="3000"`} {
		if !strings.Contains(body, want) {
			t.Errorf("order page lacks %q", want)
		}
	}

	// So does the shopper's.
	if body := readBody(t, ts.do(t, "GET", testLinks.PagePath(oid), nil)); !strings.Contains(body, "part of the payment was refunded") {
		t.Errorf("the shopper's order page does not show the refund:\n%s", body)
	}

	// The same form with another amount is another refund than the one it
	// made: Stripe refuses the key, and so does the shop.
	res := ts.postRefund(t, oid, "amount", "500", "refund_token", token)
	if res.StatusCode != http.StatusConflict || !strings.Contains(readBody(t, res), "already used") {
		t.Errorf("reused form, other amount: got %d, want 409", res.StatusCode)
	}

	// A fresh form, empty amount: everything left, then nothing is.
	token = ts.refundToken(t, oid)
	for i, wantStatus := range []int{http.StatusSeeOther, http.StatusConflict} {
		res := ts.postRefund(t, oid, "amount", "", "refund_token", token)
		if res.StatusCode != wantStatus {
			t.Fatalf("full refund, submit %d: got %d, want %d: %s", i+1, res.StatusCode, wantStatus, readBody(t, res))
		}
	}
	if _, made := ts.refunds.counts(); made != 2 {
		t.Errorf("refunds made: got %d, want 2", made)
	}
	o = ts.order(t, oid)
	if o.Status != orders.StatusRefunded || o.AmountRefunded != 4000 || len(o.Refunds) != 2 || o.Refunds[1].Amount != 3000 {
		t.Errorf("order: got %s, refunded %d, refunds %+v; want refunded, 4000, the second of 3000", o.Status, o.AmountRefunded, o.Refunds)
	}
	if n := ts.notificationsOfType(t, oid, orders.NotifyOrderRefunded); n != 2 {
		t.Errorf("order.refunded notifications: got %d, want 2", n)
	}
	body = readBody(t, ts.do(t, "GET", "/admin/orders/"+oid, nil, adminAuthHeader...))
	if strings.Contains(body, `name="refund_token"`) || !strings.Contains(body, "already refunded in full") {
		t.Errorf("a refunded order's page: want no refund form, and why:\n%s", body)
	}
}

// TestRefundFormConcurrentDoubleSubmit sends one form twice at once: one
// refund at Stripe, one recorded.
func TestRefundFormConcurrentDoubleSubmit(t *testing.T) {
	ts := newTestServer(t)
	oid, _ := ts.paidWithIntent(t)
	token := ts.refundToken(t, oid)
	var wg sync.WaitGroup
	statuses := make([]int, 4)
	for i := range statuses {
		wg.Go(func() {
			statuses[i] = ts.postRefund(t, oid, "amount", "1500", "refund_token", token).StatusCode
		})
	}
	wg.Wait()
	for i, st := range statuses {
		if st != http.StatusSeeOther {
			t.Errorf("submit %d: got %d, want 303", i+1, st)
		}
	}
	if _, made := ts.refunds.counts(); made != 1 {
		t.Errorf("refunds made: got %d, want 1", made)
	}
	if o := ts.order(t, oid); o.AmountRefunded != 1500 || len(o.Refunds) != 1 {
		t.Errorf("order: refunded %d, %d refunds; want 1500, 1", o.AmountRefunded, len(o.Refunds))
	}
	if n := ts.notificationsOfType(t, oid, orders.NotifyOrderPartiallyRefunded); n != 2 {
		t.Errorf("notifications: got %d, want 2", n)
	}
}

// TestRefundRefused sends refunds the shop can tell are wrong: none reaches
// Stripe, and nothing changes.
func TestRefundRefused(t *testing.T) {
	ts := newTestServer(t)
	paid, _ := ts.paidWithIntent(t)
	_, unpaid := ts.checkout(t, "mug", "1")
	disputed, dpi := ts.paidWithIntent(t)
	dispute := map[string]any{"id": "dp_test_1", "object": "dispute", "charge": "ch_1", "payment_intent": dpi, "amount": 4000,
		"currency": "usd", "status": "needs_response", "reason": "fraudulent", "evidence_details": map[string]any{"due_by": time.Now().Add(7 * 24 * time.Hour).Unix()}}
	if status, _ := ts.deliver(t, stripeEvent(t, "evt_dispute", orders.EventDisputeCreated, time.Now(), dispute)); status != 200 {
		t.Fatalf("dispute event: got %d", status)
	}
	inquiry, ipi := ts.paidWithIntent(t)
	dispute["id"], dispute["payment_intent"], dispute["status"] = "dp_test_inquiry", ipi, "warning_needs_response"
	if status, _ := ts.deliver(t, stripeEvent(t, "evt_inquiry", orders.EventDisputeCreated, time.Now(), dispute)); status != 200 {
		t.Fatalf("inquiry event: got %d", status)
	}
	lost, lpi := ts.paidWithIntent(t)
	dispute["id"], dispute["payment_intent"], dispute["status"] = "dp_test_lost", lpi, "lost"
	if status, _ := ts.deliver(t, stripeEvent(t, "evt_lost", orders.EventDisputeClosed, time.Now(), dispute)); status != 200 {
		t.Fatalf("lost dispute event: got %d", status)
	}
	token := ts.refundToken(t, paid)
	expired := formTokens{key: ts.tokens.key, ttl: time.Minute, now: func() time.Time { return time.Now().Add(-time.Hour) }}.issue()

	tests := []struct {
		name       string
		order      string
		body       io.Reader
		headers    []string
		wantStatus int
		wantText   string
	}{
		{"above the rest", paid, formBody("amount", "4001", "refund_token", token), nil, 409, "At most 4000 ($40.00)"},
		{"never paid", unpaid, formBody("amount", "100", "refund_token", token), nil, 409, "never paid"},
		{"never paid, everything", unpaid, formBody("refund_token", token), nil, 409, "never paid"},
		{"disputed", disputed, formBody("refund_token", token), nil, 409, "disputed"},
		{"dispute lost", lost, formBody("refund_token", token), nil, 409, "dispute was lost"},
		{"unknown order", "ord_nosuchorder", formBody("refund_token", token), nil, 404, "no such order"},
		{"zero", paid, formBody("amount", "0", "refund_token", token), nil, 400, "above 0"},
		{"negative", paid, formBody("amount", "-5", "refund_token", token), nil, 400, "above 0"},
		{"not a number", paid, formBody("amount", "ten", "refund_token", token), nil, 400, "whole number"},
		{"major units", paid, formBody("amount", "10.50", "refund_token", token), nil, 400, "whole number"},
		{"unknown reason", paid, formBody("amount", "100", "reason", "changed_my_mind", "refund_token", token), nil, 400, "duplicate, fraudulent, requested_by_customer"},
		{"no token", paid, formBody("amount", "100"), nil, 400, "reload the page"},
		{"forged token", paid, formBody("amount", "100", "refund_token", strings.Repeat("A", 48)), nil, 400, "reload the page"},
		{"expired token", paid, formBody("amount", "100", "refund_token", expired), nil, 400, "reload the page"},
		{"too large", paid, formBody("amount", "100", "refund_token", token, "pad", strings.Repeat("x", maxRefundBody)), nil, 413, "too large"},
		{"json without key", paid, strings.NewReader(`{"amount":100}`), []string{"Content-Type", "application/json"}, 400, "Idempotency-Key"},
		{"json fraction", paid, strings.NewReader(`{"amount":10.5}`), []string{"Content-Type", "application/json", "Idempotency-Key", "k1"}, 400, "whole number"},
		{"json above the rest", paid, strings.NewReader(`{"amount":5000}`), []string{"Content-Type", "application/json", "Idempotency-Key", "k2"}, 409, "At most 4000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			headers := tt.headers
			if headers == nil {
				headers = []string{"Content-Type", formType}
			}
			res := ts.do(t, "POST", "/admin/orders/"+tt.order+"/refund", tt.body, admin(headers...)...)
			body := readBody(t, res)
			if res.StatusCode != tt.wantStatus || !strings.Contains(body, tt.wantText) {
				t.Errorf("got %d %s, want %d saying %q", res.StatusCode, body, tt.wantStatus, tt.wantText)
			}
		})
	}
	if calls, _ := ts.refunds.counts(); calls != 0 {
		t.Errorf("Stripe refund calls: got %d, want 0", calls)
	}
	for _, id := range []string{paid, unpaid, disputed, lost} {
		if o := ts.order(t, id); o.AmountRefunded != 0 || len(o.Refunds) != 0 {
			t.Errorf("order %s: refunded %d, %d refunds; want nothing", id, o.AmountRefunded, len(o.Refunds))
		}
	}

	// An inquiry is not yet a chargeback: a refund may still settle it.
	if o := ts.order(t, inquiry); o.Status != orders.StatusDisputed {
		t.Fatalf("inquiry order: got %s, want disputed", o.Status)
	}
	if res := ts.postRefund(t, inquiry, "refund_token", ts.refundToken(t, inquiry)); res.StatusCode != http.StatusSeeOther {
		t.Errorf("refund during an inquiry: got %d, want 303", res.StatusCode)
	}
	if calls, _ := ts.refunds.counts(); calls != 1 {
		t.Errorf("Stripe refund calls: got %d, want 1", calls)
	}
}

func TestRefundStripeDown(t *testing.T) {
	tests := []struct {
		name  string
		fault func(*fakeRefunds)
		want  string // in the log
	}{
		{"error", func(f *fakeRefunds) {
			f.err = &stripe.Error{HTTPStatusCode: 500, Type: stripe.ErrorTypeAPI, Msg: "internal detail sk_test_leak", RequestID: "req_fail"}
		}, "stripe api_error error"},
		{"hangs past the timeout", func(f *fakeRefunds) { f.hang = true }, "create refund: timed out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, func(c *configT) { c.StripeTimeout = 100 * time.Millisecond })
			oid, _ := ts.paidWithIntent(t)
			token := ts.refundToken(t, oid)
			tt.fault(ts.refunds)
			start := time.Now()
			res := ts.postRefund(t, oid, "amount", "1000", "refund_token", token)
			body := readBody(t, res)
			if res.StatusCode != http.StatusBadGateway || strings.Contains(body, "internal detail") {
				t.Fatalf("got %d %s, want 502 without Stripe's message", res.StatusCode, body)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("answered after %v, want about the Stripe timeout (100ms)", d)
			}
			if !strings.Contains(ts.logs.String(), tt.want) {
				t.Errorf("log lacks %q:\n%s", tt.want, ts.logs.String())
			}
			if o := ts.order(t, oid); o.AmountRefunded != 0 || len(o.Refunds) != 0 || o.Status != orders.StatusPaid {
				t.Errorf("order: got %s, refunded %d, %d refunds; want it as it was", o.Status, o.AmountRefunded, len(o.Refunds))
			}
			if n := ts.notificationsOfType(t, oid, orders.NotifyOrderPartiallyRefunded); n != 0 {
				t.Errorf("notifications: got %d, want 0", n)
			}

			// Stripe is back: the same form goes through, once.
			ts.refunds.mu.Lock()
			ts.refunds.err, ts.refunds.hang = nil, false
			ts.refunds.mu.Unlock()
			if res := ts.postRefund(t, oid, "amount", "1000", "refund_token", token); res.StatusCode != http.StatusSeeOther {
				t.Fatalf("after Stripe is back: got %d, want 303", res.StatusCode)
			}
			if o := ts.order(t, oid); o.AmountRefunded != 1000 || len(o.Refunds) != 1 {
				t.Errorf("order after the retry: refunded %d, %d refunds; want 1000, 1", o.AmountRefunded, len(o.Refunds))
			}
		})
	}
}

// TestRefundUnreadableAnswer gets an answer without the raw JSON the shop
// reads refunds from: 502, nothing recorded.
func TestRefundUnreadableAnswer(t *testing.T) {
	ts := newTestServer(t)
	oid, _ := ts.paidWithIntent(t)
	token := ts.refundToken(t, oid)
	ts.refunds.mu.Lock()
	ts.refunds.noRaw = true
	ts.refunds.mu.Unlock()
	if res := ts.postRefund(t, oid, "amount", "1000", "refund_token", token); res.StatusCode != http.StatusBadGateway {
		t.Errorf("got %d, want 502", res.StatusCode)
	}
	if o := ts.order(t, oid); o.AmountRefunded != 0 || len(o.Refunds) != 0 {
		t.Errorf("order: refunded %d, %d refunds; want nothing recorded", o.AmountRefunded, len(o.Refunds))
	}
	if !strings.Contains(ts.logs.String(), "read refund answer") {
		t.Errorf("the unreadable answer is not logged:\n%s", ts.logs.String())
	}
}

func TestRefundJSON(t *testing.T) {
	ts := newTestServer(t)
	oid, pi := ts.paidWithIntent(t)
	post := func(key, body string) (int, refundBody) {
		t.Helper()
		res := ts.do(t, "POST", "/admin/orders/"+oid+"/refund", strings.NewReader(body),
			admin("Content-Type", "application/json", "Idempotency-Key", key)...)
		var got refundBody
		if err := json.NewDecoder(res.Body).Decode(&got); err != nil {
			t.Fatalf("decode: %v", err)
		}
		return res.StatusCode, got
	}
	var first refundBody
	for i := range 2 {
		status, got := post("client-key-1", `{"amount":1200,"reason":"duplicate"}`)
		if status != 200 {
			t.Fatalf("request %d: got %d, want 200", i+1, status)
		}
		if i == 0 {
			first = got
		} else if diff := cmp.Diff(first.Refund, got.Refund); diff != "" {
			t.Errorf("the retry answered another refund (-first +retry):\n%s", diff)
		}
	}
	want := refundJSON{ID: "re_test_fake001", Amount: 1200, Currency: "usd", Status: "succeeded", Reason: "duplicate", PaymentIntent: pi}
	first.Refund.Created = time.Time{}
	if diff := cmp.Diff(want, first.Refund); diff != "" {
		t.Errorf("refund (-want +got):\n%s", diff)
	}
	if first.Order.ID != oid || first.Order.AmountRefunded != 1200 || first.Order.Status != orders.StatusPartiallyRefunded {
		t.Errorf("order: got %+v, want %s partially refunded by 1200", first.Order, oid)
	}
	if _, made := ts.refunds.counts(); made != 1 {
		t.Errorf("refunds made: got %d, want 1", made)
	}
	if key := deref(ts.refunds.lastParams(t).IdempotencyKey); strings.Contains(key, "client-key-1") || !strings.HasPrefix(key, "refund-"+oid+"-") {
		t.Errorf("idempotency key %q: want the client's key hashed under the order", key)
	}

	// Another key is another refund; without an amount, all that is left.
	status, got := post("client-key-2", `{}`)
	if status != 200 || got.Refund.Amount != 2800 || got.Order.Status != orders.StatusRefunded {
		t.Errorf("second key: got %d %+v, want a refund of the 2800 left", status, got)
	}
	if _, made := ts.refunds.counts(); made != 2 {
		t.Errorf("refunds made: got %d, want 2", made)
	}
}

func TestRefundAuthAndOrigin(t *testing.T) {
	ts := newTestServer(t)
	oid, _ := ts.paidWithIntent(t)
	token := ts.refundToken(t, oid)
	path := "/admin/orders/" + oid + "/refund"
	for name, tt := range map[string]struct {
		headers    []string
		wantStatus int
	}{
		"no auth":                         {[]string{"Content-Type", formType}, 401},
		"wrong password":                  {[]string{"Content-Type", formType, "Authorization", "Basic " + basic("admin", "nope")}, 401},
		"cross-origin":                    {admin("Content-Type", formType, "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"), 403},
		"cross-origin, no fetch metadata": {admin("Content-Type", formType, "Origin", "https://evil.example"), 403},
	} {
		res := ts.do(t, "POST", path, formBody("amount", "100", "refund_token", token), tt.headers...)
		if res.StatusCode != tt.wantStatus {
			t.Errorf("%s: got %d, want %d", name, res.StatusCode, tt.wantStatus)
		}
	}
	if calls, _ := ts.refunds.counts(); calls != 0 {
		t.Errorf("Stripe refund calls: got %d, want 0", calls)
	}
	if res := ts.do(t, "GET", "/admin/orders/"+oid, nil); res.StatusCode != 401 {
		t.Errorf("order page without auth: got %d, want 401", res.StatusCode)
	}
	// A same-origin browser post goes through.
	res := ts.do(t, "POST", path, formBody("amount", "100", "refund_token", token),
		admin("Content-Type", formType, "Origin", "http://shop.test", "Sec-Fetch-Site", "same-origin")...)
	if res.StatusCode != http.StatusSeeOther {
		t.Errorf("same-origin: got %d, want 303", res.StatusCode)
	}
}

// TestRefundThenWebhooks delivers what Stripe sends after the admin's
// refund: the charge's view and the refund's own update. They change
// nothing more, and queue nothing.
func TestRefundThenWebhooks(t *testing.T) {
	ts := newTestServer(t)
	oid, pi := ts.paidWithIntent(t)
	if res := ts.postRefund(t, oid, "amount", "1000", "refund_token", ts.refundToken(t, oid)); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("refund: got %d", res.StatusCode)
	}
	before := ts.order(t, oid)
	countNs := func() int {
		ns, err := ts.svc.Notifications(context.Background(), []string{oid})
		if err != nil {
			t.Fatal(err)
		}
		return len(ns)
	}
	queued := countNs()
	later := time.Now().Add(time.Second)
	charge := map[string]any{"id": "ch_" + strings.TrimPrefix(pi, "pi_"), "object": "charge", "payment_intent": pi,
		"amount": 4000, "amount_refunded": 1000, "currency": "usd", "metadata": map[string]string{"order_id": oid}}
	refund := map[string]any{"id": "re_test_fake001", "object": "refund", "amount": 1000, "status": "succeeded",
		"reason": "requested_by_customer", "created": before.Refunds[0].CreatedAt.Unix(), "payment_intent": pi,
		"charge": charge["id"], "metadata": map[string]string{"order_id": oid}}
	for _, ev := range [][]byte{
		stripeEvent(t, "evt_charge_refunded", orders.EventChargeRefunded, later, charge),
		stripeEvent(t, "evt_refund_updated", orders.EventRefundUpdated, later, refund),
	} {
		if status, body := ts.deliver(t, ev); status != 200 || body.Duplicate {
			t.Fatalf("webhook: got %d %+v, want 200, new", status, body)
		}
	}
	after := ts.order(t, oid)
	if after.Status != before.Status || after.AmountRefunded != before.AmountRefunded || len(after.Refunds) != 1 || after.Refunds[0].Amount != 1000 {
		t.Errorf("after the webhooks: got %s, refunded %d, refunds %+v; want %s, %d, the one refund",
			after.Status, after.AmountRefunded, after.Refunds, before.Status, before.AmountRefunded)
	}
	if n := countNs(); n != queued {
		t.Errorf("notifications: got %d, want %d (nothing more queued)", n, queued)
	}
}

func TestAdminOrderPage(t *testing.T) {
	ts := newTestServer(t)
	oid, pi := ts.paidWithIntent(t)

	res := ts.do(t, "GET", "/admin/orders/"+oid, nil, adminAuthHeader...)
	body := readBody(t, res)
	if res.StatusCode != 200 || res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("got %d, Cache-Control %q; want 200, no-store", res.StatusCode, res.Header.Get("Cache-Control"))
	}
	for _, want := range []string{oid, pi, "T-shirt", "$20.00", "$40.00", "buyer@example.com", "paid", "No refunds.",
		`action="/admin/orders/` + oid + `/refund"`, `name="amount"`, `max="4000"`, "1 is $0.01", "Up to 4000 ($40.00)",
		`<option value="requested_by_customer">`, "order.paid", "email_customer"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, `id="dispute"`) {
		t.Error("a page without a dispute shows one")
	}

	res = ts.do(t, "GET", "/admin/orders/"+oid, nil, admin("Accept", "application/json")...)
	var got struct {
		orders.Order
		Notifications []orders.Notification `json:"notifications"`
	}
	if err := json.NewDecoder(res.Body).Decode(&got); err != nil || res.StatusCode != 200 {
		t.Fatalf("json: %d, %v", res.StatusCode, err)
	}
	if got.ID != oid || got.PaymentIntentID != pi || got.AmountPaid != 4000 || got.Refunds == nil || len(got.Notifications) != 3 {
		t.Errorf("json: got %+v, want the order with [] refunds and its 3 notifications", got)
	}

	for _, accept := range []string{"", "application/json"} {
		res := ts.do(t, "GET", "/admin/orders/ord_nosuchorder", nil, admin("Accept", accept)...)
		if res.StatusCode != 404 {
			t.Errorf("unknown order (Accept %q): got %d, want 404", accept, res.StatusCode)
		}
	}

	// The list links each order to its page.
	list := readBody(t, ts.do(t, "GET", "/admin/orders", nil, adminAuthHeader...))
	if !strings.Contains(list, `href="/admin/orders/`+oid+`"`) {
		t.Errorf("the order list does not link to %s", oid)
	}

	// A dispute shows with its deadline; the form is gone.
	due := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	dispute := map[string]any{"id": "dp_test_page", "object": "dispute", "charge": "ch_1", "payment_intent": pi, "amount": 4000,
		"currency": "usd", "status": "needs_response", "reason": "product_not_received", "evidence_details": map[string]any{"due_by": due.Unix()}}
	if status, _ := ts.deliver(t, stripeEvent(t, "evt_dispute_page", orders.EventDisputeCreated, time.Now(), dispute)); status != 200 {
		t.Fatalf("dispute event: got %d", status)
	}
	body = readBody(t, ts.do(t, "GET", "/admin/orders/"+oid, nil, adminAuthHeader...))
	for _, want := range []string{"dp_test_page", "needs_response", "product_not_received", "2030-05-06 07:08:09 UTC", "Submit evidence", "disputed"} {
		if !strings.Contains(body, want) {
			t.Errorf("disputed order's page lacks %q", want)
		}
	}
	if strings.Contains(body, `name="refund_token"`) {
		t.Error("a disputed order's page offers a refund")
	}
}

// TestNotificationRetryFromOrderPage retries a dead notification from the
// order's page, which it returns to.
func TestNotificationRetryFromOrderPage(t *testing.T) {
	ts := newTestServer(t)
	oid, _ := ts.paidWithIntent(t)
	ns, err := ts.svc.Notifications(context.Background(), []string{oid})
	if err != nil || len(ns) == 0 {
		t.Fatalf("notifications: %v, %v", ns, err)
	}
	ts.killNotification(t, ns[0].ID)
	path := "/admin/notifications/" + ns[0].ID + "/retry"
	body := readBody(t, ts.do(t, "GET", "/admin/orders/"+oid, nil, adminAuthHeader...))
	if !strings.Contains(body, `action="`+path+`"`) {
		t.Fatal("the order page offers no retry for a dead notification")
	}
	res := ts.do(t, "POST", path, formBody("back", "order"), admin("Content-Type", formType)...)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/admin/orders/"+oid {
		t.Errorf("got %d to %q, want 303 to the order page", res.StatusCode, res.Header.Get("Location"))
	}
}

// TestNewServerNeedsRefunds: with the admin on, a server without a refunds
// client is refused at start-up rather than failing at the first refund.
func TestNewServerNeedsRefunds(t *testing.T) {
	store, err := sqlite.Open(context.Background(), t.TempDir()+"/shop.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	deps := func(adminPassword string) Deps {
		cfg := testConfig()
		cfg.AdminPassword = adminPassword
		return Deps{Config: cfg, Catalog: catalog.Fixed(catalog.Default(10)), Orders: orders.NewService(store, log), Links: testLinks,
			FormKey: []byte("test-form-key-0123456789abcdef!!"), CartKey: testCartKey, Sessions: newFakeSessions(), Logger: log,
			Templates: templates.FS, Static: static.FS}
	}
	if _, err := NewServer(deps("let-me-in")); err == nil || !strings.Contains(err.Error(), "refunds client") {
		t.Errorf("admin on, no refunds client: got %v, want an error naming it", err)
	}
	if _, err := NewServer(deps("")); err != nil {
		t.Errorf("admin off, no refunds client: got %v, want nil", err)
	}
}

// TestAdminOrderPageEscapesEveryField renders the page with markup in every
// text field, each naming its field: every one shows, escaped.
func TestAdminOrderPageEscapesEveryField(t *testing.T) {
	ts := newTestServer(t)
	evil := func(field string) string { return `<script>alert("` + field + `")</script>` }
	v := adminOrderPage{Page: ts.page("Order"), ID: evil("ID"), Status: evil("Status"), Review: evil("Review"),
		Created: evil("Created"), Updated: evil("Updated"), Paid: evil("Paid"), Fulfilled: evil("Fulfilled"),
		Email: evil("Email"), SessionID: evil("SessionID"), PaymentIntentID: evil("PaymentIntentID"), Currency: evil("Currency"),
		Total: evil("Total"), AmountPaid: evil("AmountPaid"), AmountRefunded: evil("AmountRefunded"), Refundable: evil("Refundable"),
		Items: []adminItemView{{ProductID: evil("Item.ProductID"), Name: evil("Item.Name"), UnitAmount: evil("Item.UnitAmount"),
			Amount: evil("Item.Amount"), Quantity: 1}},
		Refunds: []refundView{{ID: evil("Refund.ID"), Amount: evil("Refund.Amount"), Status: evil("Refund.Status"),
			Reason: evil("Refund.Reason"), Created: evil("Refund.Created")}},
		Dispute: &disputeView{ID: evil("Dispute.ID"), Status: evil("Dispute.Status"), Reason: evil("Dispute.Reason"),
			Amount: evil("Dispute.Amount"), EvidenceDueBy: evil("Dispute.EvidenceDueBy"), Open: true, NeedsResponse: true},
		PaymentState: evil("PaymentState"), Hold: evil("Hold"), DashboardURL: "https://dashboard.stripe.com/test/payments/pi_x",
		Timeline: []timelineEntry{
			{When: evil("Event.When"), Event: &eventView{ID: evil("Event.ID"), Type: evil("Event.Type"), Outcome: evil("Event.Outcome"),
				Created: evil("Event.Created"), APIVersion: evil("Event.APIVersion")}},
			{When: evil("Notification.When"), Notification: &timelineNotification{ID: evil("Notification.ID"), Type: evil("Notification.Type"),
				Channel: evil("Notification.Channel"), Status: evil("Notification.Status"), LastError: evil("Notification.LastError"),
				NextAttempt: evil("Notification.NextAttempt"), RetryAction: "/admin/notifications/ntf_x/retry", Attempts: 2}},
			{When: evil("Delivered.When"), Notification: &timelineNotification{ID: "ntf_y", Delivered: evil("Notification.Delivered")}},
		},
		NoRefund: evil("NoRefund"),
	}
	fields := []string{"ID", "Status", "Review", "Created", "Updated", "Paid", "Fulfilled", "Email", "SessionID", "PaymentIntentID",
		"Currency", "Total", "AmountPaid", "AmountRefunded", "Refundable", "PaymentState", "Hold", "Item.ProductID", "Item.Name",
		"Item.UnitAmount", "Item.Amount", "Refund.ID", "Refund.Amount", "Refund.Status", "Refund.Reason", "Refund.Created",
		"Dispute.ID", "Dispute.Status", "Dispute.Reason", "Dispute.Amount", "Dispute.EvidenceDueBy",
		"Event.When", "Event.ID", "Event.Type", "Event.Outcome", "Event.Created", "Event.APIVersion",
		"Notification.When", "Notification.ID", "Notification.Type", "Notification.Channel", "Notification.Status",
		"Notification.LastError", "Notification.NextAttempt", "Delivered.When", "Notification.Delivered"}
	render := func(v adminOrderPage) string {
		rec := newRecorder()
		ts.render(rec, newRequest("GET", "/"), 200, "admin_order", v)
		if rec.Code != 200 {
			t.Fatalf("render: got %d %s", rec.Code, rec.Body)
		}
		return rec.Body.String()
	}
	check := func(body string, fields []string) {
		t.Helper()
		if strings.Contains(body, "<script>") {
			t.Errorf("unescaped markup in the page:\n%s", body)
		}
		for _, f := range fields {
			if want := `&lt;script&gt;alert(&#34;` + f + `&#34;)&lt;/script&gt;`; !strings.Contains(body, want) {
				t.Errorf("field %s is not shown escaped", f)
			}
		}
	}
	check(render(v), append(fields, "NoRefund"))

	v.Refund = &refundForm{Action: "/admin/orders/" + evil("Action") + "/refund", Max: 7, Hint: evil("Hint"), Token: evil("Token"),
		Reasons: []string{evil("Reason")}}
	body := render(v)
	check(body, append(fields, "Hint", "Token", "Reason"))
	if strings.Contains(body, "NoRefund") {
		t.Error("the page shows why it cannot refund, beside the refund form")
	}
	if !strings.Contains(body, `action="/admin/orders/%3cscript%3ealert%28%22Action%22%29%3c/script%3e/refund"`) {
		t.Errorf("the form action is not URL-escaped:\n%s", body)
	}
}

// TestRefundThroughStripeMock refunds through the real stripe-go client
// (client.API.Refunds) against stripe-mock: the shop reads the real
// client's raw answer.
func TestRefundThroughStripeMock(t *testing.T) {
	base := testenv.StripeMock(t)
	ts := newTestServer(t)
	oid, pi := ts.paidWithIntent(t)
	sc := stripeapi.New(stripeapi.Options{Key: testSecretKey, APIBase: base, Timeout: 5 * time.Second, Retries: 1})
	ts.Server.refunds = instrumentedRefunds{next: sc.Refunds}
	res := ts.postRefund(t, oid, "amount", "1500", "reason", "duplicate", "refund_token", ts.refundToken(t, oid))
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("got %d, want 303: %s", res.StatusCode, readBody(t, res))
	}
	o := ts.order(t, oid)
	if len(o.Refunds) != 1 || !strings.HasPrefix(o.Refunds[0].ID, "re_") || o.Refunds[0].Amount != 1500 || o.AmountRefunded != 1500 {
		t.Errorf("order: refunded %d, refunds %+v; want one re_ refund of 1500 (for %s)", o.AmountRefunded, o.Refunds, pi)
	}
}
