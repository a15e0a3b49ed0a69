package stripesim_test

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/stripe/stripe-go/v76"

	"github.com/shopcheckout/shop/internal/orders"
)

// startClock is a test clock stopped at the current second: events are
// stamped with it, and signatures within the receiver's tolerance.
func startClock() *clock { return &clock{t: time.Now().Truncate(time.Second).UTC()} }

// paid is a session paid by card, for one T-shirt ($40.00).
type paid struct {
	Session, PaymentIntent, Charge, OrderID string
}

// paidSession creates a session whose PaymentIntent carries order_id, as
// the shop creates them, pays it on the hosted page and waits for the
// checkout.session.completed delivery.
func (h *harness) paidSession(t testing.TB, orderID string) paid {
	t.Helper()
	form := sessionForm(tshirt())
	form.Set("client_reference_id", orderID)
	form.Set("payment_intent_data[metadata][order_id]", orderID)
	s := h.create(t, form)
	if resp, body := h.pay(t, s.ID, "pay", "buyer@example.com", "4242424242424242"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("pay: got %s, want 303\n%s", resp.Status, body)
	}
	if h.hook != nil {
		if d := h.hook.next(t); d.event.Type != "checkout.session.completed" {
			t.Fatalf("first delivery: got %s, want checkout.session.completed", d.event.Type)
		}
	}
	st := h.simSession(t, s.ID)
	if st.Charge == nil || st.Charge.PaymentIntent == nil {
		t.Fatalf("paid session %s: got charge %+v, want one with a PaymentIntent", s.ID, st.Charge)
	}
	return paid{Session: s.ID, PaymentIntent: st.Charge.PaymentIntent.ID, Charge: st.Charge.ID, OrderID: orderID}
}

// simState is the answer of GET /sim/sessions/{id}.
type simState struct {
	Session stripe.CheckoutSession `json:"session"`
	Charge  *stripe.Charge         `json:"charge"`
	Refunds []*stripe.Refund       `json:"refunds"`
	Dispute *stripe.Dispute        `json:"dispute"`
}

func (h *harness) simSession(t testing.TB, id string) simState {
	t.Helper()
	resp, b := h.do(t, http.MethodGet, "/sim/sessions/"+id, nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /sim/sessions/%s: got %s, want 200\n%s", id, resp.Status, b)
	}
	return decode[simState](t, b)
}

// refund posts form to /v1/refunds, with an Idempotency-Key when key is set.
func (h *harness) refund(t testing.TB, form url.Values, key string) (*http.Response, []byte) {
	t.Helper()
	header := map[string]string{}
	if key != "" {
		header["Idempotency-Key"] = key
	}
	return h.do(t, http.MethodPost, "/v1/refunds", form, header)
}

// mustRefund refunds and returns the answer as the shop reads it.
func (h *harness) mustRefund(t testing.TB, form url.Values) orders.RefundInfo {
	t.Helper()
	resp, b := h.refund(t, form, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("refund %v: got %s, want 200\n%s", form, resp.Status, b)
	}
	rf, err := orders.ParseRefund(b)
	if err != nil {
		t.Fatalf("shop's refund parser: %v\n%s", err, b)
	}
	return rf
}

// logged lists the event log through GET /v1/events?query, oldest first,
// each payload checked for Stripe's envelope and read by the shop's own
// parser.
func (h *harness) logged(t testing.TB, query string) []orders.Event {
	t.Helper()
	resp, b := h.do(t, http.MethodGet, "/v1/events?limit=100&"+query, nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("list events %s: got %s, want 200\n%s", query, resp.Status, b)
	}
	list := decode[struct {
		Data []json.RawMessage `json:"data"`
	}](t, b)
	evs := make([]orders.Event, 0, len(list.Data))
	for i := len(list.Data) - 1; i >= 0; i-- {
		checkEnvelope(t, list.Data[i])
		ev, err := orders.ParseEvent(list.Data[i])
		if err != nil {
			t.Fatalf("shop's event parser: %v\n%s", err, list.Data[i])
		}
		evs = append(evs, ev)
	}
	return evs
}

// eventObject decodes an event's data.object into T.
func eventObject[T any](t testing.TB, ev orders.Event) T {
	t.Helper()
	env := decode[struct {
		Data struct {
			Object json.RawMessage `json:"object"`
		} `json:"data"`
	}](t, ev.Payload)
	return decode[T](t, env.Data.Object)
}

func types(evs []orders.Event) []string {
	out := make([]string, 0, len(evs))
	for _, ev := range evs {
		out = append(out, ev.Type)
	}
	return out
}

