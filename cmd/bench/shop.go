package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/form"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/shopcheckout/shop/internal/catalog"
	"github.com/shopcheckout/shop/internal/orders"
	"github.com/shopcheckout/shop/internal/sqlite"
)

// product is what the seeded orders and the checkouts buy.
var product = func() catalog.Product {
	p, err := catalog.Default(10).Product("tshirt")
	if err != nil {
		panic(err)
	}
	return p
}()

// benchStock is the stocked product's count: more than a run can sell.
const benchStock = 10_000_000

// stocked is product with a counted stock: its checkouts hold stock in the
// order's write.
var stocked = func() catalog.Product {
	p := product
	p.ID, p.Name, p.Stock = "tshirt-stocked", "T-shirt (stocked)", new(int64)
	*p.Stock = benchStock
	return p
}()

// writeCatalog writes the bench shop's CATALOG_FILE: the default T-shirt,
// unlimited, and its stocked twin.
func writeCatalog(path string) error {
	b, err := json.MarshalIndent(map[string][]catalog.Product{"products": {product, stocked}}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

func orderID(i int) string   { return fmt.Sprintf("ord_bench_%07d", i) }
func sessionID(i int) string { return fmt.Sprintf("cs_bench_%07d", i) }

// seed stores n pending orders, each with its Checkout Session, through the
// shop's own store: concurrently, so group commit makes it quick.
func seed(ctx context.Context, path string, n int) error {
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		return err
	}
	const workers = 64
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n && errs[w] == nil; i += workers {
				now := time.Now().UTC()
				errs[w] = s.Write(ctx, func(ctx context.Context, tx orders.Tx) error {
					return tx.InsertOrder(ctx, orders.Order{
						ID: orderID(i), Status: orders.StatusPending, SessionID: sessionID(i),
						Items:       []orders.Item{{ProductID: product.ID, Name: product.Name, UnitAmount: product.UnitAmount, Quantity: 1}},
						AmountTotal: product.UnitAmount, Currency: product.Currency, CreatedAt: now, UpdatedAt: now,
					})
				})
			}
		})
	}
	wg.Wait()
	return errors.Join(append(errs, s.Close())...)
}

// pageLoad GETs path.
func pageLoad(name, addr, path, accept string) phase {
	req := get(addr, path, accept)
	return phase{name: name + " GET " + path, addr: addr, next: func() ([]byte, int) { return req, 0 }}
}

// ledger makes the webhook events and checkouts, and remembers which ones
// the shop acknowledged, to check them against its database at the end.
type ledger struct {
	orders    int
	next      atomic.Int64  // the shop's next event
	nextRef   atomic.Int64  // the reference's next event
	acked     []atomic.Bool // event i, paying order i, was answered 2xx
	extra     atomic.Int64  // events past the seeded orders answered 2xx
	exhausted atomic.Bool
	checkouts atomic.Int64 // checkouts answered 303 to Stripe's payment page
	// stockCheckouts counts those of the stocked product.
	stockCheckouts atomic.Int64
}

func newLedger(orders int) *ledger {
	return &ledger{orders: orders, acked: make([]atomic.Bool, orders)}
}

// eventJSON is a checkout.session.completed as Stripe sends it (API version
// 2023-10-16), trimmed of nothing the shop could skip cheaply: %[1]d is the
// event's number, %[2]s its id prefix, %[3]d the time.
const eventJSON = `{
  "id": "%[2]s%07[1]d",
  "object": "event",
  "api_version": "2023-10-16",
  "created": %[3]d,
  "data": {
    "object": {
      "id": "cs_bench_%07[1]d",
      "object": "checkout.session",
      "after_expiration": null,
      "allow_promotion_codes": null,
      "amount_subtotal": 2000,
      "amount_total": 2000,
      "automatic_tax": {"enabled": false, "liability": null, "status": null},
      "billing_address_collection": null,
      "cancel_url": "http://localhost:8000/cancelled",
      "client_reference_id": "ord_bench_%07[1]d",
      "consent": null,
      "created": %[3]d,
      "currency": "usd",
      "custom_fields": [],
      "custom_text": {"shipping_address": null, "submit": null},
      "customer": null,
      "customer_creation": "if_required",
      "customer_details": {"address": {"city": null, "country": "US", "line1": null, "line2": null, "postal_code": "94103", "state": null}, "email": "shopper@example.com", "name": "Jenny Rosen", "phone": null, "tax_exempt": "none", "tax_ids": []},
      "customer_email": null,
      "expires_at": %[3]d,
      "invoice": null,
      "livemode": false,
      "locale": "auto",
      "metadata": {"order_id": "ord_bench_%07[1]d"},
      "mode": "payment",
      "payment_intent": "pi_3Bench%07[1]dIntent",
      "payment_method_types": ["card"],
      "payment_status": "paid",
      "shipping_details": null,
      "status": "complete",
      "submit_type": null,
      "success_url": "http://localhost:8000/success?session_id={CHECKOUT_SESSION_ID}",
      "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
      "url": null
    }
  },
  "livemode": false,
  "pending_webhooks": 1,
  "request": {"id": null, "idempotency_key": null},
  "type": "checkout.session.completed"
}`

