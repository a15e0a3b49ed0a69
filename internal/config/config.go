// Package config reads the shop's settings from the environment and checks
// them all at once, so an operator sees every mistake in one go.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Config is the validated configuration of the shop.
type Config struct {
	SecretKey      string   // STRIPE_SECRET_KEY: sk_ or rk_ key
	PublishableKey string   // STRIPE_PUBLISHABLE_KEY: pk_ key
	WebhookSecrets []string // STRIPE_WEBHOOK_SECRET: comma-separated whsec_ secrets; empty disables /webhook
	BaseURL        *url.URL // BASE_URL: where shoppers reach the shop
	Port           int      // PORT
	Database       Database // DATABASE_URL
	StripeAPIBase  string   // STRIPE_API_BASE: "" for Stripe itself
	StripeTimeout  time.Duration
	CatalogFile    string // CATALOG_FILE: "" for the built-in catalogue
	// CatalogSource is where the products come from (CATALOG_SOURCE):
	// "file" (CATALOG_FILE, or the built-in catalogue) or "stripe" (the
	// account's active one-time Prices).
	CatalogSource string
	// CatalogRefresh is how often a Stripe catalogue is read again
	// (CATALOG_REFRESH, default 10m); product.* and price.* webhooks also
	// have it read at once.
	CatalogRefresh time.Duration
	AdminPassword  string // ADMIN_PASSWORD: "" disables /admin
	Checkout       CheckoutOptions
	// CheckoutOrigins are extra origins the browser may be sent to for
	// payment (CHECKOUT_ORIGINS), beside Stripe's own; the offline simulator
	// needs its origin here.
	CheckoutOrigins []string
	// StripeJSURL is where the pages load Stripe.js from (STRIPE_JS_URL,
	// default DefaultStripeJSURL). The offline demo and the browser tests
	// point it at the simulator's stand-in; live keys take only the
	// default.
	StripeJSURL string
	DemoMode    bool // DEMO_MODE: every page says no real payments are taken
	LogFormat   string
	// TrustedProxies are the proxies whose X-Forwarded-For is believed
	// (TRUSTED_PROXIES: IPs or CIDRs). Empty: the connection's address is the
	// client's.
	TrustedProxies []netip.Prefix
	RateLimit      RateLimit
	// ReconcileInterval runs reconciliation with Stripe's Events API this
	// often inside the server (RECONCILE_INTERVAL; 0, the default, is off).
	ReconcileInterval time.Duration
	// ReconcileWindow is how far back reconciliation looks
	// (RECONCILE_WINDOW, default 72h: Stripe's webhook retry period).
	ReconcileWindow time.Duration
	// MetricsAddr, if set, serves Prometheus metrics on a separate listen
	// address (METRICS_ADDR, e.g. 127.0.0.1:9090) without authentication;
	// they are also at /admin/metrics behind the admin password.
	MetricsAddr string
	// ShutdownTimeout is how long requests in flight get to finish after
	// SIGTERM (SHUTDOWN_TIMEOUT, default 20s).
	ShutdownTimeout time.Duration
	// Fulfilment is where paid orders are announced: the order webhook and
	// the emails.
	Fulfilment Fulfilment
	// SessionTTL is how long a Checkout Session stays open
	// (CHECKOUT_SESSION_TTL, default 30m, from 30m to 24h as Stripe
	// allows): its expires_at, the life of the form token that names its
	// order, and how long a pending order is re-used.
	SessionTTL time.Duration
	// ProcessingHold is how long a delayed payment keeps its order's hold
	// on stock (PROCESSING_HOLD, default 336h: 14 days).
	ProcessingHold time.Duration
	// Location is the shop's time zone (SHOP_TIMEZONE, an IANA name such
	// as Europe/Paris; default UTC): the admin shows times in it, and its
	// days are the days of the overview and of the date filters.
	Location *time.Location
	// LogCustomerEmails shows shoppers' email addresses in logs
	// (LOG_CUSTOMER_EMAILS); by default they are masked, a***@example.com.
	LogCustomerEmails bool
}