// checkEnvelope checks that an event has the envelope every simulator event
// has, whatever its object.
func checkEnvelope(t testing.TB, raw []byte) {
	t.Helper()
	env := decode[map[string]json.RawMessage](t, raw)
	wantKeys := []string{"api_version", "created", "data", "id", "livemode", "object", "pending_webhooks", "request", "type"}
	if diff := cmp.Diff(wantKeys, slices.Sorted(maps.Keys(env))); diff != "" {
		t.Errorf("event envelope keys (-want +got):\n%s", diff)
	}
	data := decode[map[string]json.RawMessage](t, env["data"])
	if diff := cmp.Diff([]string{"object"}, slices.Sorted(maps.Keys(data))); diff != "" {
		t.Errorf("event data keys (-want +got):\n%s", diff)
	}
	for k, want := range map[string]string{"api_version": `"2023-10-16"`, "livemode": "false", "object": `"event"`} {
		if got := string(env[k]); got != want {
			t.Errorf("event %s: got %s, want %s", k, got, want)
		}
	}
}

// ignoreEventIdentity leaves out what differs between runs.
var ignoreEventIdentity = cmpopts.IgnoreFields(orders.Event{}, "ID", "Payload", "Session")

func stripeErr(typ, code, param, msg string) map[string]any {
	e := map[string]any{"type": typ, "message": msg}
	if code != "" {
		e["code"] = code
	}
	if param != "" {
		e["param"] = param
	}
	return map[string]any{"error": e}
}

