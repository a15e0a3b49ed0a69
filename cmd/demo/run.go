package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shopcheckout/shop/internal/app"
	"github.com/shopcheckout/shop/internal/config"
	"github.com/shopcheckout/shop/internal/money"
	"github.com/shopcheckout/shop/internal/orders"
	"github.com/shopcheckout/shop/internal/stripesim"
)

// Demo keys: test mode, accepted by stripe-mock, worthless anywhere else.
const (
	demoSecretKey      = "sk_test_demoOfflineShop"
	demoPublishableKey = "pk_test_demoOfflineShop"
)

// options are the demo's flags.
type options struct {
	port, simPort, mockPort int
	stripeMock              string
	mailPort, mailWebPort   int
	mailpit                 string
	db                      string
	verbose                 bool
	checkoutUI              string
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.port, "port", 8000, "shop port (0: any free port)")
	fs.IntVar(&o.simPort, "sim-port", 12113, "Checkout simulator port (0: any free port)")
	fs.IntVar(&o.mockPort, "mock-port", 12111, "stripe-mock port, reused if stripe-mock already runs there (0: start one on a free port)")
	fs.StringVar(&o.stripeMock, "stripe-mock", "", "stripe-mock binary (default: stripe-mock on PATH, else $GOPATH/bin/stripe-mock)")
	fs.IntVar(&o.mailPort, "mail-port", 1025, "mailpit SMTP port; a mailpit already answering on both mail ports is reused (0: start one on a free port)")
	fs.IntVar(&o.mailWebPort, "mail-web-port", 8025, "mailpit web page port, where the emails show (0: any free port)")
	fs.StringVar(&o.mailpit, "mailpit", "", "mailpit binary (default: mailpit on PATH, else $GOPATH/bin/mailpit); without mailpit the demo sends no email")
	fs.StringVar(&o.db, "db", "data/demo.db", "SQLite database file")
	fs.BoolVar(&o.verbose, "v", false, "log every request, webhook and state change")
	fs.StringVar(&o.checkoutUI, "checkout-ui", "hosted", "hosted: pay on the simulator's page; embedded: pay in the shop's own page (Embedded Checkout)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	for _, p := range []int{o.port, o.simPort, o.mockPort, o.mailPort, o.mailWebPort} {
		if p < 0 || p > 65535 {
			return o, fmt.Errorf("port %d: want 0 to 65535", p)
		}
	}
	return o, nil
}

// run starts stripe-mock and mailpit (unless they already run), the
// simulator and the shop, prints where to find them, and stops all of it
// when ctx ends. Without mailpit the shop runs without email.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	mock, err := startStripeMock(ctx, o.stripeMock, o.mockPort, getenv, stderr, o.verbose)
	if err != nil {
		return err
	}
	defer mock.stop()
	mail, mailErr := startMailpit(ctx, o.mailpit, o.mailPort, o.mailWebPort, getenv, stderr, o.verbose)
	if mailErr != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		log.Warn("running without email: mailpit is not available", "error", mailErr)
	} else {
		defer mail.stop()
	}

	shopLn, err := listen(o.port, "shop", "-port")
	if err != nil {
		return err
	}
	defer shopLn.Close()
	simLn, err := listen(o.simPort, "Checkout simulator", "-sim-port")
	if err != nil {
		return err
	}
	defer simLn.Close()
	shopPort, simPort := portOf(shopLn), portOf(simLn)

	// Browsers use localhost; the servers call each other on 127.0.0.1.
	shopURL := "http://localhost:" + strconv.Itoa(shopPort)
	simURL := "http://localhost:" + strconv.Itoa(simPort)
	secret := "whsec_" + rand.Text()
	password := rand.Text()

	sim, err := stripesim.New(stripesim.Config{
		MockURL:       mock.url,
		PublicURL:     simURL,
		WebhookURL:    "http://127.0.0.1:" + strconv.Itoa(shopPort) + "/webhook",
		WebhookSecret: secret,
		Logger:        log.With("component", "simulator"),
		Products:      demoProducts(shopURL),
		PaymentLinks:  []stripesim.SeedPaymentLink{demoLink()},
	})
	if err != nil {
		return fmt.Errorf("configure simulator: %w", err)
	}
	defer sim.Close()
	// The simulator serves first: the shop reads its catalogue from it.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	go func() { errc <- serveSim(ctx, sim.Handler(), simLn, log) }()

	env := map[string]string{
		"STRIPE_SECRET_KEY":      demoSecretKey,
		"STRIPE_PUBLISHABLE_KEY": demoPublishableKey,
		"STRIPE_WEBHOOK_SECRET":  secret,
		"STRIPE_API_BASE":        "http://127.0.0.1:" + strconv.Itoa(simPort),
		"BASE_URL":               shopURL,
		"PORT":                   strconv.Itoa(shopPort),
		"DATABASE_URL":           "sqlite:" + o.db,
		"CHECKOUT_ORIGINS":       simURL,
		"CATALOG_SOURCE":         "stripe",
		"CHECKOUT_UI":            o.checkoutUI,
		// Offline, Stripe.js is the simulator's stand-in.
		"STRIPE_JS_URL":  simURL + "/v3/",
		"DEMO_MODE":      "true",
		"ADMIN_PASSWORD": password,
	}
	if mail != nil {
		env["SMTP_URL"] = "smtp://" + mail.smtpAddr
		env["MAIL_FROM"] = demoMailFrom
		env["SHOP_OWNER_EMAIL"] = demoOwnerEmail
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		return fmt.Errorf("demo configuration: %w", err)
	}
	shop, err := app.New(ctx, cfg, log.With("component", "shop"), app.Options{OnFulfilled: (&announcer{w: stdout, mail: mail}).announce})
	if err != nil {
		cancel()
		return errors.Join(err, <-errc)
	}
	defer shop.Close()
	go func() { errc <- shop.ServeListener(ctx, shopLn, io.Discard) }()

	links := sim.PaymentLinks()
	printBanner(stdout, banner{shopURL: shopURL, password: password, simURL: simURL, mock: mock, mail: mail, mailErr: mailErr, db: o.db,
		link: links[0].URL})

	err = <-errc // the first server to stop, on Ctrl-C or failure, stops the other
	cancel()
	return errors.Join(err, <-errc)
}

