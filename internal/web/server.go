// Package web is the shop's HTTP surface: pages, JSON endpoints and the
// Stripe webhook. routes.go lists every route on one screen.
package web

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/shopcheckout/shop/internal/catalog"
	"github.com/shopcheckout/shop/internal/config"
	"github.com/shopcheckout/shop/internal/metrics"
	"github.com/shopcheckout/shop/internal/orders"
	"github.com/shopcheckout/shop/internal/ratelimit"
)

// CheckoutSessions is the part of Stripe's API the shop calls. stripe-go's
// client.API.CheckoutSessions satisfies it; tests pass a fake.
type CheckoutSessions interface {
	New(params *stripe.CheckoutSessionParams) (*stripe.CheckoutSession, error)
	Get(id string, params *stripe.CheckoutSessionParams) (*stripe.CheckoutSession, error)
}

// Refunds is the part of Stripe's Refunds API the admin calls. stripe-go's
// client.API.Refunds satisfies it; tests pass a fake. The shop reads the
// answer from its LastResponse.RawJSON (see orders.ParseRefund), as it
// reads events.
type Refunds interface {
	New(params *stripe.RefundParams) (*stripe.Refund, error)
}

// Deps is everything a Server needs, built by main and handed in.
type Deps struct {
	Config  config.Config
	Catalog *catalog.Live
	// OnEvent, if set, hears the type of each new event the webhook
	// stored (the Stripe catalogue is read again on product.* and price.*).
	OnEvent   func(eventType string)
	Orders    *orders.Service // the one door to orders, reads and writes
	Links     orders.LinkKey  // signs order page links
	FormKey   []byte          // signs purchase form tokens
	CartKey   []byte          // signs the cart cookie
	Sessions  CheckoutSessions
	Refunds   Refunds // the admin's refunds; needed when the admin is on (Config.AdminPassword)
	Logger    *slog.Logger
	Templates fs.FS // the templates package's FS
	Static    fs.FS // the static package's FS
	Now       func() time.Time
	Metrics   *metrics.Metrics // nil records nothing
}

// Server serves the shop. Build it with NewServer.
type Server struct {
	cfg      config.Config
	catalogs *catalog.Live
	onEvent  func(eventType string)
	orders   *orders.Service
	links    orders.LinkKey
	tokens   formTokens
	carts    cartCookies
	// sessionReads spaces the success page's reads of each session.
	sessionReads *readThrottle
	// forgeries counts failed webhook signatures per client; forgeryLog
	// samples their log lines.
	forgeries  *ratelimit.Limiter
	forgeryLog *sampler
	sessions   CheckoutSessions
	refunds    Refunds
	log        *slog.Logger
	now        func() time.Time
	pages      *pages
	home       *liveHome
	// configJSON is GET /config's body, encoded once: it never changes.
	configJSON []byte
	static     fs.FS
	csp        string
	limiter    *ratelimit.Limiter
	guesses    *ratelimit.Limiter // wrong admin passwords, per client
	metrics    *metrics.Metrics
	handler    http.Handler
}

