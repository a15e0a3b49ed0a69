package outbox

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/shopcheckout/shop/internal/orders"
)

// SignatureHeader carries an order webhook's signature, in Stripe's scheme:
// t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed by the secret>,
// so receivers can verify it with Stripe's own libraries.
const SignatureHeader = "Shop-Signature"

// Webhook POSTs notifications as JSON to the shop owner's endpoint.
type Webhook struct {
	url    string
	secret []byte
	client *http.Client
	now    func() time.Time
}

// NewWebhook returns a sender to endpoint, signing with secret. client may be nil
// for a default one; redirects are never followed, as Stripe does not.
func NewWebhook(endpoint, secret string, client *http.Client, now func() time.Time) *Webhook {
	if client == nil {
		client = &http.Client{}
	}
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if now == nil {
		now = time.Now
	}
	return &Webhook{url: endpoint, secret: []byte(secret), client: &c, now: now}
}

// Sign returns the signature header value for body at t.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts))
	mac.Write([]byte("."))
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// Send makes one delivery: the notification's stored body, freshly signed.
// Any 2xx answer is a delivery; anything else is an error.
func (w *Webhook) Send(ctx context.Context, n orders.Notification) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(n.Payload))
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, which may hold a token
		}
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "stripe-checkout-shop/outbox")
	req.Header.Set(SignatureHeader, Sign(w.secret, w.now(), n.Payload))
	resp, err := w.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			if ue.Timeout() {
				return errors.New("the receiver did not answer in time")
			}
			err = ue.Err // without the URL, which may hold a token
		}
		return fmt.Errorf("post: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("the receiver answered %s", resp.Status)
	}
	return nil
}