// Fulfilment configures the notifications of paid orders.
type Fulfilment struct {
	// WebhookURL receives every notification as a signed POST
	// (FULFILMENT_WEBHOOK_URL); "" sends none.
	WebhookURL string
	// WebhookSecret signs them (FULFILMENT_WEBHOOK_SECRET, 32 characters
	// or more); set exactly when WebhookURL is.
	WebhookSecret string
	// SMTP is the mail server (SMTP_URL); nil sends no email.
	SMTP *SMTP
	// MailFrom is the sender of every email (MAIL_FROM), set with SMTP_URL.
	MailFrom string
	// OwnerEmail gets a "new order" email per paid order (SHOP_OWNER_EMAIL).
	OwnerEmail string
}

// SMTP is a mail server from SMTP_URL: smtp://[user:pass@]host[:port]
// (STARTTLS when the server offers it; port 587 unless given) or
// smtps://[user:pass@]host[:port] (TLS from the first byte; port 465).
type SMTP struct {
	Host        string
	Port        int
	Username    string
	Password    string
	ImplicitTLS bool
}

// MinFulfilmentSecret is the shortest FULFILMENT_WEBHOOK_SECRET allowed.
const MinFulfilmentSecret = 32

// RateLimit bounds Checkout Session creation.
type RateLimit struct {
	PerClientPerMinute int     // RATE_LIMIT_PER_MINUTE, default 10; 0 disables
	Burst              int     // RATE_LIMIT_BURST, default 5
	GlobalPerSecond    float64 // RATE_LIMIT_GLOBAL_PER_SECOND, default 20 (Stripe allows 25/s in test mode, 100/s live)
}

// Live reports whether the keys are live-mode keys.
func (c Config) Live() bool { return strings.Contains(c.SecretKey, "_live_") }

// Addr is the listen address.
func (c Config) Addr() string { return ":" + strconv.Itoa(c.Port) }

// Database says which store to open.
type Database struct {
	Driver string // "sqlite" or "postgres"
	DSN    string // a file path for sqlite, the URL for postgres
}

// CheckoutOptions are the Checkout Session options a shop owner may turn on.
type CheckoutOptions struct {
	Locale             string   // CHECKOUT_LOCALE, default "auto"
	PromotionCodes     bool     // CHECKOUT_PROMOTION_CODES
	AutomaticTax       bool     // CHECKOUT_AUTOMATIC_TAX
	ShippingCountries  []string // CHECKOUT_SHIPPING_COUNTRIES: ISO codes, e.g. US,CA
	BillingAddress     bool     // CHECKOUT_BILLING_ADDRESS: require a billing address
	MaxQuantityDefault int64    // CHECKOUT_MAX_QUANTITY: per product unless the catalogue says otherwise
	// UI is how Checkout opens (CHECKOUT_UI): CheckoutHosted, Stripe's
	// page, or CheckoutEmbedded, in the shop's page with Stripe.js (a
	// browser without JavaScript or Stripe.js still gets the hosted page).
	// A hand-built Config's "" means hosted.
	UI string
}

// The values of CHECKOUT_UI, spelled as the ui_mode of the shop's API
// version (2023-10-16); versions from 2026-03-25 call them hosted_page and
// embedded_page.
const (
	CheckoutHosted   = "hosted"
	CheckoutEmbedded = "embedded"
)

// DefaultStripeJSURL is Stripe.js itself, the only STRIPE_JS_URL live keys
// take.
const DefaultStripeJSURL = "https://js.stripe.com/v3/"

// Placeholder values shipped in .env.example; a config still holding them was
// never filled in.
const (
	PlaceholderSecretKey      = "sk_test_replace_me"
	PlaceholderPublishableKey = "pk_test_replace_me"
	PlaceholderWebhookSecret  = "whsec_replace_me"
)

// Error lists every problem found in the environment.
type Error struct {
	Problems []string
}

