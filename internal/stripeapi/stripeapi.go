// Package stripeapi builds the stripe-go client the shop uses: explicit
// backends, a bounded timeout and few retries, no global key.
package stripeapi

import (
	"net/http"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
)

// Options configures New.
type Options struct {
	Key     string        // sk_ or rk_ key
	APIBase string        // "" for Stripe, or e.g. stripe-mock's http://localhost:12111
	Timeout time.Duration // per HTTP attempt; callers also put a deadline on each call
	// Retries is how often stripe-go retries a failed request (it sends the
	// same idempotency key each time).
	Retries int64
	// HTTPClient, if set, replaces the default (tests use it to inject faults).
	HTTPClient *http.Client
}

// New returns a stripe-go API client that reaches Stripe (or opts.APIBase)
// only through its own backends. stripe-go's logging is off: the shop logs
// Stripe failures itself, without Stripe's messages.
func New(opts Options) *client.API {
	base := opts.HTTPClient
	if base == nil {
		base = &http.Client{Timeout: opts.Timeout}
	}
	rt := base.Transport
	if rt == nil {
		// The default keeps two idle connections per host: concurrent
		// checkouts would each open a new connection to Stripe.
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 64
		rt = t
	}
	hc := *base
	hc.Transport = retryTransport{base: rt, attempts: 3, backoff: 250 * time.Millisecond}
	cfg := func() *stripe.BackendConfig {
		c := &stripe.BackendConfig{
			HTTPClient:        &hc,
			MaxNetworkRetries: stripe.Int64(opts.Retries),
			LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
		}
		if opts.APIBase != "" {
			c.URL = stripe.String(opts.APIBase)
		}
		return c
	}
	return client.New(opts.Key, &stripe.Backends{
		API:     stripe.GetBackendWithConfig(stripe.APIBackend, cfg()),
		Connect: stripe.GetBackendWithConfig(stripe.ConnectBackend, cfg()),
		Uploads: stripe.GetBackendWithConfig(stripe.UploadsBackend, cfg()),
	})
}
