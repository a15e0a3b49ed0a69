package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/shopcheckout/shop/internal/app"
	"github.com/shopcheckout/shop/internal/config"
	"github.com/shopcheckout/shop/internal/orders"
	"github.com/shopcheckout/shop/internal/outbox"
	"github.com/shopcheckout/shop/internal/sqlite"
	"github.com/shopcheckout/shop/internal/storetest"
)

const (
	stripeSecret  = "whsec_app_outbox"
	fulfilSecret  = "fulfil-secret-0123456789abcdef-0123456789"
	receiverDelay = 2 * time.Second
)

// TestSlowReceiverDoesNotSlowWebhooks: with an order webhook receiver that
// takes 2s per delivery, the shop acknowledges 20 Stripe payment events
// before the receiver has answered even once, and then delivers all 20.
func TestSlowReceiverDoesNotSlowWebhooks(t *testing.T) {
	t.Parallel()
	dbPath := filepath.Join(t.TempDir(), "shop.db")
	var list []orders.Order
	for i := range 20 {
		list = append(list, storetest.NewOrder(fmt.Sprintf("ord_slow%02d", i)))
	}
	store, err := sqlite.Open(t.Context(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	storetest.Seed(t, store, list...)
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var firstAnswer time.Time
	var started int
	delivered := map[string]bool{}
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		started++
		mu.Unlock()
		select {
		case <-time.After(receiverDelay):
		case <-r.Context().Done():
			return
		}
		if err := webhook.ValidatePayload(body, r.Header.Get(outbox.SignatureHeader), fulfilSecret); err != nil {
			t.Errorf("receiver: signature: %v", err)
		}
		var n orders.WebhookBody
		if err := json.Unmarshal(body, &n); err != nil {
			t.Errorf("receiver: body %s: %v", body, err)
		}
		mu.Lock()
		if firstAnswer.IsZero() {
			firstAnswer = time.Now()
		}
		delivered[n.ID] = true
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(recv.Close)

	env := map[string]string{
		"STRIPE_SECRET_KEY": "sk_test_app_outbox", "STRIPE_PUBLISHABLE_KEY": "pk_test_app_outbox",
		"STRIPE_WEBHOOK_SECRET": stripeSecret, "DATABASE_URL": "sqlite:" + dbPath,
		"FULFILMENT_WEBHOOK_URL": recv.URL + "/orders", "FULFILMENT_WEBHOOK_SECRET": fulfilSecret,
		"RATE_LIMIT_PER_MINUTE": "0", "RATE_LIMIT_GLOBAL_PER_SECOND": "0",
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(t.Context(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	shop := httptest.NewServer(a.Handler)
	t.Cleanup(shop.Close)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		a.Outbox.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-stopped })

	var acks []time.Time
	for i, o := range list {
		b := storetest.PaidEventJSON(t, fmt.Sprintf("evt_slow%02d", i), o)
		req, err := http.NewRequest(http.MethodPost, shop.URL+"/webhook", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Stripe-Signature", webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: b, Secret: stripeSecret}).Header)
		res, err := shop.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("webhook %d: got status %d, want 200", i, res.StatusCode)
		}
		acks = append(acks, time.Now())
	}
	mu.Lock()
	inFlight := started
	mu.Unlock()

	ids := make([]string, len(list))
	for i, o := range list {
		ids[i] = o.ID
	}
	deadline := time.Now().Add(time.Minute)
	for {
		ns, err := a.Orders.Notifications(t.Context(), ids)
		if err != nil {
			t.Fatal(err)
		}
		done := 0
		for _, n := range ns {
			if n.Status == orders.NotificationDelivered {
				done++
			}
		}
		if len(ns) == len(list) && done == len(list) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %d of %d notifications delivered", done, len(list))
		}
		time.Sleep(20 * time.Millisecond)
	}

	mu.Lock()
	defer mu.Unlock()
	for i, at := range acks {
		if !at.Before(firstAnswer) {
			t.Errorf("webhook %d acknowledged %v after the receiver's first answer, want before it", i, at.Sub(firstAnswer))
		}
	}
	if len(delivered) != len(list) {
		t.Errorf("receiver: got %d distinct notifications, want %d", len(delivered), len(list))
	}
	t.Logf("20 acknowledgements in %v, all before the receiver's first answer (%v after the first acknowledgement); %d deliveries under way by the last one",
		acks[len(acks)-1].Sub(acks[0]), firstAnswer.Sub(acks[0]), inFlight)

	// The dispatcher reports to the shop's metrics.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got := deliveriesMetric(t, a, "order.paid", "webhook", "delivered")
		if got == float64(len(list)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("shop_notification_deliveries_total{order.paid,webhook,delivered} = %v, want %d", got, len(list))
		}
	}
}

// deliveriesMetric reads one series of shop_notification_deliveries_total
// from the app's metrics (0 when it has none).
func deliveriesMetric(t testing.TB, a *app.App, typ, channel, outcome string) float64 {
	t.Helper()
	families, err := a.Metrics.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "shop_notification_deliveries_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["type"] == typ && labels["channel"] == channel && labels["outcome"] == outcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
