package stripesim_test

import (
	"encoding/json"
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

// TestStripeGoRefundsAgainstStripeMock refunds through stripe-go, as the
// shop's admin does, in front of a real stripe-mock, then disputes the
// payment and lists the events with the Types filter reconciliation uses.
func TestStripeGoRefundsAgainstStripeMock(t *testing.T) {
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
		ClientReferenceID: stripe.String("order-42"),
		ExpiresAt:         stripe.Int64(time.Now().Add(time.Hour).Unix()),
		PaymentIntentData: &stripe.CheckoutSessionPaymentIntentDataParams{},
		LineItems: []*stripe.CheckoutSessionLineItemParams{{
			PriceData: &stripe.CheckoutSessionLineItemPriceDataParams{
				Currency:    stripe.String("usd"),
				UnitAmount:  stripe.Int64(4000),
				ProductData: &stripe.CheckoutSessionLineItemPriceDataProductDataParams{Name: stripe.String("T-shirt")},
			},
			Quantity: stripe.Int64(1),
		}},
	}
	params.PaymentIntentData.AddMetadata("order_id", "order-42")
	s, err := sc.CheckoutSessions.New(params)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if resp, body := h.pay(t, s.ID, "pay", "buyer@example.com", "4242424242424242"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("pay: got %s, want 303\n%s", resp.Status, body)
	}
	h.hook.next(t) // checkout.session.completed
	get := &stripe.CheckoutSessionParams{}
	get.AddExpand("payment_intent")
	paid, err := sc.CheckoutSessions.Get(s.ID, get)
	if err != nil {
		t.Fatalf("retrieve: %v", err)
	}
	pi := paid.PaymentIntent
	if pi == nil || pi.LatestCharge == nil || pi.Metadata["order_id"] != "order-42" || pi.Status != "succeeded" {
		t.Fatalf("expanded payment_intent: got %+v, want a succeeded one with its charge and order_id", pi)
	}

	refundParams := &stripe.RefundParams{PaymentIntent: stripe.String(pi.ID), Amount: stripe.Int64(1500),
		Reason: stripe.String(string(stripe.RefundReasonRequestedByCustomer))}
	refundParams.AddMetadata("order_id", "order-42")
	refundParams.SetIdempotencyKey("refund-order-42-1")
	rf, err := sc.Refunds.New(refundParams)
	if err != nil {
		t.Fatalf("refund: %v", err)
	}
	if rf.Amount != 1500 || rf.Status != stripe.RefundStatusSucceeded || rf.Charge == nil || rf.Charge.ID != pi.LatestCharge.ID ||
		rf.PaymentIntent == nil || rf.PaymentIntent.ID != pi.ID || rf.Metadata["order_id"] != "order-42" || rf.Reason != stripe.RefundReasonRequestedByCustomer {
		t.Errorf("refund: got %+v", rf)
	}
	if again, err := sc.Refunds.New(refundParams); err != nil || again.ID != rf.ID {
		t.Errorf("same idempotency key: got %v, id %q; want %q", err, again.ID, rf.ID)
	}
	if got, err := sc.Refunds.Get(rf.ID, nil); err != nil || got.ID != rf.ID || got.Amount != 1500 {
		t.Errorf("retrieve refund: got %+v, %v", got, err)
	}

	var serr *stripe.Error
	_, err = sc.Refunds.New(&stripe.RefundParams{PaymentIntent: stripe.String(pi.ID), Amount: stripe.Int64(5000)})
	if !errors.As(err, &serr) || serr.HTTPStatusCode != 400 || serr.Param != "amount" ||
		serr.Msg != "Refund amount ($50.00) is greater than unrefunded amount on charge ($25.00)" {
		t.Errorf("refund above what is left: got %v", err)
	}
	_, err = sc.Refunds.New(&stripe.RefundParams{PaymentIntent: stripe.String("pi_nope")})
	if !errors.As(err, &serr) || serr.HTTPStatusCode != 404 || serr.Code != stripe.ErrorCodeResourceMissing {
		t.Errorf("unknown payment intent: got %v", err)
	}
	_, err = sc.Refunds.New(&stripe.RefundParams{PaymentIntent: stripe.String(pi.ID), Reason: stripe.String("bogus")})
	if !errors.As(err, &serr) || serr.HTTPStatusCode != 400 || !strings.Contains(serr.Msg, "reason") {
		t.Errorf("invalid reason: got %v, want stripe-mock's 400 relayed", err)
	}

	resp, body := h.do(t, http.MethodPost, "/sim/sessions/"+s.ID+"/dispute", nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("dispute: got %s\n%s", resp.Status, body)
	}
	dp := decode[struct{ Dispute stripe.Dispute }](t, body).Dispute
	if resp, body := h.do(t, http.MethodPost, "/sim/disputes/"+dp.ID+"/close?outcome=lost", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("close: got %s\n%s", resp.Status, body)
	}

	list := &stripe.EventListParams{Types: stripe.StringSlice([]string{"charge.refunded", "charge.dispute.created", "charge.dispute.closed"})}
	var got []string
	iter := sc.Events.List(list)
	for iter.Next() {
		ev := iter.Event()
		got = append(got, string(ev.Type))
		if ev.Type == "charge.refunded" {
			var c stripe.Charge
			if err := json.Unmarshal(ev.Data.Raw, &c); err != nil || c.AmountRefunded != 1500 || c.Metadata["order_id"] != "order-42" {
				t.Errorf("charge.refunded charge: got %+v, %v", c, err)
			}
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("list events: %v", err)
	}
	if diff := cmp.Diff([]string{"charge.dispute.closed", "charge.dispute.created", "charge.refunded"}, got); diff != "" {
		t.Errorf("events, newest first (-want +got):\n%s", diff)
	}
}
