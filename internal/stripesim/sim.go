// Package stripesim is a stateful Stripe Checkout simulator for development
// and tests.
//
// It sits in front of stripe-mock, which validates every request against
// Stripe's OpenAPI spec but keeps no state. The simulator forwards each
// request it answers itself to stripe-mock first (relaying validation
// errors unchanged), then answers from its own state, in the shapes of API
// version 2023-10-16. It keeps a catalogue of Products and Prices, which
// Checkout Sessions and Payment Links are priced from, serves the hosted
// checkout page that sessions' url points to, the embedded one that a
// stand-in for Stripe.js frames, and Payment Link pages, keeps an event log
// and delivers signed webhooks with retries, like Stripe does. A paid
// session has a PaymentIntent and a charge, which can be refunded through
// the API (charge.refunded) and disputed through the control endpoints
// (charge.dispute.*). State lives in memory, bounded to the most recent
// 10,000 sessions (with their charges, refunds and disputes) and 10,000
// events, and to at most 10,000 Products, Prices and Payment Links (which
// Stripe never deletes, so the simulator refuses more rather than forget
// them).
//
// Routes:
//
//	POST /v1/checkout/sessions                 create (idempotent per Idempotency-Key); lines by price (from the
//	                                           catalogue: unknown or archived ones refused) or price_data;
//	                                           ui_mode=embedded with return_url gets a client_secret
//	GET  /v1/checkout/sessions/{id}            retrieve, expand[]=line_items|payment_intent
//	GET  /v1/checkout/sessions/{id}/line_items limit, starting_after, ending_before
//	POST /v1/checkout/sessions/{id}/expire
//	POST /v1/products, GET /v1/products        create (product.created); list (active, ids[], paging)
//	GET  /v1/products/{id}, POST /v1/products/{id}
//	                                           retrieve; update name, description, active, images, metadata
//	                                           (product.updated with previous_attributes)
//	POST /v1/prices, GET /v1/prices            create one-time prices (price.created); list (active, type, product,
//	                                           currency, lookup_keys[], paging, expand[]=data.product)
//	GET  /v1/prices/{id}, POST /v1/prices/{id} retrieve (expand[]=product); update active, nickname, metadata
//	                                           (price.updated with previous_attributes)
//	POST /v1/payment_links                     create from catalogue prices (payment_link.created)
//	GET  /v1/payment_links/{id}                retrieve, expand[]=line_items
//	POST /v1/payment_links/{id}                update active, metadata (payment_link.updated); an inactive
//	                                           link's page no longer sells
//	GET  /v1/payment_links/{id}/line_items     limit, starting_after, ending_before
//	POST /v1/refunds                           refund a paid session's payment_intent (or charge),
//	                                           idempotent; records charge.refunded
//	GET  /v1/refunds/{id}                      retrieve, expand[]=charge|payment_intent
//	GET  /v1/events, /v1/events/{id}           the simulator's event log (type, types[], created, paging)
//	     /v1/...                               anything else: proxied to stripe-mock
//	GET  /pay/{id}, POST /pay/{id}             hosted checkout page
//	GET  /embedded/{client_secret}, POST ...   embedded checkout page, frameable by any origin
//	GET  /v3/, /v3                             Stripe.js stand-in: Stripe(key).initEmbeddedCheckout(...)
//	GET  /pl/{id}, POST /pl/{id}               Payment Link page; posting starts a session and goes to /pay/
//	GET  /sim/sessions/{id}                    session state, with its charge, refunds and dispute
//	POST /sim/sessions/{id}/async_succeed      settle a delayed payment
//	POST /sim/sessions/{id}/async_fail         fail a delayed payment
//	POST /sim/sessions/{id}/expire
//	POST /sim/sessions/{id}/dispute            open a dispute on a paid session (reason=fraudulent):
//	                                           charge.dispute.created, charge.dispute.funds_withdrawn
//	GET  /sim/disputes/{id}                    dispute state
//	POST /sim/disputes/{id}/close?outcome=won  or lost: charge.dispute.closed, then for won
//	                                           charge.dispute.funds_reinstated
//	POST /sim/refunds/{id}/fail                fail a refund afterwards (failure_reason=...):
//	                                           charge.refund.updated
//	POST /sim/products/{id}/archive            archive a product: product.updated
//	POST /sim/prices/{id}/archive              archive a price: price.updated
//	POST /sim/payment_links/{id}/purchase      buy through a link without a browser (outcome=pay|delayed,
//	                                           email=...): a completed session, answered like /sim/sessions/{id}
//	GET  /sim/faults, POST /sim/faults         show or set faults: catalog=down makes the product and price
//	                                           routes answer 500, catalog=unreachable drops their connections,
//	                                           catalog=ok restores them
//	GET  /sim/events                           event log with delivery records
//	POST /sim/events/{id}/resend               deliver again, freshly signed
//	POST /sim/events/{id}/duplicate?n=3        deliver n more times concurrently
package stripesim

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"
)

