package web

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shopcheckout/shop/internal/orders"
	"github.com/shopcheckout/shop/internal/storetest"
)

func TestRoutes(t *testing.T) {
	tests := []struct {
		name, method, target string
		wantStatus           int
		wantType             string
		wantBody             []string
	}{
		{"home", "GET", "/", 200, "text/html", []string{
			`<form method="post" action="/create-checkout-session"`, "$20.00", "€12.50", `name="quantity"`, `max="10"`, `max="3"`,
			`src="/static/main.js"`, `src="https://js.stripe.com/v3/"`, "Purchase", "Comfortable cotton T-shirt",
		}},
		{"config", "GET", "/config", 200, "application/json", []string{`{"publicKey":"` + testPublishableKey + `","checkoutUi":"hosted"}`}},
		{"config slash", "GET", "/config/", 200, "application/json", []string{"publicKey"}},
		{"cancelled", "GET", "/cancelled", 200, "text/html", []string{"Nothing was charged", `href="/"`}},
		{"cancelled slash", "GET", "/cancelled/", 200, "text/html", []string{"Nothing was charged"}},
		{"healthz", "GET", "/healthz", 200, "application/json", []string{`"ok"`}},
		{"static js", "GET", "/static/main.js", 200, "text/javascript", []string{"window.location.assign"}},
		{"static css", "GET", "/static/style.css", 200, "text/css", []string{"--accent"}},
		{"static dir", "GET", "/static/", 404, "text/html", []string{"Page not found"}},
		{"static missing", "GET", "/static/nope.js", 404, "text/html", []string{"Page not found"}},
		{"not found", "GET", "/nope", 404, "text/html", []string{"Page not found"}},
		{"config post", "POST", "/config", 405, "text/html", nil},
		{"webhook get", "GET", "/webhook", 405, "text/html", nil},
		{"admin without auth", "GET", "/admin/orders", 401, "text/html", []string{"Sign in"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t)
			res := ts.do(t, tt.method, tt.target, nil)
			body := readBody(t, res)
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status: got %d, want %d; body %s", res.StatusCode, tt.wantStatus, body)
			}
			if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, tt.wantType) {
				t.Errorf("Content-Type: got %q, want %s", ct, tt.wantType)
			}
			for _, want := range tt.wantBody {
				if !strings.Contains(body, want) {
					t.Errorf("body lacks %q:\n%s", want, body)
				}
			}
			if res.Header.Get("Content-Security-Policy") == "" || res.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("security headers missing: %v", res.Header)
			}
			if created, gets := ts.fake.calls(); created+gets != 0 {
				t.Errorf("Stripe calls: got %d, want 0", created+gets)
			}
		})
	}
}

func TestMethodNotAllowedNamesAllow(t *testing.T) {
	ts := newTestServer(t)
	for target, want := range map[string]string{"/config": "GET", "/webhook": "POST", "/create-checkout-session/": "POST"} {
		res := ts.do(t, "DELETE", target, nil)
		if res.StatusCode != 405 || res.Header.Get("Allow") != want {
			t.Errorf("DELETE %s: got %d Allow %q, want 405 Allow %q", target, res.StatusCode, res.Header.Get("Allow"), want)
		}
	}
}

func TestHealthzStoreDown(t *testing.T) {
	ts := newTestServer(t)
	ts.store.Close()
	res := ts.do(t, "GET", "/healthz", nil)
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status: got %d, want 503", res.StatusCode)
	}
}

func TestPanicShowsGenericPage(t *testing.T) {
	ts := newTestServer(t)
	h := ts.recoverPanics(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("secret internal detail") }))
	ts.handler = h
	res := ts.do(t, "GET", "/", nil)
	body := readBody(t, res)
	if res.StatusCode != 500 || strings.Contains(body, "secret internal detail") {
		t.Errorf("got %d %s, want a generic 500 page", res.StatusCode, body)
	}
}

