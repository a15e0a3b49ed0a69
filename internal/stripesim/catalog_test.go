package stripesim_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stripe/stripe-go/v76"

	"github.com/shopcheckout/shop/internal/stripesim"
)

// testCatalog is a small seeded catalogue. Its Prices list, newest first,
// as price_tee, price_tee_old (archived), price_mug, price_tea (yen) and
// price_cap (of an archived Product).
func testCatalog() []stripesim.SeedProduct {
	archived := false
	return []stripesim.SeedProduct{
		{ID: "prod_tee", Name: "T-shirt", Description: "Soft cotton", Images: []string{"https://shop.test/tee.png"},
			Metadata: map[string]string{"stock": "5", "max_quantity": "3"},
			Prices: []stripesim.SeedPrice{
				{ID: "price_tee", UnitAmount: 2000, Currency: "usd"},
				{ID: "price_tee_old", UnitAmount: 1800, Currency: "usd", Active: &archived},
			}},
		{ID: "prod_mug", Name: "Mug", Prices: []stripesim.SeedPrice{{ID: "price_mug", UnitAmount: 1200, Currency: "USD", Nickname: "Large", Type: "one_time"}}},
		{ID: "prod_tea", Name: "Tea", Prices: []stripesim.SeedPrice{{ID: "price_tea", UnitAmount: 500, Currency: "jpy"}}},
		{ID: "prod_cap", Name: "Cap", Active: &archived, Prices: []stripesim.SeedPrice{{ID: "price_cap", UnitAmount: 1500, Currency: "usd"}}},
	}
}

// ok sends a request and fails the test unless it is answered 200.
func (h *harness) ok(t testing.TB, method, path string, form url.Values) []byte {
	t.Helper()
	resp, b := h.do(t, method, path, form, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: got %s, want 200\n%s", method, path, resp.Status, b)
	}
	return b
}

// deliveries waits for n webhook deliveries and returns them by type.
func (h *harness) deliveries(t testing.TB, n int) []delivered {
	t.Helper()
	var ds []delivered
	for range n {
		ds = append(ds, h.hook.next(t))
	}
	slices.SortFunc(ds, func(a, b delivered) int { return strings.Compare(string(a.event.Type), string(b.event.Type)) })
	return ds
}

// noMoreDeliveries fails the test if a delivery arrives within a moment.
func (h *harness) noMoreDeliveries(t testing.TB) {
	t.Helper()
	select {
	case d := <-h.hook.got:
		t.Errorf("unexpected delivery of %s", d.event.Type)
	case <-time.After(200 * time.Millisecond):
	}
}

func ids[T any](items []T, id func(T) string) []string {
	out := []string{}
	for _, it := range items {
		out = append(out, id(it))
	}
	return out
}

func priceIDs(l stripe.PriceList) []string {
	return ids(l.Data, func(p *stripe.Price) string { return p.ID })
}

// errorJSON is an error answer's error member.
type errorJSON struct {
	Type, Code, Param, Message string
}

func decodeError(t testing.TB, b []byte) errorJSON {
	t.Helper()
	return decode[struct{ Error errorJSON }](t, b).Error
}