func TestRefund(t *testing.T) {
	const order = "order-7"
	tests := []struct {
		name       string
		form       func(p paid) url.Values
		wantStatus int
		wantRefund orders.RefundInfo // the answer, as the shop reads it (ID and times aside)
		wantCharge orders.Charge     // the charge.refunded event's
		wantError  func(p paid) map[string]any
		wantBody   string // stripe-mock's error, relayed verbatim
	}{
		{
			name: "what is left, by payment_intent",
			form: func(p paid) url.Values {
				return url.Values{"payment_intent": {p.PaymentIntent}, "reason": {"requested_by_customer"}, "metadata[order_id]": {order}}
			},
			wantStatus: 200,
			wantRefund: orders.RefundInfo{OrderID: order, Amount: 4000, Status: "succeeded", Reason: "requested_by_customer"},
			wantCharge: orders.Charge{OrderID: order, Amount: 4000, AmountRefunded: 4000, Currency: "usd"},
		},
		{
			name:       "part, by charge",
			form:       func(p paid) url.Values { return url.Values{"charge": {p.Charge}, "amount": {"1500"}} },
			wantStatus: 200,
			wantRefund: orders.RefundInfo{Amount: 1500, Status: "succeeded"},
			wantCharge: orders.Charge{OrderID: order, Amount: 4000, AmountRefunded: 1500, Currency: "usd"},
		},
		{
			name: "charge and its payment_intent",
			form: func(p paid) url.Values {
				return url.Values{"payment_intent": {p.PaymentIntent}, "charge": {p.Charge}, "amount": {"1"}}
			},
			wantStatus: 200,
			wantRefund: orders.RefundInfo{Amount: 1, Status: "succeeded"},
			wantCharge: orders.Charge{OrderID: order, Amount: 4000, AmountRefunded: 1, Currency: "usd"},
		},
		{
			name:       "above what is left",
			form:       func(p paid) url.Values { return url.Values{"payment_intent": {p.PaymentIntent}, "amount": {"4001"}} },
			wantStatus: 400,
			wantError: func(paid) map[string]any {
				return stripeErr("invalid_request_error", "", "amount", "Refund amount ($40.01) is greater than unrefunded amount on charge ($40.00)")
			},
		},
		{
			name:       "unknown payment_intent",
			form:       func(paid) url.Values { return url.Values{"payment_intent": {"pi_nope"}} },
			wantStatus: 404,
			wantError: func(paid) map[string]any {
				return stripeErr("invalid_request_error", "resource_missing", "payment_intent", "No such payment_intent: 'pi_nope'")
			},
		},
		{
			name:       "unknown charge",
			form:       func(paid) url.Values { return url.Values{"charge": {"ch_nope"}} },
			wantStatus: 404,
			wantError: func(paid) map[string]any {
				return stripeErr("invalid_request_error", "resource_missing", "charge", "No such charge: 'ch_nope'")
			},
		},
		{
			name: "a charge of another payment",
			form: func(p paid) url.Values {
				return url.Values{"payment_intent": {p.PaymentIntent}, "charge": {"ch_other"}}
			},
			wantStatus: 400,
			wantError: func(p paid) map[string]any {
				return stripeErr("invalid_request_error", "", "charge", "Charge ch_other does not belong to PaymentIntent "+p.PaymentIntent+".")
			},
		},
		{
			name:       "neither charge nor payment_intent",
			form:       func(paid) url.Values { return url.Values{"amount": {"100"}} },
			wantStatus: 400,
			wantError: func(paid) map[string]any {
				return stripeErr("invalid_request_error", "parameter_missing", "", "One of `charge` or `payment_intent` is required.")
			},
		},
		{
			name:       "zero amount",
			form:       func(p paid) url.Values { return url.Values{"payment_intent": {p.PaymentIntent}, "amount": {"0"}} },
			wantStatus: 400,
			wantError: func(paid) map[string]any {
				return stripeErr("invalid_request_error", "parameter_invalid_integer", "amount", "Invalid positive integer")
			},
		},
		{
			name:       "stripe-mock refuses the request",
			form:       func(p paid) url.Values { return url.Values{"payment_intent": {p.PaymentIntent}, "reason": {"bogus"}} },
			wantStatus: 400,
			wantBody:   mockReasonError,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := startClock()
			t0 := clk.Now()
			h := newHarness(t, options{now: clk.Now})
			p := h.paidSession(t, order)
			form := tt.form(p)
			resp, b := h.refund(t, form, "")
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("POST /v1/refunds: got %s, want %d\n%s", resp.Status, tt.wantStatus, b)
			}
			reqs := h.mock.requests()
			if last := reqs[len(reqs)-1]; last.Method != "POST" || last.Path != "/v1/refunds" || last.Body != form.Encode() {
				t.Errorf("stripe-mock's last request: got %+v, want POST /v1/refunds %s", last, form.Encode())
			}
			evs := h.logged(t, "")
			if tt.wantStatus != 200 {
				if tt.wantBody != "" && string(b) != tt.wantBody {
					t.Errorf("body: got %s, want stripe-mock's %s", b, tt.wantBody)
				}
				if tt.wantError != nil {
					if diff := cmp.Diff(tt.wantError(p), decode[map[string]any](t, b)); diff != "" {
						t.Errorf("error (-want +got):\n%s", diff)
					}
				}
				if diff := cmp.Diff([]string{"checkout.session.completed"}, types(evs)); diff != "" {
					t.Errorf("events after a refused refund (-want +got):\n%s", diff)
				}
				if st := h.simSession(t, p.Session); st.Charge.AmountRefunded != 0 || len(st.Refunds) != 0 {
					t.Errorf("charge after a refused refund: got amount_refunded %d, %d refunds; want 0, none", st.Charge.AmountRefunded, len(st.Refunds))
				}
				return
			}

			got, err := orders.ParseRefund(b)
			if err != nil {
				t.Fatalf("shop's refund parser: %v\n%s", err, b)
			}
			want := tt.wantRefund
			want.Charge, want.PaymentIntent, want.Created = p.Charge, p.PaymentIntent, t0
			if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(orders.RefundInfo{}, "ID")); diff != "" {
				t.Errorf("refund (-want +got):\n%s", diff)
			}
			wantCharge := tt.wantCharge
			wantCharge.ID, wantCharge.PaymentIntent = p.Charge, p.PaymentIntent
			wantEvents := []orders.Event{
				{Type: "checkout.session.completed", APIVersion: "2023-10-16", Created: t0},
				{Type: "charge.refunded", APIVersion: "2023-10-16", Created: t0, Charge: &wantCharge},
			}
			if diff := cmp.Diff(wantEvents, evs, ignoreEventIdentity); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			if d := h.hook.next(t); d.event.Type != "charge.refunded" || d.event.ID != evs[1].ID {
				t.Errorf("delivery: got %s %s, want the signed charge.refunded %s", d.event.Type, d.event.ID, evs[1].ID)
			}
			obj := eventObject[struct {
				Refunded bool   `json:"refunded"`
				Object   string `json:"object"`
			}](t, evs[1])
			if wantRefunded := wantCharge.AmountRefunded == wantCharge.Amount; obj.Refunded != wantRefunded || obj.Object != "charge" {
				t.Errorf("event charge: got object %q refunded %v, want charge refunded %v", obj.Object, obj.Refunded, wantRefunded)
			}
		})
	}
}

