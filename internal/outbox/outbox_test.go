package outbox_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/shopcheckout/shop/internal/orders"
	"github.com/shopcheckout/shop/internal/outbox"
	"github.com/shopcheckout/shop/internal/sqlite"
	"github.com/shopcheckout/shop/internal/storetest"
	"github.com/shopcheckout/shop/internal/testenv"
)

// secret signs the order webhooks of these tests.
const secret = "outbox-test-secret-0123456789abcdef"

// waitLimit is how long a test waits for something before it gives up: a
// guard against hanging, far above anything the tests expect.
const waitLimit = 30 * time.Second

// notificationIDPattern is the shape of every notification id.
var notificationIDPattern = regexp.MustCompile(`^ntf_[a-z2-7]{26}$`)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// shop is an orders.Service over a fresh SQLite store.
type shop struct {
	store orders.Store
	svc   *orders.Service
}

// newShop returns a Service over a SQLite store in t.TempDir(), on the real
// clock, queuing an order webhook for every paid order; opts come last.
func newShop(t testing.TB, opts ...orders.ServiceOption) shop {
	t.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "shop.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	base := []orders.ServiceOption{orders.WithClock(time.Now), orders.WithChannels(orders.Channels{Webhook: true})}
	return shop{store: store, svc: orders.NewService(store, discard(), append(base, opts...)...)}
}

// pay seeds a pending order and pays it with a checkout.session.completed
// event, which queues its order.paid notification; it returns that
// notification as stored.
func pay(t testing.TB, s shop, orderID string) orders.Notification {
	t.Helper()
	o := storetest.NewOrder(orderID)
	storetest.Seed(t, s.store, o)
	if _, err := s.svc.HandleEvent(context.Background(), storetest.CompletedEvent("evt_"+orderID, o, "paid")); err != nil {
		t.Fatalf("HandleEvent: %v", err)
	}
	return stored(t, s.svc, orderID)
}

// stored returns the one notification of an order.
func stored(t testing.TB, svc *orders.Service, orderID string) orders.Notification {
	t.Helper()
	ns, err := svc.Notifications(context.Background(), []string{orderID})
	if err != nil {
		t.Fatalf("Notifications: %v", err)
	}
	if len(ns) != 1 {
		t.Fatalf("order %s: got %d notifications, want 1", orderID, len(ns))
	}
	return ns[0]
}

// state is what the tests compare of a stored notification.
type state struct {
	Status    orders.NotificationStatus
	Attempts  int
	Due       bool // it has a next attempt
	Delivered bool // it has a delivery time
	Claimed   bool
}

func stateOf(n orders.Notification) state {
	return state{Status: n.Status, Attempts: n.Attempts, Due: n.NextAttempt != nil, Delivered: n.DeliveredAt != nil, Claimed: n.ClaimedBy != ""}
}

