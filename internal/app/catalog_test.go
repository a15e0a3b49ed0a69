package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/shopcheckout/shop/internal/app"
	"github.com/shopcheckout/shop/internal/config"
	"github.com/shopcheckout/shop/internal/orders"
	"github.com/shopcheckout/shop/internal/testenv"
)

const catalogSecret = "whsec_catalog_test"

// stripeCatalog is a Stripe that lists prices (a page of one at a time, to
// exercise paging), creates Checkout Sessions and records their forms.
type stripeCatalog struct {
	mu       sync.Mutex
	archived map[string]bool // product ids
	down     bool
	lists    int
	forms    []url.Values
}

func (f *stripeCatalog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if f.down {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"error":{"type":"api_error","message":"unavailable"}}`)
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/prices":
		f.lists++
		all := []map[string]any{
			{"id": "price_Print", "object": "price", "active": true, "type": "one_time", "billing_scheme": "per_unit", "currency": "eur", "unit_amount": 4000,
				"product": map[string]any{"id": "prod_Print", "object": "product", "name": "Print", "active": !f.archived["prod_Print"], "metadata": map[string]string{"stock": "3"}}},
			{"id": "price_Mug", "object": "price", "active": true, "type": "one_time", "billing_scheme": "per_unit", "currency": "eur", "unit_amount": 1500,
				"product": map[string]any{"id": "prod_Mug", "object": "product", "name": "Mug", "active": !f.archived["prod_Mug"]}},
		}
		i := 0
		if r.URL.Query().Get("starting_after") == "price_Print" {
			i = 1
		}
		json.NewEncoder(w).Encode(map[string]any{"object": "list", "url": "/v1/prices", "has_more": i == 0, "data": all[i : i+1]})
	case r.Method == http.MethodPost && r.URL.Path == "/v1/checkout/sessions":
		r.ParseForm()
		f.forms = append(f.forms, r.PostForm)
		id := fmt.Sprintf("cs_test_catalog%d", len(f.forms))
		json.NewEncoder(w).Encode(map[string]any{"id": id, "object": "checkout.session", "url": "https://checkout.stripe.com/c/pay/" + id})
	default:
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"error":{"type":"invalid_request_error","message":"no such route"}}`)
	}
}

func (f *stripeCatalog) set(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}

// catalogShop starts a shop selling from Stripe's catalogue on db, serving
// (so its jobs run) until the test ends.
func catalogShop(t *testing.T, stripe *httptest.Server, db string) (*app.App, string, *testenv.SyncBuffer, func()) {
	t.Helper()
	env := map[string]string{
		"STRIPE_SECRET_KEY": "sk_test_catalog", "STRIPE_PUBLISHABLE_KEY": "pk_test_catalog", "STRIPE_WEBHOOK_SECRET": catalogSecret,
		"STRIPE_API_BASE": stripe.URL, "DATABASE_URL": "sqlite:" + db, "CATALOG_SOURCE": "stripe",
		"RATE_LIMIT_PER_MINUTE": "0", "RATE_LIMIT_GLOBAL_PER_SECOND": "0",
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	logs := &testenv.SyncBuffer{}
	a, err := app.New(t.Context(), cfg, slog.New(slog.NewTextHandler(logs, nil)), app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.ServeListener(ctx, ln, io.Discard) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
			a.Close()
		})
	}
	t.Cleanup(stop)
	return a, "http://" + ln.Addr().String(), logs, stop
}