const (
	apiVersion          = "2023-10-16"
	maxBodyBytes        = 1 << 20  // cap on API request bodies
	maxFormBytes        = 64 << 10 // cap on hosted-page form posts
	maxMockBytes        = 8 << 20  // cap on stripe-mock answers
	sessionLifetime     = 24 * time.Hour
	idempotencyLifetime = 24 * time.Hour
	defaultRetryFor     = 2 * time.Minute
	firstBackoff        = 100 * time.Millisecond
	maxBackoff          = 5 * time.Second
	attemptTimeout      = 10 * time.Second
	maxDuplicates       = 20
	maxSessions         = 10000 // oldest sessions are forgotten beyond this
	maxEvents           = 10000 // oldest events are forgotten beyond this
)

// Config configures a Sim.
type Config struct {
	// MockURL is stripe-mock's base URL, e.g. http://localhost:12111.
	MockURL string
	// PublicURL is how browsers reach the simulator, e.g.
	// http://localhost:12113. Session urls point below it.
	PublicURL string
	// WebhookURL is the shop's webhook endpoint. Empty disables delivery.
	WebhookURL string
	// WebhookSecret (whsec_...) signs deliveries like Stripe does.
	WebhookSecret string
	// RetryFor bounds how long a failing delivery is retried (default 2m).
	RetryFor time.Duration
	// Logger receives the simulator's logs (default: discarded).
	Logger *slog.Logger
	// Now is the clock for timestamps (default time.Now).
	Now func() time.Time
	// HTTPClient talks to stripe-mock and the webhook endpoint
	// (default: a client with a 30s timeout).
	HTTPClient *http.Client
	// Products is the catalogue the simulator starts with, as if made in
	// the Dashboard: listed in this order, with no events.
	Products []SeedProduct
	// PaymentLinks are the Payment Links it starts with, selling Prices of
	// Products.
	PaymentLinks []SeedPaymentLink
}

// Sim is a Stripe Checkout simulator. Create it with New, serve
// Handler, and Close it when done.
type Sim struct {
	cfg      Config
	mock     *url.URL
	public   string
	client   *http.Client // stripe-mock
	hooks    *http.Client // webhook deliveries, never follows redirects
	log      *slog.Logger
	now      func() time.Time
	pages    *template.Template
	stripeJS []byte // the Stripe.js stand-in, which knows public
	handler  http.Handler

	ctx    context.Context // canceled by Close; ends delivery retries
	cancel context.CancelFunc
	wg     sync.WaitGroup // delivery goroutines

	mu        sync.Mutex
	closed    bool
	sessions  map[string]*session
	order     []string          // session ids in creation order
	piSession map[string]string // PaymentIntent id -> session id
	charges   map[string]*charge
	refunds   map[string]*refund
	disputes  map[string]*dispute
	events    []*event // in creation order
	eventByID map[string]*event
	idem      map[string]*idemEntry
	lastSweep time.Time

	products     map[string]*product
	productOrder []string // ids in creation order
	prices       map[string]*price
	priceOrder   []string
	links        map[string]*paymentLink
	linkOrder    []string
	catalogFault string // faultOK, faultDown or faultUnreachable
}

