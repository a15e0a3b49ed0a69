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
	}
	if n := l.Clients(); n > 100 {
		t.Errorf("clients: got %d, want at most 100", n)
	}
	c.advance(11 * time.Minute)
	l.Allow("x")
	if n := l.Clients(); n != 1 {
		t.Errorf("after idle sweep: got %d clients, want 1", n)
	}
}
