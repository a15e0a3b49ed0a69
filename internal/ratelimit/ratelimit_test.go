package ratelimit

import (
	"fmt"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestPerClient(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := New(Config{PerClient: 1.0 / 6, PerClientBurst: 3, Now: c.now}) // 10 a minute, burst 3
	for i := range 3 {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatalf("request %d: refused, want allowed (burst 3)", i+1)
		}
	}
	ok, retry := l.Allow("a")
	if ok || retry != 6*time.Second {
		t.Fatalf("4th request: got ok=%v retry=%v, want refused, retry 6s", ok, retry)
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Error("another client was refused")
	}
	c.advance(6 * time.Second)
	if ok, _ := l.Allow("a"); !ok {
		t.Error("after the wait: refused, want allowed")
	}
	if ok, _ := l.Allow("a"); ok {
		t.Error("second after the wait: allowed, want refused")
	}
}

func TestGlobal(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := New(Config{PerClient: 100, PerClientBurst: 100, Global: 2, GlobalBurst: 4, Now: c.now})
	allowed := 0
	for i := range 20 {
		if ok, _ := l.Allow(fmt.Sprint("client", i)); ok {
			allowed++
		}
	}
	if allowed != 4 {
		t.Errorf("allowed: got %d, want 4 (the global burst)", allowed)
	}
	_, retry := l.Allow("late")
	if retry != time.Second {
		t.Errorf("retry: got %v, want 1s", retry)
	}
	c.advance(time.Second)
	allowed = 0
	for i := range 20 {
		if ok, _ := l.Allow(fmt.Sprint("again", i)); ok {
			allowed++
		}
	}
	if allowed != 2 {
		t.Errorf("after 1s: got %d, want 2", allowed)
	}
}

func TestRefusedRequestCostsNothing(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := New(Config{PerClient: 1, PerClientBurst: 1, Global: 1, GlobalBurst: 1, Now: c.now})
	l.Allow("a")
	for range 5 {
		l.Allow("a") // refused by the client's bucket: must not drain the global one
	}
	c.advance(time.Second)
	if ok, _ := l.Allow("b"); !ok {
		t.Error("global bucket drained by refused requests")
	}
}

func TestDisabled(t *testing.T) {
	l := New(Config{})
	for range 1000 {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatal("refused with limits off")
		}
	}
}

func TestMemoryBounded(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := New(Config{PerClient: 1, PerClientBurst: 1, MaxClients: 100, Now: c.now})
	for i := range 1000 {
		l.Allow(fmt.Sprint(i))
		if n := l.Clients(); n > 100 {
			t.Fatalf("after %d clients: got %d tracked, want at most 100", i+1, n)
		}
	}
	if n := l.Clients(); n != 100 {
		t.Errorf("clients: got %d, want 100 (the cap)", n)
	}
	c.advance(time.Second) // every bucket has refilled: forgetting them changes nothing
	l.Allow("x")
	if n := l.Clients(); n != 1 {
		t.Errorf("after the buckets refilled: got %d clients, want 1", n)
	}
}

func TestKey(t *testing.T) {
	tests := []struct{ addr, want string }{
		{"203.0.113.1", "203.0.113.1"},
		{"::ffff:203.0.113.1", "203.0.113.1"},
		{"2001:db8:1:2::1", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"},
		{"2001:db8:1:3::1", "2001:db8:1:3::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"not an address", "not an address"},
	}
	for _, tt := range tests {
		if got := key(tt.addr); got != tt.want {
			t.Errorf("key(%q): got %q, want %q", tt.addr, got, tt.want)
		}
	}
}

func TestClientsAreIPv4AddressesAndIPv6Slash64s(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := New(Config{PerClient: 1.0 / 60, PerClientBurst: 1, Now: c.now})
	tests := []struct {
		addr string
		want bool
	}{
		{"2001:db8:1:2::1", true},
		{"2001:db8:1:2:abcd::beef", false}, // same /64: same bucket
		{"2001:db8:1:3::1", true},          // next /64: its own
		{"203.0.113.1", true},
		{"203.0.113.2", true}, // IPv4: one bucket per address
		{"::ffff:203.0.113.1", false},
		{"203.0.113.1", false},
	}
	for _, tt := range tests {
		if ok, _ := l.Allow(tt.addr); ok != tt.want {
			t.Errorf("Allow(%s): got %v, want %v", tt.addr, ok, tt.want)
		}
	}
	if n := l.Clients(); n != 4 {
		t.Errorf("clients: got %d, want 4", n)
	}
}

func TestGlobalRefusalAddsNoClient(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := New(Config{PerClient: 1, PerClientBurst: 1, Global: 1, GlobalBurst: 1, Now: c.now})
	if ok, _ := l.Allow("203.0.113.1"); !ok {
		t.Fatal("first request refused")
	}
	for i := range 100 {
		if ok, _ := l.Allow(fmt.Sprintf("198.51.100.%d", i)); ok {
			t.Fatalf("request %d over the global cap: allowed, want refused", i)
		}
	}
	if n := l.Clients(); n != 1 {
		t.Errorf("clients: got %d, want 1 (refused by the global limit, the others leave no entry)", n)
	}
}

func TestEvictsLeastRecentlySeen(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := New(Config{PerClient: 1.0 / 60, PerClientBurst: 1, MaxClients: 3, Now: c.now})
	for _, a := range []string{"a", "b", "c"} {
		l.Allow(a) // each bucket is now empty
	}
	c.advance(time.Second)
	l.Allow("a") // refused, but seen: b is now the least recently seen
	if ok, _ := l.Allow("d"); !ok {
		t.Fatal("new client d refused")
	}
	if n := l.Clients(); n != 3 {
		t.Errorf("clients: got %d, want 3 (the cap)", n)
	}
	for _, a := range []string{"a", "c", "d"} {
		if ok, _ := l.Allow(a); ok {
			t.Errorf("%s: allowed, want refused (its empty bucket kept)", a)
		}
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Error("b: refused, want allowed (evicted, so a fresh bucket)")
	}
	if n := l.Clients(); n != 3 {
		t.Errorf("clients: got %d, want 3 (the cap)", n)
	}
}

func TestCheckAndCharge(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := New(Config{PerClient: 1.0 / 6, PerClientBurst: 2, Now: c.now})
	if ok, _ := l.Check("a"); !ok {
		t.Fatal("Check on a new client: refused, want ok")
	}
	if n := l.Clients(); n != 0 {
		t.Errorf("after Check: got %d clients, want 0", n)
	}
	l.Charge("a")
	if ok, _ := l.Check("a"); !ok {
		t.Fatal("after one charge of two: refused, want ok")
	}
	l.Charge("a")
	l.Charge("a") // passed Check with the others: still pays, in debt
	ok, retry := l.Check("a")
	if ok || retry != 12*time.Second {
		t.Errorf("in debt by one: got ok=%v retry=%v, want refused, retry 12s", ok, retry)
	}
	c.advance(12 * time.Second)
	if ok, _ := l.Check("a"); !ok {
		t.Error("after the debt is repaid: refused, want ok")
	}
	if ok, _ := l.Check("b"); !ok {
		t.Error("another client: refused, want ok")
	}
}
