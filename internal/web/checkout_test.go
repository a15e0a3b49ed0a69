package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stripe/stripe-go/v76"

	"github.com/shopcheckout/shop/internal/config"
	"github.com/shopcheckout/shop/internal/orders"
)

func TestCheckoutCreateForm(t *testing.T) {
	ts := newTestServer(t)
	res := ts.do(t, "POST", "/create-checkout-session", formBody("product_id", "tshirt", "quantity", "2"), "Content-Type", formType)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("status: got %d, want 303; body %s", res.StatusCode, readBody(t, res))
	}
	p := ts.fake.lastParams(t)
	loc := res.Header.Get("Location")
	orderID := *p.ClientReferenceID
	o, err := ts.store.Order(context.Background(), orderID)
	if err != nil {
		t.Fatalf("order %s not stored: %v", orderID, err)
	}
	if want := "https://checkout.stripe.com/c/pay/" + o.SessionID; loc != want {
		t.Errorf("Location: got %q, want %q", loc, want)
	}
	if o.Status != orders.StatusPending || o.AmountTotal != 4000 || o.Currency != "usd" {
		t.Errorf("order: got %s %d %s, want pending 4000 usd", o.Status, o.AmountTotal, o.Currency)
	}
	if got, want := res.Header.Get("Cache-Control"), "no-store"; got != want {
		t.Errorf("Cache-Control: got %q, want %q", got, want)
	}

	// What reached Stripe came from the catalogue and the order only.
	li := p.LineItems[0]
	got := map[string]any{
		"mode": *p.Mode, "success": *p.SuccessURL, "cancel": *p.CancelURL, "metadata": p.Metadata["order_id"],
		"idempotency": *p.IdempotencyKey, "currency": *li.PriceData.Currency, "unit": *li.PriceData.UnitAmount,
		"name": *li.PriceData.ProductData.Name, "quantity": *li.Quantity, "locale": *p.Locale,
	}
	want := map[string]any{
		"mode": "payment", "success": "http://shop.test/success?session_id={CHECKOUT_SESSION_ID}", "cancel": "http://shop.test/cancelled",
		"metadata": orderID, "idempotency": "checkout-session-" + orderID, "currency": "usd", "unit": int64(2000),
		"name": "T-shirt", "quantity": int64(2), "locale": "auto",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("session params (-want +got):\n%s", diff)
	}
	if p.Context == nil {
		t.Error("the Stripe call has no context, so no deadline")
	} else if _, ok := p.Context.Deadline(); !ok {
		t.Error("the Stripe call's context has no deadline")
	}
	if p.AllowPromotionCodes != nil || p.AutomaticTax != nil || p.ShippingAddressCollection != nil || p.BillingAddressCollection != nil {
		t.Error("checkout options set although none is configured")
	}
}

func TestCheckoutCreateJSON(t *testing.T) {
	ts := newTestServer(t)
	// A client-sent amount, price and currency must be ignored.
	body := `{"productId":"tshirt","quantity":3,"amount":1,"unitAmount":1,"currency":"jpy","price":"price_evil","priceId":"price_evil"}`
	res := ts.do(t, "POST", "/create-checkout-session/", strings.NewReader(body), "Content-Type", "application/json", "Accept", "application/json")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status: got %d, want 200; body %s", res.StatusCode, readBody(t, res))
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type: got %q, want application/json", ct)
	}
	var got checkoutResponse
	if err := json.NewDecoder(res.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got.SessionID, "cs_test_") || got.URL != "https://checkout.stripe.com/c/pay/"+got.SessionID {
		t.Errorf("got %+v, want a session id and its url", got)
	}
	li := ts.fake.lastParams(t).LineItems[0]
	if li.Price != nil || *li.PriceData.UnitAmount != 2000 || *li.PriceData.Currency != "usd" || *li.Quantity != 3 {
		t.Errorf("line item: got price=%v amount=%d currency=%s qty=%d, want catalogue 2000 usd × 3", li.Price, *li.PriceData.UnitAmount, *li.PriceData.Currency, *li.Quantity)
	}
}