// waitFor polls cond until it holds, or fails the test after waitLimit.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for %s", waitLimit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// newDispatcher builds a dispatcher from cfg, with a holder name, a silent
// log and a 20ms poll unless cfg sets them.
func newDispatcher(t testing.TB, cfg outbox.Config) *outbox.Dispatcher {
	t.Helper()
	if cfg.Holder == "" {
		cfg.Holder = "test-" + t.Name()
	}
	if cfg.Log == nil {
		cfg.Log = discard()
	}
	if cfg.Poll == 0 {
		cfg.Poll = 20 * time.Millisecond
	}
	d, err := outbox.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// start runs d until stop is called or the test ends; stop returns once Run
// has.
func start(t testing.TB, d *outbox.Dispatcher) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(ctx)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(waitLimit):
				t.Errorf("Run still running %v after its context ended", waitLimit)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// webhookSenders sends order webhooks to url through client (nil for a
// default one).
func webhookSenders(url string, client *http.Client) map[orders.Channel]outbox.Sender {
	return map[orders.Channel]outbox.Sender{orders.ChannelWebhook: outbox.NewWebhook(url, secret, client, nil)}
}

// hit is one request a receiver got.
type hit struct {
	at   time.Time
	path string
	body []byte
	sig  string
}

// receiver is an order webhook endpoint that keeps what it gets.
type receiver struct {
	URL  string
	mu   sync.Mutex
	hits []hit
}

// newReceiver starts a receiver that answers its n-th request (from 1)
// with answer, closed when the test ends (after the dispatchers started
// later have stopped). The context of the requests answer gets also ends
// when the receiver closes, so a handler that hangs until the shop hangs up
// cannot keep a failed test from ending.
func newReceiver(t testing.TB, answer func(n int, w http.ResponseWriter, r *http.Request)) *receiver {
	t.Helper()
	rc := &receiver{}
	closing, closeAll := context.WithCancel(context.Background())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		defer context.AfterFunc(closing, cancel)()
		r = r.WithContext(ctx)
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("receiver: read body: %v", err)
		}
		rc.mu.Lock()
		rc.hits = append(rc.hits, hit{at: time.Now(), path: r.URL.Path, body: body, sig: r.Header.Get(outbox.SignatureHeader)})
		n := len(rc.hits)
		rc.mu.Unlock()
		answer(n, w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(closeAll) // before srv.Close, which waits for the handlers
	rc.URL = srv.URL
	return rc
}

// Hits returns the requests so far.
func (rc *receiver) Hits() []hit {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]hit(nil), rc.hits...)
}

// status answers every request with code.
func status(code int) func(int, http.ResponseWriter, *http.Request) {
	return func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

// recorded is one RecordDeliveries call as the spy saw it: the clock read
// inside the write lies between before and after.
type recorded struct {
	before, after time.Time
	n             orders.Notification
}

// spyQueue passes everything to the real queue and keeps what was claimed
// and recorded.
type spyQueue struct {
	outbox.Queue
	mu      sync.Mutex
	claims  int
	records []recorded
}

func (q *spyQueue) ClaimNotifications(ctx context.Context, holder string, limit int, lease time.Duration) ([]orders.Notification, error) {
	ns, err := q.Queue.ClaimNotifications(ctx, holder, limit, lease)
	q.mu.Lock()
	q.claims++
	q.mu.Unlock()
	return ns, err
}

func (q *spyQueue) RecordDeliveries(ctx context.Context, ds []orders.Delivery) ([]orders.Notification, error) {
	before := time.Now()
	ns, err := q.Queue.RecordDeliveries(ctx, ds)
	after := time.Now()
	q.mu.Lock()
	for _, n := range ns {
		q.records = append(q.records, recorded{before: before, after: after, n: n})
	}
	q.mu.Unlock()
	return ns, err
}

func (q *spyQueue) Claims() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.claims
}

// Delivered reports whether an attempt was recorded as delivered.
func (q *spyQueue) Delivered() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, r := range q.records {
		if r.n.Status == orders.NotificationDelivered {
			return true
		}
	}
	return false
}

func (q *spyQueue) Records() []recorded {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]recorded(nil), q.records...)
}

// attempt is one request as it left the shop.
type attempt struct {
	at   time.Time
	body []byte
	sig  string
}

// tapTransport keeps every request the webhook sender makes, and sends the
// attempts in refuse (numbered from 1) to an address nobody listens on.
type tapTransport struct {
	base   http.RoundTripper
	refuse map[int]bool
	closed string // host:port of a closed listener

	mu       sync.Mutex
	attempts []attempt
}

func (tp *tapTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return nil, err
	}
	tp.mu.Lock()
	tp.attempts = append(tp.attempts, attempt{at: time.Now(), body: body, sig: req.Header.Get(outbox.SignatureHeader)})
	n := len(tp.attempts)
	tp.mu.Unlock()
	out := req.Clone(req.Context())
	out.Body = io.NopCloser(bytes.NewReader(body))
	if tp.refuse[n] {
		out.URL.Host, out.Host = tp.closed, ""
	}
	return tp.base.RoundTrip(out)
}

