// Package ratelimit keeps card testers from scripting Checkout Session
// creation, and password guessers from scripting the admin login: a token
// bucket (golang.org/x/time/rate) per client and one shared by everybody,
// set below Stripe's own API rate limits.
//
// A client is an address, except that IPv6 addresses are grouped by their
// /64: one subscriber usually holds a whole /64 and can rotate through it
// at will, so a bucket per IPv6 address would bound nothing.
//
// The state is in memory, so each shop instance limits on its own: with N
// instances behind a load balancer a client gets up to N times the
// per-client rate and the shop up to N times the global cap. Set the global
// cap to Stripe's limit divided by N.
package ratelimit

import (
	"container/list"
	"math"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Config sets the limits. A zero rate disables that limit; a burst below 1
// counts as 1.
type Config struct {
	PerClient      float64 // tokens per second for each client
	PerClientBurst int
	Global         float64 // tokens per second for everybody together
	GlobalBurst    int
	MaxClients     int // clients tracked at once (default 100,000)
	Now            func() time.Time
}

// Limiter decides whether a request may go ahead. It is safe for concurrent
// use.
//
// Memory is bounded by MaxClients. A client whose bucket has refilled is
// forgotten, since a fresh bucket is the same thing; when the table is full
// of clients still being limited, the one seen least recently is evicted,
// so an attacker who keeps hammering keeps their empty bucket.
type Limiter struct {
	cfg     Config
	mu      sync.Mutex
	global  *rate.Limiter            // nil: no global limit
	clients map[string]*list.Element // key -> element of lru
	lru     *list.List               // of *client; front: seen most recently
}

type client struct {
	key    string
	bucket *rate.Limiter
}

// New builds a Limiter.
func New(cfg Config) *Limiter {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxClients <= 0 {
		cfg.MaxClients = 100_000
	}
	cfg.PerClientBurst = max(cfg.PerClientBurst, 1)
	cfg.GlobalBurst = max(cfg.GlobalBurst, 1)
	l := &Limiter{cfg: cfg, clients: make(map[string]*list.Element), lru: list.New()}
	if cfg.Global > 0 {
		l.global = rate.NewLimiter(rate.Limit(cfg.Global), cfg.GlobalBurst)
	}
	return l
}

// Allow takes a token for addr, a client's IP address, from its bucket and
// from the global one. When either is empty it takes nothing and says how
// long to wait; a request the global limit refuses leaves no trace of the
// client behind.
func (l *Limiter) Allow(addr string) (ok bool, retryAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.cfg.Now()
	k := key(addr)
	if ok, retry := l.check(k, now); !ok {
		return false, retry
	}
	l.charge(k, now)
	return true, 0
}

// Check says what Allow would say, taking nothing. With Charge it limits
// work whose cost is known only once it is done: check first, do the work,
// and charge only if it turned out to count (a failed login, say).
func (l *Limiter) Check(addr string) (ok bool, retryAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.check(key(addr), l.cfg.Now())
}

// Charge takes a token for addr from its bucket and from the global one,
// even when that leaves them in debt: the work is done already, and
// requests that passed Check together still pay, each one lengthening the
// wait.
func (l *Limiter) Charge(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.charge(key(addr), l.cfg.Now())
}

// check reports whether both buckets hold a token, and if not, how long
// until they do. It creates no client, but counts as seeing one it knows.
func (l *Limiter) check(k string, now time.Time) (bool, time.Duration) {
	var retry time.Duration
	if l.global != nil {
		if t := l.global.TokensAt(now); t < 1 {
			retry = wait(t, l.cfg.Global)
		}
	}
	if e := l.clients[k]; e != nil {
		l.lru.MoveToFront(e)
		if t := e.Value.(*client).bucket.TokensAt(now); t < 1 {
			retry = max(retry, wait(t, l.cfg.PerClient))
		}
	}
	return retry == 0, retry
}

func (l *Limiter) charge(k string, now time.Time) {
	if l.global != nil {
		l.global.ReserveN(now, 1)
	}
	if l.cfg.PerClient > 0 {
		l.client(k, now).ReserveN(now, 1)
	}
}

// client is k's bucket, made if need be. Making one first forgets the
// least recently seen clients whose buckets have refilled, then, if the
// table is still full, evicts the least recently seen: O(1) amortised.
func (l *Limiter) client(k string, now time.Time) *rate.Limiter {
	if e := l.clients[k]; e != nil {
		l.lru.MoveToFront(e)
		return e.Value.(*client).bucket
	}
	for e := l.lru.Back(); e != nil; e = l.lru.Back() {
		c := e.Value.(*client)
		if len(l.clients) < l.cfg.MaxClients && c.bucket.TokensAt(now) < float64(l.cfg.PerClientBurst) {
			break
		}
		l.lru.Remove(e)
		delete(l.clients, c.key)
	}
	c := &client{key: k, bucket: rate.NewLimiter(rate.Limit(l.cfg.PerClient), l.cfg.PerClientBurst)}
	l.clients[k] = l.lru.PushFront(c)
	return c.bucket
}

// key is the bucket an address counts against: an IPv4 address (IPv4-mapped
// IPv6 included) is its own, an IPv6 address shares its /64's. Text that is
// no address is its own key.
func key(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	return netip.PrefixFrom(a, 64).Masked().String()
}

// wait is how long until a bucket holding tokens at rate per second holds
// one, rounded up to a second as Retry-After counts whole seconds.
func wait(tokens, rate float64) time.Duration {
	secs := math.Ceil((1 - tokens) / rate)
	return time.Duration(max(secs, 1)) * time.Second
}

// Clients is how many clients are tracked; for tests and metrics.
func (l *Limiter) Clients() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.clients)
}