// TestRefundsAddUp refunds a charge in parts: each refund is held to what
// the earlier ones left, in Stripe's words.
func TestRefundsAddUp(t *testing.T) {
	clk := startClock()
	h := newHarness(t, options{noWebhook: true, now: clk.Now})
	p := h.paidSession(t, "order-8")
	byPI := func(amount string) url.Values {
		f := url.Values{"payment_intent": {p.PaymentIntent}}
		if amount != "" {
			f.Set("amount", amount)
		}
		return f
	}
	steps := []struct {
		amount     string
		wantStatus int
		wantAmount int64
		wantError  map[string]any
	}{
		{"1500", 200, 1500, nil},
		{"3000", 400, 0, stripeErr("invalid_request_error", "", "amount", "Refund amount ($30.00) is greater than unrefunded amount on charge ($25.00)")},
		{"", 200, 2500, nil},
		{"", 400, 0, stripeErr("invalid_request_error", "charge_already_refunded", "", "Charge "+p.Charge+" has already been refunded.")},
		{"1", 400, 0, stripeErr("invalid_request_error", "", "amount", "Refund amount ($0.01) is greater than unrefunded amount on charge ($0.00)")},
	}
	for i, st := range steps {
		resp, b := h.refund(t, byPI(st.amount), "")
		if resp.StatusCode != st.wantStatus {
			t.Fatalf("step %d, amount %q: got %s, want %d\n%s", i, st.amount, resp.Status, st.wantStatus, b)
		}
		if st.wantError != nil {
			if diff := cmp.Diff(st.wantError, decode[map[string]any](t, b)); diff != "" {
				t.Errorf("step %d error (-want +got):\n%s", i, diff)
			}
			continue
		}
		if got := decode[stripe.Refund](t, b).Amount; got != st.wantAmount {
			t.Errorf("step %d: got refund of %d, want %d", i, got, st.wantAmount)
		}
	}
	var refunded []int64
	for _, ev := range h.logged(t, "type=charge.refunded") {
		refunded = append(refunded, ev.Charge.AmountRefunded)
	}
	if diff := cmp.Diff([]int64{1500, 4000}, refunded); diff != "" {
		t.Errorf("charge.refunded amount_refunded, oldest first (-want +got):\n%s", diff)
	}
	st := h.simSession(t, p.Session)
	if !st.Charge.Refunded || st.Charge.AmountRefunded != 4000 || len(st.Refunds) != 2 {
		t.Errorf("charge: got refunded %v amount_refunded %d with %d refunds, want true 4000 with 2", st.Charge.Refunded, st.Charge.AmountRefunded, len(st.Refunds))
	}
}

// TestRefundNeedsASuccessfulCharge refunds a delayed payment: refused while
// it is processing, like Stripe, accepted once it succeeded.
func TestRefundNeedsASuccessfulCharge(t *testing.T) {
	h := newHarness(t, options{noWebhook: true})
	s := h.create(t, sessionForm(tshirt()))
	if resp, _ := h.pay(t, s.ID, "delayed", "buyer@example.com", ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("delayed payment: got %s, want 303", resp.Status)
	}
	pi := h.session(t, s.ID).PaymentIntent
	if pi == nil {
		t.Fatal("processing session: got no payment_intent, want one")
	}
	resp, b := h.refund(t, url.Values{"payment_intent": {pi.ID}}, "")
	want := stripeErr("invalid_request_error", "", "payment_intent", "This PaymentIntent ("+pi.ID+") does not have a successful charge to refund.")
	if diff := cmp.Diff(want, decode[map[string]any](t, b)); resp.StatusCode != 400 || diff != "" {
		t.Errorf("refund while processing: got %s (-want +got):\n%s", resp.Status, diff)
	}
	if resp, b := h.do(t, http.MethodPost, "/sim/sessions/"+s.ID+"/async_succeed", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("async_succeed: got %s\n%s", resp.Status, b)
	}
	st := h.simSession(t, s.ID)
	if st.Charge == nil || st.Charge.PaymentIntent == nil || st.Charge.PaymentIntent.ID != pi.ID || st.Charge.Amount != 4000 {
		t.Fatalf("settled session: got charge %+v, want one of 4000 on %s", st.Charge, pi.ID)
	}
	if rf := h.mustRefund(t, url.Values{"payment_intent": {pi.ID}}); rf.Amount != 4000 || rf.Charge != st.Charge.ID {
		t.Errorf("refund after success: got %+v, want 4000 on %s", rf, st.Charge.ID)
	}
}