func (tp *tapTransport) Attempts() []attempt {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return append([]attempt(nil), tp.attempts...)
}

// closedAddr returns a local host:port on which nothing listens: a
// connection there is refused.
func closedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// newTransport returns a transport of its own, closed when the test ends.
func newTransport(t testing.TB) *http.Transport {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// bodyID returns the "id" of a notification body.
func bodyID(t testing.TB, body []byte) string {
	t.Helper()
	var b orders.WebhookBody
	if err := json.Unmarshal(body, &b); err != nil {
		t.Fatalf("notification body %q: %v", body, err)
	}
	return b.ID
}

// TestRetriesUntilAccepted: a receiver that answers 500, then refuses the
// connection, then answers 503, then accepts. The notification is delivered
// on the fourth attempt; every attempt carries the same id and the same
// body bytes with a valid signature; the waits double from a first retry
// within 2s, and the attempts keep to them without waiting for a poll.
func TestRetriesUntilAccepted(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		switch n { // the refused attempt never reaches the receiver
		case 1:
			w.WriteHeader(http.StatusInternalServerError)
		case 2:
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			w.WriteHeader(http.StatusOK)
		}
	})
	tap := &tapTransport{base: newTransport(t), refuse: map[int]bool{2: true}, closed: closedAddr(t)}
	q := &spyQueue{Queue: s.svc}
	// An hour between polls: the dispatcher keeps the retry schedule
	// itself, without waiting for a poll.
	d := newDispatcher(t, outbox.Config{Queue: q, Poll: time.Hour, Senders: webhookSenders(rc.URL+"/hook", &http.Client{Transport: tap})})
	queued := pay(t, s, "ord_retry")
	if !notificationIDPattern.MatchString(queued.ID) {
		t.Errorf("notification id: got %q, want ntf_ and 26 base32 characters", queued.ID)
	}
	start(t, d)
	waitFor(t, "the delivery", q.Delivered)

	attempts := tap.Attempts()
	if len(attempts) != 4 {
		t.Fatalf("got %d attempts, want 4", len(attempts))
	}
	if got := len(rc.Hits()); got != 3 {
		t.Errorf("receiver got %d requests, want 3 (the refused attempt never arrives)", got)
	}
	for i, a := range attempts {
		if !bytes.Equal(a.body, queued.Payload) {
			t.Errorf("attempt %d: got body %s, want the stored body %s", i+1, a.body, queued.Payload)
		}
		if id := bodyID(t, a.body); id != queued.ID {
			t.Errorf("attempt %d: got id %q, want %q", i+1, id, queued.ID)
		}
		if err := webhook.ValidatePayload(a.body, a.sig, secret); err != nil {
			t.Errorf("attempt %d: signature %q: got %v, want valid", i+1, a.sig, err)
		}
	}

	recs := q.Records()
	if len(recs) != 4 {
		t.Fatalf("got %d recorded attempts, want 4", len(recs))
	}
	for k, want := range []string{"500", "refused", "503"} {
		r := recs[k]
		if r.n.Status != orders.NotificationPending || r.n.NextAttempt == nil {
			t.Fatalf("attempt %d recorded as %s (next %v), want pending with a next attempt", k+1, r.n.Status, r.n.NextAttempt)
		}
		if !strings.Contains(r.n.LastError, want) {
			t.Errorf("attempt %d: got last error %q, want it to mention %q", k+1, r.n.LastError, want)
		}
		// The wait the store scheduled, measured from the write that
		// recorded the failure: RetryWait of the attempts so far.
		wait := orders.RetryWait(k + 1)
		if lo, hi := r.n.NextAttempt.Sub(r.after), r.n.NextAttempt.Sub(r.before); lo > wait || hi < wait-time.Millisecond {
			t.Errorf("after failure %d: next attempt %v to %v after the write, want %v", k+1, lo, hi, wait)
		}
		if k == 0 && r.n.NextAttempt.Sub(r.after) > 2*time.Second {
			t.Errorf("first retry scheduled %v after the failure, want within 2s", r.n.NextAttempt.Sub(r.after))
		}
		if k > 0 && wait != 2*orders.RetryWait(k) {
			t.Errorf("wait after failure %d: got %v, want double the one before (%v)", k+1, wait, orders.RetryWait(k))
		}
		// No attempt comes before its time.
		if gap := attempts[k+1].at.Sub(attempts[k].at); gap < wait-time.Millisecond {
			t.Errorf("attempt %d came %v after attempt %d, want at least %v", k+2, gap, k+1, wait)
		}
	}
	var gaps []string
	for k := 1; k < len(attempts); k++ {
		gaps = append(gaps, attempts[k].at.Sub(attempts[k-1].at).Round(time.Millisecond).String())
	}
	t.Logf("attempts %s apart", strings.Join(gaps, ", "))
	got := stored(t, s.svc, "ord_retry")
	want := state{Status: orders.NotificationDelivered, Attempts: 4, Delivered: true}
	if diff := cmp.Diff(want, stateOf(got)); diff != "" {
		t.Errorf("stored notification (-want +got):\n%s", diff)
	}
	if got.LastError != "" || got.ID != queued.ID || !bytes.Equal(got.Payload, queued.Payload) {
		t.Errorf("stored: got id %q, last error %q, body %s; want %q, none, the queued body", got.ID, got.LastError, got.Payload, queued.ID)
	}
}

