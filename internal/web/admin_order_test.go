package web

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shopcheckout/shop/internal/orders"
)

// detailedOrder pays two T-shirts through a PaymentIntent, refunds $10.00
// of them from the admin's form, kills the shopper's order.paid email (as
// 72 hours of failures would) and opens a dispute with an evidence
// deadline: an order with something in every part of its page. It returns
// the order and its PaymentIntent.
func (ts *testServer) detailedOrder(t *testing.T) (orderID, paymentIntent string) {
	t.Helper()
	oid, pi := ts.paidWithIntent(t)
	if res := ts.postRefund(t, oid, "amount", "1000", "reason", "requested_by_customer", "refund_token", ts.refundToken(t, oid)); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("refund: got %d, want 303", res.StatusCode)
	}
	for _, n := range ts.notifications(t, oid) {
		if n.Type == orders.NotifyOrderPaid && n.Channel == orders.ChannelEmailCustomer {
			ts.killNotification(t, n.ID)
		}
	}
	due := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	dispute := map[string]any{"id": "dp_test_detail", "object": "dispute", "charge": "ch_1", "payment_intent": pi, "amount": 4000,
		"currency": "usd", "status": "needs_response", "reason": "product_not_received", "evidence_details": map[string]any{"due_by": due.Unix()}}
	if status, _ := ts.deliver(t, stripeEvent(t, "evt_dispute_detail", orders.EventDisputeCreated, time.Now(), dispute)); status != 200 {
		t.Fatalf("dispute event: got %d", status)
	}
	return oid, pi
}

func (ts *testServer) notifications(t testing.TB, orderID string) []orders.Notification {
	t.Helper()
	ns, err := ts.svc.Notifications(t.Context(), []string{orderID})
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// wantIn fails unless body holds every one of wants.
func wantIn(t testing.TB, where, body string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(body, w) {
			t.Errorf("%s lacks %q", where, w)
		}
	}
}

// element returns the element of body that opens with open, up to the
// first close after it; "" if there is none.
func element(body, open, close string) string {
	i := strings.Index(body, open)
	if i < 0 {
		return ""
	}
	j := strings.Index(body[i:], close)
	if j < 0 {
		return body[i:]
	}
	return body[i : i+j+len(close)]
}

