//go:build unix

package crashtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/shopcheckout/shop/internal/orders"
	"github.com/shopcheckout/shop/internal/sqlite"
)

// TestCrashUnderLoad kills the shop with SIGKILL, round after round, while 16
// senders post new and repeated webhook events, then starts it once more and
// stops it cleanly. No acknowledged event may be missing and no order may be
// fulfilled twice.
func TestCrashUnderLoad(t *testing.T) {
	skipShort(t)
	rounds := envInt(t, "CRASH_ROUNDS", 8)
	seed := uint64(envInt(t, "CRASH_SEED", int(time.Now().UnixNano()%1e9)))
	t.Logf("CRASH_ROUNDS=%d CRASH_SEED=%d", rounds, seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	bin := buildShop(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "shop.db")
	l := &load{orders: seedOrders(t, db, max(300, 20*rounds)), resend: 30}

	for r := range rounds {
		s := startShop(t, bin, db, dir, fmt.Sprintf("round%03d", r))
		// New events go to a growing share of the orders, so that every round
		// has orders to pay and fulfil when the kill lands.
		limit := len(l.orders) * (r + 1) / rounds
		delay := 50*time.Millisecond + time.Duration(rng.Int64N(int64(350*time.Millisecond)))
		l.against(s, limit, rng, func() { time.Sleep(delay); s.kill() })
	}
	// Start-up fulfils what the last kill left paid but unfulfilled.
	startShop(t, bin, db, dir, "final").stop(t, 10*time.Second)

	f := verify(t, db, dir, l, false)
	t.Logf("rounds %d, %v", rounds, f)
}

// TestStartFulfilsLeftovers starts from an order paid but never fulfilled,
// as a shop from before fulfilment was part of the payment's write could
// leave one. The next start fulfils it, once; the one after finds nothing.
func TestStartFulfilsLeftovers(t *testing.T) {
	skipShort(t)
	bin := buildShop(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "shop.db")
	o := seedOrders(t, db, 1)[0]
	ev := newEvent("evt_left", orders.EventSessionCompleted, o)
	st := openStore(t, db)
	err := st.Write(context.Background(), func(ctx context.Context, tx orders.Tx) error {
		if _, err := tx.InsertEvent(ctx, orders.EventRecord{ID: ev.id, Type: orders.EventSessionCompleted, OrderID: o.ID,
			Outcome: orders.OutcomeApplied, Created: time.Now(), Received: time.Now(), Payload: ev.payload}); err != nil {
			return err
		}
		cur, err := tx.Order(ctx, o.ID)
		if err != nil {
			return err
		}
		now := time.Now().UTC()
		cur.Status, cur.Payment, cur.PaidAt, cur.UpdatedAt = orders.StatusPaid, orders.StatusPaid, &now, now
		return tx.UpdateOrder(ctx, &cur)
	})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{1, 0} {
		s := startShop(t, bin, db, dir, fmt.Sprintf("start%d", i+1))
		s.stop(t, 10*time.Second)
		if got := fulfilledLines(t, s.logs)[o.ID]; got != want {
			t.Errorf("start %d: got %d \"order fulfilled\" lines, want %d\n%s", i+1, got, want, tail(s.logs))
		}
	}
	l := &load{orders: []orders.Order{o}, sent: []event{ev}, attempts: []attempt{{eventID: ev.id, orderID: o.ID, acked: true}}}
	if f := verify(t, db, dir, l, true); f.fulfilled != 1 {
		t.Errorf("got %d orders fulfilled, want 1", f.fulfilled)
	}
}

// TestCrashBetweenCommitAndDelivery kills the shop while its order webhook
// is being delivered: the payment is committed with its notification, the
// receiver has the request but has not answered. After a restart the
// notification is delivered, with the same id and body.
func TestCrashBetweenCommitAndDelivery(t *testing.T) {
	skipShort(t)
	bin := buildShop(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "shop.db")
	o := seedOrders(t, db, 1)[0]
	rcv := newHangingReceiver(t)
	env := []string{"FULFILMENT_WEBHOOK_URL=" + rcv.srv.URL, "FULFILMENT_WEBHOOK_SECRET=" + receiverSecret}

	s := startShop(t, bin, db, dir, "first", env...)
	ev := newEvent("evt_deliver", orders.EventSessionCompleted, o)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := post(ctx, http.DefaultClient, s.url, ev)
	if err != nil || !a.acked {
		t.Fatalf("webhook: %+v, %v; want acknowledged", a, err)
	}
	select {
	case <-rcv.first:
	case <-time.After(10 * time.Second):
		t.Fatal("the order webhook was not attempted")
	}
	s.kill() // mid-delivery: the receiver holds the request
	rcv.accept()

	start := time.Now()
	s = startShop(t, bin, db, dir, "second", env...)
	var got received
	select {
	case got = <-rcv.accepted:
	case <-time.After(40 * time.Second):
		t.Fatalf("not delivered after the restart\n%s", tail(s.logs))
	}
	t.Logf("delivered %v after the restart", time.Since(start).Round(time.Millisecond))
	s.stop(t, 10*time.Second)
	rcv.mu.Lock()
	first := rcv.bodies[0]
	rcv.mu.Unlock()
	if got.id != first.id || !bytes.Equal(got.body, first.body) {
		t.Errorf("the delivery after the crash differs from the attempt before it:\n%s\n%s", first.body, got.body)
	}
	if rcv.acceptedCount() != 1 {
		t.Errorf("accepted %d deliveries, want 1", rcv.acceptedCount())
	}
}

const receiverSecret = "crash-receiver-secret-0123456789abcdef"

// received is one delivery of the order webhook.
type received struct {
	id   string
	body []byte
}

// hangingReceiver holds every delivery without answering until accept, then
// answers 204 and reports each one.
type hangingReceiver struct {
	srv      *httptest.Server
	first    chan struct{}
	accepted chan received
	open     chan struct{}
	once     sync.Once
	mu       sync.Mutex
	bodies   []received
	ok       int
}

func newHangingReceiver(t *testing.T) *hangingReceiver {
	r := &hangingReceiver{first: make(chan struct{}), accepted: make(chan received, 10), open: make(chan struct{})}
	var firstOnce sync.Once
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil || webhook.ValidatePayload(body, req.Header.Get("Shop-Signature"), receiverSecret) != nil {
			http.Error(w, "bad signature", http.StatusBadRequest)
			return
		}
		var n struct{ ID string }
		if err := json.Unmarshal(body, &n); err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		rec := received{id: n.ID, body: body}
		r.mu.Lock()
		r.bodies = append(r.bodies, rec)
		r.mu.Unlock()
		firstOnce.Do(func() { close(r.first) })
		select {
		case <-r.open:
		case <-req.Context().Done(): // the sender died
			return
		}
		r.mu.Lock()
		r.ok++
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		r.accepted <- rec
	}))
	t.Cleanup(func() { r.accept(); r.srv.Close() })
	return r
}

