// Package app wires the shop together from a Config: the store, the orders
// service, the Stripe client and the web server. cmd/server, the offline demo
// and the end-to-end tests all build the shop through it, so there is one
// wiring to trust.
package app

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/checkout/session"

	"github.com/shopcheckout/shop/internal/catalog"
	"github.com/shopcheckout/shop/internal/config"
	"github.com/shopcheckout/shop/internal/mail"
	"github.com/shopcheckout/shop/internal/metrics"
	"github.com/shopcheckout/shop/internal/orders"
	"github.com/shopcheckout/shop/internal/outbox"
	"github.com/shopcheckout/shop/internal/postgres"
	"github.com/shopcheckout/shop/internal/reconcile"
	"github.com/shopcheckout/shop/internal/sqlite"
	"github.com/shopcheckout/shop/internal/stripeapi"
	"github.com/shopcheckout/shop/internal/web"
	"github.com/shopcheckout/shop/static"
	"github.com/shopcheckout/shop/templates"
)

// App is a built shop.
type App struct {
	Config config.Config
	// Orders is the one door to the orders, for reads and writes.
	Orders  *orders.Service
	Handler http.Handler
	// Events is Stripe's Events API, for reconciliation.
	Events  reconcile.Events
	Metrics *metrics.Metrics
	// Outbox delivers the notifications fulfilments queue.
	Outbox   *outbox.Dispatcher
	store    orders.Store
	sessions *session.Client // expires sessions whose hold ran out
	holder   string
	log      *slog.Logger
	// catalog is what the shop sells; prices, for CATALOG_SOURCE=stripe,
	// where it is read from, and catalogPoke has it read again soon.
	catalog     *catalog.Live
	prices      catalog.PriceLister
	catalogPoke chan struct{}
}

// Options changes how New builds the shop; the zero value is production.
type Options struct {
	// OnFulfilled, if set, is called after each fulfilment commits (the
	// demo prints a line).
	OnFulfilled func(orders.Order)
	// StripeHTTPClient replaces the HTTP client of the Stripe backends.
	StripeHTTPClient *http.Client
	// OutboxHTTPClient replaces the HTTP client of the order webhook.
	OutboxHTTPClient *http.Client
	// Now replaces the orders' clock (tests move time on to a hold's
	// deadline); nil is time.Now.
	Now func() time.Time
}

// SweepInterval is how often the server completes paid orders whose
// fulfilment is missing (see orders.Service.FulfilPending).
const SweepInterval = time.Minute

