package web

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/shopcheckout/shop/internal/catalog"
	"github.com/shopcheckout/shop/internal/config"
	"github.com/shopcheckout/shop/internal/orders"
	"github.com/shopcheckout/shop/internal/sqlite"
	"github.com/shopcheckout/shop/internal/storetest"
	"github.com/shopcheckout/shop/internal/testenv"
	"github.com/shopcheckout/shop/static"
	"github.com/shopcheckout/shop/templates"
)

const (
	testSecretKey      = "sk_test_51TestSecretKeyValueForTests"
	testPublishableKey = "pk_test_51TestPublishableKeyValue"
	testWebhookSecret  = "whsec_test_secret_one"
	testWebhookSecret2 = "whsec_test_secret_two"
)

// fakeSessions stands in for Stripe's Checkout Sessions API and remembers
// every call.
type fakeSessions struct {
	mu       sync.Mutex
	created  []*stripe.CheckoutSessionParams
	gets     int
	sessions map[string]*stripe.CheckoutSession
	byKey    map[string]*stripe.CheckoutSession // Stripe's idempotency: a key names one session
	newErr   error
	getErr   error
	hang     bool // block until the call's context is done
	// noSecret answers embedded sessions without their client secret.
	noSecret bool
}

func newFakeSessions() *fakeSessions {
	return &fakeSessions{sessions: map[string]*stripe.CheckoutSession{}, byKey: map[string]*stripe.CheckoutSession{}}
}

func (f *fakeSessions) New(p *stripe.CheckoutSessionParams) (*stripe.CheckoutSession, error) {
	f.mu.Lock()
	f.created = append(f.created, p)
	hang, err := f.hang, f.newErr
	f.mu.Unlock()
	if hang {
		<-p.Context.Done()
		return nil, p.Context.Err()
	}
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if p.IdempotencyKey != nil {
		if s, ok := f.byKey[*p.IdempotencyKey]; ok {
			return s, nil
		}
	}
	id := fmt.Sprintf("cs_test_fake%03d", len(f.sessions)+1)
	var total int64
	var items []*stripe.LineItem
	for _, li := range p.LineItems {
		amount := *li.PriceData.UnitAmount * *li.Quantity
		total += amount
		items = append(items, &stripe.LineItem{Description: *li.PriceData.ProductData.Name, Quantity: *li.Quantity, AmountTotal: amount, Currency: stripe.Currency(*li.PriceData.Currency)})
	}
	s := &stripe.CheckoutSession{
		ID: id, URL: "https://checkout.stripe.com/c/pay/" + id,
		Status: stripe.CheckoutSessionStatusOpen, PaymentStatus: stripe.CheckoutSessionPaymentStatusUnpaid,
		AmountSubtotal: total, AmountTotal: total, Currency: stripe.Currency(*p.LineItems[0].PriceData.Currency),
		ClientReferenceID: *p.ClientReferenceID, Metadata: p.Metadata,
		LineItems: &stripe.LineItemList{Data: items},
	}
	if p.UIMode != nil && *p.UIMode == string(stripe.CheckoutSessionUIModeEmbedded) {
		// An embedded session has no page of its own, but a client secret
		// for Stripe.js.
		s.URL, s.UIMode = "", stripe.CheckoutSessionUIModeEmbedded
		if !f.noSecret {
			s.ClientSecret = id + "_secret_fake"
		}
	}
	f.sessions[id] = s
	if p.IdempotencyKey != nil {
		f.byKey[*p.IdempotencyKey] = s
	}
	return s, nil
}

func (f *fakeSessions) Get(id string, p *stripe.CheckoutSessionParams) (*stripe.CheckoutSession, error) {
	f.mu.Lock()
	f.gets++
	hang, err := f.hang, f.getErr
	s, ok := f.sessions[id]
	f.mu.Unlock()
	if hang {
		<-p.Context.Done()
		return nil, p.Context.Err()
	}
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, &stripe.Error{HTTPStatusCode: 404, Type: stripe.ErrorTypeInvalidRequest, Code: stripe.ErrorCodeResourceMissing, Msg: "No such checkout.session"}
	}
	cp := *s
	withRawJSON(&cp)
	return &cp, nil
}

// withRawJSON sets the raw answer stripe-go keeps of a session, as Stripe
// would have sent it: the shop reads sessions from it.
func withRawJSON(s *stripe.CheckoutSession) {
	raw := map[string]any{
		"id": s.ID, "object": "checkout.session", "status": s.Status, "payment_status": s.PaymentStatus,
		"client_reference_id": s.ClientReferenceID, "metadata": s.Metadata, "url": s.URL,
		"amount_subtotal": nil, "amount_total": nil, "currency": nil,
	}
	if s.Currency != "" {
		raw["amount_subtotal"], raw["amount_total"], raw["currency"] = s.AmountSubtotal, s.AmountTotal, s.Currency
	}
	if s.CustomerDetails != nil {
		raw["customer_details"] = map[string]any{"email": s.CustomerDetails.Email}
	}
	b, err := json.Marshal(raw)
	if err != nil {
		panic(err)
	}
	s.LastResponse = &stripe.APIResponse{RawJSON: b}
}

// pay marks a fake session completed, as Checkout would.
func (f *fakeSessions) pay(id, paymentStatus, email string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.sessions[id]
	s.Status = stripe.CheckoutSessionStatusComplete
	s.PaymentStatus = stripe.CheckoutSessionPaymentStatus(paymentStatus)
	s.CustomerDetails = &stripe.CheckoutSessionCustomerDetails{Email: email}
}

