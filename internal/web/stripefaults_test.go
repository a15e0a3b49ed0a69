package web

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopcheckout/shop/internal/config"
	"github.com/shopcheckout/shop/internal/stripeapi"
)

// fakeStripe is a Stripe API over HTTP with Stripe's idempotency: the same
// Idempotency-Key returns the session the first request created. fault may
// break a request before it is handled (return true when it answered).
type fakeStripe struct {
	mu       sync.Mutex
	attempts []string // method and idempotency key of every request
	byKey    map[string]string
	created  int
	fault    func(attempt int, w http.ResponseWriter, r *http.Request) bool
	// lose: create the session, then drop the connection without answering.
	lose int // how many responses to lose
}

func (f *fakeStripe) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.attempts = append(f.attempts, r.Method+" "+r.Header.Get("Idempotency-Key"))
	n := len(f.attempts)
	fault := f.fault
	f.mu.Unlock()
	if fault != nil && fault(n, w, r) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == "POST" && r.URL.Path == "/v1/checkout/sessions":
		key := r.Header.Get("Idempotency-Key")
		f.mu.Lock()
		id, ok := f.byKey[key]
		if !ok || key == "" {
			f.created++
			id = fmt.Sprintf("cs_test_http%03d", f.created)
			f.byKey[key] = id
		}
		lose := f.lose > 0
		if lose {
			f.lose--
		}
		f.mu.Unlock()
		if lose {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"id": id, "object": "checkout.session", "url": "https://checkout.stripe.com/c/pay/" + id, "status": "open", "payment_status": "unpaid"})
	case r.Method == "GET" && strings.HasPrefix(r.URL.Path, "/v1/checkout/sessions/"):
		id := strings.TrimPrefix(r.URL.Path, "/v1/checkout/sessions/")
		json.NewEncoder(w).Encode(map[string]any{"id": id, "object": "checkout.session", "status": "complete", "payment_status": "paid",
			"amount_subtotal": 2000, "amount_total": 2000, "currency": "usd", "customer_details": map[string]any{"email": "b@example.com"}})
	default:
		http.NotFound(w, r)
	}
}

func stripeError(w http.ResponseWriter, status int, typ, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":{"type":%q,"code":%q,"message":"internal detail sk_test_leak"}}`, typ, code)
}

// withRealStripe points the test server's Stripe calls, through the real
// stripe-go client, at base.
func (ts *testServer) withRealStripe(base string, timeout time.Duration) {
	sc := stripeapi.New(stripeapi.Options{Key: testSecretKey, APIBase: base, Timeout: timeout, Retries: 1})
	ts.sessions = sc.CheckoutSessions
}

