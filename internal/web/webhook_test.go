package web

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/shopcheckout/shop/internal/config"
	"github.com/shopcheckout/shop/internal/orders"
)

// testEvent describes a Stripe event about a Checkout Session.
type testEvent struct {
	ID, Type, APIVersion     string
	SessionID, OrderID       string
	Status, PaymentStatus    string
	Amount                   *int64
	Currency, Email, Padding string
}

func (e testEvent) json(t testing.TB) []byte {
	t.Helper()
	if e.APIVersion == "" {
		e.APIVersion = "2023-10-16"
	}
	session := map[string]any{
		"id": e.SessionID, "object": "checkout.session", "mode": "payment",
		"status": e.Status, "payment_status": e.PaymentStatus,
		"amount_subtotal": e.Amount, "amount_total": e.Amount, "currency": e.Currency,
		"client_reference_id": e.OrderID, "metadata": map[string]string{"order_id": e.OrderID, "pad": e.Padding},
		"customer_details": map[string]any{"email": e.Email, "name": nil},
		// A field only newer API versions send; the shop must not care.
		"collected_information": map[string]any{"shipping_details": nil},
	}
	b, err := json.Marshal(map[string]any{
		"id": e.ID, "object": "event", "api_version": e.APIVersion, "created": time.Now().Unix(),
		"livemode": false, "pending_webhooks": 1, "type": e.Type,
		"request": map[string]any{"id": nil, "idempotency_key": nil},
		"data":    map[string]any{"object": session},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// eventFor builds an event for an order created through checkout.
func eventFor(id, typ, sessionID, orderID, paymentStatus string) testEvent {
	amount := int64(4000)
	status := "complete"
	if typ == orders.EventSessionExpired {
		status = "expired"
	}
	return testEvent{ID: id, Type: typ, SessionID: sessionID, OrderID: orderID, Status: status,
		PaymentStatus: paymentStatus, Amount: &amount, Currency: "usd", Email: "buyer@example.com"}
}

func sign(payload []byte, secret string, at time.Time) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret, Timestamp: at}).Header
}

// deliver posts a signed event to /webhook and returns the status and body.
func (ts *testServer) deliver(t testing.TB, payload []byte) (int, webhookResponse) {
	t.Helper()
	res := ts.do(t, "POST", "/webhook", bytes.NewReader(payload),
		"Content-Type", "application/json; charset=utf-8", "Stripe-Signature", sign(payload, testWebhookSecret, time.Now()))
	var body webhookResponse
	_ = json.NewDecoder(res.Body).Decode(&body)
	return res.StatusCode, body
}

func TestWebhookSignatureMatrix(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name       string
		header     func(p []byte) string
		alter      func(p []byte) []byte
		wantStatus int
	}{
		{"valid", func(p []byte) string { return sign(p, testWebhookSecret, now) }, nil, 200},
		{"second secret (rotation)", func(p []byte) string { return sign(p, testWebhookSecret2, now) }, nil, 200},
		{"extra garbage parts", func(p []byte) string {
			good := sign(p, testWebhookSecret, now)
			ts, v1, _ := strings.Cut(good, ",")
			return ts + ",v1=" + strings.Repeat("0", 64) + ",v1=not-hex,v0=abc,foo=bar," + v1 + ",scheme=v2"
		}, nil, 200},
		{"inside tolerance", func(p []byte) string { return sign(p, testWebhookSecret, now.Add(-290*time.Second)) }, nil, 200},
		{"missing header", func([]byte) string { return "" }, nil, 400},
		{"malformed header", func([]byte) string { return "garbage" }, nil, 400},
		{"bad timestamp", func(p []byte) string {
			return "t=yesterday," + strings.SplitN(sign(p, testWebhookSecret, now), ",", 2)[1]
		}, nil, 400},
		{"no v1 signature", func(p []byte) string { return fmt.Sprintf("t=%d", now.Unix()) }, nil, 400},
		{"wrong secret", func(p []byte) string { return sign(p, "whsec_wrong", now) }, nil, 400},
		{"v0 scheme only", func(p []byte) string {
			return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: p, Secret: testWebhookSecret, Scheme: "v0"}).Header
		}, nil, 400},
		{"altered body", func(p []byte) string { return sign(p, testWebhookSecret, now) },
			func(p []byte) []byte {
				return bytes.Replace(p, []byte(`"amount_total":4000`), []byte(`"amount_total":1`), 1)
			}, 400},
		{"stale timestamp", func(p []byte) string { return sign(p, testWebhookSecret, now.Add(-310*time.Second)) }, nil, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, func(c *config.Config) { c.WebhookSecrets = []string{testWebhookSecret, testWebhookSecret2} })
			sid, oid := ts.checkout(t, "tshirt", "2")
			payload := eventFor("evt_sig", orders.EventSessionCompleted, sid, oid, "paid").json(t)
			header := tt.header(payload)
			if tt.alter != nil {
				payload = tt.alter(payload)
			}
			res := ts.do(t, "POST", "/webhook", bytes.NewReader(payload), "Content-Type", "application/json", "Stripe-Signature", header)
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status: got %d, want %d: %s", res.StatusCode, tt.wantStatus, readBody(t, res))
			}
			if _, gets := ts.fake.calls(); gets != 0 {
				t.Errorf("Stripe calls: got %d, want 0", gets)
			}
			o := ts.order(t, oid)
			if tt.wantStatus != 200 {
				if o.Status != orders.StatusPending {
					t.Errorf("rejected event changed the order to %s", o.Status)
				}
				// Nothing stored: the same event, properly signed, is new.
				if status, body := ts.deliver(t, eventFor("evt_sig", orders.EventSessionCompleted, sid, oid, "paid").json(t)); status != 200 || body.Duplicate {
					t.Errorf("after rejection: got %d duplicate=%v, want 200 and not a duplicate", status, body.Duplicate)
				}
			} else if o.Status != orders.StatusPaid {
				t.Errorf("order status: got %s, want paid", o.Status)
			}
		})
	}
}

