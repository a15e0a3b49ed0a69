package stripesim_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stripe/stripe-go/v76"

	"github.com/shopcheckout/shop/internal/stripesim"
)

// testLinks are two seeded Payment Links: two T-shirts, which redirect to
// the shop, and a mug, which keeps the buyer on the simulator's
// confirmation.
func testLinks() []stripesim.SeedPaymentLink {
	return []stripesim.SeedPaymentLink{
		{ID: "plink_tee", LineItems: []stripesim.SeedLinkLine{{Price: "price_tee", Quantity: 2}},
			RedirectURL: "https://shop.test/thanks?session={CHECKOUT_SESSION_ID}"},
		{ID: "plink_mug", LineItems: []stripesim.SeedLinkLine{{Price: "price_mug"}}, Metadata: map[string]string{"channel": "instagram"}},
	}
}

func TestPaymentLinkAPI(t *testing.T) {
	clk := startClock()
	h := newHarness(t, options{now: clk.Now, products: testCatalog()})
	form := url.Values{
		"line_items[0][price]": {"price_tee"}, "line_items[0][quantity]": {"2"},
		"line_items[1][price]": {"price_mug"}, "line_items[1][quantity]": {"1"},
		"after_completion[type]":          {"redirect"},
		"after_completion[redirect][url]": {"https://shop.test/thanks?session={CHECKOUT_SESSION_ID}"},
		"metadata[campaign]":              {"spring"},
	}
	pl := decode[stripe.PaymentLink](t, h.ok(t, http.MethodPost, "/v1/payment_links", form))
	if !strings.HasPrefix(pl.ID, "plink_") || pl.URL != h.url+"/pl/"+pl.ID || !pl.Active || pl.Currency != "usd" ||
		pl.Metadata["campaign"] != "spring" || pl.AfterCompletion == nil || pl.AfterCompletion.Type != "redirect" ||
		pl.AfterCompletion.Redirect == nil || pl.AfterCompletion.Redirect.URL != "https://shop.test/thanks?session={CHECKOUT_SESSION_ID}" ||
		pl.LineItems != nil {
		t.Errorf("payment link: got %+v", pl)
	}
	if d := h.hook.next(t); d.event.Type != "payment_link.created" || d.event.Data.Object["id"] != pl.ID {
		t.Errorf("event: got %s about %v, want payment_link.created", d.event.Type, d.event.Data.Object["id"])
	}
	if got := decode[stripe.PaymentLink](t, h.ok(t, http.MethodGet, "/v1/payment_links/"+pl.ID, nil)); got.ID != pl.ID || got.URL != pl.URL || got.LineItems != nil {
		t.Errorf("retrieve: got %+v", got)
	}
	expanded := decode[stripe.PaymentLink](t, h.ok(t, http.MethodGet, "/v1/payment_links/"+pl.ID+"?expand[]=line_items", nil))
	if expanded.LineItems == nil || len(expanded.LineItems.Data) != 2 {
		t.Fatalf("expanded line_items: got %+v", expanded.LineItems)
	}

	path := "/v1/payment_links/" + pl.ID + "/line_items"
	first := decode[stripe.LineItemList](t, h.ok(t, http.MethodGet, path+"?limit=1", nil))
	if len(first.Data) != 1 || !first.HasMore || first.URL != path {
		t.Fatalf("first page: got %+v", first)
	}
	rest := decode[stripe.LineItemList](t, h.ok(t, http.MethodGet, path+"?starting_after="+first.Data[0].ID, nil))
	if len(rest.Data) != 1 || rest.HasMore {
		t.Fatalf("second page: got %+v", rest)
	}
	type lineView struct {
		Description, Price, Product string
		Quantity, UnitAmount, Total int64
	}
	var got []lineView
	for _, li := range append(first.Data, rest.Data...) {
		got = append(got, lineView{li.Description, li.Price.ID, li.Price.Product.ID, li.Quantity, li.Price.UnitAmount, li.AmountTotal})
	}
	want := []lineView{{"T-shirt", "price_tee", "prod_tee", 2, 2000, 4000}, {"Mug", "price_mug", "prod_mug", 1, 1200, 1200}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("line items (-want +got):\n%s", diff)
	}

	t.Run("hosted confirmation", func(t *testing.T) {
		pl := decode[stripe.PaymentLink](t, h.ok(t, http.MethodPost, "/v1/payment_links", url.Values{
			"line_items[0][price]": {"price_tea"}, "line_items[0][quantity]": {"1"},
			"after_completion[type]": {"hosted_confirmation"}, "after_completion[hosted_confirmation][custom_message]": {"Thanks!"},
		}))
		if pl.Currency != "jpy" || pl.AfterCompletion.Type != "hosted_confirmation" || pl.AfterCompletion.HostedConfirmation == nil ||
			pl.AfterCompletion.HostedConfirmation.CustomMessage != "Thanks!" {
			t.Errorf("got %+v, after_completion %+v", pl, pl.AfterCompletion)
		}
		h.hook.next(t)
		sold := decode[simState](t, h.ok(t, http.MethodPost, "/sim/payment_links/"+pl.ID+"/purchase", url.Values{})).Session
		h.hook.next(t)
		_, page := h.do(t, http.MethodGet, "/pay/"+sold.ID, nil, nil)
		if !strings.Contains(string(page), `<h2 id="pay-title">Thank you</h2>`) || !strings.Contains(string(page), `<p id="confirmation">Thanks!</p>`) {
			t.Errorf("confirmation page lacks the link's message:\n%s", page)
		}
	})

	refusals := []struct {
		name       string
		form       url.Values
		wantStatus int
		want       errorJSON
	}{
		{"unknown price", url.Values{"line_items[0][price]": {"price_nope"}, "line_items[0][quantity]": {"1"}}, 400,
			errorJSON{"invalid_request_error", "resource_missing", "line_items[0][price]", "No such price: 'price_nope'"}},
		{"archived price", url.Values{"line_items[0][price]": {"price_tee_old"}, "line_items[0][quantity]": {"1"}}, 400,
			errorJSON{"invalid_request_error", "", "line_items[0][price]", "The price specified is inactive. This field only accepts active prices."}},
		{"no lines", url.Values{"metadata[a]": {"b"}}, 400,
			errorJSON{"invalid_request_error", "parameter_missing", "line_items", "Missing required param: line_items."}},
		{"a line without a price", url.Values{"line_items[0][quantity]": {"1"}}, 400,
			errorJSON{"invalid_request_error", "parameter_missing", "line_items[0][price]", "Missing required param: line_items[0][price]."}},
		{"zero quantity", url.Values{"line_items[0][price]": {"price_tee"}, "line_items[0][quantity]": {"0"}}, 400,
			errorJSON{"invalid_request_error", "", "line_items[0][quantity]", "This value must be greater than or equal to 1."}},
		{"redirect without url", url.Values{"line_items[0][price]": {"price_tee"}, "after_completion[type]": {"redirect"}}, 400,
			errorJSON{"invalid_request_error", "parameter_missing", "after_completion[redirect][url]", "Missing required param: after_completion[redirect][url]."}},
		{"relative redirect", url.Values{"line_items[0][price]": {"price_tee"}, "after_completion[type]": {"redirect"}, "after_completion[redirect][url]": {"/thanks"}}, 400,
			errorJSON{"invalid_request_error", "", "after_completion[redirect][url]", "Not a valid URL"}},
		{"mixed currencies", url.Values{"line_items[0][price]": {"price_tee"}, "line_items[1][price]": {"price_tea"}}, 400,
			errorJSON{"invalid_request_error", "", "line_items[1]", "All line items must be in one currency: line item 1 is in jpy, the others in usd."}},
		{"too many lines", func() url.Values {
			f := url.Values{}
			for i := range 21 {
				f.Set("line_items["+strconv.Itoa(i)+"][price]", "price_tee")
			}
			return f
		}(), 400, errorJSON{"invalid_request_error", "", "line_items", `invalid line item index in "line_items[20][price]": at most 20 line items`}},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := h.do(t, http.MethodPost, "/v1/payment_links", tt.form, nil)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("got %s %s, want %d", resp.Status, b, tt.wantStatus)
			}
			if diff := cmp.Diff(tt.want, decodeError(t, b)); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
	for _, path := range []string{"/v1/payment_links/plink_nope", "/v1/payment_links/plink_nope/line_items"} {
		if resp, b := h.do(t, http.MethodGet, path, nil, nil); resp.StatusCode != 404 || decodeError(t, b).Code != "resource_missing" {
			t.Errorf("GET %s: got %s %s, want 404", path, resp.Status, b)
		}
	}
	h.noMoreDeliveries(t)
}

