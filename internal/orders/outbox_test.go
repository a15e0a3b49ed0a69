package orders_test

import (
	"testing"
	"testing/fstest"
	"time"

	"github.com/shopcheckout/shop/internal/orders"
)

func TestRetryWait(t *testing.T) {
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
	for i, w := range want {
		if got := orders.RetryWait(i + 1); got != w {
			t.Errorf("RetryWait(%d) = %v, want %v", i+1, got, w)
		}
	}
	if got := orders.RetryWait(1); got > 2*time.Second {
		t.Errorf("the first retry waits %v, want at most 2s", got)
	}
	for _, n := range []int{13, 20, 64, 1000} {
		if got := orders.RetryWait(n); got != orders.MaxRetryWait {
			t.Errorf("RetryWait(%d) = %v, want the cap %v", n, got, orders.MaxRetryWait)
		}
	}
	// Over RetryFor, the schedule makes a few dozen attempts, not thousands.
	var elapsed time.Duration
	attempts := 0
	for elapsed < orders.RetryFor {
		attempts++
		elapsed += orders.RetryWait(attempts)
	}
	if attempts < 70 || attempts > 90 {
		t.Errorf("%d attempts in %v, want about 80 (12 doubling, then hourly)", attempts, orders.RetryFor)
	}
}

func TestLinkKey(t *testing.T) {
	k := orders.LinkKey("0123456789abcdef0123456789abcdef")
	tok := k.Token("ord_a")
	if !k.Valid("ord_a", tok) {
		t.Fatal("the order's own token is refused")
	}
	for name, ok := range map[string]bool{
		"another order":    k.Valid("ord_b", tok),
		"empty token":      k.Valid("ord_a", ""),
		"truncated token":  k.Valid("ord_a", tok[:len(tok)-1]),
		"another key":      orders.LinkKey("fedcba9876543210fedcba9876543210").Valid("ord_a", tok),
		"no key":           orders.LinkKey(nil).Valid("ord_a", orders.LinkKey(nil).Token("ord_a")),
		"token of another": k.Valid("ord_a", k.Token("ord_b")),
	} {
		if ok {
			t.Errorf("%s: accepted, want refused", name)
		}
	}
	if got, want := k.PagePath("ord_a"), "/orders/ord_a?token="+tok; got != want {
		t.Errorf("PagePath = %q, want %q", got, want)
	}
}

func TestReadMigrations(t *testing.T) {
	good := fstest.MapFS{
		"m/0002_b.sql": {Data: []byte("B")},
		"m/0001_a.sql": {Data: []byte("A")},
		"m/README":     {Data: []byte("not a migration")},
	}
	list, err := orders.ReadMigrations(good, "m/*.sql")
	if err != nil || len(list) != 2 || list[0].Version != 1 || list[1].SQL != "B" || list[0].Name != "0001_a.sql" {
		t.Fatalf("ReadMigrations = %+v, %v; want 0001_a then 0002_b", list, err)
	}
	for name, fsys := range map[string]fstest.MapFS{
		"no version":     {"m/first.sql": {Data: []byte("x")}},
		"shared version": {"m/0001_a.sql": {Data: []byte("x")}, "m/01_b.sql": {Data: []byte("y")}},
		"version zero":   {"m/0000_a.sql": {Data: []byte("x")}},
	} {
		if _, err := orders.ReadMigrations(fsys, "m/*.sql"); err == nil {
			t.Errorf("%s: got nil error, want one", name)
		}
	}
}