// New opens the store, fulfils paid orders left without fulfilment, and
// builds the web server and the outbox. Close releases what it opened.
func New(ctx context.Context, cfg config.Config, log *slog.Logger, opts Options) (*App, error) {
	var cat *catalog.Catalog
	if cfg.CatalogSource != "stripe" {
		var err error
		if cat, err = fileCatalog(cfg.CatalogFile, cfg.Checkout.MaxQuantityDefault); err != nil {
			return nil, err
		}
	}
	store, err := OpenStore(ctx, cfg.Database)
	if err != nil {
		return nil, err
	}
	a := &App{Config: cfg, Metrics: metrics.New(), store: store, holder: instanceID(), log: log, catalogPoke: make(chan struct{}, 1)}
	sc := stripeapi.New(stripeapi.Options{
		Key: cfg.SecretKey, APIBase: cfg.StripeAPIBase, Timeout: cfg.StripeTimeout, Retries: 1,
		HTTPClient: opts.StripeHTTPClient,
	})
	a.Events = sc.Events
	a.sessions = sc.CheckoutSessions
	if cat != nil {
		a.catalog = catalog.Fixed(cat)
	} else {
		a.catalog, a.prices = &catalog.Live{}, sc.Prices
	}
	ok := false
	defer func() {
		if !ok {
			store.Close()
		}
	}()
	f := cfg.Fulfilment
	onFulfilled := func(orders.Order) { a.Metrics.Fulfilled() }
	if opts.OnFulfilled != nil {
		onFulfilled = func(o orders.Order) { a.Metrics.Fulfilled(); opts.OnFulfilled(o) }
	}
	svcOpts := []orders.ServiceOption{
		orders.WithChannels(orders.Channels{Webhook: f.WebhookURL != "", EmailCustomer: f.SMTP != nil, OwnerEmail: f.OwnerEmail}),
		orders.OnFulfilled(onFulfilled),
		orders.OnStoreError(a.Metrics.StoreError),
		orders.OnAlarm(a.Metrics.Alarm),
		orders.WithLiveMode(cfg.Live()),
		orders.WithSessionTTL(cfg.SessionTTL),
		orders.WithProcessingHold(cfg.ProcessingHold),
		orders.OnQueued(func() { a.Outbox.Wake() }), // set below, before any write
		orders.WithLineItems(lineItems(sc, cfg.StripeTimeout)),
		orders.WithPriceProducts(a.priceProduct),
	}
	if opts.Now != nil {
		svcOpts = append(svcOpts, orders.WithClock(opts.Now))
	}
	a.Orders = orders.NewService(store, log, svcOpts...)
	key, err := a.Orders.Secret(ctx, "order-page")
	if err != nil {
		return nil, err
	}
	links := orders.LinkKey(key)
	formKey, err := a.Orders.Secret(ctx, "form-token")
	if err != nil {
		return nil, err
	}
	cartKey, err := a.Orders.Secret(ctx, "cart")
	if err != nil {
		return nil, err
	}
	senders := map[orders.Channel]outbox.Sender{}
	if f.WebhookURL != "" {
		senders[orders.ChannelWebhook] = outbox.NewWebhook(f.WebhookURL, f.WebhookSecret, opts.OutboxHTTPClient, nil)
	}
	if f.SMTP != nil {
		m, err := mail.New(mail.Config{SMTP: *f.SMTP, From: f.MailFrom, ShopName: web.ShopName, BaseURL: cfg.BaseURL, Links: links, Templates: templates.FS})
		if err != nil {
			return nil, err
		}
		senders[orders.ChannelEmailCustomer], senders[orders.ChannelEmailOwner] = m, m
	}
	if a.Outbox, err = outbox.New(outbox.Config{Queue: a.Orders, Senders: senders, Holder: a.holder, Log: log, Recorder: a.Metrics}); err != nil {
		return nil, err
	}
	if cat != nil {
		if err := a.seedStock(ctx, cat); err != nil {
			return nil, err
		}
	} else {
		a.startCatalog(ctx)
	}
	if n, err := a.Orders.FulfilPending(ctx); err != nil {
		log.Error("fulfil paid orders left without fulfilment", "error", err)
	} else if n > 0 {
		log.Info("fulfilled paid orders left without fulfilment", "count", n)
	}

	srv, err := web.NewServer(web.Deps{
		Config:    cfg,
		Catalog:   a.catalog,
		OnEvent:   a.pokeCatalog,
		Orders:    a.Orders,
		Links:     links,
		FormKey:   formKey,
		CartKey:   cartKey,
		Sessions:  sc.CheckoutSessions,
		Refunds:   sc.Refunds,
		Logger:    log,
		Templates: templates.FS,
		Static:    static.FS,
		Metrics:   a.Metrics,
	})
	if err != nil {
		return nil, err
	}
	a.Handler = srv
	if len(cfg.WebhookSecrets) == 0 {
		log.Warn("STRIPE_WEBHOOK_SECRET is not set: /webhook answers 503 and payments are confirmed only when shoppers reach the success page; run `stripe listen --forward-to localhost:8000/webhook` and set the secret it prints")
	}
	if cfg.StripeAPIBase != "" {
		log.Info("using a Stripe API override", "api_base", cfg.StripeAPIBase)
	}
	ok = true
	return a, nil
}

// Close closes the store.
func (a *App) Close() error { return a.store.Close() }

// OpenStore opens the store DATABASE_URL names.
func OpenStore(ctx context.Context, db config.Database) (orders.Store, error) {
	switch db.Driver {
	case "sqlite":
		st, err := sqlite.Open(ctx, db.DSN)
		if err != nil {
			return nil, fmt.Errorf("open sqlite store: %w", err)
		}
		return st, nil
	case "postgres":
		st, err := postgres.Open(ctx, db.DSN)
		if err != nil {
			return nil, fmt.Errorf("open postgres store: %w", err)
		}
		return st, nil
	}
	return nil, fmt.Errorf("DATABASE_URL: unknown store %q", db.Driver)
}

