// Package stripesim is a stateful Stripe Checkout simulator for development
// and tests.
//
// It sits in front of stripe-mock, which validates every request against
// Stripe's OpenAPI spec but keeps no state. The simulator forwards each
// Checkout request to stripe-mock first (relaying validation errors
// unchanged), then answers with stripe-mock's object overwritten by its own
// session state. It serves a hosted checkout page that sessions' url points
// to, keeps an event log and delivers signed webhooks with retries, like
// Stripe does. A paid session has a PaymentIntent and a charge, which can be
// refunded through the API (charge.refunded) and disputed through the
// control endpoints (charge.dispute.*). State lives in memory, bounded to
// the most recent 10,000 sessions (with their charges, refunds and
// disputes) and 10,000 events.
//
// Routes:
//
//	POST /v1/checkout/sessions                 create (idempotent per Idempotency-Key)
//	GET  /v1/checkout/sessions/{id}            retrieve, expand[]=line_items|payment_intent
//	GET  /v1/checkout/sessions/{id}/line_items
//	POST /v1/checkout/sessions/{id}/expire
//	POST /v1/refunds                           refund a paid session's payment_intent (or charge),
//	                                           idempotent; records charge.refunded
//	GET  /v1/refunds/{id}                      retrieve, expand[]=charge|payment_intent
//	GET  /v1/events, /v1/events/{id}           the simulator's event log (type, types[], created, paging)
//	     /v1/...                               anything else: proxied to stripe-mock
//	GET  /pay/{id}, POST /pay/{id}             hosted checkout page
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
}

// Sim is a Stripe Checkout simulator. Create it with New, serve
// Handler, and Close it when done.
type Sim struct {
	cfg     Config
	mock    *url.URL
	public  string
	client  *http.Client // stripe-mock
	hooks   *http.Client // webhook deliveries, never follows redirects
	log     *slog.Logger
	now     func() time.Time
	pages   *template.Template
	handler http.Handler

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

	ctx, cancel := context.WithCancel(context.Background())
	s := &Sim{
		cfg:       cfg,
		mock:      mock,
		public:    strings.TrimSuffix(public.String(), "/"),
		client:    cfg.HTTPClient,
		hooks:     &hooks,
		log:       cfg.Logger,
		now:       cfg.Now,
		pages:     pages,
		ctx:       ctx,
		cancel:    cancel,
		sessions:  make(map[string]*session),
		piSession: make(map[string]string),
		charges:   make(map[string]*charge),
		refunds:   make(map[string]*refund),
		disputes:  make(map[string]*dispute),
		eventByID: make(map[string]*event),
		idem:      make(map[string]*idemEntry),
	}
	s.handler = s.routes()
	return s, nil
}

// Handler returns the simulator's HTTP handler: the Stripe API under /v1/,
// the hosted checkout page under /pay/ and control endpoints under /sim/.
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
	mux.Handle("/v1/", http.MaxBytesHandler(proxy, maxBodyBytes))

	mux.HandleFunc("GET /pay/{id}", s.handlePage)
	mux.HandleFunc("POST /pay/{id}", s.handlePay)
	mux.HandleFunc("GET /pay-assets/sim.css", s.handleCSS)
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })

	mux.HandleFunc("GET /sim/sessions/{id}", s.handleSimSession)
	mux.HandleFunc("POST /sim/sessions/{id}/async_succeed", s.handleAsync(true))
	mux.HandleFunc("POST /sim/sessions/{id}/async_fail", s.handleAsync(false))
	mux.HandleFunc("POST /sim/sessions/{id}/expire", s.handleSimExpire)
	mux.HandleFunc("POST /sim/sessions/{id}/dispute", s.handleOpenDispute)
	mux.HandleFunc("GET /sim/disputes/{id}", s.handleSimDispute)
	mux.HandleFunc("POST /sim/disputes/{id}/close", s.handleCloseDispute)
	mux.HandleFunc("POST /sim/refunds/{id}/fail", s.handleFailRefund)
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