func (e *Error) Error() string {
	return "configuration problems:\n  - " + strings.Join(e.Problems, "\n  - ")
}

// keysHelp says where an operator gets Stripe test keys.
const keysHelp = "get test keys at https://dashboard.stripe.com/test/apikeys and put them in .env (see .env.example)"

// Load reads the configuration through getenv and validates it. The returned
// error is an *Error naming every missing or malformed variable.
func Load(getenv func(string) string) (Config, error) {
	var p []string
	bad := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	get := func(k string) string { return strings.TrimSpace(getenv(k)) }

	c := Config{
		SecretKey:      get("STRIPE_SECRET_KEY"),
		PublishableKey: get("STRIPE_PUBLISHABLE_KEY"),
		StripeAPIBase:  strings.TrimRight(get("STRIPE_API_BASE"), "/"),
		CatalogFile:    get("CATALOG_FILE"),
		AdminPassword:  getenv("ADMIN_PASSWORD"),
		LogFormat:      orDefault(get("LOG_FORMAT"), "text"),
	}

	switch sk := c.SecretKey; {
	case sk == "":
		bad("STRIPE_SECRET_KEY is not set: %s", keysHelp)
	case sk == PlaceholderSecretKey:
		bad("STRIPE_SECRET_KEY still holds the .env.example placeholder: %s", keysHelp)
	case strings.HasPrefix(sk, "pk_"):
		bad("STRIPE_SECRET_KEY holds a publishable key (pk_...): use the secret key (sk_...) or a restricted key (rk_...)")
	case strings.HasPrefix(sk, "whsec_"):
		bad("STRIPE_SECRET_KEY holds a webhook signing secret (whsec_...): use the secret key (sk_...) or a restricted key (rk_...)")
	case !hasAnyPrefix(sk, "sk_test_", "sk_live_", "rk_test_", "rk_live_"):
		bad("STRIPE_SECRET_KEY must start with sk_test_, sk_live_, rk_test_ or rk_live_")
	}
	switch pk := c.PublishableKey; {
	case pk == "":
		bad("STRIPE_PUBLISHABLE_KEY is not set: %s", keysHelp)
	case pk == PlaceholderPublishableKey:
		bad("STRIPE_PUBLISHABLE_KEY still holds the .env.example placeholder: %s", keysHelp)
	case hasAnyPrefix(pk, "sk_", "rk_"):
		bad("STRIPE_PUBLISHABLE_KEY holds a secret key: it would be sent to every browser; use the publishable key (pk_...)")
	case !hasAnyPrefix(pk, "pk_test_", "pk_live_"):
		bad("STRIPE_PUBLISHABLE_KEY must start with pk_test_ or pk_live_")
	}
	if skMode, pkMode := mode(c.SecretKey), mode(c.PublishableKey); skMode != "" && pkMode != "" && skMode != pkMode {
		bad("STRIPE_SECRET_KEY is a %s key but STRIPE_PUBLISHABLE_KEY is a %s key: use both keys from the same mode", skMode, pkMode)
	}

	for _, s := range strings.Split(get("STRIPE_WEBHOOK_SECRET"), ",") {
		s = strings.TrimSpace(s)
		switch {
		case s == "":
		case s == PlaceholderWebhookSecret:
			bad("STRIPE_WEBHOOK_SECRET still holds the .env.example placeholder: run `stripe listen --forward-to localhost:8000/webhook` and copy the whsec_ secret it prints, or leave it empty")
		case !strings.HasPrefix(s, "whsec_"):
			bad("STRIPE_WEBHOOK_SECRET must be whsec_ secrets separated by commas")
		default:
			c.WebhookSecrets = append(c.WebhookSecrets, s)
		}
	}

	base := orDefault(get("BASE_URL"), "http://localhost:8000")
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		bad("BASE_URL must be an absolute http(s) URL such as https://shop.example.com, got %q", base)
	} else {
		u.Path = strings.TrimRight(u.Path, "/")
		c.BaseURL = u
	}
	c.Port = intVar(get("PORT"), 8000, 0, 65535, "PORT", bad) // 0: any free port

	c.Database = parseDatabase(orDefault(get("DATABASE_URL"), defaultDatabaseURL), bad)

	if c.StripeAPIBase != "" {
		if u, err := url.Parse(c.StripeAPIBase); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("STRIPE_API_BASE must be an absolute http(s) URL such as http://localhost:12111, got %q", c.StripeAPIBase)
		}
	}
	c.StripeTimeout = durationRange(get("STRIPE_TIMEOUT"), 10*time.Second, time.Millisecond, 2*time.Minute, "STRIPE_TIMEOUT", bad)

	c.Checkout = CheckoutOptions{
		Locale:             orDefault(get("CHECKOUT_LOCALE"), "auto"),
		PromotionCodes:     boolVar(get("CHECKOUT_PROMOTION_CODES"), "CHECKOUT_PROMOTION_CODES", bad),
		AutomaticTax:       boolVar(get("CHECKOUT_AUTOMATIC_TAX"), "CHECKOUT_AUTOMATIC_TAX", bad),
		BillingAddress:     boolVar(get("CHECKOUT_BILLING_ADDRESS"), "CHECKOUT_BILLING_ADDRESS", bad),
		MaxQuantityDefault: int64(intVar(get("CHECKOUT_MAX_QUANTITY"), 10, 1, 999, "CHECKOUT_MAX_QUANTITY", bad)),
	}
	for _, cc := range splitList(get("CHECKOUT_SHIPPING_COUNTRIES")) {
		cc = strings.ToUpper(cc)
		if len(cc) != 2 || cc[0] < 'A' || cc[0] > 'Z' || cc[1] < 'A' || cc[1] > 'Z' {
			bad("CHECKOUT_SHIPPING_COUNTRIES must be two-letter country codes separated by commas, such as US,CA; got %q", cc)
			continue
		}
		c.Checkout.ShippingCountries = append(c.Checkout.ShippingCountries, cc)
	}

	c.Checkout.UI = orDefault(strings.ToLower(get("CHECKOUT_UI")), CheckoutHosted)
	switch c.Checkout.UI {
	case CheckoutHosted, CheckoutEmbedded:
	case "hosted_page", "embedded_page":
		bad("CHECKOUT_UI must be hosted or embedded, got %q: the shop's Stripe API version (2023-10-16) names the modes hosted and embedded, later versions hosted_page and embedded_page", get("CHECKOUT_UI"))
	default:
		bad("CHECKOUT_UI must be hosted or embedded, got %q", get("CHECKOUT_UI"))
	}
	c.StripeJSURL = orDefault(get("STRIPE_JS_URL"), DefaultStripeJSURL)
	if u, err := url.Parse(c.StripeJSURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Fragment != "" {
		bad("STRIPE_JS_URL must be an absolute http(s) URL such as %s, got %q", DefaultStripeJSURL, c.StripeJSURL)
	}

	for _, o := range splitList(get("CHECKOUT_ORIGINS")) {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			bad("CHECKOUT_ORIGINS must be origins such as http://localhost:12113, got %q", o)
			continue
		}
		c.CheckoutOrigins = append(c.CheckoutOrigins, u.Scheme+"://"+u.Host)
	}
	c.DemoMode = boolVar(get("DEMO_MODE"), "DEMO_MODE", bad)
	c.MetricsAddr = get("METRICS_ADDR")
	if c.MetricsAddr != "" {
		if _, port, err := net.SplitHostPort(c.MetricsAddr); err != nil || port == "" {
			bad("METRICS_ADDR must be a listen address such as 127.0.0.1:9090, got %q", c.MetricsAddr)
		}
	}
	c.ReconcileInterval = durationRange(get("RECONCILE_INTERVAL"), 0, 0, 24*time.Hour, "RECONCILE_INTERVAL", bad)
	c.ReconcileWindow = durationRange(get("RECONCILE_WINDOW"), 72*time.Hour, time.Minute, 30*24*time.Hour, "RECONCILE_WINDOW", bad)
	c.ShutdownTimeout = durationRange(get("SHUTDOWN_TIMEOUT"), 20*time.Second, 0, 10*time.Minute, "SHUTDOWN_TIMEOUT", bad)
	for _, p := range splitList(get("TRUSTED_PROXIES")) {
		prefix, err := parsePrefix(p)
		if err != nil {
			bad("TRUSTED_PROXIES must be IP addresses or CIDR ranges such as 10.0.0.0/8, got %q", p)
			continue
		}
		c.TrustedProxies = append(c.TrustedProxies, prefix)
	}
	c.RateLimit = RateLimit{
		PerClientPerMinute: intVar(get("RATE_LIMIT_PER_MINUTE"), 10, 0, 100_000, "RATE_LIMIT_PER_MINUTE", bad),
		Burst:              intVar(get("RATE_LIMIT_BURST"), 5, 1, 100_000, "RATE_LIMIT_BURST", bad),
		GlobalPerSecond:    floatVar(get("RATE_LIMIT_GLOBAL_PER_SECOND"), 20, 0, 10_000, "RATE_LIMIT_GLOBAL_PER_SECOND", bad),
	}
	c.Fulfilment = loadFulfilment(get, bad)
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("LOG_FORMAT must be text or json, got %q", c.LogFormat)
	}
	c.LogCustomerEmails = boolVar(get("LOG_CUSTOMER_EMAILS"), "LOG_CUSTOMER_EMAILS", bad)
	c.SessionTTL = durationRange(get("CHECKOUT_SESSION_TTL"), 30*time.Minute, 30*time.Minute, 24*time.Hour, "CHECKOUT_SESSION_TTL", bad)
	c.ProcessingHold = durationRange(get("PROCESSING_HOLD"), 14*24*time.Hour, time.Hour, 60*24*time.Hour, "PROCESSING_HOLD", bad)
	c.CatalogSource = orDefault(strings.ToLower(get("CATALOG_SOURCE")), "file")
	switch c.CatalogSource {
	case "file":
	case "stripe":
		if c.CatalogFile != "" {
			bad("CATALOG_FILE is set but CATALOG_SOURCE is stripe: the products come from one or the other")
		}
	default:
		bad("CATALOG_SOURCE must be file or stripe, got %q", c.CatalogSource)
	}
	c.CatalogRefresh = durationRange(get("CATALOG_REFRESH"), 10*time.Minute, time.Minute, 24*time.Hour, "CATALOG_REFRESH", bad)
	c.Location = time.UTC
	if tz := get("SHOP_TIMEZONE"); tz != "" {
		loc, err := time.LoadLocation(tz)
		if err != nil || tz == "Local" {
			bad("SHOP_TIMEZONE must be an IANA time zone such as Europe/Paris or America/New_York, got %q", tz)
		} else {
			c.Location = loc
		}
	}
	if c.Live() {
		liveProblems(c, bad)
	}

	if len(p) > 0 {
		return Config{}, &Error{Problems: p}
	}
	return c, nil
}