// webhookLoad sends unique, validly signed events: to the shop each pays
// its own seeded order.
func (l *ledger) webhookLoad(name, addr string, shop bool) phase {
	counter, prefix := &l.nextRef, "evt_ref_"
	if shop {
		counter, prefix = &l.next, "evt_bench_"
	}
	p := phase{name: name + " POST /webhook", addr: addr}
	p.next = func() ([]byte, int) {
		i := int(counter.Add(1) - 1)
		body := fmt.Appendf(nil, eventJSON, i, prefix, time.Now().Unix())
		sig := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: webhookSecret})
		return post(addr, "/webhook", "application/json", body, "Stripe-Signature: "+sig.Header), i
	}
	p.check = func(i int, res *http.Response, body []byte) error {
		if res.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"received":true`)) || bytes.Contains(body, []byte(`"duplicate":true`)) {
			return fmt.Errorf("event %d: got %d %q, want 200, received, not a duplicate", i, res.StatusCode, body)
		}
		switch {
		case !shop:
		case i < l.orders:
			l.acked[i].Store(true)
		default:
			l.exhausted.Store(true)
			l.extra.Add(1)
		}
		return nil
	}
	return p
}

// checkoutLoad posts the home page's form: one of p.
func (l *ledger) checkoutLoad(addr string, p catalog.Product) phase {
	req := post(addr, "/create-checkout-session", "application/x-www-form-urlencoded", []byte("product_id="+p.ID+"&quantity=1"))
	name := "shop POST /create-checkout-session"
	if p.Stock != nil {
		name += " (stock)"
	}
	return phase{
		name: name + " " + p.ID, addr: addr,
		next: func() ([]byte, int) { return req, 0 },
		check: func(_ int, res *http.Response, _ []byte) error {
			if loc := res.Header.Get("Location"); res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "https://checkout.stripe.com/") {
				return fmt.Errorf("got %d to %q, want 303 to Checkout", res.StatusCode, loc)
			}
			l.checkouts.Add(1)
			if p.Stock != nil {
				l.stockCheckouts.Add(1)
			}
			return nil
		},
	}
}

// stripeMockLoad creates the Checkout Sessions the shop creates, straight at
// stripe-mock: the same form-encoded parameters, key and headers.
func stripeMockLoad(addr string) phase {
	var n atomic.Int64
	return phase{
		name: "stripe-mock POST /v1/checkout/sessions", addr: addr,
		next: func() ([]byte, int) {
			id := orders.NewID()
			params := &stripe.CheckoutSessionParams{
				Mode: stripe.String(string(stripe.CheckoutSessionModePayment)),
				LineItems: []*stripe.CheckoutSessionLineItemParams{{
					Quantity: stripe.Int64(1),
					PriceData: &stripe.CheckoutSessionLineItemPriceDataParams{
						Currency: stripe.String(product.Currency), UnitAmount: stripe.Int64(product.UnitAmount),
						ProductData: &stripe.CheckoutSessionLineItemPriceDataProductDataParams{
							Name: stripe.String(product.Name), Description: stripe.String(product.Description),
						},
					},
				}},
				SuccessURL:        stripe.String("http://localhost:8000/success?session_id={CHECKOUT_SESSION_ID}"),
				CancelURL:         stripe.String("http://localhost:8000/cancelled"),
				ClientReferenceID: stripe.String(id),
				Locale:            stripe.String("auto"),
			}
			params.AddMetadata("order_id", id)
			v := &form.Values{}
			form.AppendTo(v, params)
			return post(addr, "/v1/checkout/sessions", "application/x-www-form-urlencoded", []byte(v.Encode()),
				"Authorization: Bearer "+secretKey, "Stripe-Version: "+stripe.APIVersion,
				"Idempotency-Key: checkout-session-"+id), int(n.Add(1))
		},
		check: func(_ int, res *http.Response, body []byte) error {
			if res.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"id": "cs_`)) && !bytes.Contains(body, []byte(`"id":"cs_`)) {
				return fmt.Errorf("got %d, want 200 with a session", res.StatusCode)
			}
			return nil
		},
	}
}

