package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stripe/stripe-go/v76"

	"github.com/shopcheckout/shop/internal/config"
)

// embeddedShop turns on Embedded Checkout (CHECKOUT_UI=embedded).
func embeddedShop(c *config.Config) { c.Checkout.UI = config.CheckoutEmbedded }

// sessionShape is what a test checks of a Checkout Session's parameters:
// how it opens, where it returns and its idempotency key.
type sessionShape struct {
	UIMode, ReturnURL, SuccessURL, CancelURL, Key string
}

func shapeOf(p *stripe.CheckoutSessionParams) sessionShape {
	deref := func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	}
	return sessionShape{
		UIMode: deref(p.UIMode), ReturnURL: deref(p.ReturnURL), SuccessURL: deref(p.SuccessURL),
		CancelURL: deref(p.CancelURL), Key: deref(p.IdempotencyKey),
	}
}

// hostedShape is a hosted session of the order, as before Embedded
// Checkout: no ui_mode at all.
func hostedShape(orderID string) sessionShape {
	return sessionShape{
		SuccessURL: "http://shop.test/success?session_id={CHECKOUT_SESSION_ID}", CancelURL: "http://shop.test/cancelled",
		Key: "checkout-session-" + orderID,
	}
}

// embeddedShape is an embedded session of the order.
func embeddedShape(orderID string) sessionShape {
	return sessionShape{
		UIMode: "embedded", ReturnURL: "http://shop.test/success?session_id={CHECKOUT_SESSION_ID}",
		Key: "checkout-session-embedded-" + orderID,
	}
}

// postJSON sends a JSON checkout and decodes a 200 answer, keeping its raw
// keys too.
func postJSON(t testing.TB, sh *shopper, body string) (checkoutResponse, map[string]any) {
	t.Helper()
	res := sh.do(t, "POST", "/create-checkout-session", strings.NewReader(body), "Content-Type", "application/json")
	raw := readBody(t, res)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: got %d, want 200: %s", body, res.StatusCode, raw)
	}
	var got checkoutResponse
	var keys map[string]any
	if err := json.Unmarshal([]byte(raw), &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(raw), &keys); err != nil {
		t.Fatal(err)
	}
	return got, keys
}

// TestCheckoutEmbedded: in embedded mode, main.js's request for the
// embedded flow gets an embedded session (ui_mode embedded, return_url the
// success page, no success or cancel url, a key of its own) priced from the
// catalogue, and its client secret instead of a url.
func TestCheckoutEmbedded(t *testing.T) {
	ts := newTestServer(t, embeddedShop)
	sh := &shopper{ts: ts}
	got, keys := postJSON(t, sh, `{"productId":"tshirt","quantity":2,"ui":"embedded","unitAmount":1,"currency":"jpy"}`)

	p := ts.fake.lastParams(t)
	orderID := *p.ClientReferenceID
	if diff := cmp.Diff(embeddedShape(orderID), shapeOf(p)); diff != "" {
		t.Errorf("session (-want +got):\n%s", diff)
	}
	if li := p.LineItems[0]; *li.PriceData.UnitAmount != 2000 || *li.PriceData.Currency != "usd" || *li.Quantity != 2 {
		t.Errorf("line item: got %d %s × %d, want the catalogue's 2000 usd × 2", *li.PriceData.UnitAmount, *li.PriceData.Currency, *li.Quantity)
	}
	o := ts.order(t, orderID)
	if got.SessionID != o.SessionID || got.ClientSecret != o.SessionID+"_secret_fake" {
		t.Errorf("answer: got %+v, want session %s and its client secret", got, o.SessionID)
	}
	if _, ok := keys["url"]; ok {
		t.Errorf("answer: got %v, want no url", keys)
	}

	// Back from the embedded page, the success page shows the order.
	ts.fake.pay(o.SessionID, "paid", "buyer@example.com")
	if body := readBody(t, ts.do(t, "GET", "/success?session_id="+o.SessionID, nil)); !strings.Contains(body, "Payment received") {
		t.Errorf("success page after an embedded payment:\n%s", body)
	}
}