// TestHangingReceiverTimedOut: a receiver that does not answer is cut off
// after Config.Timeout, the attempt is recorded as failed with the reason,
// and the retry delivers it.
func TestHangingReceiverTimedOut(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	cut := make(chan struct{}, 1)
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			<-r.Context().Done() // until the shop hangs up
			cut <- struct{}{}
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	q := &spyQueue{Queue: s.svc}
	d := newDispatcher(t, outbox.Config{Queue: q, Timeout: 300 * time.Millisecond, Senders: webhookSenders(rc.URL, nil)})
	queued := pay(t, s, "ord_hang")
	start(t, d)
	waitFor(t, "the delivery", q.Delivered)

	select {
	case <-cut:
	case <-time.After(waitLimit):
		t.Error("the hanging request was never cut off")
	}
	recs := q.Records()
	if len(recs) != 2 {
		t.Fatalf("got %d recorded attempts, want 2", len(recs))
	}
	if first := recs[0].n; first.Status != orders.NotificationPending || !strings.Contains(first.LastError, "no answer within 300ms") {
		t.Errorf("first attempt: got %s with error %q, want pending with \"no answer within 300ms\"", first.Status, first.LastError)
	}
	if diff := cmp.Diff(state{Status: orders.NotificationDelivered, Attempts: 2, Delivered: true}, stateOf(stored(t, s.svc, "ord_hang"))); diff != "" {
		t.Errorf("stored notification (-want +got):\n%s", diff)
	}
	for i, h := range rc.Hits() {
		if !bytes.Equal(h.body, queued.Payload) {
			t.Errorf("request %d: got body %s, want %s", i+1, h.body, queued.Payload)
		}
		if err := webhook.ValidatePayload(h.body, h.sig, secret); err != nil {
			t.Errorf("request %d: signature %q: got %v, want valid", i+1, h.sig, err)
		}
	}
}

