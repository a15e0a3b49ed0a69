package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopcheckout/shop/internal/orders"
)

var orderLink = regexp.MustCompile(`href="(/orders/[^"?]+\?token=[^"]+)" id="order-page"`)

// paidOrder checks out one T-shirt ×2 and pays it through the success page.
func (ts *testServer) paidOrder(t *testing.T) (sessionID, orderID, successBody string) {
	t.Helper()
	sid, oid := ts.checkout(t, "tshirt", "2")
	ts.fake.pay(sid, "paid", "buyer@example.com")
	res := ts.do(t, "GET", "/success?session_id="+sid, nil)
	if res.StatusCode != 200 {
		t.Fatalf("success page: got %d, want 200", res.StatusCode)
	}
	return sid, oid, readBody(t, res)
}

func TestOrderPage(t *testing.T) {
	ts := newTestServer(t)
	_, oid, success := ts.paidOrder(t)
	m := orderLink.FindStringSubmatch(success)
	if m == nil {
		t.Fatalf("the success page has no order page link:\n%s", success)
	}
	link := strings.ReplaceAll(m[1], "&amp;", "&")
	if want := testLinks.PagePath(oid); link != want {
		t.Errorf("order page link %q, want %q", link, want)
	}
	res := ts.do(t, "GET", link, nil)
	body := readBody(t, res)
	if res.StatusCode != 200 {
		t.Fatalf("GET %s: got %d, want 200", link, res.StatusCode)
	}
	for _, want := range []string{"Order confirmed", "T-shirt", "$40.00", oid, `data-state="paid"`} {
		if !strings.Contains(body, want) {
			t.Errorf("order page lacks %q", want)
		}
	}
	if strings.Contains(body, "buyer@example.com") {
		t.Error("the order page shows the shopper's email")
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}

	_, other := ts.checkout(t, "mug", "1")
	notFound := ts.do(t, "GET", "/orders/ord_doesnotexist?token="+testLinks.Token("ord_doesnotexist"), nil)
	notFoundBody := readBody(t, notFound)
	for name, target := range map[string]string{
		"no token":            "/orders/" + oid,
		"empty token":         "/orders/" + oid + "?token=",
		"wrong token":         "/orders/" + oid + "?token=" + strings.Repeat("A", 43),
		"another order token": "/orders/" + oid + "?token=" + testLinks.Token(other),
		"another key":         "/orders/" + oid + "?token=" + orders.LinkKey("another-key-0123456789abcdef0123").Token(oid),
	} {
		res := ts.do(t, "GET", target, nil)
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("%s: got %d, want 404", name, res.StatusCode)
		}
		if got := readBody(t, res); stripRequestID(got) != stripRequestID(notFoundBody) {
			t.Errorf("%s: the 404 differs from an unknown order's, so it tells which orders exist", name)
		}
	}
	if notFound.StatusCode != http.StatusNotFound {
		t.Errorf("unknown order with its own token: got %d, want 404", notFound.StatusCode)
	}
	// A pending order shows as waiting.
	res = ts.do(t, "GET", testLinks.PagePath(other), nil)
	if b := readBody(t, res); res.StatusCode != 200 || !strings.Contains(b, "Waiting for payment") {
		t.Errorf("pending order page: got %d, want 200 saying it waits for payment", res.StatusCode)
	}
}

var requestIDPattern = regexp.MustCompile(`Reference: <code>[^<]*</code>|"requestId":"[^"]*"`)

func stripRequestID(s string) string { return requestIDPattern.ReplaceAllString(s, "") }

