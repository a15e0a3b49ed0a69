package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"
)

// receiverSecret signs the shop's order webhook in the run.
const receiverSecret = "bench-order-webhook-secret-0123456789"

// receiver is the shop owner's order webhook: it checks each delivery's
// signature, notes when each order's order.paid arrived, and answers 204.
type receiver struct {
	srv        *http.Server
	addr       string
	mu         sync.Mutex
	arrived    map[int]time.Time // order number → first delivery
	hits, bad  atomic.Int64
	duplicates atomic.Int64
}

func startReceiver() (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &receiver{addr: ln.Addr().String(), arrived: map[int]time.Time{}}
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 5 * time.Second}
	go r.srv.Serve(ln)
	return r, nil
}

func (r *receiver) url() string { return "http://" + r.addr + "/hook" }

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil || webhook.ValidatePayload(body, req.Header.Get("Shop-Signature"), receiverSecret) != nil {
		r.bad.Add(1)
		http.Error(w, "bad signature", http.StatusBadRequest)
		return
	}
	var n struct {
		Type string
		Data struct{ Order struct{ ID string } }
	}
	if err := json.Unmarshal(body, &n); err != nil {
		r.bad.Add(1)
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	r.hits.Add(1)
	i, err := strconv.Atoi(strings.TrimPrefix(n.Data.Order.ID, "ord_bench_"))
	if n.Type == "order.paid" && err == nil {
		now := time.Now()
		r.mu.Lock()
		if _, seen := r.arrived[i]; seen {
			r.duplicates.Add(1)
		} else {
			r.arrived[i] = now
		}
		r.mu.Unlock()
	}
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) arrival(i int) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.arrived[i]
	return t, ok
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.arrived)
}

func (r *receiver) close() { r.srv.Close() }

// latency is what the paced run measured: from each webhook's 2xx to the
// receiver's taking that order's order.paid.
type latency struct {
	rate      float64 // paid orders per second sent
	sent      int
	lat       []time.Duration
	missing   int // acknowledged, never delivered within the wait
	failures  int
	duplicate int64
}

func (l latency) quantile(q float64) time.Duration {
	if len(l.lat) == 0 {
		return 0
	}
	return l.lat[min(len(l.lat)-1, int(q*float64(len(l.lat))))]
}

// outboxLatency sends paid webhooks at rate per second for d, open loop (a
// request leaves on its schedule whether or not the last one was answered),
// then waits for the receiver to have every acknowledged order.
func (l *ledger) outboxLatency(ctx context.Context, addr string, rcv *receiver, rate float64, d time.Duration) (latency, error) {
	res := latency{rate: rate}
	n := int(rate * d.Seconds())
	acks := make([]time.Time, n)
	nums := make([]int, n)
	interval := time.Duration(float64(time.Second) / rate)
	var wg sync.WaitGroup
	var mu sync.Mutex
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	start := time.Now()
	for k := range n {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		time.Sleep(time.Until(start.Add(time.Duration(k) * interval)))
		i := int(l.next.Add(1) - 1)
		if i >= l.orders {
			l.exhausted.Store(true)
			break
		}
		nums[k] = i
		body := fmt.Appendf(nil, eventJSON, i, "evt_bench_", time.Now().Unix())
		sig := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: webhookSecret})
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/webhook", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Stripe-Signature", sig.Header)
			resp, err := client.Do(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil || resp.StatusCode != http.StatusOK {
				res.failures++
				return
			}
			acks[k] = time.Now()
			l.acked[i].Store(true)
		})
		res.sent++
	}
	wg.Wait()
	// Every acknowledged order's notification, within a generous wait.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		done := true
		for k := range res.sent {
			if !acks[k].IsZero() {
				if _, ok := rcv.arrival(nums[k]); !ok {
					done = false
					break
				}
			}
		}
		if done {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for k := range res.sent {
		if acks[k].IsZero() {
			continue
		}
		got, ok := rcv.arrival(nums[k])
		if !ok {
			res.missing++
			continue
		}
		res.lat = append(res.lat, max(0, got.Sub(acks[k])))
	}
	slices.Sort(res.lat)
	res.duplicate = rcv.duplicates.Load()
	if res.missing > 0 {
		return res, errors.New("acknowledged paid orders whose order.paid never reached the receiver")
	}
	return res, nil
}
