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
//		[-webhook-url http://localhost:8000/webhook] [-webhook-secret whsec_...] [-retry-for 2m] \
//		[-seed catalogue.json]
//
// Besides the Stripe API under /v1/ (Checkout Sessions, Products, Prices,
// Payment Links, Refunds and Events from its own state, everything else
// from stripe-mock), it serves the hosted page under /pay/, the embedded
// one under /embedded/ with a stand-in for Stripe.js at /v3/, Payment Link
// pages under /pl/ and control endpoints under /sim/, among them opening
// and closing disputes, failing refunds, archiving products and prices,
// buying through a Payment Link and making the catalogue fail (see package
// stripesim).
//
// The -seed file gives the catalogue the simulator starts with, and
// Payment Links selling it, whose addresses it prints; stripe-sim -h shows
// its format.
package main

import (
	"context"
	"encoding/json"
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
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: stripe-sim [flags]\n\nA stateful Stripe Checkout simulator in front of stripe-mock.\n\nFlags:")
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), seedHelp)
	}
	var (
		addr       = fs.String("addr", "localhost:12113", "listen address")
		mockURL    = fs.String("mock", "http://localhost:12111", "stripe-mock base URL")
		publicURL  = fs.String("public-url", "", "URL browsers use to reach the simulator (default http://ADDR)")
		webhookURL = fs.String("webhook-url", "http://localhost:8000/webhook", "shop webhook endpoint; empty disables delivery")
		hookSecret = fs.String("webhook-secret", firstSecret(getenv("STRIPE_WEBHOOK_SECRET")), "webhook signing secret (default $STRIPE_WEBHOOK_SECRET, first of a comma-separated list)")
		retryFor   = fs.Duration("retry-for", 2*time.Minute, "how long to retry a failing webhook delivery")
		seedPath   = fs.String("seed", "", "JSON `file` of products, prices and payment links to start with (format below)")
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
	var seed seedFile
	if *seedPath != "" {
		var err error
		if seed, err = readSeed(*seedPath); err != nil {
			return err
		}
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
		Products:      seed.Products,
		PaymentLinks:  seed.PaymentLinks,
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
	if *seedPath != "" {
		prices := 0
		for _, p := range seed.Products {
			prices += len(p.Prices)
		}
		fmt.Fprintf(stdout, "seeded %d products and %d prices from %s\n", len(seed.Products), prices, *seedPath)
	}
	for _, l := range sim.PaymentLinks() {
		fmt.Fprintf(stdout, "payment link %s: %s\n", l.ID, l.URL)
	}
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

// seedHelp ends the -h output: the format of the -seed file, around an
// example that the tests seed a simulator with.
const seedHelp = `
The -seed file (JSON) gives the products, prices and payment links the
simulator starts with, as if made in the Dashboard (no events are sent for
them); lists show them in the file's order:

` + seedExample + `
Only "name" (of a product), "unit_amount" and "currency" (of a price) and
"line_items" (of a link, naming seeded prices) are required; missing ids are
made up. "active": false archives a product or a price. A price may also have
"nickname", "metadata" and "type" ("one_time", the only kind sold). A link
without "redirect_url" keeps the buyer on the simulator's confirmation page.
The address of each payment link's page is printed at start-up.
`

const seedExample = `  {
    "products": [
      {"id": "prod_tshirt", "name": "T-shirt", "description": "Organic cotton",
       "images": ["https://example.com/tshirt.png"],
       "metadata": {"stock": "25", "max_quantity": "5"},
       "prices": [{"id": "price_tshirt", "unit_amount": 2000, "currency": "usd"}]}
    ],
    "payment_links": [
      {"id": "plink_tshirt", "line_items": [{"price": "price_tshirt", "quantity": 1}],
       "redirect_url": "http://localhost:8000/thanks?session_id={CHECKOUT_SESSION_ID}"}
    ]
  }
`

// maxSeedBytes caps the -seed file.
const maxSeedBytes = 16 << 20

// seedFile is the format of the -seed file.
type seedFile struct {
	Products     []stripesim.SeedProduct     `json:"products"`
	PaymentLinks []stripesim.SeedPaymentLink `json:"payment_links"`
}

// readSeed reads a -seed file, refusing fields it does not know, so that a
// typo does not quietly leave something out.
func readSeed(path string) (seedFile, error) {
	var seed seedFile
	f, err := os.Open(path)
	if err != nil {
		return seed, fmt.Errorf("seed: %w", err)
	}
	defer f.Close()
	dec := json.NewDecoder(io.LimitReader(f, maxSeedBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&seed); err != nil {
		return seed, fmt.Errorf("seed %s: %w", path, err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return seed, fmt.Errorf("seed %s: more than one JSON value", path)
	}
	return seed, nil
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
