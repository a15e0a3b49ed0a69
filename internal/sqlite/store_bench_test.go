package sqlite

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/shopcheckout/shop/internal/orders"
	"github.com/shopcheckout/shop/internal/storetest"
)

// seedOrders creates n pending orders, concurrently.
func seedOrders(b *testing.B, s *Store, n int) []orders.Order {
	b.Helper()
	all := make([]orders.Order, n)
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Go(func() {
			for i := w; i < n; i += 32 {
				all[i] = storetest.NewOrder(fmt.Sprintf("ord_%08d", i))
				if err := create(context.Background(), s, all[i]); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return all
}

// BenchmarkCreateOrder is one writer alone: every write is a commit of its
// own, and waits for the disk.
func BenchmarkCreateOrder(b *testing.B) {
	s, _ := openTest(b)
	ctx := b.Context()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := create(ctx, s, storetest.NewOrder(fmt.Sprintf("ord_%08d", i))); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreateOrderParallel is many writers: their writes share commits.
func BenchmarkCreateOrderParallel(b *testing.B) {
	s, _ := openTest(b)
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(8) // 16 writers on 2 cores
	before := s.commits.Load()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := create(context.Background(), s, storetest.NewOrder(fmt.Sprintf("ord_%08d", next.Add(1)))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/float64(s.commits.Load()-before), "writes/commit")
}

// BenchmarkWebhookWrites is what one paid webhook costs the store, from 16
// concurrent senders: one write that stores the event, pays and fulfils the
// order and queues its three notifications, batched with the others.
func BenchmarkWebhookWrites(b *testing.B) {
	s, _ := openTest(b)
	all := seedOrders(b, s, b.N)
	svc := storetest.NewService(s, storetest.NewClock())
	var next atomic.Int64
	payload := bytes.Repeat([]byte("x"), 2300)
	b.ReportAllocs()
	b.SetParallelism(8)
	before, busy := s.commits.Load(), s.busy.Load()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			o := all[next.Add(1)-1]
			ev := storetest.CompletedEvent("evt_"+o.ID, o, "paid")
			ev.Payload = payload // a real checkout.session.completed is a few KB
			res, err := svc.HandleEvent(ctx, ev)
			if err != nil || res.Duplicate || res.Order.Status != orders.StatusPaid || res.Order.FulfilledAt == nil {
				b.Errorf("HandleEvent = %+v, %v", res, err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/float64(s.commits.Load()-before), "writes/commit")
	// The writer's time per event bounds the store: at most 1e6/that
	// events a second, however many cores serve HTTP.
	b.ReportMetric(float64(s.busy.Load()-busy)/1e3/float64(b.N), "writer-µs/event")
}

// BenchmarkOrder reads one order through the read pool, as the success page
// and the webhook's reload do.
func BenchmarkOrder(b *testing.B) {
	s, _ := openTest(b)
	all := seedOrders(b, s, 1000)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := s.Order(b.Context(), all[i%len(all)].ID); err != nil {
			b.Fatal(err)
		}
	}
}