func (f *fakeSessions) distinctSessions() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sessions)
}

func (f *fakeSessions) calls() (created, gets int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.created), f.gets
}

func (f *fakeSessions) lastParams(t testing.TB) *stripe.CheckoutSessionParams {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.created) == 0 {
		t.Fatal("no Checkout Session was created")
	}
	return f.created[len(f.created)-1]
}

type testServer struct {
	*Server
	fake    *fakeSessions
	refunds *fakeRefunds
	store   *sqlite.Store
	svc     *orders.Service
	logs    *testenv.SyncBuffer
	dbPath  string
}

// testCartKey signs cart cookies in tests.
var testCartKey = []byte("test-cart-key-0123456789abcdef!!")

// testLinks signs order page links in tests.
var testLinks = orders.LinkKey("test-link-key-0123456789abcdef!!")

type testOption func(*config.Config)

func testConfig() config.Config {
	base, _ := url.Parse("http://shop.test")
	return config.Config{
		SecretKey:      testSecretKey,
		PublishableKey: testPublishableKey,
		WebhookSecrets: []string{testWebhookSecret},
		BaseURL:        base,
		Port:           8000,
		StripeTimeout:  2 * time.Second,
		AdminPassword:  "let-me-in",
		Checkout:       config.CheckoutOptions{Locale: "auto", MaxQuantityDefault: 10},
	}
}

// newTestServer builds the real router over a fresh SQLite store and a fake
// Stripe.
func newTestServer(t testing.TB, opts ...testOption) *testServer {
	t.Helper()
	return newWrappedTestServer(t, nil, opts...)
}

// newWrappedTestServer is newTestServer with the store seen by the server
// wrapped, to observe or break it.
func newWrappedTestServer(t testing.TB, wrap func(orders.Store) orders.Store, opts ...testOption) *testServer {
	t.Helper()
	return newClockedTestServer(t, wrap, nil, opts...)
}

// newClockedTestServer is newWrappedTestServer with the server's clock (nil:
// time.Now).
func newClockedTestServer(t testing.TB, wrap func(orders.Store) orders.Store, now func() time.Time, opts ...testOption) *testServer {
	t.Helper()
	cfg := testConfig()
	for _, o := range opts {
		o(&cfg)
	}
	dbPath := filepath.Join(t.TempDir(), "shop.db")
	store, err := sqlite.Open(context.Background(), dbPath)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	logs := &testenv.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	fake, refunds := newFakeSessions(), newFakeRefunds()
	cat, err := catalog.New([]catalog.Product{
		{ID: "tshirt", Name: "T-shirt", Description: "Comfortable cotton T-shirt", UnitAmount: 2000, Currency: "usd"},
		{ID: "mug", Name: "Mug <b>bold</b>", UnitAmount: 1250, Currency: "eur", MaxQuantity: 3},
	}, cfg.Checkout.MaxQuantityDefault)
	if cfg.CatalogFile != "" { // a test's own catalogue (see withCatalog)
		cat, err = catalog.Load(cfg.CatalogFile, cfg.Checkout.MaxQuantityDefault)
	}
	if err != nil {
		t.Fatal(err)
	}
	var seen orders.Store = store
	if wrap != nil {
		seen = wrap(store)
	}
	// Every notification channel is on, so fulfilments queue notifications
	// (nothing delivers them here).
	svc := orders.NewService(seen, log, orders.WithChannels(storetest.AllChannels))
	srv, err := NewServer(Deps{
		Config: cfg, Catalog: catalog.Fixed(cat), Orders: svc, Links: testLinks, FormKey: []byte("test-form-key-0123456789abcdef!!"), CartKey: testCartKey,
		Sessions: fake, Refunds: refunds, Logger: log, Templates: templates.FS, Static: static.FS, Now: now,
	})
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	t.Cleanup(func() { assertNoSecrets(t, "log", logs.String()) })
	return &testServer{Server: srv, fake: fake, refunds: refunds, store: store, svc: svc, logs: logs, dbPath: dbPath}
}

// do sends a request through the real router.
func (ts *testServer) do(t testing.TB, method, target string, body io.Reader, headers ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, body)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	ts.ServeHTTP(rec, req)
	res := rec.Result()
	b, _ := io.ReadAll(res.Body)
	assertNoSecrets(t, method+" "+target, string(b))
	res.Body = io.NopCloser(bytes.NewReader(b))
	return res
}

func readBody(t testing.TB, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	res.Body = io.NopCloser(bytes.NewReader(b))
	return string(b)
}

// secretPattern matches anything shaped like a Stripe secret: a secret or
// restricted key, or a webhook signing secret.
var secretPattern = regexp.MustCompile(`\b(sk|rk)_(test|live)_[A-Za-z0-9]{4,}|\bwhsec_[A-Za-z0-9_]{4,}`)

// assertNoSecrets fails if a secret key or webhook secret shows in text.
func assertNoSecrets(t testing.TB, where, text string) {
	t.Helper()
	if m := secretPattern.FindString(text); m != "" {
		t.Errorf("%s contains a secret (%s...)", where, m[:8])
	}
}

func formBody(kv ...string) io.Reader {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return strings.NewReader(v.Encode())
}

const formType = "application/x-www-form-urlencoded"

type configT = config.Config

func basic(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }

func newRequest(method, target string) *http.Request { return httptest.NewRequest(method, target, nil) }

func newRequestBody(method, target string, body io.Reader) *http.Request {
	return httptest.NewRequest(method, target, body)
}
