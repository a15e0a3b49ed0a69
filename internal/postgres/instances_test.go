package postgres_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/shopcheckout/shop/internal/app"
	"github.com/shopcheckout/shop/internal/config"
	"github.com/shopcheckout/shop/internal/orders"
	"github.com/shopcheckout/shop/internal/testenv"
)

const instancesSecret = "whsec_instances"

// fakeStripe creates sessions (idempotently, per key) and answers retrievals
// as paid: enough for checkout and for the success page's reconciliation.
type fakeStripe struct {
	mu    sync.Mutex
	byKey map[string]string
}

func (f *fakeStripe) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == "POST" && r.URL.Path == "/v1/checkout/sessions":
		r.ParseForm()
		f.mu.Lock()
		id, ok := f.byKey[r.Header.Get("Idempotency-Key")]
		if !ok {
			id = "cs_test_inst" + strings.TrimPrefix(r.PostForm.Get("client_reference_id"), "ord_")
			f.byKey[r.Header.Get("Idempotency-Key")] = id
		}
		f.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"id": id, "object": "checkout.session", "url": "https://checkout.stripe.com/c/pay/" + id})
	case r.Method == "GET" && strings.HasPrefix(r.URL.Path, "/v1/checkout/sessions/"):
		id := strings.TrimPrefix(r.URL.Path, "/v1/checkout/sessions/")
		json.NewEncoder(w).Encode(map[string]any{"id": id, "object": "checkout.session", "status": "complete", "payment_status": "paid",
			"amount_subtotal": 2000, "amount_total": 2000, "currency": "usd", "customer_details": map[string]any{"email": "b@example.com"}})
	default:
		http.NotFound(w, r)
	}
}

// fulfilments counts fulfilments per order, across instances.
type fulfilments struct {
	mu sync.Mutex
	n  map[string]int
}

func (f *fulfilments) add(o orders.Order) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n[o.ID]++
}