func TestSeededCatalog(t *testing.T) {
	h := newHarness(t, options{noWebhook: true, products: testCatalog()})

	prices := decode[stripe.PriceList](t, h.ok(t, http.MethodGet, "/v1/prices?expand[]=data.product", nil))
	if diff := cmp.Diff([]string{"price_tee", "price_tee_old", "price_mug", "price_tea", "price_cap"}, priceIDs(prices)); diff != "" {
		t.Errorf("prices, in seed order (-want +got):\n%s", diff)
	}
	type priceView struct {
		ID, Currency, Nickname, Product, ProductName string
		UnitAmount                                   int64
		Active, ProductActive                        bool
		Type                                         stripe.PriceType
	}
	var got []priceView
	for _, p := range prices.Data {
		got = append(got, priceView{p.ID, string(p.Currency), p.Nickname, p.Product.ID, p.Product.Name, p.UnitAmount, p.Active, p.Product.Active, p.Type})
	}
	want := []priceView{
		{"price_tee", "usd", "", "prod_tee", "T-shirt", 2000, true, true, "one_time"},
		{"price_tee_old", "usd", "", "prod_tee", "T-shirt", 1800, false, true, "one_time"},
		{"price_mug", "usd", "Large", "prod_mug", "Mug", 1200, true, true, "one_time"},
		{"price_tea", "jpy", "", "prod_tea", "Tea", 500, true, true, "one_time"},
		{"price_cap", "usd", "", "prod_cap", "Cap", 1500, true, false, "one_time"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("prices (-want +got):\n%s", diff)
	}
	tee := prices.Data[0].Product
	if tee.Description != "Soft cotton" || tee.Metadata["stock"] != "5" || tee.Metadata["max_quantity"] != "3" ||
		!slices.Equal(tee.Images, []string{"https://shop.test/tee.png"}) {
		t.Errorf("T-shirt product: got %+v", tee)
	}

	products := decode[stripe.ProductList](t, h.ok(t, http.MethodGet, "/v1/products", nil))
	if diff := cmp.Diff([]string{"prod_tee", "prod_mug", "prod_tea", "prod_cap"}, ids(products.Data, func(p *stripe.Product) string { return p.ID })); diff != "" {
		t.Errorf("products (-want +got):\n%s", diff)
	}

	// The objects read as API version 2023-10-16 writes them, not as the
	// newer version stripe-mock describes.
	raw := decode[map[string]any](t, h.ok(t, http.MethodGet, "/v1/products/prod_tee", nil))
	for _, key := range []string{"features", "type", "default_price", "package_dimensions", "updated"} {
		if _, ok := raw[key]; !ok {
			t.Errorf("product lacks %q: %v", key, raw)
		}
	}
	if _, ok := raw["marketing_features"]; ok || raw["type"] != "service" || raw["object"] != "product" {
		t.Errorf("product: got %v, want a 2023-10-16 product of type service", raw)
	}
	rawPrice := decode[map[string]any](t, h.ok(t, http.MethodGet, "/v1/prices/price_tee", nil))
	if rawPrice["product"] != "prod_tee" || rawPrice["unit_amount_decimal"] != "2000" || rawPrice["recurring"] != nil || rawPrice["billing_scheme"] != "per_unit" {
		t.Errorf("price: got %v", rawPrice)
	}
}

func TestSeedRefusesBadCatalogue(t *testing.T) {
	no := false
	tests := []struct {
		name     string
		products []stripesim.SeedProduct
		links    []stripesim.SeedPaymentLink
		want     []string // in the error
	}{
		{"no name", []stripesim.SeedProduct{{ID: "prod_a"}}, nil, []string{`product 1 ("prod_a"): name is required`}},
		{"bad product id", []stripesim.SeedProduct{{ID: "a/b", Name: "A"}}, nil, []string{"id must be"}},
		{"duplicate product", []stripesim.SeedProduct{{ID: "prod_a", Name: "A"}, {ID: "prod_a", Name: "B"}}, nil, []string{`product 2 ("prod_a"): duplicate id`}},
		{"bad image", []stripesim.SeedProduct{{Name: "A", Images: []string{"tee.png"}}}, nil, []string{"images"}},
		{"every problem at once", []stripesim.SeedProduct{{Name: "A", Prices: []stripesim.SeedPrice{
			{ID: "tee", UnitAmount: 1, Currency: "usd"},
			{UnitAmount: -1, Currency: "usd"},
			{UnitAmount: 1, Currency: "dollars"},
			{UnitAmount: 1, Currency: "usd", Type: "recurring"},
		}}}, nil, []string{"price 1", "price_ followed by", "price 2", "must not be negative", "price 3", "three-letter", "price 4", "one_time"}},
		{"duplicate price", []stripesim.SeedProduct{{Name: "A", Prices: []stripesim.SeedPrice{{ID: "price_a", Currency: "usd"}}},
			{Name: "B", Prices: []stripesim.SeedPrice{{ID: "price_a", Currency: "usd"}}}}, nil, []string{"product 2", "duplicate id"}},
		{"link to an unknown price", testCatalog(), []stripesim.SeedPaymentLink{{LineItems: []stripesim.SeedLinkLine{{Price: "price_nope"}}}},
			[]string{"payment link 1", "No such price: 'price_nope'"}},
		{"link to an archived price", testCatalog(), []stripesim.SeedPaymentLink{{LineItems: []stripesim.SeedLinkLine{{Price: "price_tee_old"}}}},
			[]string{"payment link 1", "inactive"}},
		{"link without lines", nil, []stripesim.SeedPaymentLink{{ID: "plink_a"}}, []string{`payment link 1 ("plink_a")`, "1 to 20 line items"}},
		{"bad link id", testCatalog(), []stripesim.SeedPaymentLink{{ID: "link", LineItems: []stripesim.SeedLinkLine{{Price: "price_tee"}}}}, []string{"plink_"}},
		{"bad redirect", testCatalog(), []stripesim.SeedPaymentLink{{RedirectURL: "/thanks", LineItems: []stripesim.SeedLinkLine{{Price: "price_tee"}}}}, []string{"redirect_url"}},
		{"mixed currencies", testCatalog(), []stripesim.SeedPaymentLink{{LineItems: []stripesim.SeedLinkLine{{Price: "price_tee"}, {Price: "price_tea"}}}}, []string{"one currency"}},
		{"archived product is fine", []stripesim.SeedProduct{{Name: "A", Active: &no}}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim, err := stripesim.New(stripesim.Config{MockURL: "http://127.0.0.1:1", PublicURL: "http://127.0.0.1:2", Products: tt.products, PaymentLinks: tt.links})
			if tt.want == nil {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				sim.Close()
				return
			}
			if err == nil {
				sim.Close()
				t.Fatalf("New succeeded, want an error saying %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestPriceList(t *testing.T) {
	h := newHarness(t, options{noWebhook: true, products: testCatalog()})
	tests := []struct {
		query    string
		want     []string
		wantMore bool
	}{
		{"", []string{"price_tee", "price_tee_old", "price_mug", "price_tea", "price_cap"}, false},
		{"active=true", []string{"price_tee", "price_mug", "price_tea", "price_cap"}, false},
		{"active=false", []string{"price_tee_old"}, false},
		{"product=prod_tee", []string{"price_tee", "price_tee_old"}, false},
		{"currency=jpy", []string{"price_tea"}, false},
		{"type=one_time&active=true&currency=usd", []string{"price_tee", "price_mug", "price_cap"}, false},
		{"type=recurring", []string{}, false},
		{"lookup_keys[]=tee", []string{}, false},
		{"limit=2", []string{"price_tee", "price_tee_old"}, true},
		{"limit=2&starting_after=price_tee_old", []string{"price_mug", "price_tea"}, true},
		{"starting_after=price_tea", []string{"price_cap"}, false},
		{"limit=2&ending_before=price_tea", []string{"price_tee_old", "price_mug"}, true},
		{"ending_before=price_tee_old", []string{"price_tee"}, false},
		// A cursor need not match the filter: the page follows it.
		{"active=true&limit=2&starting_after=price_tee", []string{"price_mug", "price_tea"}, true},
		{"active=true&starting_after=price_tee_old", []string{"price_mug", "price_tea", "price_cap"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			b := h.ok(t, http.MethodGet, "/v1/prices?"+tt.query, nil)
			l := decode[stripe.PriceList](t, b)
			if diff := cmp.Diff(tt.want, priceIDs(l)); diff != "" || l.HasMore != tt.wantMore || l.URL != "/v1/prices" {
				t.Errorf("prices (-want +got):\n%s\nhas_more %v url %q, want %v /v1/prices", diff, l.HasMore, l.URL, tt.wantMore)
			}
			for _, p := range l.Data {
				if p.Product == nil || p.Product.Name != "" {
					t.Errorf("%s: product %+v, want its id only without expand[]=data.product", p.ID, p.Product)
				}
			}
		})
	}
	refusals := []struct {
		query      string
		wantStatus int
		wantParam  string
	}{
		{"limit=0", 400, "limit"},
		{"limit=101", 400, "limit"},
		{"limit=x", 400, "limit"},
		{"starting_after=price_nope", 404, "starting_after"},
		{"ending_before=price_nope", 404, "ending_before"},
		{"starting_after=price_tee&ending_before=price_cap", 400, "starting_after"},
		{"expand[]=product", 400, "expand"},
		{"active=maybe", 400, "active"},
	}
	for _, tt := range refusals {
		t.Run(tt.query, func(t *testing.T) {
			resp, b := h.do(t, http.MethodGet, "/v1/prices?"+tt.query, nil, nil)
			if e := decodeError(t, b); resp.StatusCode != tt.wantStatus || e.Param != tt.wantParam || e.Type != "invalid_request_error" {
				t.Errorf("got %s %s, want %d about %s", resp.Status, b, tt.wantStatus, tt.wantParam)
			}
		})
	}
	t.Run("validated by stripe-mock", func(t *testing.T) {
		resp, b := h.do(t, http.MethodGet, "/v1/prices?mock_refuses=1", nil, nil)
		if resp.StatusCode != 400 || string(b) != mockRefusal {
			t.Errorf("got %s %s, want stripe-mock's refusal relayed", resp.Status, b)
		}
		var got []string
		for _, r := range h.mock.requests() {
			got = append(got, r.Method+" "+r.Path)
		}
		if !slices.Contains(got, "GET /v1/prices") {
			t.Errorf("stripe-mock saw %v, want GET /v1/prices", got)
		}
	})
}

func TestProductsAPI(t *testing.T) {
	clk := startClock()
	h := newHarness(t, options{now: clk.Now, products: testCatalog()})

	form := url.Values{"name": {"Hoodie"}, "description": {"Warm"}, "images[0]": {"https://shop.test/hoodie.png"},
		"metadata[stock]": {"7"}}
	resp, b := h.do(t, http.MethodPost, "/v1/products", form, map[string]string{"Idempotency-Key": "hoodie"})
	if resp.StatusCode != 200 {
		t.Fatalf("create: %s %s", resp.Status, b)
	}
	p := decode[stripe.Product](t, b)
	if !strings.HasPrefix(p.ID, "prod_") || p.Name != "Hoodie" || p.Description != "Warm" || !p.Active || p.Metadata["stock"] != "7" ||
		!slices.Equal(p.Images, []string{"https://shop.test/hoodie.png"}) || p.Created != clk.Now().Unix() {
		t.Errorf("created product: got %+v", p)
	}
	if _, again := h.do(t, http.MethodPost, "/v1/products", form, map[string]string{"Idempotency-Key": "hoodie"}); decode[stripe.Product](t, again).ID != p.ID {
		t.Errorf("same idempotency key made another product")
	}
	d := h.hook.next(t)
	if d.event.Type != "product.created" || d.event.Data.Object["id"] != p.ID || d.event.APIVersion != "2023-10-16" {
		t.Errorf("event: got %s about %v, want product.created about %s", d.event.Type, d.event.Data.Object["id"], p.ID)
	}
	h.noMoreDeliveries(t)

	if got := decode[stripe.Product](t, h.ok(t, http.MethodGet, "/v1/products/"+p.ID, nil)); got.Name != "Hoodie" {
		t.Errorf("retrieve: got %+v", got)
	}
	list := decode[stripe.ProductList](t, h.ok(t, http.MethodGet, "/v1/products?limit=2", nil))
	if diff := cmp.Diff([]string{p.ID, "prod_tee"}, ids(list.Data, func(p *stripe.Product) string { return p.ID })); diff != "" || !list.HasMore {
		t.Errorf("newest first (-want +got):\n%s\nhas_more %v", diff, list.HasMore)
	}

	clk.Advance(time.Minute)
	upd := decode[stripe.Product](t, h.ok(t, http.MethodPost, "/v1/products/prod_tee", url.Values{
		"name": {"Tee"}, "metadata[stock]": {"4"}, "metadata[colour]": {"grey"}, "metadata[max_quantity]": {""}, "description": {""},
	}))
	if upd.Name != "Tee" || upd.Description != "" || !cmp.Equal(upd.Metadata, map[string]string{"stock": "4", "colour": "grey"}) ||
		upd.Updated != clk.Now().Unix() || !slices.Equal(upd.Images, []string{"https://shop.test/tee.png"}) {
		t.Errorf("updated product: got %+v", upd)
	}
	d = h.hook.next(t)
	wantPrev := map[string]any{"name": "T-shirt", "description": "Soft cotton", "updated": float64(clk.Now().Add(-time.Minute).Unix()),
		"metadata": map[string]any{"stock": "5", "colour": nil, "max_quantity": "3"}}
	if diff := cmp.Diff(wantPrev, d.event.Data.PreviousAttributes); diff != "" || d.event.Type != "product.updated" {
		t.Errorf("%s previous_attributes (-want +got):\n%s", d.event.Type, diff)
	}
	var evProduct stripe.Product
	if err := json.Unmarshal(d.event.Data.Raw, &evProduct); err != nil || evProduct.Name != "Tee" || evProduct.Metadata["stock"] != "4" {
		t.Errorf("event product: got %+v, %v", evProduct, err)
	}

	t.Run("nothing changed, no event", func(t *testing.T) {
		h.ok(t, http.MethodPost, "/v1/products/prod_tee", url.Values{"name": {"Tee"}, "metadata[stock]": {"4"}})
		h.noMoreDeliveries(t)
	})
	t.Run("images replaced, then cleared; metadata cleared", func(t *testing.T) {
		got := decode[stripe.Product](t, h.ok(t, http.MethodPost, "/v1/products/prod_tee", url.Values{"images[0]": {"https://shop.test/a.png"}, "images[1]": {"https://shop.test/b.png"}}))
		if !slices.Equal(got.Images, []string{"https://shop.test/a.png", "https://shop.test/b.png"}) {
			t.Errorf("images: got %v", got.Images)
		}
		if prev := h.hook.next(t).event.Data.PreviousAttributes; !cmp.Equal(prev["images"], []any{"https://shop.test/tee.png"}) {
			t.Errorf("previous images: got %v", prev)
		}
		got = decode[stripe.Product](t, h.ok(t, http.MethodPost, "/v1/products/prod_tee", url.Values{"images": {""}, "metadata": {""}}))
		if len(got.Images) != 0 || len(got.Metadata) != 0 {
			t.Errorf("cleared: got images %v metadata %v", got.Images, got.Metadata)
		}
		h.hook.next(t)
	})
	t.Run("archive through the API", func(t *testing.T) {
		got := decode[stripe.Product](t, h.ok(t, http.MethodPost, "/v1/products/prod_mug", url.Values{"active": {"false"}}))
		if got.Active {
			t.Error("still active")
		}
		d := h.hook.next(t)
		if d.event.Type != "product.updated" || !cmp.Equal(d.event.Data.PreviousAttributes, map[string]any{"active": true, "updated": float64(clk.Now().Add(-time.Minute).Unix())}) {
			t.Errorf("event %s previous_attributes %v, want active true", d.event.Type, d.event.Data.PreviousAttributes)
		}
		l := decode[stripe.ProductList](t, h.ok(t, http.MethodGet, "/v1/products?active=false", nil))
		if diff := cmp.Diff([]string{"prod_mug", "prod_cap"}, ids(l.Data, func(p *stripe.Product) string { return p.ID })); diff != "" {
			t.Errorf("archived products (-want +got):\n%s", diff)
		}
	})
	t.Run("ids filter", func(t *testing.T) {
		l := decode[stripe.ProductList](t, h.ok(t, http.MethodGet, "/v1/products?ids%5B0%5D=prod_tea&ids%5B1%5D=prod_tee&ids%5B2%5D=prod_nope", nil))
		if diff := cmp.Diff([]string{"prod_tee", "prod_tea"}, ids(l.Data, func(p *stripe.Product) string { return p.ID })); diff != "" {
			t.Errorf("products (-want +got):\n%s", diff)
		}
	})
	t.Run("custom id", func(t *testing.T) {
		got := decode[stripe.Product](t, h.ok(t, http.MethodPost, "/v1/products", url.Values{"id": {"socks"}, "name": {"Socks"}, "active": {"false"}}))
		if got.ID != "socks" || got.Active {
			t.Errorf("got %+v, want id socks, archived", got)
		}
		h.hook.next(t)
	})

	refusals := []struct {
		name, method, path string
		form               url.Values
		wantStatus         int
		want               errorJSON
	}{
		{"existing id", "POST", "/v1/products", url.Values{"id": {"prod_tee"}, "name": {"X"}}, 400,
			errorJSON{"invalid_request_error", "resource_already_exists", "id", "Product already exists."}},
		{"no name", "POST", "/v1/products", url.Values{"description": {"x"}}, 400,
			errorJSON{"invalid_request_error", "parameter_missing", "name", "Missing required param: name."}},
		{"empty name", "POST", "/v1/products/prod_tee", url.Values{"name": {" "}}, 400,
			errorJSON{"invalid_request_error", "", "name", "You passed an empty string for 'name'. A product must have a name."}},
		{"unknown product", "GET", "/v1/products/prod_nope", nil, 404,
			errorJSON{"invalid_request_error", "resource_missing", "id", "No such product: 'prod_nope'"}},
		{"update unknown", "POST", "/v1/products/prod_nope", url.Values{"name": {"X"}}, 404,
			errorJSON{"invalid_request_error", "resource_missing", "id", "No such product: 'prod_nope'"}},
		{"relative image", "POST", "/v1/products", url.Values{"name": {"X"}, "images[0]": {"x.png"}}, 400,
			errorJSON{"invalid_request_error", "", "images", `images: "x.png" is not an absolute http(s) url`}},
		{"nine images", "POST", "/v1/products", func() url.Values {
			f := url.Values{"name": {"X"}}
			for i := range 9 {
				f.Set(fmt.Sprintf("images[%d]", i), "https://shop.test/x.png")
			}
			return f
		}(), 400, errorJSON{"invalid_request_error", "", "images", "images: at most 8 are allowed"}},
		{"51 metadata keys", "POST", "/v1/products", func() url.Values {
			f := url.Values{"name": {"X"}}
			for i := range 51 {
				f.Set(fmt.Sprintf("metadata[k%d]", i), "v")
			}
			return f
		}(), 400, errorJSON{"invalid_request_error", "", "metadata", "metadata: at most 50 keys are allowed"}},
		{"long metadata key", "POST", "/v1/products", url.Values{"name": {"X"}, "metadata[" + strings.Repeat("k", 41) + "]": {"v"}}, 400,
			errorJSON{"invalid_request_error", "", "metadata", "metadata: keys must have 1 to 40 characters, \"" + strings.Repeat("k", 41) + "\" has 41"}},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := h.do(t, tt.method, tt.path, tt.form, nil)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("got %s %s, want %d", resp.Status, b, tt.wantStatus)
			}
			if diff := cmp.Diff(tt.want, decodeError(t, b)); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
	h.noMoreDeliveries(t)
}

func TestPricesAPI(t *testing.T) {
	clk := startClock()
	h := newHarness(t, options{now: clk.Now, products: testCatalog()})

	b := h.ok(t, http.MethodPost, "/v1/prices", url.Values{"product": {"prod_tee"}, "unit_amount": {"2200"}, "currency": {"USD"},
		"nickname": {"XL"}, "metadata[size]": {"xl"}, "expand[]": {"product"}})
	p := decode[stripe.Price](t, b)
	if !strings.HasPrefix(p.ID, "price_") || p.UnitAmount != 2200 || p.Currency != "usd" || !p.Active || p.Nickname != "XL" ||
		p.Metadata["size"] != "xl" || p.Product == nil || p.Product.Name != "T-shirt" || p.Type != "one_time" {
		t.Errorf("created price: got %+v, product %+v", p, p.Product)
	}
	d := h.hook.next(t)
	if d.event.Type != "price.created" || d.event.Data.Object["id"] != p.ID || d.event.Data.Object["product"] != "prod_tee" {
		t.Errorf("event: got %s %v", d.event.Type, d.event.Data.Object)
	}
	if l := decode[stripe.PriceList](t, h.ok(t, http.MethodGet, "/v1/prices?limit=1", nil)); priceIDs(l)[0] != p.ID {
		t.Errorf("newest price: got %v, want %s", priceIDs(l), p.ID)
	}

	t.Run("with product_data", func(t *testing.T) {
		p := decode[stripe.Price](t, h.ok(t, http.MethodPost, "/v1/prices", url.Values{"product_data[name]": {"Sticker"},
			"product_data[metadata][stock]": {"100"}, "unit_amount": {"300"}, "currency": {"eur"}, "active": {"false"}}))
		if p.Active || p.Product == nil || !strings.HasPrefix(p.Product.ID, "prod_") {
			t.Fatalf("got %+v", p)
		}
		ds := h.deliveries(t, 2)
		if ds[0].event.Type != "price.created" || ds[1].event.Type != "product.created" || ds[1].event.Data.Object["name"] != "Sticker" ||
			ds[1].event.Data.Object["metadata"].(map[string]any)["stock"] != "100" {
			t.Errorf("events: got %s, %s %v", ds[0].event.Type, ds[1].event.Type, ds[1].event.Data.Object)
		}
	})
	t.Run("retrieve", func(t *testing.T) {
		got := decode[stripe.Price](t, h.ok(t, http.MethodGet, "/v1/prices/price_mug?expand%5B0%5D=product", nil))
		if got.Product == nil || got.Product.Name != "Mug" || got.UnitAmount != 1200 {
			t.Errorf("got %+v", got)
		}
		got = decode[stripe.Price](t, h.ok(t, http.MethodGet, "/v1/prices/price_mug", nil))
		if got.Product == nil || got.Product.ID != "prod_mug" || got.Product.Name != "" {
			t.Errorf("unexpanded: got product %+v, want the id only", got.Product)
		}
	})
	t.Run("archive and restore through the API", func(t *testing.T) {
		got := decode[stripe.Price](t, h.ok(t, http.MethodPost, "/v1/prices/price_mug", url.Values{"active": {"false"}, "metadata[note]": {"old"}}))
		if got.Active || got.Metadata["note"] != "old" {
			t.Errorf("got %+v", got)
		}
		d := h.hook.next(t)
		if want := map[string]any{"active": true, "metadata": map[string]any{"note": nil}}; d.event.Type != "price.updated" || !cmp.Equal(want, d.event.Data.PreviousAttributes) {
			t.Errorf("event %s previous_attributes %v, want %v", d.event.Type, d.event.Data.PreviousAttributes, want)
		}
		h.ok(t, http.MethodPost, "/v1/prices/price_mug", url.Values{"active": {"true"}, "nickname": {""}})
		d = h.hook.next(t)
		if want := map[string]any{"active": false, "nickname": "Large"}; !cmp.Equal(want, d.event.Data.PreviousAttributes) {
			t.Errorf("restore previous_attributes: got %v, want %v", d.event.Data.PreviousAttributes, want)
		}
	})

	refusals := []struct {
		name, method, path string
		form               url.Values
		wantStatus         int
		want               errorJSON
	}{
		{"unknown product", "POST", "/v1/prices", url.Values{"product": {"prod_nope"}, "unit_amount": {"1"}, "currency": {"usd"}}, 400,
			errorJSON{"invalid_request_error", "resource_missing", "product", "No such product: 'prod_nope'"}},
		{"no product", "POST", "/v1/prices", url.Values{"unit_amount": {"1"}, "currency": {"usd"}}, 400,
			errorJSON{"invalid_request_error", "parameter_missing", "product", "Missing required param: product."}},
		{"no amount", "POST", "/v1/prices", url.Values{"product": {"prod_tee"}, "currency": {"usd"}}, 400,
			errorJSON{"invalid_request_error", "parameter_missing", "unit_amount", "Missing required param: unit_amount."}},
		{"recurring", "POST", "/v1/prices", url.Values{"product": {"prod_tee"}, "unit_amount": {"1"}, "currency": {"usd"}, "recurring[interval]": {"month"}}, 400,
			errorJSON{"invalid_request_error", "", "recurring", "stripe-sim sells one-time, per-unit prices with a unit_amount only: recurring is not supported."}},
		{"tiered", "POST", "/v1/prices", url.Values{"product": {"prod_tee"}, "currency": {"usd"}, "billing_scheme": {"tiered"}}, 400,
			errorJSON{"invalid_request_error", "", "billing_scheme", "stripe-sim sells one-time, per-unit prices with a unit_amount only: billing_scheme is not supported."}},
		{"negative amount", "POST", "/v1/prices", url.Values{"product": {"prod_tee"}, "unit_amount": {"-1"}, "currency": {"usd"}}, 400,
			errorJSON{"invalid_request_error", "", "unit_amount", "Invalid non-negative integer"}},
		{"bad currency", "POST", "/v1/prices", url.Values{"product": {"prod_tee"}, "unit_amount": {"1"}, "currency": {"dollars"}}, 400,
			errorJSON{"invalid_request_error", "", "currency", "Invalid currency: dollars."}},
		{"unknown price", "GET", "/v1/prices/price_nope", nil, 404,
			errorJSON{"invalid_request_error", "resource_missing", "id", "No such price: 'price_nope'"}},
		{"update unknown", "POST", "/v1/prices/price_nope", url.Values{"active": {"false"}}, 404,
			errorJSON{"invalid_request_error", "resource_missing", "id", "No such price: 'price_nope'"}},
		{"bad expansion", "GET", "/v1/prices/price_tee?expand[]=data.product", nil, 400,
			errorJSON{"invalid_request_error", "", "expand", "This property cannot be expanded (data.product)."}},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := h.do(t, tt.method, tt.path, tt.form, nil)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("got %s %s, want %d", resp.Status, b, tt.wantStatus)
			}
			if diff := cmp.Diff(tt.want, decodeError(t, b)); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("stripe-mock refuses", func(t *testing.T) {
		resp, b := h.do(t, http.MethodPost, "/v1/prices/price_tee", url.Values{"mock_refuses": {"1"}}, nil)
		if resp.StatusCode != 400 || string(b) != mockRefusal {
			t.Errorf("got %s %s, want stripe-mock's refusal relayed", resp.Status, b)
		}
	})
	h.noMoreDeliveries(t)
}

func TestArchiveControls(t *testing.T) {
	clk := startClock()
	h := newHarness(t, options{now: clk.Now, products: testCatalog()})
	b := h.ok(t, http.MethodPost, "/sim/prices/price_mug/archive", nil)
	if p := decode[struct{ Price stripe.Price }](t, b).Price; p.ID != "price_mug" || p.Active {
		t.Errorf("archived price: got %+v", p)
	}
	if d := h.hook.next(t); d.event.Type != "price.updated" || !cmp.Equal(d.event.Data.PreviousAttributes, map[string]any{"active": true}) {
		t.Errorf("event %s previous_attributes %v", d.event.Type, d.event.Data.PreviousAttributes)
	}
	b = h.ok(t, http.MethodPost, "/sim/products/prod_tee/archive", nil)
	if p := decode[struct{ Product stripe.Product }](t, b).Product; p.ID != "prod_tee" || p.Active {
		t.Errorf("archived product: got %+v", p)
	}
	if d := h.hook.next(t); d.event.Type != "product.updated" || !cmp.Equal(d.event.Data.PreviousAttributes, map[string]any{"active": true}) {
		t.Errorf("event %s previous_attributes %v", d.event.Type, d.event.Data.PreviousAttributes)
	}
	// Archiving again changes nothing and sends nothing.
	h.ok(t, http.MethodPost, "/sim/prices/price_mug/archive", nil)
	h.ok(t, http.MethodPost, "/sim/products/prod_tee/archive", nil)
	h.noMoreDeliveries(t)
	for _, path := range []string{"/sim/prices/price_nope/archive", "/sim/products/prod_nope/archive"} {
		if resp, b := h.do(t, http.MethodPost, path, nil, nil); resp.StatusCode != 404 {
			t.Errorf("POST %s: got %s %s, want 404", path, resp.Status, b)
		}
	}
	// What was archived can no longer be sold.
	for _, price := range []string{"price_mug", "price_tee"} {
		if resp, b := h.do(t, http.MethodPost, "/v1/checkout/sessions", sessionForm(item{price: price, qty: 1}), nil); resp.StatusCode != 400 {
			t.Errorf("session selling %s: got %s %s, want 400", price, resp.Status, b)
		}
	}
}

func TestCatalogFaults(t *testing.T) {
	h := newHarness(t, options{noWebhook: true, products: testCatalog()})
	fault := func(t testing.TB, mode string) {
		t.Helper()
		b := h.ok(t, http.MethodPost, "/sim/faults", url.Values{"catalog": {mode}})
		if got := decode[struct{ Faults map[string]string }](t, b).Faults["catalog"]; got != mode {
			t.Fatalf("fault: got %q, want %q", got, mode)
		}
	}
	catalogue := []struct{ method, path string }{
		{"GET", "/v1/prices?active=true"}, {"GET", "/v1/prices/price_tee"}, {"POST", "/v1/prices/price_tee"},
		{"POST", "/v1/prices"}, {"GET", "/v1/products"}, {"GET", "/v1/products/prod_tee"}, {"POST", "/v1/products"},
		{"POST", "/v1/products/prod_tee"},
	}

	fault(t, "down")
	before := len(h.mock.requests())
	for _, c := range catalogue {
		resp, b := h.do(t, c.method, c.path, url.Values{}, nil)
		if e := decodeError(t, b); resp.StatusCode != 500 || e.Type != "api_error" {
			t.Errorf("%s %s while down: got %s %s, want 500 api_error", c.method, c.path, resp.Status, b)
		}
	}
	if after := len(h.mock.requests()); after != before {
		t.Errorf("stripe-mock saw %d requests while the catalogue was down, want none", after-before)
	}
	// The rest of the API is up.
	if resp, b := h.do(t, http.MethodPost, "/v1/checkout/sessions", sessionForm(tshirt()), nil); resp.StatusCode != 200 {
		t.Errorf("checkout while the catalogue is down: got %s %s", resp.Status, b)
	}
	_, b := h.do(t, http.MethodGet, "/sim/faults", nil, nil)
	if got := decode[struct{ Faults map[string]string }](t, b).Faults["catalog"]; got != "down" {
		t.Errorf("GET /sim/faults: got %q, want down", got)
	}

	fault(t, "unreachable")
	for _, c := range catalogue {
		req, err := http.NewRequest(c.method, h.url+c.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+testKey)
		resp, err := h.client.Do(req)
		if err == nil {
			resp.Body.Close()
			t.Errorf("%s %s while unreachable: got %s, want no answer", c.method, c.path, resp.Status)
		}
	}

	fault(t, "ok")
	if l := decode[stripe.PriceList](t, h.ok(t, http.MethodGet, "/v1/prices?active=true", nil)); len(l.Data) != 4 {
		t.Errorf("after ok: got %d prices, want 4", len(l.Data))
	}
	if resp, b := h.do(t, http.MethodPost, "/sim/faults", url.Values{"catalog": {"slow"}}, nil); resp.StatusCode != 400 || decodeError(t, b).Param != "catalog" {
		t.Errorf("unknown mode: got %s %s, want 400", resp.Status, b)
	}
}

func TestSessionLinesFromCatalog(t *testing.T) {
	h := newHarness(t, options{noWebhook: true, products: testCatalog()})
	form := sessionForm(item{price: "price_tee", qty: 2})
	form.Set("line_items[1][price_data][product]", "prod_mug")
	form.Set("line_items[1][price_data][currency]", "usd")
	form.Set("line_items[1][price_data][unit_amount]", "900")
	form.Set("line_items[1][quantity]", "1")
	s := h.create(t, form)
	if s.AmountTotal != 4900 || s.Currency != "usd" {
		t.Errorf("session: got %d %s, want 4900 usd", s.AmountTotal, s.Currency)
	}
	l := decode[stripe.LineItemList](t, h.ok(t, http.MethodGet, "/v1/checkout/sessions/"+s.ID+"/line_items", nil))
	type lineView struct {
		Description, Currency, Price, Product string
		Quantity, UnitAmount, Subtotal, Total int64
	}
	var got []lineView
	for _, li := range l.Data {
		got = append(got, lineView{li.Description, string(li.Currency), li.Price.ID, li.Price.Product.ID, li.Quantity, li.Price.UnitAmount, li.AmountSubtotal, li.AmountTotal})
	}
	want := []lineView{{"T-shirt", "usd", "price_tee", "prod_tee", 2, 2000, 4000, 4000}, {"Mug", "usd", got[1].Price, "prod_mug", 1, 900, 900, 900}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("line items (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(got[1].Price, "price_") || got[1].Price == "price_mug" {
		t.Errorf("price_data line has price %q, want a fresh one", got[1].Price)
	}
	_, page := h.do(t, http.MethodGet, "/pay/"+s.ID, nil, nil)
	for _, want := range []string{`<span class="name">T-shirt</span> <span class="desc">Soft cotton</span> <span class="qty">Qty 2 × $20.00</span>`, "$49.00"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("hosted page lacks %s", want)
		}
	}

	refusals := []struct {
		name  string
		items []item
		edit  func(url.Values)
		want  errorJSON
	}{
		{"unknown price", []item{tshirt(), {price: "price_nope", qty: 1}}, nil,
			errorJSON{"invalid_request_error", "resource_missing", "line_items[1][price]", "No such price: 'price_nope'"}},
		{"archived price", []item{{price: "price_tee_old", qty: 1}}, nil,
			errorJSON{"invalid_request_error", "", "line_items[0][price]", "The price specified is inactive. This field only accepts active prices."}},
		{"price of an archived product", []item{{price: "price_cap", qty: 1}}, nil,
			errorJSON{"invalid_request_error", "", "line_items[0][price]", "The price specified belongs to an inactive product. This field only accepts prices of active products."}},
		{"mixed currencies", []item{{price: "price_tee", qty: 1}, {price: "price_tea", qty: 1}}, nil,
			errorJSON{"invalid_request_error", "", "line_items[1]", "All line items must be in one currency: line item 1 is in jpy, the others in usd."}},
		{"unknown product in price_data", []item{tshirt()}, func(f url.Values) { f.Set("line_items[0][price_data][product]", "prod_nope") },
			errorJSON{"invalid_request_error", "resource_missing", "line_items[0][price_data][product]", "No such product: 'prod_nope'"}},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			form := sessionForm(tt.items...)
			if tt.edit != nil {
				tt.edit(form)
			}
			resp, b := h.do(t, http.MethodPost, "/v1/checkout/sessions", form, nil)
			if resp.StatusCode != 400 {
				t.Fatalf("got %s %s, want 400", resp.Status, b)
			}
			if diff := cmp.Diff(tt.want, decodeError(t, b)); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLineItemPages(t *testing.T) {
	h := newHarness(t, options{noWebhook: true, products: testCatalog()})
	var items []item
	for range 12 {
		items = append(items, tshirt())
	}
	s := h.create(t, sessionForm(items...))
	path := "/v1/checkout/sessions/" + s.ID + "/line_items"
	all := decode[stripe.LineItemList](t, h.ok(t, http.MethodGet, path+"?limit=100", nil))
	if len(all.Data) != 12 || all.HasMore || all.URL != path {
		t.Fatalf("limit=100: got %d lines, has_more %v, url %q", len(all.Data), all.HasMore, all.URL)
	}
	lineIDs := ids(all.Data, func(li *stripe.LineItem) string { return li.ID })
	tests := []struct {
		query    string
		want     []string
		wantMore bool
	}{
		{"", lineIDs[:10], true},
		{"limit=5&starting_after=" + lineIDs[4], lineIDs[5:10], true},
		{"starting_after=" + lineIDs[9], lineIDs[10:], false},
		{"limit=3&ending_before=" + lineIDs[5], lineIDs[2:5], true},
	}
	for _, tt := range tests {
		l := decode[stripe.LineItemList](t, h.ok(t, http.MethodGet, path+"?"+tt.query, nil))
		if diff := cmp.Diff(tt.want, ids(l.Data, func(li *stripe.LineItem) string { return li.ID })); diff != "" || l.HasMore != tt.wantMore {
			t.Errorf("%q (-want +got):\n%s\nhas_more %v, want %v", tt.query, diff, l.HasMore, tt.wantMore)
		}
	}
	for _, q := range []string{"limit=0", "starting_after=li_nope"} {
		if resp, b := h.do(t, http.MethodGet, path+"?"+q, nil, nil); resp.StatusCode/100 != 4 {
			t.Errorf("%q: got %s %s, want a refusal", q, resp.Status, b)
		}
	}
	// Expanded, line_items is the first page, as Stripe's expanded lists are.
	got := decode[stripe.CheckoutSession](t, h.ok(t, http.MethodGet, "/v1/checkout/sessions/"+s.ID+"?expand[]=line_items", nil))
	if got.LineItems == nil || len(got.LineItems.Data) != 10 || !got.LineItems.HasMore {
		t.Errorf("expanded line_items: got %+v, want 10 with has_more", got.LineItems)
	}
}