func TestCheckoutCreateOptions(t *testing.T) {
	ts := newTestServer(t, func(c *config.Config) {
		c.Checkout = config.CheckoutOptions{Locale: "fr", PromotionCodes: true, AutomaticTax: true, ShippingCountries: []string{"US", "CA"}, BillingAddress: true, MaxQuantityDefault: 10}
	})
	res := ts.do(t, "POST", "/create-checkout-session", formBody("product_id", "tshirt", "quantity", "1"), "Content-Type", formType)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("status: got %d, want 303", res.StatusCode)
	}
	p := ts.fake.lastParams(t)
	got := []any{*p.Locale, *p.AllowPromotionCodes, *p.AutomaticTax.Enabled, derefAll(p.ShippingAddressCollection.AllowedCountries), *p.BillingAddressCollection}
	want := []any{"fr", true, true, []string{"US", "CA"}, "required"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("options (-want +got):\n%s", diff)
	}
}

func TestCheckoutCreateRejects(t *testing.T) {
	tests := []struct {
		name        string
		method      string
		body        string
		contentType string
		headers     []string
		wantStatus  int
		wantMessage string
	}{
		{"unknown product form", "POST", "product_id=hat&quantity=1", formType, nil, 400, "not for sale"},
		{"unknown product json", "POST", `{"productId":"hat","quantity":1}`, "application/json", nil, 400, "not for sale"},
		{"quantity zero", "POST", "product_id=tshirt&quantity=0", formType, nil, 400, "from 1 to 10"},
		{"quantity negative", "POST", `{"productId":"tshirt","quantity":-2}`, "application/json", nil, 400, "from 1 to 10"},
		{"quantity over max", "POST", "product_id=tshirt&quantity=11", formType, nil, 400, "from 1 to 10"},
		{"quantity over product max", "POST", `{"productId":"mug","quantity":4}`, "application/json", nil, 400, "from 1 to 3"},
		{"quantity not a number", "POST", "product_id=tshirt&quantity=lots", formType, nil, 400, "from 1 to 10"},
		{"quantity huge", "POST", "product_id=tshirt&quantity=99999999999999999999", formType, nil, 400, "from 1 to 10"},
		{"quantity as string json", "POST", `{"productId":"tshirt","quantity":"2"}`, "application/json", nil, 400, "could not be read"},
		{"broken json", "POST", `{"productId":`, "application/json", nil, 400, "could not be read"},
		{"oversized form", "POST", "product_id=tshirt&quantity=1&pad=" + strings.Repeat("x", 10<<10), formType, nil, 413, "too large"},
		{"oversized json", "POST", `{"productId":"tshirt","pad":"` + strings.Repeat("x", 10<<10) + `"}`, "application/json", nil, 413, "too large"},
		{"cross-origin", "POST", "product_id=tshirt&quantity=1", formType, []string{"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"}, 403, "Cross-origin"},
		{"cross-origin no fetch metadata", "POST", "product_id=tshirt&quantity=1", formType, []string{"Origin", "https://evil.example"}, 403, "Cross-origin"},
		{"get", "GET", "", "", nil, 405, "does not accept GET"},
		{"put", "PUT", "", "", nil, 405, "does not accept PUT"},
	}
	for _, tt := range tests {
		for _, asJSON := range []bool{false, true} {
			name := tt.name + map[bool]string{false: " html", true: " json"}[asJSON]
			t.Run(name, func(t *testing.T) {
				ts := newTestServer(t)
				headers := append([]string{"Content-Type", tt.contentType}, tt.headers...)
				if asJSON {
					headers = append(headers, "Accept", "application/json")
				} else {
					headers = append(headers, "Accept", "text/html")
				}
				res := ts.do(t, tt.method, "/create-checkout-session", strings.NewReader(tt.body), headers...)
				if res.StatusCode != tt.wantStatus {
					t.Fatalf("status: got %d, want %d; body %s", res.StatusCode, tt.wantStatus, readBody(t, res))
				}
				body := readBody(t, res)
				jsonReply := asJSON || tt.contentType == "application/json"
				if jsonReply {
					var e errorBody
					if err := json.Unmarshal([]byte(body), &e); err != nil {
						t.Fatalf("error body is not JSON: %v: %s", err, body)
					}
					if !strings.Contains(e.Error.Message, tt.wantMessage) {
						t.Errorf("message: got %q, want it to contain %q", e.Error.Message, tt.wantMessage)
					}
				} else {
					if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
						t.Errorf("Content-Type: got %q, want an HTML page", ct)
					}
					if !strings.Contains(body, tt.wantMessage) || !strings.Contains(body, `href="/static/style.css"`) {
						t.Errorf("page: want the styled error page with %q, got %s", tt.wantMessage, body)
					}
				}
				if tt.wantStatus == 405 && res.Header.Get("Allow") != "POST" {
					t.Errorf("Allow: got %q, want POST", res.Header.Get("Allow"))
				}
				if created, _ := ts.fake.calls(); created != 0 {
					t.Errorf("Stripe calls: got %d, want 0", created)
				}
				if list, _ := ts.store.ListOrders(context.Background(), orders.ListFilter{}); len(list) != 0 {
					t.Errorf("orders stored: got %d, want 0", len(list))
				}
			})
		}
	}
}

