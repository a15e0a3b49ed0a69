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
	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/shopcheckout/shop/internal/testenv"
)

// TestStripeGoAgainstStripeMock drives the simulator with stripe-go in
// front of a real stripe-mock, proving that stripe-go parses its answers.
func TestStripeGoAgainstStripeMock(t *testing.T) {
	h := newHarness(t, options{mockURL: testenv.StripeMock(t), products: testCatalog()})
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
		LineItems: []*stripe.CheckoutSessionLineItemParams{{Price: stripe.String("price_tee"), Quantity: stripe.Int64(1)}},
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

// TestStripeGoCatalogAgainstStripeMock reads and changes the catalogue,
// makes a Payment Link and an embedded session through stripe-go, in front
// of a real stripe-mock: every request passes its validation, and stripe-go
// parses every answer and pages through every list.
func TestStripeGoCatalogAgainstStripeMock(t *testing.T) {
	h := newHarness(t, options{mockURL: testenv.StripeMock(t), products: testCatalog()})
	sc := client.New(testKey, &stripe.Backends{
		API: stripe.GetBackendWithConfig(stripe.APIBackend, &stripe.BackendConfig{
			URL:               stripe.String(h.url),
			HTTPClient:        &http.Client{Timeout: 10 * time.Second},
			LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
			MaxNetworkRetries: stripe.Int64(0),
		}),
	})

	// As the shop reads its catalogue: active one-time prices with their
	// products, a page at a time.
	listActive := func(t *testing.T) ([]string, error) {
		t.Helper()
		params := &stripe.PriceListParams{Active: stripe.Bool(true), Type: stripe.String(string(stripe.PriceTypeOneTime))}
		params.Limit = stripe.Int64(2)
		params.AddExpand("data.product")
		var got []string
		it := sc.Prices.List(params)
		for it.Next() {
			p := it.Price()
			got = append(got, p.ID+" "+p.Product.Name)
		}
		return got, it.Err()
	}
	got, err := listActive(t)
	if err != nil {
		t.Fatalf("list prices: %v", err)
	}
	if diff := cmp.Diff([]string{"price_tee T-shirt", "price_mug Mug", "price_tea Tea", "price_cap Cap"}, got); diff != "" {
		t.Errorf("active prices (-want +got):\n%s", diff)
	}

	prod, err := sc.Products.New(&stripe.ProductParams{Name: stripe.String("Hoodie"), Images: stripe.StringSlice([]string{"https://shop.test/h.png"}),
		Metadata: map[string]string{"stock": "3"}})
	if err != nil || prod.Name != "Hoodie" || prod.Metadata["stock"] != "3" {
		t.Fatalf("new product: %+v, %v", prod, err)
	}
	pr, err := sc.Prices.New(&stripe.PriceParams{Product: stripe.String(prod.ID), UnitAmount: stripe.Int64(4500), Currency: stripe.String("usd")})
	if err != nil || pr.UnitAmount != 4500 || pr.Product.ID != prod.ID {
		t.Fatalf("new price: %+v, %v", pr, err)
	}
	if p, err := sc.Products.Update(prod.ID, &stripe.ProductParams{Metadata: map[string]string{"stock": "2"}}); err != nil || p.Metadata["stock"] != "2" {
		t.Errorf("update product: %+v, %v", p, err)
	}
	getParams := &stripe.PriceParams{}
	getParams.AddExpand("product")
	if p, err := sc.Prices.Get(pr.ID, getParams); err != nil || p.Product.Name != "Hoodie" {
		t.Errorf("get price: %+v, %v", p, err)
	}
	if p, err := sc.Prices.Update("price_tea", &stripe.PriceParams{Active: stripe.Bool(false)}); err != nil || p.Active {
		t.Errorf("archive price: %+v, %v", p, err)
	}
	var serr *stripe.Error
	if _, err := sc.Prices.Get("price_nope", nil); !errors.As(err, &serr) || serr.HTTPStatusCode != 404 || serr.Code != stripe.ErrorCodeResourceMissing {
		t.Errorf("unknown price: %v", err)
	}
	got, err = listActive(t)
	if err != nil {
		t.Fatalf("list prices: %v", err)
	}
	if diff := cmp.Diff([]string{pr.ID + " Hoodie", "price_tee T-shirt", "price_mug Mug", "price_cap Cap"}, got); diff != "" {
		t.Errorf("active prices after the changes (-want +got):\n%s", diff)
	}

	link, err := sc.PaymentLinks.New(&stripe.PaymentLinkParams{
		LineItems: []*stripe.PaymentLinkLineItemParams{{Price: stripe.String("price_tee"), Quantity: stripe.Int64(2)}},
		AfterCompletion: &stripe.PaymentLinkAfterCompletionParams{Type: stripe.String("redirect"),
			Redirect: &stripe.PaymentLinkAfterCompletionRedirectParams{URL: stripe.String("https://shop.test/thanks")}},
	})
	if err != nil || link.URL != h.url+"/pl/"+link.ID || link.AfterCompletion.Redirect.URL != "https://shop.test/thanks" {
		t.Fatalf("new payment link: %+v, %v", link, err)
	}
	if got, err := sc.PaymentLinks.Get(link.ID, nil); err != nil || got.ID != link.ID {
		t.Errorf("get payment link: %+v, %v", got, err)
	}
	lit := sc.PaymentLinks.ListLineItems(&stripe.PaymentLinkListLineItemsParams{PaymentLink: stripe.String(link.ID)})
	var linkLines []string
	for lit.Next() {
		linkLines = append(linkLines, lit.LineItem().Price.ID)
	}
	if err := lit.Err(); err != nil || !cmp.Equal(linkLines, []string{"price_tee"}) {
		t.Errorf("link line items: %v, %v", linkLines, err)
	}
	resp, body := h.do(t, http.MethodPost, "/sim/payment_links/"+link.ID+"/purchase", url.Values{}, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("purchase: %s %s", resp.Status, body)
	}
	sold := decode[simState](t, body).Session
	if sold.PaymentLink == nil || sold.PaymentLink.ID != link.ID || sold.PaymentStatus != "paid" {
		t.Errorf("sold session: %+v", sold)
	}

	// An embedded session with many lines: stripe-mock takes the
	// translated ui_mode, and the line items come a page at a time.
	params := &stripe.CheckoutSessionParams{
		Mode:      stripe.String(string(stripe.CheckoutSessionModePayment)),
		UIMode:    stripe.String(string(stripe.CheckoutSessionUIModeEmbedded)),
		ReturnURL: stripe.String("https://shop.test/return?session_id={CHECKOUT_SESSION_ID}"),
	}
	for range 12 {
		params.LineItems = append(params.LineItems, &stripe.CheckoutSessionLineItemParams{Price: stripe.String("price_tee"), Quantity: stripe.Int64(1)})
	}
	s, err := sc.CheckoutSessions.New(params)
	if err != nil {
		t.Fatalf("embedded session: %v", err)
	}
	if s.UIMode != stripe.CheckoutSessionUIModeEmbedded || s.ClientSecret == "" || s.URL != "" || s.AmountTotal != 24000 {
		t.Errorf("embedded session: %+v", s)
	}
	sit := sc.CheckoutSessions.ListLineItems(&stripe.CheckoutSessionListLineItemsParams{Session: stripe.String(s.ID)})
	n := 0
	for sit.Next() {
		if li := sit.LineItem(); li.Price.ID != "price_tee" || li.Description != "T-shirt" {
			t.Errorf("line item %+v", li)
		}
		n++
	}
	if err := sit.Err(); err != nil || n != 12 {
		t.Errorf("session line items: %d, %v; want 12", n, err)
	}
	bad := *params
	bad.SuccessURL = stripe.String("https://shop.test/ok")
	if _, err := sc.CheckoutSessions.New(&bad); !errors.As(err, &serr) || serr.HTTPStatusCode != 400 || serr.Param != "success_url" {
		t.Errorf("embedded session with success_url: %v", err)
	}

	// Stripe down while the shop reads its catalogue.
	for mode, check := range map[string]func(error) bool{
		"down": func(err error) bool {
			return errors.As(err, &serr) && serr.HTTPStatusCode == 500 && serr.Type == stripe.ErrorTypeAPI
		},
		"unreachable": func(err error) bool { return err != nil && !errors.As(err, &serr) },
	} {
		if resp, b := h.do(t, http.MethodPost, "/sim/faults", url.Values{"catalog": {mode}}, nil); resp.StatusCode != 200 {
			t.Fatalf("fault %s: %s %s", mode, resp.Status, b)
		}
		if _, err := listActive(t); !check(err) {
			t.Errorf("catalog=%s: got %v", mode, err)
		}
	}
}
