package web

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/shopcheckout/shop/internal/config"
	"github.com/shopcheckout/shop/internal/orders"
)

// checkout creates an order through the real route and returns its session id.
func (ts *testServer) checkout(t testing.TB, product string, quantity string) (sessionID, orderID string) {
	t.Helper()
	res := ts.do(t, "POST", "/create-checkout-session", formBody("product_id", product, "quantity", quantity), "Content-Type", formType)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("checkout: got %d, want 303: %s", res.StatusCode, readBody(t, res))
	}
	p := ts.fake.lastParams(t)
	o, err := ts.store.Order(context.Background(), *p.ClientReferenceID)
	if err != nil {
		t.Fatal(err)
	}
	return o.SessionID, o.ID
}

func (ts *testServer) order(t testing.TB, id string) orders.Order {
	t.Helper()
	o, err := ts.store.Order(context.Background(), id)
	if err != nil {
		t.Fatalf("order %s: %v", id, err)
	}
	return o
}

// fulfilments counts the "order fulfilled" log lines for an order.
func (ts *testServer) fulfilments(orderID string) int {
	n := 0
	for _, line := range strings.Split(ts.logs.String(), "\n") {
		if strings.Contains(line, `msg="order fulfilled"`) && strings.Contains(line, "order_id="+orderID) {
			n++
		}
	}
	return n
}

func TestSuccessPage(t *testing.T) {
	tests := []struct {
		name          string
		paymentStatus string // "" leaves the session open
		wantState     string
		wantText      []string
		wantStatus    orders.Status
		wantFulfilled int
	}{
		{"paid", "paid", "paid", []string{"Payment received", "T-shirt", "$40.00", "shopper@example.com"}, orders.StatusPaid, 1},
		{"delayed payment", "unpaid", "processing", []string{"Payment processing", "$40.00"}, orders.StatusProcessing, 0},
		{"not yet paid", "", "pending", []string{"Waiting for payment"}, orders.StatusPending, 0},
		{"no payment required", "no_payment_required", "paid", []string{"Payment received"}, orders.StatusPaid, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t)
			sid, oid := ts.checkout(t, "tshirt", "2")
			if tt.paymentStatus != "" {
				ts.fake.pay(sid, tt.paymentStatus, "shopper@example.com")
			}
			for range 2 { // a reload must not fulfil again
				res := ts.do(t, "GET", "/success?session_id="+sid, nil)
				body := readBody(t, res)
				if res.StatusCode != 200 {
					t.Fatalf("status: got %d, want 200: %s", res.StatusCode, body)
				}
				if !strings.Contains(body, `data-state="`+tt.wantState+`"`) {
					t.Errorf("state: want %s in\n%s", tt.wantState, body)
				}
				for _, want := range tt.wantText {
					if !strings.Contains(body, want) {
						t.Errorf("body lacks %q", want)
					}
				}
				if got := res.Header.Get("Cache-Control"); got != "no-store" {
					t.Errorf("Cache-Control: got %q, want no-store", got)
				}
				if strings.Contains(body, `"payment_status"`) || strings.Contains(body, `{"id"`) {
					t.Errorf("raw JSON in the page:\n%s", body)
				}
			}
			o := ts.order(t, oid)
			if o.Status != tt.wantStatus {
				t.Errorf("order status: got %s, want %s", o.Status, tt.wantStatus)
			}
			if got := ts.fulfilments(oid); got != tt.wantFulfilled {
				t.Errorf("fulfilments: got %d, want %d", got, tt.wantFulfilled)
			}
			if (o.FulfilledAt != nil) != (tt.wantFulfilled == 1) {
				t.Errorf("FulfilledAt: got %v, want set=%v", o.FulfilledAt, tt.wantFulfilled == 1)
			}
		})
	}
}

func TestSuccessPageRejects(t *testing.T) {
	tests := []struct {
		name, query string
		wantStatus  int
	}{
		{"missing", "", 400},
		{"empty", "?session_id=", 400},
		{"not a session", "?session_id=pi_123", 400},
		{"markup", "?session_id=cs_test_%3Cscript%3E", 400},
		{"placeholder", "?session_id={CHECKOUT_SESSION_ID}", 400},
		{"too long", "?session_id=cs_test_" + strings.Repeat("a", 300), 400},
		{"unknown", "?session_id=cs_test_unknown123", 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t)
			res := ts.do(t, "GET", "/success"+tt.query, nil)
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status: got %d, want %d", res.StatusCode, tt.wantStatus)
			}
			if !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
				t.Errorf("want an HTML page, got %q", res.Header.Get("Content-Type"))
			}
			// A malformed id never reaches Stripe; an unknown one is asked
			// about once (it may be a second session of an order).
			want := 0
			if tt.wantStatus == 404 {
				want = 1
			}
			if _, gets := ts.fake.calls(); gets != want {
				t.Errorf("Stripe retrievals: got %d, want %d", gets, want)
			}
			for range 5 {
				ts.do(t, "GET", "/success"+tt.query, nil)
			}
			if _, gets := ts.fake.calls(); gets != want {
				t.Errorf("after reloads, Stripe retrievals: got %d, want still %d", gets, want)
			}
		})
	}
}

