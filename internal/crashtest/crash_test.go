//go:build unix

package crashtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

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

// TestCrashBetweenCommitAndFulfilment leaves an order paid but not fulfilled,
// as a crash after the event's commit, or inside the fulfilment transaction,
// does. The next start of the shop fulfils it, once; the one after finds
// nothing to do.
func TestCrashBetweenCommitAndFulfilment(t *testing.T) {
	skipShort(t)
	bin := buildShop(t)
	tests := []struct {
		name  string
		crash func(t *testing.T, db, dir string, ev event)
	}{
		{"after the event's commit", func(t *testing.T, db, _ string, ev event) {
			// ApplyEvent is the webhook's first transaction; fulfilment is the
			// second, and the process "dies" before it.
			st := openStore(t, db)
			defer st.Close()
			if _, err := st.ApplyEvent(context.Background(), parse(t, ev)); err != nil {
				t.Fatal(err)
			}
		}},
		{"inside the fulfilment transaction", func(t *testing.T, db, dir string, ev event) {
			// The test binary, as a helper process, handles the event and
			// SIGKILLs itself from inside the Fulfiller: it ran, its commit is
			// lost.
			ran := filepath.Join(dir, "fulfiller-ran")
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperKilledInFulfilment$", "-test.count=1")
			cmd.Env = append(os.Environ(), "CRASHTEST_HELPER_DB="+db, "CRASHTEST_HELPER_EVENT="+string(ev.payload), "CRASHTEST_HELPER_RAN="+ran)
			log, err := os.Create(filepath.Join(dir, "helper.stderr"))
			if err != nil {
				t.Fatal(err)
			}
			defer log.Close()
			cmd.Stderr = log
			var exit *exec.ExitError
			if err := cmd.Run(); !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("helper: got %v, want killed by SIGKILL\n%s", err, tail(log.Name()))
			}
			if _, err := os.Stat(ran); err != nil {
				t.Fatalf("the Fulfiller did not run before the kill: %v", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			db := filepath.Join(dir, "shop.db")
			o := seedOrders(t, db, 1)[0]
			ev := newEvent("evt_between", orders.EventSessionCompleted, o)
			tt.crash(t, db, dir, ev)
			if got := readOrder(t, db, o.ID); got.Status != orders.StatusPaid || got.FulfilledAt != nil {
				t.Fatalf("after the crash: got %s, fulfilled at %v; want paid, not fulfilled", got.Status, got.FulfilledAt)
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
		})
	}

	// A Fulfiller that fails or panics (a crash inside the transaction, in
	// process) records nothing; the event stays stored and FulfilPending
	// fulfils the order once. The Fulfiller runs twice: at least once.
	for _, failure := range []struct {
		name string
		fail func() error
	}{
		{"error", func() error { return errors.New("warehouse unreachable") }},
		{"panic", func() error { panic("fulfiller crashed") }},
	} {
		t.Run("fulfiller "+failure.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			db := filepath.Join(t.TempDir(), "shop.db")
			o := seedOrders(t, db, 1)[0]
			st := openStore(t, db)
			defer st.Close()
			var logs bytes.Buffer
			calls := 0
			svc := orders.NewService(st, orders.FulfillerFunc(func(context.Context, orders.Order) error {
				if calls++; calls == 1 {
					return failure.fail()
				}
				return nil
			}), slog.New(slog.NewJSONHandler(&logs, nil)))

			func() {
				defer func() { _ = recover() }() // the panic: the process would have died here
				if _, err := svc.HandleEvent(ctx, parse(t, newEvent("evt_fail", orders.EventSessionCompleted, o))); err != nil {
					t.Errorf("HandleEvent: %v, want the event stored although fulfilment failed", err)
				}
			}()
			if got := readOrder(t, db, o.ID); got.Status != orders.StatusPaid || got.FulfilledAt != nil {
				t.Fatalf("after the failure: got %s, fulfilled at %v; want paid, not fulfilled", got.Status, got.FulfilledAt)
			}
			for _, want := range []int{1, 0} {
				if n, err := svc.FulfilPending(ctx); err != nil || n != want {
					t.Fatalf("FulfilPending: got %d, %v; want %d", n, err, want)
				}
			}
			if got := readOrder(t, db, o.ID); got.FulfilledAt == nil {
				t.Error("fulfilled_at not set after FulfilPending")
			}
			lines := map[string]int{}
			countFulfilled(t, "log", logs.Bytes(), lines)
			if lines[o.ID] != 1 || calls != 2 {
				t.Errorf("got %d \"order fulfilled\" lines and %d Fulfiller calls, want 1 and 2\n%s", lines[o.ID], calls, logs.String())
			}
		})
	}
}

// TestHelperKilledInFulfilment is not a test of its own: it is the helper
// process of TestCrashBetweenCommitAndFulfilment, and does nothing unless
// that test runs it.
func TestHelperKilledInFulfilment(t *testing.T) {
	db := os.Getenv("CRASHTEST_HELPER_DB")
	if db == "" {
		return
	}
	st := openStore(t, db)
	defer st.Close()
	svc := orders.NewService(st, orders.FulfillerFunc(func(context.Context, orders.Order) error {
		if err := os.WriteFile(os.Getenv("CRASHTEST_HELPER_RAN"), nil, 0o600); err != nil {
			return err
		}
		return syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}), slog.New(slog.NewJSONHandler(os.Stderr, nil)))
	ev, err := orders.ParseEvent([]byte(os.Getenv("CRASHTEST_HELPER_EVENT")))
	if err != nil {
		t.Fatal(err)
	}
	_, err = svc.HandleEvent(context.Background(), ev)
	time.Sleep(10 * time.Second) // the SIGKILL is on its way
	t.Fatalf("HandleEvent returned (%v): the helper should have been killed inside the Fulfiller", err)
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

// readOrder reads one order through a store it closes again, so that the
// shop is alone with the file afterwards.
func readOrder(t *testing.T, db, id string) orders.Order {
	t.Helper()
	st := openStore(t, db)
	defer st.Close()
	o, err := st.Order(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func parse(t *testing.T, ev event) orders.Event {
	t.Helper()
	parsed, err := orders.ParseEvent(ev.payload)
	if err != nil {
		t.Fatal(err)
	}
	return parsed
}