func TestRefundIdempotency(t *testing.T) {
	h := newHarness(t, options{noWebhook: true})
	p := h.paidSession(t, "order-9")
	form := url.Values{"payment_intent": {p.PaymentIntent}, "amount": {"1500"}}
	r1, b1 := h.refund(t, form, "refund-order-9-1")
	r2, b2 := h.refund(t, form, "refund-order-9-1")
	if r1.StatusCode != 200 || r2.StatusCode != 200 {
		t.Fatalf("same key twice: got %s and %s, want 200 twice\n%s\n%s", r1.Status, r2.Status, b1, b2)
	}
	if id1, id2 := decode[stripe.Refund](t, b1).ID, decode[stripe.Refund](t, b2).ID; id1 != id2 {
		t.Errorf("same key twice: got refunds %s and %s, want one", id1, id2)
	}
	if got := r2.Header.Get("Idempotent-Replayed"); got != "true" {
		t.Errorf("Idempotent-Replayed: got %q, want true", got)
	}
	if n := len(h.logged(t, "type=charge.refunded")); n != 1 {
		t.Errorf("charge.refunded events: got %d, want 1", n)
	}
	posts := 0
	for _, r := range h.mock.requests() {
		if r.Method == http.MethodPost && r.Path == "/v1/refunds" {
			posts++
		}
	}
	if posts != 1 {
		t.Errorf("stripe-mock saw %d refund requests, want 1", posts)
	}
	if st := h.simSession(t, p.Session); st.Charge.AmountRefunded != 1500 || len(st.Refunds) != 1 {
		t.Errorf("charge: got amount_refunded %d with %d refunds, want 1500 with 1", st.Charge.AmountRefunded, len(st.Refunds))
	}

	other := url.Values{"payment_intent": {p.PaymentIntent}, "amount": {"100"}}
	if resp, b := h.refund(t, other, "refund-order-9-1"); resp.StatusCode != 400 || decode[map[string]map[string]any](t, b)["error"]["type"] != "idempotency_error" {
		t.Errorf("same key, other amount: got %s %s, want 400 idempotency_error", resp.Status, b)
	}

	t.Run("concurrent refunds of what is left", func(t *testing.T) {
		const n = 10
		statuses := make([]int, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				resp, _ := h.refund(t, url.Values{"payment_intent": {p.PaymentIntent}}, "")
				statuses[i] = resp.StatusCode
			})
		}
		wg.Wait()
		slices.Sort(statuses)
		want := append([]int{200}, slices.Repeat([]int{400}, n-1)...)
		if diff := cmp.Diff(want, statuses); diff != "" {
			t.Errorf("statuses (-want +got):\n%s", diff)
		}
		if st := h.simSession(t, p.Session); st.Charge.AmountRefunded != 4000 {
			t.Errorf("amount_refunded: got %d, want 4000", st.Charge.AmountRefunded)
		}
	})
}

func TestRetrieveRefund(t *testing.T) {
	clk := startClock()
	h := newHarness(t, options{noWebhook: true, now: clk.Now})
	p := h.paidSession(t, "order-10")
	_, created := h.refund(t, url.Values{"payment_intent": {p.PaymentIntent}, "amount": {"700"}, "metadata[order_id]": {"order-10"}}, "")
	want, err := orders.ParseRefund(created)
	if err != nil {
		t.Fatal(err)
	}

	resp, b := h.do(t, http.MethodGet, "/v1/refunds/"+want.ID, nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("GET refund: got %s, want 200\n%s", resp.Status, b)
	}
	got, err := orders.ParseRefund(b)
	if err != nil {
		t.Fatalf("shop's refund parser: %v\n%s", err, b)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("retrieved refund (-want +got):\n%s", diff)
	}
	reqs := h.mock.requests()
	if last := reqs[len(reqs)-1]; last.Method != "GET" || last.Path != "/v1/refunds/"+want.ID {
		t.Errorf("stripe-mock's last request: got %+v, want GET /v1/refunds/%s", last, want.ID)
	}

	_, b = h.do(t, http.MethodGet, "/v1/refunds/"+want.ID+"?expand[]=charge", nil, nil)
	if rf := decode[stripe.Refund](t, b); rf.Charge == nil || rf.Charge.ID != p.Charge || rf.Charge.AmountRefunded != 700 || rf.Charge.Metadata["order_id"] != "order-10" {
		t.Errorf("expand[]=charge: got charge %+v, want %s with 700 refunded", rf.Charge, p.Charge)
	}

	_, b = h.do(t, http.MethodGet, "/v1/refunds/"+want.ID+"?expand[]=payment_intent", nil, nil)
	if rf := decode[stripe.Refund](t, b); rf.PaymentIntent == nil || rf.PaymentIntent.ID != p.PaymentIntent ||
		rf.PaymentIntent.Status != "succeeded" || rf.PaymentIntent.Metadata["order_id"] != "order-10" || rf.PaymentIntent.LatestCharge == nil {
		t.Errorf("expand[]=payment_intent: got %+v, want %s, succeeded, with order_id and its charge", rf.PaymentIntent, p.PaymentIntent)
	}

	resp, b = h.do(t, http.MethodGet, "/v1/refunds/re_nope", nil, nil)
	if diff := cmp.Diff(stripeErr("invalid_request_error", "resource_missing", "id", "No such refund: 're_nope'"), decode[map[string]any](t, b)); resp.StatusCode != 404 || diff != "" {
		t.Errorf("unknown refund: got %s (-want +got):\n%s", resp.Status, diff)
	}
}

