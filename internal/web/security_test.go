package web

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopcheckout/shop/internal/config"
	"github.com/shopcheckout/shop/internal/orders"
)

func TestSecurityHeaders(t *testing.T) {
	ts := newTestServer(t, func(c *config.Config) { c.CheckoutOrigins = []string{"http://localhost:12113"} })
	paths := []string{"/", "/config", "/cancelled", "/success?session_id=cs_test_x", "/healthz", "/static/main.js", "/nope"}
	for _, p := range paths {
		res := ts.do(t, "GET", p, nil)
		h := res.Header
		csp := h.Get("Content-Security-Policy")
		directives := map[string]string{}
		for _, d := range strings.Split(csp, ";") {
			name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
			directives[name] = value
		}
		want := map[string]string{
			"default-src":     "'self'",
			"script-src":      "'self' https://js.stripe.com",
			"style-src":       "'self'",
			"frame-src":       "https://js.stripe.com https://checkout.stripe.com https://hooks.stripe.com http://localhost:12113",
			"connect-src":     "'self' https://api.stripe.com",
			"form-action":     "'self' https://checkout.stripe.com http://localhost:12113",
			"frame-ancestors": "'none'",
			"base-uri":        "'none'",
			"object-src":      "'none'",
		}
		for name, value := range want {
			if directives[name] != value {
				t.Errorf("GET %s: CSP %s: got %q, want %q", p, name, directives[name], value)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("GET %s: CSP allows inline code: %s", p, csp)
		}
		for name, value := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin", "X-Frame-Options": "DENY"} {
			if got := h.Get(name); got != value {
				t.Errorf("GET %s: %s: got %q, want %q", p, name, got, value)
			}
		}
		if h.Get("Strict-Transport-Security") != "" {
			t.Errorf("GET %s: HSTS sent over http", p)
		}
	}
	https := newTestServer(t, func(c *config.Config) { c.BaseURL, _ = url.Parse("https://shop.example.com") })
	if got := https.do(t, "GET", "/", nil).Header.Get("Strict-Transport-Security"); !strings.HasPrefix(got, "max-age=") {
		t.Errorf("HSTS with an https BASE_URL: got %q, want max-age=...", got)
	}
}

// TestCSPStripeJSAndFrames: the CSP lets pages run Stripe.js from
// STRIPE_JS_URL's origin, and frame it and the CHECKOUT_ORIGINS (where the
// simulator's embedded checkout comes from), each source once.
func TestCSPStripeJSAndFrames(t *testing.T) {
	tests := []struct {
		name           string
		stripeJS       string
		origins        []string
		wantScript     string
		wantFrame      string
		wantFormAction string
		wantHTTPSOnly  bool
	}{
		{"stripe", "", nil,
			"'self' https://js.stripe.com",
			"https://js.stripe.com https://checkout.stripe.com https://hooks.stripe.com",
			"'self' https://checkout.stripe.com", true},
		{"stripe named", "https://js.stripe.com/v3/", nil,
			"'self' https://js.stripe.com",
			"https://js.stripe.com https://checkout.stripe.com https://hooks.stripe.com",
			"'self' https://checkout.stripe.com", true},
		{"simulator", "http://127.0.0.1:12113/v3/", []string{"http://127.0.0.1:12113"},
			"'self' https://js.stripe.com http://127.0.0.1:12113",
			"https://js.stripe.com https://checkout.stripe.com https://hooks.stripe.com http://127.0.0.1:12113",
			"'self' https://checkout.stripe.com http://127.0.0.1:12113", false},
		{"script elsewhere", "https://cdn.example.com/stripe/v3/", []string{"http://127.0.0.1:12113"},
			"'self' https://js.stripe.com https://cdn.example.com",
			"https://js.stripe.com https://checkout.stripe.com https://hooks.stripe.com https://cdn.example.com http://127.0.0.1:12113",
			"'self' https://checkout.stripe.com http://127.0.0.1:12113", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, func(c *config.Config) { c.StripeJSURL, c.CheckoutOrigins = tt.stripeJS, tt.origins })
			csp := ts.do(t, "GET", "/", nil).Header.Get("Content-Security-Policy")
			directives := map[string]string{}
			for _, d := range strings.Split(csp, ";") {
				name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
				directives[name] = value
			}
			for name, want := range map[string]string{"script-src": tt.wantScript, "frame-src": tt.wantFrame, "form-action": tt.wantFormAction, "connect-src": "'self' https://api.stripe.com"} {
				if got := directives[name]; got != want {
					t.Errorf("CSP %s: got %q, want %q", name, got, want)
				}
			}
			if tt.wantHTTPSOnly && strings.Contains(csp, "http:") {
				t.Errorf("CSP names a plain-http source: %s", csp)
			}
		})
	}
}

