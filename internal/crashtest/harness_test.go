//go:build unix

package crashtest

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/shopcheckout/shop/internal/orders"
	"github.com/shopcheckout/shop/internal/sqlite"
	"github.com/shopcheckout/shop/internal/storetest"
)

const (
	webhookSecret = "whsec_crashtest0123456789"
	senders       = 16 // concurrent webhook senders
)

// skipShort skips tests that build and run the server binary.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("crash tests build and kill the real server binary; skipped with -short")
	}
}

// envInt reads a positive integer setting of the tests, or returns def.
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive whole number", name, v)
	}
	return n
}

// buildShop builds ./cmd/server into a temporary directory with the go
// command and environment (GOTOOLCHAIN included) the tests run under.
func buildShop(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil || !strings.HasSuffix(strings.TrimSpace(string(gomod)), "go.mod") {
		t.Fatalf("go env GOMOD: got %q, %v; want the module's go.mod", gomod, err)
	}
	bin := filepath.Join(t.TempDir(), "server")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/server")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/server: %v\n%s", err, out)
	}
	return bin
}

// seedOrders creates n pending orders of one $20.00 item, each with its
// Checkout Session, as checkout would have left them.
func seedOrders(t *testing.T, db string, n int) []orders.Order {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	list := make([]orders.Order, n)
	now := time.Now().UTC()
	for i := range list {
		list[i] = orders.Order{
			ID:          fmt.Sprintf("ord_crash_%05d", i),
			Status:      orders.StatusPending,
			Items:       []orders.Item{{ProductID: "tshirt", Name: "T-shirt", UnitAmount: 2000, Quantity: 1}},
			AmountTotal: 2000,
			Currency:    "usd",
			SessionID:   fmt.Sprintf("cs_test_crash_%05d", i),
			CreatedAt:   now,
			UpdatedAt:   now,
		}
	}
	storetest.Seed(t, st, list...)
	return list
}

// shop is one run of the server binary. Its stdout and stderr are files the
// process writes itself, so everything it wrote before a SIGKILL is kept.
type shop struct {
	cmd  *exec.Cmd
	url  string
	logs string        // the stderr file: JSON log lines
	done chan struct{} // closed once the process has exited
	err  error         // Wait's result, set before done is closed
}

var listening = regexp.MustCompile(`shop listening on http://localhost:(\d+)\D`)

