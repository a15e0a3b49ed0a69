package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func valid() map[string]string {
	return map[string]string{
		"STRIPE_SECRET_KEY":      "sk_test_abc123",
		"STRIPE_PUBLISHABLE_KEY": "pk_test_abc123",
	}
}

func TestLoadDefaults(t *testing.T) {
	c, err := Load(env(valid()))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	got := map[string]any{
		"base": c.BaseURL.String(), "port": c.Port, "db": c.Database, "locale": c.Checkout.Locale,
		"timeout": c.StripeTimeout, "secrets": len(c.WebhookSecrets), "max": c.Checkout.MaxQuantityDefault,
		"api": c.StripeAPIBase, "admin": c.AdminPassword, "demo": c.DemoMode, "addr": c.Addr(),
		"reconcile": c.ReconcileInterval, "window": c.ReconcileWindow, "shutdown": c.ShutdownTimeout, "rate": c.RateLimit,
		"tz": c.Location.String(), "catalog": c.CatalogSource, "refresh": c.CatalogRefresh,
		"ui": c.Checkout.UI, "stripejs": c.StripeJSURL,
	}
	want := map[string]any{
		"base": "http://localhost:8000", "port": 8000, "db": Database{Driver: "sqlite", DSN: "data/shop.db"}, "locale": "auto",
		"timeout": 10 * time.Second, "secrets": 0, "max": int64(10), "api": "", "admin": "", "demo": false, "addr": ":8000",
		"reconcile": time.Duration(0), "window": 72 * time.Hour, "shutdown": 20 * time.Second,
		"rate": RateLimit{PerClientPerMinute: 10, Burst: 5, GlobalPerSecond: 20}, "tz": "UTC",
		"catalog": "file", "refresh": 10 * time.Minute,
		"ui": "hosted", "stripejs": "https://js.stripe.com/v3/",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
}

func TestLoadAll(t *testing.T) {
	e := valid()
	for k, v := range map[string]string{
		"STRIPE_WEBHOOK_SECRET": "whsec_one, whsec_two", "BASE_URL": "https://shop.example.com/", "PORT": "9000",
		"DATABASE_URL": "postgres://u:p@db/shop", "STRIPE_API_BASE": "http://localhost:12111/", "STRIPE_TIMEOUT": "3s",
		"CATALOG_FILE": "catalog.json", "ADMIN_PASSWORD": "pw", "CHECKOUT_LOCALE": "de", "CHECKOUT_PROMOTION_CODES": "true",
		"CHECKOUT_AUTOMATIC_TAX": "1", "CHECKOUT_SHIPPING_COUNTRIES": "us, ca", "CHECKOUT_BILLING_ADDRESS": "true",
		"CHECKOUT_MAX_QUANTITY": "5", "CHECKOUT_ORIGINS": "http://localhost:12113", "DEMO_MODE": "true", "LOG_FORMAT": "json",
		"TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.7", "RATE_LIMIT_PER_MINUTE": "30", "RATE_LIMIT_BURST": "2", "RATE_LIMIT_GLOBAL_PER_SECOND": "7.5",
		"SHOP_TIMEZONE": "Europe/Paris", "CHECKOUT_UI": "Embedded", "STRIPE_JS_URL": "http://localhost:12113/v3/",
	} {
		e[k] = v
	}
	c, err := Load(env(e))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	got := map[string]any{
		"secrets": c.WebhookSecrets, "base": c.BaseURL.String(), "port": c.Port, "db": c.Database, "api": c.StripeAPIBase,
		"timeout": c.StripeTimeout, "catalog": c.CatalogFile, "admin": c.AdminPassword, "checkout": c.Checkout,
		"origins": c.CheckoutOrigins, "demo": c.DemoMode, "log": c.LogFormat,
		"proxies": fmt.Sprint(c.TrustedProxies), "rate": c.RateLimit, "tz": c.Location.String(),
		"stripejs": c.StripeJSURL,
	}
	want := map[string]any{
		"secrets": []string{"whsec_one", "whsec_two"}, "base": "https://shop.example.com", "port": 9000,
		"db": Database{Driver: "postgres", DSN: "postgres://u:p@db/shop"}, "api": "http://localhost:12111", "timeout": 3 * time.Second,
		"catalog": "catalog.json", "admin": "pw",
		"checkout": CheckoutOptions{Locale: "de", PromotionCodes: true, AutomaticTax: true, ShippingCountries: []string{"US", "CA"}, BillingAddress: true, MaxQuantityDefault: 5, UI: "embedded"},
		"origins":  []string{"http://localhost:12113"}, "demo": true, "log": "json",
		"proxies": "[10.0.0.0/8 192.168.1.7/32]", "rate": RateLimit{PerClientPerMinute: 30, Burst: 2, GlobalPerSecond: 7.5},
		"tz": "Europe/Paris", "stripejs": "http://localhost:12113/v3/",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

func TestLoadRejects(t *testing.T) {
	tests := []struct {
		name string
		set  map[string]string
		want []string // each must appear in the error
	}{
		{"nothing set", map[string]string{"STRIPE_SECRET_KEY": "", "STRIPE_PUBLISHABLE_KEY": ""},
			[]string{"STRIPE_SECRET_KEY is not set", "STRIPE_PUBLISHABLE_KEY is not set", "dashboard.stripe.com/test/apikeys"}},
		{"placeholders", map[string]string{"STRIPE_SECRET_KEY": PlaceholderSecretKey, "STRIPE_PUBLISHABLE_KEY": PlaceholderPublishableKey, "STRIPE_WEBHOOK_SECRET": PlaceholderWebhookSecret},
			[]string{"STRIPE_SECRET_KEY still holds the .env.example placeholder", "STRIPE_PUBLISHABLE_KEY still holds", "STRIPE_WEBHOOK_SECRET still holds"}},
		{"publishable as secret", map[string]string{"STRIPE_SECRET_KEY": "pk_test_x"}, []string{"STRIPE_SECRET_KEY holds a publishable key"}},
		{"webhook secret as secret", map[string]string{"STRIPE_SECRET_KEY": "whsec_x"}, []string{"STRIPE_SECRET_KEY holds a webhook signing secret"}},
		{"secret as publishable", map[string]string{"STRIPE_PUBLISHABLE_KEY": "sk_test_x"}, []string{"STRIPE_PUBLISHABLE_KEY holds a secret key"}},
		{"restricted as publishable", map[string]string{"STRIPE_PUBLISHABLE_KEY": "rk_test_x"}, []string{"STRIPE_PUBLISHABLE_KEY holds a secret key"}},
		{"junk secret", map[string]string{"STRIPE_SECRET_KEY": "hunter2"}, []string{"STRIPE_SECRET_KEY must start with"}},
		{"junk publishable", map[string]string{"STRIPE_PUBLISHABLE_KEY": "abc"}, []string{"STRIPE_PUBLISHABLE_KEY must start with"}},
		{"mixed modes", map[string]string{"STRIPE_SECRET_KEY": "sk_live_x", "STRIPE_PUBLISHABLE_KEY": "pk_test_x"}, []string{"live key but STRIPE_PUBLISHABLE_KEY is a test key"}},
		{"bad webhook secret", map[string]string{"STRIPE_WEBHOOK_SECRET": "whsec_ok,sk_test_oops"}, []string{"STRIPE_WEBHOOK_SECRET must be whsec_"}},
		{"relative base", map[string]string{"BASE_URL": "shop.example.com"}, []string{"BASE_URL must be an absolute"}},
		{"ftp base", map[string]string{"BASE_URL": "ftp://shop.example.com"}, []string{"BASE_URL must be an absolute"}},
		{"bad port", map[string]string{"PORT": "eighty"}, []string{"PORT must be a whole number"}},
		{"port range", map[string]string{"PORT": "70000"}, []string{"PORT must be a whole number"}},
		{"bad database", map[string]string{"DATABASE_URL": "mysql://u:secretpw@x/db"}, []string{"DATABASE_URL must be sqlite:PATH"}},
		{"empty sqlite path", map[string]string{"DATABASE_URL": "sqlite:"}, []string{"needs a file path"}},
		{"bad api base", map[string]string{"STRIPE_API_BASE": "localhost:12111"}, []string{"STRIPE_API_BASE must be"}},
		{"bad timeout", map[string]string{"STRIPE_TIMEOUT": "forever"}, []string{"STRIPE_TIMEOUT must be a duration"}},
		{"bad metrics addr", map[string]string{"METRICS_ADDR": "9090"}, []string{"METRICS_ADDR must be a listen address"}},
		{"bad reconcile interval", map[string]string{"RECONCILE_INTERVAL": "often"}, []string{"RECONCILE_INTERVAL must be a duration"}},
		{"reconcile window too long", map[string]string{"RECONCILE_WINDOW": "1000h"}, []string{"RECONCILE_WINDOW must be a duration"}},
		{"bad shutdown", map[string]string{"SHUTDOWN_TIMEOUT": "-1s"}, []string{"SHUTDOWN_TIMEOUT must be a duration"}},
		{"long timeout", map[string]string{"STRIPE_TIMEOUT": "80s"}, nil},
		{"too long timeout", map[string]string{"STRIPE_TIMEOUT": "5m"}, []string{"STRIPE_TIMEOUT must be a duration"}},
		{"bad bool", map[string]string{"CHECKOUT_PROMOTION_CODES": "maybe"}, []string{"CHECKOUT_PROMOTION_CODES must be true or false"}},
		{"bad country", map[string]string{"CHECKOUT_SHIPPING_COUNTRIES": "US,USA"}, []string{"CHECKOUT_SHIPPING_COUNTRIES must be two-letter"}},
		{"bad origin", map[string]string{"CHECKOUT_ORIGINS": "localhost:12113"}, []string{"CHECKOUT_ORIGINS must be origins"}},
		{"bad max", map[string]string{"CHECKOUT_MAX_QUANTITY": "0"}, []string{"CHECKOUT_MAX_QUANTITY must be"}},
		{"bad checkout ui", map[string]string{"CHECKOUT_UI": "popup"}, []string{`CHECKOUT_UI must be hosted or embedded, got "popup"`}},
		{"checkout ui of a later API version", map[string]string{"CHECKOUT_UI": "embedded_page"},
			[]string{`CHECKOUT_UI must be hosted or embedded, got "embedded_page"`, "2023-10-16"}},
		{"relative stripe.js", map[string]string{"STRIPE_JS_URL": "/v3/"}, []string{"STRIPE_JS_URL must be an absolute http(s) URL"}},
		{"stripe.js not http", map[string]string{"STRIPE_JS_URL": "file:///tmp/stripe.js"}, []string{"STRIPE_JS_URL must be an absolute http(s) URL"}},
		{"stripe.js with a fragment", map[string]string{"STRIPE_JS_URL": "https://js.stripe.com/v3/#x"}, []string{"STRIPE_JS_URL must be an absolute http(s) URL"}},
		{"demo with live keys", map[string]string{"STRIPE_SECRET_KEY": "sk_live_x", "STRIPE_PUBLISHABLE_KEY": "pk_live_x", "DEMO_MODE": "true"}, []string{"DEMO_MODE is set with live keys"}},
		{"bad proxy", map[string]string{"TRUSTED_PROXIES": "10.0.0.0/8,proxy.local"}, []string{"TRUSTED_PROXIES must be IP addresses"}},
		{"bad rate", map[string]string{"RATE_LIMIT_PER_MINUTE": "-1"}, []string{"RATE_LIMIT_PER_MINUTE must be"}},
		{"bad burst", map[string]string{"RATE_LIMIT_BURST": "0"}, []string{"RATE_LIMIT_BURST must be"}},
		{"bad global", map[string]string{"RATE_LIMIT_GLOBAL_PER_SECOND": "fast"}, []string{"RATE_LIMIT_GLOBAL_PER_SECOND must be a number"}},
		{"bad log format", map[string]string{"LOG_FORMAT": "xml"}, []string{"LOG_FORMAT must be"}},
		{"bad catalog source", map[string]string{"CATALOG_SOURCE": "shopify"}, []string{"CATALOG_SOURCE must be file or stripe"}},
		{"catalog file and stripe", map[string]string{"CATALOG_SOURCE": "stripe", "CATALOG_FILE": "c.json"}, []string{"CATALOG_FILE is set but CATALOG_SOURCE is stripe"}},
		{"catalog refresh too short", map[string]string{"CATALOG_REFRESH": "5s"}, []string{"CATALOG_REFRESH must be"}},
		{"bad time zone", map[string]string{"SHOP_TIMEZONE": "Mars/Olympus"}, []string{"SHOP_TIMEZONE must be an IANA time zone"}},
		{"local time zone", map[string]string{"SHOP_TIMEZONE": "Local"}, []string{"SHOP_TIMEZONE must be an IANA time zone"}},
		{"fulfilment url without secret", map[string]string{"FULFILMENT_WEBHOOK_URL": "https://orders.example.com/hook"},
			[]string{"FULFILMENT_WEBHOOK_URL is set but FULFILMENT_WEBHOOK_SECRET is not"}},
		{"fulfilment secret without url", map[string]string{"FULFILMENT_WEBHOOK_SECRET": strings.Repeat("s", 32)},
			[]string{"FULFILMENT_WEBHOOK_SECRET is set but FULFILMENT_WEBHOOK_URL is not"}},
		{"short fulfilment secret", map[string]string{"FULFILMENT_WEBHOOK_URL": "https://orders.example.com/hook", "FULFILMENT_WEBHOOK_SECRET": "secretpw"},
			[]string{"FULFILMENT_WEBHOOK_SECRET must be at least 32 characters, got 8"}},
		{"fulfilment url not http", map[string]string{"FULFILMENT_WEBHOOK_URL": "ftp://u:secretpw@orders.example.com/hook", "FULFILMENT_WEBHOOK_SECRET": strings.Repeat("s", 32)},
			[]string{"FULFILMENT_WEBHOOK_URL must be an absolute http(s) URL"}},
		{"fulfilment url relative", map[string]string{"FULFILMENT_WEBHOOK_URL": "orders.example.com/hook", "FULFILMENT_WEBHOOK_SECRET": strings.Repeat("s", 32)},
			[]string{"FULFILMENT_WEBHOOK_URL must be an absolute http(s) URL"}},
		{"smtp without from", map[string]string{"SMTP_URL": "smtp://mail.example.com"}, []string{"SMTP_URL is set but MAIL_FROM is not"}},
		{"from without smtp", map[string]string{"MAIL_FROM": "shop@example.com"}, []string{"MAIL_FROM and SHOP_OWNER_EMAIL need SMTP_URL"}},
		{"owner without smtp", map[string]string{"SHOP_OWNER_EMAIL": "owner@example.com"}, []string{"MAIL_FROM and SHOP_OWNER_EMAIL need SMTP_URL"}},
		{"smtp scheme", map[string]string{"SMTP_URL": "https://u:secretpw@mail.example.com", "MAIL_FROM": "shop@example.com"},
			[]string{"SMTP_URL must be smtp://", "the scheme is not smtp or smtps", "https://u:xxxxx@mail.example.com"}},
		{"smtp without scheme", map[string]string{"SMTP_URL": "user:secretpw@mail.example.com:587", "MAIL_FROM": "shop@example.com"},
			[]string{"SMTP_URL must be smtp://"}},
		{"smtp without host", map[string]string{"SMTP_URL": "smtp://u:secretpw@:25", "MAIL_FROM": "shop@example.com"},
			[]string{"SMTP_URL must be smtp://", "it needs a host"}},
		{"smtp port range", map[string]string{"SMTP_URL": "smtp://u:secretpw@mail.example.com:70000", "MAIL_FROM": "shop@example.com"},
			[]string{"SMTP_URL must be smtp://", "the port is not a number from 1 to 65535"}},
		{"smtp port zero", map[string]string{"SMTP_URL": "smtps://mail.example.com:0", "MAIL_FROM": "shop@example.com"},
			[]string{"SMTP_URL must be smtp://", "the port is not a number"}},
		{"smtp with path", map[string]string{"SMTP_URL": "smtp://mail.example.com/inbox", "MAIL_FROM": "shop@example.com"},
			[]string{"SMTP_URL must be smtp://", "nothing after it"}},
		{"smtp with query", map[string]string{"SMTP_URL": "smtp://mail.example.com?tls=off", "MAIL_FROM": "shop@example.com"},
			[]string{"SMTP_URL must be smtp://", "nothing after it"}},
		// A URL that does not parse still hides its password.
		{"smtp password with a slash", map[string]string{"SMTP_URL": "smtp://user:secretpw/x@mail.example.com", "MAIL_FROM": "shop@example.com"},
			[]string{"SMTP_URL must be smtp://", "mail.example.com"}},
		{"smtp password with a hash", map[string]string{"SMTP_URL": "smtps://user:secretpw#x@mail.example.com", "MAIL_FROM": "shop@example.com"},
			[]string{"SMTP_URL must be smtp://", "mail.example.com"}},
		{"smtp password badly escaped", map[string]string{"SMTP_URL": "smtp://user:secretpw%zz@mail.example.com", "MAIL_FROM": "shop@example.com"},
			[]string{"SMTP_URL must be smtp://", "not a URL"}},
		{"bad from", map[string]string{"SMTP_URL": "smtp://mail.example.com", "MAIL_FROM": "the shop"},
			[]string{"MAIL_FROM must be an email address", `"the shop"`}},
		{"owner with a name", map[string]string{"SMTP_URL": "smtp://mail.example.com", "MAIL_FROM": "shop@example.com", "SHOP_OWNER_EMAIL": "Owner <owner@example.com>"},
			[]string{"SHOP_OWNER_EMAIL must be one email address"}},
		{"owner list", map[string]string{"SMTP_URL": "smtp://mail.example.com", "MAIL_FROM": "shop@example.com", "SHOP_OWNER_EMAIL": "a@example.com, b@example.com"},
			[]string{"SHOP_OWNER_EMAIL must be one email address"}},
		{"bad owner", map[string]string{"SMTP_URL": "smtp://mail.example.com", "MAIL_FROM": "shop@example.com", "SHOP_OWNER_EMAIL": "owner"},
			[]string{"SHOP_OWNER_EMAIL must be one email address"}},
		{"every mail problem at once", map[string]string{"SMTP_URL": "smtp://u:secretpw@mail.example.com:x", "SHOP_OWNER_EMAIL": "owner", "FULFILMENT_WEBHOOK_SECRET": "short"},
			[]string{"SMTP_URL must be", "SMTP_URL is set but MAIL_FROM is not", "SHOP_OWNER_EMAIL must be", "FULFILMENT_WEBHOOK_SECRET is set but FULFILMENT_WEBHOOK_URL is not"}},
		{"several at once", map[string]string{"STRIPE_SECRET_KEY": "", "PORT": "x", "BASE_URL": "nope"},
			[]string{"STRIPE_SECRET_KEY is not set", "PORT must be", "BASE_URL must be"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := valid()
			for k, v := range tt.set {
				e[k] = v
			}
			_, err := Load(env(e))
			if tt.want == nil {
				if err != nil {
					t.Fatalf("got error %v, want none", err)
				}
				return
			}
			if err == nil {
				t.Fatal("got no error")
			}
			if !IsConfigError(err) {
				t.Errorf("got %T, want *Error", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), "secretpw") {
				t.Errorf("error shows a password: %v", err)
			}
		})
	}
}

// live returns a valid live configuration's environment.
func live() map[string]string {
	e := valid()
	e["STRIPE_SECRET_KEY"], e["STRIPE_PUBLISHABLE_KEY"] = "rk_live_x", "pk_live_x"
	e["BASE_URL"], e["STRIPE_WEBHOOK_SECRET"], e["STRIPE_API_BASE"] = "https://shop.example.com", "whsec_live", ""
	e["CHECKOUT_ORIGINS"], e["DEMO_MODE"], e["ADMIN_PASSWORD"] = "", "", "a-long-admin-password"
	return e
}

func TestLive(t *testing.T) {
	c, err := Load(env(live()))
	if err != nil || !c.Live() {
		t.Errorf("got live=%v err=%v, want live", c.Live(), err)
	}
}

// TestLiveRefusesUnsafeSettings checks every setting a live shop refuses,
// one at a time and all at once, and that test mode keeps them.
func TestLiveRefusesUnsafeSettings(t *testing.T) {
	unsafe := []struct {
		key, value, want string
	}{
		{"BASE_URL", "http://shop.example.com", "BASE_URL must be https://"},
		{"STRIPE_API_BASE", "http://localhost:12111", "STRIPE_API_BASE is set with live keys"},
		{"CHECKOUT_ORIGINS", "http://localhost:12113", "CHECKOUT_ORIGINS is set with live keys"},
		{"STRIPE_JS_URL", "http://localhost:12113/v3/", "STRIPE_JS_URL is set to \"http://localhost:12113/v3/\" with live keys"},
		{"DEMO_MODE", "true", "DEMO_MODE is set with live keys"},
		{"STRIPE_WEBHOOK_SECRET", "", "STRIPE_WEBHOOK_SECRET is empty with live keys"},
		{"TRUSTED_PROXIES", "10.0.0.1,0.0.0.0/0", "TRUSTED_PROXIES holds 0.0.0.0/0"},
		{"TRUSTED_PROXIES", "::/0", "TRUSTED_PROXIES holds ::/0"},
		{"ADMIN_PASSWORD", "short-password", "ADMIN_PASSWORD must be at least 16 characters"},
	}
	all := live()
	for _, u := range unsafe {
		e := live()
		e[u.key] = u.value
		_, err := Load(env(e))
		if err == nil || !strings.Contains(err.Error(), u.want) {
			t.Errorf("%s=%q with live keys: got %v, want an error with %q", u.key, u.value, err, u.want)
		}
		if u.key != "TRUSTED_PROXIES" || u.value == "::/0" {
			all[u.key] = u.value
		}
		// Test mode keeps today's convenience.
		e["STRIPE_SECRET_KEY"], e["STRIPE_PUBLISHABLE_KEY"] = "sk_test_x", "pk_test_x"
		if _, err := Load(env(e)); err != nil {
			t.Errorf("%s=%q with test keys: %v, want it accepted", u.key, u.value, err)
		}
	}
	_, err := Load(env(all))
	var ce *Error
	if !errors.As(err, &ce) || len(ce.Problems) != len(unsafe)-1 {
		t.Errorf("all at once: got %v, want %d problems named together", err, len(unsafe)-1)
	}
	ok := live()
	ok["ADMIN_PASSWORD"] = "" // no admin at all is fine
	if _, err := Load(env(ok)); err != nil {
		t.Errorf("live without an admin password: %v", err)
	}
	ok["STRIPE_JS_URL"] = DefaultStripeJSURL // Stripe.js itself, named
	if _, err := Load(env(ok)); err != nil {
		t.Errorf("live with STRIPE_JS_URL=%s: %v", DefaultStripeJSURL, err)
	}
}

func TestLoadFulfilment(t *testing.T) {
	secret := strings.Repeat("s", MinFulfilmentSecret)
	tests := []struct {
		name string
		set  map[string]string
		want Fulfilment
	}{
		{"nothing", nil, Fulfilment{}},
		{"webhook", map[string]string{"FULFILMENT_WEBHOOK_URL": "https://orders.example.com/hook", "FULFILMENT_WEBHOOK_SECRET": secret},
			Fulfilment{WebhookURL: "https://orders.example.com/hook", WebhookSecret: secret}},
		{"smtp defaults to 587 with STARTTLS", map[string]string{"SMTP_URL": "smtp://mail.example.com", "MAIL_FROM": "Shop <orders@example.com>"},
			Fulfilment{SMTP: &SMTP{Host: "mail.example.com", Port: 587}, MailFrom: "Shop <orders@example.com>"}},
		{"smtps defaults to 465 with implicit TLS", map[string]string{"SMTP_URL": "smtps://mail.example.com/", "MAIL_FROM": "orders@example.com"},
			Fulfilment{SMTP: &SMTP{Host: "mail.example.com", Port: 465, ImplicitTLS: true}, MailFrom: "orders@example.com"}},
		{"user, password and port", map[string]string{"SMTP_URL": "smtp://apikey:p%40ss%3Aword@mail.example.com:2525", "MAIL_FROM": "orders@example.com", "SHOP_OWNER_EMAIL": "owner@example.com"},
			Fulfilment{SMTP: &SMTP{Host: "mail.example.com", Port: 2525, Username: "apikey", Password: "p@ss:word"}, MailFrom: "orders@example.com", OwnerEmail: "owner@example.com"}},
		{"smtps with a port", map[string]string{"SMTP_URL": "smtps://u:pw@mail.example.com:8465", "MAIL_FROM": "orders@example.com"},
			Fulfilment{SMTP: &SMTP{Host: "mail.example.com", Port: 8465, Username: "u", Password: "pw", ImplicitTLS: true}, MailFrom: "orders@example.com"}},
		{"IPv6 host", map[string]string{"SMTP_URL": "smtp://[::1]:1025", "MAIL_FROM": "orders@example.com"},
			Fulfilment{SMTP: &SMTP{Host: "::1", Port: 1025}, MailFrom: "orders@example.com"}},
		{"everything", map[string]string{"SMTP_URL": " smtp://127.0.0.1:1025 ", "MAIL_FROM": "Demo Shop <shop@demo.test>", "SHOP_OWNER_EMAIL": "owner@demo.test",
			"FULFILMENT_WEBHOOK_URL": "http://127.0.0.1:9000/hook", "FULFILMENT_WEBHOOK_SECRET": secret},
			Fulfilment{WebhookURL: "http://127.0.0.1:9000/hook", WebhookSecret: secret, SMTP: &SMTP{Host: "127.0.0.1", Port: 1025},
				MailFrom: "Demo Shop <shop@demo.test>", OwnerEmail: "owner@demo.test"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := valid()
			for k, v := range tt.set {
				e[k] = v
			}
			c, err := Load(env(e))
			if err != nil {
				t.Fatalf("Load: got %v, want no error", err)
			}
			if diff := cmp.Diff(tt.want, c.Fulfilment); diff != "" {
				t.Errorf("Fulfilment (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"postgres://u:secretpw@db/shop", "postgres://u:xxxxx@db/shop"},
		{"smtp://u:secretpw@mail.example.com:587", "smtp://u:xxxxx@mail.example.com:587"},
		{"smtp://u:secret/pw@mail.example.com", "smtp://xxxxx@mail.example.com"},
		{"smtp://u:secret#pw@mail.example.com", "smtp://xxxxx@mail.example.com"},
		{"smtp://u:secret%zz@mail.example.com", "smtp://xxxxx@mail.example.com"},
		{"u:secretpw@mail.example.com:587", "xxxxx@mail.example.com:587"},
		{"https://hooks.example.com/x?to=a@b.example", "https://hooks.example.com/x?to=a@b.example"},
		{"smtp://mail.example.com", "smtp://mail.example.com"},
		{"not a url", "not a url"},
	} {
		if got := redactURL(tt.in); got != tt.want {
			t.Errorf("redactURL(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestLoadDatabase: the backup and restore commands read DATABASE_URL alone,
// with the default Load uses, and need no Stripe keys.
func TestLoadDatabase(t *testing.T) {
	tests := []struct {
		env     map[string]string
		want    Database
		wantErr string
	}{
		{nil, Database{Driver: "sqlite", DSN: "data/shop.db"}, ""},
		{map[string]string{"DATABASE_URL": " sqlite:/data/shop.db "}, Database{Driver: "sqlite", DSN: "/data/shop.db"}, ""},
		{map[string]string{"DATABASE_URL": "postgres://u:p@db/shop"}, Database{Driver: "postgres", DSN: "postgres://u:p@db/shop"}, ""},
		{map[string]string{"DATABASE_URL": "sqlite:"}, Database{}, "needs a file path"},
		{map[string]string{"DATABASE_URL": "mysql://u:secretpw@x/db"}, Database{}, "DATABASE_URL must be sqlite:PATH"},
	}
	for _, tt := range tests {
		got, err := LoadDatabase(env(tt.env))
		if tt.wantErr != "" {
			if !IsConfigError(err) || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "secretpw") {
				t.Errorf("LoadDatabase(%v): got %v, want a config error containing %q, without the password", tt.env, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("LoadDatabase(%v): got %+v, %v; want %+v", tt.env, got, err, tt.want)
		}
	}
}