// NewServer checks deps, parses every template once, and builds the router.
func NewServer(d Deps) (*Server, error) {
	var missing []error
	if d.Catalog == nil {
		missing = append(missing, errors.New("catalog"))
	}
	if d.Orders == nil {
		missing = append(missing, errors.New("orders service"))
	}
	if len(d.Links) < 16 {
		missing = append(missing, errors.New("order link key"))
	}
	if len(d.FormKey) < 16 {
		missing = append(missing, errors.New("form token key"))
	}
	if len(d.CartKey) < 16 {
		missing = append(missing, errors.New("cart cookie key"))
	}
	if d.Sessions == nil {
		missing = append(missing, errors.New("checkout sessions client"))
	}
	if d.Refunds == nil && d.Config.AdminPassword != "" {
		missing = append(missing, errors.New("refunds client (the admin refunds orders)"))
	}
	if d.Logger == nil {
		missing = append(missing, errors.New("logger"))
	}
	if d.Templates == nil || d.Static == nil {
		missing = append(missing, errors.New("templates and static files"))
	}
	if d.Config.BaseURL == nil {
		missing = append(missing, errors.New("config.BaseURL"))
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("web: missing dependencies: %w", errors.Join(missing...))
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Config.Location == nil {
		d.Config.Location = time.UTC // config.Load always sets it; a hand-built Config may not
	}
	if d.Config.StripeJSURL == "" {
		d.Config.StripeJSURL = config.DefaultStripeJSURL // likewise
	}
	if d.Config.Checkout.UI == "" {
		d.Config.Checkout.UI = config.CheckoutHosted // likewise
	}
	p, err := parsePages(d.Templates)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:          d.Config,
		catalogs:     d.Catalog,
		onEvent:      d.OnEvent,
		orders:       d.Orders,
		links:        d.Links,
		tokens:       formTokens{key: d.FormKey, ttl: cmp.Or(d.Config.SessionTTL, 30*time.Minute), now: d.Now},
		carts:        cartCookies{key: d.CartKey, secure: d.Config.BaseURL.Scheme == "https"},
		sessionReads: newReadThrottle(time.Second, d.Now),
		forgeries:    ratelimit.New(ratelimit.Config{PerClient: forgeriesPerMinute / 60.0, PerClientBurst: forgeriesPerMinute, Now: d.Now}),
		forgeryLog:   &sampler{perMinute: forgeryLogsPerMin},
		sessions:     instrumented{next: d.Sessions, m: d.Metrics},
		refunds:      instrumentedRefunds{next: d.Refunds, m: d.Metrics},
		log:          d.Logger,
		now:          d.Now,
		pages:        p,
		static:       d.Static,
		csp:          contentSecurityPolicy(d.Config.StripeJSURL, d.Config.CheckoutOrigins),
		limiter:      newLimiter(d.Config.RateLimit, d.Now),
		guesses:      newAdminLimiter(d.Now),
		metrics:      d.Metrics,
	}
	if s.home, err = s.newLiveHome(); err != nil {
		return nil, err
	}
	if s.configJSON, err = json.Marshal(configBody{PublicKey: d.Config.PublishableKey, CheckoutUI: d.Config.Checkout.UI}); err != nil {
		return nil, fmt.Errorf("web: encode /config: %w", err)
	}
	s.configJSON = append(s.configJSON, '\n')
	s.handler = s.routes()
	return s, nil
}

// ServeHTTP makes Server an http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handler.ServeHTTP(w, r)
}

func newLimiter(c config.RateLimit, now func() time.Time) *ratelimit.Limiter {
	return ratelimit.New(ratelimit.Config{
		PerClient:      float64(c.PerClientPerMinute) / 60,
		PerClientBurst: c.Burst,
		Global:         c.GlobalPerSecond,
		GlobalBurst:    int(math.Max(1, math.Ceil(c.GlobalPerSecond))),
		Now:            now,
	})
}

// instrumented times every Stripe call for the metrics.
type instrumented struct {
	next CheckoutSessions
	m    *metrics.Metrics
}

func (i instrumented) New(p *stripe.CheckoutSessionParams) (*stripe.CheckoutSession, error) {
	start := time.Now()
	s, err := i.next.New(p)
	i.m.Stripe("checkout_session_create", time.Since(start), err)
	return s, err
}

func (i instrumented) Get(id string, p *stripe.CheckoutSessionParams) (*stripe.CheckoutSession, error) {
	start := time.Now()
	s, err := i.next.Get(id, p)
	i.m.Stripe("checkout_session_retrieve", time.Since(start), err)
	return s, err
}

// instrumentedRefunds times every refund call for the metrics.
type instrumentedRefunds struct {
	next Refunds
	m    *metrics.Metrics
}

func (i instrumentedRefunds) New(p *stripe.RefundParams) (*stripe.Refund, error) {
	start := time.Now()
	r, err := i.next.New(p)
	i.m.Stripe("refund_create", time.Since(start), err)
	return r, err
}

// catalog is what the shop sells from now: the same catalogue for the
// whole of a request once read (callers keep what it returns). With no
// catalogue (Stripe could not be read yet) nothing is for sale.
func (s *Server) catalog() *catalog.Catalog { return s.catalogs.Selling() }