// TestRedirectNotFollowed: a 3xx answer is a failed attempt, and its
// Location is never visited.
func TestRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			t.Parallel()
			s := newShop(t)
			rc := newReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/hook" {
					http.Redirect(w, r, "/elsewhere", code)
					return
				}
				w.WriteHeader(http.StatusOK)
			})
			q := &spyQueue{Queue: s.svc}
			d := newDispatcher(t, outbox.Config{Queue: q, Senders: webhookSenders(rc.URL+"/hook", nil)})
			pay(t, s, "ord_redirect")
			stop := start(t, d)
			waitFor(t, "the first attempt", func() bool { return len(q.Records()) > 0 })
			stop()

			got := stored(t, s.svc, "ord_redirect")
			if diff := cmp.Diff(state{Status: orders.NotificationPending, Attempts: 1, Due: true}, stateOf(got)); diff != "" {
				t.Errorf("stored notification (-want +got):\n%s", diff)
			}
			if !strings.Contains(got.LastError, fmt.Sprint(code)) {
				t.Errorf("last error: got %q, want it to name %d", got.LastError, code)
			}
			for _, h := range rc.Hits() {
				if h.path != "/hook" {
					t.Errorf("the redirect was followed to %s", h.path)
				}
			}
		})
	}
}

// TestRunStopsDuringHangingDelivery: ending Run's context while a delivery
// hangs (with an hour's timeout) returns at once; the interrupted attempt
// is recorded as failed, so the notification stays queued and the next
// dispatcher delivers it.
func TestRunStopsDuringHangingDelivery(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	arrived := make(chan struct{})
	var once sync.Once
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			once.Do(func() { close(arrived) })
			<-r.Context().Done()
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	d := newDispatcher(t, outbox.Config{Queue: s.svc, Timeout: time.Hour, Senders: webhookSenders(rc.URL, nil)})
	queued := pay(t, s, "ord_stop")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(ctx)
	}()
	select {
	case <-arrived:
	case <-time.After(waitLimit):
		t.Fatal("the delivery never started")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatalf("Run still running %v after its context ended, while a delivery with an hour's timeout hangs", waitLimit)
	}

	got := stored(t, s.svc, "ord_stop")
	if diff := cmp.Diff(state{Status: orders.NotificationPending, Attempts: 1, Due: true}, stateOf(got)); diff != "" {
		t.Errorf("after Run returned (-want +got):\n%s", diff)
	}
	if got.LastError == "" {
		t.Error("the interrupted attempt has no last error")
	}

	start(t, newDispatcher(t, outbox.Config{Queue: s.svc, Senders: webhookSenders(rc.URL, nil)}))
	waitFor(t, "the delivery by the next dispatcher", func() bool {
		return stored(t, s.svc, "ord_stop").Status == orders.NotificationDelivered
	})
	if n := stored(t, s.svc, "ord_stop").Attempts; n != 2 {
		t.Errorf("attempts: got %d, want 2", n)
	}
	for i, h := range rc.Hits() {
		if !bytes.Equal(h.body, queued.Payload) {
			t.Errorf("request %d: got body %s, want %s", i+1, h.body, queued.Payload)
		}
	}
}

// TestWakeDeliversWithoutWaitingForPoll: with an hour between polls, a
// notification goes out as soon as the Service's OnQueued hook wakes the
// dispatcher.
func TestWakeDeliversWithoutWaitingForPoll(t *testing.T) {
	t.Parallel()
	var d *outbox.Dispatcher
	s := newShop(t, orders.OnQueued(func() { d.Wake() }))
	rc := newReceiver(t, status(http.StatusOK))
	q := &spyQueue{Queue: s.svc}
	d = newDispatcher(t, outbox.Config{Queue: q, Poll: time.Hour, Senders: webhookSenders(rc.URL, nil)})
	for range 10 {
		d.Wake() // never blocks, even with nobody running
	}
	start(t, d)
	// Let Run settle into waiting: past its first claims, which find nothing.
	waitFor(t, "the first claim", func() bool { return q.Claims() >= 1 })
	time.Sleep(50 * time.Millisecond)
	claims := q.Claims()

	queued := pay(t, s, "ord_wake")
	waitFor(t, "the delivery (the next poll is an hour away)", func() bool {
		return stored(t, s.svc, "ord_wake").Status == orders.NotificationDelivered
	})
	if q.Claims() <= claims {
		t.Errorf("claims: got %d after the payment, want more than %d", q.Claims(), claims)
	}
	if hits := rc.Hits(); len(hits) != 1 || bodyID(t, hits[0].body) != queued.ID {
		t.Errorf("receiver: got %d requests, want 1 with %s", len(hits), queued.ID)
	}
}