// Reconcile applies the checkout.session.* events of the last window that
// the shop has not seen.
func (a *App) Reconcile(ctx context.Context, window time.Duration) (reconcile.Report, error) {
	return reconcile.Run(ctx, a.Events, a.Orders, reconcile.Options{Since: time.Now().Add(-window)}, a.log)
}

// everyTick runs job on a ticker of period every until ctx ends.
func everyTick(ctx context.Context, every time.Duration, job func(context.Context)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			job(ctx)
		}
	}
}

// reconcileTick is one tick of the periodic reconciliation.
func (a *App) reconcileTick(ctx context.Context, every time.Duration) {
	if err := a.reconcileOnce(ctx, every); err != nil && ctx.Err() == nil {
		a.log.Error("periodic reconciliation failed; next try at the next tick", "error", err)
	}
}

// reconcileOnce runs one periodic reconciliation, unless another instance
// holds the lease. The lease lasts one interval, so if its holder dies
// another instance takes over within two ticks.
func (a *App) reconcileOnce(ctx context.Context, every time.Duration) error {
	ok, err := a.Orders.TryLease(ctx, "reconcile", a.holder, every)
	if err != nil {
		return err
	}
	if !ok {
		a.log.Debug("reconciliation skipped: another instance holds the lease")
		return nil
	}
	_, err = a.Reconcile(ctx, a.Config.ReconcileWindow)
	return err
}

// sweepTick completes paid orders whose fulfilment is missing.
func (a *App) sweepTick(ctx context.Context) {
	if n, err := a.Orders.FulfilPending(ctx); err != nil && ctx.Err() == nil {
		a.log.Error("sweep: fulfil paid orders left without fulfilment", "error", err)
	} else if n > 0 {
		a.log.Info("sweep: fulfilled paid orders left without fulfilment", "count", n)
	}
}

// HoldSweepInterval is how often the server gives back holds on stock past
// their deadline.
const HoldSweepInterval = 30 * time.Second

// releaseHoldsTick gives back holds past their deadline, one instance at
// a time.
func (a *App) releaseHoldsTick(ctx context.Context, every time.Duration) {
	if _, err := a.ReleaseHolds(ctx, every); err != nil && ctx.Err() == nil {
		a.log.Error("sweep: holds not released; next try at the next tick", "error", err)
	}
}

// ReleaseHolds gives back the holds on stock past their deadline (see
// orders.Service.SweepHolds), unless another instance holds the lease.
func (a *App) ReleaseHolds(ctx context.Context, lease time.Duration) (int, error) {
	ok, err := a.Orders.TryLease(ctx, "holds", a.holder, lease)
	if err != nil || !ok {
		return 0, err
	}
	return a.Orders.SweepHolds(ctx, a.expireSession, 500)
}

// expireSession ends a Checkout Session at Stripe and returns its status.
func (a *App) expireSession(ctx context.Context, id string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, a.Config.StripeTimeout)
	defer cancel()
	params := &stripe.CheckoutSessionExpireParams{}
	params.Context = ctx
	params.SetIdempotencyKey("expire-" + id)
	sess, err := a.sessions.Expire(id, params)
	if err != nil {
		var se *stripe.Error
		if errors.As(err, &se) && se.HTTPStatusCode == http.StatusBadRequest {
			// Only an open session can be expired: find out what it is.
			gp := &stripe.CheckoutSessionParams{}
			gp.Context = ctx
			if got, gerr := a.sessions.Get(id, gp); gerr == nil {
				return string(got.Status), nil
			}
		}
		return "", err
	}
	return string(sess.Status), nil
}

// instanceID names this process among the shop's instances.
func instanceID() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%x", host, os.Getpid(), b)
}

