package stripesim_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/shopcheckout/shop/internal/orders"
	"github.com/shopcheckout/shop/internal/stripesim"
)

const (
	testKey    = "sk_test_123"
	testSecret = "whsec_test_secret"
	// mockError is what the fake stripe-mock answers to mode=bogus.
	mockError = `{"error":{"message":"Request validation error: object property 'mode' validation failed: value is not in enumeration","type":"invalid_request_error"}}`
	// mockReasonError is what the fake stripe-mock answers to reason=bogus.
	mockReasonError = `{"error":{"message":"Request validation error: object property 'reason' validation failed: value is not in enumeration","type":"invalid_request_error"}}`
	// mockRefusal is what the fake stripe-mock answers to any request with
	// mock_refuses in its body or query.
	mockRefusal = `{"error":{"message":"Request validation error: additional properties are not allowed","type":"invalid_request_error"}}`
	// mockUIModeError is what stripe-mock v0.203.0 answers to the ui_mode
	// names of API version 2023-10-16.
	mockUIModeError = `{"error":{"message":"Request validation error: object property 'ui_mode' validation failed: value is not in enumeration","type":"invalid_request_error"}}`
)

// formValue reads one value of a form body.
func formValue(body []byte, key string) string {
	form, _ := url.ParseQuery(string(body))
	return form.Get(key)
}

// fakeMock stands in for stripe-mock: it answers every valid request with a
// minimal fixture and records what it received.
type fakeMock struct {
	srv     *httptest.Server
	creates atomic.Int32
	mu      sync.Mutex
	reqs    []mockRequest
}

type mockRequest struct {
	Method, Path, Query, Auth, Body string
}

func newFakeMock(t testing.TB) *fakeMock {
	t.Helper()
	m := &fakeMock{}
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		m.mu.Lock()
		m.reqs = append(m.reqs, mockRequest{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Authorization"), string(body)})
		m.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Request-Id", "req_fake")
		switch {
		case !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer sk_test_"):
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":{"message":"Please authenticate","type":"invalid_request_error"}}`)
		case strings.Contains(string(body), "mode=bogus"):
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, mockError)
		case strings.Contains(string(body), "reason=bogus"):
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, mockReasonError)
		case strings.Contains(string(body)+"&"+r.URL.RawQuery, "mock_refuses"):
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, mockRefusal)
		case slices.Contains([]string{"embedded", "hosted", "custom"}, formValue(body, "ui_mode")):
			// Like the real one, which knows only the newer names.
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, mockUIModeError)
		case strings.HasPrefix(r.URL.Path, "/v1/refunds"):
			fmt.Fprint(w, `{"id":"re_fixture","object":"refund","amount":100,"balance_transaction":null,"charge":"ch_fixture",`+
				`"created":1234567890,"currency":"usd","metadata":{},"payment_intent":null,"reason":null,"receipt_number":null,`+
				`"status":"succeeded","destination_details":{"type":"card","card":{"type":"reversal"}}}`)
		case strings.HasPrefix(r.URL.Path, "/v1/checkout/sessions"):
			if r.Method == http.MethodPost && r.URL.Path == "/v1/checkout/sessions" {
				m.creates.Add(1)
				time.Sleep(10 * time.Millisecond) // widen the window for concurrent requests
			}
			fmt.Fprint(w, `{"id":"cs_test_fixture","object":"checkout.session","url":"https://checkout.stripe.com/c/pay/fixture",`+
				`"amount_total":null,"amount_subtotal":null,"currency":null,"status":"open","payment_status":"unpaid","livemode":false,`+
				`"metadata":{},"customer_details":{"email":"example@example.com"},"payment_intent":"pi_fixture","mode":"payment"}`)
		case strings.HasPrefix(r.URL.Path, "/v1/events"):
			fmt.Fprint(w, `{"object":"list","data":[],"has_more":false,"url":"/v1/events"}`)
		default:
			fmt.Fprint(w, `{"id":"fixture","object":"customer"}`)
		}
	}))
	t.Cleanup(m.srv.Close)
	return m
}

func (m *fakeMock) requests() []mockRequest {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]mockRequest(nil), m.reqs...)
}

// receiver is a webhook endpoint that verifies signatures like the shop.
type receiver struct {
	srv       *httptest.Server
	failFirst int32
	attempts  atomic.Int32
	got       chan delivered
	gate      chan struct{} // if non-nil, requests wait for it to close

	mu  sync.Mutex
	log []attempt // every request, failed or not
}

type attempt struct {
	stamp string // t=... of Stripe-Signature
	at    time.Time
}

type delivered struct {
	event  stripe.Event
	body   []byte
	header http.Header
	at     time.Time
}

