package stripeapi

import (
	"io"
	"net/http"
	"time"
)

// retryTransport retries what stripe-go leaves alone but Stripe says is
// safe: a 429 (rate limited) answer to a request that is idempotent, a GET or
// a POST carrying an Idempotency-Key, after a back-off and within the
// request's deadline. stripe-go itself retries network errors, 409 and 503
// with the same key; a 500 answer to a POST is not retried by anyone, since
// Stripe stores it under the idempotency key.
type retryTransport struct {
	base     http.RoundTripper
	attempts int
	backoff  time.Duration
}

func (t retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	safe := req.Method == http.MethodGet || req.Header.Get("Idempotency-Key") != ""
	for attempt := 1; ; attempt++ {
		r := req
		if attempt > 1 {
			if req.GetBody != nil {
				body, err := req.GetBody()
				if err != nil {
					return nil, err
				}
				r = req.Clone(req.Context())
				r.Body = body
			}
		}
		resp, err := t.base.RoundTrip(r)
		if err != nil || resp.StatusCode != http.StatusTooManyRequests || !safe || attempt >= t.attempts ||
			(req.Body != nil && req.GetBody == nil) {
			return resp, err
		}
		wait := t.backoff << (attempt - 1)
		if d, ok := req.Context().Deadline(); ok && time.Until(d) < wait {
			return resp, nil // no time left to wait: let the caller see the 429
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		select {
		case <-req.Context().Done():
			return nil, req.Context().Err()
		case <-time.After(wait):
		}
	}
}