// Serve listens on the configured port, prints the address to stdout, and
// shuts down gracefully when ctx ends.
func (a *App) Serve(ctx context.Context, stdout io.Writer) error {
	ln, err := net.Listen("tcp", a.Config.Addr())
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return a.ServeListener(ctx, ln, stdout)
}

// ServeListener is Serve on a listener the caller opened. On ctx's end it
// stops accepting, lets requests in flight finish within the configured
// grace period, and returns; the caller then closes the store.
func (a *App) ServeListener(ctx context.Context, ln net.Listener, stdout io.Writer) error {
	defer ln.Close() // on every early return; harmless after Serve closed it
	hs := NewHTTPServer(a.Handler, a.Config, a.log)
	defer hs.Close() // likewise; a no-op after Shutdown
	errc := make(chan error, 2)
	if addr := a.Config.MetricsAddr; addr != "" {
		mln, err := net.Listen("tcp", addr) // before announcing anything
		if err != nil {
			return fmt.Errorf("metrics listen: %w", err)
		}
		ms := &http.Server{Handler: a.Metrics.Handler(), ReadHeaderTimeout: 5 * time.Second}
		defer ms.Close()
		go func() { errc <- ms.Serve(mln) }()
		a.log.Info("metrics listening", "addr", mln.Addr().String())
	}

	port := ln.Addr().(*net.TCPAddr).Port
	fmt.Fprintf(stdout, "shop listening on http://localhost:%d (BASE_URL %s)\n", port, a.Config.BaseURL)
	a.log.Info("listening", "addr", ln.Addr().String())
	go func() { errc <- hs.Serve(ln) }()

	jobs, stopJobs := context.WithCancel(context.Background())
	var jobsDone sync.WaitGroup
	defer func() { stopJobs(); jobsDone.Wait() }()
	if every := a.Config.ReconcileInterval; every > 0 {
		jobsDone.Go(func() { everyTick(jobs, every, func(ctx context.Context) { a.reconcileTick(ctx, every) }) })
	}
	jobsDone.Go(func() { a.Outbox.Run(jobs) })
	jobsDone.Go(func() { everyTick(jobs, SweepInterval, a.sweepTick) })
	jobsDone.Go(func() {
		everyTick(jobs, HoldSweepInterval, func(ctx context.Context) { a.releaseHoldsTick(ctx, HoldSweepInterval) })
	})
	if a.prices != nil {
		jobsDone.Go(func() { a.refreshCatalogEvery(jobs, a.Config.CatalogRefresh) })
	}

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	grace := a.Config.ShutdownTimeout
	a.log.Info("shutting down: no new connections; finishing requests in flight", "grace", grace)
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: requests still running after %v: %w", grace, err)
	}
	// The jobs stop after the requests: a webhook in flight may still
	// queue a notification, which the outbox then takes with it or leaves
	// queued for the next start.
	stopJobs()
	jobsDone.Wait()
	a.log.Info("stopped")
	return nil
}

// NewHTTPServer sets the timeouts and limits that keep slow or oversized
// clients from tying the shop up.
func NewHTTPServer(h http.Handler, cfg config.Config, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      cfg.StripeTimeout + 20*time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// NewLogger builds the shop's logger: text or JSON lines on w. Shoppers'
// email addresses are masked in every line (a***@example.com), whichever
// package logs them, unless the operator turned on LOG_CUSTOMER_EMAILS.
func NewLogger(cfg config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{}
	if !cfg.LogCustomerEmails {
		opts.ReplaceAttr = maskEmails
	}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// maskEmails masks the value of every attribute named email.
func maskEmails(_ []string, a slog.Attr) slog.Attr {
	if a.Key == "email" && a.Value.Kind() == slog.KindString {
		return slog.String(a.Key, MaskEmail(a.Value.String()))
	}
	return a
}

// MaskEmail keeps the first character of an address's local part and its
// domain: enough to tell shoppers apart in a log, not to write to them.
func MaskEmail(addr string) string {
	local, domain, ok := strings.Cut(addr, "@")
	if !ok || local == "" {
		if addr == "" {
			return ""
		}
		return "***"
	}
	r := []rune(local)
	return string(r[0]) + "***@" + domain
}