func TestAdminOrderNotifications(t *testing.T) {
	ts := newTestServer(t)
	auth := []string{"Authorization", "Basic " + basic("admin", "let-me-in")}
	_, paid, _ := ts.paidOrder(t)
	_, pending := ts.checkout(t, "mug", "1")

	res := ts.do(t, "GET", "/admin/orders", nil, append(auth, "Accept", "application/json")...)
	raw := readBody(t, res)
	var body struct {
		Orders []struct {
			ID            string                `json:"id"`
			Status        string                `json:"status"`
			FulfilledAt   *time.Time            `json:"fulfilledAt"`
			Notifications []orders.Notification `json:"notifications"`
		} `json:"orders"`
	}
	if err := json.Unmarshal([]byte(raw), &body); err != nil || res.StatusCode != 200 {
		t.Fatalf("admin JSON: %d, %v", res.StatusCode, err)
	}
	if !strings.Contains(raw, `"notifications":[]`) {
		t.Errorf("an order without notifications should list [] (got %s)", raw)
	}
	byID := map[string]int{}
	for i, o := range body.Orders {
		byID[o.ID] = i
	}
	p := body.Orders[byID[paid]]
	if len(p.Notifications) != 3 || p.FulfilledAt == nil {
		t.Fatalf("paid order: %d notifications, fulfilled %v; want 3 and set", len(p.Notifications), p.FulfilledAt)
	}
	channels := map[orders.Channel]bool{}
	for _, n := range p.Notifications {
		channels[n.Channel] = true
		if !strings.HasPrefix(n.ID, "ntf_") || n.Type != orders.NotifyOrderPaid || n.Status != orders.NotificationPending || n.NextAttempt == nil {
			t.Errorf("notification %+v: want a pending order.paid ntf_ with its next attempt", n)
		}
	}
	if len(channels) != 3 {
		t.Errorf("channels %v, want webhook, email_customer, email_owner", channels)
	}
	if n := len(body.Orders[byID[pending]].Notifications); n != 0 {
		t.Errorf("pending order: %d notifications, want 0", n)
	}
	// The HTML lists them too.
	html := readBody(t, ts.do(t, "GET", "/admin/orders", nil, auth...))
	if !strings.Contains(html, "webhook pending") || !strings.Contains(html, "email_owner pending") {
		t.Errorf("the admin page does not show the notifications")
	}
}

// killNotification marks a notification dead, as 72 hours of failures would.
func (ts *testServer) killNotification(t *testing.T, id string) {
	t.Helper()
	err := ts.store.Write(context.Background(), func(ctx context.Context, tx orders.Tx) error {
		n, err := tx.Notification(ctx, id)
		if err != nil {
			return err
		}
		n.Status, n.NextAttempt, n.Attempts, n.LastError = orders.NotificationDead, nil, 80, "receiver answered 500"
		return tx.UpdateNotification(ctx, n)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestNotificationRetry(t *testing.T) {
	ts := newTestServer(t)
	auth := []string{"Authorization", "Basic " + basic("admin", "let-me-in")}
	_, oid, _ := ts.paidOrder(t)
	ns, err := ts.svc.Notifications(context.Background(), []string{oid})
	if err != nil || len(ns) != 3 {
		t.Fatalf("notifications: %v, %v", ns, err)
	}
	id := ns[0].ID
	path := "/admin/notifications/" + id + "/retry"

	if res := ts.do(t, "POST", path, nil, "Content-Type", formType); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("without auth: got %d, want 401", res.StatusCode)
	}
	if res := ts.do(t, "POST", path, nil, append(auth, "Content-Type", formType, "Sec-Fetch-Site", "cross-site")...); res.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site: got %d, want 403", res.StatusCode)
	}
	if res := ts.do(t, "POST", path, nil, append(auth, "Content-Type", formType)...); res.StatusCode != http.StatusConflict {
		t.Errorf("a pending notification: got %d, want 409", res.StatusCode)
	}
	if res := ts.do(t, "POST", "/admin/notifications/ntf_nope/retry", nil, append(auth, "Content-Type", formType)...); res.StatusCode != http.StatusNotFound {
		t.Errorf("unknown notification: got %d, want 404", res.StatusCode)
	}
	if res := ts.do(t, "GET", path, nil, auth...); res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: got %d, want 405", res.StatusCode)
	}

	ts.killNotification(t, id)
	html := readBody(t, ts.do(t, "GET", "/admin/orders", nil, auth...))
	if !strings.Contains(html, `action="`+path+`"`) {
		t.Error("the admin page offers no retry for a dead notification")
	}
	res := ts.do(t, "POST", path, nil, append(auth, "Content-Type", formType)...)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/admin/orders" {
		t.Fatalf("retry form: got %d to %q, want 303 to /admin/orders", res.StatusCode, res.Header.Get("Location"))
	}
	after, _ := ts.svc.Notifications(context.Background(), []string{oid})
	for _, n := range after {
		if n.ID == id && (n.Status != orders.NotificationPending || n.NextAttempt == nil) {
			t.Errorf("after retry: %+v, want pending and due", n)
		}
	}
	if !strings.Contains(ts.logs.String(), "notification re-queued") {
		t.Error("the retry was not logged")
	}

	ts.killNotification(t, id)
	res = ts.do(t, "POST", path, strings.NewReader(`{}`), append(auth, "Content-Type", "application/json")...)
	var got notificationBody
	if err := json.NewDecoder(res.Body).Decode(&got); err != nil || res.StatusCode != 200 || got.Notification.Status != orders.NotificationPending {
		t.Errorf("retry JSON: %d %+v %v; want 200 with the pending notification", res.StatusCode, got, err)
	}
}