func TestWebhookWithoutSecret(t *testing.T) {
	ts := newTestServer(t, func(c *config.Config) { c.WebhookSecrets = nil })
	sid, oid := ts.checkout(t, "tshirt", "2")
	payload := eventFor("evt_1", orders.EventSessionCompleted, sid, oid, "paid").json(t)
	res := ts.do(t, "POST", "/webhook/", bytes.NewReader(payload), "Content-Type", "application/json", "Stripe-Signature", sign(payload, testWebhookSecret, time.Now()))
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status: got %d, want 503", res.StatusCode)
	}
	if o := ts.order(t, oid); o.Status != orders.StatusPending {
		t.Errorf("unsigned-config event processed: order %s", o.Status)
	}
}

func TestWebhookBodyCap(t *testing.T) {
	ts := newTestServer(t)
	sid, oid := ts.checkout(t, "tshirt", "2")
	big := eventFor("evt_big", orders.EventSessionCompleted, sid, oid, "paid")
	big.Padding = strings.Repeat("x", 300<<10) // a large but real-sized event is accepted
	if status, _ := ts.deliver(t, big.json(t)); status != 200 {
		t.Fatalf("300 KiB event: got %d, want 200", status)
	}
	huge := eventFor("evt_huge", orders.EventSessionCompleted, sid, oid, "paid")
	huge.Padding = strings.Repeat("x", 600<<10)
	if status, _ := ts.deliver(t, huge.json(t)); status != http.StatusRequestEntityTooLarge {
		t.Fatalf("600 KiB event: got %d, want 413", status)
	}
}

func TestWebhookSlashPath(t *testing.T) {
	ts := newTestServer(t)
	sid, oid := ts.checkout(t, "tshirt", "2")
	payload := eventFor("evt_slash", orders.EventSessionCompleted, sid, oid, "paid").json(t)
	res := ts.do(t, "POST", "/webhook/", bytes.NewReader(payload), "Content-Type", "application/json", "Stripe-Signature", sign(payload, testWebhookSecret, time.Now()))
	if res.StatusCode != 200 {
		t.Fatalf("POST /webhook/: got %d, want 200", res.StatusCode)
	}
}

