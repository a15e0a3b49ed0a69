package postgres

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestLease(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dbURL := newSchema(t)
	a, b := openURL(t, dbURL), openURL(t, dbURL)

	if ok, err := a.TryLease(ctx, "reconcile", "a", time.Minute); err != nil || !ok {
		t.Fatalf("a takes a free lease: got %v %v, want true", ok, err)
	}
	if ok, err := b.TryLease(ctx, "reconcile", "b", time.Minute); err != nil || ok {
		t.Fatalf("b while a holds it: got %v %v, want false", ok, err)
	}
	if ok, err := a.TryLease(ctx, "reconcile", "a", time.Minute); err != nil || !ok {
		t.Fatalf("a renews: got %v %v, want true", ok, err)
	}
	if ok, err := b.TryLease(ctx, "other", "b", time.Minute); err != nil || !ok {
		t.Fatalf("another lease: got %v %v, want true", ok, err)
	}
	if ok, err := a.TryLease(ctx, "short", "a", time.Millisecond); err != nil || !ok {
		t.Fatal(ok, err)
	}
	time.Sleep(20 * time.Millisecond)
	if ok, err := b.TryLease(ctx, "short", "b", time.Minute); err != nil || !ok {
		t.Fatalf("b after a's lease expired: got %v %v, want true", ok, err)
	}

	// Many instances racing for one lease: exactly one wins.
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := a
			if i%2 == 1 {
				s = b
			}
			ok, err := s.TryLease(ctx, "race", string(rune('a'+i)), time.Minute)
			if err != nil {
				t.Error(err)
			}
			if ok {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := wins.Load(); n != 1 {
		t.Errorf("winners: got %d, want 1", n)
	}
}
