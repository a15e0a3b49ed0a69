package catalog

import (
	"sync/atomic"
	"time"
)

// Live is the catalogue the shop sells from now. A file's catalogue is
// fixed for the server's life (Fixed); Stripe's is swapped whole when it is
// read again (Set), so every request sees one catalogue from start to end.
type Live struct {
	cur atomic.Pointer[liveState]
}

type liveState struct {
	cat *Catalog // nil: none yet
	// problem says what is wrong: why there is no catalogue, or why the
	// one served may be out of date. "" when all is well.
	problem string
	since   time.Time // when cat was read
}

// Fixed is a Live that always holds c.
func Fixed(c *Catalog) *Live {
	l := &Live{}
	l.cur.Store(&liveState{cat: c})
	return l
}

// Current returns the catalogue to sell from, or nil when there is none
// (see Problem).
func (l *Live) Current() *Catalog {
	if st := l.cur.Load(); st != nil {
		return st.cat
	}
	return nil
}

// Problem says why there is no catalogue, or why the current one may be out
// of date; "" when there is nothing to say.
func (l *Live) Problem() string {
	if st := l.cur.Load(); st != nil {
		return st.problem
	}
	return "the catalogue has not been read yet"
}

// ReadAt is when the current catalogue was read (zero for a fixed one).
func (l *Live) ReadAt() time.Time {
	if st := l.cur.Load(); st != nil {
		return st.since
	}
	return time.Time{}
}

// Set makes c the catalogue, read at at; problem is what to say about it
// ("" when it is fresh).
func (l *Live) Set(c *Catalog, at time.Time, problem string) {
	l.cur.Store(&liveState{cat: c, problem: problem, since: at})
}

// Fail records why the catalogue could not be read again: the current one
// stays, with the problem said.
func (l *Live) Fail(problem string) {
	for {
		old := l.cur.Load()
		next := &liveState{problem: problem}
		if old != nil {
			next.cat, next.since = old.cat, old.since
		}
		if l.cur.CompareAndSwap(old, next) {
			return
		}
	}
}

// Selling returns the current catalogue, or an empty one when there is
// none, so callers never meet a nil catalogue: every product is unknown.
func (l *Live) Selling() *Catalog {
	if c := l.Current(); c != nil {
		return c
	}
	return &Catalog{byID: map[string]int{}, byPrice: map[string]int{}}
}
