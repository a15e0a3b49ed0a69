package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/shopcheckout/shop/internal/catalog"
	"github.com/shopcheckout/shop/internal/config"
	"github.com/shopcheckout/shop/internal/orders"
	"github.com/shopcheckout/shop/internal/storetest"
	"github.com/shopcheckout/shop/internal/web"
	"github.com/shopcheckout/shop/static"
	"github.com/shopcheckout/shop/templates"
)

const faultSecret = "whsec_faults"

// stubSessions answers every Checkout Session creation with a session named
// after the order; retrieval is not needed here.
type stubSessions struct{}

func (stubSessions) New(p *stripe.CheckoutSessionParams) (*stripe.CheckoutSession, error) {
	id := "cs_test_" + strings.TrimPrefix(*p.ClientReferenceID, "ord_")
	return &stripe.CheckoutSession{ID: id, URL: "https://checkout.stripe.com/c/pay/" + id}, nil
}

func (stubSessions) Get(string, *stripe.CheckoutSessionParams) (*stripe.CheckoutSession, error) {
	return nil, fmt.Errorf("not used")
}

type faultShop struct {
	store     *Store
	svc       *orders.Service
	path      string
	handler   http.Handler
	fulfilled atomic.Int64
}

// newFaultShop runs the real web server over a real SQLite store with a
// short busy timeout, holding one pending order with session cs_test_fault.
func newFaultShop(t *testing.T) *faultShop {
	t.Helper()
	s, path := openTest(t, WithBusyTimeout(100*time.Millisecond))
	f := &faultShop{store: s, path: path}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := orders.NewService(s, log, orders.OnFulfilled(func(orders.Order) { f.fulfilled.Add(1) }))
	base, _ := url.Parse("http://shop.test")
	srv, err := web.NewServer(web.Deps{
		Config: config.Config{SecretKey: "sk_test_x", PublishableKey: "pk_test_x", WebhookSecrets: []string{faultSecret}, BaseURL: base,
			StripeTimeout: time.Second, Checkout: config.CheckoutOptions{Locale: "auto", MaxQuantityDefault: 10}},
		Catalog: catalog.Fixed(catalog.Default(10)), Orders: svc, Links: orders.LinkKey("0123456789abcdef0123456789abcdef"), FormKey: []byte("0123456789abcdef0123456789abcdef"), CartKey: []byte("fedcba9876543210fedcba9876543210"), Sessions: stubSessions{}, Logger: log,
		Templates: templates.FS, Static: static.FS,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.handler, f.svc = srv, svc
	o := orders.Order{ID: "ord_fault", Status: orders.StatusPending, Currency: "usd", AmountTotal: 2000,
		Items: []orders.Item{{ProductID: "tshirt", Name: "T-shirt", UnitAmount: 2000, Quantity: 1}}, SessionID: "cs_test_fault",
		CreatedAt: time.Now().UTC(), UpdatedAt: time.Now().UTC()}
	storetest.Seed(t, s, o)
	return f
}

func (f *faultShop) do(method, target string, body []byte, headers ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, bytes.NewReader(body))
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, req)
	return rec
}

// paidEvent is a signed checkout.session.completed for the order, padded so
// that storing it needs new database pages.
func paidEvent() ([]byte, string) {
	body := []byte(fmt.Sprintf(`{"id":"evt_fault","object":"event","api_version":"2023-10-16","created":%d,"type":"checkout.session.completed",`+
		`"data":{"object":{"id":"cs_test_fault","object":"checkout.session","status":"complete","payment_status":"paid",`+
		`"amount_total":2000,"currency":"usd","client_reference_id":"ord_fault","metadata":{"pad":%q}}}}`,
		time.Now().Unix(), strings.Repeat("x", 200<<10)))
	return body, webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: faultSecret}).Header
}

func (f *faultShop) deliver(t *testing.T) (int, string) {
	t.Helper()
	body, sig := paidEvent()
	rec := f.do("POST", "/webhook", body, "Content-Type", "application/json", "Stripe-Signature", sig)
	return rec.Code, rec.Body.String()
}