func TestCheckoutCreateSameOriginAllowed(t *testing.T) {
	ts := newTestServer(t)
	res := ts.do(t, "POST", "/create-checkout-session", formBody("product_id", "tshirt"), "Content-Type", formType,
		"Origin", "http://shop.test", "Sec-Fetch-Site", "same-origin")
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("status: got %d, want 303", res.StatusCode)
	}
	if q := *ts.fake.lastParams(t).LineItems[0].Quantity; q != 1 {
		t.Errorf("default quantity: got %d, want 1", q)
	}
}

func TestCheckoutCreateStripeFailure(t *testing.T) {
	stripeMessage := "Invalid API Key provided: " + testSecretKey
	tests := []struct {
		name string
		set  func(*fakeSessions)
	}{
		{"stripe error", func(f *fakeSessions) {
			f.newErr = &stripe.Error{HTTPStatusCode: 401, Type: stripe.ErrorTypeInvalidRequest, Msg: stripeMessage, RequestID: "req_123"}
		}},
		{"unreachable", func(f *fakeSessions) { f.newErr = errors.New("dial tcp 127.0.0.1:1: connect: connection refused") }},
		{"hang", func(f *fakeSessions) { f.hang = true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, func(c *config.Config) { c.StripeTimeout = 200 * time.Millisecond })
			tt.set(ts.fake)
			start := time.Now()
			res := ts.do(t, "POST", "/create-checkout-session", strings.NewReader(`{"productId":"tshirt","quantity":1}`), "Content-Type", "application/json")
			elapsed := time.Since(start)
			if res.StatusCode != http.StatusBadGateway {
				t.Fatalf("status: got %d, want 502", res.StatusCode)
			}
			if elapsed > 5*time.Second {
				t.Errorf("answered after %v, want within the Stripe deadline", elapsed)
			}
			body := readBody(t, res)
			if strings.Contains(body, "Invalid API Key") || strings.Contains(ts.logs.String(), "Invalid API Key") {
				t.Errorf("Stripe's own message leaked: body %s", body)
			}
			if !strings.Contains(body, "Nothing was charged") {
				t.Errorf("body: got %s, want a clear message", body)
			}
		})
	}
}

func TestCheckoutRecordsOrderBeforeStripe(t *testing.T) {
	ts := newTestServer(t)
	ts.fake.newErr = errors.New("boom")
	ts.do(t, "POST", "/create-checkout-session", formBody("product_id", "tshirt", "quantity", "1"), "Content-Type", formType)
	list, err := ts.store.ListOrders(context.Background(), orders.ListFilter{})
	if err != nil || len(list) != 1 || list[0].Status != orders.StatusPending || list[0].SessionID != "" {
		t.Fatalf("got %+v, %v; want one pending order without a session", list, err)
	}
}

func derefAll(ss []*string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = *s
	}
	return out
}