func TestWebhookSameDeliveryHundredTimes(t *testing.T) {
	ts := newTestServer(t)
	sid, oid := ts.checkout(t, "tshirt", "2")
	payload := eventFor("evt_repeat", orders.EventSessionCompleted, sid, oid, "paid").json(t)
	dups := 0
	for range 100 {
		status, body := ts.deliver(t, payload)
		if status != 200 {
			t.Fatalf("status: got %d, want 200", status)
		}
		if body.Duplicate {
			dups++
		}
	}
	if dups != 99 {
		t.Errorf("duplicates: got %d, want 99", dups)
	}
	if o := ts.order(t, oid); o.Status != orders.StatusPaid || o.FulfilledAt == nil {
		t.Errorf("order: got %s fulfilled=%v, want paid and fulfilled", o.Status, o.FulfilledAt)
	}
	if n := ts.fulfilments(oid); n != 1 {
		t.Errorf("fulfilments: got %d, want 1", n)
	}
}

func TestWebhookConcurrentDuplicates(t *testing.T) {
	ts := newTestServer(t)
	sid, oid := ts.checkout(t, "tshirt", "2")
	completed := eventFor("evt_conc_a", orders.EventSessionCompleted, sid, oid, "unpaid").json(t)
	succeeded := eventFor("evt_conc_b", orders.EventAsyncPaymentSucceeded, sid, oid, "paid").json(t)
	var fresh atomic.Int32
	var wg sync.WaitGroup
	for i := range 40 {
		payload := completed
		if i%2 == 1 {
			payload = succeeded
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, body := ts.deliver(t, payload)
			if status != 200 {
				t.Errorf("status: got %d, want 200", status)
			}
			if !body.Duplicate {
				fresh.Add(1)
			}
		}()
	}
	wg.Wait()
	if got := fresh.Load(); got != 2 {
		t.Errorf("events applied: got %d, want 2", got)
	}
	if o := ts.order(t, oid); o.Status != orders.StatusPaid {
		t.Errorf("order: got %s, want paid", o.Status)
	}
	if n := ts.fulfilments(oid); n != 1 {
		t.Errorf("fulfilments: got %d, want 1", n)
	}
}

// TestWebhookArrivalOrders delivers every permutation of each lifecycle and
// checks the final state does not depend on the order.
func TestWebhookArrivalOrders(t *testing.T) {
	type ev struct{ typ, payment string }
	completedUnpaid := ev{orders.EventSessionCompleted, "unpaid"}
	tests := []struct {
		name       string
		events     []ev
		wantStatus orders.Status
		wantFulfil int
	}{
		{"delayed then succeeded", []ev{completedUnpaid, {orders.EventAsyncPaymentSucceeded, "paid"}}, orders.StatusPaid, 1},
		{"delayed then failed", []ev{completedUnpaid, {orders.EventAsyncPaymentFailed, "unpaid"}}, orders.StatusFailed, 0},
		{"paid and a stray expiry", []ev{{orders.EventSessionCompleted, "paid"}, {orders.EventSessionExpired, "unpaid"}}, orders.StatusPaid, 1},
		{"paid, succeeded, expired", []ev{{orders.EventSessionCompleted, "paid"}, {orders.EventAsyncPaymentSucceeded, "paid"}, {orders.EventSessionExpired, "unpaid"}}, orders.StatusPaid, 1},
		{"expired only", []ev{{orders.EventSessionExpired, "unpaid"}}, orders.StatusExpired, 0},
	}
	for _, tt := range tests {
		for _, perm := range permutations(len(tt.events)) {
			t.Run(fmt.Sprintf("%s %v", tt.name, perm), func(t *testing.T) {
				ts := newTestServer(t)
				sid, oid := ts.checkout(t, "tshirt", "2")
				for _, i := range perm {
					e := tt.events[i]
					if status, _ := ts.deliver(t, eventFor(fmt.Sprintf("evt_%d", i), e.typ, sid, oid, e.payment).json(t)); status != 200 {
						t.Fatalf("status: got %d, want 200", status)
					}
				}
				if o := ts.order(t, oid); o.Status != tt.wantStatus {
					t.Errorf("final status: got %s, want %s", o.Status, tt.wantStatus)
				}
				if n := ts.fulfilments(oid); n != tt.wantFulfil {
					t.Errorf("fulfilments: got %d, want %d", n, tt.wantFulfil)
				}
			})
		}
	}
}

func permutations(n int) [][]int {
	if n == 1 {
		return [][]int{{0}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			q := append(append(append([]int{}, p[:i]...), n-1), p[i:]...)
			out = append(out, q)
		}
	}
	return out
}