func loadFulfilment(get func(string) string, bad func(string, ...any)) Fulfilment {
	f := Fulfilment{
		WebhookURL:    get("FULFILMENT_WEBHOOK_URL"),
		WebhookSecret: get("FULFILMENT_WEBHOOK_SECRET"),
		MailFrom:      get("MAIL_FROM"),
		OwnerEmail:    get("SHOP_OWNER_EMAIL"),
	}
	switch {
	case f.WebhookURL != "" && f.WebhookSecret == "":
		bad("FULFILMENT_WEBHOOK_URL is set but FULFILMENT_WEBHOOK_SECRET is not: set a random secret of at least %d characters (receivers check signatures with it)", MinFulfilmentSecret)
	case f.WebhookURL == "" && f.WebhookSecret != "":
		bad("FULFILMENT_WEBHOOK_SECRET is set but FULFILMENT_WEBHOOK_URL is not: set both, or neither")
	case f.WebhookSecret != "" && len(f.WebhookSecret) < MinFulfilmentSecret:
		bad("FULFILMENT_WEBHOOK_SECRET must be at least %d characters, got %d", MinFulfilmentSecret, len(f.WebhookSecret))
	}
	if f.WebhookURL != "" {
		if u, err := url.Parse(f.WebhookURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("FULFILMENT_WEBHOOK_URL must be an absolute http(s) URL such as https://orders.example.com/hook, got %q", redactURL(f.WebhookURL))
		}
	}
	if raw := get("SMTP_URL"); raw != "" {
		smtp, err := parseSMTP(raw)
		if err != nil {
			bad("SMTP_URL must be smtp://user:pass@host:port (STARTTLS when offered) or smtps://user:pass@host:port (implicit TLS): %v, got %q", err, redactURL(raw))
		} else {
			f.SMTP = &smtp
		}
		if f.MailFrom == "" {
			bad("SMTP_URL is set but MAIL_FROM is not: set the sender address, such as Shop <orders@example.com>")
		}
	} else if f.MailFrom != "" || f.OwnerEmail != "" {
		bad("MAIL_FROM and SHOP_OWNER_EMAIL need SMTP_URL: set the mail server, or leave them empty")
	}
	if f.MailFrom != "" {
		if _, err := mail.ParseAddress(f.MailFrom); err != nil {
			bad("MAIL_FROM must be an email address such as Shop <orders@example.com>, got %q", f.MailFrom)
		}
	}
	if f.OwnerEmail != "" {
		if a, err := mail.ParseAddress(f.OwnerEmail); err != nil || a.Name != "" {
			bad("SHOP_OWNER_EMAIL must be one email address such as owner@example.com, got %q", f.OwnerEmail)
		}
	}
	return f
}