func listen(port int, what, flagName string) (net.Listener, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w (is the demo already running? choose another port with %s)", what, err, flagName)
	}
	return ln, nil
}

func portOf(ln net.Listener) int { return ln.Addr().(*net.TCPAddr).Port }

// serveSim serves the simulator until ctx ends, then shuts it down.
func serveSim(ctx context.Context, h http.Handler, ln net.Listener, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("simulator: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("simulator shutdown: %w", err)
	}
	return nil
}

// banner is what the demo prints once everything runs.
type banner struct {
	shopURL, password, simURL string
	mock                      *stripeMock
	mail                      *mailpit // nil: no email
	mailErr                   error    // why there is no email
	db                        string
	link                      string // the demo's Payment Link
}

func printBanner(w io.Writer, b banner) {
	var email, behind, seeEmail string
	if b.mail != nil {
		email = b.mail.webURL() + "  (mailpit: confirmation emails land here)"
		behind = fmt.Sprintf("mailpit SMTP %s (%s), orders in %s", b.mail.smtpAddr, b.mail.origin(), b.db)
		seeEmail = "the shopper's refund email lands in mailpit, " + b.mail.webURL()
	} else {
		email = "off: " + oneLine(b.mailErr) + "\n               The shop runs without email; orders are still fulfilled."
		behind = "orders in " + b.db
		seeEmail = "the order page shows the refund (no email: mailpit is off)"
	}
	fmt.Fprintf(w, `
Demo shop running: demo mode, no real payments, no Stripe account needed.

  Shop         %[1]s
  Email        %[7]s
  Admin        %[1]s/admin  (user admin, password %[2]s)

  Test cards   4242 4242 4242 4242  pays (any email address)
               4000 0000 0000 0002  is declined
               "Pay by bank debit" on the payment page is a delayed payment

  Try it       1. buy something in the shop and pay with 4242 4242 4242 4242
               2. open the order in the admin and refund part of it
               3. %[8]s
               4. buy through the Payment Link %[9]s
                  (as if from the Stripe Dashboard): the sale lands in the admin
                  beside the shop's orders, marked Payment Link
  Catalogue    the products come from the simulator's Stripe catalogue
                 (CATALOG_SOURCE=stripe); archive one and it leaves the shop:
               curl -X POST %[3]s/sim/products/prod_demo_mug/archive
  Disputes     curl -X POST %[3]s/sim/sessions/SESSION_ID/dispute
                 (SESSION_ID: the order's Checkout Session, shown in the admin)
               curl -X POST '%[3]s/sim/disputes/DISPUTE_ID/close?outcome=won'
                 (or outcome=lost; DISPUTE_ID is in the answer to the first)

  Behind it    Checkout simulator %[3]s, stripe-mock %[4]s (%[5]s),
               %[6]s

Ctrl-C stops everything.

`, b.shopURL, b.password, b.simURL, b.mock.url, b.mock.origin(), behind, email, seeEmail, b.link)
}

// oneLine is the first line of err's message: a process's output after it
// is for the -v log, not the banner.
func oneLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return strings.TrimSuffix(s, ":")
}

// announcer prints one line per fulfilled order, so the end of the flow
// shows in the terminal.
type announcer struct {
	mu   sync.Mutex
	w    io.Writer
	mail *mailpit // nil: no email
}

func (a *announcer) announce(o orders.Order) {
	a.mu.Lock()
	defer a.mu.Unlock()
	via := ""
	if o.Source == orders.SourcePaymentLink {
		via = " through the Payment Link"
	}
	fmt.Fprintf(a.w, "order %s paid%s and fulfilled: %s, receipt to %s", o.ID, via, money.Format(o.AmountTotal, o.Currency), o.Email)
	if a.mail != nil {
		fmt.Fprintf(a.w, "; emails at %s", a.mail.webURL())
	}
	fmt.Fprintln(a.w)
}