// TestSuccessPageSecondSession: a session the shop never recorded that
// names one of its orders (a second session of it) gets its success page,
// not a 404, and the order records the payment.
func TestSuccessPageSecondSession(t *testing.T) {
	ts := newTestServer(t)
	_, oid := ts.checkout(t, "tshirt", "2")
	// Another session for the same order, made outside the shop's checkout
	// (as after Stripe forgot an idempotency key): it names the order.
	second := &stripe.CheckoutSession{ID: "cs_test_second", Status: stripe.CheckoutSessionStatusComplete,
		PaymentStatus: stripe.CheckoutSessionPaymentStatusPaid, ClientReferenceID: oid, Currency: "usd",
		AmountSubtotal: 4000, AmountTotal: 4000, CustomerDetails: &stripe.CheckoutSessionCustomerDetails{Email: "b@example.com"}}
	ts.fake.mu.Lock()
	ts.fake.sessions[second.ID] = second
	ts.fake.mu.Unlock()
	res := ts.do(t, "GET", "/success?session_id=cs_test_second", nil)
	if body := readBody(t, res); res.StatusCode != 200 || !strings.Contains(body, "Payment received") {
		t.Fatalf("got %d, want the paid success page:\n%s", res.StatusCode, body)
	}
	if o := ts.order(t, oid); o.Status != orders.StatusPaid || o.SessionID != "cs_test_second" {
		t.Errorf("order: %s, session %q; want paid by cs_test_second", o.Status, o.SessionID)
	}
}

func TestSuccessPageStripeDown(t *testing.T) {
	for name, set := range map[string]func(*fakeSessions){
		"error": func(f *fakeSessions) { f.getErr = errors.New("connection refused") },
		"hang":  func(f *fakeSessions) { f.hang = true },
	} {
		t.Run(name, func(t *testing.T) {
			ts := newTestServer(t, func(c *config.Config) { c.StripeTimeout = 200 * time.Millisecond })
			sid, oid := ts.checkout(t, "tshirt", "1")
			set(ts.fake)
			res := ts.do(t, "GET", "/success?session_id="+sid, nil)
			body := readBody(t, res)
			if res.StatusCode != 200 || !strings.Contains(body, "Confirmation pending") || !strings.Contains(body, "$20.00") {
				t.Errorf("got %d, want a confirmation-pending page with the order:\n%s", res.StatusCode, body)
			}
			if o := ts.order(t, oid); o.Status != orders.StatusPending {
				t.Errorf("order status: got %s, want pending", o.Status)
			}
		})
	}
}

func TestSuccessPageAmountMismatch(t *testing.T) {
	ts := newTestServer(t)
	sid, oid := ts.checkout(t, "tshirt", "1")
	ts.fake.pay(sid, "paid", "x@example.com")
	ts.fake.mu.Lock()
	ts.fake.sessions[sid].AmountSubtotal, ts.fake.sessions[sid].AmountTotal = 1, 1
	ts.fake.mu.Unlock()
	body := readBody(t, ts.do(t, "GET", "/success?session_id="+sid, nil))
	if !strings.Contains(body, `data-state="review"`) {
		t.Errorf("want the review state:\n%s", body)
	}
	o := ts.order(t, oid)
	if o.Status != orders.StatusNeedsReview || o.FulfilledAt != nil || ts.fulfilments(oid) != 0 {
		t.Errorf("order: got %s fulfilled=%v, want needs_review and not fulfilled", o.Status, o.FulfilledAt)
	}
}

func TestSuccessPageStoreDown(t *testing.T) {
	ts := newTestServer(t)
	sid, _ := ts.checkout(t, "tshirt", "1")
	ts.store.Close()
	res := ts.do(t, "GET", "/success?session_id="+sid, nil)
	if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(readBody(t, res), "If you paid, it is safe") {
		t.Errorf("got %d, want 503 with a clear page", res.StatusCode)
	}
}

// TestSuccessPageSparesStripe: sixty reloads of a pending order's success
// page read its session from Stripe at most once a second, and none once
// the store says the order is paid.
func TestSuccessPageSparesStripe(t *testing.T) {
	ts := newTestServer(t)
	sid, oid := ts.checkout(t, "tshirt", "2")
	_, before := ts.fake.calls()
	start := time.Now()
	for range 60 {
		if res := ts.do(t, "GET", "/success?session_id="+sid, nil); res.StatusCode != 200 {
			t.Fatalf("got %d, want 200", res.StatusCode)
		}
	}
	elapsed := time.Since(start)
	_, after := ts.fake.calls()
	if max := 1 + int(elapsed/time.Second); after-before > max {
		t.Errorf("60 reloads in %v made %d Stripe reads, want at most %d", elapsed, after-before, max)
	}
	// Paid in the store (the webhook came): no read at all.
	ts.fake.pay(sid, "paid", "buyer@example.com")
	if code, _ := ts.deliver(t, eventFor("evt_spare", orders.EventSessionCompleted, sid, oid, "paid").json(t)); code != 200 {
		t.Fatal(code)
	}
	_, before = ts.fake.calls()
	for range 60 {
		res := ts.do(t, "GET", "/success?session_id="+sid, nil)
		if body := readBody(t, res); !strings.Contains(body, "Payment received") {
			t.Fatalf("paid order's page: %s", body)
		}
	}
	if _, after := ts.fake.calls(); after != before {
		t.Errorf("reloads of a paid order made %d Stripe reads, want 0", after-before)
	}
}
