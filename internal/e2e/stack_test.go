package e2e

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/shopcheckout/shop/internal/app"
	"github.com/shopcheckout/shop/internal/catalog"
	"github.com/shopcheckout/shop/internal/config"
	"github.com/shopcheckout/shop/internal/orders"
	"github.com/shopcheckout/shop/internal/stripesim"
	"github.com/shopcheckout/shop/internal/testenv"
)

// stack is one shop and one Checkout simulator, wired to each other, serving
// on 127.0.0.1.
type stack struct {
	shop      *app.App
	shopURL   string
	simURL    string
	fulfilled *receiver
	mailbox   testenv.Mailbox
	// dbPath is the shop's SQLite file, for a test that seeds what no
	// request can make (a notification dead after 72 hours of failures).
	dbPath string
}

// newStack starts a fresh shop (SQLite in a temporary directory, demo mode,
// an order webhook that counts notifications) and a simulator that signs its webhooks with the
// shop's secret. Both stop when the test ends; their logs are shown if it
// failed.
func newStack(t testing.TB) *stack {
	t.Helper()
	return newStackWith(t, stackOptions{})
}

// stackOptions turn on parts of the shop a test needs.
type stackOptions struct {
	// mail sends the shop's emails to the test mailpit, to shopper
	// addresses unique to the test.
	mail bool
	// products, when set, is the shop's catalogue (a CATALOG_FILE)
	// instead of the demo's one T-shirt.
	products []catalog.Product
	// embedded opens Checkout in the shop's pages (CHECKOUT_UI=embedded).
	embedded bool
	// simStripeJS has the pages load Stripe.js from the simulator's
	// stand-in (STRIPE_JS_URL=<simulator>/v3/) instead of js.stripe.com,
	// which the browser tests answer with a stub or block.
	simStripeJS bool
}

// adminPassword is the stack's admin password (user admin).
const adminPassword = "e2e-admin-password-0123456789"

func newStackWith(t testing.TB, opts stackOptions) *stack {
	t.Helper()
	mockURL := testenv.StripeMock(t)

	logs := &testenv.SyncBuffer{}
	t.Cleanup(func() { // registered first, so it runs after everything has stopped
		if s := logs.String(); t.Failed() && s != "" {
			t.Logf("shop and simulator logs:\n%s", s)
		}
	})
	log := slog.New(slog.NewTextHandler(logs, nil))

	shopLn := listen(t)
	simLn := listen(t)
	st := &stack{
		shopURL:   "http://" + shopLn.Addr().String(),
		simURL:    "http://" + simLn.Addr().String(),
		fulfilled: newReceiver(t),
		dbPath:    filepath.Join(t.TempDir(), "shop.db"),
	}
	secret := "whsec_" + rand.Text()

	sim, err := stripesim.New(stripesim.Config{
		MockURL:       mockURL,
		PublicURL:     st.simURL,
		WebhookURL:    st.shopURL + "/webhook",
		WebhookSecret: secret,
		RetryFor:      20 * time.Second,
		Logger:        log.With("component", "sim"),
	})
	if err != nil {
		t.Fatalf("stripesim.New: %v", err)
	}
	simSrv := httptest.NewUnstartedServer(sim.Handler())
	simSrv.Listener.Close()
	simSrv.Listener = simLn
	simSrv.Start()
	t.Cleanup(func() {
		simSrv.Close()
		sim.Close()
	})

	env := map[string]string{
		"STRIPE_SECRET_KEY":         "sk_test_e2eShopKey",
		"STRIPE_PUBLISHABLE_KEY":    "pk_test_e2eShopKey",
		"STRIPE_WEBHOOK_SECRET":     secret,
		"STRIPE_API_BASE":           st.simURL,
		"STRIPE_TIMEOUT":            "10s",
		"BASE_URL":                  st.shopURL,
		"DATABASE_URL":              "sqlite:" + st.dbPath,
		"CHECKOUT_ORIGINS":          st.simURL,
		"DEMO_MODE":                 "true",
		"FULFILMENT_WEBHOOK_URL":    st.fulfilled.url,
		"FULFILMENT_WEBHOOK_SECRET": receiverSecret,
		"ADMIN_PASSWORD":            adminPassword,
	}
	if opts.products != nil {
		env["CATALOG_FILE"] = writeCatalog(t, opts.products)
	}
	if opts.embedded {
		env["CHECKOUT_UI"] = "embedded"
	}
	if opts.simStripeJS {
		env["STRIPE_JS_URL"] = st.simURL + "/v3/"
	}
	if opts.mail {
		smtpAddr, apiURL := testenv.Mailpit(t)
		env["SMTP_URL"], env["MAIL_FROM"] = "smtp://"+smtpAddr, "E2E Shop <shop@e2e.test>"
		st.mailbox = testenv.Mailbox{URL: apiURL}
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	st.shop, err = app.New(ctx, cfg, log.With("component", "shop"), app.Options{})
	if err != nil {
		cancel()
		t.Fatalf("app.New: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- st.shop.ServeListener(ctx, shopLn, io.Discard) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("shop: %v", err)
		}
		if err := st.shop.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return st
}

// writeCatalog writes products as a catalogue file and returns its path.
func writeCatalog(t testing.TB, products []catalog.Product) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{"products": products})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "catalog.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	return ln
}