// New validates cfg, fills in defaults and returns a ready Sim.
func New(cfg Config) (*Sim, error) {
	mock, err := parseBaseURL(cfg.MockURL)
	if err != nil {
		return nil, fmt.Errorf("mock url: %w", err)
	}
	public, err := parseBaseURL(cfg.PublicURL)
	if err != nil {
		return nil, fmt.Errorf("public url: %w", err)
	}
	if cfg.WebhookURL != "" {
		if _, err := parseBaseURL(cfg.WebhookURL); err != nil {
			return nil, fmt.Errorf("webhook url: %w", err)
		}
	}
	if cfg.RetryFor <= 0 {
		cfg.RetryFor = defaultRetryFor
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	hooks := *cfg.HTTPClient
	hooks.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	pages, err := template.New("pages").Parse(pageTemplates)
	if err != nil {
		return nil, fmt.Errorf("parse page templates: %w", err)
	}
	publicBase := strings.TrimSuffix(public.String(), "/")
	stripeJS, err := renderStripeJS(publicBase)
	if err != nil {
		return nil, err
	}

	ctx, cancel := context.WithCancel(context.Background())
	s := &Sim{
		cfg:       cfg,
		mock:      mock,
		public:    publicBase,
		client:    cfg.HTTPClient,
		hooks:     &hooks,
		log:       cfg.Logger,
		now:       cfg.Now,
		pages:     pages,
		stripeJS:  stripeJS,
		ctx:       ctx,
		cancel:    cancel,
		sessions:  make(map[string]*session),
		piSession: make(map[string]string),
		charges:   make(map[string]*charge),
		refunds:   make(map[string]*refund),
		disputes:  make(map[string]*dispute),
		eventByID: make(map[string]*event),
		idem:      make(map[string]*idemEntry),

		products:     make(map[string]*product),
		prices:       make(map[string]*price),
		links:        make(map[string]*paymentLink),
		catalogFault: faultOK,
	}
	now := cfg.Now()
	if err := s.seedCatalog(cfg.Products, now); err != nil {
		cancel()
		return nil, fmt.Errorf("seed products: %w", err)
	}
	if err := s.seedLinks(cfg.PaymentLinks, now); err != nil {
		cancel()
		return nil, fmt.Errorf("seed payment links: %w", err)
	}
	s.handler = s.routes()
	return s, nil
}

// Handler returns the simulator's HTTP handler: the Stripe API under /v1/,
// the checkout pages under /pay/ and /embedded/, Payment Link pages under
// /pl/, the Stripe.js stand-in at /v3/ and control endpoints under /sim/.
func (s *Sim) Handler() http.Handler { return s.handler }

// Close stops retrying deliveries and waits for delivery goroutines to
// finish. No delivery starts after Close.
func (s *Sim) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
}

