package stripesim_test

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/shopcheckout/shop/internal/testenv"
	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
)

// TestStripeGoAgainstStripeMock drives the simulator with stripe-go in
// front of a real stripe-mock, proving that stripe-go parses its answers.
func TestStripeGoAgainstStripeMock(t *testing.T) {
	h := newHarness(t, options{mockURL: testenv.StripeMock(t)})
	sc := client.New(testKey, &stripe.Backends{
		API: stripe.GetBackendWithConfig(stripe.APIBackend, &stripe.BackendConfig{
			URL:               stripe.String(h.url),
			HTTPClient:        &http.Client{Timeout: 10 * time.Second},
			LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
			MaxNetworkRetries: stripe.Int64(0),
		}),
	})

	params := &stripe.CheckoutSessionParams{
		Mode:              stripe.String(string(stripe.CheckoutSessionModePayment)),
		SuccessURL:        stripe.String("https://shop.test/success?session_id={CHECKOUT_SESSION_ID}"),
		CancelURL:         stripe.String("https://shop.test/cart"),
		ClientReferenceID: stripe.String("order-99"),
		CustomerEmail:     stripe.String("buyer@example.com"),
		LineItems: []*stripe.CheckoutSessionLineItemParams{
			{
				PriceData: &stripe.CheckoutSessionLineItemPriceDataParams{
					Currency:    stripe.String("usd"),
					UnitAmount:  stripe.Int64(4000),
					ProductData: &stripe.CheckoutSessionLineItemPriceDataProductDataParams{Name: stripe.String("T-shirt")},
				},
				Quantity: stripe.Int64(2),
			},
		},
	}
	params.AddMetadata("order_id", "99")
	params.SetIdempotencyKey("order-99-attempt-1")
	s, err := sc.CheckoutSessions.New(params)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	again, err := sc.CheckoutSessions.New(params)
	if err != nil || again.ID != s.ID {
		t.Errorf("idempotent create: %v, id %q want %q", err, again.ID, s.ID)
	}
	want := view{Status: "open", PaymentStatus: "unpaid", Currency: "usd", Mode: "payment", AmountTotal: 8000, AmountSubtotal: 8000,
		ClientReferenceID: "order-99", CustomerEmail: "buyer@example.com", Metadata: map[string]string{"order_id": "99"}}
	if diff := cmp.Diff(want, project(s)); diff != "" {
		t.Errorf("created session (-want +got):\n%s", diff)
	}
	if s.URL != h.url+"/pay/"+s.ID {
		t.Errorf("url = %q", s.URL)
	}

	getParams := &stripe.CheckoutSessionParams{}
	getParams.AddExpand("line_items")
	got, err := sc.CheckoutSessions.Get(s.ID, getParams)
	if err != nil {
		t.Fatalf("retrieve: %v", err)
	}
	if got.LineItems == nil || len(got.LineItems.Data) != 1 {
		t.Fatalf("line_items = %+v", got.LineItems)
	}
	li := got.LineItems.Data[0]
	if li.Description != "T-shirt" || li.Quantity != 2 || li.AmountTotal != 8000 || li.Price == nil || li.Price.UnitAmount != 4000 {
		t.Errorf("line item %+v, price %+v", li, li.Price)
	}

	_, err = sc.CheckoutSessions.Get("cs_test_unknown", nil)
	var serr *stripe.Error
	if !errors.As(err, &serr) || serr.HTTPStatusCode != 404 || serr.Code != stripe.ErrorCodeResourceMissing {
		t.Errorf("unknown session: %v", err)
	}
	bad := *params
	bad.Mode = stripe.String("bogus")
	bad.IdempotencyKey = nil
	if _, err := sc.CheckoutSessions.New(&bad); !errors.As(err, &serr) || serr.HTTPStatusCode != 400 || !strings.Contains(serr.Msg, "mode") {
		t.Errorf("invalid mode: %v, want stripe-mock's 400 relayed", err)
	}

	// Pay on the hosted page; the shop gets the signed event.
	resp, body := h.do(t, http.MethodPost, "/pay/"+s.ID, url.Values{"outcome": {"pay"}, "email": {"buyer@example.com"}, "card": {"4242 4242 4242 4242"}}, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("pay: %s %s", resp.Status, body)
	}
	if d := h.hook.next(t); d.event.Type != "checkout.session.completed" || d.event.Data.Object["id"] != s.ID {
		t.Errorf("event %s for %v", d.event.Type, d.event.Data.Object["id"])
	}
	getParams.AddExpand("payment_intent")
	paid, err := sc.CheckoutSessions.Get(s.ID, getParams)
	if err != nil {
		t.Fatalf("retrieve paid: %v", err)
	}
	if paid.Status != "complete" || paid.PaymentStatus != "paid" || paid.CustomerDetails == nil ||
		paid.CustomerDetails.Email != "buyer@example.com" || paid.PaymentIntent == nil || paid.PaymentIntent.Status != "succeeded" {
		t.Errorf("paid session: %s/%s details %+v payment_intent %+v", paid.Status, paid.PaymentStatus, paid.CustomerDetails, paid.PaymentIntent)
	}

	other, err := sc.CheckoutSessions.New(&stripe.CheckoutSessionParams{
		Mode: stripe.String("payment"), SuccessURL: stripe.String("https://shop.test/ok"),
		LineItems: []*stripe.CheckoutSessionLineItemParams{{Price: stripe.String("price_123"), Quantity: stripe.Int64(1)}},
	})
	if err != nil {
		t.Fatalf("create by price id: %v", err)
	}
	expired, err := sc.CheckoutSessions.Expire(other.ID, nil)
	if err != nil || expired.Status != "expired" {
		t.Fatalf("expire: %v, status %v", err, expired)
	}

	listParams := &stripe.EventListParams{Type: stripe.String("checkout.session.*")}
	listParams.Filters.AddFilter("limit", "", "10")
	var types []string
	iter := sc.Events.List(listParams)
	for iter.Next() {
		types = append(types, string(iter.Event().Type))
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("list events: %v", err)
	}
	if diff := cmp.Diff([]string{"checkout.session.expired", "checkout.session.completed"}, types); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}