// TestDroppedConnections sends signed paid events over real connections and
// closes each a few milliseconds after the last byte, before the answer: the
// shop must still store and fulfil every order, without a redelivery.
func TestDroppedConnections(t *testing.T) {
	ts := newTestServer(t)
	srv := httptest.NewServer(ts)
	defer srv.Close()
	const n = 80
	ids := make([]string, n)
	for i := range ids {
		_, ids[i] = ts.checkout(t, "tshirt", "1")
	}
	var wg sync.WaitGroup
	for i, oid := range ids {
		o := ts.order(t, oid)
		amount := int64(2000)
		ev := testEvent{ID: fmt.Sprintf("evt_drop_%02d", i), Type: orders.EventSessionCompleted, SessionID: o.SessionID, OrderID: oid,
			Status: "complete", PaymentStatus: "paid", Amount: &amount, Currency: "usd", Email: "buyer@example.com"}
		payload := ev.json(t)
		wg.Go(func() {
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Error(err)
				return
			}
			fmt.Fprintf(conn, "POST /webhook HTTP/1.1\r\nHost: shop.test\r\nContent-Type: application/json\r\nStripe-Signature: %s\r\nContent-Length: %d\r\n\r\n%s",
				sign(payload, testWebhookSecret, time.Now()), len(payload), payload)
			time.Sleep(time.Duration(1+i%5) * time.Millisecond)
			conn.Close()
		})
	}
	wg.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for _, oid := range ids {
		for {
			// The log line follows the commit: wait for both.
			o := ts.order(t, oid)
			if o.Status == orders.StatusPaid && o.FulfilledAt != nil && ts.fulfilments(oid) > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("order %s: %s, fulfilled %v: dropped connection left it unfulfilled", oid, o.Status, o.FulfilledAt)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if got := ts.fulfilments(oid); got != 1 {
			t.Errorf("order %s: %d \"order fulfilled\" lines, want 1", oid, got)
		}
	}
	// Stripe's redelivery is a duplicate and changes nothing.
	o := ts.order(t, ids[0])
	amount := int64(2000)
	ev := testEvent{ID: "evt_drop_00", Type: orders.EventSessionCompleted, SessionID: o.SessionID, OrderID: o.ID,
		Status: "complete", PaymentStatus: "paid", Amount: &amount, Currency: "usd", Email: "buyer@example.com"}
	if code, body := ts.deliver(t, ev.json(t)); code != 200 || !body.Duplicate {
		t.Errorf("redelivery: %d %+v, want 200 duplicate", code, body)
	}
	if got := ts.fulfilments(ids[0]); got != 1 {
		t.Errorf("after the redelivery: %d \"order fulfilled\" lines, want 1", got)
	}
}