// check is what verify found in the shop's database.
type check struct {
	acked, stored, paid, fulfilled int // over the events the shop acknowledged
	events, checkouts, sessions    int
	// The stocked product's checkouts answered 303, and its stock after
	// the run: every one holds one, none sold, the rest left.
	stockCheckouts, stockHeld, stockSold, stockLeft int
	// order.paid notifications the receiver took (one per acknowledged
	// payment), again, and refused for their signature.
	delivered, redelivered, badSignatures int
	problems                              []string
}

// verify opens the shop's database after the run and checks that every
// event answered 2xx is stored (storing it again is a duplicate), that its
// order is paid and fulfilled, that no paid order is left unfulfilled, and
// that every checkout answered 303 left a pending order with its session.
func verify(ctx context.Context, path string, l *ledger) (check, error) {
	var c check
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		return c, err
	}
	defer s.Close()
	svc := orders.NewService(s, slog.New(slog.DiscardHandler))
	var mu sync.Mutex
	bad := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(c.problems) < 10 {
			c.problems = append(c.problems, fmt.Sprintf(format, args...))
		}
	}
	var stored, paid, fulfilled atomic.Int64
	const workers = 32
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < l.orders; i += workers {
				if !l.acked[i].Load() {
					continue
				}
				res, err := svc.HandleEvent(ctx, orders.Event{ID: fmt.Sprintf("evt_bench_%07d", i), Type: orders.EventSessionCompleted})
				switch {
				case err != nil:
					bad("re-apply event %d: %v", i, err)
				case !res.Duplicate:
					bad("event %d was answered 2xx but not stored", i)
				default:
					stored.Add(1)
				}
				o, err := s.Order(ctx, orderID(i))
				if err != nil {
					bad("order %d: %v", i, err)
					continue
				}
				if o.Status == orders.StatusPaid {
					paid.Add(1)
				}
				if o.FulfilledAt != nil {
					fulfilled.Add(1)
				}
			}
		})
	}
	wg.Wait()
	for i := range l.acked {
		if l.acked[i].Load() {
			c.acked++
		}
	}
	c.stored, c.paid, c.fulfilled = int(stored.Load()), int(paid.Load()), int(fulfilled.Load())
	if c.paid != c.acked || c.fulfilled != c.acked {
		bad("%d events acknowledged, but %d orders paid and %d fulfilled", c.acked, c.paid, c.fulfilled)
	}
	left, err := s.Unfulfilled(ctx)
	if err != nil {
		return c, err
	}
	if len(left) > 0 {
		bad("%d paid orders left unfulfilled", len(left))
	}

	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return c, err
	}
	defer db.Close()
	err = errors.Join(
		db.QueryRowContext(ctx, `SELECT count(*) FROM events`).Scan(&c.events),
		db.QueryRowContext(ctx, `SELECT count(*) FROM orders WHERE id NOT LIKE 'ord_bench_%'`).Scan(&c.checkouts),
		db.QueryRowContext(ctx, `SELECT count(*) FROM orders WHERE id NOT LIKE 'ord_bench_%' AND status = 'pending' AND session_id LIKE 'cs_test_%'`).Scan(&c.sessions),
	)
	if err != nil {
		return c, err
	}
	if want := c.acked + int(l.extra.Load()); c.events < want {
		bad("%d events stored, fewer than the %d acknowledged", c.events, want)
	}
	if want := int(l.checkouts.Load()); c.checkouts != want || c.sessions != want {
		bad("%d checkouts answered 303, but %d orders stored and %d with their session", want, c.checkouts, c.sessions)
	}
	levels, err := s.StockLevels(ctx)
	if err != nil {
		return c, err
	}
	c.stockCheckouts, c.stockLeft = int(l.stockCheckouts.Load()), -1
	for _, lv := range levels {
		if lv.ProductID == stocked.ID && lv.Stock != nil {
			c.stockHeld, c.stockSold, c.stockLeft = int(lv.Held), int(lv.Sold), int(*lv.Stock)
		}
	}
	if c.stockHeld != c.stockCheckouts || c.stockSold != 0 || c.stockLeft != benchStock-c.stockHeld {
		bad("%d stock checkouts answered 303, but %s holds %d, sold %d, has %d left (want %d held, 0 sold, %d left)",
			c.stockCheckouts, stocked.ID, c.stockHeld, c.stockSold, c.stockLeft, c.stockCheckouts, benchStock-c.stockCheckouts)
	}
	if len(c.problems) > 0 {
		return c, errors.New("verification failed")
	}
	return c, nil
}