// TestNoSenderForChannel: a notification whose channel has no sender (the
// configuration changed since it was queued) fails its attempt with an
// error that says so, and stays queued.
func TestNoSenderForChannel(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	q := &spyQueue{Queue: s.svc}
	stop := start(t, newDispatcher(t, outbox.Config{Queue: q}))
	pay(t, s, "ord_nosender")
	waitFor(t, "the first attempt", func() bool { return len(q.Records()) > 0 })
	stop()
	got := stored(t, s.svc, "ord_nosender")
	if diff := cmp.Diff(state{Status: orders.NotificationPending, Attempts: 1, Due: true}, stateOf(got)); diff != "" {
		t.Errorf("stored notification (-want +got):\n%s", diff)
	}
	if want := `no sender for channel "webhook"`; !strings.Contains(got.LastError, want) {
		t.Errorf("last error: got %q, want it to contain %q", got.LastError, want)
	}
}

// spyRecorder keeps what a dispatcher reports.
type spyRecorder struct {
	mu       sync.Mutex
	outcomes []string // type/channel/outcome
	queues   []orders.OutboxStats
}

func (r *spyRecorder) Delivered(typ, channel, outcome string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.outcomes = append(r.outcomes, typ+"/"+channel+"/"+outcome)
}

func (r *spyRecorder) Queue(st orders.OutboxStats, _ time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queues = append(r.queues, st)
}

func (r *spyRecorder) Outcomes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.outcomes...)
}

// LastQueue returns the latest queue report, and whether there is one.
func (r *spyRecorder) LastQueue() (orders.OutboxStats, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.queues) == 0 {
		return orders.OutboxStats{}, false
	}
	return r.queues[len(r.queues)-1], true
}

func (r *spyRecorder) SawQueue(f func(orders.OutboxStats) bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, st := range r.queues {
		if f(st) {
			return true
		}
	}
	return false
}

// TestRecorderSeesOutcomes: the Recorder is told of each attempt's outcome
// and of the queue: one pending notification, then none.
func TestRecorderSeesOutcomes(t *testing.T) {
	t.Parallel()
	s := newShop(t)
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	rec := &spyRecorder{}
	d := newDispatcher(t, outbox.Config{Queue: s.svc, Recorder: rec, Senders: webhookSenders(rc.URL, nil)})
	pay(t, s, "ord_rec")
	start(t, d)
	waitFor(t, "the delivery", func() bool { return len(rec.Outcomes()) == 2 })
	waitFor(t, "a queue report of nothing pending", func() bool {
		st, ok := rec.LastQueue()
		return ok && st.Pending == 0
	})
	want := []string{"order.paid/webhook/failed", "order.paid/webhook/delivered"}
	if diff := cmp.Diff(want, rec.Outcomes()); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
	if !rec.SawQueue(func(st orders.OutboxStats) bool { return st.Pending == 1 && st.OldestQueued != nil }) {
		t.Error("no queue report showed the pending notification")
	}
	if st, _ := rec.LastQueue(); st.Dead != 0 || st.OldestQueued != nil {
		t.Errorf("last queue report: got %+v, want nothing pending or dead", st)
	}
}

