package web

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/shopcheckout/shop/internal/orders"
)

// countingStore counts the writes the server tries.
type countingStore struct {
	orders.Store
	applies atomic.Int64
}

func (c *countingStore) Write(ctx context.Context, fn func(context.Context, orders.Tx) error) error {
	c.applies.Add(1)
	return c.Store.Write(ctx, fn)
}

// FuzzWebhook: whatever the body and Stripe-Signature header, the handler
// never panics, never answers 2xx unless the signature is valid, and never
// stores anything it rejected; whatever Stripe signed, readable or not, is
// answered 200 and stored.
func FuzzWebhook(f *testing.F) {
	valid := []byte(`{"id":"evt_seed","object":"event","api_version":"2023-10-16","created":1,"type":"checkout.session.completed","data":{"object":{"id":"cs_test_seed","object":"checkout.session","status":"complete","payment_status":"paid","amount_total":2000,"currency":"usd","client_reference_id":"ord_seed"}}}`)
	now := time.Now()
	f.Add(valid, sign(valid, testWebhookSecret, now))
	f.Add(valid, sign(valid, "whsec_other", now))
	f.Add(valid, "t=1,v1=00")
	f.Add([]byte(`{}`), sign([]byte(`{}`), testWebhookSecret, now))
	f.Add([]byte(`not json`), sign([]byte(`not json`), testWebhookSecret, now))
	f.Add([]byte(`{"id":"evt_1","object":"event","type":"checkout.session.completed","data":{"object":null}}`), "")
	f.Add(valid, "t=,v1=,v1")
	f.Add(valid, strings.Repeat("v1=ab,", 200))
	// Shapes a signed event must survive: stored as unreadable, answered 200.
	for _, odd := range []string{
		`{"id":"evt_n","object":"event","created":1700000000,"type":"checkout.session.completed","data":{"object":null}}`,
		`{"id":"evt_t","object":"event","created":"yesterday","type":"checkout.session.completed","data":{"object":{}}}`,
		`{"id":"evt_a","object":"event","created":1700000000,"type":"checkout.session.completed","data":{"object":{"id":"cs_1","object":"checkout.session","amount_total":-5}}}`,
		`{"id":"evt_b","object":"event","created":99999999999999,"type":"checkout.session.expired","data":{"object":{"id":"cs_1","object":"checkout.session"}}}`,
		`{"id":"evt_l","object":"event","created":1700000000,"livemode":"yes","type":"charge.refunded","data":{"object":{"id":"ch_1"}}}`,
		`{"id":["evt"],"type":7}`,
	} {
		f.Add([]byte(odd), sign([]byte(odd), testWebhookSecret, now))
	}

	var store *countingStore
	ts := newWrappedTestServer(f, func(s orders.Store) orders.Store { store = &countingStore{Store: s}; return store })
	f.Fuzz(func(t *testing.T, body []byte, header string) {
		before := store.applies.Load()
		req := newRequest("POST", "/webhook")
		req.Body = http.NoBody
		if len(body) > 0 {
			req = newRequestBody("POST", "/webhook", bytes.NewReader(body))
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Stripe-Signature", header)
		rec := newRecorder()
		ts.ServeHTTP(rec, req)
		signed := webhook.ValidatePayloadWithTolerance(body, header, testWebhookSecret, webhookTolerance) == nil
		if rec.Code < 300 && !signed {
			t.Fatalf("answered %d to an unsigned event", rec.Code)
		}
		if !signed && store.applies.Load() != before {
			t.Fatal("a rejected event reached the store")
		}
		if signed && (rec.Code != http.StatusOK || store.applies.Load() == before) {
			t.Fatalf("a signed event got %d and %d writes; want 200 and stored", rec.Code, store.applies.Load()-before)
		}
		if rec.Code >= 500 {
			t.Fatalf("answered %d: %s", rec.Code, rec.Body)
		}
	})
}

// FuzzCheckoutCreate: whatever a client posts, only catalogue prices and
// bounded quantities reach Stripe, and the handler never panics or fails
// with a 5xx.
func FuzzCheckoutCreate(f *testing.F) {
	f.Add(true, `{"productId":"tshirt","quantity":2}`)
	f.Add(true, `{"productId":"tshirt","quantity":2,"amount":1,"currency":"jpy","price":"price_x","unitAmount":1}`)
	f.Add(true, `{"productId":"mug","quantity":1e3}`)
	f.Add(true, `{"productId":"mug","quantity":-1}`)
	f.Add(true, `{"productId":"tshirt","quantity":9223372036854775807}`)
	f.Add(false, "product_id=tshirt&quantity=3&amount=1&currency=jpy")
	f.Add(false, "product_id=mug&quantity=3&product_id=tshirt")
	f.Add(false, "product_id=tshirt&quantity=0x10")
	f.Add(false, "%zz")
	f.Add(true, `{"items":[{"productId":"tshirt","quantity":2},{"productId":"tshirt","quantity":9}]}`)
	f.Add(true, `{"items":[{"productId":"mug","quantity":1},{"productId":"tshirt","quantity":1}]}`)
	f.Add(true, `{"items":[{"productId":"mug","quantity":1,"unitAmount":1}],"productId":"tshirt"}`)
	f.Add(false, "source=cart&product_id=tshirt&quantity=1")

	ts := newTestServer(f)
	f.Fuzz(func(t *testing.T, asJSON bool, body string) {
		req := newRequestBody("POST", "/create-checkout-session", strings.NewReader(body))
		if asJSON {
			req.Header.Set("Content-Type", "application/json")
		} else {
			req.Header.Set("Content-Type", formType)
		}
		createdBefore, _ := ts.fake.calls()
		rec := newRecorder()
		ts.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK, http.StatusSeeOther, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		createdAfter, _ := ts.fake.calls()
		if createdAfter == createdBefore {
			return
		}
		p := ts.fake.lastParams(t)
		if len(p.LineItems) < 1 || len(p.LineItems) > maxCartLines {
			t.Fatalf("line items: got %d, want 1 to %d", len(p.LineItems), maxCartLines)
		}
		names := map[string]bool{}
		for _, li := range p.LineItems {
			var found bool
			for _, prod := range ts.catalog().Products() {
				if prod.Name == *li.PriceData.ProductData.Name {
					found = true
					if *li.PriceData.UnitAmount != prod.UnitAmount || *li.PriceData.Currency != prod.Currency {
						t.Fatalf("price reaching Stripe: %d %s, catalogue says %d %s", *li.PriceData.UnitAmount, *li.PriceData.Currency, prod.UnitAmount, prod.Currency)
					}
					if q := *li.Quantity; q < 1 || q > prod.MaxQuantity {
						t.Fatalf("quantity reaching Stripe: %d, want 1..%d", q, prod.MaxQuantity)
					}
				}
			}
			if !found {
				t.Fatalf("product %q reaching Stripe is not in the catalogue", *li.PriceData.ProductData.Name)
			}
			if names[*li.PriceData.ProductData.Name] {
				t.Fatalf("product %q reaching Stripe twice", *li.PriceData.ProductData.Name)
			}
			names[*li.PriceData.ProductData.Name] = true
			if *li.PriceData.Currency != *p.LineItems[0].PriceData.Currency {
				t.Fatal("line items in two currencies reached Stripe")
			}
		}
	})
}
