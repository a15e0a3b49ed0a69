package stripesim_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stripe/stripe-go/v76"
)

const returnURL = "https://shop.test/return?session_id={CHECKOUT_SESSION_ID}"

// embeddedForm is sessionForm for an embedded session.
func embeddedForm(items ...item) url.Values {
	f := sessionForm(items...)
	f.Del("success_url")
	f.Del("cancel_url")
	f.Set("ui_mode", "embedded")
	f.Set("return_url", returnURL)
	return f
}

// lastCreate is the body of the last create request stripe-mock saw.
func (h *harness) lastCreate(t testing.TB) url.Values {
	t.Helper()
	var body string
	for _, r := range h.mock.requests() {
		if r.Method == http.MethodPost && r.Path == "/v1/checkout/sessions" {
			body = r.Body
		}
	}
	form, err := url.ParseQuery(body)
	if err != nil {
		t.Fatal(err)
	}
	return form
}

func TestEmbeddedSession(t *testing.T) {
	h := newHarness(t, options{noWebhook: true, products: testCatalog()})
	form := embeddedForm(item{price: "price_tee", qty: 1})
	resp, b := h.do(t, http.MethodPost, "/v1/checkout/sessions", form, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("create: %s %s", resp.Status, b)
	}
	s := decode[stripe.CheckoutSession](t, b)
	if s.UIMode != "embedded" || s.URL != "" || !strings.HasPrefix(s.ClientSecret, s.ID+"_secret_") || len(s.ClientSecret) <= len(s.ID)+8 ||
		s.ReturnURL != returnURL || s.RedirectOnCompletion != "always" || s.AmountTotal != 2000 {
		t.Errorf("embedded session: got %+v", s)
	}
	raw := decode[map[string]any](t, b)
	if v, ok := raw["url"]; !ok || v != nil {
		t.Errorf("url: got %v, want null", v)
	}
	// stripe-mock got the name it knows, and nothing else changed.
	sent := h.lastCreate(t)
	if got := sent.Get("ui_mode"); got != "embedded_page" {
		t.Errorf("stripe-mock got ui_mode %q, want embedded_page", got)
	}
	sent.Set("ui_mode", "embedded")
	if diff := cmp.Diff(form, sent); diff != "" {
		t.Errorf("stripe-mock's request, ui_mode aside (-want +got):\n%s", diff)
	}
	if got := h.session(t, s.ID); got.UIMode != "embedded" || got.ClientSecret != s.ClientSecret || got.URL != "" {
		t.Errorf("retrieve: got ui_mode %q client_secret %q url %q", got.UIMode, got.ClientSecret, got.URL)
	}

	t.Run("hosted", func(t *testing.T) {
		for _, mode := range []string{"", "hosted"} {
			form := sessionForm(tshirt())
			if mode != "" {
				form.Set("ui_mode", mode)
			}
			raw := decode[map[string]any](t, h.ok(t, http.MethodPost, "/v1/checkout/sessions", form))
			if raw["ui_mode"] != "hosted" || raw["client_secret"] != nil || raw["return_url"] != nil || raw["url"] == nil {
				t.Errorf("ui_mode %q: got ui_mode %v client_secret %v return_url %v url %v", mode, raw["ui_mode"], raw["client_secret"], raw["return_url"], raw["url"])
			}
			if want := map[string]string{"": "", "hosted": "hosted_page"}[mode]; h.lastCreate(t).Get("ui_mode") != want {
				t.Errorf("ui_mode %q reached stripe-mock as %q, want %q", mode, h.lastCreate(t).Get("ui_mode"), want)
			}
		}
	})
	t.Run("never redirects", func(t *testing.T) {
		form := embeddedForm(tshirt())
		form.Del("return_url")
		form.Set("redirect_on_completion", "never")
		s := decode[stripe.CheckoutSession](t, h.ok(t, http.MethodPost, "/v1/checkout/sessions", form))
		if s.RedirectOnCompletion != "never" || s.ReturnURL != "" || s.ClientSecret == "" {
			t.Errorf("got %+v", s)
		}
	})

	refusals := []struct {
		name string
		edit func(url.Values)
		want errorJSON
	}{
		{"no return_url", func(f url.Values) { f.Del("return_url") },
			errorJSON{"invalid_request_error", "parameter_missing", "return_url", "Missing required param: return_url."}},
		{"success_url", func(f url.Values) { f.Set("success_url", "https://shop.test/ok") },
			errorJSON{"invalid_request_error", "", "success_url", "`success_url` cannot be used when `ui_mode` is `embedded`."}},
		{"cancel_url", func(f url.Values) { f.Set("cancel_url", "https://shop.test/cart") },
			errorJSON{"invalid_request_error", "", "cancel_url", "`cancel_url` cannot be used when `ui_mode` is `embedded`."}},
		{"relative return_url", func(f url.Values) { f.Set("return_url", "/return") },
			errorJSON{"invalid_request_error", "", "return_url", "Not a valid URL"}},
		{"return_url that is never used", func(f url.Values) { f.Set("redirect_on_completion", "never") },
			errorJSON{"invalid_request_error", "", "return_url", "`return_url` cannot be used when `redirect_on_completion` is `never`."}},
		{"unknown redirect_on_completion", func(f url.Values) { f.Set("redirect_on_completion", "sometimes") },
			errorJSON{"invalid_request_error", "", "redirect_on_completion", "Invalid redirect_on_completion: must be one of always, if_required or never"}},
		{"return_url on a hosted session", func(f url.Values) { f.Del("ui_mode"); f.Set("success_url", "https://shop.test/ok") },
			errorJSON{"invalid_request_error", "", "return_url", "`return_url` cannot be used when `ui_mode` is `hosted`."}},
		{"a later version's name", func(f url.Values) { f.Set("ui_mode", "embedded_page") },
			errorJSON{"invalid_request_error", "", "ui_mode", "Invalid ui_mode: must be one of embedded or hosted"}},
		{"custom", func(f url.Values) { f.Set("ui_mode", "custom") },
			errorJSON{"invalid_request_error", "", "ui_mode", "Invalid ui_mode: must be one of embedded or hosted"}},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			form := embeddedForm(tshirt())
			tt.edit(form)
			before := len(h.mock.requests())
			resp, b := h.do(t, http.MethodPost, "/v1/checkout/sessions", form, nil)
			if resp.StatusCode != 400 {
				t.Fatalf("got %s %s, want 400", resp.Status, b)
			}
			if diff := cmp.Diff(tt.want, decodeError(t, b)); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if tt.want.Param == "ui_mode" && len(h.mock.requests()) != before {
				t.Error("an unknown ui_mode reached stripe-mock")
			}
		})
	}
}