// TestTemplatesHaveNoInlineCode keeps the CSP honest: no inline scripts,
// styles or event handlers in any template.
func TestTemplatesHaveNoInlineCode(t *testing.T) {
	ts := newTestServer(t)
	for name, tmpl := range ts.pages.byName {
		for _, tt := range tmpl.Templates() {
			if tt.Tree == nil {
				continue
			}
			src := tt.Tree.Root.String()
			for _, bad := range []string{"<script>", "<style", " style=", " onclick=", " onsubmit=", " onload=", "javascript:"} {
				if strings.Contains(src, bad) {
					t.Errorf("template %s/%s contains %q", name, tt.Name(), bad)
				}
			}
		}
	}
}

func TestCrossOriginRefused(t *testing.T) {
	ts := newTestServer(t)
	cross := []string{"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site", "Content-Type", formType}
	for _, target := range []string{"/", "/config", "/create-checkout-session", "/create-checkout-session/", "/success", "/cancelled", "/healthz", "/admin/orders", "/nope"} {
		for _, method := range []string{"POST", "PUT", "PATCH", "DELETE"} {
			res := ts.do(t, method, target, strings.NewReader("product_id=tshirt"), cross...)
			if res.StatusCode != http.StatusForbidden {
				t.Errorf("%s %s cross-origin: got %d, want 403", method, target, res.StatusCode)
			}
		}
	}
	if created, _ := ts.fake.calls(); created != 0 {
		t.Errorf("Stripe calls: got %d, want 0", created)
	}
	// Stripe's own deliveries are cross-origin and must still get through.
	sid, oid := ts.checkout(t, "tshirt", "2")
	payload := eventFor("evt_x", orders.EventSessionCompleted, sid, oid, "paid").json(t)
	res := ts.do(t, "POST", "/webhook", bytes.NewReader(payload), "Content-Type", "application/json",
		"Origin", "https://stripe.com", "Sec-Fetch-Site", "cross-site", "Stripe-Signature", sign(payload, testWebhookSecret, time.Now()))
	if res.StatusCode != 200 {
		t.Errorf("webhook: got %d, want 200", res.StatusCode)
	}
}

func limited(perMinute, burst int, global float64, proxies ...string) testOption {
	return func(c *config.Config) {
		c.RateLimit = config.RateLimit{PerClientPerMinute: perMinute, Burst: burst, GlobalPerSecond: global}
		for _, p := range proxies {
			c.TrustedProxies = append(c.TrustedProxies, netip.MustParsePrefix(p))
		}
	}
}

// post sends one checkout from remote with the given X-Forwarded-For.
func (ts *testServer) postFrom(t *testing.T, remote, xff string) *http.Response {
	t.Helper()
	req := httptest.NewRequest("POST", "/create-checkout-session", formBody("product_id", "tshirt", "quantity", "1"))
	req.Header.Set("Content-Type", formType)
	req.RemoteAddr = remote
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	rec := httptest.NewRecorder()
	ts.ServeHTTP(rec, req)
	return rec.Result()
}