func TestStripeFaultsOnCreate(t *testing.T) {
	tests := []struct {
		name         string
		fault        func(int, http.ResponseWriter, *http.Request) bool
		lose         int
		wantStatus   int
		wantAttempts int
	}{
		{"rate limited then ok", func(n int, w http.ResponseWriter, _ *http.Request) bool {
			if n == 1 {
				stripeError(w, 429, "invalid_request_error", "rate_limit")
				return true
			}
			return false
		}, 0, 303, 2},
		{"unavailable then ok", func(n int, w http.ResponseWriter, _ *http.Request) bool {
			if n == 1 {
				stripeError(w, 503, "api_error", "")
				return true
			}
			return false
		}, 0, 303, 2},
		{"conflict then ok", func(n int, w http.ResponseWriter, _ *http.Request) bool {
			if n == 1 {
				stripeError(w, 409, "idempotency_error", "")
				return true
			}
			return false
		}, 0, 303, 2},
		{"server error is not retried", func(n int, w http.ResponseWriter, _ *http.Request) bool {
			stripeError(w, 500, "api_error", "")
			return true
		}, 0, 502, 1},
		{"invalid request is not retried", func(n int, w http.ResponseWriter, _ *http.Request) bool {
			stripeError(w, 400, "invalid_request_error", "parameter_invalid_integer")
			return true
		}, 0, 502, 1},
		{"always rate limited", func(n int, w http.ResponseWriter, _ *http.Request) bool {
			stripeError(w, 429, "invalid_request_error", "rate_limit")
			return true
		}, 0, 502, 3},
		{"response lost after the session was created", nil, 1, 303, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeStripe{byKey: map[string]string{}, fault: tt.fault, lose: tt.lose}
			srv := httptest.NewServer(fake)
			defer srv.Close()
			ts := newTestServer(t, func(c *config.Config) { c.StripeTimeout = 5 * time.Second })
			ts.withRealStripe(srv.URL, 5*time.Second)
			res := ts.do(t, "POST", "/create-checkout-session", formBody("product_id", "tshirt", "quantity", "1"), "Content-Type", formType)
			body := readBody(t, res)
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status: got %d, want %d: %s", res.StatusCode, tt.wantStatus, body)
			}
			fake.mu.Lock()
			defer fake.mu.Unlock()
			if len(fake.attempts) != tt.wantAttempts {
				t.Errorf("attempts: got %d %v, want %d", len(fake.attempts), fake.attempts, tt.wantAttempts)
			}
			for _, a := range fake.attempts {
				if a != fake.attempts[0] || !strings.Contains(a, "checkout-session-ord_") {
					t.Errorf("attempts carry different or missing idempotency keys: %v", fake.attempts)
					break
				}
			}
			if fake.created > 1 {
				t.Errorf("sessions created: got %d, want at most 1", fake.created)
			}
			if strings.Contains(body, "internal detail") || strings.Contains(ts.logs.String(), "internal detail") {
				t.Error("Stripe's message reached the shopper or the log")
			}
		})
	}
}

func TestStripeUnreachableOrHanging(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String()
	ln.Close()
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(3 * time.Second):
		}
	}))
	defer hang.Close()
	defer hang.CloseClientConnections()
	for name, base := range map[string]string{"refused": refused, "hang": hang.URL} {
		t.Run(name, func(t *testing.T) {
			ts := newTestServer(t, func(c *config.Config) { c.StripeTimeout = 500 * time.Millisecond })
			ts.withRealStripe(base, 500*time.Millisecond)
			start := time.Now()
			res := ts.do(t, "POST", "/create-checkout-session", formBody("product_id", "tshirt", "quantity", "1"), "Content-Type", formType)
			if res.StatusCode != http.StatusBadGateway {
				t.Errorf("create: got %d, want 502", res.StatusCode)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("create answered after %v, want within the 500ms deadline (plus slack)", d)
			}
		})
	}
}

func TestStripeFaultsOnSuccessPage(t *testing.T) {
	fake := &fakeStripe{byKey: map[string]string{}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	ts := newTestServer(t)
	ts.withRealStripe(srv.URL, 5*time.Second)
	res := ts.do(t, "POST", "/create-checkout-session", formBody("product_id", "tshirt", "quantity", "1"), "Content-Type", formType)
	sid := strings.TrimPrefix(res.Header.Get("Location"), "https://checkout.stripe.com/c/pay/")
	o, err := ts.store.OrderBySession(t.Context(), sid)
	if err != nil {
		t.Fatalf("order of %q: %v", sid, err)
	}
	oid := o.ID
	fake.mu.Lock()
	fake.fault = func(n int, w http.ResponseWriter, r *http.Request) bool {
		if r.Method == "GET" && n == 2 {
			stripeError(w, 500, "api_error", "")
			return true
		}
		return false
	}
	fake.mu.Unlock()
	body := readBody(t, ts.do(t, "GET", "/success?session_id="+sid, nil))
	if !strings.Contains(body, "Payment received") {
		t.Errorf("a GET failing once is retried: want the paid page, got\n%s", body)
	}
	if o := ts.order(t, oid); o.FulfilledAt == nil {
		t.Error("order not fulfilled")
	}
}
