package config

import (
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
	}
	want := map[string]any{
		"base": "http://localhost:8000", "port": 8000, "db": Database{Driver: "sqlite", DSN: "data/shop.db"}, "locale": "auto",
		"timeout": 10 * time.Second, "secrets": 0, "max": int64(10), "api": "", "admin": "", "demo": false, "addr": ":8000",
		"reconcile": time.Duration(0), "window": 72 * time.Hour, "shutdown": 20 * time.Second,
		"rate": RateLimit{PerClientPerMinute: 10, Burst: 5, GlobalPerSecond: 20},
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
		"proxies": fmt.Sprint(c.TrustedProxies), "rate": c.RateLimit,
	}
	want := map[string]any{
		"secrets": []string{"whsec_one", "whsec_two"}, "base": "https://shop.example.com", "port": 9000,
		"db": Database{Driver: "postgres", DSN: "postgres://u:p@db/shop"}, "api": "http://localhost:12111", "timeout": 3 * time.Second,
		"catalog": "catalog.json", "admin": "pw",
		"checkout": CheckoutOptions{Locale: "de", PromotionCodes: true, AutomaticTax: true, ShippingCountries: []string{"US", "CA"}, BillingAddress: true, MaxQuantityDefault: 5},
		"origins":  []string{"http://localhost:12113"}, "demo": true, "log": "json",
		"proxies": "[10.0.0.0/8 192.168.1.7/32]", "rate": RateLimit{PerClientPerMinute: 30, Burst: 2, GlobalPerSecond: 7.5},
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
		{"demo with live keys", map[string]string{"STRIPE_SECRET_KEY": "sk_live_x", "STRIPE_PUBLISHABLE_KEY": "pk_live_x", "DEMO_MODE": "true"}, []string{"DEMO_MODE is set with live keys"}},
		{"bad proxy", map[string]string{"TRUSTED_PROXIES": "10.0.0.0/8,proxy.local"}, []string{"TRUSTED_PROXIES must be IP addresses"}},
		{"bad rate", map[string]string{"RATE_LIMIT_PER_MINUTE": "-1"}, []string{"RATE_LIMIT_PER_MINUTE must be"}},
		{"bad burst", map[string]string{"RATE_LIMIT_BURST": "0"}, []string{"RATE_LIMIT_BURST must be"}},
		{"bad global", map[string]string{"RATE_LIMIT_GLOBAL_PER_SECOND": "fast"}, []string{"RATE_LIMIT_GLOBAL_PER_SECOND must be a number"}},
		{"bad log format", map[string]string{"LOG_FORMAT": "xml"}, []string{"LOG_FORMAT must be"}},
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
				t.Errorf("error shows a database password: %v", err)
			}
		})
	}
}

func TestLive(t *testing.T) {
	e := valid()
	e["STRIPE_SECRET_KEY"], e["STRIPE_PUBLISHABLE_KEY"] = "rk_live_x", "pk_live_x"
	c, err := Load(env(e))
	if err != nil || !c.Live() {
		t.Errorf("got live=%v err=%v, want live", c.Live(), err)
	}
}