// TestFailRefund fails a refund after the fact: the charge gets the money
// back, and the shop hears of it through charge.refund.updated.
func TestFailRefund(t *testing.T) {
	clk := startClock()
	t0 := clk.Now()
	h := newHarness(t, options{now: clk.Now})
	p := h.paidSession(t, "order-11")
	rf := h.mustRefund(t, url.Values{"payment_intent": {p.PaymentIntent}, "amount": {"1500"}, "reason": {"requested_by_customer"}, "metadata[order_id]": {p.OrderID}})
	h.hook.next(t) // charge.refunded

	resp, b := h.do(t, http.MethodPost, "/sim/refunds/"+rf.ID+"/fail", nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("fail: got %s, want 200\n%s", resp.Status, b)
	}
	answer := decode[struct {
		Refund stripe.Refund `json:"refund"`
	}](t, b).Refund
	if answer.Status != "failed" || answer.FailureReason != "expired_or_canceled_card" {
		t.Errorf("answer: got status %s failure_reason %s, want failed expired_or_canceled_card", answer.Status, answer.FailureReason)
	}
	if d := h.hook.next(t); d.event.Type != "charge.refund.updated" {
		t.Errorf("delivery: got %s, want charge.refund.updated", d.event.Type)
	}
	evs := h.logged(t, "")
	failed := rf
	failed.Status = "failed"
	wantEvents := []orders.Event{
		{Type: "checkout.session.completed", APIVersion: "2023-10-16", Created: t0},
		{Type: "charge.refunded", APIVersion: "2023-10-16", Created: t0,
			Charge: &orders.Charge{ID: p.Charge, PaymentIntent: p.PaymentIntent, OrderID: p.OrderID, Amount: 4000, AmountRefunded: 1500, Currency: "usd"}},
		{Type: "charge.refund.updated", APIVersion: "2023-10-16", Created: t0, Refund: &failed},
	}
	if diff := cmp.Diff(wantEvents, evs, ignoreEventIdentity); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if st := h.simSession(t, p.Session); st.Charge.AmountRefunded != 0 || st.Charge.Refunded {
		t.Errorf("charge after the failure: got amount_refunded %d refunded %v, want 0 false", st.Charge.AmountRefunded, st.Charge.Refunded)
	}
	_, b = h.do(t, http.MethodGet, "/v1/refunds/"+rf.ID, nil, nil)
	if got := decode[stripe.Refund](t, b); got.Status != "failed" || got.FailureReason != "expired_or_canceled_card" {
		t.Errorf("retrieved: got %s %s, want failed expired_or_canceled_card", got.Status, got.FailureReason)
	}

	// The money came back: all of it can be refunded again.
	again := h.mustRefund(t, url.Values{"payment_intent": {p.PaymentIntent}})
	if again.Amount != 4000 {
		t.Errorf("refund after the failure: got %d, want 4000", again.Amount)
	}
	h.hook.next(t)
	resp, b = h.do(t, http.MethodPost, "/sim/refunds/"+again.ID+"/fail", url.Values{"failure_reason": {"lost_or_stolen_card"}}, nil)
	if got := decode[struct{ Refund stripe.Refund }](t, b).Refund; resp.StatusCode != 200 || got.FailureReason != "lost_or_stolen_card" {
		t.Errorf("fail with a reason: got %s %s", resp.Status, b)
	}

	for _, tc := range []struct {
		path       string
		form       url.Values
		wantStatus int
	}{
		{"/sim/refunds/" + rf.ID + "/fail", nil, 400}, // already failed
		{"/sim/refunds/re_nope/fail", nil, 404},
		{"/sim/refunds/" + rf.ID + "/fail", url.Values{"failure_reason": {"bored"}}, 400},
	} {
		if resp, b := h.do(t, http.MethodPost, tc.path, tc.form, nil); resp.StatusCode != tc.wantStatus {
			t.Errorf("POST %s %v: got %s, want %d\n%s", tc.path, tc.form, resp.Status, tc.wantStatus, b)
		}
	}
}