// TestTwoInstancesExactlyOnce runs two shops on one PostgreSQL and sends
// them the same duplicated, shuffled event stream at once, while shoppers
// load the success pages of both: every paid order is fulfilled once.
func TestTwoInstancesExactlyOnce(t *testing.T) {
	dbURL := testenv.PostgresSchema(t, 8)
	stripeSrv := httptest.NewServer(&fakeStripe{byKey: map[string]string{}})
	defer stripeSrv.Close()
	ful := &fulfilments{n: map[string]int{}}
	env := map[string]string{
		"STRIPE_SECRET_KEY": "sk_test_instances", "STRIPE_PUBLISHABLE_KEY": "pk_test_instances",
		"STRIPE_WEBHOOK_SECRET": instancesSecret, "STRIPE_API_BASE": stripeSrv.URL, "DATABASE_URL": dbURL,
		"RATE_LIMIT_PER_MINUTE": "0", "RATE_LIMIT_GLOBAL_PER_SECOND": "0",
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var shops []string
	var stores []*orders.Service
	for range 2 {
		a, err := app.New(t.Context(), cfg, log, app.Options{OnFulfilled: ful.add})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close() })
		srv := httptest.NewServer(a.Handler)
		t.Cleanup(srv.Close)
		shops, stores = append(shops, srv.URL), append(stores, a.Orders)
	}

	// 150 orders, created half on each instance.
	type order struct{ id, session string }
	var all []order
	for i := range 150 {
		res, err := http.Post(shops[i%2]+"/create-checkout-session", "application/json", strings.NewReader(`{"productId":"tshirt","quantity":1}`))
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ SessionID string }
		json.NewDecoder(res.Body).Decode(&body)
		res.Body.Close()
		o, err := stores[0].OrderBySession(t.Context(), body.SessionID)
		if err != nil {
			t.Fatalf("order %d: %v", i, err)
		}
		all = append(all, order{o.ID, body.SessionID})
	}

	// The stream: each order paid at once, or by a delayed method in two
	// steps, with a stray expiry now and then; every event three times.
	var stream [][]byte
	distinct := 0
	event := func(id, typ string, o order, payment string) {
		status := "complete"
		if typ == orders.EventSessionExpired {
			status = "expired"
		}
		b, _ := json.Marshal(map[string]any{"id": id, "object": "event", "api_version": "2025-09-30.clover", "created": time.Now().Unix(), "type": typ,
			"data": map[string]any{"object": map[string]any{"id": o.session, "object": "checkout.session", "status": status, "payment_status": payment,
				"amount_subtotal": 2000, "amount_total": 2000, "currency": "usd", "client_reference_id": o.id}}})
		distinct++
		for range 3 {
			stream = append(stream, b)
		}
	}
	for i, o := range all {
		switch i % 3 {
		case 0:
			event(fmt.Sprintf("evt_%d_c", i), orders.EventSessionCompleted, o, "paid")
		case 1:
			event(fmt.Sprintf("evt_%d_c", i), orders.EventSessionCompleted, o, "unpaid")
			event(fmt.Sprintf("evt_%d_s", i), orders.EventAsyncPaymentSucceeded, o, "paid")
		case 2:
			event(fmt.Sprintf("evt_%d_c", i), orders.EventSessionCompleted, o, "paid")
			event(fmt.Sprintf("evt_%d_x", i), orders.EventSessionExpired, o, "unpaid")
		}
	}
	seed, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	rng := mrand.New(mrand.NewPCG(seed.Uint64(), 1))
	rng.Shuffle(len(stream), func(i, j int) { stream[i], stream[j] = stream[j], stream[i] })
	t.Logf("shuffle seed %d", seed)

	work := make(chan func(), len(stream)+2*len(all))
	var applied, duplicates, pages int
	var mu sync.Mutex
	for i, b := range stream {
		work <- func() {
			req, _ := http.NewRequest("POST", shops[i%2]+"/webhook", bytes.NewReader(b))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Stripe-Signature", webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: b, Secret: instancesSecret}).Header)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			var body struct{ Duplicate bool }
			json.NewDecoder(res.Body).Decode(&body)
			res.Body.Close()
			if res.StatusCode != 200 {
				t.Errorf("webhook: got %d, want 200", res.StatusCode)
			}
			mu.Lock()
			if body.Duplicate {
				duplicates++
			} else {
				applied++
			}
			mu.Unlock()
		}
	}
	for i, o := range all {
		for j := range 2 {
			work <- func() {
				res, err := http.Get(shops[(i+j)%2] + "/success?session_id=" + o.session)
				if err != nil {
					t.Error(err)
					return
				}
				res.Body.Close()
				mu.Lock()
				pages++
				mu.Unlock()
			}
		}
	}
	close(work)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range work {
				f()
			}
		}()
	}
	wg.Wait()

	paid, twice := 0, 0
	for _, o := range all {
		got, err := stores[1].Order(t.Context(), o.id)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != orders.StatusPaid || got.FulfilledAt == nil {
			t.Errorf("order %s: got %s fulfilled=%v, want paid and fulfilled", o.id, got.Status, got.FulfilledAt)
		} else {
			paid++
		}
		if n := ful.n[o.id]; n != 1 {
			t.Errorf("order %s: fulfilled %d times, want 1", o.id, n)
			if n > 1 {
				twice++
			}
		}
	}
	if applied != distinct || duplicates != len(stream)-distinct {
		t.Errorf("events: %d applied, %d duplicates; want %d and %d", applied, duplicates, distinct, len(stream)-distinct)
	}
	t.Logf("two instances: %d deliveries of %d distinct events (%d applied, %d duplicates), %d success pages, %d orders, %d paid, %d fulfilled once, %d fulfilled twice",
		len(stream), distinct, applied, duplicates, pages, len(all), paid, paid-twice, twice)
}
