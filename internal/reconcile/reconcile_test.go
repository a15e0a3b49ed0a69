package reconcile_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/shopcheckout/shop/internal/app"
	"github.com/shopcheckout/shop/internal/config"
	"github.com/shopcheckout/shop/internal/orders"
	"github.com/shopcheckout/shop/internal/reconcile"
	"github.com/shopcheckout/shop/internal/stripesim"
	"github.com/shopcheckout/shop/internal/testenv"
)

type stack struct {
	shop      *app.App
	shopURL   string
	simURL    string
	fulfilled atomic.Int64
}

// newStack runs the shop against the simulator, with webhook delivery off:
// every event reaches the shop only through reconciliation.
func newStack(t *testing.T) *stack {
	t.Helper()
	mock := testenv.StripeMock(t)
	simLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	simURL := "http://" + simLn.Addr().String()
	sim, err := stripesim.New(stripesim.Config{MockURL: mock, PublicURL: simURL, WebhookSecret: "whsec_reconcile_test"})
	if err != nil {
		t.Fatal(err)
	}
	simSrv := &http.Server{Handler: sim.Handler()}
	go simSrv.Serve(simLn)
	t.Cleanup(func() { simSrv.Close(); sim.Close() })

	env := map[string]string{
		"STRIPE_SECRET_KEY": "sk_test_reconcile", "STRIPE_PUBLISHABLE_KEY": "pk_test_reconcile",
		"STRIPE_WEBHOOK_SECRET": "whsec_reconcile_test", "STRIPE_API_BASE": simURL,
		"DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "shop.db"), "RATE_LIMIT_PER_MINUTE": "0",
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	st := &stack{simURL: simURL}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st.shop, err = app.New(context.Background(), cfg, log, app.Options{OnFulfilled: func(orders.Order) { st.fulfilled.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.shop.Close() })
	srv := httptest.NewServer(st.shop.Handler)
	t.Cleanup(srv.Close)
	st.shopURL = srv.URL
	return st
}

// buy creates a Checkout Session through the shop and returns its id.
func (st *stack) buy(t *testing.T) string {
	t.Helper()
	res, err := http.Post(st.shopURL+"/create-checkout-session", "application/json", strings.NewReader(`{"productId":"tshirt","quantity":2}`))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct{ SessionID string }
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil || res.StatusCode != 200 {
		t.Fatalf("checkout: %d %v", res.StatusCode, err)
	}
	return body.SessionID
}

// sim posts to the simulator: the hosted page or a control endpoint.
func (st *stack) sim(t *testing.T, path string, form url.Values) {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.PostForm(st.simURL+path, form)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode >= 400 {
		t.Fatalf("POST %s: %d", path, res.StatusCode)
	}
}

func (st *stack) pay(t *testing.T, id, outcome string) {
	t.Helper()
	st.sim(t, "/pay/"+id, url.Values{"outcome": {outcome}, "email": {"buyer@example.com"}, "card": {"4242 4242 4242 4242"}})
}

func (st *stack) status(t *testing.T, sessionID string) orders.Status {
	t.Helper()
	o, err := st.shop.Orders.OrderBySession(context.Background(), sessionID)
	if err != nil {
		t.Fatal(err)
	}
	return o.Status
}

func TestReconcileAppliesMissedEventsOnce(t *testing.T) {
	st := newStack(t)
	ctx := context.Background()
	paid := []string{st.buy(t), st.buy(t), st.buy(t)}
	for _, id := range paid {
		st.pay(t, id, "pay")
	}
	delayed := st.buy(t)
	st.pay(t, delayed, "delayed")
	st.sim(t, "/sim/sessions/"+delayed+"/async_succeed", nil)
	failed := st.buy(t)
	st.pay(t, failed, "delayed")
	st.sim(t, "/sim/sessions/"+failed+"/async_fail", nil)
	expired := st.buy(t)
	st.sim(t, "/sim/sessions/"+expired+"/expire", nil)
	open := st.buy(t)

	for _, id := range append(paid, delayed, failed, expired, open) {
		if s := st.status(t, id); s != orders.StatusPending {
			t.Fatalf("before reconciling: order of %s is %s, want pending (no webhooks here)", id, s)
		}
	}

	rep, err := st.shop.Reconcile(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// 3 completed (paid), 2 completed (unpaid) + succeeded + failed, 1 expired.
	if rep.Applied != 8 || rep.Duplicates != 0 || rep.Listed != 8 {
		t.Errorf("first run: got %+v, want 8 listed, 8 applied", rep)
	}
	want := map[string]orders.Status{delayed: orders.StatusPaid, failed: orders.StatusFailed, expired: orders.StatusExpired, open: orders.StatusPending}
	for _, id := range paid {
		want[id] = orders.StatusPaid
	}
	for id, w := range want {
		if got := st.status(t, id); got != w {
			t.Errorf("order of %s: got %s, want %s", id, got, w)
		}
	}
	if n := st.fulfilled.Load(); n != 4 {
		t.Errorf("fulfilments: got %d, want 4", n)
	}

	rep, err = st.shop.Reconcile(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Applied != 0 || rep.Listed != 0 {
		t.Errorf("second run: got %+v, want nothing listed past the cursor, nothing applied", rep)
	}
	if n := st.fulfilled.Load(); n != 4 {
		t.Errorf("fulfilments after a second run: got %d, want 4", n)
	}
}

// TestReconcileConcurrentWithWebhooks runs several reconciliations while the
// same events arrive as signed webhooks: each paid order is fulfilled once.
func TestReconcileConcurrentWithWebhooks(t *testing.T) {
	st := newStack(t)
	var ids []string
	for range 6 {
		id := st.buy(t)
		st.pay(t, id, "pay")
		ids = append(ids, id)
	}
	// Fetch the simulator's events to deliver them ourselves, like Stripe.
	res, err := http.Get(st.simURL + "/sim/events")
	if err != nil {
		t.Fatal(err)
	}
	var log struct {
		Events []struct {
			Event json.RawMessage `json:"event"`
		} `json:"events"`
	}
	err = json.NewDecoder(res.Body).Decode(&log)
	res.Body.Close()
	if err != nil || len(log.Events) < 6 {
		t.Fatalf("sim events: %v, got %d", err, len(log.Events))
	}

	var wg sync.WaitGroup
	var applied atomic.Int64
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep, err := st.shop.Reconcile(context.Background(), time.Hour)
			if err != nil {
				t.Error(err)
			}
			applied.Add(int64(rep.Applied))
		}()
	}
	for _, e := range log.Events {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deliver(t, st.shopURL, e.Event, "whsec_reconcile_test")
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if s := st.status(t, id); s != orders.StatusPaid {
			t.Errorf("order of %s: got %s, want paid", id, s)
		}
	}
	if n := st.fulfilled.Load(); n != 6 {
		t.Errorf("fulfilments: got %d, want 6", n)
	}
	if a := applied.Load(); a > 6 {
		t.Errorf("reconciliations applied %d events, want at most 6", a)
	}
}

func deliver(t *testing.T, shopURL string, payload []byte, secret string) {
	t.Helper()
	req, _ := http.NewRequest("POST", shopURL+"/webhook", strings.NewReader(string(payload)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", signHeader(payload, secret))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("webhook: got %d, want 200", res.StatusCode)
	}
}

func signHeader(payload []byte, secret string) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret}).Header
}