// TestDispute opens a dispute on a partly refunded payment and closes it
// either way, checking the events Stripe sends at each step, in order.
func TestDispute(t *testing.T) {
	tests := []struct {
		outcome          string
		wantClose        []string
		wantRefundStatus int // refunding after the decision
	}{
		{"won", []string{"charge.dispute.closed", "charge.dispute.funds_reinstated"}, 200},
		{"lost", []string{"charge.dispute.closed"}, 400},
	}
	for _, tt := range tests {
		t.Run(tt.outcome, func(t *testing.T) {
			clk := startClock()
			t0 := clk.Now()
			h := newHarness(t, options{now: clk.Now})
			p := h.paidSession(t, "order-12")
			h.mustRefund(t, url.Values{"payment_intent": {p.PaymentIntent}, "amount": {"1000"}})

			resp, b := h.do(t, http.MethodPost, "/sim/sessions/"+p.Session+"/dispute", nil, nil)
			if resp.StatusCode != 200 {
				t.Fatalf("open dispute: got %s, want 200\n%s", resp.Status, b)
			}
			dp := decode[struct{ Dispute stripe.Dispute }](t, b).Dispute
			due := t0.Add(7 * 24 * time.Hour)
			if dp.Status != "needs_response" || dp.Reason != "fraudulent" || dp.Amount != 3000 || dp.EvidenceDetails == nil || dp.EvidenceDetails.DueBy != due.Unix() {
				t.Errorf("dispute: got %+v, want needs_response fraudulent of 3000 due %v", dp, due)
			}
			want := orders.DisputeInfo{ID: dp.ID, Charge: p.Charge, PaymentIntent: p.PaymentIntent, Amount: 3000, Currency: "usd",
				Status: "needs_response", Reason: "fraudulent", EvidenceDueBy: &due}
			closed := want
			closed.Status = tt.outcome

			if resp, b := h.do(t, http.MethodPost, "/sim/sessions/"+p.Session+"/dispute", nil, nil); resp.StatusCode != 400 {
				t.Errorf("second dispute: got %s, want 400\n%s", resp.Status, b)
			}
			resp, b = h.refund(t, url.Values{"payment_intent": {p.PaymentIntent}}, "")
			if diff := cmp.Diff(stripeErr("invalid_request_error", "charge_disputed", "", "Charge "+p.Charge+" has been charged back."), decode[map[string]any](t, b)); resp.StatusCode != 400 || diff != "" {
				t.Errorf("refund while disputed: got %s (-want +got):\n%s", resp.Status, diff)
			}
			if st := h.simSession(t, p.Session); st.Dispute == nil || st.Dispute.ID != dp.ID || !st.Charge.Disputed {
				t.Errorf("session state: got dispute %+v, charge disputed %v; want %s", st.Dispute, st.Charge.Disputed, dp.ID)
			}

			resp, b = h.do(t, http.MethodPost, "/sim/disputes/"+dp.ID+"/close?outcome="+tt.outcome, nil, nil)
			if got := decode[struct{ Dispute stripe.Dispute }](t, b).Dispute; resp.StatusCode != 200 || string(got.Status) != tt.outcome {
				t.Fatalf("close: got %s %s, want 200 %s", resp.Status, b, tt.outcome)
			}
			_, b = h.do(t, http.MethodGet, "/sim/disputes/"+dp.ID, nil, nil)
			if got := decode[struct{ Dispute stripe.Dispute }](t, b).Dispute; string(got.Status) != tt.outcome || got.ID != dp.ID {
				t.Errorf("GET /sim/disputes: got %s %s, want %s %s", got.ID, got.Status, dp.ID, tt.outcome)
			}
			if resp, b := h.do(t, http.MethodPost, "/sim/disputes/"+dp.ID+"/close?outcome=won", nil, nil); resp.StatusCode != 400 {
				t.Errorf("closing twice: got %s, want 400\n%s", resp.Status, b)
			}
			if resp, b := h.refund(t, url.Values{"payment_intent": {p.PaymentIntent}, "amount": {"100"}}, ""); resp.StatusCode != tt.wantRefundStatus {
				t.Errorf("refund after the dispute was %s: got %s, want %d\n%s", tt.outcome, resp.Status, tt.wantRefundStatus, b)
			}

			got := h.logged(t, "type=charge.dispute.*")
			wantEvents := []orders.Event{
				{Type: "charge.dispute.created", APIVersion: "2023-10-16", Created: t0, Dispute: &want},
				{Type: "charge.dispute.funds_withdrawn", APIVersion: "2023-10-16", Created: t0, Dispute: &want},
			}
			for _, typ := range tt.wantClose {
				wantEvents = append(wantEvents, orders.Event{Type: typ, APIVersion: "2023-10-16", Created: t0, Dispute: &closed})
			}
			if diff := cmp.Diff(wantEvents, got, ignoreEventIdentity); diff != "" {
				t.Errorf("dispute events, oldest first (-want +got):\n%s", diff)
			}

			// Every event was delivered, signed.
			evs := waitSettled(t, h)
			for _, ev := range evs {
				if len(ev.Deliveries) != 1 || ev.Deliveries[0].State != "delivered" {
					t.Errorf("event %s %s: got deliveries %+v, want one delivered", ev.Type, ev.ID, ev.Deliveries)
				}
			}
		})
	}
}

