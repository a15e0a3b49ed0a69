package postgres_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/shopcheckout/shop/internal/app"
	"github.com/shopcheckout/shop/internal/config"
	"github.com/shopcheckout/shop/internal/orders"
	"github.com/shopcheckout/shop/internal/outbox"
	"github.com/shopcheckout/shop/internal/postgres"
	"github.com/shopcheckout/shop/internal/storetest"
	"github.com/shopcheckout/shop/internal/testenv"
)

// fulfilSecret signs the order webhooks of these tests.
const fulfilSecret = "fulfil-secret-0123456789abcdef-0123456789"

var notificationID = regexp.MustCompile(`^ntf_[a-z2-7]{26}$`)

// orderReceiver is the shop owner's order webhook endpoint: it checks each
// signature and counts what it gets, per notification and per order.
type orderReceiver struct {
	t       testing.TB
	mu      sync.Mutex
	hits    int
	perID   map[string]int             // requests per notification id
	ids     map[string]map[string]bool // notification ids per order
	firstAt map[string]time.Time       // first request per notification id
	bad     int                        // requests with a bad signature or body
}

func newOrderReceiver(t testing.TB) *orderReceiver {
	t.Helper()
	return &orderReceiver{t: t, perID: map[string]int{}, ids: map[string]map[string]bool{}, firstAt: map[string]time.Time{}}
}

