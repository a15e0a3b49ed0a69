package catalog_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shopcheckout/shop/internal/catalog"
	"github.com/shopcheckout/shop/internal/stripeapi"
)

// fakePrices answers GET /v1/prices a page at a time, as Stripe does.
type fakePrices struct {
	mu       sync.Mutex
	prices   []map[string]any
	pageSize int
	queries  []string
	fail     bool
}

func (f *fakePrices) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, r.URL.RawQuery)
	w.Header().Set("Content-Type", "application/json")
	if f.fail || r.URL.Path != "/v1/prices" {
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprint(w, `{"error":{"type":"api_error","message":"down"}}`)
		return
	}
	start := 0
	if after := r.URL.Query().Get("starting_after"); after != "" {
		for i, p := range f.prices {
			if p["id"] == after {
				start = i + 1
			}
		}
	}
	end := min(len(f.prices), start+f.pageSize)
	json.NewEncoder(w).Encode(map[string]any{"object": "list", "url": "/v1/prices", "has_more": end < len(f.prices), "data": f.prices[start:end]})
}

func price(id string, amount int64, product map[string]any, extra ...func(map[string]any)) map[string]any {
	p := map[string]any{"id": id, "object": "price", "active": true, "type": "one_time", "billing_scheme": "per_unit",
		"currency": "eur", "unit_amount": amount, "product": product}
	for _, e := range extra {
		e(p)
	}
	return p
}

func product(id, name string, active bool, metadata map[string]string, images ...string) map[string]any {
	if images == nil {
		images = []string{}
	}
	return map[string]any{"id": id, "object": "product", "name": name, "description": name + " described", "active": active,
		"metadata": metadata, "images": images}
}

func TestFromStripe(t *testing.T) {
	f := &fakePrices{pageSize: 2}
	print := product("prod_Print", "Print", true, map[string]string{"stock": "25", "max_quantity": "3"}, "ftp://files.example/p.png", "https://files.stripe.com/p.png")
	f.prices = []map[string]any{
		price("price_PrintA4", 4000, print, func(p map[string]any) { p["nickname"] = "A4" }),
		price("price_Mug", 1500, product("prod_Mug", "Mug", true, nil)),
		price("price_Old", 100, product("prod_Old", "Old", false, nil)),
		price("price_Tip", 0, product("prod_Tip", "Tip", true, nil), func(p map[string]any) { p["custom_unit_amount"] = map[string]any{"minimum": 100} }),
		price("price_Bad", 100, product("prod_Bad", "Bad", true, map[string]string{"stock": "lots"})),
		price("price_Tier", 100, product("prod_Tier", "Tier", true, nil), func(p map[string]any) { p["billing_scheme"] = "tiered" }),
		price("price_Huge", 100_000_000, product("prod_Huge", "Huge", true, nil)),
	}
	srv := httptest.NewServer(f)
	defer srv.Close()
	sc := stripeapi.New(stripeapi.Options{Key: "sk_test_catalog", APIBase: srv.URL, Timeout: 5 * time.Second})

	c, skipped, err := catalog.FromStripe(t.Context(), sc.Prices, 10)
	if err != nil {
		t.Fatal(err)
	}
	got := c.Products()
	stock := int64(25)
	want := []catalog.Product{
		{ID: "price_PrintA4", Name: "Print (A4)", Description: "Print described", UnitAmount: 4000, Currency: "eur", PriceID: "price_PrintA4",
			MaxQuantity: 3, Image: "https://files.stripe.com/p.png", Stock: &stock},
		{ID: "price_Mug", Name: "Mug", Description: "Mug described", UnitAmount: 1500, Currency: "eur", PriceID: "price_Mug", MaxQuantity: 10},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("products (-want +got):\n%s", diff)
	}
	var reasons []string
	for _, s := range skipped {
		reasons = append(reasons, s.PriceID+": "+s.Reason)
	}
	wantSkipped := []string{"price_Old: its product is archived", "price_Tip: the shopper chooses the amount",
		`price_Bad: metadata.stock "lots" is not a whole number`, "price_Tier: tiered pricing"}
	for _, w := range wantSkipped {
		if !strings.Contains(strings.Join(reasons, "\n"), w) {
			t.Errorf("skipped %q missing from %v", w, reasons)
		}
	}
	if len(skipped) != 5 {
		t.Errorf("%d skipped, want 5 (the huge amount too): %v", len(skipped), reasons)
	}
	if len(f.queries) != 4 {
		t.Errorf("%d pages read, want 4 of 2 prices", len(f.queries))
	}
	for _, q := range f.queries {
		for _, part := range []string{"active=true", "type=one_time", "expand[0]=data.product", "limit=100"} {
			if !strings.Contains(q, part) {
				t.Errorf("query %q lacks %s", q, part)
			}
		}
	}
	if p, ok := c.ForPrice("price_Mug"); !ok || p.ID != "price_Mug" {
		t.Errorf("ForPrice(price_Mug) = %v, %v", p, ok)
	}
	if _, ok := c.ForPrice("price_Old"); ok {
		t.Error("ForPrice found an archived product's price")
	}

	// The stored form reads back as the same catalogue.
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := catalog.Decode(strings.NewReader(string(b)), 10)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c.Products(), back.Products()); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestFromStripeNothingToSell(t *testing.T) {
	f := &fakePrices{pageSize: 10, prices: []map[string]any{price("price_Old", 100, product("prod_Old", "Old", false, nil))}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	sc := stripeapi.New(stripeapi.Options{Key: "sk_test_catalog", APIBase: srv.URL, Timeout: 5 * time.Second})
	if _, _, err := catalog.FromStripe(t.Context(), sc.Prices, 10); err == nil || !strings.Contains(err.Error(), "no active one-time prices") {
		t.Errorf("an account with nothing to sell: %v", err)
	}
	f.fail = true
	if _, _, err := catalog.FromStripe(t.Context(), sc.Prices, 10); err == nil {
		t.Error("Stripe down: no error")
	}
}

func TestLive(t *testing.T) {
	c := catalog.Default(10)
	l := &catalog.Live{}
	if l.Current() != nil || l.Problem() == "" {
		t.Errorf("an empty Live: %v, %q; want none, with a problem", l.Current(), l.Problem())
	}
	l.Fail("stripe is down")
	if l.Current() != nil || l.Problem() != "stripe is down" {
		t.Errorf("after Fail: %v, %q", l.Current(), l.Problem())
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	l.Set(c, at, "")
	l.Fail("down again")
	if l.Current() != c || l.Problem() != "down again" || !l.ReadAt().Equal(at) {
		t.Errorf("a failed refresh: %v, %q, %v; want the old catalogue kept, with the problem", l.Current(), l.Problem(), l.ReadAt())
	}
	if f := catalog.Fixed(c); f.Current() != c || f.Problem() != "" {
		t.Errorf("Fixed: %v, %q", f.Current(), f.Problem())
	}
}
