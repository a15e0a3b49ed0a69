package metrics

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
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