// TestCheckoutHostedUnlessAsked: only a JSON request asking for the
// embedded flow, of a shop set to it, gets an embedded session. A form post
// (a browser without JavaScript) is hosted even if it says ui=embedded, as
// is JSON that does not ask, and a hosted shop ignores the asking.
func TestCheckoutHostedUnlessAsked(t *testing.T) {
	tests := []struct {
		name     string
		opts     []testOption
		body     string
		asJSON   bool
		embedded bool
	}{
		{"form", []testOption{embeddedShop}, "product_id=tshirt&quantity=1", false, false},
		{"form saying embedded", []testOption{embeddedShop}, "product_id=tshirt&quantity=1&ui=embedded", false, false},
		{"cart form", []testOption{embeddedShop}, "source=cart", false, false},
		{"json", []testOption{embeddedShop}, `{"productId":"tshirt","quantity":1}`, true, false},
		{"json hosted", []testOption{embeddedShop}, `{"productId":"tshirt","quantity":1,"ui":"hosted"}`, true, false},
		{"json embedded", []testOption{embeddedShop}, `{"productId":"tshirt","quantity":1,"ui":"embedded"}`, true, true},
		{"json items embedded", []testOption{embeddedShop}, `{"items":[{"productId":"tshirt","quantity":1}],"ui":"embedded"}`, true, true},
		{"json cart", []testOption{embeddedShop}, `{"source":"cart"}`, true, false},
		{"json cart embedded", []testOption{embeddedShop}, `{"source":"cart","ui":"embedded"}`, true, true},
		{"hosted shop, json embedded", nil, `{"productId":"tshirt","quantity":1,"ui":"embedded"}`, true, false},
		{"hosted shop, json cart embedded", nil, `{"source":"cart","ui":"embedded"}`, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, tt.opts...)
			sh := &shopper{ts: ts}
			sh.add(t, "tshirt", "3")
			contentType := formType
			if tt.asJSON {
				contentType = "application/json"
			}
			res := sh.do(t, "POST", "/create-checkout-session", strings.NewReader(tt.body), "Content-Type", contentType)
			raw := readBody(t, res)
			p := ts.fake.lastParams(t)
			o := ts.order(t, *p.ClientReferenceID)
			want := hostedShape(o.ID)
			if tt.embedded {
				want = embeddedShape(o.ID)
			}
			if diff := cmp.Diff(want, shapeOf(p)); diff != "" {
				t.Errorf("session (-want +got):\n%s", diff)
			}
			hostedURL := "https://checkout.stripe.com/c/pay/" + o.SessionID
			switch {
			case !tt.asJSON:
				if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != hostedURL {
					t.Errorf("got %d to %q, want 303 to %s", res.StatusCode, res.Header.Get("Location"), hostedURL)
				}
			case tt.embedded:
				if want := fmt.Sprintf(`{"sessionId":%q,"clientSecret":%q}`, o.SessionID, o.SessionID+"_secret_fake"); res.StatusCode != 200 || strings.TrimSpace(raw) != want {
					t.Errorf("got %d %s, want 200 %s", res.StatusCode, raw, want)
				}
			default:
				if want := fmt.Sprintf(`{"sessionId":%q,"url":%q}`, o.SessionID, hostedURL); res.StatusCode != 200 || strings.TrimSpace(raw) != want {
					t.Errorf("got %d %s, want 200 %s", res.StatusCode, raw, want)
				}
			}
			if strings.Contains(tt.body, "cart") && (len(o.Items) != 1 || o.Items[0].Quantity != 3) {
				t.Errorf("a cart checkout: got items %+v, want the cart's 3 T-shirts", o.Items)
			}
		})
	}
}

// TestCheckoutEmbeddedAndHostedKeys: the same page and lines name one
// order whichever way it is paid, but an embedded and a hosted session of
// it have keys of their own (their parameters differ, and Stripe refuses a
// key reused with other parameters): a shopper whose embedded checkout
// would not mount still gets the hosted page, and each way, retried, gets
// its same session again.
func TestCheckoutEmbeddedAndHostedKeys(t *testing.T) {
	ts := newTestServer(t, embeddedShop)
	sh := &shopper{ts: ts}
	token := ts.homeToken(t)
	embedded, _ := postJSON(t, sh, `{"productId":"tshirt","quantity":1,"token":"`+token+`","ui":"embedded"}`)
	first := ts.fake.lastParams(t)
	hosted, _ := postJSON(t, sh, `{"productId":"tshirt","quantity":1,"token":"`+token+`"}`)
	second := ts.fake.lastParams(t)
	if *first.ClientReferenceID != *second.ClientReferenceID {
		t.Errorf("orders: got %s and %s, want one", *first.ClientReferenceID, *second.ClientReferenceID)
	}
	if *first.IdempotencyKey == *second.IdempotencyKey {
		t.Errorf("idempotency keys: both %q, want one per way of paying", *first.IdempotencyKey)
	}
	if embedded.SessionID == hosted.SessionID || hosted.URL == "" || embedded.ClientSecret == "" {
		t.Errorf("got embedded %+v and hosted %+v, want two sessions", embedded, hosted)
	}
	again, _ := postJSON(t, sh, `{"productId":"tshirt","quantity":1,"token":"`+token+`","ui":"embedded"}`)
	if again.SessionID != embedded.SessionID || again.ClientSecret != embedded.ClientSecret {
		t.Errorf("embedded again: got %+v, want %+v", again, embedded)
	}
	if n := ts.fake.distinctSessions(); n != 2 {
		t.Errorf("sessions: got %d, want 2", n)
	}
	// The second way of paying is expected, not an error for the operator.
	if logs := ts.logs.String(); strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "order keeps its first checkout session") {
		t.Errorf("the hosted session after the embedded one: logs\n%s\nwant an info line, no error", logs)
	}
}

