package web

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopcheckout/shop/internal/catalog"
	"github.com/shopcheckout/shop/internal/metrics"
	"github.com/shopcheckout/shop/internal/orders"
	"github.com/shopcheckout/shop/internal/sqlite"
	"github.com/shopcheckout/shop/internal/storetest"
	"github.com/shopcheckout/shop/static"
	"github.com/shopcheckout/shop/templates"
)

// The benchmarks go through the real router and middleware (request id,
// logging, security headers), into a fresh SQLite store.

// benchServer is newTestServer logging as production does (text lines), to
// io.Discard: the tests' log buffer and its secret scan would dominate.
type benchServer struct {
	*Server
	store *sqlite.Store
}

func newBenchServer(b *testing.B) benchServer {
	b.Helper()
	store, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "shop.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := NewServer(Deps{
		Config: testConfig(), Catalog: catalog.Fixed(catalog.Default(10)), Links: testLinks, FormKey: []byte("test-form-key-0123456789abcdef!!"), CartKey: testCartKey,
		Orders:   orders.NewService(store, log),
		Sessions: newFakeSessions(), Refunds: newFakeRefunds(), Logger: log, Templates: templates.FS, Static: static.FS,
		Metrics: metrics.New(),
	})
	if err != nil {
		b.Fatal(err)
	}
	return benchServer{Server: srv, store: store}
}

func benchmarkGet(b *testing.B, target string) {
	ts := newBenchServer(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req := httptest.NewRequest("GET", target, nil)
		for pb.Next() {
			rec := httptest.NewRecorder()
			ts.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Errorf("GET %s: got %d, want 200", target, rec.Code)
				return
			}
		}
	})
}

func BenchmarkHome(b *testing.B)   { benchmarkGet(b, "/") }
func BenchmarkConfig(b *testing.B) { benchmarkGet(b, "/config") }

func BenchmarkVerifySignature(b *testing.B) {
	ts := newBenchServer(b)
	body := eventFor("evt_bench", orders.EventSessionCompleted, "cs_bench", "ord_bench", "paid").json(b)
	header := sign(body, testWebhookSecret, time.Now())
	b.ReportAllocs()
	for b.Loop() {
		if err := ts.verifySignature(body, header); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWebhook delivers unique signed checkout.session.completed events,
// each paying its own pending order, from 16 concurrent senders: signature
// check, parsing, ApplyEvent and Fulfil (both group-committed), logging.
func BenchmarkWebhook(b *testing.B) {
	ts := newBenchServer(b)
	ids := make([]string, b.N)
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Go(func() {
			for i := w; i < b.N; i += 32 {
				ids[i] = fmt.Sprintf("ord_bench%08d", i)
				o := storetest.NewOrder(ids[i])
				o.SessionID = "cs_" + ids[i]
				storetest.Seed(b, ts.store, o)
			}
		})
	}
	wg.Wait()
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := ids[next.Add(1)-1]
			body := eventFor("evt_"+id, orders.EventSessionCompleted, "cs_"+id, id, "paid").json(b)
			req := httptest.NewRequest("POST", "/webhook", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Stripe-Signature", sign(body, testWebhookSecret, time.Now()))
			rec := httptest.NewRecorder()
			ts.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Errorf("webhook: got %d %s, want 200", rec.Code, rec.Body)
				return
			}
		}
	})
}