func TestRateLimitPerClient(t *testing.T) {
	ts := newTestServer(t, limited(10, 2, 0))
	for i := range 2 {
		if res := ts.postFrom(t, "203.0.113.5:1000", ""); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("request %d: got %d, want 303", i+1, res.StatusCode)
		}
	}
	// Rotating X-Forwarded-For from an untrusted peer buys nothing.
	for _, xff := range []string{"", "1.2.3.4", "5.6.7.8, 9.9.9.9"} {
		res := ts.postFrom(t, "203.0.113.5:1001", xff)
		if res.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("over the limit (xff %q): got %d, want 429", xff, res.StatusCode)
		}
		if ra := res.Header.Get("Retry-After"); ra != "6" {
			t.Errorf("Retry-After: got %q, want 6", ra)
		}
	}
	if created, _ := ts.fake.calls(); created != 2 {
		t.Errorf("Stripe calls: got %d, want 2", created)
	}
	if res := ts.postFrom(t, "203.0.113.6:1000", ""); res.StatusCode != http.StatusSeeOther {
		t.Errorf("another client: got %d, want 303", res.StatusCode)
	}
}

func TestRateLimitBehindTrustedProxy(t *testing.T) {
	ts := newTestServer(t, limited(10, 1, 0, "10.0.0.0/8"))
	// Through the proxy, each real client has its own budget.
	if res := ts.postFrom(t, "10.0.0.2:1000", "198.51.100.1"); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("client 1: got %d, want 303", res.StatusCode)
	}
	if res := ts.postFrom(t, "10.0.0.2:1000", "198.51.100.2"); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("client 2: got %d, want 303", res.StatusCode)
	}
	// A client that forges entries to the left of what the proxy appended is
	// still itself.
	for _, forged := range []string{"1.1.1.1", "2.2.2.2, 3.3.3.3", "garbage"} {
		res := ts.postFrom(t, "10.0.0.2:1000", forged+", 198.51.100.1")
		if res.StatusCode != http.StatusTooManyRequests {
			t.Errorf("forged %q: got %d, want 429", forged, res.StatusCode)
		}
	}
}

func TestRateLimitGlobal(t *testing.T) {
	ts := newTestServer(t, limited(1000, 100, 1))
	if res := ts.postFrom(t, "203.0.113.1:1", ""); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("first: got %d, want 303", res.StatusCode)
	}
	res := ts.postFrom(t, "203.0.113.2:1", "")
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") != "1" {
		t.Errorf("over the global cap: got %d Retry-After %q, want 429, 1", res.StatusCode, res.Header.Get("Retry-After"))
	}
}

func TestClientAddr(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	tests := []struct {
		remote, xff, want string
		trusted           []netip.Prefix
	}{
		{"203.0.113.9:443", "", "203.0.113.9", trusted},
		{"203.0.113.9:443", "1.2.3.4", "203.0.113.9", trusted},
		{"10.1.1.1:443", "1.2.3.4", "1.2.3.4", trusted},
		{"10.1.1.1:443", "6.6.6.6, 1.2.3.4", "1.2.3.4", trusted},
		{"10.1.1.1:443", "1.2.3.4, 10.2.2.2", "1.2.3.4", trusted},
		{"10.1.1.1:443", "10.3.3.3, 10.2.2.2", "10.3.3.3", trusted},
		{"10.1.1.1:443", "nonsense", "10.1.1.1", trusted},
		{"10.1.1.1:443", "", "10.1.1.1", trusted},
		{"[::1]:443", "2001:db8::1", "2001:db8::1", trusted},
		{"[::ffff:10.1.1.1]:443", "1.2.3.4", "1.2.3.4", trusted},
		{"10.1.1.1:443", "1.2.3.4", "10.1.1.1", nil},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tt.remote
		if tt.xff != "" {
			r.Header.Set("X-Forwarded-For", tt.xff)
		}
		if got := clientAddr(r, tt.trusted); got != tt.want {
			t.Errorf("clientAddr(%s, %q): got %s, want %s", tt.remote, tt.xff, got, tt.want)
		}
	}
}