// TestCheckoutEmbeddedRejects: a JSON checkout with a ui or source the shop
// does not know, or the cart and products at once, is refused before any
// order or Stripe call; so is an embedded session Stripe returns without a
// client secret, which Stripe.js could not mount.
func TestCheckoutEmbeddedRejects(t *testing.T) {
	tests := []struct {
		name, body string
		wantStatus int
		wantMsg    string
	}{
		{"unknown ui", `{"productId":"tshirt","quantity":1,"ui":"popup"}`, 400, `"ui" may be "hosted" or "embedded"`},
		{"ui of a later API version", `{"productId":"tshirt","quantity":1,"ui":"embedded_page"}`, 400, `"ui" may be "hosted" or "embedded"`},
		{"ui not a string", `{"productId":"tshirt","quantity":1,"ui":true}`, 400, "could not be read"},
		{"unknown source", `{"productId":"tshirt","quantity":1,"source":"wishlist"}`, 400, `"source" only "cart"`},
		{"cart and a product", `{"source":"cart","productId":"tshirt","quantity":1}`, 400, "a checkout of the cart names no products"},
		{"cart and items", `{"source":"cart","items":[{"productId":"tshirt","quantity":1}]}`, 400, "a checkout of the cart names no products"},
		{"empty cart", `{"source":"cart","ui":"embedded"}`, 400, "Your cart is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, embeddedShop)
			res := ts.do(t, "POST", "/create-checkout-session", strings.NewReader(tt.body), "Content-Type", "application/json")
			var e errorBody
			if err := json.NewDecoder(res.Body).Decode(&e); err != nil || res.StatusCode != tt.wantStatus || !strings.Contains(e.Error.Message, tt.wantMsg) {
				t.Errorf("got %d %+v (%v), want %d saying %q", res.StatusCode, e.Error, err, tt.wantStatus, tt.wantMsg)
			}
			if created, _ := ts.fake.calls(); created != 0 {
				t.Errorf("Stripe calls: got %d, want 0", created)
			}
		})
	}

	t.Run("no client secret from Stripe", func(t *testing.T) {
		ts := newTestServer(t, embeddedShop)
		ts.fake.noSecret = true
		res := ts.do(t, "POST", "/create-checkout-session", strings.NewReader(`{"productId":"tshirt","quantity":1,"ui":"embedded"}`), "Content-Type", "application/json")
		if body := readBody(t, res); res.StatusCode != http.StatusBadGateway || strings.Contains(body, "clientSecret") {
			t.Errorf("got %d %s, want 502 without a client secret", res.StatusCode, body)
		}
	})
}

// TestEmbeddedPages: /config tells main.js the mode, and the home and cart
// pages load Stripe.js from STRIPE_JS_URL, with main.js, and carry the
// embedded checkout's box, hidden, beside what it replaces.
func TestEmbeddedPages(t *testing.T) {
	const standIn = "http://127.0.0.1:12113/v3/"
	ts := newTestServer(t, embeddedShop, func(c *config.Config) { c.StripeJSURL = standIn })
	if body := readBody(t, ts.do(t, "GET", "/config", nil)); !strings.Contains(body, `"checkoutUi":"embedded"`) {
		t.Errorf("/config: got %s, want checkoutUi embedded", body)
	}
	sh := &shopper{ts: ts}
	sh.add(t, "tshirt", "1")
	for _, page := range []struct{ path, back, hides string }{
		{"/", `href="/"`, `<section class="products" data-embedded-hide>`},
		{"/cart", `href="/cart"`, `id="cart-checkout" class="cart-checkout" data-embedded-hide>`},
	} {
		body := readBody(t, sh.do(t, "GET", page.path, nil))
		for _, want := range []string{
			`<script src="` + standIn + `" async></script>`, `<script src="/static/main.js" defer></script>`,
			`<section id="embedded-checkout" class="embedded-checkout" aria-label="Checkout" hidden>`,
			`<a ` + page.back + ` id="embedded-checkout-back"`, `<div id="embedded-checkout-mount"></div>`,
			`<p id="checkout-error" class="error" role="alert" hidden></p>`, page.hides,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("GET %s lacks %s", page.path, want)
			}
		}
		if regexp.MustCompile(`js\.stripe\.com`).MatchString(body) {
			t.Errorf("GET %s still loads Stripe.js from js.stripe.com", page.path)
		}
	}
	hosted := newTestServer(t)
	if body := readBody(t, hosted.do(t, "GET", "/config", nil)); !strings.Contains(body, `"checkoutUi":"hosted"`) {
		t.Errorf("/config of a hosted shop: got %s, want checkoutUi hosted", body)
	}
}