func (rc *orderReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	var n orders.WebhookBody
	switch {
	case webhook.ValidatePayload(body, r.Header.Get(outbox.SignatureHeader), fulfilSecret) != nil,
		json.Unmarshal(body, &n) != nil, !notificationID.MatchString(n.ID), n.Type != orders.NotifyOrderPaid, n.Data.Order.ID == "":
		rc.t.Errorf("receiver: bad signature or body: %s", body)
		rc.mu.Lock()
		rc.bad++
		rc.mu.Unlock()
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	rc.hits++
	if rc.perID[n.ID] == 0 {
		rc.firstAt[n.ID] = time.Now()
	}
	rc.perID[n.ID]++
	if rc.ids[n.Data.Order.ID] == nil {
		rc.ids[n.Data.Order.ID] = map[string]bool{}
	}
	rc.ids[n.Data.Order.ID][n.ID] = true
	rc.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// counts returns the requests taken and the distinct notification ids.
func (rc *orderReceiver) counts() (hits, distinct int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.hits, len(rc.perID)
}

// countingTransport counts the requests one instance's outbox sends.
type countingTransport struct {
	base http.RoundTripper
	sent atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.sent.Add(1)
	return c.base.RoundTrip(r)
}

// outboxShop is one shop instance on the test schema, with its outbox
// running until the test ends.
type outboxShop struct {
	app  *app.App
	url  string // its HTTP server
	sent *countingTransport
}

// newOutboxApp builds a shop on dbURL whose order webhook goes to
// receiverURL through client (nil for a default one), closed when the test
// ends.
func newOutboxApp(t testing.TB, dbURL, receiverURL string, client *http.Client) *app.App {
	t.Helper()
	env := map[string]string{
		"STRIPE_SECRET_KEY": "sk_test_outbox", "STRIPE_PUBLISHABLE_KEY": "pk_test_outbox",
		"STRIPE_WEBHOOK_SECRET": instancesSecret, "DATABASE_URL": dbURL,
		"FULFILMENT_WEBHOOK_URL": receiverURL, "FULFILMENT_WEBHOOK_SECRET": fulfilSecret,
		"RATE_LIMIT_PER_MINUTE": "0", "RATE_LIMIT_GLOBAL_PER_SECOND": "0",
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(t.Context(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), app.Options{OutboxHTTPClient: client})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// startOutboxShop builds a shop on dbURL whose order webhook goes to
// receiverURL, serves it, and runs its dispatcher until the test ends.
func startOutboxShop(t testing.TB, dbURL, receiverURL string) outboxShop {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = outbox.DefaultWorkers
	t.Cleanup(tr.CloseIdleConnections)
	sent := &countingTransport{base: tr}
	a := newOutboxApp(t, dbURL, receiverURL, &http.Client{Transport: sent})
	srv := httptest.NewServer(a.Handler)
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		a.Outbox.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-stopped })
	return outboxShop{app: a, url: srv.URL, sent: sent}
}

// seedOrders inserts n pending orders into the schema at dbURL and returns
// them.
func seedOrders(t testing.TB, dbURL, prefix string, n int) []orders.Order {
	t.Helper()
	store, err := postgres.Open(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	list := make([]orders.Order, n)
	for i := range list {
		list[i] = storetest.NewOrder(fmt.Sprintf("ord_%s%05d", prefix, i))
	}
	storetest.Seed(t, store, list...)
	return list
}

// TestOutboxTwoInstances pays 2,000 orders through the webhooks of two
// shops on one PostgreSQL, both running their outbox: the receiver gets one
// order.paid notification id per order, every one with a valid signature,
// redeliveries stay under 1%, and every notification row ends delivered.
func TestOutboxTwoInstances(t *testing.T) {
	const total = 2000
	dbURL := testenv.PostgresSchema(t, 8)
	list := seedOrders(t, dbURL, "out", total)
	rc := newOrderReceiver(t)
	recv := httptest.NewServer(rc)
	t.Cleanup(recv.Close) // last: after both dispatchers stopped
	shops := []outboxShop{startOutboxShop(t, dbURL, recv.URL+"/orders"), startOutboxShop(t, dbURL, recv.URL+"/orders")}

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	start := time.Now()
	work := make(chan int, total)
	for i := range total {
		work <- i
	}
	close(work)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := range work {
				b := storetest.PaidEventJSON(t, fmt.Sprintf("evt_out%05d", i), list[i])
				req, err := http.NewRequest(http.MethodPost, shops[i%2].url+"/webhook", bytes.NewReader(b))
				if err != nil {
					t.Error(err)
					return
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Stripe-Signature", webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: b, Secret: instancesSecret}).Header)
				res, err := client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					t.Errorf("webhook %d: got status %d, want 200", i, res.StatusCode)
				}
			}
		})
	}
	wg.Wait()
	acked := time.Since(start)
	if t.Failed() {
		t.FailNow()
	}

	wait := func(what string, done func() (bool, string)) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Minute)
		for {
			ok, state := done()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("gave up waiting for %s: %s", what, state)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	wait("every notification at the receiver", func() (bool, string) {
		hits, distinct := rc.counts()
		return distinct == total, fmt.Sprintf("%d distinct ids in %d requests, want %d", distinct, hits, total)
	})
	received := time.Since(start)
	ids := make([]string, total)
	for i, o := range list {
		ids[i] = o.ID
	}
	var rows []orders.Notification
	wait("every notification recorded delivered", func() (bool, string) {
		var err error
		if rows, err = shops[0].app.Orders.Notifications(t.Context(), ids); err != nil {
			t.Fatal(err)
		}
		done := 0
		for _, n := range rows {
			if n.Status == orders.NotificationDelivered {
				done++
			}
		}
		return len(rows) == total && done == total, fmt.Sprintf("%d of %d rows delivered", done, len(rows))
	})
	recorded := time.Since(start)

	rc.mu.Lock()
	defer rc.mu.Unlock()
	rowOf := map[string]orders.Notification{}
	retried := 0
	for _, n := range rows {
		rowOf[n.OrderID] = n
		if n.Attempts > 1 {
			retried++
		}
	}
	for _, o := range list {
		got := rc.ids[o.ID]
		if len(got) != 1 {
			t.Errorf("order %s: got %d notification ids at the receiver, want 1", o.ID, len(got))
			continue
		}
		if row := rowOf[o.ID]; !got[row.ID] || row.Type != orders.NotifyOrderPaid || row.Channel != orders.ChannelWebhook {
			t.Errorf("order %s: receiver got %v, want the stored %s %s id %s", o.ID, got, row.Channel, row.Type, row.ID)
		}
	}
	redelivered, twice := rc.hits-len(rc.perID), 0
	for _, n := range rc.perID {
		if n > 1 {
			twice++
		}
	}
	if limit := total / 100; redelivered >= limit {
		t.Errorf("redeliveries: got %d of %d, want under 1%% (%d)", redelivered, total, limit)
	}
	if rc.bad != 0 {
		t.Errorf("receiver: got %d requests with a bad signature or body, want 0", rc.bad)
	}
	t.Logf("two instances, %d orders paid through 16 concurrent webhook clients: all acknowledged after %v, all %d ids at the receiver after %v, all rows delivered after %v",
		total, acked.Round(time.Millisecond), len(rc.perID), received.Round(time.Millisecond), recorded.Round(time.Millisecond))
	t.Logf("receiver: %d requests for %d distinct ids: %d redeliveries (%d ids more than once), %d rows with more than one attempt; instance A sent %d, instance B sent %d",
		rc.hits, len(rc.perID), redelivered, twice, retried, shops[0].sent.sent.Load(), shops[1].sent.sent.Load())
}