// linkSession decodes the session of a completed Payment Link sale from an
// event.
func linkSession(t testing.TB, d delivered) stripe.CheckoutSession {
	t.Helper()
	var cs stripe.CheckoutSession
	if err := json.Unmarshal(d.event.Data.Raw, &cs); err != nil {
		t.Fatalf("decode %s: %v", d.event.Type, err)
	}
	return cs
}

func TestPaymentLinkPage(t *testing.T) {
	h := newHarness(t, options{products: testCatalog(), links: testLinks()})

	want := []stripesim.PaymentLink{{ID: "plink_tee", URL: h.url + "/pl/plink_tee"}, {ID: "plink_mug", URL: h.url + "/pl/plink_mug"}}
	if diff := cmp.Diff(want, h.sim.PaymentLinks()); diff != "" {
		t.Errorf("PaymentLinks (-want +got):\n%s", diff)
	}

	resp, b := h.do(t, http.MethodGet, "/pl/plink_tee", nil, nil)
	page := string(b)
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Fatalf("link page: %s, CSP %q", resp.Status, resp.Header.Get("Content-Security-Policy"))
	}
	for _, want := range []string{
		"Simulated Stripe Checkout — no real payment",
		`<span class="name">T-shirt</span>`, `<span class="qty">Qty 2 × $20.00</span>`, `<span id="total" class="total">$40.00</span>`,
		`<form method="post" action="/pl/plink_tee">`, `<button id="buy" class="button primary" type="submit">`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("link page lacks %s", want)
		}
	}
	if strings.Contains(page, "<script") {
		t.Error("link page has a script")
	}
	if resp, b := h.do(t, http.MethodGet, "/pl/plink_nope", nil, nil); resp.StatusCode != 404 || !strings.Contains(string(b), "Payment link not found") {
		t.Errorf("unknown link page: got %s", resp.Status)
	}
	if resp, _ := h.do(t, http.MethodPost, "/pl/plink_nope", url.Values{}, nil); resp.StatusCode != 404 {
		t.Errorf("buying an unknown link: got %s, want 404", resp.Status)
	}

	t.Run("with a redirect", func(t *testing.T) {
		resp, b := h.do(t, http.MethodPost, "/pl/plink_tee", url.Values{}, nil)
		id, ok := strings.CutPrefix(resp.Header.Get("Location"), "/pay/cs_test_")
		if resp.StatusCode != http.StatusSeeOther || !ok {
			t.Fatalf("buy: got %s to %q, want 303 to a hosted page\n%s", resp.Status, resp.Header.Get("Location"), b)
		}
		s := h.session(t, "cs_test_"+id)
		if s.PaymentLink == nil || s.PaymentLink.ID != "plink_tee" || s.ClientReferenceID != "" || len(s.Metadata) != 0 ||
			s.AmountTotal != 4000 || s.Currency != "usd" || s.Status != "open" || s.URL != h.url+"/pay/"+s.ID ||
			s.SuccessURL != "https://shop.test/thanks?session={CHECKOUT_SESSION_ID}" || s.UIMode != "hosted" {
			t.Errorf("link session: got %+v", s)
		}
		var last mockRequest // the last create stripe-mock saw
		for _, r := range h.mock.requests() {
			if r.Method == http.MethodPost && r.Path == "/v1/checkout/sessions" {
				last = r
			}
		}
		if form, _ := url.ParseQuery(last.Body); form.Get("line_items[0][price]") != "price_tee" ||
			form.Get("line_items[0][quantity]") != "2" || !strings.HasPrefix(last.Auth, "Bearer sk_test_") {
			t.Errorf("stripe-mock saw %+v, want the session's create request", last)
		}
		lines := decode[stripe.LineItemList](t, h.ok(t, http.MethodGet, "/v1/checkout/sessions/"+s.ID+"/line_items", nil))
		if len(lines.Data) != 1 || lines.Data[0].Price.ID != "price_tee" || lines.Data[0].Quantity != 2 || lines.Data[0].Description != "T-shirt" {
			t.Errorf("session line items: got %+v", lines.Data)
		}
		resp, body := h.pay(t, s.ID, "pay", "buyer@example.com", "4242424242424242")
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "https://shop.test/thanks?session="+s.ID {
			t.Fatalf("pay: got %s to %q\n%s", resp.Status, loc, body)
		}
		d := h.hook.next(t)
		cs := linkSession(t, d)
		if d.event.Type != "checkout.session.completed" || cs.PaymentLink == nil || cs.PaymentLink.ID != "plink_tee" || cs.ClientReferenceID != "" {
			t.Errorf("event %s: session %+v", d.event.Type, cs)
		}
		if raw := d.event.Data.Object; raw["payment_link"] != "plink_tee" {
			t.Errorf("event session payment_link: got %v, want plink_tee", raw["payment_link"])
		}
	})

	t.Run("with the simulator's confirmation", func(t *testing.T) {
		resp, _ := h.do(t, http.MethodPost, "/pl/plink_mug", url.Values{}, nil)
		id := strings.TrimPrefix(resp.Header.Get("Location"), "/pay/")
		resp, body := h.pay(t, id, "pay", "buyer@example.com", "4242424242424242")
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/pay/"+id {
			t.Fatalf("pay: got %s to %q\n%s", resp.Status, loc, body)
		}
		_, page := h.do(t, http.MethodGet, "/pay/"+id, nil, nil)
		if !strings.Contains(string(page), `<h2 id="pay-title">Thank you</h2>`) || strings.Contains(string(page), `id="return"`) {
			t.Errorf("confirmation page:\n%s", page)
		}
		if cs := linkSession(t, h.hook.next(t)); cs.PaymentLink == nil || cs.PaymentLink.ID != "plink_mug" || len(cs.Metadata) != 0 {
			t.Errorf("event session: got %+v", cs)
		}
	})

	t.Run("an archived price stays sold through its link", func(t *testing.T) {
		h.ok(t, http.MethodPost, "/sim/prices/price_mug/archive", nil)
		h.hook.next(t) // price.updated
		if resp, b := h.do(t, http.MethodPost, "/pl/plink_mug", url.Values{}, nil); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("buy: got %s\n%s", resp.Status, b)
		}
	})
}