func (s *Sim) routes() http.Handler {
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(s.mock)
			pr.Out.Header.Del("Accept-Encoding")
		},
		Transport: s.client.Transport,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			s.log.Error("proxy to stripe-mock failed", "path", r.URL.Path, "err", err)
			mockUnreachable(err).write(w)
		},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/checkout/sessions", s.handleCreate)
	mux.HandleFunc("GET /v1/checkout/sessions/{id}", s.handleRetrieve)
	mux.HandleFunc("GET /v1/checkout/sessions/{id}/line_items", s.handleLineItems)
	mux.HandleFunc("POST /v1/checkout/sessions/{id}/expire", s.handleExpire)
	mux.HandleFunc("POST /v1/refunds", s.handleCreateRefund)
	mux.HandleFunc("GET /v1/refunds/{id}", s.handleGetRefund)
	mux.HandleFunc("GET /v1/events", s.handleListEvents)
	mux.HandleFunc("GET /v1/events/{id}", s.handleGetEvent)
	mux.HandleFunc("POST /v1/products", s.catalogRoute(s.apiPost(s.createProduct)))
	mux.HandleFunc("GET /v1/products", s.catalogRoute(s.apiGet(s.listProducts)))
	mux.HandleFunc("GET /v1/products/{id}", s.catalogRoute(s.apiGet(s.getProduct)))
	mux.HandleFunc("POST /v1/products/{id}", s.catalogRoute(s.apiPost(s.updateProduct)))
	mux.HandleFunc("POST /v1/prices", s.catalogRoute(s.apiPost(s.createPrice)))
	mux.HandleFunc("GET /v1/prices", s.catalogRoute(s.apiGet(s.listPrices)))
	mux.HandleFunc("GET /v1/prices/{id}", s.catalogRoute(s.apiGet(s.getPrice)))
	mux.HandleFunc("POST /v1/prices/{id}", s.catalogRoute(s.apiPost(s.updatePrice)))
	mux.HandleFunc("POST /v1/payment_links", s.apiPost(s.createLink))
	mux.HandleFunc("GET /v1/payment_links/{id}", s.apiGet(s.getLink))
	mux.HandleFunc("POST /v1/payment_links/{id}", s.apiPost(s.updateLink))
	mux.HandleFunc("GET /v1/payment_links/{id}/line_items", s.apiGet(s.getLinkLines))
	mux.Handle("/v1/", http.MaxBytesHandler(proxy, maxBodyBytes))

	mux.HandleFunc("GET /pay/{id}", s.handlePage)
	mux.HandleFunc("POST /pay/{id}", s.handlePay)
	mux.HandleFunc("GET /embedded/{secret}", s.handleEmbeddedPage)
	mux.HandleFunc("POST /embedded/{secret}", s.handleEmbeddedPay)
	mux.HandleFunc("GET /pl/{id}", s.handleLinkPage)
	mux.HandleFunc("POST /pl/{id}", s.handleLinkBuy)
	mux.HandleFunc("GET /v3/{$}", s.handleStripeJS)
	mux.HandleFunc("GET /v3", s.handleStripeJS)
	mux.HandleFunc("GET /pay-assets/sim.css", s.handleCSS)
	mux.HandleFunc("GET /pay-assets/embedded.js", s.handleEmbeddedJS)
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })

	mux.HandleFunc("GET /sim/sessions/{id}", s.handleSimSession)
	mux.HandleFunc("POST /sim/sessions/{id}/async_succeed", s.handleAsync(true))
	mux.HandleFunc("POST /sim/sessions/{id}/async_fail", s.handleAsync(false))
	mux.HandleFunc("POST /sim/sessions/{id}/expire", s.handleSimExpire)
	mux.HandleFunc("POST /sim/sessions/{id}/dispute", s.handleOpenDispute)
	mux.HandleFunc("GET /sim/disputes/{id}", s.handleSimDispute)
	mux.HandleFunc("POST /sim/disputes/{id}/close", s.handleCloseDispute)
	mux.HandleFunc("POST /sim/refunds/{id}/fail", s.handleFailRefund)
	mux.HandleFunc("POST /sim/products/{id}/archive", s.handleArchiveProduct)
	mux.HandleFunc("POST /sim/prices/{id}/archive", s.handleArchivePrice)
	mux.HandleFunc("POST /sim/payment_links/{id}/purchase", s.handleLinkPurchase)
	mux.HandleFunc("GET /sim/faults", s.handleFaults)
	mux.HandleFunc("POST /sim/faults", s.handleFaults)
	mux.HandleFunc("GET /sim/events", s.handleSimEvents)
	mux.HandleFunc("POST /sim/events/{id}/resend", s.handleResend)
	mux.HandleFunc("POST /sim/events/{id}/duplicate", s.handleDuplicate)
	return mux
}

func parseBaseURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("missing")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parse %q: %w", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an absolute http(s) url", raw)
	}
	return u, nil
}
