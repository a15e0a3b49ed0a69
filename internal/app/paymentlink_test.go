package app_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shopcheckout/shop/internal/orders"
	"github.com/shopcheckout/shop/internal/stripesim"
	"github.com/shopcheckout/shop/internal/testenv"
)

// dashboardShop is a shop that sells from the simulator's catalogue (a
// print with a stock of 3 and a sticker), with a Payment Link selling a
// print and two stickers.
func dashboardShop(env map[string]string, sim *stripesim.Config) {
	delete(env, "CATALOG_FILE")
	env["CATALOG_SOURCE"], env["ADMIN_PASSWORD"] = "stripe", "dashboard-admin"
	sim.Products = []stripesim.SeedProduct{
		{ID: "prod_print", Name: "Print", Metadata: map[string]string{"stock": "3"}, Prices: []stripesim.SeedPrice{{ID: "price_print", UnitAmount: 2500, Currency: "usd"}}},
		{ID: "prod_sticker", Name: "Sticker", Prices: []stripesim.SeedPrice{{ID: "price_sticker", UnitAmount: 300, Currency: "usd"}}},
	}
	sim.PaymentLinks = []stripesim.SeedPaymentLink{{ID: "plink_prints", LineItems: []stripesim.SeedLinkLine{{Price: "price_print", Quantity: 1}, {Price: "price_sticker", Quantity: 2}}}}
}