// TestPagesRender executes every page template with a fixture, including
// shopper-supplied text that must come out escaped.
func TestPagesRender(t *testing.T) {
	ts := newTestServer(t)
	evil := `<script>alert("x")</script>`
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	fixtures := map[string]view{
		"home": homePage{Page: ts.page("Shop"), Products: []productView{{ID: "x", Name: evil, Description: evil, Price: "$1.00", MaxQuantity: 2}}},
		"success": successPage{Page: ts.page("Thank you"), State: "paid", Heading: "Payment received", Message: "ok",
			Items: []lineView{{Name: evil, Quantity: 1, Amount: "$1.00"}}, Total: "$1.00", Email: evil, OrderID: "ord_x"},
		"cancelled": cancelledPage{Page: ts.page("Cancelled")},
		"cart": cartPage{Page: ts.page("Your cart"), Token: "tok", Mixed: evil,
			Lines:     []cartLineView{{ProductID: "x", Name: evil, Price: "$1.00", Amount: "$2.00", Quantity: 2, MaxQuantity: 3, Action: "/cart/items/x"}},
			Subtotals: []subtotalView{{Currency: "USD", Amount: "$2.00"}}},
		"error": errorPage{Page: ts.page("Error"), Heading: "Oops", Message: evil, RequestID: "req"},
		"admin_orders": adminOrdersPage{Page: ts.page("Orders"), Statuses: []statusOption{{Value: "paid", Selected: true}},
			Filter: orderQuery{Status: "paid", From: "2026-01-01", To: "2026-01-31", Q: evil, Limit: "10"}, Filtered: true, Zone: "Europe/Berlin",
			NextURL: "/admin/orders?after=abc&q=" + evil, FirstURL: "/admin/orders?q=" + evil, ExportURL: "/admin/orders.csv?q=" + evil,
			Orders: []adminOrderRow{{Created: now.Format(time.DateTime), Status: "paid", Items: evil, Email: evil,
				Notifications: []notificationView{{ID: "ntf_x", Channel: "webhook", Status: "dead", LastError: evil, Dead: true}}}}},
		"admin_order": adminOrderPage{Page: ts.page("Order"), ID: evil, Status: evil, Review: evil, Created: evil, Updated: evil,
			Paid: evil, Fulfilled: evil, Email: evil, SessionID: evil, PaymentIntentID: evil, Currency: evil,
			Total: evil, AmountPaid: evil, AmountRefunded: evil, Refundable: evil,
			Items:        []adminItemView{{ProductID: evil, Name: evil, UnitAmount: evil, Amount: evil, Quantity: 1}},
			Refunds:      []refundView{{ID: evil, Amount: evil, Status: evil, Reason: evil, Created: evil}},
			Dispute:      &disputeView{ID: evil, Status: evil, Reason: evil, Amount: evil, EvidenceDueBy: evil, Open: true, NeedsResponse: true},
			PaymentState: evil, Hold: evil, DashboardURL: "https://dashboard.stripe.com/test/payments/" + evil,
			Timeline: []timelineEntry{{When: evil, Event: &eventView{ID: evil, Type: evil, Outcome: evil, Created: evil, APIVersion: evil}},
				{When: evil, Notification: &timelineNotification{ID: evil, Type: evil, Channel: evil, Status: evil, LastError: evil,
					Delivered: evil, NextAttempt: evil, RetryAction: "/admin/notifications/" + evil + "/retry", Attempts: 80}}},
			Refund:   &refundForm{Action: "/admin/orders/" + evil + "/refund", Max: 1, Hint: evil, Token: evil, Reasons: []string{evil}},
			NoRefund: evil},
		"admin_alarms": adminAlarmsPage{Page: ts.page("Alarms"), Open: true,
			Alarms: []alarmRow{{ID: evil, Created: now.Format(time.DateTime), Kind: "unreadable_event", Label: evil, Ref: evil, OrderID: evil,
				OrderPath: "/admin/orders/" + evil, Detail: evil, Advice: evil, ResolveAction: "/admin/alarms/" + evil + "/resolve"},
				{ID: "alm_x", Created: evil, Kind: "dead_notification", Label: evil, Ref: evil, Detail: evil, Advice: evil, Derived: true},
				{ID: "alm_y", Created: evil, Kind: "paid_twice", Label: evil, Ref: evil, Detail: evil, Advice: evil, Resolved: evil}}},
		"admin_overview": adminOverviewPage{Page: ts.page("Overview"), Zone: evil, OpenAlarms: "3", Alarming: true, Pending: 2, Dead: 1,
			Today:  salesPeriodView{ID: "today", Heading: "Today", Since: evil, Rows: []salesRow{{Currency: "USD", Orders: 2, Paid: "$40.00", Refunded: "$5.00", Net: "$35.00"}}},
			Recent: salesPeriodView{ID: "last-30-days", Heading: "Last 30 days", Since: evil}},
		"admin_products": adminProductsPage{Page: ts.page("Products"),
			Products: []productStockRow{{ID: "x", Name: evil, Action: "/admin/products/x/stock", Limited: true, Left: 3, Held: 1, Sold: 2, Max: maxStock}}},
		"order": orderPage{Page: ts.page("Your order"), OrderID: "ord_x", State: "paid", Heading: "Order confirmed", Status: evil,
			Items: []lineView{{Name: evil, Quantity: 1, Amount: "$1.00"}}, Total: "$1.00"},
	}
	for _, name := range pageNames {
		t.Run(name, func(t *testing.T) {
			data, ok := fixtures[name]
			if !ok {
				t.Fatalf("no fixture for page %s", name)
			}
			rec := newRecorder()
			ts.render(rec, newRequest("GET", "/"), 200, name, data)
			body := rec.Body.String()
			if rec.Code != 200 || !strings.Contains(body, "</html>") {
				t.Fatalf("render %s: got %d %q", name, rec.Code, body)
			}
			if strings.Contains(body, "<script>alert") {
				t.Errorf("page %s: unescaped shopper text", name)
			}
			if name != "cancelled" && !strings.Contains(body, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") {
				t.Errorf("page %s: escaped text missing:\n%s", name, body)
			}
		})
	}
}