// startShop runs the binary on db, with its output in dir/name.stdout and
// dir/name.stderr, and waits until it listens. The process is killed at the
// end of the test if it is still running.
func startShop(t *testing.T, bin, db, dir, name string, env ...string) *shop {
	t.Helper()
	stdout, err := os.Create(filepath.Join(dir, name+".stdout"))
	if err != nil {
		t.Fatal(err)
	}
	defer stdout.Close()
	stderr, err := os.Create(filepath.Join(dir, name+".stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()

	// No .env: a file that cannot exist (/nonexistent itself may, as a home
	// directory of system users).
	cmd := exec.Command(bin, "-env-file", filepath.Join(dir, name+".absent.env"))
	cmd.Env = append([]string{
		"STRIPE_SECRET_KEY=sk_test_crash",
		"STRIPE_PUBLISHABLE_KEY=pk_test_crash",
		"STRIPE_WEBHOOK_SECRET=" + webhookSecret,
		"STRIPE_API_BASE=http://127.0.0.1:9", // never called; the discard port refuses fast if it were
		"PORT=0",
		"DATABASE_URL=sqlite:" + db,
		"LOG_FORMAT=json",
	}, env...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	s := &shop{cmd: cmd, logs: stderr.Name(), done: make(chan struct{})}
	go func() { s.err = cmd.Wait(); close(s.done) }()
	t.Cleanup(s.kill)

	deadline := time.After(20 * time.Second)
	for {
		out, err := os.ReadFile(stdout.Name())
		if err != nil {
			t.Fatal(err)
		}
		if m := listening.FindSubmatch(out); m != nil {
			s.url = "http://127.0.0.1:" + string(m[1])
			return s
		}
		select {
		case <-s.done:
			t.Fatalf("%s exited before listening: %v\n%s", name, s.err, tail(s.logs))
		case <-deadline:
			t.Fatalf("%s not listening after 20s\n%s", name, tail(s.logs))
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// kill sends SIGKILL unless the process has exited, and waits for it.
func (s *shop) kill() {
	select {
	case <-s.done:
	default:
		_ = s.cmd.Process.Kill() // fails only if the process is already gone
		<-s.done
	}
}

// stop sends SIGTERM and requires exit status 0 within limit. It returns how
// long the process took to exit.
func (s *shop) stop(t *testing.T, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-s.done:
	case <-time.After(limit):
		s.kill()
		t.Fatalf("still running %v after SIGTERM\n%s", limit, tail(s.logs))
	}
	if s.err != nil {
		t.Fatalf("exit after SIGTERM: %v, want status 0\n%s", s.err, tail(s.logs))
	}
	return time.Since(start)
}

// tail returns the end of a log file, for failure messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return string(b[max(0, len(b)-4000):])
}

// event is a signed-when-sent Stripe event, kept so it can be sent again
// byte for byte, as Stripe does when it retries.
type event struct {
	id, orderID string
	payload     []byte
}

// newEvent builds a checkout.session.* event saying o's session is complete
// and paid, with o's amount and currency.
func newEvent(id, typ string, o orders.Order) event {
	session := map[string]any{
		"id": o.SessionID, "object": "checkout.session", "mode": "payment",
		"status": "complete", "payment_status": "paid",
		"amount_subtotal": o.AmountTotal, "amount_total": o.AmountTotal, "currency": o.Currency,
		"client_reference_id": o.ID, "metadata": map[string]string{"order_id": o.ID},
		"customer_details": map[string]string{"email": "crash@example.com"},
	}
	payload, err := json.Marshal(map[string]any{
		"id": id, "object": "event", "type": typ, "api_version": "2023-10-16",
		"created": time.Now().Unix(), "livemode": false,
		"data": map[string]any{"object": session},
	})
	if err != nil {
		panic(err) // strings and numbers always encode
	}
	return event{id: id, orderID: o.ID, payload: payload}
}

// attempt is one webhook request and what came of it.
type attempt struct {
	eventID, orderID string
	status           int       // 0: no answer
	acked            bool      // a 2xx: the shop says the event is stored
	duplicate        bool      // the answer said the event was known already
	at               time.Time // when the answer, or the error, came
}

// load sends signed events to the shop from many goroutines and records every
// request. It outlives a run of the shop, so re-sends repeat events of
// earlier runs too.
type load struct {
	orders []orders.Order
	resend int // percent of requests that re-send an event sent before

	mu       sync.Mutex
	sent     []event
	attempts []attempt
}

// pick returns the next event to send: an earlier one, or a new one paying
// one of the first limit orders.
func (l *load) pick(rng *rand.Rand, limit int) event {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.sent) > 0 && rng.IntN(100) < l.resend {
		return l.sent[rng.IntN(len(l.sent))]
	}
	typ := orders.EventSessionCompleted
	if rng.IntN(100) < 15 {
		typ = orders.EventAsyncPaymentSucceeded
	}
	ev := newEvent(fmt.Sprintf("evt_crash_%07d", len(l.sent)), typ, l.orders[rng.IntN(limit)])
	l.sent = append(l.sent, ev)
	return ev
}

// against runs the senders against s while halt runs (it sleeps, then kills
// or stops s), and returns once every sender has met a refused connection:
// the shop is gone.
func (l *load) against(s *shop, limit int, rng *rand.Rand, halt func()) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a bound, never reached
	defer cancel()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: senders}}
	defer client.CloseIdleConnections()
	var wg sync.WaitGroup
	for range senders {
		own := rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))
		wg.Go(func() { l.send(ctx, client, s.url, own, limit) })
	}
	halt()
	wg.Wait()
}

// send posts events until the connection is refused or ctx ends.
func (l *load) send(ctx context.Context, client *http.Client, url string, rng *rand.Rand, limit int) {
	for ctx.Err() == nil {
		ev := l.pick(rng, limit)
		a, err := post(ctx, client, url, ev)
		if errors.Is(err, syscall.ECONNREFUSED) {
			return // nothing was sent: the shop is gone
		}
		l.mu.Lock()
		l.attempts = append(l.attempts, a)
		l.mu.Unlock()
	}
}

// post delivers ev to /webhook, signed now.
func post(ctx context.Context, client *http.Client, url string, ev event) (attempt, error) {
	a := attempt{eventID: ev.id, orderID: ev.orderID}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/webhook", bytes.NewReader(ev.payload))
	if err != nil {
		return a, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: ev.payload, Secret: webhookSecret}).Header)
	res, err := client.Do(req)
	if err != nil {
		a.at = time.Now()
		return a, err
	}
	defer res.Body.Close()
	var body struct{ Duplicate bool }
	err = json.NewDecoder(res.Body).Decode(&body)
	// Stripe counts any 2xx as delivered, whatever the body: so do we.
	a.status, a.acked, a.duplicate, a.at = res.StatusCode, res.StatusCode/100 == 2, body.Duplicate, time.Now()
	return a, err
}

// figures sums up what a test sent and found.
type figures struct {
	requests, acked, ackedDuplicate, distinct int
	paid, fulfilled                           int
	lost, twice, unlogged                     int
}

