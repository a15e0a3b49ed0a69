package metrics

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shopcheckout/shop/internal/orders"
)

func TestRequestLabelsAreBounded(t *testing.T) {
	m := New()
	m.Request("/orders/{id}", "GET", 200, time.Millisecond)
	m.Request("", "GET", 404, time.Millisecond)
	m.Request("", "FOO123", 405, time.Millisecond)
	want := `
# HELP shop_http_requests_total HTTP requests by route pattern, method and status.
# TYPE shop_http_requests_total counter
shop_http_requests_total{method="GET",route="/orders/{id}",status="200"} 1
shop_http_requests_total{method="GET",route="none",status="404"} 1
shop_http_requests_total{method="OTHER",route="none",status="405"} 1
`
	if err := testutil.GatherAndCompare(m.Gatherer(), strings.NewReader(want), "shop_http_requests_total"); err != nil {
		t.Error(err)
	}
	before := series(t, m)
	for i := range 1000 {
		m.Request("", fmt.Sprintf("M%d", i), 405, time.Millisecond)
		m.Request("", "get", 405, time.Millisecond)
	}
	if after := series(t, m); after != before {
		t.Errorf("series after 2,000 made-up methods: got %d, want %d", after, before)
	}
}

func TestKnownMethodsKept(t *testing.T) {
	for _, method := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"} {
		if got := methodLabel(method); got != method {
			t.Errorf("methodLabel(%s): got %s, want %s", method, got, method)
		}
	}
	for _, method := range []string{"", "get", "FOO", "PROPFIND", "GET\n"} {
		if got := methodLabel(method); got != "OTHER" {
			t.Errorf("methodLabel(%q): got %s, want OTHER", method, got)
		}
	}
}

func TestNilGathersNothing(t *testing.T) {
	var m *Metrics
	m.Request("/", "GET", 200, time.Millisecond)
	if n, err := testutil.GatherAndCount(m.Gatherer()); err != nil || n != 0 {
		t.Errorf("nil metrics: got %d series (err %v), want 0", n, err)
	}
}

// series counts the request series: the counter's and the histogram's.
func series(t testing.TB, m *Metrics) int {
	t.Helper()
	n, err := testutil.GatherAndCount(m.Gatherer(), "shop_http_requests_total", "shop_http_request_duration_seconds")
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	return n
}

// TestOutboxAndAlarmSeries: delivery attempts count by type, channel and
// outcome; the outbox's depth and the age of its oldest pending row follow
// the latest stats, back to 0 when nothing waits; alarms count by kind.
func TestOutboxAndAlarmSeries(t *testing.T) {
	m := New()
	m.Delivered("order.paid", "webhook", "delivered")
	m.Delivered("order.paid", "webhook", "delivered")
	m.Delivered("order.refunded", "email_customer", "failed")
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	oldest := now.Add(-90 * time.Second)
	m.Queue(orders.OutboxStats{Pending: 3, Dead: 1, OldestQueued: &oldest}, now)
	m.Alarm(orders.Alarm{Kind: orders.AlarmOversold})
	want := `
# HELP shop_notification_deliveries_total Notification delivery attempts by type, channel and outcome (delivered, failed, dead).
# TYPE shop_notification_deliveries_total counter
shop_notification_deliveries_total{channel="email_customer",outcome="failed",type="order.refunded"} 1
shop_notification_deliveries_total{channel="webhook",outcome="delivered",type="order.paid"} 2
# HELP shop_outbox_notifications Notifications not yet delivered, by status (pending, dead).
# TYPE shop_outbox_notifications gauge
shop_outbox_notifications{status="dead"} 1
shop_outbox_notifications{status="pending"} 3
# HELP shop_outbox_oldest_pending_seconds Age of the oldest notification not yet delivered (0 when none).
# TYPE shop_outbox_oldest_pending_seconds gauge
shop_outbox_oldest_pending_seconds 90
# HELP shop_alarms_raised_total Alarms raised, by kind: each needs a person (see /admin/alarms).
# TYPE shop_alarms_raised_total counter
shop_alarms_raised_total{kind="oversold"} 1
`
	names := []string{"shop_notification_deliveries_total", "shop_outbox_notifications", "shop_outbox_oldest_pending_seconds", "shop_alarms_raised_total"}
	if err := testutil.GatherAndCompare(m.Gatherer(), strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	m.Queue(orders.OutboxStats{}, now)
	want = `
# HELP shop_outbox_notifications Notifications not yet delivered, by status (pending, dead).
# TYPE shop_outbox_notifications gauge
shop_outbox_notifications{status="dead"} 0
shop_outbox_notifications{status="pending"} 0
# HELP shop_outbox_oldest_pending_seconds Age of the oldest notification not yet delivered (0 when none).
# TYPE shop_outbox_oldest_pending_seconds gauge
shop_outbox_oldest_pending_seconds 0
`
	if err := testutil.GatherAndCompare(m.Gatherer(), strings.NewReader(want), names[1:3]...); err != nil {
		t.Errorf("an empty outbox: %v", err)
	}
}