// purchase buys through the Payment Link at the simulator and returns the
// session's id.
func (st *saleStack) purchase(t *testing.T, outcome string) string {
	t.Helper()
	res, err := http.PostForm(st.sim+"/sim/payment_links/plink_prints/purchase", url.Values{"outcome": {outcome}, "email": {"fan@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct {
		Session struct {
			ID          string `json:"id"`
			PaymentLink string `json:"payment_link"`
		}
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil || res.StatusCode != http.StatusOK || body.Session.ID == "" {
		t.Fatalf("purchase: %s, %v", res.Status, err)
	}
	if body.Session.PaymentLink != "plink_prints" {
		t.Fatalf("the purchase's session has payment_link %q", body.Session.PaymentLink)
	}
	return body.Session.ID
}

// waitOrder waits until the order of a Payment Link session reads as want.
func (st *saleStack) waitOrder(t *testing.T, session string, want orders.Status) orders.Order {
	t.Helper()
	id := orders.LinkOrderID(session)
	deadline := time.Now().Add(20 * time.Second)
	for {
		o, err := st.apps[0].Orders.Order(t.Context(), id)
		if err == nil && o.Status == want {
			return o
		}
		if time.Now().After(deadline) {
			t.Fatalf("order of %s: %s (%v) after 20s, want %s", session, o.Status, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// simEvent returns the id of the simulator's event of typ about session.
func (st *saleStack) simEvent(t *testing.T, typ, session string) string {
	t.Helper()
	res, err := http.Get(st.sim + "/sim/events")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct {
		Events []struct {
			ID, Type string
			Event    json.RawMessage
		}
	}
	json.NewDecoder(res.Body).Decode(&body)
	for _, e := range body.Events {
		if e.Type == typ && strings.Contains(string(e.Event), session) {
			return e.ID
		}
	}
	t.Fatalf("no %s event about %s", typ, session)
	return ""
}

func testPaymentLinkSales(t *testing.T, st *saleStack) {
	shop := st.shops[0]
	code, home := getPage(t, shop+"/")
	if code != http.StatusOK || !strings.Contains(home, "Print") || !strings.Contains(home, "Sticker") {
		t.Fatalf("home: %d, want the simulator's products:\n%s", code, home)
	}
	// A shop order, next to which the link sale lands.
	bought := buy(t, shop, shopperAddr(1), "price_print", 1)
	if bought.status != http.StatusOK {
		t.Fatalf("checkout: %d %s", bought.status, bought.message)
	}
	if code := st.pay(t, bought.session); code != http.StatusSeeOther {
		t.Fatalf("pay: %d", code)
	}

	// Paid through the link: an order like the shop's own.
	paid := st.purchase(t, "pay")
	o := st.waitOrder(t, paid, orders.StatusPaid)
	if o.Source != orders.SourcePaymentLink || o.FulfilledAt == nil || o.AmountTotal != 3100 || o.Email != "fan@example.com" || len(o.Items) != 2 ||
		o.Items[0].ProductID != "price_print" || o.Items[1].Quantity != 2 {
		t.Errorf("the link's order: %+v", o)
	}
	// Delivered three more times at once: still one order, fulfilled once.
	evt := st.simEvent(t, orders.EventSessionCompleted, paid)
	res, err := http.Post(st.sim+"/sim/events/"+evt+"/duplicate?n=3", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	time.Sleep(300 * time.Millisecond)

	// In the admin's list, beside the shop order.
	req, _ := http.NewRequest(http.MethodGet, shop+"/admin/orders", nil)
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth("admin", "dashboard-admin")
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Orders []struct{ ID, Source, Status string }
	}
	json.NewDecoder(res.Body).Decode(&list)
	res.Body.Close()
	sources := map[string]string{}
	for _, lo := range list.Orders {
		sources[lo.Source] = lo.Status
	}
	if sources["shop"] != "paid" || sources["payment_link"] != "paid" || len(list.Orders) != 2 {
		t.Errorf("admin JSON: %+v; want a paid shop order and a paid payment_link one", list.Orders)
	}

	// A delayed payment goes through processing; the stock left (one
	// print) is held meanwhile and sold when it settles.
	slow := st.purchase(t, "delayed")
	st.waitOrder(t, slow, orders.StatusProcessing)
	if code := st.simPost(t, "/sim/sessions/"+slow+"/async_succeed", nil); code >= 300 {
		t.Fatalf("async_succeed: %d", code)
	}
	st.waitOrder(t, slow, orders.StatusPaid)

	// Missed by the webhook, found by reconciliation: the stock is gone
	// now, so the order needs a person instead of going below zero.
	st.dropHooks.Store(true)
	missed := st.purchase(t, "pay")
	if _, err := st.apps[0].Orders.Order(t.Context(), orders.LinkOrderID(missed)); err == nil {
		t.Fatal("the dropped webhook made an order")
	}
	rep, err := st.apps[0].Reconcile(t.Context(), time.Hour)
	if err != nil || rep.Applied == 0 {
		t.Fatalf("reconcile: %+v, %v", rep, err)
	}
	short := st.waitOrder(t, missed, orders.StatusNeedsReview)
	if short.FulfilledAt != nil {
		t.Error("an oversold link sale was fulfilled")
	}
	st.dropHooks.Store(false)

	levels, _ := st.apps[0].Orders.StockLevels(t.Context())
	for _, l := range levels {
		if l.ProductID == "price_print" && (*l.Stock != 0 || l.Sold != 3 || l.Held != 0) {
			t.Errorf("print stock: %s; want 0 left, 3 sold", describe(l))
		}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.perOrder[o.ID] != 1 || st.perOrder[short.ID] != 0 {
		t.Errorf("fulfilments %v; want the paid link order once, the oversold one never", st.perOrder)
	}
}

// TestPaymentLinkSalesSQLite: Payment Link sales become orders, on SQLite.
func TestPaymentLinkSalesSQLite(t *testing.T) {
	t.Parallel()
	testPaymentLinkSales(t, newSaleStack(t, "sqlite:"+filepath.Join(t.TempDir(), "shop.db"), 1, dashboardShop))
}

// TestPaymentLinkSalesTwoInstancesPostgres: the same with two shops on one
// PostgreSQL, the webhooks dealt out to both.
func TestPaymentLinkSalesTwoInstancesPostgres(t *testing.T) {
	t.Parallel()
	testPaymentLinkSales(t, newSaleStack(t, testenv.PostgresSchema(t, 8), 2, dashboardShop))
}