func getPage(t *testing.T, u string) (int, string) {
	t.Helper()
	res, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestCatalogFromStripe: the shop sells Stripe's prices, checks out with the
// Price, takes the stock Stripe's metadata gives, and follows the Dashboard
// when a product is archived.
func TestCatalogFromStripe(t *testing.T) {
	t.Parallel()
	fake := &stripeCatalog{archived: map[string]bool{}}
	stripe := httptest.NewServer(fake)
	defer stripe.Close()
	a, shop, _, _ := catalogShop(t, stripe, filepath.Join(t.TempDir(), "shop.db"))

	code, body := getPage(t, shop+"/")
	if code != http.StatusOK || !strings.Contains(body, "Print") || !strings.Contains(body, "Mug") || !strings.Contains(body, "€40.00") {
		t.Fatalf("home: %d, want both products of both pages of prices:\n%s", code, body)
	}
	res, err := http.Post(shop+"/create-checkout-session", "application/json", strings.NewReader(`{"productId":"price_Print","quantity":2}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("checkout: %s", res.Status)
	}
	fake.set(func() {
		form := fake.forms[0]
		if form.Get("line_items[0][price]") != "price_Print" || form.Get("line_items[0][price_data][unit_amount]") != "" {
			t.Errorf("the session names %v; want the Price and no price_data", form)
		}
	})
	page, err := a.Orders.ListOrders(t.Context(), orders.ListFilter{})
	if err != nil || len(page.Orders) != 1 || page.Orders[0].AmountTotal != 8000 || page.Orders[0].Currency != "eur" {
		t.Fatalf("orders %+v (%v), want one of 80.00 EUR as Stripe lists the price", page.Orders, err)
	}
	levels, _ := a.Orders.StockLevels(t.Context())
	if len(levels) != 1 || levels[0].ProductID != "price_Print" || *levels[0].Stock != 1 || levels[0].Held != 2 {
		t.Errorf("stock %+v, want the print's 3 from metadata, 2 held", levels)
	}

	// Archived in the Dashboard: Stripe sends product.updated, and the
	// product leaves the page.
	fake.set(func() { fake.archived["prod_Mug"] = true })
	payload := []byte(`{"id":"evt_prod_upd","object":"event","api_version":"2023-10-16","created":1800000000,"type":"product.updated",` +
		`"data":{"object":{"id":"prod_Mug","object":"product","active":false}}}`)
	req, _ := http.NewRequest(http.MethodPost, shop+"/webhook", strings.NewReader(string(payload)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: catalogSecret}).Header)
	wres, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	wres.Body.Close()
	if wres.StatusCode != http.StatusOK {
		t.Fatalf("webhook: %s", wres.Status)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, body = getPage(t, shop+"/")
		if !strings.Contains(body, "Mug") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the archived product is still on the home page 10s after its webhook")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(body, "Print") {
		t.Error("the print left the page with the mug")
	}
	res, err = http.Post(shop+"/create-checkout-session", "application/json", strings.NewReader(`{"productId":"price_Mug","quantity":1}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Errorf("checkout of an archived product: %s, want 400", res.Status)
	}
	// The open order keeps what it recorded.
	if o, err := a.Orders.Order(t.Context(), page.Orders[0].ID); err != nil || o.Items[0].Name != "Print" || o.AmountTotal != 8000 {
		t.Errorf("the open order: %+v, %v", o, err)
	}
}

// TestCatalogStripeDownAtStart: a shop that cannot read Stripe at start-up
// says why on its home page, or sells from the catalogue it last stored, and
// opens by itself once Stripe answers.
func TestCatalogStripeDownAtStart(t *testing.T) {
	t.Parallel()
	fake := &stripeCatalog{archived: map[string]bool{}, down: true}
	stripe := httptest.NewServer(fake)
	defer stripe.Close()
	db := filepath.Join(t.TempDir(), "shop.db")

	a, shop, logs, stop := catalogShop(t, stripe, db)
	code, body := getPage(t, shop+"/")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "could not be read") || strings.Contains(body, "Print") {
		t.Errorf("home with no catalogue: %d, want 503 saying why:\n%s", code, body)
	}
	if !strings.Contains(logs.String(), "no catalogue is stored") {
		t.Errorf("the log does not say the shop is closed:\n%s", logs.String())
	}
	// Stripe comes back: the next read opens the shop.
	fake.set(func() { fake.down = false })
	if err := a.RefreshCatalog(t.Context()); err != nil {
		t.Fatal(err)
	}
	if code, body := getPage(t, shop+"/"); code != http.StatusOK || !strings.Contains(body, "Print") {
		t.Errorf("home after Stripe came back: %d:\n%s", code, body)
	}
	stop()

	// A later start while Stripe is down sells what was stored.
	fake.set(func() { fake.down = true })
	_, shop2, logs2, _ := catalogShop(t, stripe, db)
	if code, body := getPage(t, shop2+"/"); code != http.StatusOK || !strings.Contains(body, "Print") || !strings.Contains(body, "Mug") {
		t.Errorf("home from the stored catalogue: %d:\n%s", code, body)
	}
	if !strings.Contains(logs2.String(), "selling from the last catalogue stored") {
		t.Errorf("the log does not say the catalogue may be stale:\n%s", logs2.String())
	}
}
