package orders

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// HealthStore wraps a Store and remembers whether its latest write failed.
// A read-only database, a full disk or a lock held past the busy timeout only
// show when something is written, so /healthz asks this as well as Ping.
type HealthStore struct {
	Store
	onError func(op string)
	mu      sync.Mutex
	lastErr error
}

// NewHealthStore wraps s; onError, if not nil, is told the operation of
// every failed write (for metrics).
func NewHealthStore(s Store, onError func(op string)) *HealthStore {
	if onError == nil {
		onError = func(string) {}
	}
	return &HealthStore{Store: s, onError: onError}
}

// WriteErr returns the error of the latest write, or nil if it succeeded.
func (h *HealthStore) WriteErr() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lastErr
}

// note records err, unless it says nothing about the store's health.
func (h *HealthStore) note(op string, err error) error {
	if err == nil {
		h.mu.Lock()
		h.lastErr = nil
		h.mu.Unlock()
		return nil
	}
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrDuplicate) || errors.Is(err, context.Canceled) || errors.Is(err, errFulfiller) {
		return err
	}
	h.mu.Lock()
	h.lastErr = err
	h.mu.Unlock()
	h.onError(op)
	return err
}

// errFulfiller marks a failure of the Fulfiller rather than of the store.
var errFulfiller = errors.New("fulfiller failed")

// CreateOrder records the outcome of the store's CreateOrder.
func (h *HealthStore) CreateOrder(ctx context.Context, o Order) error {
	return h.note("create_order", h.Store.CreateOrder(ctx, o))
}

// SetSession records the outcome of the store's SetSession.
func (h *HealthStore) SetSession(ctx context.Context, orderID, sessionID string) error {
	return h.note("set_session", h.Store.SetSession(ctx, orderID, sessionID))
}

// ApplyEvent records the outcome of the store's ApplyEvent.
func (h *HealthStore) ApplyEvent(ctx context.Context, ev Event) (ApplyResult, error) {
	res, err := h.Store.ApplyEvent(ctx, ev)
	return res, h.note("apply_event", err)
}

// Reconcile records the outcome of the store's Reconcile.
func (h *HealthStore) Reconcile(ctx context.Context, s Session) (Order, error) {
	o, err := h.Store.Reconcile(ctx, s)
	return o, h.note("reconcile", err)
}

// Fulfil records the outcome of the store's Fulfil; a failing fn is not the
// store's fault.
func (h *HealthStore) Fulfil(ctx context.Context, orderID string, fn func(context.Context, Order) error) (bool, error) {
	done, err := h.Store.Fulfil(ctx, orderID, func(ctx context.Context, o Order) error {
		if err := fn(ctx, o); err != nil {
			return fmt.Errorf("%w: %w", errFulfiller, err)
		}
		return nil
	})
	return done, h.note("fulfil", err)
}