// waitOrder polls the store until the order of the Checkout Session has the
// status want (and, for paid, has been fulfilled), and returns it.
func (s *stack) waitOrder(t testing.TB, sessionID string, want orders.Status) orders.Order {
	t.Helper()
	var o orders.Order
	err := poll(10*time.Second, func() (bool, error) {
		var err error
		o, err = s.shop.Orders.OrderBySession(context.Background(), sessionID)
		if err != nil {
			return false, err
		}
		return o.Status == want && (want != orders.StatusPaid || o.FulfilledAt != nil), nil
	})
	if err != nil {
		t.Fatalf("order of session %s: got status %q (fulfilled at %v), want %q: %v", sessionID, o.Status, o.FulfilledAt, want, err)
	}
	return o
}

// order returns the order of the Checkout Session as it is now.
func (s *stack) order(t testing.TB, sessionID string) orders.Order {
	t.Helper()
	o, err := s.shop.Orders.OrderBySession(context.Background(), sessionID)
	if err != nil {
		t.Fatalf("order of session %s: %v", sessionID, err)
	}
	return o
}

// waitWebhooks waits until the simulator has delivered every event it has
// logged to the shop, and returns their types, oldest first.
func (s *stack) waitWebhooks(t testing.TB) []string {
	t.Helper()
	var types []string
	err := poll(20*time.Second, func() (bool, error) {
		var body struct {
			Events []struct {
				Type       string `json:"type"`
				Deliveries []struct {
					State string `json:"state"`
				} `json:"deliveries"`
			} `json:"events"`
		}
		if err := getJSON(s.simURL+"/sim/events", &body); err != nil {
			return false, err
		}
		types = types[:0]
		for i := len(body.Events) - 1; i >= 0; i-- {
			ev := body.Events[i]
			if len(ev.Deliveries) == 0 {
				return false, nil
			}
			for _, d := range ev.Deliveries {
				if d.State != "delivered" {
					return false, nil
				}
			}
			types = append(types, ev.Type)
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("webhooks not delivered: %v", err)
	}
	return types
}

// simPost calls a control endpoint of the simulator, such as
// /sim/sessions/{id}/async_succeed.
func (s *stack) simPost(t testing.TB, path string) {
	t.Helper()
	resp, err := http.Post(s.simURL+path, "application/x-www-form-urlencoded", nil)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		t.Fatalf("POST %s: got %s, want 200 OK: %s", path, resp.Status, body)
	}
}

// assertFulfilledOnce checks that the order webhook received exactly one
// order.paid notification for the order, and none for any other, once every
// Stripe webhook has landed.
func (s *stack) assertFulfilledOnce(t testing.TB, orderID string) {
	t.Helper()
	s.waitWebhooks(t)
	if err := poll(10*time.Second, func() (bool, error) { return s.fulfilled.count(orderID) > 0, nil }); err != nil {
		t.Fatalf("no order.paid notification for %s: %v", orderID, err)
	}
	time.Sleep(100 * time.Millisecond) // a second one would arrive by now
	if got := s.fulfilled.count(orderID); got != 1 {
		t.Errorf("order.paid notifications for %s: got %d, want 1", orderID, got)
	}
	if got := s.fulfilled.total(); got != 1 {
		t.Errorf("order.paid notifications in all: got %d, want 1", got)
	}
}

const receiverSecret = "e2e-receiver-secret-0123456789abcdef"

// receiver is the shop owner's order webhook: it checks each delivery's
// signature and counts distinct order.paid notifications per order.
type receiver struct {
	url string
	mu  sync.Mutex
	ids map[string]map[string]bool // order id → notification ids
}

func newReceiver(t testing.TB) *receiver {
	r := &receiver{ids: map[string]map[string]bool{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil || webhook.ValidatePayload(body, req.Header.Get("Shop-Signature"), receiverSecret) != nil {
			http.Error(w, "bad signature", http.StatusBadRequest)
			return
		}
		var n struct {
			ID, Type string
			Data     struct{ Order orders.Order }
		}
		if err := json.Unmarshal(body, &n); err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		if n.Type == orders.NotifyOrderPaid {
			r.mu.Lock()
			if r.ids[n.Data.Order.ID] == nil {
				r.ids[n.Data.Order.ID] = map[string]bool{}
			}
			r.ids[n.Data.Order.ID][n.ID] = true
			r.mu.Unlock()
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	r.url = srv.URL
	return r
}

func (r *receiver) count(orderID string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ids[orderID])
}

func (r *receiver) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, ids := range r.ids {
		n += len(ids)
	}
	return n
}

// poll calls done every 50ms until it reports true, fails, or timeout passes.
func poll(timeout time.Duration, done func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := done()
		switch {
		case ok:
			return nil
		case time.Now().After(deadline):
			if err == nil {
				err = errors.New("timed out after " + timeout.String())
			}
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func getJSON(url string, v any) error {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