func newReceiver(t testing.TB, failFirst int32, gate chan struct{}) *receiver {
	t.Helper()
	rc := &receiver{failFirst: failFirst, gate: gate, got: make(chan delivered, 100)}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rc.gate != nil {
			<-rc.gate
		}
		stamp, _, _ := strings.Cut(r.Header.Get("Stripe-Signature"), ",")
		rc.mu.Lock()
		rc.log = append(rc.log, attempt{stamp, time.Now()})
		rc.mu.Unlock()
		body, _ := io.ReadAll(r.Body)
		if rc.attempts.Add(1) <= rc.failFirst {
			http.Error(w, "not yet", http.StatusInternalServerError)
			return
		}
		ev, err := webhook.ConstructEvent(body, r.Header.Get("Stripe-Signature"), testSecret)
		if err != nil {
			t.Errorf("webhook does not verify: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rc.got <- delivered{ev, body, r.Header.Clone(), time.Now()}
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) next(t testing.TB) delivered {
	t.Helper()
	select {
	case d := <-rc.got:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("no webhook delivery within 10s")
		return delivered{}
	}
}

// clock is an adjustable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type options struct {
	failFirst int32         // receiver answers 500 this many times
	noWebhook bool          // no receiver, delivery disabled
	gate      chan struct{} // receiver waits for it to close
	retryFor  time.Duration // 0: default
	now       func() time.Time
	mockURL   string // "": fake mock
	products  []stripesim.SeedProduct
	links     []stripesim.SeedPaymentLink
}

type harness struct {
	url    string
	mock   *fakeMock
	hook   *receiver
	sim    *stripesim.Sim
	client *http.Client // does not follow redirects
}

func newHarness(t testing.TB, o options) *harness {
	t.Helper()
	h := &harness{client: &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	cfg := stripesim.Config{MockURL: o.mockURL, WebhookSecret: testSecret, RetryFor: o.retryFor, Now: o.now,
		Products: o.products, PaymentLinks: o.links}
	if cfg.MockURL == "" {
		h.mock = newFakeMock(t)
		cfg.MockURL = h.mock.srv.URL
	}
	if !o.noWebhook {
		h.hook = newReceiver(t, o.failFirst, o.gate)
		cfg.WebhookURL = h.hook.srv.URL + "/webhook"
	}
	srv := httptest.NewUnstartedServer(nil)
	h.url = "http://" + srv.Listener.Addr().String()
	cfg.PublicURL = h.url
	sim, err := stripesim.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.sim = sim
	srv.Config.Handler = sim.Handler()
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		sim.Close()
	})
	return h
}

