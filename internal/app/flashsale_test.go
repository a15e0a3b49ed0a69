package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopcheckout/shop/internal/app"
	"github.com/shopcheckout/shop/internal/config"
	"github.com/shopcheckout/shop/internal/orders"
	"github.com/shopcheckout/shop/internal/stripesim"
	"github.com/shopcheckout/shop/internal/testenv"
)

// dropStock is how many of the flash sale's print there are.
const dropStock = 25

// saleCatalog is a shop with one limited print.
const saleCatalog = `{"products": [
  {"id": "drop", "name": "Drop print", "unitAmount": 4000, "currency": "usd", "stock": 25, "maxQuantity": 5},
  {"id": "tshirt", "name": "T-shirt", "unitAmount": 2000, "currency": "usd"}
]}`

// saleClock is the shops' clock, which a test may move on.
type saleClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *saleClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *saleClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

// saleStack is the Checkout simulator (over stripe-mock) and one or more
// shops on one database, with the simulator's webhooks dealt out to the
// shops in turn, as a load balancer would.
type saleStack struct {
	sim     string
	shops   []string
	apps    []*app.App
	clock   *saleClock
	creates atomic.Int32 // Checkout Sessions the shops asked the simulator for
	// dropHooks, while set, has the balancer refuse the simulator's
	// webhooks (503) without passing them on, as a shop that is down would.
	dropHooks atomic.Bool
	// onExpire, if set, sees each expiry the shops ask the simulator
	// for, before the simulator acts on it.
	onExpire func(session string)
	paid     atomic.Int32 // fulfilments, across the shops
	mu       sync.Mutex
	perOrder map[string]int // fulfilments of each order, across the shops
}

// stackTweak changes a saleStack's simulator or shop settings before they
// start.
type stackTweak func(env map[string]string, sim *stripesim.Config)