// TestStorageFaults breaks the database in each way a disk can, checks that
// nothing unstored is acknowledged and that pages and /healthz say so, then
// repairs it and checks Stripe's redelivery is applied exactly once.
func TestStorageFaults(t *testing.T) {
	faults := []struct {
		name string
		// smallWritesWork: a full disk still takes rows that fit in the
		// table's existing pages, such as a new order.
		smallWritesWork bool
		break_          func(t *testing.T, f *faultShop) (repair func())
	}{
		{"read-only database", false, func(t *testing.T, f *faultShop) func() {
			mustExec(t, f.store.w, "PRAGMA query_only = 1")
			return func() { mustExec(t, f.store.w, "PRAGMA query_only = 0") }
		}},
		{"disk full", true, func(t *testing.T, f *faultShop) func() {
			// Cap the file at its size, then fill what free pages remain.
			mustExec(t, f.store.w, "CREATE TABLE filler (b BLOB)")
			var pages int
			if err := f.store.w.QueryRow("PRAGMA page_count").Scan(&pages); err != nil {
				t.Fatal(err)
			}
			mustExec(t, f.store.w, fmt.Sprintf("PRAGMA max_page_count = %d", pages))
			for i := 0; ; i++ {
				if _, err := f.store.w.Exec("INSERT INTO filler VALUES (randomblob(500))"); err != nil {
					if !strings.Contains(err.Error(), "full") {
						t.Fatalf("filling the disk: %v", err)
					}
					break
				}
				if i > 10000 {
					t.Fatal("the database never filled up")
				}
			}
			return func() { mustExec(t, f.store.w, "PRAGMA max_page_count = 1073741823") }
		}},
		{"locked past the busy timeout", false, func(t *testing.T, f *faultShop) func() {
			other, err := sql.Open("sqlite", "file:"+f.path+"?_pragma=busy_timeout(100)")
			if err != nil {
				t.Fatal(err)
			}
			conn, err := other.Conn(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			mustExec(t, conn, "BEGIN IMMEDIATE")
			return func() {
				mustExec(t, conn, "ROLLBACK")
				conn.Close()
				other.Close()
			}
		}},
	}
	for _, tt := range faults {
		t.Run(tt.name, func(t *testing.T) {
			f := newFaultShop(t)
			repair := tt.break_(t, f)

			if code, body := f.deliver(t); code != http.StatusServiceUnavailable {
				t.Errorf("webhook during the fault: got %d %s, want 503", code, body)
			}
			if rec := f.do("GET", "/healthz", nil); rec.Code != http.StatusServiceUnavailable {
				t.Errorf("healthz during the fault: got %d, want 503", rec.Code)
			}
			if !f.writesFailingAlarm(t) {
				t.Error("no store_writes_failing alarm during the fault")
			}
			rec := f.do("POST", "/create-checkout-session", []byte("product_id=tshirt&quantity=1"), "Content-Type", "application/x-www-form-urlencoded")
			switch {
			case rec.Code == http.StatusSeeOther && tt.smallWritesWork:
				// There was room for it: the order must then be stored.
				if list, err := f.store.ListOrders(t.Context(), orders.ListFilter{}); err != nil || len(list) != 2 {
					t.Errorf("checkout answered 303 but orders are %d (%v), want 2", len(list), err)
				}
			case rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "Nothing was charged"):
				t.Errorf("checkout during the fault: got %d, want 503 with a clear page", rec.Code)
			}
			if o, err := f.store.Order(t.Context(), "ord_fault"); err != nil || o.Status != orders.StatusPending {
				t.Errorf("order during the fault: %v %v, want pending", o.Status, err)
			}

			repair()
			// Stripe redelivers: applied now, once.
			if code, body := f.deliver(t); code != http.StatusOK || strings.Contains(body, `"duplicate":true`) {
				t.Errorf("redelivery after repair: got %d %s, want 200, applied", code, body)
			}
			if code, body := f.deliver(t); code != http.StatusOK || !strings.Contains(body, `"duplicate":true`) {
				t.Errorf("second redelivery: got %d %s, want 200 duplicate", code, body)
			}
			if rec := f.do("GET", "/healthz", nil); rec.Code != http.StatusOK {
				t.Errorf("healthz after repair: got %d, want 200", rec.Code)
			}
			if f.writesFailingAlarm(t) {
				t.Error("the store_writes_failing alarm outlived the repair")
			}
			o, err := f.store.Order(t.Context(), "ord_fault")
			if err != nil || o.Status != orders.StatusPaid || o.FulfilledAt == nil {
				t.Errorf("order after repair: %+v %v, want paid and fulfilled", o, err)
			}
			if n := f.fulfilled.Load(); n != 1 {
				t.Errorf("fulfilments: got %d, want 1", n)
			}
			var check string
			if err := f.store.r.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
				t.Errorf("integrity_check: %q %v", check, err)
			}
		})
	}
}

// writesFailingAlarm reports whether the open alarms say writes fail.
func (f *faultShop) writesFailingAlarm(t *testing.T) bool {
	t.Helper()
	list, err := f.svc.Alarms(t.Context(), orders.AlarmFilter{Open: true})
	if err != nil {
		t.Fatalf("Alarms: %v", err)
	}
	for _, a := range list {
		if a.Kind == orders.AlarmStoreWrites {
			return true
		}
	}
	return false
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func mustExec(t *testing.T, db execer, query string) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), query); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}
