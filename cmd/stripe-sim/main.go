// Command stripe-sim runs the Stripe Checkout simulator in front of
// stripe-mock: point the shop's Stripe API base at it, and its checkout
// session urls lead to a simulated hosted checkout page whose outcomes are
// delivered to the shop as signed webhooks.
//
// Usage:
//
//	stripe-mock -http-port 12111 -https-port 12112 &
//	STRIPE_WEBHOOK_SECRET=whsec_... stripe-sim [-addr localhost:12113] \
//		[-mock http://localhost:12111] [-public-url http://localhost:12113] \
//		[-webhook-url http://localhost:8000/webhook] [-webhook-secret whsec_...] [-retry-for 2m]
//
// Besides the Stripe API under /v1/ (Checkout Sessions, Refunds and Events
// from its own state, everything else from stripe-mock), it serves the
// hosted page under /pay/ and control endpoints under /sim/, among them
// opening and closing disputes and failing refunds (see package stripesim).
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
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/shopcheckout/shop/internal/stripesim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "stripe-sim:", err)
		stop()
		os.Exit(1)
	}
}

// run parses args, serves the simulator and shuts it down gracefully when
// ctx is done.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("stripe-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		addr       = fs.String("addr", "localhost:12113", "listen address")
		mockURL    = fs.String("mock", "http://localhost:12111", "stripe-mock base URL")
		publicURL  = fs.String("public-url", "", "URL browsers use to reach the simulator (default http://ADDR)")
		webhookURL = fs.String("webhook-url", "http://localhost:8000/webhook", "shop webhook endpoint; empty disables delivery")
		hookSecret = fs.String("webhook-secret", firstSecret(getenv("STRIPE_WEBHOOK_SECRET")), "webhook signing secret (default $STRIPE_WEBHOOK_SECRET, first of a comma-separated list)")
		retryFor   = fs.Duration("retry-for", 2*time.Minute, "how long to retry a failing webhook delivery")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	if *webhookURL != "" && *hookSecret == "" {
		logger.Warn("no webhook secret (-webhook-secret or STRIPE_WEBHOOK_SECRET): the shop will reject deliveries")
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if *publicURL == "" {
		*publicURL = defaultPublicURL(*addr, ln.Addr())
	}
	sim, err := stripesim.New(stripesim.Config{
		MockURL:       *mockURL,
		PublicURL:     *publicURL,
		WebhookURL:    *webhookURL,
		WebhookSecret: *hookSecret,
		RetryFor:      *retryFor,
		Logger:        logger,
	})
	if err != nil {
		ln.Close()
		return fmt.Errorf("configure simulator: %w", err)
	}
	defer sim.Close()

	srv := &http.Server{
		Handler:           sim.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	fmt.Fprintf(stdout, "stripe-sim listening on %s (mock %s, webhooks to %q)\n", *publicURL, *mockURL, *webhookURL)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// firstSecret returns the first of a comma-separated list of webhook
// secrets, the one the simulator signs with.
func firstSecret(list string) string {
	first, _, _ := strings.Cut(list, ",")
	return strings.TrimSpace(first)
}

// defaultPublicURL is http://ADDR, with a wildcard host shown as localhost
// and port 0 replaced by the port actually bound.
func defaultPublicURL(addr string, bound net.Addr) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + bound.String()
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	if port == "0" {
		if _, p, err := net.SplitHostPort(bound.String()); err == nil {
			port = p
		}
	}
	return "http://" + net.JoinHostPort(host, port)
}