// TestDeadAfterRetryFor: on a clock moved on to each next attempt, a
// receiver that always fails is retried on the schedule until RetryFor has
// passed, then the notification is dead: the Recorder, the queue stats and
// the log show it, no further attempt is made, and an operator's re-queue
// delivers it.
func TestDeadAfterRetryFor(t *testing.T) {
	t.Parallel()
	clock := storetest.NewClock()
	s := newShop(t, orders.WithClock(clock.Now))
	// The attempt whose next wait would pass the deadline is the last.
	last, elapsed := 0, time.Duration(0)
	for elapsed <= orders.RetryFor {
		last++
		elapsed += orders.RetryWait(last)
	}
	var accept atomic.Bool
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		if accept.Load() {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusInternalServerError)
	})
	rec := &spyRecorder{}
	logs := &testenv.SyncBuffer{}
	d := newDispatcher(t, outbox.Config{
		Queue: s.svc, Recorder: rec, Now: clock.Now, Poll: time.Hour,
		Log: slog.New(slog.NewTextHandler(logs, nil)), Senders: webhookSenders(rc.URL, nil),
	})
	queued := pay(t, s, "ord_dead")
	start(t, d)
	for k := 1; ; k++ {
		waitFor(t, fmt.Sprintf("attempt %d", k), func() bool { return len(rec.Outcomes()) >= k })
		if k == last {
			break
		}
		clock.Advance(orders.RetryWait(k))
		d.Wake()
	}

	outcomes := rec.Outcomes()
	if len(outcomes) != last {
		t.Fatalf("got %d attempts, want %d", len(outcomes), last)
	}
	for i, o := range outcomes {
		want := "order.paid/webhook/failed"
		if i == last-1 {
			want = "order.paid/webhook/dead"
		}
		if o != want {
			t.Errorf("attempt %d: got %s, want %s", i+1, o, want)
		}
	}
	got := stored(t, s.svc, "ord_dead")
	if diff := cmp.Diff(state{Status: orders.NotificationDead, Attempts: last}, stateOf(got)); diff != "" {
		t.Errorf("stored notification (-want +got):\n%s", diff)
	}
	if !strings.Contains(got.LastError, "500") {
		t.Errorf("last error: got %q, want the receiver's 500", got.LastError)
	}
	if !strings.Contains(logs.String(), "notification dead") {
		t.Errorf("log: got %d lines without \"notification dead\", want that line", strings.Count(logs.String(), "\n"))
	}
	st, err := s.svc.OutboxStats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Dead != 1 || st.Pending != 0 {
		t.Errorf("OutboxStats: got %+v, want 1 dead, 0 pending", st)
	}
	clock.Advance(2 * orders.MaxRetryWait)
	d.Wake()
	waitFor(t, "a queue report of the dead notification", func() bool {
		st, ok := rec.LastQueue()
		return ok && st.Dead == 1
	})
	if n := len(rc.Hits()); n != last {
		t.Errorf("receiver: got %d requests, want %d (none after the notification died)", n, last)
	}

	accept.Store(true)
	if _, err := s.svc.Requeue(context.Background(), queued.ID); err != nil {
		t.Fatalf("Requeue: %v", err)
	}
	d.Wake()
	waitFor(t, "the delivery after the re-queue", func() bool {
		return stored(t, s.svc, "ord_dead").Status == orders.NotificationDelivered
	})
	hits := rc.Hits()
	if got := bodyID(t, hits[len(hits)-1].body); got != queued.ID {
		t.Errorf("re-queued delivery: got id %s, want %s", got, queued.ID)
	}
}

// TestSign: the signature header is Stripe's scheme, so stripe-go verifies
// it with the secret and with nothing else.
func TestSign(t *testing.T) {
	body := []byte(`{"id":"ntf_x","type":"order.paid"}`)
	now := time.Now()
	header := outbox.Sign([]byte(secret), now, body)
	if want := fmt.Sprintf("t=%d,v1=%s", now.Unix(), hex.EncodeToString(webhook.ComputeSignature(now, body, secret))); header != want {
		t.Errorf("Sign: got %q, want %q", header, want)
	}
	if err := webhook.ValidatePayload(body, header, secret); err != nil {
		t.Errorf("ValidatePayload with the secret: got %v, want nil", err)
	}
	if err := webhook.ValidatePayload(body, header, "another-secret-0123456789abcdefgh"); err == nil {
		t.Error("ValidatePayload with another secret: got nil, want an error")
	}
	if err := webhook.ValidatePayload(append(body, ' '), header, secret); err == nil {
		t.Error("ValidatePayload of another body: got nil, want an error")
	}
}