func TestCatalogueTextEscaped(t *testing.T) {
	ts := newTestServer(t)
	body := readBody(t, ts.do(t, "GET", "/", nil))
	if !strings.Contains(body, "Mug &lt;b&gt;bold&lt;/b&gt;") {
		t.Errorf("product name not escaped:\n%s", body)
	}
}

func TestDemoBanner(t *testing.T) {
	for _, demo := range []bool{false, true} {
		ts := newTestServer(t, func(c *configT) { c.DemoMode = demo })
		body := readBody(t, ts.do(t, "GET", "/", nil))
		if got := strings.Contains(body, "Demo mode: no real payments"); got != demo {
			t.Errorf("demo=%v: banner shown = %v", demo, got)
		}
	}
}

func TestAdminOrders(t *testing.T) {
	ts := newTestServer(t)
	ctx := context.Background()
	for i, st := range []orders.Status{orders.StatusPending, orders.StatusPaid} {
		o := orders.Order{ID: orders.NewID(), Status: orders.StatusPending, Currency: "usd", AmountTotal: 2000,
			Items:     []orders.Item{{ProductID: "tshirt", Name: "T-shirt <i>", UnitAmount: 2000, Quantity: 1}},
			CreatedAt: time.Now().Add(time.Duration(i) * time.Minute), UpdatedAt: time.Now()}
		storetest.Seed(t, ts.store, o)
		if st == orders.StatusPaid {
			sid := "cs_test_admin" + string(rune('a'+i))
			if err := ts.svc.AttachSession(ctx, o.ID, sid); err != nil {
				t.Fatal(err)
			}
			if _, err := ts.svc.SyncSession(ctx, orders.Session{ID: sid, Status: "complete", PaymentStatus: "paid", Email: "a@b.test"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	auth := []string{"Authorization", "Basic " + basic("admin", "let-me-in")}

	res := ts.do(t, "GET", "/admin/orders", nil, append(auth, "Accept", "application/json")...)
	var got adminOrdersBody
	if err := json.NewDecoder(res.Body).Decode(&got); err != nil || res.StatusCode != 200 {
		t.Fatalf("json: status %d, err %v", res.StatusCode, err)
	}
	if len(got.Orders) != 2 || got.Orders[0].Status != orders.StatusPaid || got.Orders[1].Status != orders.StatusPending {
		t.Errorf("orders: got %+v, want paid then pending (newest first)", got.Orders)
	}

	res = ts.do(t, "GET", "/admin/orders?status=pending", nil, append(auth, "Accept", "application/json")...)
	got = adminOrdersBody{}
	json.NewDecoder(res.Body).Decode(&got)
	if len(got.Orders) != 1 || got.Orders[0].Status != orders.StatusPending {
		t.Errorf("filtered: got %+v, want one pending", got.Orders)
	}

	res = ts.do(t, "GET", "/admin/orders", nil, auth...)
	body := readBody(t, res)
	if res.StatusCode != 200 || !strings.Contains(body, "T-shirt &lt;i&gt;") || !strings.Contains(body, "a@b.test") || res.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("html: got %d %s", res.StatusCode, body)
	}
	if res := ts.do(t, "GET", "/admin/orders?status=bogus", nil, auth...); res.StatusCode != 400 {
		t.Errorf("bad filter: got %d, want 400", res.StatusCode)
	}
	if res := ts.do(t, "GET", "/admin/orders", nil, "Authorization", "Basic "+basic("admin", "wrong")); res.StatusCode != 401 {
		t.Errorf("wrong password: got %d, want 401", res.StatusCode)
	}
}

func TestAdminAbsentWithoutPassword(t *testing.T) {
	ts := newTestServer(t, func(c *configT) { c.AdminPassword = "" })
	res := ts.do(t, "GET", "/admin/orders", nil, "Authorization", "Basic "+basic("admin", ""))
	if res.StatusCode != 404 {
		t.Errorf("got %d, want 404", res.StatusCode)
	}
}