// TestReconcileProgressesAcrossRuns gives the window more events than one
// run reads: each run handles the oldest it has not seen, and the runs
// together apply every event once, in the order Stripe created them.
func TestReconcileProgressesAcrossRuns(t *testing.T) {
	st := newStack(t)
	ctx := context.Background()
	var ids []string
	for range 7 {
		id := st.buy(t)
		st.pay(t, id, "delayed") // completed, unpaid: then succeeded
		st.sim(t, "/sim/sessions/"+id+"/async_succeed", nil)
		ids = append(ids, id)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	opts := reconcile.Options{Since: time.Now().Add(-time.Hour), MaxEvents: 3}
	total, runs := 0, 0
	var cursors []string
	for {
		rep, err := reconcile.Run(ctx, st.shop.Events, st.shop.Orders, opts, log)
		if err != nil {
			t.Fatal(err)
		}
		runs++
		if rep.Listed == 0 {
			break
		}
		if rep.Listed > 3 || rep.Duplicates != 0 {
			t.Errorf("run %d: %+v, want at most 3 events, none seen before", runs, rep)
		}
		total += rep.Applied
		cursors = append(cursors, rep.Cursor)
		// Oldest first: after the first run the first order is at least
		// processing, while the last is still pending.
		if runs == 1 {
			if s := st.status(t, ids[0]); s == orders.StatusPending {
				t.Errorf("after the first run the oldest order is still pending")
			}
			if s := st.status(t, ids[len(ids)-1]); s != orders.StatusPending {
				t.Errorf("after the first run the newest order is %s, want pending: the run did not start from the oldest", s)
			}
		}
		if runs > 10 {
			t.Fatal("reconciliation makes no progress")
		}
	}
	if total != 14 || runs != 6 {
		t.Errorf("applied %d events in %d runs, want 14 in 5 runs and a sixth that finds nothing", total, runs)
	}
	if len(slices.Compact(slices.Clone(cursors))) != len(cursors) {
		t.Errorf("the cursor did not move on every run: %v", cursors)
	}
	for _, id := range ids {
		if s := st.status(t, id); s != orders.StatusPaid {
			t.Errorf("order of %s: %s, want paid", id, s)
		}
	}
	if n := st.fulfilled.Load(); n != 7 {
		t.Errorf("fulfilments: %d, want 7", n)
	}
	// New events after the cursor are picked up by the next run.
	id := st.buy(t)
	st.pay(t, id, "pay")
	rep, err := reconcile.Run(ctx, st.shop.Events, st.shop.Orders, opts, log)
	if err != nil || rep.Applied != 1 {
		t.Errorf("after a new payment: %+v, %v; want 1 applied", rep, err)
	}
}

// TestReconcileCursorGone: a cursor whose event Stripe no longer has (older
// than thirty days) starts the walk again from the window's oldest event.
func TestReconcileCursorGone(t *testing.T) {
	st := newStack(t)
	ctx := context.Background()
	id := st.buy(t)
	st.pay(t, id, "pay")
	if err := st.shop.Orders.PutSetting(ctx, "reconcile-cursor:"+strings.Join(orders.ReconciledTypes(), ","), "evt_expired_long_ago"); err != nil {
		t.Fatal(err)
	}
	rep, err := st.shop.Reconcile(ctx, time.Hour)
	if err != nil || rep.Applied != 1 {
		t.Fatalf("got %+v, %v; want the window's one event applied", rep, err)
	}
	if s := st.status(t, id); s != orders.StatusPaid {
		t.Errorf("order: %s, want paid", s)
	}
}
