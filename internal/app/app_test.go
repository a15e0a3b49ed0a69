package app

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/event"
	"github.com/stripe/stripe-go/v76/form"

	"github.com/shopcheckout/shop/internal/config"
	"github.com/shopcheckout/shop/internal/orders"
	"github.com/shopcheckout/shop/internal/sqlite"
)

func serveTest(t *testing.T, tweak func(*http.Server)) string {
	t.Helper()
	hs := NewHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		config.Config{StripeTimeout: time.Second}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if tweak != nil {
		tweak(hs)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return ln.Addr().String()
}

func TestHTTPServerLimits(t *testing.T) {
	hs := NewHTTPServer(nil, config.Config{StripeTimeout: 10 * time.Second}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if hs.ReadHeaderTimeout <= 0 || hs.ReadTimeout <= 0 || hs.WriteTimeout <= 10*time.Second || hs.IdleTimeout <= 0 || hs.MaxHeaderBytes <= 0 {
		t.Errorf("got %+v, want every timeout set, WriteTimeout above the Stripe deadline, and a header cap", hs)
	}
}

// TestSlowHeadersCutOff sends half a request and stops: the server must hang
// up after ReadHeaderTimeout instead of holding the connection.
func TestSlowHeadersCutOff(t *testing.T) {
	addr := serveTest(t, func(hs *http.Server) { hs.ReadHeaderTimeout = 200 * time.Millisecond })
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: shop\r\nX-Slow: ")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, err = io.ReadAll(conn)
	if err != nil {
		t.Fatalf("read: %v (the server kept the connection open)", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("closed after %v, want about the header timeout", d)
	}
}

func TestHeaderSizeCap(t *testing.T) {
	addr := serveTest(t, nil)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: shop\r\nX-Big: "+strings.Repeat("a", 64<<10)+"\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("status: got %d, want 431", res.StatusCode)
	}
}

// countingEvents fails the test's reconciliation on purpose and counts calls.
type countingEvents struct{ calls int }

func (c *countingEvents) List(p *stripe.EventListParams) *event.Iter {
	c.calls++
	return &event.Iter{Iter: stripe.GetIter(p, func(*stripe.Params, *form.Values) ([]interface{}, stripe.ListContainer, error) {
		return nil, &stripe.EventList{}, nil
	})}
}

func TestReconcileRunsOnlyWithTheLease(t *testing.T) {
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "shop.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := orders.NewService(store, log)
	// Another instance holds the lease first, then it is free.
	if ok, err := svc.TryLease(t.Context(), "reconcile", "other", 200*time.Millisecond); err != nil || !ok {
		t.Fatalf("TryLease = %v, %v", ok, err)
	}
	for _, grant := range []bool{false, true} {
		if grant {
			time.Sleep(250 * time.Millisecond)
		}
		ev := &countingEvents{}
		a := &App{Config: config.Config{ReconcileWindow: time.Hour}, Events: ev, Orders: svc, holder: "me", log: log}
		if err := a.reconcileOnce(t.Context(), time.Minute); err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{false: 0, true: 1}[grant]; ev.calls != want {
			t.Errorf("lease granted=%v: Events API calls %d, want %d", grant, ev.calls, want)
		}
	}
}

func TestMetricsAddrTakenFailsBeforeServing(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a := &App{Config: config.Config{MetricsAddr: taken.Addr().String(), ShutdownTimeout: time.Second}, Handler: http.NotFoundHandler(), log: log}
	var out strings.Builder
	if err := a.ServeListener(t.Context(), ln, &out); err == nil || !strings.Contains(err.Error(), "metrics listen") {
		t.Fatalf("got %v, want a metrics listen error", err)
	}
	if out.Len() != 0 {
		t.Errorf("announced %q before failing", out.String())
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Error("the shop port still accepts connections after the failure")
	}
}

func TestLoggerMasksEmails(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		var buf strings.Builder
		log := NewLogger(config.Config{LogFormat: format}, &buf)
		log.Info("order fulfilled", "order_id", "ord_1", "email", "shopper@example.com")
		log.With("email", "other@example.com").Info("with")
		log.Info("grouped", slog.Group("order", slog.String("email", "grouped@example.com")))
		out := buf.String()
		for _, leak := range []string{"shopper@", "other@", "grouped@"} {
			if strings.Contains(out, leak) {
				t.Errorf("%s: the log shows %s...:\n%s", format, leak, out)
			}
		}
		if !strings.Contains(out, "s***@example.com") || !strings.Contains(out, "o***@example.com") || !strings.Contains(out, "g***@example.com") {
			t.Errorf("%s: masked addresses missing:\n%s", format, out)
		}
		buf.Reset()
		NewLogger(config.Config{LogFormat: format, LogCustomerEmails: true}, &buf).Info("x", "email", "shopper@example.com")
		if !strings.Contains(buf.String(), "shopper@example.com") {
			t.Errorf("%s with LOG_CUSTOMER_EMAILS: the address is masked:\n%s", format, buf.String())
		}
	}
	for in, want := range map[string]string{"": "", "x": "***", "@example.com": "***", "élise@example.fr": "é***@example.fr"} {
		if got := MaskEmail(in); got != want {
			t.Errorf("MaskEmail(%q) = %q, want %q", in, got, want)
		}
	}
}