func TestAdminOrderDetail(t *testing.T) {
	ts := newTestServer(t)
	oid, pi := ts.detailedOrder(t)
	o := ts.order(t, oid)
	ns := ts.notifications(t, oid)
	evs, err := ts.svc.OrderEvents(t.Context(), oid)
	if err != nil || len(evs) != 2 {
		t.Fatalf("stored events: got %d (%v), want the payment's and the dispute's", len(evs), err)
	}

	res := ts.do(t, "GET", "/admin/orders/"+oid, nil, adminAuthHeader...)
	body := readBody(t, res)
	if res.StatusCode != 200 {
		t.Fatalf("got %d, want 200", res.StatusCode)
	}
	// Each line: quantity, name, unit price, line total.
	wantIn(t, "items", element(body, `<table class="stack" id="items">`, "</table>"),
		`data-label="Qty">2</td>`, `data-label="Product">T-shirt<br>`, `data-label="Unit price">$20.00</td>`, `data-label="Line total">$40.00</td>`)
	wantIn(t, "amounts", element(body, `id="amounts"`, "</table>"),
		`id="total">$40.00`, `id="amount-paid">$40.00<`, `id="amount-refunded">$10.00<`, `id="refundable">$30.00<`)
	wantIn(t, "state", element(body, `id="state"`, "</table>"),
		`id="status">disputed<`, `id="payment-state">paid<`, `id="hold">none: no line has a counted stock<`,
		"Paid</th><td>"+ts.when(o.PaidAt)+"<", "Fulfilled</th><td>"+ts.when(o.FulfilledAt)+"<")
	wantIn(t, "payment", element(body, `id="payment"`, "</table>"),
		`href="https://dashboard.stripe.com/test/payments/`+pi+`"`, `id="payment-intent">`+pi+`<`, o.SessionID, "buyer@example.com")
	wantIn(t, "refunds", element(body, `id="refunds"`, "</table>"),
		"re_test_fake001", `data-label="Amount">$10.00<`, `data-label="Status">succeeded<`, "requested_by_customer", ts.when(&o.Refunds[0].CreatedAt))
	wantIn(t, "dispute", element(body, `id="dispute"`, "</table>"),
		"dp_test_detail", "needs_response (open)", "product_not_received", "$40.00", `id="evidence-due-by">2030-05-06 07:08:09 UTC<`)
	wantIn(t, "the page", body, "Submit evidence in the Stripe Dashboard by 2030-05-06 07:08:09 UTC")

	timeline := element(body, `id="timeline"`, "</table>")
	for _, e := range evs {
		wantIn(t, "timeline", timeline, e.ID, "<code class=\"id\">"+e.Type+"</code>", `data-label="Outcome">`+e.Outcome+`<`,
			`data-label="When">`+ts.when(&e.Received)+`<`, "created at Stripe "+ts.when(&e.Created))
	}
	if len(ns) < 3 {
		t.Fatalf("notifications: got %d, want those of the payment, the refund and the dispute", len(ns))
	}
	var dead orders.Notification
	for _, n := range ns {
		wantIn(t, "timeline", timeline, n.ID, `<code class="id">`+n.Type+`</code> to `+string(n.Channel), `data-label="Status"><span class="ntf-`+string(n.Status)+`">`+string(n.Status)+`</span>`)
		if n.Status == orders.NotificationDead {
			dead = n
		}
	}
	row := element(timeline, `<tr class="tl-ntf tl-dead">`, "</tr>")
	wantIn(t, "the dead notification's row", row, dead.ID, "80 attempts", "last error: receiver answered 500",
		`<form method="post" action="/admin/notifications/`+dead.ID+`/retry" class="inline"><input type="hidden" name="back" value="order">`)
	if n := strings.Count(timeline, "/retry"); n != 1 {
		t.Errorf("retry buttons: got %d, want 1 (the dead notification's)", n)
	}
	// Oldest first: the payment's event, what it queued, the refund's
	// notifications, then the dispute's event.
	paidAt, firstNtf, disputeAt := strings.Index(timeline, evs[0].ID), strings.Index(timeline, "tl-ntf"), strings.Index(timeline, "evt_dispute_detail")
	if !(paidAt < firstNtf && firstNtf < disputeAt) || strings.Count(timeline, "<tr ") != len(evs)+len(ns) {
		t.Errorf("timeline order: payment event at %d, first notification at %d, dispute event at %d, %d rows; want them in that order, %d rows",
			paidAt, firstNtf, disputeAt, strings.Count(timeline, "<tr "), len(evs)+len(ns))
	}
	if !strings.Contains(body, `<nav class="admin-nav" aria-label="Admin">`) || !strings.Contains(body, `aria-current="page">Orders</a>`) {
		t.Error("the order page lacks the admin nav with Orders current")
	}

	// JSON: the order as before, plus its notifications, events and
	// Dashboard link.
	raw := readBody(t, ts.do(t, "GET", "/admin/orders/"+oid, nil, admin("Accept", "application/json")...))
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &fields); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "status", "items", "amountTotal", "currency", "sessionId", "email", "createdAt", "updatedAt", "paidAt",
		"fulfilledAt", "paymentIntentId", "amountPaid", "amountRefunded", "refunds", "dispute", "notifications", "events", "dashboardUrl"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, raw)
		}
	}
	var got struct {
		orders.Order
		Notifications []orders.Notification `json:"notifications"`
		Events        []struct {
			ID, Type, Outcome, APIVersion string
			SessionID                     string    `json:"sessionId"`
			CreatedAt                     time.Time `json:"createdAt"`
			ReceivedAt                    time.Time `json:"receivedAt"`
		} `json:"events"`
		DashboardURL string `json:"dashboardUrl"`
	}
	if err := json.Unmarshal([]byte(raw), &got); err != nil {
		t.Fatal(err)
	}
	if got.ID != oid || got.Dispute == nil || len(got.Refunds) != 1 || len(got.Notifications) != len(ns) || len(got.Events) != len(evs) ||
		got.DashboardURL != "https://dashboard.stripe.com/test/payments/"+pi {
		t.Errorf("JSON: got %+v", got)
	}
	for i, e := range got.Events {
		want := evs[i]
		if e.ID != want.ID || e.Type != want.Type || e.Outcome != want.Outcome || e.APIVersion != want.APIVersion ||
			!e.CreatedAt.Equal(want.Created) || !e.ReceivedAt.Equal(want.Received) {
			t.Errorf("JSON event %d: got %+v, want %+v", i, e, want)
		}
	}
	if strings.Contains(raw, `"payload"`) || strings.Contains(raw, `"Payload"`) {
		t.Error("JSON events carry their payloads")
	}
}