func TestDisputeRefused(t *testing.T) {
	h := newHarness(t, options{noWebhook: true})
	open := h.create(t, sessionForm(tshirt()))
	refunded := h.paidSession(t, "order-13")
	h.mustRefund(t, url.Values{"payment_intent": {refunded.PaymentIntent}})
	other := h.paidSession(t, "order-14")
	tests := []struct {
		name, path string
		form       url.Values
		wantStatus int
	}{
		{"unknown session", "/sim/sessions/cs_test_nope/dispute", nil, 404},
		{"unpaid session", "/sim/sessions/" + open.ID + "/dispute", nil, 400},
		{"fully refunded", "/sim/sessions/" + refunded.Session + "/dispute", nil, 400},
		{"unknown reason", "/sim/sessions/" + other.Session + "/dispute", url.Values{"reason": {"bored"}}, 400},
		{"a reason", "/sim/sessions/" + other.Session + "/dispute", url.Values{"reason": {"product_not_received"}}, 200},
		{"close unknown", "/sim/disputes/dp_nope/close?outcome=won", nil, 404},
		{"get unknown", "/sim/disputes/dp_nope", nil, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := http.MethodPost
			if tt.form == nil && tt.name == "get unknown" {
				method = http.MethodGet
			}
			resp, b := h.do(t, method, tt.path, tt.form, nil)
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("%s %s: got %s, want %d\n%s", method, tt.path, resp.Status, tt.wantStatus, b)
			}
		})
	}
	dp := h.simSession(t, other.Session).Dispute
	if dp == nil || dp.Reason != "product_not_received" {
		t.Fatalf("dispute: got %+v, want one for product_not_received", dp)
	}
	if resp, b := h.do(t, http.MethodPost, "/sim/disputes/"+dp.ID+"/close?outcome=maybe", nil, nil); resp.StatusCode != 400 {
		t.Errorf("close with outcome=maybe: got %s, want 400\n%s", resp.Status, b)
	}
	if types := types(h.logged(t, "type=charge.dispute.*")); len(types) != 2 {
		t.Errorf("dispute events: got %v, want created and funds_withdrawn only", types)
	}
}

// TestAftersaleEventsList lists refund and dispute events through
// /v1/events with the filters reconciliation uses.
func TestAftersaleEventsList(t *testing.T) {
	clk := startClock()
	h := newHarness(t, options{noWebhook: true, now: clk.Now})
	p := h.paidSession(t, "order-15")
	rf := h.mustRefund(t, url.Values{"payment_intent": {p.PaymentIntent}, "amount": {"500"}})
	h.do(t, http.MethodPost, "/sim/refunds/"+rf.ID+"/fail", nil, nil)
	resp, b := h.do(t, http.MethodPost, "/sim/sessions/"+p.Session+"/dispute", nil, nil)
	dp := decode[struct{ Dispute stripe.Dispute }](t, b).Dispute
	h.do(t, http.MethodPost, "/sim/disputes/"+dp.ID+"/close", url.Values{"outcome": {"lost"}}, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("dispute: got %s\n%s", resp.Status, b)
	}
	tests := []struct {
		name, query string
		want        []string // oldest first
	}{
		{"everything", "", []string{"checkout.session.completed", "charge.refunded", "charge.refund.updated",
			"charge.dispute.created", "charge.dispute.funds_withdrawn", "charge.dispute.closed"}},
		{"type", "type=charge.refunded", []string{"charge.refunded"}},
		{"wildcard", "type=charge.*", []string{"charge.refunded", "charge.refund.updated",
			"charge.dispute.created", "charge.dispute.funds_withdrawn", "charge.dispute.closed"}},
		{"types[]", "types[]=charge.refunded&types[]=charge.refund.updated&types[]=charge.dispute.closed",
			[]string{"charge.refunded", "charge.refund.updated", "charge.dispute.closed"}},
		{"types[0] as stripe-go sends", "types%5B0%5D=charge.dispute.created&types%5B1%5D=checkout.session.completed",
			[]string{"checkout.session.completed", "charge.dispute.created"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, types(h.logged(t, tt.query))); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}