// do sends a request; form values go in the body for POST.
func (h *harness) do(t testing.TB, method, path string, form url.Values, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, h.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("Stripe-Version", "2023-10-16")
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func decode[T any](t testing.TB, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

func sessionForm(items ...item) url.Values {
	f := url.Values{
		"mode":        {"payment"},
		"success_url": {"https://shop.test/success?session_id={CHECKOUT_SESSION_ID}"},
		"cancel_url":  {"https://shop.test/cart"},
	}
	for i, it := range items {
		p := "line_items[" + strconv.Itoa(i) + "]"
		f.Set(p+"[quantity]", strconv.FormatInt(it.qty, 10))
		if it.price != "" {
			f.Set(p+"[price]", it.price)
			continue
		}
		f.Set(p+"[price_data][currency]", it.currency)
		f.Set(p+"[price_data][unit_amount]", strconv.FormatInt(it.unit, 10))
		f.Set(p+"[price_data][product_data][name]", it.name)
	}
	return f
}

type item struct {
	name, currency, price string
	unit, qty             int64
}

func tshirt() item { return item{name: "T-shirt", currency: "usd", unit: 4000, qty: 1} }

// create creates a session through the API and returns it.
func (h *harness) create(t testing.TB, form url.Values) *stripe.CheckoutSession {
	t.Helper()
	resp, b := h.do(t, http.MethodPost, "/v1/checkout/sessions", form, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("create: %s: %s", resp.Status, b)
	}
	return decode[*stripe.CheckoutSession](t, b)
}

func (h *harness) session(t testing.TB, id string) *stripe.CheckoutSession {
	t.Helper()
	resp, b := h.do(t, http.MethodGet, "/v1/checkout/sessions/"+id, nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("retrieve: %s: %s", resp.Status, b)
	}
	return decode[*stripe.CheckoutSession](t, b)
}

// pay posts the hosted page's form.
func (h *harness) pay(t testing.TB, id, outcome, email, card string) (*http.Response, string) {
	t.Helper()
	resp, b := h.do(t, http.MethodPost, "/pay/"+id, url.Values{"outcome": {outcome}, "email": {email}, "card": {card}}, nil)
	return resp, string(b)
}

type simEvent struct {
	ID         string `json:"id"`
	Type       string `json:"type"`
	Deliveries []struct {
		State      string `json:"state"`
		Attempts   int    `json:"attempts"`
		LastStatus int    `json:"last_status"`
	} `json:"deliveries"`
}

func (h *harness) simEvents(t testing.TB) []simEvent {
	t.Helper()
	_, b := h.do(t, http.MethodGet, "/sim/events", nil, nil)
	return decode[struct{ Events []simEvent }](t, b).Events
}

// view is the part of a session the tests compare.
type view struct {
	Status, PaymentStatus, Currency, Mode string
	AmountTotal, AmountSubtotal           int64
	ClientReferenceID, CustomerEmail      string
	Email                                 string // customer_details.email
	Metadata                              map[string]string
}

func project(s *stripe.CheckoutSession) view {
	v := view{
		Status: string(s.Status), PaymentStatus: string(s.PaymentStatus), Currency: string(s.Currency), Mode: string(s.Mode),
		AmountTotal: s.AmountTotal, AmountSubtotal: s.AmountSubtotal,
		ClientReferenceID: s.ClientReferenceID, CustomerEmail: s.CustomerEmail, Metadata: s.Metadata,
	}
	if s.CustomerDetails != nil {
		v.Email = s.CustomerDetails.Email
	}
	return v
}

func TestCreateSession(t *testing.T) {
	tests := []struct {
		name  string
		items []item
		extra url.Values
		want  view
	}{
		{
			name:  "price data",
			items: []item{{name: "T-shirt", currency: "usd", unit: 4000, qty: 2}, {name: "Mug", currency: "usd", unit: 1500, qty: 1}},
			extra: url.Values{"client_reference_id": {"order-42"}, "metadata[order_id]": {"42"}, "customer_email": {"buyer@example.com"}},
			want: view{Status: "open", PaymentStatus: "unpaid", Currency: "usd", Mode: "payment", AmountTotal: 9500, AmountSubtotal: 9500,
				ClientReferenceID: "order-42", CustomerEmail: "buyer@example.com", Metadata: map[string]string{"order_id": "42"}},
		},
		{
			name:  "zero-decimal currency",
			items: []item{{name: "Tea", currency: "jpy", unit: 5000, qty: 3}},
			want: view{Status: "open", PaymentStatus: "unpaid", Currency: "jpy", Mode: "payment", AmountTotal: 15000, AmountSubtotal: 15000,
				Metadata: map[string]string{}},
		},
		{
			name:  "price id",
			items: []item{{price: "price_tee", qty: 2}, {price: "price_mug", qty: 1}},
			want: view{Status: "open", PaymentStatus: "unpaid", Currency: "usd", Mode: "payment", AmountTotal: 5200, AmountSubtotal: 5200,
				Metadata: map[string]string{}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, options{noWebhook: true, products: testCatalog()})
			form := sessionForm(tt.items...)
			for k, v := range tt.extra {
				form[k] = v
			}
			s := h.create(t, form)
			if diff := cmp.Diff(tt.want, project(s)); diff != "" {
				t.Errorf("session (-want +got):\n%s", diff)
			}
			if !strings.HasPrefix(s.ID, "cs_test_") || len(s.ID) < 60 || s.ID == "cs_test_fixture" {
				t.Errorf("id = %q, want a fresh cs_test_ id", s.ID)
			}
			if want := h.url + "/pay/" + s.ID; s.URL != want {
				t.Errorf("url = %q, want %q", s.URL, want)
			}
			if s.CustomerDetails != nil || s.PaymentIntent != nil {
				t.Errorf("open session has customer_details %+v, payment_intent %+v; want null", s.CustomerDetails, s.PaymentIntent)
			}
			if s.ExpiresAt-s.Created != 24*3600 {
				t.Errorf("expires_at - created = %d, want 24h", s.ExpiresAt-s.Created)
			}
			reqs := h.mock.requests()
			want := []mockRequest{{Method: "POST", Path: "/v1/checkout/sessions", Auth: "Bearer " + testKey, Body: form.Encode()}}
			if diff := cmp.Diff(want, reqs); diff != "" {
				t.Errorf("stripe-mock requests (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCreateRelaysValidationError(t *testing.T) {
	h := newHarness(t, options{noWebhook: true})
	form := sessionForm(tshirt())
	form.Set("mode", "bogus")
	resp, b := h.do(t, http.MethodPost, "/v1/checkout/sessions", form, map[string]string{"Idempotency-Key": "k"})
	if resp.StatusCode != http.StatusBadRequest || string(b) != mockError {
		t.Fatalf("got %s %s, want 400 %s", resp.Status, b, mockError)
	}
	// A failed request is not saved: the key can be used again.
	form.Set("mode", "payment")
	resp, b = h.do(t, http.MethodPost, "/v1/checkout/sessions", form, map[string]string{"Idempotency-Key": "k"})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("retry with same key: %s %s", resp.Status, b)
	}
}

func TestMockUnreachable(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	h := newHarness(t, options{noWebhook: true, mockURL: dead.URL})
	for _, path := range []string{"/v1/checkout/sessions", "/v1/customers"} {
		resp, b := h.do(t, http.MethodPost, path, sessionForm(tshirt()), nil)
		if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(b), `"api_error"`) {
			t.Errorf("POST %s = %s %s, want 502 api_error", path, resp.Status, b)
		}
	}
}

func TestIdempotency(t *testing.T) {
	h := newHarness(t, options{noWebhook: true})
	post := func(t testing.TB, key, secret string, form url.Values) (*http.Response, []byte) {
		t.Helper()
		return h.do(t, http.MethodPost, "/v1/checkout/sessions", form, map[string]string{"Idempotency-Key": key, "Authorization": "Bearer " + secret})
	}
	form := sessionForm(tshirt())

	r1, b1 := post(t, "k1", testKey, form)
	r2, b2 := post(t, "k1", testKey, form)
	s1, s2 := decode[stripe.CheckoutSession](t, b1), decode[stripe.CheckoutSession](t, b2)
	if r1.StatusCode != 200 || r2.StatusCode != 200 || s1.ID != s2.ID {
		t.Fatalf("same key: %s %q, %s %q; want 200 with the same id", r1.Status, s1.ID, r2.Status, s2.ID)
	}
	if got := r2.Header.Get("Idempotent-Replayed"); got != "true" {
		t.Errorf("Idempotent-Replayed = %q, want true", got)
	}
	if n := h.mock.creates.Load(); n != 1 {
		t.Errorf("stripe-mock saw %d creates, want 1", n)
	}

	_, b3 := post(t, "k1", "sk_test_other", form)
	if s3 := decode[stripe.CheckoutSession](t, b3); s3.ID == s1.ID {
		t.Errorf("another secret key reused session %q", s3.ID)
	}

	other := sessionForm(item{name: "Mug", currency: "usd", unit: 1500, qty: 1})
	r4, b4 := post(t, "k1", testKey, other)
	if r4.StatusCode != http.StatusBadRequest || !strings.Contains(string(b4), "idempotency_error") {
		t.Errorf("same key, other params: %s %s; want 400 idempotency_error", r4.Status, b4)
	}

	t.Run("concurrent", func(t *testing.T) {
		before := h.mock.creates.Load()
		const n = 20
		ids := make([]string, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				resp, b := post(t, "k-concurrent", testKey, form)
				if resp.StatusCode != http.StatusOK {
					t.Errorf("request %d: %s %s", i, resp.Status, b)
					return
				}
				ids[i] = decode[stripe.CheckoutSession](t, b).ID
			})
		}
		wg.Wait()
		for i, id := range ids {
			if id != ids[0] {
				t.Errorf("request %d got id %q, request 0 got %q", i, id, ids[0])
			}
		}
		if got := h.mock.creates.Load() - before; got != 1 {
			t.Errorf("stripe-mock saw %d creates, want 1", got)
		}
	})
}

type lineItemJSON struct {
	Object         string `json:"object"`
	Description    string `json:"description"`
	Quantity       int64  `json:"quantity"`
	AmountSubtotal int64  `json:"amount_subtotal"`
	AmountTotal    int64  `json:"amount_total"`
	Currency       string `json:"currency"`
	Price          struct {
		Object     string `json:"object"`
		UnitAmount int64  `json:"unit_amount"`
		Currency   string `json:"currency"`
	} `json:"price"`
}

type listJSON struct {
	Object  string         `json:"object"`
	Data    []lineItemJSON `json:"data"`
	HasMore bool           `json:"has_more"`
	URL     string         `json:"url"`
}

func TestRetrieve(t *testing.T) {
	h := newHarness(t, options{noWebhook: true})
	s := h.create(t, sessionForm(item{name: "T-shirt", currency: "usd", unit: 4000, qty: 2}, item{name: "Mug", currency: "usd", unit: 1500, qty: 1}))
	wantList := &listJSON{Object: "list", URL: "/v1/checkout/sessions/" + s.ID + "/line_items", Data: []lineItemJSON{
		{Object: "item", Description: "T-shirt", Quantity: 2, AmountSubtotal: 8000, AmountTotal: 8000, Currency: "usd"},
		{Object: "item", Description: "Mug", Quantity: 1, AmountSubtotal: 1500, AmountTotal: 1500, Currency: "usd"},
	}}
	for i, u := range []int64{4000, 1500} {
		wantList.Data[i].Price.Object, wantList.Data[i].Price.UnitAmount, wantList.Data[i].Price.Currency = "price", u, "usd"
	}

	tests := []struct {
		name       string
		path       string
		wantStatus int
		wantList   *listJSON
	}{
		{"plain", "/v1/checkout/sessions/" + s.ID, 200, nil},
		{"expand[]", "/v1/checkout/sessions/" + s.ID + "?expand[]=line_items", 200, wantList},
		{"expand[0] as stripe-go sends", "/v1/checkout/sessions/" + s.ID + "?expand%5B0%5D=line_items", 200, wantList},
		{"unknown", "/v1/checkout/sessions/cs_test_nope", 404, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := h.do(t, http.MethodGet, tt.path, nil, nil)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %s, want %d: %s", resp.Status, tt.wantStatus, b)
			}
			if tt.wantStatus == 404 {
				want := map[string]any{"error": map[string]any{"type": "invalid_request_error", "code": "resource_missing",
					"message": "No such checkout.session: 'cs_test_nope'", "param": "id"}}
				if diff := cmp.Diff(want, decode[map[string]any](t, b)); diff != "" {
					t.Errorf("error (-want +got):\n%s", diff)
				}
				return
			}
			got := decode[struct {
				ID          string    `json:"id"`
				AmountTotal int64     `json:"amount_total"`
				LineItems   *listJSON `json:"line_items"`
			}](t, b)
			if got.ID != s.ID || got.AmountTotal != 9500 {
				t.Errorf("id %q amount_total %d, want %q 9500", got.ID, got.AmountTotal, s.ID)
			}
			if diff := cmp.Diff(tt.wantList, got.LineItems); diff != "" {
				t.Errorf("line_items (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("line_items endpoint", func(t *testing.T) {
		resp, b := h.do(t, http.MethodGet, "/v1/checkout/sessions/"+s.ID+"/line_items", nil, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("status %s: %s", resp.Status, b)
		}
		if diff := cmp.Diff(wantList, decode[*listJSON](t, b)); diff != "" {
			t.Errorf("list (-want +got):\n%s", diff)
		}
	})

	t.Run("validated by stripe-mock", func(t *testing.T) {
		var paths []string
		for _, r := range h.mock.requests() {
			if r.Method == http.MethodGet {
				paths = append(paths, r.Path+"?"+r.Query)
			}
		}
		want := []string{
			"/v1/checkout/sessions/" + s.ID + "?",
			"/v1/checkout/sessions/" + s.ID + "?expand[]=line_items",
			"/v1/checkout/sessions/" + s.ID + "?expand%5B0%5D=line_items",
			"/v1/checkout/sessions/" + s.ID + "/line_items?",
		}
		if diff := cmp.Diff(want, paths); diff != "" {
			t.Errorf("forwarded GETs (-want +got):\n%s", diff)
		}
	})
}

func TestProxy(t *testing.T) {
	h := newHarness(t, options{noWebhook: true})
	resp, b := h.do(t, http.MethodGet, "/v1/customers/cus_123?expand[]=x", nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"object":"customer"`) {
		t.Fatalf("proxy: %s %s", resp.Status, b)
	}
	reqs := h.mock.requests()
	want := mockRequest{Method: "GET", Path: "/v1/customers/cus_123", Query: "expand[]=x", Auth: "Bearer " + testKey}
	if len(reqs) != 1 || reqs[0] != want {
		t.Errorf("stripe-mock got %+v, want %+v", reqs, want)
	}
}

func TestPayFlows(t *testing.T) {
	tests := []struct {
		name, outcome, email, card string
		wantStatus                 int
		wantError                  string // shown in #error
		wantPayment, wantState     string
		wantEvent                  bool
	}{
		{"card succeeds", "pay", "buyer@example.com", "4242 4242 4242 4242", 303, "", "paid", "complete", true},
		{"card declined", "pay", "buyer@example.com", "4000 0000 0000 0002", 402, "Your card was declined.", "unpaid", "open", false},
		{"invalid card number", "pay", "buyer@example.com", "1234 5678", 402, "Your card number is invalid.", "unpaid", "open", false},
		{"missing email", "pay", "", "4242424242424242", 400, "Enter a valid email address.", "unpaid", "open", false},
		{"invalid email", "delayed", "not-an-email", "", 400, "Enter a valid email address.", "unpaid", "open", false},
		{"delayed bank debit", "delayed", "buyer@example.com", "", 303, "", "unpaid", "complete", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, options{})
			form := sessionForm(tshirt())
			form.Set("client_reference_id", "order-7")
			s := h.create(t, form)
			resp, body := h.pay(t, s.ID, tt.outcome, tt.email, tt.card)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %s, want %d\n%s", resp.Status, tt.wantStatus, body)
			}
			if tt.wantError != "" {
				if want := `<p id="error" class="error" role="alert">` + tt.wantError + `</p>`; !strings.Contains(body, want) {
					t.Errorf("page lacks %s", want)
				}
			} else if want := "https://shop.test/success?session_id=" + s.ID; resp.Header.Get("Location") != want {
				t.Errorf("Location = %q, want %q", resp.Header.Get("Location"), want)
			}
			got := h.session(t, s.ID)
			if string(got.Status) != tt.wantState || string(got.PaymentStatus) != tt.wantPayment {
				t.Errorf("session %s/%s, want %s/%s", got.Status, got.PaymentStatus, tt.wantState, tt.wantPayment)
			}
			if !tt.wantEvent {
				if evs := h.simEvents(t); len(evs) != 0 {
					t.Errorf("events %+v, want none", evs)
				}
				return
			}
			if got.CustomerDetails == nil || got.CustomerDetails.Email != tt.email || got.PaymentIntent == nil || got.URL != "" {
				t.Errorf("completed session: customer_details %+v, payment_intent %+v, url %q", got.CustomerDetails, got.PaymentIntent, got.URL)
			}
			d := h.hook.next(t)
			if d.event.Type != "checkout.session.completed" {
				t.Fatalf("event type %q", d.event.Type)
			}
			for k, want := range map[string]string{
				"Content-Type": "application/json; charset=utf-8",
				"User-Agent":   "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
			} {
				if v := d.header.Get(k); v != want {
					t.Errorf("%s = %q, want %q", k, v, want)
				}
			}
			var cs stripe.CheckoutSession
			if err := json.Unmarshal(d.event.Data.Raw, &cs); err != nil {
				t.Fatal(err)
			}
			want := view{Status: "complete", PaymentStatus: tt.wantPayment, Currency: "usd", Mode: "payment", AmountTotal: 4000,
				AmountSubtotal: 4000, ClientReferenceID: "order-7", Email: tt.email, Metadata: map[string]string{}}
			if diff := cmp.Diff(want, project(&cs)); diff != "" {
				t.Errorf("event session (-want +got):\n%s", diff)
			}
			if cs.ID != s.ID || cs.LineItems != nil {
				t.Errorf("event session id %q line_items %v, want %q unexpanded", cs.ID, cs.LineItems, s.ID)
			}
			// The shop reads the PaymentIntent from the event: refunds and
			// disputes name it.
			ev, err := orders.ParseEvent(d.body)
			if err != nil {
				t.Fatalf("shop's parser: %v", err)
			}
			if got.PaymentIntent == nil || !strings.HasPrefix(ev.Session.PaymentIntent, "pi_") || ev.Session.PaymentIntent != got.PaymentIntent.ID {
				t.Errorf("event session payment_intent: got %q, want the session's %+v", ev.Session.PaymentIntent, got.PaymentIntent)
			}
		})
	}
}

func TestPayDoesNotWaitForDelivery(t *testing.T) {
	gate := make(chan struct{})
	h := newHarness(t, options{gate: gate})
	defer close(gate) // before the harness cleanup closes servers
	s := h.create(t, sessionForm(tshirt()))
	start := time.Now()
	resp, body := h.pay(t, s.ID, "pay", "buyer@example.com", "4242424242424242")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("status %s: %s", resp.Status, body)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("redirect took %v while the webhook endpoint hung", d)
	}
}

func TestDelayedPayment(t *testing.T) {
	tests := []struct {
		action, wantEvent, wantPayment string
	}{
		{"async_succeed", "checkout.session.async_payment_succeeded", "paid"},
		{"async_fail", "checkout.session.async_payment_failed", "unpaid"},
	}
	for _, tt := range tests {
		t.Run(tt.action, func(t *testing.T) {
			h := newHarness(t, options{})
			s := h.create(t, sessionForm(tshirt()))

			if resp, b := h.do(t, http.MethodPost, "/sim/sessions/"+s.ID+"/"+tt.action, nil, nil); resp.StatusCode != 400 {
				t.Errorf("%s on an open session: %s %s, want 400", tt.action, resp.Status, b)
			}
			if resp, _ := h.pay(t, s.ID, "delayed", "buyer@example.com", ""); resp.StatusCode != 303 {
				t.Fatalf("delayed payment: %s", resp.Status)
			}
			if d := h.hook.next(t); d.event.Type != "checkout.session.completed" {
				t.Fatalf("first event %q", d.event.Type)
			}
			_, page := h.do(t, http.MethodGet, "/pay/"+s.ID, nil, nil)
			for _, id := range []string{`id="async-succeed"`, `id="async-fail"`, `action="/sim/sessions/` + s.ID + `/` + tt.action + `"`} {
				if !strings.Contains(string(page), id) {
					t.Errorf("processing page lacks %s", id)
				}
			}

			resp, b := h.do(t, http.MethodPost, "/sim/sessions/"+s.ID+"/"+tt.action, url.Values{}, nil)
			if resp.StatusCode != 200 {
				t.Fatalf("%s: %s %s", tt.action, resp.Status, b)
			}
			got := decode[struct{ Session stripe.CheckoutSession }](t, b).Session
			if string(got.PaymentStatus) != tt.wantPayment || got.Status != "complete" {
				t.Errorf("session %s/%s, want complete/%s", got.Status, got.PaymentStatus, tt.wantPayment)
			}
			d := h.hook.next(t)
			var cs stripe.CheckoutSession
			if err := json.Unmarshal(d.event.Data.Raw, &cs); err != nil {
				t.Fatal(err)
			}
			if string(d.event.Type) != tt.wantEvent || string(cs.PaymentStatus) != tt.wantPayment {
				t.Errorf("event %s with payment_status %s, want %s with %s", d.event.Type, cs.PaymentStatus, tt.wantEvent, tt.wantPayment)
			}

			// The page's buttons post return=page and come back to the page;
			// the session is settled, so nothing else happens.
			resp, _ = h.do(t, http.MethodPost, "/sim/sessions/"+s.ID+"/async_succeed", url.Values{"return": {"page"}}, nil)
			if resp.StatusCode != 303 || resp.Header.Get("Location") != "/pay/"+s.ID {
				t.Errorf("return=page: %s to %q", resp.Status, resp.Header.Get("Location"))
			}
			if n := len(h.simEvents(t)); n != 2 {
				t.Errorf("%d events, want 2", n)
			}
		})
	}
}

func TestExpire(t *testing.T) {
	clk := &clock{t: time.Now()}
	h := newHarness(t, options{now: clk.Now})
	s := h.create(t, sessionForm(tshirt()))

	resp, b := h.do(t, http.MethodPost, "/v1/checkout/sessions/"+s.ID+"/expire", url.Values{}, nil)
	if got := decode[stripe.CheckoutSession](t, b); resp.StatusCode != 200 || got.Status != "expired" || got.URL != "" {
		t.Fatalf("expire: %s status %q url %q", resp.Status, got.Status, got.URL)
	}
	if d := h.hook.next(t); d.event.Type != "checkout.session.expired" {
		t.Errorf("event %q, want checkout.session.expired", d.event.Type)
	}
	resp, b = h.do(t, http.MethodPost, "/v1/checkout/sessions/"+s.ID+"/expire", url.Values{}, nil)
	if resp.StatusCode != 400 || !strings.Contains(string(b), "status of `expired`") {
		t.Errorf("expire twice: %s %s, want 400", resp.Status, b)
	}
	resp, _ = h.do(t, http.MethodPost, "/v1/checkout/sessions/cs_test_nope/expire", url.Values{}, nil)
	if resp.StatusCode != 404 {
		t.Errorf("expire unknown: %s, want 404", resp.Status)
	}

	resp, page := h.do(t, http.MethodGet, "/pay/"+s.ID, nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(string(page), "Checkout session expired") || !strings.Contains(string(page), `href="https://shop.test/cart"`) {
		t.Errorf("expired page: %s\n%s", resp.Status, page)
	}
	if resp, _ := h.pay(t, s.ID, "pay", "buyer@example.com", "4242424242424242"); resp.StatusCode != http.StatusConflict {
		t.Errorf("paying an expired session: %s, want 409", resp.Status)
	}

	t.Run("control endpoint", func(t *testing.T) {
		s := h.create(t, sessionForm(tshirt()))
		resp, b := h.do(t, http.MethodPost, "/sim/sessions/"+s.ID+"/expire", nil, nil)
		if got := decode[struct{ Session stripe.CheckoutSession }](t, b).Session; resp.StatusCode != 200 || got.Status != "expired" {
			t.Errorf("sim expire: %s %s", resp.Status, b)
		}
		h.hook.next(t)
	})

	t.Run("after 24 hours", func(t *testing.T) {
		s := h.create(t, sessionForm(tshirt()))
		clk.Advance(24*time.Hour + time.Second)
		if got := h.session(t, s.ID); got.Status != "expired" {
			t.Errorf("status %q after 24h, want expired", got.Status)
		}
		if d := h.hook.next(t); d.event.Type != "checkout.session.expired" {
			t.Errorf("event %q", d.event.Type)
		}
	})
}

func TestResendAndDuplicate(t *testing.T) {
	h := newHarness(t, options{})
	s := h.create(t, sessionForm(tshirt()))
	h.pay(t, s.ID, "pay", "buyer@example.com", "4242424242424242")
	first := h.hook.next(t)

	resp, b := h.do(t, http.MethodPost, "/sim/events/"+first.event.ID+"/resend", nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("resend: %s %s", resp.Status, b)
	}
	if d := h.hook.next(t); d.event.ID != first.event.ID {
		t.Errorf("resent event %q, want %q", d.event.ID, first.event.ID)
	}
	resp, b = h.do(t, http.MethodPost, "/sim/events/"+first.event.ID+"/duplicate?n=3", nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("duplicate: %s %s", resp.Status, b)
	}
	for range 3 {
		if d := h.hook.next(t); d.event.ID != first.event.ID {
			t.Errorf("duplicate event %q, want %q", d.event.ID, first.event.ID)
		}
	}
	evs := waitSettled(t, h)
	if len(evs) != 1 || len(evs[0].Deliveries) != 5 {
		t.Fatalf("event log %+v, want 1 event with 5 deliveries", evs)
	}

	for _, tc := range []struct {
		path string
		want int
	}{
		{"/sim/events/evt_nope/resend", 404},
		{"/sim/events/" + first.event.ID + "/duplicate?n=0", 400},
		{"/sim/events/" + first.event.ID + "/duplicate?n=1000", 400},
	} {
		if resp, b := h.do(t, http.MethodPost, tc.path, nil, nil); resp.StatusCode != tc.want {
			t.Errorf("POST %s: %s %s, want %d", tc.path, resp.Status, b, tc.want)
		}
	}
}

// waitSettled polls the event log until no delivery is pending.
func waitSettled(t testing.TB, h *harness) []simEvent {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs := h.simEvents(t)
		pending := false
		for _, ev := range evs {
			for _, d := range ev.Deliveries {
				pending = pending || d.State == "pending"
			}
		}
		if !pending {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries still pending: %+v", evs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRetry(t *testing.T) {
	tests := []struct {
		name         string
		failFirst    int32
		retryFor     time.Duration
		wantState    string
		wantAttempts int
	}{
		{"succeeds on third try", 2, time.Minute, "delivered", 3},
		{"gives up after the retry window", 1000, 500 * time.Millisecond, "failed", 3}, // at 0, 100ms, 300ms
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A clock that ticks a second per reading shows that every
			// attempt is signed afresh.
			var ticks atomic.Int64
			now := func() time.Time { return time.Now().Add(time.Duration(ticks.Add(1)) * time.Second) }
			h := newHarness(t, options{failFirst: tt.failFirst, retryFor: tt.retryFor, now: now})
			s := h.create(t, sessionForm(tshirt()))
			h.pay(t, s.ID, "pay", "buyer@example.com", "4242424242424242")
			evs := waitSettled(t, h)
			if len(evs) != 1 || len(evs[0].Deliveries) != 1 {
				t.Fatalf("event log %+v", evs)
			}
			d := evs[0].Deliveries[0]
			if d.State != tt.wantState || d.Attempts != tt.wantAttempts {
				t.Errorf("delivery %+v, want state %s after %d attempts", d, tt.wantState, tt.wantAttempts)
			}
			h.hook.mu.Lock()
			defer h.hook.mu.Unlock()
			if len(h.hook.log) != tt.wantAttempts {
				t.Errorf("receiver saw %d requests, want %d", len(h.hook.log), tt.wantAttempts)
			}
			seen := map[string]bool{}
			for i, a := range h.hook.log {
				if seen[a.stamp] {
					t.Errorf("attempt %d reused signature timestamp %s", i+1, a.stamp)
				}
				seen[a.stamp] = true
				if i > 0 {
					gap, least := a.at.Sub(h.hook.log[i-1].at), time.Duration(50<<i)*time.Millisecond // 100ms, 200ms, ...
					if gap < least {
						t.Errorf("attempt %d came %v after the previous one, want ≥ %v", i+1, gap, least)
					}
				}
			}
		})
	}
}

func TestEventsList(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	h := newHarness(t, options{noWebhook: true, now: clk.Now})
	a, b, c := h.create(t, sessionForm(tshirt())), h.create(t, sessionForm(tshirt())), h.create(t, sessionForm(tshirt()))
	h.pay(t, a.ID, "pay", "a@example.com", "4242424242424242") // t0
	clk.Advance(10 * time.Second)
	h.do(t, http.MethodPost, "/sim/sessions/"+b.ID+"/expire", nil, nil) // t0+10
	clk.Advance(10 * time.Second)
	h.pay(t, c.ID, "delayed", "c@example.com", "") // t0+20
	clk.Advance(10 * time.Second)
	h.do(t, http.MethodPost, "/sim/sessions/"+c.ID+"/async_succeed", nil, nil) // t0+30

	type list struct {
		Object string `json:"object"`
		Data   []struct {
			ID      string `json:"id"`
			Type    string `json:"type"`
			Created int64  `json:"created"`
			Data    struct {
				Object struct {
					ID string `json:"id"`
				} `json:"object"`
			} `json:"data"`
		} `json:"data"`
		HasMore bool `json:"has_more"`
	}
	get := func(t testing.TB, query string) list {
		t.Helper()
		resp, body := h.do(t, http.MethodGet, "/v1/events?"+query, nil, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("list %s: %s %s", query, resp.Status, body)
		}
		return decode[list](t, body)
	}
	all := get(t, "")
	if len(all.Data) != 4 {
		t.Fatalf("got %d events, want 4", len(all.Data))
	}
	const (
		completed = "checkout.session.completed"
		expired   = "checkout.session.expired"
		succeeded = "checkout.session.async_payment_succeeded"
	)
	tests := []struct {
		name, query string
		want        []string // "type session"
		wantMore    bool
	}{
		{"all, newest first", "", []string{succeeded + " c", completed + " c", expired + " b", completed + " a"}, false},
		{"wildcard", "type=checkout.session.*", []string{succeeded + " c", completed + " c", expired + " b", completed + " a"}, false},
		{"exact type", "type=" + completed, []string{completed + " c", completed + " a"}, false},
		{"other wildcard", "type=payment_intent.*", nil, false},
		{"types[]", "types[]=" + expired + "&types[]=" + succeeded, []string{succeeded + " c", expired + " b"}, false},
		{"types[0]", "types%5B0%5D=" + expired, []string{expired + " b"}, false},
		{"created[gte]", "created[gte]=1700000020", []string{succeeded + " c", completed + " c"}, false},
		{"created[lt]", "created[lt]=1700000010", []string{completed + " a"}, false},
		{"limit", "limit=2", []string{succeeded + " c", completed + " c"}, true},
		{"starting_after", "limit=1&starting_after=" + all.Data[1].ID, []string{expired + " b"}, true},
		{"ending_before", "ending_before=" + all.Data[2].ID, []string{succeeded + " c", completed + " c"}, false},
	}
	names := map[string]string{a.ID: "a", b.ID: "b", c.ID: "c"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := get(t, tt.query)
			var got []string
			for _, ev := range l.Data {
				got = append(got, ev.Type+" "+names[ev.Data.Object.ID])
			}
			if diff := cmp.Diff(tt.want, got); diff != "" || l.HasMore != tt.wantMore || l.Object != "list" {
				t.Errorf("events (-want +got):\n%s\nhas_more %v, want %v", diff, l.HasMore, tt.wantMore)
			}
		})
	}

	for _, tc := range []struct {
		path string
		want int
	}{
		{"/v1/events/" + all.Data[0].ID, 200},
		{"/v1/events/evt_nope", 404},
		{"/v1/events?limit=101", 400},
		{"/v1/events?starting_after=evt_nope", 404},
	} {
		resp, body := h.do(t, http.MethodGet, tc.path, nil, nil)
		if resp.StatusCode != tc.want {
			t.Errorf("GET %s: %s %s, want %d", tc.path, resp.Status, body, tc.want)
		}
	}
	_, body := h.do(t, http.MethodGet, "/v1/events/"+all.Data[0].ID, nil, nil)
	ev := decode[stripe.Event](t, body)
	if ev.ID != all.Data[0].ID || ev.Type != succeeded || ev.APIVersion != "2023-10-16" || ev.Created != 1_700_000_030 {
		t.Errorf("event %+v", ev)
	}
}

func TestHostedPage(t *testing.T) {
	h := newHarness(t, options{noWebhook: true})
	form := sessionForm(item{name: "<script>alert(1)</script>", currency: "usd", unit: 2000, qty: 2})
	form.Set("line_items[0][price_data][product_data][description]", `"Soft" & <b>bold</b>`)
	s := h.create(t, form)
	resp, b := h.do(t, http.MethodGet, "/pay/"+s.ID, nil, nil)
	page := string(b)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("page: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{
		"Simulated Stripe Checkout — no real payment",
		"&lt;script&gt;alert(1)&lt;/script&gt;",
		"&#34;Soft&#34; &amp; &lt;b&gt;bold&lt;/b&gt;",
		`<link rel="stylesheet" href="/pay-assets/sim.css">`,
		`<form method="post" action="/pay/` + s.ID + `">`,
		`<span id="total" class="total">$40.00</span>`,
		`id="email" name="email" type="email" required`,
		`id="card" name="card" inputmode="numeric" autocomplete="cc-number" value="4242 4242 4242 4242"`,
		`id="pay" class="button primary" type="submit" name="outcome" value="pay"`,
		`id="delayed" class="button" type="submit" name="outcome" value="delayed"`,
		`<a id="back" class="back" href="https://shop.test/cart">`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	for _, banned := range []string{"<script", "<style", "style=", "http://", "https://fonts"} {
		if strings.Contains(strings.ReplaceAll(page, `href="https://shop.test/cart"`, ""), banned) {
			t.Errorf("page contains %q", banned)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}

	resp, b = h.do(t, http.MethodGet, "/pay-assets/sim.css", nil, nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/css; charset=utf-8" || len(b) == 0 {
		t.Errorf("css: %s %q, %d bytes", resp.Status, resp.Header.Get("Content-Type"), len(b))
	}
	resp, b = h.do(t, http.MethodGet, "/pay/cs_test_nope", nil, nil)
	if resp.StatusCode != 404 || !strings.Contains(string(b), "Checkout session not found") {
		t.Errorf("unknown session page: %s", resp.Status)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  stripesim.Config
	}{
		{"no mock", stripesim.Config{PublicURL: "http://localhost:1"}},
		{"relative mock", stripesim.Config{MockURL: "localhost:12111", PublicURL: "http://localhost:1"}},
		{"no public url", stripesim.Config{MockURL: "http://localhost:12111"}},
		{"bad webhook url", stripesim.Config{MockURL: "http://localhost:12111", PublicURL: "http://localhost:1", WebhookURL: "ftp://x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := stripesim.New(tt.cfg); err == nil {
				t.Error("New succeeded, want an error")
			}
		})
	}
}