func newSaleStack(t *testing.T, dbURL string, instances int, tweaks ...stackTweak) *saleStack {
	t.Helper()
	mockURL := testenv.StripeMock(t)
	st := &saleStack{clock: &saleClock{}, perOrder: map[string]int{}}
	logs := &testenv.SyncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", logs.String())
		}
	})
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))

	simLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	st.sim = "http://" + simLn.Addr().String()
	var shopLns []net.Listener
	for range instances {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		shopLns = append(shopLns, ln)
		st.shops = append(st.shops, "http://"+ln.Addr().String())
	}
	var turn atomic.Int32
	balancer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if st.dropHooks.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		shop := st.shops[int(turn.Add(1))%len(st.shops)]
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodPost, shop+"/webhook", bytes.NewReader(body))
		req.Header = r.Header.Clone()
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer res.Body.Close()
		w.WriteHeader(res.StatusCode)
		io.Copy(w, res.Body)
	}))
	t.Cleanup(balancer.Close)

	const secret = "whsec_flash_sale"
	simCfg := stripesim.Config{
		MockURL: mockURL, PublicURL: st.sim, WebhookURL: balancer.URL + "/webhook", WebhookSecret: secret,
		RetryFor: 30 * time.Second, Logger: log.With("component", "sim"),
	}
	catalogFile := filepath.Join(t.TempDir(), "catalog.json")
	if err := os.WriteFile(catalogFile, []byte(saleCatalog), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"STRIPE_SECRET_KEY": "sk_test_flashSale", "STRIPE_PUBLISHABLE_KEY": "pk_test_flashSale",
		"STRIPE_WEBHOOK_SECRET": secret, "STRIPE_API_BASE": st.sim, "STRIPE_TIMEOUT": "20s",
		"DATABASE_URL": dbURL, "CATALOG_FILE": catalogFile, "BASE_URL": st.shops[0],
		// Each shopper has an address of their own, which the per-client
		// limit (left at its default) sees through the proxy header. The
		// global cap, which guards Stripe's rate limit, is off: the test
		// is about stock, not about pacing Stripe.
		"TRUSTED_PROXIES": "127.0.0.1", "RATE_LIMIT_GLOBAL_PER_SECOND": "0",
	}
	for _, tw := range tweaks {
		tw(env, &simCfg)
	}
	sim, err := stripesim.New(simCfg)
	if err != nil {
		t.Fatal(err)
	}
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/checkout/sessions" {
			st.creates.Add(1)
		}
		if id, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/v1/checkout/sessions/"), "/expire"); ok && st.onExpire != nil {
			st.onExpire(id)
		}
		sim.Handler().ServeHTTP(w, r)
	})
	simSrv := &httptest.Server{Listener: simLn, Config: &http.Server{Handler: counted}}
	simSrv.Start()
	t.Cleanup(func() { simSrv.Close(); sim.Close() })

	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	for i := range instances {
		a, err := app.New(t.Context(), cfg, log.With("instance", i), app.Options{
			Now: st.clock.Now, OnFulfilled: func(o orders.Order) {
				st.paid.Add(1)
				st.mu.Lock()
				defer st.mu.Unlock()
				st.perOrder[o.ID]++
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		srv := &httptest.Server{Listener: shopLns[i], Config: &http.Server{Handler: a.Handler}}
		srv.Start()
		t.Cleanup(func() {
			srv.Close()
			if err := a.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		})
		st.apps = append(st.apps, a)
	}
	return st
}

// shopperAddr is the i-th shopper's address: no two share a /24.
func shopperAddr(i int) string { return fmt.Sprintf("10.%d.%d.7", i/250, i%250) }

// attempt is one shopper's try at checkout.
type attempt struct {
	status  int
	session string
	message string
}

// buy asks shop for n of product as the shopper at addr, in JSON.
func buy(t *testing.T, shop, addr, product string, n int) attempt {
	body := fmt.Sprintf(`{"productId":%q,"quantity":%d}`, product, n)
	req, _ := http.NewRequest(http.MethodPost, shop+"/create-checkout-session", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", addr)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("checkout: %v", err)
		return attempt{}
	}
	defer res.Body.Close()
	var got struct {
		SessionID string `json:"sessionId"`
		Error     struct{ Message string }
	}
	if err := json.NewDecoder(res.Body).Decode(&got); err != nil {
		t.Errorf("checkout answered %s without JSON: %v", res.Status, err)
	}
	return attempt{status: res.StatusCode, session: got.SessionID, message: got.Error.Message}
}

// level is the drop's stock row, as the first shop reads it.
func (st *saleStack) level(t *testing.T) orders.StockLevel {
	t.Helper()
	list, err := st.apps[0].Orders.StockLevels(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range list {
		if l.ProductID == "drop" {
			return l
		}
	}
	t.Fatal("no stock row for the drop")
	return orders.StockLevel{}
}

func (st *saleStack) wantLevel(t *testing.T, left, held, sold int64) {
	t.Helper()
	if l := st.level(t); l.Stock == nil || *l.Stock != left || l.Held != held || l.Sold != sold {
		t.Errorf("drop: %s; want %d left, %d held, %d sold", describe(l), left, held, sold)
	}
}

func describe(l orders.StockLevel) string {
	left := "unlimited"
	if l.Stock != nil {
		left = fmt.Sprint(*l.Stock)
	}
	return fmt.Sprintf("%s left, %d held, %d sold", left, l.Held, l.Sold)
}

// waitLevel waits until the drop's row reads left, held, sold: the
// simulator's webhooks arrive on their own time.
func (st *saleStack) waitLevel(t *testing.T, left, held, sold int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		l := st.level(t)
		if l.Stock != nil && *l.Stock == left && l.Held == held && l.Sold == sold {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("drop: %s after 30s; want %d left, %d held, %d sold", describe(l), left, held, sold)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// simPost posts a form to the simulator and returns the status.
func (st *saleStack) simPost(t *testing.T, path string, form url.Values) int {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.PostForm(st.sim+path, form)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

func (st *saleStack) pay(t *testing.T, session string) int {
	return st.simPost(t, "/pay/"+session, url.Values{"email": {"fan@example.com"}, "card": {"4242 4242 4242 4242"}, "outcome": {"pay"}})
}

// flashSale races 300 shoppers, dealt out to the stack's shops, for the
// drop's 25 prints; pays for 20 and lets 5 expire; and sells the 5 again.
func flashSale(t *testing.T, st *saleStack) {
	const shoppers = 300
	// Watch the counts while the shoppers race: never below zero, and
	// never more than the drop's prints between them.
	stop := make(chan struct{})
	watched := make(chan string, 1)
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			default:
			}
			list, err := st.apps[len(st.apps)-1].Orders.StockLevels(context.Background())
			if err != nil {
				watched <- err.Error()
				return
			}
			for _, l := range list {
				if l.ProductID == "drop" && (l.Stock == nil || *l.Stock < 0 || l.Held < 0 || *l.Stock+l.Held+l.Sold != dropStock) {
					watched <- describe(l)
					return
				}
			}
			time.Sleep(time.Millisecond)
		}
	}()

	results := make([]attempt, shoppers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range shoppers {
		wg.Go(func() {
			<-start
			results[i] = buy(t, st.shops[i%len(st.shops)], shopperAddr(i), "drop", 1)
		})
	}
	close(start)
	wg.Wait()
	close(stop)
	if bad, ok := <-watched; ok {
		t.Errorf("during the race the drop read %s", bad)
	}

	var sessions []string
	refused := 0
	for i, r := range results {
		switch r.status {
		case http.StatusOK:
			sessions = append(sessions, r.session)
		case http.StatusConflict:
			refused++
			if !strings.Contains(strings.ToLower(r.message), "sold out") {
				t.Errorf("shopper %d: refused with %q, want it to say the drop is sold out", i, r.message)
			}
		default:
			t.Errorf("shopper %d: %d %q, want 200 or 409", i, r.status, r.message)
		}
	}
	if len(sessions) != dropStock || refused != shoppers-dropStock {
		t.Fatalf("%d shoppers for %d prints: %d placed, %d refused; want %d and %d", shoppers, dropStock, len(sessions), refused, dropStock, shoppers-dropStock)
	}
	if n := st.creates.Load(); n != dropStock {
		t.Errorf("the shops asked Stripe for %d sessions, want %d: a refusal makes no Stripe call", n, dropStock)
	}
	st.wantLevel(t, 0, dropStock, 0)
	page, err := st.apps[0].Orders.ListOrders(t.Context(), orders.ListFilter{Limit: 1000})
	if err != nil || len(page.Orders) != dropStock {
		t.Fatalf("%d orders stored (%v), want %d", len(page.Orders), err, dropStock)
	}

	// Pay for 20, let 5 expire.
	for i, id := range sessions {
		if i < 20 {
			if code := st.pay(t, id); code != http.StatusSeeOther {
				t.Fatalf("paying %s: %d", id, code)
			}
		} else if code := st.simPost(t, "/sim/sessions/"+id+"/expire", nil); code >= 300 {
			t.Fatalf("expiring %s: %d", id, code)
		}
	}
	st.waitLevel(t, 5, 0, 20)
	deadline := time.Now().Add(30 * time.Second)
	for st.paid.Load() < 20 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := st.paid.Load(); n != 20 {
		t.Errorf("%d orders fulfilled, want 20", n)
	}

	// The five are for sale again, and only five.
	for i := range 6 {
		r := buy(t, st.shops[i%len(st.shops)], shopperAddr(shoppers+i), "drop", 1)
		want := http.StatusOK
		if i == 5 {
			want = http.StatusConflict
		}
		if r.status != want {
			t.Errorf("shopper %d after the sale: %d %q, want %d", shoppers+i, r.status, r.message, want)
		}
	}
	st.wantLevel(t, 0, 5, 20)
}

// TestFlashSaleTwoInstancesPostgres: two shops on one PostgreSQL share the
// drop's 25 prints among 300 shoppers, exactly.
func TestFlashSaleTwoInstancesPostgres(t *testing.T) {
	t.Parallel()
	flashSale(t, newSaleStack(t, testenv.PostgresSchema(t, 8), 2))
}

// TestFlashSaleSQLite: the same sale on one shop over SQLite.
func TestFlashSaleSQLite(t *testing.T) {
	t.Parallel()
	flashSale(t, newSaleStack(t, "sqlite:"+filepath.Join(t.TempDir(), "shop.db"), 1))
}

// TestSweeperExpiresTheSession: a hold past its deadline is given back by
// the sweeper only after it has expired the session at Stripe, so the
// shopper's payment page stops taking money before the stock is sold again.
func TestSweeperExpiresTheSession(t *testing.T) {
	t.Parallel()
	st := newSaleStack(t, "sqlite:"+filepath.Join(t.TempDir(), "shop.db"), 1)
	a := buy(t, st.shops[0], shopperAddr(1), "drop", 2)
	b := buy(t, st.shops[0], shopperAddr(2), "drop", 3)
	if a.status != http.StatusOK || b.status != http.StatusOK {
		t.Fatalf("checkout: %d %q, %d %q", a.status, a.message, b.status, b.message)
	}
	st.wantLevel(t, dropStock-5, 5, 0)
	// b pays in time; a's shopper leaves the tab open.
	if code := st.pay(t, b.session); code != http.StatusSeeOther {
		t.Fatalf("paying: %d", code)
	}
	st.waitLevel(t, dropStock-5, 2, 3)

	var expiries []string
	var heldAtExpiry int64
	st.onExpire = func(id string) {
		expiries = append(expiries, id)
		heldAtExpiry = st.level(t).Held
	}
	if n, err := st.apps[0].ReleaseHolds(t.Context(), time.Minute); err != nil || n != 0 || len(expiries) != 0 {
		t.Fatalf("sweep before the deadline: %d, %v, expired %v; want nothing", n, err, expiries)
	}
	st.clock.Advance(33 * time.Minute) // past the session's expires_at (orders.SessionExpiry)
	// The sweep releases the hold, unless the expiry's webhook, which the
	// simulator sends at once, beat it to it: either way the prints are
	// back by the time the sweep returns.
	if _, err := st.apps[0].ReleaseHolds(t.Context(), time.Minute); err != nil {
		t.Fatalf("sweep past the deadline: %v", err)
	}
	st.wantLevel(t, dropStock-3, 0, 3)
	if len(expiries) != 1 || expiries[0] != a.session {
		t.Errorf("the sweep expired %v, want only the unpaid session %s", expiries, a.session)
	}
	if heldAtExpiry != 2 {
		t.Errorf("%d held when the session was expired, want 2: the hold ends only after the session", heldAtExpiry)
	}
	res, err := http.Get(st.sim + "/sim/sessions/" + a.session)
	if err != nil {
		t.Fatal(err)
	}
	var state struct{ Session struct{ Status string } }
	json.NewDecoder(res.Body).Decode(&state)
	res.Body.Close()
	if state.Session.Status != "expired" {
		t.Errorf("the swept order's session is %q at Stripe, want expired", state.Session.Status)
	}
	if code := st.pay(t, a.session); code != http.StatusConflict {
		t.Errorf("paying the swept session: %d, want the simulator's 409 (no longer open)", code)
	}
	o, err := st.apps[0].Orders.OrderBySession(t.Context(), a.session)
	if err != nil || o.HoldState != orders.HoldReleased {
		t.Errorf("swept order: hold %q (%v), want released", o.HoldState, err)
	}
	// A second sweep finds nothing more to do.
	if n, err := st.apps[0].ReleaseHolds(t.Context(), time.Minute); err != nil || n != 0 || len(expiries) != 1 {
		t.Errorf("second sweep: %d, %v, expired %v; want nothing more", n, err, expiries)
	}
	st.wantLevel(t, dropStock-3, 0, 3)
}