// parseSMTP reads SMTP_URL.
func parseSMTP(raw string) (SMTP, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return SMTP{}, errors.New("not a URL")
	}
	s := SMTP{Host: u.Hostname()}
	switch u.Scheme {
	case "smtp":
		s.Port = 587
	case "smtps":
		s.Port, s.ImplicitTLS = 465, true
	default:
		return SMTP{}, errors.New("the scheme is not smtp or smtps")
	}
	if s.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return SMTP{}, errors.New("it needs a host and nothing after it")
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return SMTP{}, errors.New("the port is not a number from 1 to 65535")
		}
		s.Port = n
	}
	if u.User != nil {
		s.Username = u.User.Username()
		s.Password, _ = u.User.Password()
	}
	return s, nil
}

// MinLiveAdminPassword is the shortest ADMIN_PASSWORD a live shop takes.
const MinLiveAdminPassword = 16

// liveProblems names the settings a shop with live keys refuses: each is a
// convenience of test mode that, with real money, ships goods unpaid, sends
// the key elsewhere, or leaves the shop open.
func liveProblems(c Config, bad func(string, ...any)) {
	if c.BaseURL != nil && c.BaseURL.Scheme != "https" {
		bad("BASE_URL must be https:// with live keys (shoppers come back to it from Stripe), got %q", c.BaseURL.String())
	}
	if c.StripeAPIBase != "" {
		bad("STRIPE_API_BASE is set with live keys: the live key would be sent to %q instead of Stripe, and a simulator there confirms payments nobody made; unset it", c.StripeAPIBase)
	}
	if len(c.CheckoutOrigins) > 0 {
		bad("CHECKOUT_ORIGINS is set with live keys: it lets the browser be sent to payment pages other than Stripe's; unset it")
	}
	if c.StripeJSURL != DefaultStripeJSURL {
		bad("STRIPE_JS_URL is set to %q with live keys: the pages would run a payment script that is not Stripe's; unset it (the default is %s)", c.StripeJSURL, DefaultStripeJSURL)
	}
	if c.DemoMode {
		bad("DEMO_MODE is set with live keys: demo mode is for test keys only")
	}
	if len(c.WebhookSecrets) == 0 {
		bad("STRIPE_WEBHOOK_SECRET is empty with live keys: without signed webhooks delayed payments, refunds and disputes never reach the shop; set the endpoint's signing secret")
	}
	for _, p := range c.TrustedProxies {
		if p.Bits() == 0 {
			bad("TRUSTED_PROXIES holds %s with live keys: it trusts X-Forwarded-For from anyone, so rate limits stop working; list your proxies' addresses", p)
		}
	}
	if c.AdminPassword != "" && len(c.AdminPassword) < MinLiveAdminPassword {
		bad("ADMIN_PASSWORD must be at least %d characters with live keys, got %d", MinLiveAdminPassword, len(c.AdminPassword))
	}
}