// TestOutboxTakeover: a notification claimed by an instance that died
// before recording anything is not sent while the claim lasts, and a live
// instance's dispatcher delivers it once the claim has run out.
func TestOutboxTakeover(t *testing.T) {
	dbURL := testenv.PostgresSchema(t, 8)
	o := seedOrders(t, dbURL, "take", 1)[0]
	rc := newOrderReceiver(t)
	recv := httptest.NewServer(rc)
	t.Cleanup(recv.Close)

	// The instance that dies: it pays the order, claims the notification for
	// 3s, and is never heard of again.
	dead := newOutboxApp(t, dbURL, recv.URL+"/orders", nil)
	if _, err := dead.Orders.HandleEvent(t.Context(), storetest.CompletedEvent("evt_take", o, "paid")); err != nil {
		t.Fatal(err)
	}
	claimed, err := dead.Orders.ClaimNotifications(t.Context(), "dead", 10, 3*time.Second)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("dead holder's claim: got %d notifications, %v; want 1", len(claimed), err)
	}
	if other, err := dead.Orders.ClaimNotifications(t.Context(), "other", 10, time.Minute); err != nil || len(other) != 0 {
		t.Fatalf("claim while the dead holder's lasts: got %d notifications, %v; want none", len(other), err)
	}

	live := startOutboxShop(t, dbURL, recv.URL+"/orders")
	deadline := time.Now().Add(time.Minute)
	for {
		ns, err := live.app.Orders.Notifications(t.Context(), []string{o.ID})
		if err != nil {
			t.Fatal(err)
		}
		if len(ns) == 1 && ns[0].Status == orders.NotificationDelivered {
			if ns[0].Attempts != 1 || ns[0].ClaimedBy != "" {
				t.Errorf("delivered notification: got %d attempts, claimed by %q; want 1 attempt and no claim", ns[0].Attempts, ns[0].ClaimedBy)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for the live instance to deliver: got %s", describe(ns))
		}
		time.Sleep(20 * time.Millisecond)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	first, ok := rc.firstAt[claimed[0].ID]
	if !ok || rc.hits != 1 {
		t.Fatalf("receiver: got %d requests (%v), want 1 for %s", rc.hits, rc.perID, claimed[0].ID)
	}
	if first.Before(claimed[0].ClaimedUntil) {
		t.Errorf("delivered %v before the dead holder's claim ran out, want after", claimed[0].ClaimedUntil.Sub(first))
	}
	t.Logf("taken over and delivered %v after the dead holder's claim ran out (lease of a live dispatcher: %v)",
		first.Sub(claimed[0].ClaimedUntil).Round(time.Millisecond), live.app.Outbox.Lease())
}

// describe sums notifications up without their bodies.
func describe(ns []orders.Notification) string {
	var parts []string
	for _, n := range ns {
		parts = append(parts, fmt.Sprintf("%s %s after %d attempts (claimed by %q until %v)", n.ID, n.Status, n.Attempts, n.ClaimedBy, n.ClaimedUntil))
	}
	return fmt.Sprintf("%d notifications: %s", len(ns), strings.Join(parts, "; "))
}