func TestEmbeddedPage(t *testing.T) {
	h := newHarness(t, options{products: testCatalog()})
	s := h.create(t, embeddedForm(item{price: "price_tee", qty: 2}))
	const origin = "http://shop.test:8000"
	action := "/embedded/" + s.ClientSecret + "?origin=" + url.QueryEscape(origin)

	resp, b := h.do(t, http.MethodGet, action, nil, nil)
	page := string(b)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("page: %s %s\n%s", resp.Status, resp.Header.Get("Content-Type"), page)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"frame-ancestors *", "script-src 'self'", "default-src 'none'", "form-action 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %s", csp, want)
		}
	}
	if v := resp.Header.Get("X-Frame-Options"); v != "" {
		t.Errorf("X-Frame-Options = %q: the page must be frameable", v)
	}
	for _, want := range []string{
		`<script src="/pay-assets/embedded.js" defer></script>`,
		`<body id="embedded" class="embedded" data-parent-origin="http://shop.test:8000">`,
		`<form method="post" action="/embedded/` + s.ClientSecret + `?origin=http%3A%2F%2Fshop.test%3A8000">`,
		`<span id="total" class="total">$40.00</span>`,
		`id="pay" class="button primary" type="submit" name="outcome" value="pay"`,
		`id="delayed" class="button" type="submit" name="outcome" value="delayed"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("embedded page lacks %s", want)
		}
	}
	if strings.Contains(page, "data-complete") || strings.Contains(page, `id="back"`) {
		t.Error("open embedded page says it is complete, or has a back link")
	}

	for _, path := range []string{
		"/embedded/" + s.ID + "_secret_wrong",
		"/embedded/" + s.ID,
		"/pay/" + s.ID, // an embedded session has no hosted page
	} {
		if resp, b := h.do(t, http.MethodGet, path, nil, nil); resp.StatusCode != 404 || !strings.Contains(string(b), "Checkout session not found") {
			t.Errorf("GET %s: got %s, want 404", path, resp.Status)
		}
	}
	hosted := h.create(t, sessionForm(tshirt()))
	if resp, _ := h.do(t, http.MethodGet, "/embedded/"+hosted.ID+"_secret_x", nil, nil); resp.StatusCode != 404 {
		t.Errorf("a hosted session's embedded page: got %s, want 404", resp.Status)
	}

	resp, b = h.do(t, http.MethodPost, action, url.Values{"outcome": {"pay"}, "email": {"buyer@example.com"}, "card": {"4000 0000 0000 0002"}}, nil)
	if resp.StatusCode != http.StatusPaymentRequired || !strings.Contains(string(b), "Your card was declined.") || !strings.Contains(string(b), `id="embedded"`) {
		t.Errorf("declined: got %s\n%s", resp.Status, b)
	}
	resp, b = h.do(t, http.MethodPost, action, url.Values{"outcome": {"pay"}, "email": {"buyer@example.com"}, "card": {"4242 4242 4242 4242"}}, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/embedded/"+s.ClientSecret+"?origin=http%3A%2F%2Fshop.test%3A8000" {
		t.Fatalf("pay: got %s to %q\n%s", resp.Status, resp.Header.Get("Location"), b)
	}
	d := h.hook.next(t)
	if cs := linkSession(t, d); d.event.Type != "checkout.session.completed" || cs.UIMode != "embedded" || cs.PaymentStatus != "paid" {
		t.Errorf("event %s: session %+v", d.event.Type, cs)
	}
	_, b = h.do(t, http.MethodGet, action, nil, nil)
	page = string(b)
	for _, want := range []string{
		`data-complete="true" data-session="` + s.ID + `" data-return-url="https://shop.test/return?session_id=` + s.ID + `" data-redirect="true"`,
		`<a id="return" class="button primary" href="https://shop.test/return?session_id=` + s.ID + `" target="_top">`,
		"Payment complete",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("completed embedded page lacks %s\n%s", want, page)
		}
	}
	if resp, _ := h.do(t, http.MethodPost, action, url.Values{"outcome": {"pay"}, "email": {"buyer@example.com"}, "card": {"4242424242424242"}}, nil); resp.StatusCode != http.StatusConflict {
		t.Errorf("paying twice: got %s, want 409", resp.Status)
	}

	t.Run("delayed, no redirect, a bad origin", func(t *testing.T) {
		form := embeddedForm(tshirt())
		form.Set("redirect_on_completion", "if_required")
		s := h.create(t, form)
		path := "/embedded/" + s.ClientSecret + "?origin=" + url.QueryEscape("javascript:alert(1)")
		_, b := h.do(t, http.MethodGet, path, nil, nil)
		if !strings.Contains(string(b), `data-parent-origin=""`) || !strings.Contains(string(b), `action="/embedded/`+s.ClientSecret+`"`) {
			t.Errorf("page with a bad origin:\n%s", b)
		}
		resp, _ := h.do(t, http.MethodPost, path, url.Values{"outcome": {"delayed"}, "email": {"buyer@example.com"}}, nil)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("delayed: got %s", resp.Status)
		}
		h.hook.next(t)
		_, b = h.do(t, http.MethodGet, resp.Header.Get("Location"), nil, nil)
		if !strings.Contains(string(b), `data-redirect="false"`) || !strings.Contains(string(b), "Payment processing") || strings.Contains(string(b), `id="return"`) {
			t.Errorf("processing page:\n%s", b)
		}
	})

	resp, b = h.do(t, http.MethodGet, "/pay-assets/embedded.js", nil, nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/javascript; charset=utf-8" ||
		!strings.Contains(string(b), "stripe-sim:complete") || !strings.Contains(string(b), "postMessage") {
		t.Errorf("embedded.js: %s %q\n%s", resp.Status, resp.Header.Get("Content-Type"), b)
	}
}

func TestStripeJSStandIn(t *testing.T) {
	h := newHarness(t, options{noWebhook: true})
	for _, path := range []string{"/v3/", "/v3"} {
		resp, b := h.do(t, http.MethodGet, path, nil, nil)
		js := string(b)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/javascript; charset=utf-8" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("GET %s: %s %q", path, resp.Status, resp.Header.Get("Content-Type"))
		}
		for _, want := range []string{
			`var SIM_URL = "` + h.url + `";`, `var SIM_ORIGIN = "` + h.url + `";`,
			"window.Stripe = function (publishableKey)", "initEmbeddedCheckout", `SIM_URL + "/embedded/"`, "fetchClientSecret",
			"prototype.mount", "prototype.unmount", "prototype.destroy", "onComplete", "event.origin !== SIM_ORIGIN",
		} {
			if !strings.Contains(js, want) {
				t.Errorf("GET %s lacks %s", path, want)
			}
		}
		for _, banned := range []string{"redirectToCheckout", "eval(", "new Function", "STRIPE_SIM_", "=>", "`"} {
			if strings.Contains(js, banned) {
				t.Errorf("GET %s contains %q", path, banned)
			}
		}
	}
	if resp, _ := h.do(t, http.MethodGet, "/v3/other.js", nil, nil); resp.StatusCode != 404 {
		t.Errorf("GET /v3/other.js: got %s, want 404", resp.Status)
	}
}