// IsConfigError reports whether err lists configuration problems.
func IsConfigError(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

// defaultDatabaseURL is the database when DATABASE_URL is not set.
const defaultDatabaseURL = "sqlite:data/shop.db"

// LoadDatabase reads and validates DATABASE_URL alone, for the commands that
// touch the database and nothing else (backup, restore): they need no Stripe
// keys. The returned error is an *Error.
func LoadDatabase(getenv func(string) string) (Database, error) {
	var p []string
	bad := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	db := parseDatabase(orDefault(strings.TrimSpace(getenv("DATABASE_URL")), defaultDatabaseURL), bad)
	if len(p) > 0 {
		return Database{}, &Error{Problems: p}
	}
	return db, nil
}

func parseDatabase(raw string, bad func(string, ...any)) Database {
	switch {
	case strings.HasPrefix(raw, "sqlite:"):
		path := strings.TrimPrefix(raw, "sqlite:")
		path = strings.TrimPrefix(path, "//") // sqlite://path is a common spelling
		if path == "" {
			bad("DATABASE_URL sqlite:PATH needs a file path, such as sqlite:data/shop.db")
		}
		return Database{Driver: "sqlite", DSN: path}
	case strings.HasPrefix(raw, "postgres://"), strings.HasPrefix(raw, "postgresql://"):
		return Database{Driver: "postgres", DSN: raw}
	}
	bad("DATABASE_URL must be sqlite:PATH or postgres://..., got %q", redactURL(raw))
	return Database{}
}

// redactURL hides a password in a URL so it can be shown in an error. A
// value that does not parse as a URL with an authority (a password with a
// "/" or "#" in it, a bad escape, a missing scheme) loses everything before
// its last "@", where a password would be.
func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Opaque == "" {
		if u.User == nil {
			return raw
		}
		return u.Redacted()
	}
	at := strings.LastIndex(raw, "@")
	if at < 0 {
		return raw
	}
	start := 0
	if i := strings.Index(raw, "://"); i >= 0 && i < at {
		start = i + len("://")
	}
	return raw[:start] + "xxxxx" + raw[at:]
}

func mode(key string) string {
	switch {
	case strings.Contains(key, "_test_"):
		return "test"
	case strings.Contains(key, "_live_"):
		return "live"
	}
	return ""
}

func hasAnyPrefix(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func intVar(v string, def, lo, hi int, name string, bad func(string, ...any)) int {
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		bad("%s must be a whole number from %d to %d, got %q", name, lo, hi, v)
		return def
	}
	return n
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

func floatVar(v string, def, lo, hi float64, name string, bad func(string, ...any)) float64 {
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < lo || f > hi {
		bad("%s must be a number from %g to %g, got %q", name, lo, hi, v)
		return def
	}
	return f
}

func boolVar(v, name string, bad func(string, ...any)) bool {
	if v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		bad("%s must be true or false, got %q", name, v)
	}
	return b
}

func durationRange(v string, def, lo, hi time.Duration, name string, bad func(string, ...any)) time.Duration {
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < lo || d > hi {
		bad("%s must be a duration such as 10s, 15m or 72h, from %v to %v; got %q", name, lo, hi, v)
		return def
	}
	return d
}