func (f figures) String() string {
	return fmt.Sprintf("requests %d, acknowledged %d (%d answered duplicate), distinct events acknowledged %d, "+
		"orders paid %d, fulfilled %d, lost %d, fulfilled twice %d, fulfilled without a log line %d",
		f.requests, f.acked, f.ackedDuplicate, f.distinct, f.paid, f.fulfilled, f.lost, f.twice, f.unlogged)
}

// verify checks the database db, with the shop stopped, and the logs in dir
// against what the shop acknowledged: the file is sound; every acknowledged
// event is stored and its order paid; every paid order is fulfilled; no order
// has two "order fulfilled" lines, nor one without fulfilled_at. Unless
// everyLine, a fulfilled order may lack its line (killed between commit and
// log).
func verify(t *testing.T, db, dir string, l *load, everyLine bool) figures {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	integrity(t, db)

	logs, err := filepath.Glob(filepath.Join(dir, "*.stderr"))
	if err != nil {
		t.Fatal(err)
	}
	lines := fulfilledLines(t, logs...)
	st, err := sqlite.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	var f figures
	status := map[string]orders.Status{}
	for _, want := range l.orders {
		o, err := st.Order(ctx, want.ID)
		if err != nil {
			t.Fatal(err)
		}
		status[o.ID] = o.Status
		n := lines[o.ID]
		delete(lines, o.ID)
		if o.Status == orders.StatusPaid {
			f.paid++
		}
		if o.FulfilledAt != nil {
			f.fulfilled++
		}
		switch {
		case o.Status == orders.StatusPaid && o.FulfilledAt == nil:
			t.Errorf("order %s is paid but not fulfilled", o.ID)
		case o.Status != orders.StatusPaid && o.FulfilledAt != nil:
			t.Errorf("order %s is %s but fulfilled", o.ID, o.Status)
		case n > 1:
			f.twice++
			t.Errorf("order %s: %d \"order fulfilled\" lines, want at most 1", o.ID, n)
		case n == 1 && o.FulfilledAt == nil:
			t.Errorf("order %s: \"order fulfilled\" logged, but fulfilled_at is not set", o.ID)
		case n == 0 && o.FulfilledAt != nil:
			f.unlogged++
			if everyLine {
				t.Errorf("order %s: fulfilled, but no \"order fulfilled\" line", o.ID)
			}
		}
	}
	for id, n := range lines {
		t.Errorf("%d \"order fulfilled\" lines for unknown order %q", n, id)
	}

	events := map[string]event{}
	for _, ev := range l.sent {
		events[ev.id] = ev
	}
	acked := map[string]bool{}
	for _, a := range l.attempts {
		f.requests++
		if a.acked {
			f.acked++
			acked[a.eventID] = true
			if a.duplicate {
				f.ackedDuplicate++
			}
		}
	}
	f.distinct = len(acked)
	for id := range acked {
		ev := events[id]
		if s := status[ev.orderID]; s != orders.StatusPaid {
			t.Errorf("event %s acknowledged, but order %s is %s, want paid", id, ev.orderID, s)
		}
		parsed, err := orders.ParseEvent(ev.payload)
		if err != nil {
			t.Fatal(err)
		}
		res, err := orders.NewService(st, slog.New(slog.DiscardHandler)).HandleEvent(ctx, parsed)
		if err != nil {
			t.Fatalf("apply event %s again: %v", id, err)
		}
		if !res.Duplicate {
			f.lost++
			t.Errorf("event %s was acknowledged but not stored", id)
		}
	}
	if f.acked == 0 {
		t.Errorf("no request was acknowledged: the load never reached the shop")
	}
	return f
}

// integrity runs PRAGMA integrity_check on db.
func integrity(t *testing.T, db string) {
	t.Helper()
	conn, err := sql.Open("sqlite", db) // the driver internal/sqlite registers
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var got string
	if err := conn.QueryRow("PRAGMA integrity_check").Scan(&got); err != nil {
		t.Fatalf("integrity check: %v", err)
	}
	if got != "ok" {
		t.Errorf("integrity check: got %q, want ok", got)
	}
}

// fulfilledLines counts the "order fulfilled" lines per order id in JSON log
// files.
func fulfilledLines(t *testing.T, files ...string) map[string]int {
	t.Helper()
	n := map[string]int{}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		countFulfilled(t, name, b, n)
	}
	return n
}

// countFulfilled adds the "order fulfilled" lines of a JSON log to n.
func countFulfilled(t *testing.T, name string, log []byte, n map[string]int) {
	t.Helper()
	for line := range bytes.Lines(log) {
		var rec struct {
			Msg     string `json:"msg"`
			OrderID string `json:"order_id"`
		}
		if err := json.Unmarshal(line, &rec); err != nil {
			if bytes.Contains(line, []byte("order fulfilled")) {
				t.Errorf("%s: unreadable log line %q", filepath.Base(name), line)
			}
			continue
		}
		if rec.Msg == "order fulfilled" {
			n[rec.OrderID]++
		}
	}
}