func (r *hangingReceiver) accept() { r.once.Do(func() { close(r.open) }) }

func (r *hangingReceiver) acceptedCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ok
}

// TestSIGTERMUnderLoad stops the shop with SIGTERM while 16 senders post new
// events: it must finish what is in flight, exit 0 within SHUTDOWN_TIMEOUT,
// and have stored every event it acknowledged.
func TestSIGTERMUnderLoad(t *testing.T) {
	skipShort(t)
	const grace = 5 * time.Second
	bin := buildShop(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "shop.db")
	l := &load{orders: seedOrders(t, db, 300)}
	s := startShop(t, bin, db, dir, "shop", "SHUTDOWN_TIMEOUT="+grace.String())

	var sigterm time.Time
	var exit time.Duration
	l.against(s, len(l.orders), rand.New(rand.NewPCG(1, 2)), func() {
		time.Sleep(300 * time.Millisecond)
		sigterm = time.Now()
		exit = s.stop(t, grace+3*time.Second)
	})

	after, bad := 0, 0
	for _, a := range l.attempts {
		switch {
		case a.acked && a.at.After(sigterm):
			after++
		case a.status != 0 && !a.acked:
			bad++
			t.Errorf("event %s: got status %d, want 2xx or no answer", a.eventID, a.status)
		}
	}
	f := verify(t, db, dir, l, true)
	t.Logf("exit 0 %v after SIGTERM (grace %v); %v; acknowledged after SIGTERM was sent %d; non-2xx answers %d",
		exit.Round(time.Millisecond), grace, f, after, bad)
}

func openStore(t *testing.T, db string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return st
}
