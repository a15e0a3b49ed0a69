package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/joho/godotenv"

	"github.com/shopcheckout/shop/internal/catalog"
	"github.com/shopcheckout/shop/internal/config"
	"github.com/shopcheckout/shop/internal/orders"
	"github.com/shopcheckout/shop/internal/sqlite"
	"github.com/shopcheckout/shop/internal/stripeapi"
	"github.com/shopcheckout/shop/internal/web"
	"github.com/shopcheckout/shop/static"
	"github.com/shopcheckout/shop/templates"
)

// shutdownGrace is how long requests in flight get to finish after SIGTERM.
const shutdownGrace = 20 * time.Second

// run builds the shop from args and the environment and serves until ctx is
// done. Everything it needs comes in through its parameters.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("server", flag.ContinueOnError)
	fl.SetOutput(stderr)
	envFile := fl.String("env-file", ".env", "file of KEY=value settings; the real environment wins")
	if err := fl.Parse(args); err != nil {
		return err
	}

	getenv, err := withEnvFile(*envFile, getenv)
	if err != nil {
		return err
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		if config.IsConfigError(err) {
			fmt.Fprintf(stderr, "%v\n\nSet these in the environment or in %s (copy .env.example to start).\n", err, *envFile)
			return errors.New("invalid configuration")
		}
		return err
	}
	log := newLogger(cfg.LogFormat, stderr)

	cat := catalog.Default(cfg.Checkout.MaxQuantityDefault)
	if cfg.CatalogFile != "" {
		if cat, err = catalog.Load(cfg.CatalogFile, cfg.Checkout.MaxQuantityDefault); err != nil {
			return fmt.Errorf("CATALOG_FILE: %w", err)
		}
	}

	store, err := openStore(ctx, cfg.Database)
	if err != nil {
		return err
	}
	defer store.Close()

	svc := orders.NewService(store, orders.LogFulfiller{Logger: log}, log)
	if n, err := svc.FulfilPending(ctx); err != nil {
		log.Error("fulfil orders left over from before the restart", "error", err)
	} else if n > 0 {
		log.Info("fulfilled orders left over from before the restart", "count", n)
	}

	sc := stripeapi.New(stripeapi.Options{Key: cfg.SecretKey, APIBase: cfg.StripeAPIBase, Timeout: cfg.StripeTimeout, Retries: 1})
	srv, err := web.NewServer(web.Deps{
		Config:    cfg,
		Catalog:   cat,
		Store:     store,
		Orders:    svc,
		Sessions:  sc.CheckoutSessions,
		Logger:    log,
		Templates: templates.FS,
		Static:    static.FS,
	})
	if err != nil {
		return err
	}
	if len(cfg.WebhookSecrets) == 0 {
		log.Warn("STRIPE_WEBHOOK_SECRET is not set: /webhook answers 503 and payments are confirmed only when shoppers reach the success page; run `stripe listen --forward-to localhost:8000/webhook` and set the secret it prints")
	}
	if cfg.StripeAPIBase != "" {
		log.Info("using a Stripe API override", "api_base", cfg.StripeAPIBase)
	}
	return serve(ctx, cfg, srv, log, stdout)
}

// withEnvFile layers a .env file under the real environment. A missing file
// is fine.
func withEnvFile(path string, getenv func(string) string) (func(string) string, error) {
	file, err := godotenv.Read(path)
	if errors.Is(err, os.ErrNotExist) {
		return getenv, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return func(k string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return file[k]
	}, nil
}

func newLogger(format string, w io.Writer) *slog.Logger {
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}

func openStore(ctx context.Context, db config.Database) (orders.Store, error) {
	switch db.Driver {
	case "sqlite":
		st, err := sqlite.Open(ctx, db.DSN)
		if err != nil {
			return nil, fmt.Errorf("open sqlite store: %w", err)
		}
		return st, nil
	}
	return nil, fmt.Errorf("DATABASE_URL: the %s store is not available in this build", db.Driver)
}

// serve listens, prints the address, and shuts down gracefully when ctx ends.
func serve(ctx context.Context, cfg config.Config, h http.Handler, log *slog.Logger, stdout io.Writer) error {
	ln, err := net.Listen("tcp", cfg.Addr())
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      cfg.StripeTimeout + 20*time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	port := ln.Addr().(*net.TCPAddr).Port
	fmt.Fprintf(stdout, "shop listening on http://localhost:%d (BASE_URL %s)\n", port, cfg.BaseURL)
	log.Info("listening", "addr", ln.Addr().String())

	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "grace", shutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}