func TestPanicRecoveredAndServing(t *testing.T) {
	ts := newTestServer(t)
	routes := ts.handler
	ts.handler = ts.recoverPanics(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/boom" {
			panic("internal detail")
		}
		routes.ServeHTTP(w, r)
	}))
	res := ts.do(t, "GET", "/boom", nil)
	body := readBody(t, res)
	if res.StatusCode != 500 || strings.Contains(body, "internal detail") || !strings.Contains(body, "Something went wrong") {
		t.Errorf("panic: got %d %s, want a generic 500 page", res.StatusCode, body)
	}
	if res := ts.do(t, "GET", "/", nil); res.StatusCode != 200 {
		t.Errorf("after the panic: got %d, want 200", res.StatusCode)
	}
}

// homeToken fetches the home page and returns its form token.
func (ts *testServer) homeToken(t *testing.T) string {
	t.Helper()
	body := readBody(t, ts.do(t, "GET", "/", nil))
	m := regexp.MustCompile(`name="checkout_token" value="([^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no checkout_token in the home page:\n%s", body)
	}
	return m[1]
}

func TestDoubleSubmitReusesOrderAndSession(t *testing.T) {
	ts := newTestServer(t)
	token := ts.homeToken(t)
	if other := ts.homeToken(t); other == token {
		t.Fatal("two renderings of the home page share a token")
	}
	var mu sync.Mutex
	locations := map[string]int{}
	var wg sync.WaitGroup
	for i := range 6 { // a double click, a retried request, and a JSON retry, all at once
		wg.Add(1)
		go func() {
			defer wg.Done()
			var res *http.Response
			if i%2 == 0 {
				res = ts.do(t, "POST", "/create-checkout-session", formBody("product_id", "tshirt", "quantity", "2", "checkout_token", token), "Content-Type", formType)
			} else {
				res = ts.do(t, "POST", "/create-checkout-session", strings.NewReader(`{"productId":"tshirt","quantity":2,"token":"`+token+`"}`), "Content-Type", "application/json")
			}
			loc := res.Header.Get("Location")
			if res.StatusCode == 200 {
				var body checkoutResponse
				json.NewDecoder(res.Body).Decode(&body)
				loc = body.URL
			}
			mu.Lock()
			locations[loc]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(locations) != 1 {
		t.Errorf("checkout urls: got %v, want one", locations)
	}
	if n := ts.fake.distinctSessions(); n != 1 {
		t.Errorf("Checkout Sessions: got %d, want 1", n)
	}
	list, _ := ts.store.ListOrders(context.Background(), orders.ListFilter{})
	if len(list) != 1 {
		t.Errorf("orders: got %d, want 1", len(list))
	}

	// A different quantity from the same page is a different purchase.
	ts.do(t, "POST", "/create-checkout-session", formBody("product_id", "tshirt", "quantity", "3", "checkout_token", token), "Content-Type", formType)
	if n := ts.fake.distinctSessions(); n != 2 {
		t.Errorf("after changing the quantity: got %d sessions, want 2", n)
	}
}

func TestResubmitAfterPaymentIsNewPurchase(t *testing.T) {
	ts := newTestServer(t)
	token := ts.homeToken(t)
	post := func() string {
		res := ts.do(t, "POST", "/create-checkout-session", formBody("product_id", "tshirt", "quantity", "1", "checkout_token", token), "Content-Type", formType)
		return res.Header.Get("Location")
	}
	first := post()
	p := ts.fake.lastParams(t)
	o := ts.order(t, *p.ClientReferenceID)
	if _, err := ts.svc.SyncSession(context.Background(), orders.Session{ID: o.SessionID, Status: "complete", PaymentStatus: "paid"}); err != nil {
		t.Fatal(err)
	}
	if second := post(); second == first || second == "" {
		t.Errorf("after payment: got %q, want a new checkout url (first %q)", second, first)
	}
}
