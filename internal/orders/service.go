package orders

import (
	"context"
	"fmt"
	"log/slog"
)

// Fulfiller delivers a paid order: ships it, grants access, sends the email.
// The Service calls it inside the store transaction that records
// fulfilled_at, so however many paths race to fulfil an order, one call
// wins. If it returns an error nothing is recorded and a later attempt
// retries. If the process dies after Fulfill returns but before the commit,
// the restart runs it again: delivery is at least once, so a Fulfiller with
// outside effects should use the order id as its idempotency key.
type Fulfiller interface {
	Fulfill(ctx context.Context, o Order) error
}

// FulfillerFunc adapts a function to Fulfiller.
type FulfillerFunc func(ctx context.Context, o Order) error

// Fulfill calls f.
func (f FulfillerFunc) Fulfill(ctx context.Context, o Order) error { return f(ctx, o) }

// RecordOnly is the default Fulfiller: it has no outside effect, so
// fulfilment is the fulfilled_at the store records (exactly once, in the
// same transaction) and the "order fulfilled" line the Service logs after
// the commit.
type RecordOnly struct{}

// Fulfill does nothing: recording is the store's part, logging the Service's.
func (RecordOnly) Fulfill(context.Context, Order) error { return nil }

// Service applies what Stripe reports to orders and fulfils paid ones. Both
// the webhook and the success page go through it, so whichever arrives first
// does the work and the other finds nothing left to do.
type Service struct {
	store       Store
	fulfiller   Fulfiller
	log         *slog.Logger
	onFulfilled func(Order)
}

// ServiceOption configures NewService.
type ServiceOption func(*Service)

// OnFulfilled has f called after each fulfilment commits (for metrics).
func OnFulfilled(f func(Order)) ServiceOption {
	return func(s *Service) { s.onFulfilled = f }
}

// NewService builds a Service. A nil fulfiller means RecordOnly.
func NewService(store Store, fulfiller Fulfiller, log *slog.Logger, opts ...ServiceOption) *Service {
	if fulfiller == nil {
		fulfiller = RecordOnly{}
	}
	s := &Service{store: store, fulfiller: fulfiller, log: log, onFulfilled: func(Order) {}}
	for _, o := range opts {
		o(s)
	}
	return s
}

// HandleEvent stores and applies a verified event, then fulfils its order if
// it is paid. The event is durable once HandleEvent returns nil; a fulfilment
// failure after that is logged and retried by FulfilPending, not returned, so
// Stripe does not redeliver an event that was already applied.
func (s *Service) HandleEvent(ctx context.Context, ev Event) (ApplyResult, error) {
	res, err := s.store.ApplyEvent(ctx, ev)
	if err != nil {
		return res, fmt.Errorf("apply event %s: %w", ev.ID, err)
	}
	switch {
	case res.Duplicate:
		s.log.LogAttrs(ctx, slog.LevelInfo, "duplicate event ignored", slog.String("event_id", ev.ID), slog.String("type", ev.Type))
	case !res.Matched && Handled(ev.Type):
		s.log.LogAttrs(ctx, slog.LevelWarn, "event for a session this shop did not create",
			slog.String("event_id", ev.ID), slog.String("type", ev.Type), slog.String("session_id", ev.Session.ID))
	case res.Matched:
		s.logChange(ctx, res.Previous, res.Order, slog.String("event_id", ev.ID), slog.String("type", ev.Type))
		s.fulfil(ctx, res.Order) // res.Order stays as the event left it: the webhook needs no more
	}
	return res, nil
}

// Reconcile applies a direct read of a Checkout Session (the success page's)
// to its order and fulfils it if it is paid.
func (s *Service) Reconcile(ctx context.Context, sess Session) (Order, error) {
	o, err := s.store.Reconcile(ctx, sess)
	if err != nil {
		return o, fmt.Errorf("reconcile session: %w", err)
	}
	s.fulfil(ctx, o)
	return s.reload(ctx, o), nil
}

// FulfilPending fulfils paid orders left unfulfilled, such as by a crash
// between an event's commit and its fulfilment. It returns how many it did.
func (s *Service) FulfilPending(ctx context.Context) (int, error) {
	ids, err := s.store.Unfulfilled(ctx)
	if err != nil {
		return 0, fmt.Errorf("list unfulfilled orders: %w", err)
	}
	n := 0
	for _, id := range ids {
		done, err := s.fulfilID(ctx, id)
		if err != nil {
			return n, err
		}
		if done {
			n++
		}
	}
	return n, nil
}

func (s *Service) fulfil(ctx context.Context, o Order) {
	if o.Status != StatusPaid || o.FulfilledAt != nil {
		return
	}
	if _, err := s.fulfilID(ctx, o.ID); err != nil {
		s.log.LogAttrs(ctx, slog.LevelError, "fulfilment failed; will retry", slog.String("order_id", o.ID), slog.Any("error", err))
	}
}

// fulfilID runs the Fulfiller in the store's fulfilment transaction and,
// once that has committed, logs "order fulfilled": one line per order, never
// two, since only the call that recorded fulfilled_at logs it.
func (s *Service) fulfilID(ctx context.Context, id string) (bool, error) {
	var fulfilled Order
	done, err := s.store.Fulfil(ctx, id, func(ctx context.Context, o Order) error {
		fulfilled = o
		return s.fulfiller.Fulfill(ctx, o)
	})
	if err != nil {
		return false, fmt.Errorf("fulfil order %s: %w", id, err)
	}
	if done {
		s.log.LogAttrs(ctx, slog.LevelInfo, "order fulfilled",
			slog.String("order_id", fulfilled.ID),
			slog.Int64("amount", fulfilled.AmountTotal),
			slog.String("currency", fulfilled.Currency),
			slog.String("email", fulfilled.Email),
			slog.String("session_id", fulfilled.SessionID),
		)
		s.onFulfilled(fulfilled)
	}
	return done, nil
}

// reload returns the order as stored now, or o if that fails.
func (s *Service) reload(ctx context.Context, o Order) Order {
	if fresh, err := s.store.Order(ctx, o.ID); err == nil {
		return fresh
	}
	return o
}

func (s *Service) logChange(ctx context.Context, from Status, o Order, attrs ...slog.Attr) {
	if from == o.Status {
		return
	}
	level := slog.LevelInfo
	if o.Status == StatusNeedsReview {
		level = slog.LevelWarn
		attrs = append(attrs, slog.String("review", o.Review))
	}
	attrs = append(attrs, slog.String("order_id", o.ID), slog.String("from", string(from)), slog.String("to", string(o.Status)))
	s.log.LogAttrs(ctx, level, "order status changed", attrs...)
}
