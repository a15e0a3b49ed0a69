// Package ratelimit keeps card testers from scripting Checkout Session
// creation: a token bucket per client address and one shared by everybody,
// set below Stripe's own API rate limits.
//
// The state is in memory, so each shop instance limits on its own: with N
// instances behind a load balancer a client gets up to N times the
// per-client rate and the shop up to N times the global cap. Set the global
// cap to Stripe's limit divided by N.
package ratelimit

import (
	"math"
	"sync"
	"time"
)

// Config sets the limits. A zero rate disables that limit.
type Config struct {
	PerClient      float64 // tokens per second for each client
	PerClientBurst int
	Global         float64 // tokens per second for everybody together
	GlobalBurst    int
	MaxClients     int           // clients tracked at once (default 100,000)
	IdleAfter      time.Duration // forget a client idle this long (default 10m)
	Now            func() time.Time
}

// Limiter decides whether a request may go ahead. It is safe for concurrent
// use.
type Limiter struct {
	cfg     Config
	mu      sync.Mutex
	global  bucket
	clients map[string]*bucket
	sweep   time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

// New builds a Limiter.
func New(cfg Config) *Limiter {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxClients == 0 {
		cfg.MaxClients = 100_000
	}
	if cfg.IdleAfter == 0 {
		cfg.IdleAfter = 10 * time.Minute
	}
	now := cfg.Now()
	return &Limiter{
		cfg:     cfg,
		global:  bucket{tokens: float64(cfg.GlobalBurst), last: now},
		clients: make(map[string]*bucket),
		sweep:   now,
	}
}

// Allow takes a token for client from its bucket and from the global one.
// When either is empty it takes nothing and says how long to wait.
func (l *Limiter) Allow(client string) (ok bool, retryAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.cfg.Now()
	l.forgetIdle(now)

	var cb *bucket
	if l.cfg.PerClient > 0 {
		cb = l.clients[client]
		if cb == nil {
			cb = &bucket{tokens: float64(l.cfg.PerClientBurst), last: now}
			l.clients[client] = cb
		}
		cb.refill(now, l.cfg.PerClient, l.cfg.PerClientBurst)
		if cb.tokens < 1 {
			return false, wait(cb.tokens, l.cfg.PerClient)
		}
	}
	if l.cfg.Global > 0 {
		l.global.refill(now, l.cfg.Global, l.cfg.GlobalBurst)
		if l.global.tokens < 1 {
			return false, wait(l.global.tokens, l.cfg.Global)
		}
		l.global.tokens--
	}
	if cb != nil {
		cb.tokens--
	}
	return true, 0
}

func (b *bucket) refill(now time.Time, rate float64, burst int) {
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = math.Min(float64(burst), b.tokens+dt*rate)
	}
	b.last = now
}

// wait is how long until the bucket holds one token, rounded up to a second
// as Retry-After counts whole seconds.
func wait(tokens, rate float64) time.Duration {
	secs := math.Ceil((1 - tokens) / rate)
	return time.Duration(math.Max(secs, 1)) * time.Second
}

// forgetIdle drops clients whose buckets have refilled, at most once a
// minute, and everyone when the map is full, so memory stays bounded.
func (l *Limiter) forgetIdle(now time.Time) {
	if len(l.clients) < l.cfg.MaxClients && now.Sub(l.sweep) < time.Minute {
		return
	}
	l.sweep = now
	for k, b := range l.clients {
		if now.Sub(b.last) >= l.cfg.IdleAfter {
			delete(l.clients, k)
		}
	}
	if len(l.clients) >= l.cfg.MaxClients {
		clear(l.clients)
	}
}

// Clients is how many clients are tracked; for tests and metrics.
func (l *Limiter) Clients() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.clients)
}