func TestWebhookDelayedPaymentShowsOnSuccessPage(t *testing.T) {
	ts := newTestServer(t)
	sid, oid := ts.checkout(t, "tshirt", "2")
	ts.fake.pay(sid, "unpaid", "buyer@example.com")
	ts.deliver(t, eventFor("evt_c", orders.EventSessionCompleted, sid, oid, "unpaid").json(t))
	if body := readBody(t, ts.do(t, "GET", "/success?session_id="+sid, nil)); !strings.Contains(body, "Payment processing") {
		t.Errorf("before settlement: want processing:\n%s", body)
	}
	ts.deliver(t, eventFor("evt_s", orders.EventAsyncPaymentSucceeded, sid, oid, "paid").json(t))
	if body := readBody(t, ts.do(t, "GET", "/success?session_id="+sid, nil)); !strings.Contains(body, "Payment received") {
		t.Errorf("after settlement: want paid:\n%s", body)
	}
	if n := ts.fulfilments(oid); n != 1 {
		t.Errorf("fulfilments: got %d, want 1", n)
	}
}

func TestWebhookOtherAPIVersion(t *testing.T) {
	ts := newTestServer(t)
	sid, oid := ts.checkout(t, "tshirt", "2")
	e := eventFor("evt_clover", orders.EventSessionCompleted, sid, oid, "paid")
	e.APIVersion = "2025-09-30.clover"
	if status, _ := ts.deliver(t, e.json(t)); status != 200 {
		t.Fatalf("status: got %d, want 200", status)
	}
	if o := ts.order(t, oid); o.Status != orders.StatusPaid || ts.fulfilments(oid) != 1 {
		t.Errorf("order: got %s, fulfilments %d; want paid, 1", o.Status, ts.fulfilments(oid))
	}
}

func TestWebhookUnhandledAndUnknown(t *testing.T) {
	ts := newTestServer(t)
	_, oid := ts.checkout(t, "tshirt", "2")
	other := fmt.Appendf(nil, `{"id":"evt_cust","object":"event","api_version":"2023-10-16","created":%d,"type":"customer.created","data":{"object":{"id":"cus_1","object":"customer"}}}`, time.Now().Unix())
	if status, body := ts.deliver(t, other); status != 200 || body.Duplicate {
		t.Errorf("unhandled type: got %d %+v, want 200", status, body)
	}
	if status, body := ts.deliver(t, other); status != 200 || !body.Duplicate {
		t.Errorf("unhandled type, again: got %d %+v, want 200 duplicate (it was stored)", status, body)
	}
	stranger := eventFor("evt_stranger", orders.EventSessionCompleted, "cs_test_notours", "ord_notours", "paid")
	if status, _ := ts.deliver(t, stranger.json(t)); status != 200 {
		t.Errorf("foreign session: got %d, want 200", status)
	}
	if !strings.Contains(ts.logs.String(), "event about a payment this shop does not know") {
		t.Error("foreign session not logged")
	}
	if o := ts.order(t, oid); o.Status != orders.StatusPending {
		t.Errorf("our order changed to %s", o.Status)
	}
	if n := strings.Count(ts.logs.String(), `msg="order fulfilled"`); n != 0 {
		t.Errorf("fulfilments: got %d, want 0", n)
	}
	if got := ts.outcomes(t); got["evt_cust"] != orders.OutcomeIgnored || got["evt_stranger"] != orders.OutcomeUnmatched {
		t.Errorf("stored outcomes %v, want evt_cust ignored and evt_stranger unmatched", got)
	}
}