// TestWebhookSend: one POST of the stored body, signed; any 2xx is a
// delivery and anything else an error naming the status.
func TestWebhookSend(t *testing.T) {
	n := orders.Notification{ID: "ntf_send", Channel: orders.ChannelWebhook, Payload: []byte(`{"id":"ntf_send","type":"order.paid"}`)}
	for _, tc := range []struct {
		code    int
		wantErr bool
	}{
		{200, false}, {201, false}, {202, false}, {204, false},
		{301, true}, {304, true}, {400, true}, {404, true}, {409, true}, {500, true}, {503, true},
	} {
		t.Run(fmt.Sprint(tc.code), func(t *testing.T) {
			var got *http.Request
			var body []byte
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got = r.Clone(context.Background())
				body, _ = io.ReadAll(r.Body)
				if tc.code/100 == 3 {
					w.Header().Set("Location", "/elsewhere")
				}
				w.WriteHeader(tc.code)
			}))
			defer srv.Close()
			err := outbox.NewWebhook(srv.URL+"/hook", secret, nil, nil).Send(context.Background(), n)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Send: got %v, want error: %v", err, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), fmt.Sprint(tc.code)) {
				t.Errorf("error: got %q, want it to name %d", err, tc.code)
			}
			if got == nil {
				t.Fatal("the receiver got nothing")
			}
			if got.Method != http.MethodPost || got.URL.Path != "/hook" || got.Header.Get("Content-Type") != "application/json" {
				t.Errorf("request: got %s %s (%s), want POST /hook (application/json)", got.Method, got.URL.Path, got.Header.Get("Content-Type"))
			}
			if !bytes.Equal(body, n.Payload) {
				t.Errorf("body: got %s, want %s", body, n.Payload)
			}
			if err := webhook.ValidatePayload(body, got.Header.Get(outbox.SignatureHeader), secret); err != nil {
				t.Errorf("signature: got %v, want valid", err)
			}
		})
	}
}

// TestWebhookErrorsHideURL: the endpoint's URL may hold a token, and
// delivery errors end up in logs and on the admin page: no error repeats
// it.
func TestWebhookErrorsHideURL(t *testing.T) {
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hang" {
			select {
			case <-r.Context().Done():
			case <-hang:
			}
			return
		}
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()
	defer close(hang)
	const token = "secret123"
	n := orders.Notification{ID: "ntf_url", Channel: orders.ChannelWebhook, Payload: []byte(`{}`)}
	for name, endpoint := range map[string]string{
		"refused":    "http://" + closedAddr(t) + "/hook?token=" + token,
		"timeout":    srv.URL + "/hang?token=" + token,
		"status":     srv.URL + "/hook?token=" + token,
		"userinfo":   "http://user:" + token + "@" + closedAddr(t) + "/hook",
		"unparsable": "http://bad host/hook?token=" + token,
		"bad port":   "http://127.0.0.1:99999/hook?token=" + token,
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			err := outbox.NewWebhook(endpoint, secret, nil, nil).Send(ctx, n)
			if err == nil {
				t.Fatal("Send: got nil, want an error")
			}
			if strings.Contains(err.Error(), token) {
				t.Errorf("error: got %q, want it without the URL's %q", err, token)
			}
			if name == "refused" && !strings.Contains(err.Error(), "refused") {
				t.Errorf("error: got %q, want it to say the connection was refused", err)
			}
			if name == "timeout" && !strings.Contains(err.Error(), "did not answer in time") {
				t.Errorf("error: got %q, want it to say the receiver did not answer in time", err)
			}
		})
	}
}