// TestAdminOrderDashboardLink links the payment to the Stripe Dashboard in
// the mode of the shop's keys, and an order without a payment to nothing.
func TestAdminOrderDashboardLink(t *testing.T) {
	for _, tt := range []struct {
		name, key, want string
	}{
		{"test keys", testSecretKey, "https://dashboard.stripe.com/test/payments/"},
		{"live keys", "sk_live_51LiveSecretKeyValueForTests", "https://dashboard.stripe.com/payments/"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, func(c *configT) { c.SecretKey = tt.key })
			oid, pi := ts.paidWithIntent(t)
			body := readBody(t, ts.do(t, "GET", "/admin/orders/"+oid, nil, adminAuthHeader...))
			link := element(body, `<a href="https://dashboard.stripe.com/`, ">")
			if want := `<a href="` + tt.want + pi + `" id="dashboard-link" target="_blank" rel="noopener noreferrer"`; !strings.HasPrefix(link, want) {
				t.Errorf("link: got %s, want %s...", link, want)
			}
			var got struct {
				DashboardURL string `json:"dashboardUrl"`
			}
			json.NewDecoder(ts.do(t, "GET", "/admin/orders/"+oid, nil, admin("Accept", "application/json")...).Body).Decode(&got)
			if got.DashboardURL != tt.want+pi {
				t.Errorf("JSON dashboardUrl: got %q, want %q", got.DashboardURL, tt.want+pi)
			}

			_, pending := ts.checkout(t, "tshirt", "1")
			body = readBody(t, ts.do(t, "GET", "/admin/orders/"+pending, nil, adminAuthHeader...))
			if strings.Contains(body, "dashboard.stripe.com") || !strings.Contains(body, `<span class="muted" id="payment-intent">none yet</span>`) {
				t.Error("an order without a payment links to the Dashboard")
			}
			raw := readBody(t, ts.do(t, "GET", "/admin/orders/"+pending, nil, admin("Accept", "application/json")...))
			if strings.Contains(raw, "dashboardUrl") || !strings.Contains(raw, `"events":[]`) || !strings.Contains(raw, `"notifications":[]`) {
				t.Errorf("a pending order's JSON: got %s, want [] events and notifications and no dashboardUrl", raw)
			}
		})
	}
}

// TestAdminOrderShopTimeZone shows the admin's times in SHOP_TIMEZONE,
// with the zone's abbreviation.
func TestAdminOrderShopTimeZone(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skipf("no time zone database: %v", err)
	}
	ts := newTestServer(t, func(c *configT) { c.Location = ny })
	oid, _ := ts.detailedOrder(t)
	o := ts.order(t, oid)
	body := readBody(t, ts.do(t, "GET", "/admin/orders/"+oid, nil, adminAuthHeader...))
	created := o.CreatedAt.In(ny).Format("2006-01-02 15:04:05 MST")
	wantIn(t, "the page", body, "Created</th><td>"+created+"<", `id="evidence-due-by">2030-05-06 03:08:09 EDT<`)
	if !strings.Contains(created, "EST") && !strings.Contains(created, "EDT") {
		t.Errorf("created: got %q, want New York's abbreviation", created)
	}
}