// outcomes returns each stored event's outcome.
func (ts *testServer) outcomes(t testing.TB) map[string]string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+ts.dbPath+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT id, outcome FROM events`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, outcome string
		if err := rows.Scan(&id, &outcome); err != nil {
			t.Fatal(err)
		}
		out[id] = outcome
	}
	return out
}

// TestWebhookUnreadable sends events Stripe signed but the shop cannot read:
// each is answered 2xx (Stripe would otherwise retry for days), stored raw
// as unreadable, raises an alarm and is counted; its redelivery is a
// duplicate; nothing is applied.
func TestWebhookUnreadable(t *testing.T) {
	ts := newTestServer(t)
	sid, oid := ts.checkout(t, "tshirt", "2")
	now := time.Now().Unix()
	session := func(fields string) string {
		return fmt.Sprintf(`{"id":%q,"object":"checkout.session","status":"complete","payment_status":"paid","client_reference_id":%q%s}`, sid, oid, fields)
	}
	envelope := func(id string, created int64, object string) []byte {
		return fmt.Appendf(nil, `{"id":%q,"object":"event","api_version":"2023-10-16","created":%d,"livemode":false,"type":"checkout.session.completed","data":{"object":%s}}`,
			id, created, object)
	}
	cases := []struct {
		name, id string
		body     []byte
	}{
		{"null object", "evt_u_null", envelope("evt_u_null", now, "null")},
		{"another object", "evt_u_charge", envelope("evt_u_charge", now, `{"id":"ch_1","object":"charge"}`)},
		{"amount is a string", "evt_u_type", envelope("evt_u_type", now, session(`,"amount_total":"4000","currency":"usd"`))},
		{"negative amount", "evt_u_neg", envelope("evt_u_neg", now, session(`,"amount_total":-4000,"currency":"usd"`))},
		{"absurd amount", "evt_u_huge", envelope("evt_u_huge", now, session(`,"amount_total":99999999999999999,"currency":"usd"`))},
		{"amount overflows", "evt_u_over", envelope("evt_u_over", now, session(`,"amount_total":1e30,"currency":"usd"`))},
		{"created long ago", "evt_u_old", envelope("evt_u_old", now-400*86400, session(""))},
		{"created in the future", "evt_u_future", envelope("evt_u_future", now+7*86400, session(""))},
		{"created negative", "evt_u_negtime", envelope("evt_u_negtime", -5, session(""))},
		{"created overflows", "evt_u_bigtime", []byte(`{"id":"evt_u_bigtime","object":"event","created":9223372036854775807,"type":"checkout.session.completed","data":{"object":null}}`)},
		{"id is a number", "", []byte(`{"id":12,"object":"event","created":1,"type":"checkout.session.completed"}`)},
		{"not an event", "", []byte(`[1,2,3]`)},
	}
	for _, c := range cases {
		status, body := ts.deliver(t, c.body)
		if status != 200 || body.Duplicate {
			t.Errorf("%s: got %d %+v, want 200 stored", c.name, status, body)
		}
		if status, body := ts.deliver(t, c.body); status != 200 || !body.Duplicate {
			t.Errorf("%s, again: got %d %+v, want 200 duplicate", c.name, status, body)
		}
	}
	if o := ts.order(t, oid); o.Status != orders.StatusPending || o.PaidAt != nil {
		t.Errorf("unreadable events changed the order: %s, paid %v", o.Status, o.PaidAt)
	}
	stored := ts.outcomes(t)
	for _, c := range cases {
		if c.id != "" && stored[c.id] != orders.OutcomeUnreadable {
			t.Errorf("%s: stored outcome %q, want unreadable", c.name, stored[c.id])
		}
	}
	n := 0
	for _, outcome := range stored {
		if outcome == orders.OutcomeUnreadable {
			n++
		}
	}
	if n != len(cases) {
		t.Errorf("%d unreadable events stored, want %d", n, len(cases))
	}
	// Never a negative or overflowed timestamp in the store.
	db, err := sql.Open("sqlite", "file:"+ts.dbPath+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var bad int
	if err := db.QueryRow(`SELECT count(*) FROM events WHERE created_at <= 0 OR created_at > ?`, time.Now().Add(2*time.Hour).UnixMicro()).Scan(&bad); err != nil || bad != 0 {
		t.Errorf("%d stored events with an impossible created time (%v)", bad, err)
	}

	auth := []string{"Authorization", "Basic " + basic("admin", "let-me-in")}
	res := ts.do(t, "GET", "/admin/alarms", nil, append(auth, "Accept", "application/json")...)
	var alarms alarmsBody
	if err := json.NewDecoder(res.Body).Decode(&alarms); err != nil || res.StatusCode != 200 {
		t.Fatalf("alarms: %d %v", res.StatusCode, err)
	}
	refs := map[string]orders.Alarm{}
	for _, a := range alarms.Alarms {
		refs[a.Ref] = a.Alarm
	}
	if len(alarms.Alarms) != len(cases) {
		t.Errorf("%d alarms, want %d", len(alarms.Alarms), len(cases))
	}
	for _, c := range cases {
		if c.id == "" {
			continue
		}
		a, ok := refs[c.id]
		if !ok || a.Kind != orders.AlarmUnreadableEvent || a.Detail == "" || a.CreatedAt.IsZero() || !strings.HasPrefix(a.ID, "alm_") {
			t.Errorf("%s: alarm %+v, want an unreadable_event alarm about %s", c.name, a, c.id)
		}
	}
	raw := readBody(t, ts.do(t, "GET", "/admin/alarms", nil, append(auth, "Accept", "application/json")...))
	for _, field := range []string{`"id":`, `"kind":"unreadable_event"`, `"ref":`, `"detail":`, `"createdAt":`} {
		if !strings.Contains(raw, field) {
			t.Errorf("alarms JSON lacks %s", field)
		}
	}
	html := readBody(t, ts.do(t, "GET", "/admin/alarms", nil, auth...))
	if !strings.Contains(html, "evt_u_null") || !strings.Contains(html, "unreadable_event") {
		t.Error("the alarms page does not list the alarm")
	}
	if res := ts.do(t, "GET", "/admin/alarms", nil); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("alarms without auth: got %d, want 401", res.StatusCode)
	}
	// Unsigned garbage is still refused, and stores nothing.
	res = ts.do(t, "POST", "/webhook", strings.NewReader(`{"id":"evt_unsigned"}`), "Content-Type", "application/json", "Stripe-Signature", "t=1,v1=00")
	if res.StatusCode != http.StatusBadRequest {
		t.Errorf("unsigned: got %d, want 400", res.StatusCode)
	}
	if _, ok := ts.outcomes(t)["evt_unsigned"]; ok {
		t.Error("an unsigned event was stored")
	}
}

// TestWebhookWrongMode: a live event at a test-mode shop is stored and
// logged, never applied.
func TestWebhookWrongMode(t *testing.T) {
	ts := newTestServer(t)
	sid, oid := ts.checkout(t, "tshirt", "2")
	e := eventFor("evt_live", orders.EventSessionCompleted, sid, oid, "paid")
	body := bytes.Replace(e.json(t), []byte(`"livemode":false`), []byte(`"livemode":true`), 1)
	if status, res := ts.deliver(t, body); status != 200 || res.Duplicate {
		t.Fatalf("got %d %+v, want 200", status, res)
	}
	if o := ts.order(t, oid); o.Status != orders.StatusPending {
		t.Errorf("a live event changed a test shop's order to %s", o.Status)
	}
	if got := ts.outcomes(t)["evt_live"]; got != orders.OutcomeWrongMode {
		t.Errorf("stored outcome %q, want %q", got, orders.OutcomeWrongMode)
	}
	if !strings.Contains(ts.logs.String(), "event of the other mode") {
		t.Error("not logged")
	}
	// The same event in test mode is applied.
	if status, _ := ts.deliver(t, eventFor("evt_test", orders.EventSessionCompleted, sid, oid, "paid").json(t)); status != 200 {
		t.Fatal(status)
	}
	if o := ts.order(t, oid); o.Status != orders.StatusPaid {
		t.Errorf("the test-mode event: order %s, want paid", o.Status)
	}
}

func TestWebhookAmountMismatch(t *testing.T) {
	for name, mutate := range map[string]func(*testEvent){
		"amount":   func(e *testEvent) { n := int64(1); e.Amount = &n },
		"currency": func(e *testEvent) { e.Currency = "eur" },
	} {
		t.Run(name, func(t *testing.T) {
			ts := newTestServer(t)
			sid, oid := ts.checkout(t, "tshirt", "2")
			e := eventFor("evt_mm", orders.EventSessionCompleted, sid, oid, "paid")
			mutate(&e)
			if status, _ := ts.deliver(t, e.json(t)); status != 200 {
				t.Fatalf("status: got %d, want 200", status)
			}
			o := ts.order(t, oid)
			if o.Status != orders.StatusNeedsReview || o.FulfilledAt != nil || ts.fulfilments(oid) != 0 {
				t.Errorf("order: got %s fulfilled=%v, want needs_review, not fulfilled", o.Status, o.FulfilledAt)
			}
		})
	}
}

func TestWebhookStorageFailure(t *testing.T) {
	ts := newTestServer(t)
	sid, oid := ts.checkout(t, "tshirt", "2")
	ts.store.Close()
	status, _ := ts.deliver(t, eventFor("evt_down", orders.EventSessionCompleted, sid, oid, "paid").json(t))
	if status < 500 {
		t.Errorf("status: got %d, want 5xx so Stripe retries", status)
	}
}

// TestSuccessPageRacesWebhook runs both confirmation paths at once, many
// times over: each paid order is fulfilled exactly once.
func TestSuccessPageRacesWebhook(t *testing.T) {
	ts := newTestServer(t)
	for round := range 20 {
		sid, oid := ts.checkout(t, "tshirt", "2")
		ts.fake.pay(sid, "paid", "buyer@example.com")
		payload := eventFor(fmt.Sprintf("evt_race_%d", round), orders.EventSessionCompleted, sid, oid, "paid").json(t)
		var wg sync.WaitGroup
		for i := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if i%2 == 0 {
					ts.deliver(t, payload)
				} else {
					ts.do(t, "GET", "/success?session_id="+sid, nil)
				}
			}()
		}
		wg.Wait()
		if n := ts.fulfilments(oid); n != 1 {
			t.Fatalf("round %d: fulfilments: got %d, want 1", round, n)
		}
	}
}

// BenchmarkWebhookIngest measures unique, durably stored events per second
// through the real router and a SQLite store with synchronous=FULL.
func BenchmarkWebhookIngest(b *testing.B) {
	ts := newTestServer(b)
	sid, oid := ts.checkout(b, "tshirt", "2")
	payloads := make([][]byte, b.N)
	headers := make([]string, b.N)
	for i := range b.N {
		payloads[i] = eventFor(fmt.Sprintf("evt_bench_%d", i), "checkout.session.async_payment_failed", sid, oid, "unpaid").json(b)
		headers[i] = sign(payloads[i], testWebhookSecret, time.Now())
	}
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) - 1
			req := httptest.NewRequest("POST", "/webhook", bytes.NewReader(payloads[i]))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Stripe-Signature", headers[i])
			rec := httptest.NewRecorder()
			ts.ServeHTTP(rec, req.WithContext(context.Background()))
			if rec.Code != 200 {
				b.Errorf("status %d", rec.Code)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// TestForgedWebhooksThrottled: more than 60 failed signatures a minute from
// one address get 429; Stripe's valid deliveries from the same address are
// never refused; another address is not affected; and the failures' log
// lines are sampled.
func TestForgedWebhooksThrottled(t *testing.T) {
	ts := newTestServer(t)
	sid, oid := ts.checkout(t, "tshirt", "2")
	forged := eventFor("evt_forged", orders.EventSessionCompleted, sid, oid, "paid").json(t)
	send := func(remote string, payload []byte, secret string) *http.Response {
		req := newRequestBody("POST", "/webhook", bytes.NewReader(payload))
		req.RemoteAddr = remote
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Stripe-Signature", sign(payload, secret, time.Now()))
		rec := newRecorder()
		ts.ServeHTTP(rec, req)
		return rec.Result()
	}
	codes := map[int]int{}
	for range 200 {
		codes[send("203.0.113.7:5555", forged, "whsec_forger").StatusCode]++
	}
	if codes[400] != 60 || codes[429] != 140 {
		t.Errorf("200 forgeries from one address: %v, want 60 × 400 then 140 × 429", codes)
	}
	res := send("203.0.113.7:5555", forged, "whsec_forger")
	if res.StatusCode != 429 || res.Header.Get("Retry-After") == "" {
		t.Errorf("over budget: got %d, Retry-After %q; want 429 with Retry-After", res.StatusCode, res.Header.Get("Retry-After"))
	}
	// Stripe's deliveries are signed: never throttled, even from there.
	if res := send("203.0.113.7:5555", forged, testWebhookSecret); res.StatusCode != 200 {
		t.Errorf("a valid delivery from the throttled address: got %d, want 200", res.StatusCode)
	}
	if res := send("198.51.100.9:4444", forged, "whsec_forger"); res.StatusCode != 400 {
		t.Errorf("another address: got %d, want 400", res.StatusCode)
	}
	logs := ts.logs.String()
	if n := strings.Count(logs, "signature rejected"); n < 1 || n > forgeryLogsPerMin+1 {
		t.Errorf("%d logged signature failures for 202 forgeries, want at most %d a minute", n, forgeryLogsPerMin+1)
	}
	if n := strings.Count(logs, `path=/webhook status=4`); n > 2*forgeryLogsPerMin {
		t.Errorf("%d access log lines for rejected webhooks, want them sampled", n)
	}
}