func TestPaymentLinkDeactivated(t *testing.T) {
	h := newHarness(t, options{products: testCatalog(), links: testLinks()})
	pl := decode[stripe.PaymentLink](t, h.ok(t, http.MethodPost, "/v1/payment_links/plink_mug", url.Values{"active": {"false"}, "metadata[channel]": {""}}))
	if pl.Active || len(pl.Metadata) != 0 {
		t.Errorf("deactivated link: got %+v", pl)
	}
	d := h.hook.next(t)
	if want := map[string]any{"active": true, "metadata": map[string]any{"channel": "instagram"}}; d.event.Type != "payment_link.updated" || !cmp.Equal(want, d.event.Data.PreviousAttributes) {
		t.Errorf("event %s previous_attributes %v, want %v", d.event.Type, d.event.Data.PreviousAttributes, want)
	}
	resp, b := h.do(t, http.MethodGet, "/pl/plink_mug", nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(string(b), "This payment link is no longer active.") || strings.Contains(string(b), `id="buy"`) {
		t.Errorf("inactive link page: %s\n%s", resp.Status, b)
	}
	if resp, b := h.do(t, http.MethodPost, "/pl/plink_mug", url.Values{}, nil); resp.StatusCode != http.StatusConflict {
		t.Errorf("buying through an inactive link: got %s\n%s", resp.Status, b)
	}
	if resp, b := h.do(t, http.MethodPost, "/sim/payment_links/plink_mug/purchase", url.Values{}, nil); resp.StatusCode != 400 {
		t.Errorf("purchase through an inactive link: got %s %s, want 400", resp.Status, b)
	}
	h.ok(t, http.MethodPost, "/v1/payment_links/plink_mug", url.Values{"active": {"false"}}) // no change, no event
	if resp, _ := h.do(t, http.MethodPost, "/v1/payment_links/plink_nope", url.Values{"active": {"false"}}, nil); resp.StatusCode != 404 {
		t.Errorf("updating an unknown link: got %s, want 404", resp.Status)
	}
	h.noMoreDeliveries(t)
}

func TestPaymentLinkPurchase(t *testing.T) {
	h := newHarness(t, options{products: testCatalog(), links: testLinks()})

	b := h.ok(t, http.MethodPost, "/sim/payment_links/plink_tee/purchase", url.Values{})
	st := decode[simState](t, b)
	if s := st.Session; s.Status != "complete" || s.PaymentStatus != "paid" || s.PaymentLink == nil || s.PaymentLink.ID != "plink_tee" ||
		s.CustomerDetails == nil || s.CustomerDetails.Email != "customer@example.com" || s.AmountTotal != 4000 || st.Charge == nil {
		t.Errorf("purchase: got session %+v, charge %+v", s, st.Charge)
	}
	if cs := linkSession(t, h.hook.next(t)); cs.ID != st.Session.ID || cs.PaymentLink.ID != "plink_tee" {
		t.Errorf("event session: got %s of %+v", cs.ID, cs.PaymentLink)
	}

	b = h.ok(t, http.MethodPost, "/sim/payment_links/plink_mug/purchase", url.Values{"outcome": {"delayed"}, "email": {"late@example.com"}})
	s := decode[simState](t, b).Session
	if s.Status != "complete" || s.PaymentStatus != "unpaid" || s.CustomerDetails.Email != "late@example.com" {
		t.Errorf("delayed purchase: got %s/%s for %+v", s.Status, s.PaymentStatus, s.CustomerDetails)
	}
	h.hook.next(t) // checkout.session.completed
	h.ok(t, http.MethodPost, "/sim/sessions/"+s.ID+"/async_succeed", url.Values{})
	d := h.hook.next(t)
	if cs := linkSession(t, d); d.event.Type != "checkout.session.async_payment_succeeded" || cs.PaymentLink == nil || cs.PaymentLink.ID != "plink_mug" || cs.PaymentStatus != "paid" {
		t.Errorf("event %s: session %+v", d.event.Type, cs)
	}
	// Each sale has line items of its own.
	a := decode[stripe.LineItemList](t, h.ok(t, http.MethodGet, "/v1/checkout/sessions/"+st.Session.ID+"/line_items", nil))
	l := decode[stripe.LineItemList](t, h.ok(t, http.MethodGet, "/v1/payment_links/plink_tee/line_items", nil))
	if a.Data[0].ID == l.Data[0].ID || a.Data[0].Price.ID != l.Data[0].Price.ID {
		t.Errorf("session line %s of %s, link line %s of %s: want other ids, same price", a.Data[0].ID, a.Data[0].Price.ID, l.Data[0].ID, l.Data[0].Price.ID)
	}

	for _, tc := range []struct {
		path string
		form url.Values
		want int
	}{
		{"/sim/payment_links/plink_nope/purchase", url.Values{}, 404},
		{"/sim/payment_links/plink_tee/purchase", url.Values{"outcome": {"decline"}}, 400},
		{"/sim/payment_links/plink_tee/purchase", url.Values{"email": {"Buyer <b@example.com>"}}, 400},
	} {
		if resp, b := h.do(t, http.MethodPost, tc.path, tc.form, nil); resp.StatusCode != tc.want {
			t.Errorf("POST %s %v: got %s %s, want %d", tc.path, tc.form, resp.Status, b, tc.want)
		}
	}
	h.noMoreDeliveries(t)
}

func TestPaymentLinkWithoutStripeMock(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	h := newHarness(t, options{noWebhook: true, mockURL: dead.URL, products: testCatalog(), links: testLinks()})
	resp, b := h.do(t, http.MethodPost, "/pl/plink_tee", url.Values{}, nil)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(b), "could not reach stripe-mock") {
		t.Errorf("buy: got %s\n%s", resp.Status, b)
	}
	resp, b = h.do(t, http.MethodPost, "/sim/payment_links/plink_tee/purchase", url.Values{}, nil)
	if resp.StatusCode != http.StatusBadGateway || decodeError(t, b).Type != "api_error" {
		t.Errorf("purchase: got %s %s, want 502 api_error", resp.Status, b)
	}
}
