package web

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/shopcheckout/shop/internal/metrics"
	"github.com/shopcheckout/shop/internal/orders"
)

func TestMetrics(t *testing.T) {
	ts := newTestServer(t)
	ts.metrics = metrics.New()
	ts.sessions = instrumented{next: ts.fake, m: ts.metrics}
	ts.handler = ts.routes()

	sid, oid := ts.checkout(t, "tshirt", "2")
	ts.deliver(t, eventFor("evt_m1", orders.EventSessionCompleted, sid, oid, "paid").json(t))
	ts.deliver(t, eventFor("evt_m1", orders.EventSessionCompleted, sid, oid, "paid").json(t))
	bad := eventFor("evt_m2", orders.EventSessionCompleted, sid, oid, "paid").json(t)
	ts.do(t, "POST", "/webhook", bytes.NewReader(bad), "Content-Type", "application/json", "Stripe-Signature", sign(bad, "whsec_wrong", time.Now()))

	if res := ts.do(t, "GET", "/admin/metrics", nil); res.StatusCode != 401 {
		t.Errorf("metrics without the password: got %d, want 401", res.StatusCode)
	}
	res := ts.do(t, "GET", "/admin/metrics", nil, "Authorization", "Basic "+basic("admin", "let-me-in"))
	body := readBody(t, res)
	for _, want := range []string{
		`shop_http_requests_total{method="POST",route="/create-checkout-session",status="303"} 1`,
		`shop_webhook_events_total{outcome="applied",type="checkout.session.completed"} 1`,
		`shop_webhook_events_total{outcome="duplicate",type="checkout.session.completed"} 1`,
		`shop_webhook_events_total{outcome="rejected",type="unknown"} 1`,
		`shop_stripe_request_duration_seconds_count{operation="checkout_session_create"} 1`,
		"go_goroutines",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", body)
	}
}
