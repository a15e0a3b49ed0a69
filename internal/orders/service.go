package orders

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/shopcheckout/shop/internal/money"
)

// Service is the one door through which anything writes an order: placing
// it at checkout, recording its Checkout Session, applying what Stripe
// reports (an event or a direct read of the session), fulfilling it, and the
// delivery state of its notifications. Every rule about what a write does
// lives here, once; the stores only run the transactions it describes.
//
// Fulfilling a paid order means recording fulfilled_at and queuing its
// notifications in the same transaction that records the payment, then,
// once that has committed, logging one "order fulfilled" line. The webhook,
// the success page and the periodic sweep all go through here, so whichever
// comes first does the work and the others find nothing left to do.
type Service struct {
	store          Store
	log            *slog.Logger
	now            func() time.Time
	channels       Channels
	onFulfilled    func(Order)
	onQueued       func()
	onStoreError   func(op string)
	onAlarm        func(Alarm)
	live           bool
	sessionTTL     time.Duration
	processingHold time.Duration
	writeTimeout   time.Duration
	lineItems      LineItems
	priceProduct   func(priceID string) (productID string, ok bool)

	mu        sync.Mutex
	lastWrite error // the latest write's store failure, or nil
}

// ServiceOption configures NewService.
type ServiceOption func(*Service)

// WithClock sets the clock of the times the Service records (default
// time.Now).
func WithClock(now func() time.Time) ServiceOption { return func(s *Service) { s.now = now } }

// WithChannels says which notifications a fulfilment queues (default none).
func WithChannels(c Channels) ServiceOption { return func(s *Service) { s.channels = c } }

// OnFulfilled has f called after each fulfilment commits (for metrics).
func OnFulfilled(f func(Order)) ServiceOption { return func(s *Service) { s.onFulfilled = f } }

// OnQueued has f called after every commit that queued or re-queued
// notifications, so a dispatcher can deliver them at once. f must not block.
func OnQueued(f func()) ServiceOption { return func(s *Service) { s.onQueued = f } }

// OnAlarm has f told of every alarm raised, after its commit (for metrics).
func OnAlarm(f func(Alarm)) ServiceOption { return func(s *Service) { s.onAlarm = f } }

// WithSessionTTL says how long a Checkout Session stays open (default 30
// minutes): a pending order is re-used for a repeated request only that
// long after it was placed, while its session can still be paid.
func WithSessionTTL(d time.Duration) ServiceOption { return func(s *Service) { s.sessionTTL = d } }

// WithProcessingHold says how long a delayed payment keeps its order's hold
// on stock (PROCESSING_HOLD, default 14 days).
func WithProcessingHold(d time.Duration) ServiceOption {
	return func(s *Service) { s.processingHold = d }
}

// WithLiveMode says the shop runs with live keys: events from test mode are
// then stored and never applied (and the reverse without it).
func WithLiveMode(live bool) ServiceOption { return func(s *Service) { s.live = live } }

// OnStoreError has f told the operation of every write the store failed
// (for metrics).
func OnStoreError(f func(op string)) ServiceOption { return func(s *Service) { s.onStoreError = f } }

// NewService builds a Service over store.
func NewService(store Store, log *slog.Logger, opts ...ServiceOption) *Service {
	s := &Service{
		store: store, log: log, now: time.Now,
		onFulfilled: func(Order) {}, onQueued: func() {}, onStoreError: func(string) {}, onAlarm: func(Alarm) {},
		writeTimeout: 30 * time.Second, sessionTTL: 30 * time.Minute, processingHold: DefaultProcessingHold,
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// ErrRule marks a write refused by a rule of the shop (an order that
// already has another session, a notification that is not dead), as opposed
// to a store that failed.
var ErrRule = errors.New("refused")

func ruleErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrRule, fmt.Sprintf(format, args...))
}

// effects is what a write leaves to do once it has committed.
type effects struct {
	changes   []statusChange
	fulfilled []Order
	queued    int
	alarms    []Alarm
}

type statusChange struct {
	from  Status
	order Order
	attrs []slog.Attr
}

// write runs fn in one store transaction. The transaction does not end
// with the caller's context: once a write has begun it runs to its commit
// (a shopper who closes the tab, or Stripe dropping the connection, must not
// leave half a fulfilment), bounded by the write timeout. What follows the
// commit (log lines, hooks, waking the dispatcher) runs here too, never on
// the request's goroutine's terms.
func (s *Service) write(ctx context.Context, op string, fn func(ctx context.Context, tx Tx, fx *effects) error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.writeTimeout)
	defer cancel()
	var fx effects
	err := s.store.Write(ctx, func(ctx context.Context, tx Tx) error {
		fx = effects{}
		return fn(ctx, tx, &fx)
	})
	s.noteWrite(op, err)
	if err != nil {
		return err
	}
	s.afterCommit(ctx, fx)
	return nil
}

// noteWrite remembers whether the store failed the latest write.
func (s *Service) noteWrite(op string, err error) {
	if err != nil && (errors.Is(err, ErrNotFound) || errors.Is(err, ErrDuplicate) || errors.Is(err, ErrRule)) {
		return // an answer, not a failure
	}
	s.mu.Lock()
	s.lastWrite = err
	s.mu.Unlock()
	if err != nil {
		s.onStoreError(op)
	}
}

// What Health reports.
var (
	ErrStoreDown     = errors.New("store does not answer")
	ErrWritesFailing = errors.New("store writes failing")
)

// Health reports whether the store answers (else ErrStoreDown) and took the
// latest write (else ErrWritesFailing). A read-only database, a full disk
// or a lock held past the busy timeout only show when something is written.
func (s *Service) Health(ctx context.Context) error {
	if err := s.store.Ping(ctx); err != nil {
		return fmt.Errorf("%w: %w", ErrStoreDown, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lastWrite != nil {
		return fmt.Errorf("%w: %w", ErrWritesFailing, s.lastWrite)
	}
	return nil
}

func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

func (s *Service) afterCommit(ctx context.Context, fx effects) {
	for _, c := range fx.changes {
		s.logChange(ctx, c.from, c.order, c.attrs...)
	}
	for _, o := range fx.fulfilled {
		s.log.LogAttrs(ctx, slog.LevelInfo, "order fulfilled",
			slog.String("order_id", o.ID),
			slog.Int64("amount", o.AmountTotal),
			slog.String("currency", o.Currency),
			slog.String("email", o.Email),
			slog.String("session_id", o.SessionID),
		)
		s.onFulfilled(o)
	}
	if fx.queued > 0 {
		s.onQueued()
	}
	for _, a := range fx.alarms {
		s.onAlarm(a)
	}
}

// Placement is a request to place an order.
type Placement struct {
	// RequestKey names the request: the same key names the same order,
	// which is reused while it is pending, so a double submit places one
	// order. It must hold a secret the server handed out (a form token).
	// "" places a fresh order every time.
	RequestKey string
	Items      []Item
	Currency   string
}

// PlaceOrder records a pending order for p, priced from its items, or finds
// the pending order the same request placed before (reused reports which).
// An order the same request placed that went on (paid, expired...), or
// whose session can no longer be open, is not reused: the request is a new
// purchase.
func (s *Service) PlaceOrder(ctx context.Context, p Placement) (o Order, reused bool, err error) {
	now := s.clock()
	o = Order{ID: NewID(), Status: StatusPending, Payment: StatusPending, Items: p.Items, Currency: p.Currency, CreatedAt: now, UpdatedAt: now,
		Source: SourceShop}
	for _, it := range p.Items {
		if it.Quantity > 0 && it.UnitAmount > (math.MaxInt64-o.AmountTotal)/it.Quantity {
			return Order{}, false, ruleErr("order amount overflows")
		}
		o.AmountTotal += it.UnitAmount * it.Quantity
	}
	if p.RequestKey != "" {
		o.ID = IDFor(p.RequestKey)
	}
	if err := o.Validate(); err != nil {
		return Order{}, false, ruleErr("%v", err)
	}
	err = s.write(ctx, "create_order", func(ctx context.Context, tx Tx, _ *effects) error {
		reused = false
		placed := o
		err := tx.InsertOrder(ctx, placed)
		if errors.Is(err, ErrDuplicate) {
			existing, lookErr := tx.Order(ctx, placed.ID)
			if lookErr != nil {
				return lookErr
			}
			if existing.Status == StatusPending && now.Before(existing.CreatedAt.Add(s.sessionTTL)) {
				o, reused = existing, true
				return nil
			}
			placed.ID = NewID() // the earlier order went on: a new purchase
			err = tx.InsertOrder(ctx, placed)
		}
		if err != nil {
			return err
		}
		// The order's lines are held from the stock in the same write, for
		// as long as its session can be paid; short of stock, the write
		// rolls back and no order is placed.
		if err := hold(ctx, tx, &placed, SessionExpiry(placed.CreatedAt, s.sessionTTL)); err != nil {
			return err
		}
		if placed.HoldState != HoldNone {
			if err := tx.UpdateOrder(ctx, &placed); err != nil {
				return err
			}
		}
		o = placed
		return nil
	})
	if err != nil {
		return Order{}, false, fmt.Errorf("place order: %w", err)
	}
	if reused {
		s.log.LogAttrs(ctx, slog.LevelInfo, "repeated checkout request: reusing the pending order", slog.String("order_id", o.ID))
	}
	return o, reused, nil
}

// AttachSession records the Checkout Session created for an order. Recording
// the session it has is a no-op; another one is refused.
func (s *Service) AttachSession(ctx context.Context, orderID, sessionID string) error {
	if sessionID == "" {
		return ruleErr("empty session id")
	}
	err := s.write(ctx, "set_session", func(ctx context.Context, tx Tx, _ *effects) error {
		o, err := tx.Order(ctx, orderID)
		switch {
		case err != nil:
			return err
		case o.SessionID == sessionID:
			return nil
		case o.SessionID != "":
			return ruleErr("order already has session %s", o.SessionID)
		}
		switch other, err := tx.OrderBySession(ctx, sessionID); {
		case err == nil:
			return ruleErr("session %s belongs to order %s", sessionID, other.ID)
		case !errors.Is(err, ErrNotFound):
			return err
		}
		o.SessionID, o.UpdatedAt = sessionID, s.clock()
		return tx.UpdateOrder(ctx, &o)
	})
	if err != nil {
		return fmt.Errorf("record session of order %s: %w", orderID, err)
	}
	return nil
}

// HandleEvent stores a verified event and applies it to its order in one
// write: the event row, the order's new state, and, when the event pays the
// order, its fulfilment and notifications. The event is durable once
// HandleEvent returns nil. A known event id changes nothing, except that it
// completes the fulfilment of a paid order that lacks one.
func (s *Service) HandleEvent(ctx context.Context, ev Event) (ApplyResult, error) {
	if ev.ID == "" {
		return ApplyResult{}, ruleErr("event without id")
	}
	acts := Acts(ev.Type)
	lines, err := s.linkLines(ctx, ev)
	if err != nil {
		return ApplyResult{}, fmt.Errorf("apply event %s: %w", ev.ID, err)
	}
	var res ApplyResult
	err = s.write(ctx, "apply_event", func(ctx context.Context, tx Tx, fx *effects) error {
		res = ApplyResult{}
		o, found, err := matchEvent(ctx, tx, ev)
		if err != nil {
			return err
		}
		if !found && lines != nil {
			// A Payment Link sale: it becomes an order, then the event
			// applies to it as to any other.
			if o, err = s.insertLinkOrder(ctx, tx, ev, lines); err != nil {
				return err
			}
			found = true
		}
		rec := EventRecord{
			ID: ev.ID, Type: ev.Type, APIVersion: ev.APIVersion, SessionID: ev.Session.ID,
			Outcome: eventOutcome(acts, found), Created: ev.Created, Received: s.clock(), Payload: ev.Payload,
		}
		if found {
			rec.OrderID = o.ID
		}
		stored, err := tx.InsertEvent(ctx, rec)
		if err != nil {
			return err
		}
		if !stored {
			res.Duplicate = true
			if found {
				return s.complete(ctx, tx, o, fx)
			}
			return nil
		}
		res.Stored = rec.Outcome
		if !found {
			return s.unmatched(ctx, tx, ev, fx)
		}
		res.Matched, res.Previous, res.Order = true, o.Status, o
		if !acts {
			return nil
		}
		attrs := []slog.Attr{slog.String("event_id", ev.ID), slog.String("type", ev.Type)}
		asOf := ev.Created.Unix()
		switch {
		case Handled(ev.Type):
			res.Order, err = s.observe(ctx, tx, o, ev.Type, ev.Session, fx, attrs...)
		case ev.Charge != nil:
			res.Order, err = s.afterSale(ctx, tx, o, fx, func(o *Order) bool { return observeCharge(o, *ev.Charge, asOf) }, attrs...)
		case ev.Refund != nil:
			res.Order, err = s.afterSale(ctx, tx, o, fx, func(o *Order) bool { return observeRefund(o, *ev.Refund, asOf) }, attrs...)
		case ev.Dispute != nil:
			res.Order, err = s.afterSale(ctx, tx, o, fx, func(o *Order) bool { return observeDispute(o, *ev.Dispute, asOf) }, attrs...)
		}
		return err
	})
	if err != nil {
		return ApplyResult{}, fmt.Errorf("apply event %s: %w", ev.ID, err)
	}
	switch {
	case res.Duplicate:
		s.log.LogAttrs(ctx, slog.LevelInfo, "duplicate event ignored", slog.String("event_id", ev.ID), slog.String("type", ev.Type))
	case !res.Matched && acts:
		s.log.LogAttrs(ctx, slog.LevelWarn, "event about a payment this shop does not know",
			slog.String("event_id", ev.ID), slog.String("type", ev.Type), slog.String("session_id", ev.Session.ID))
	}
	return res, nil
}

// matchEvent finds the order an event is about: a session's by the
// session (see findOrder); a refund's, charge's or dispute's by its
// PaymentIntent, else by the order id the shop put in its metadata.
func matchEvent(ctx context.Context, tx Tx, ev Event) (Order, bool, error) {
	var pi, orderID string
	switch {
	case ev.Charge != nil:
		pi, orderID = ev.Charge.PaymentIntent, ev.Charge.OrderID
	case ev.Refund != nil:
		pi, orderID = ev.Refund.PaymentIntent, ev.Refund.OrderID
	case ev.Dispute != nil:
		pi = ev.Dispute.PaymentIntent
	default:
		return findOrder(ctx, tx, ev.Session)
	}
	return findByPayment(ctx, tx, pi, orderID)
}

// findByPayment finds the order of a PaymentIntent, else the order orderID
// names.
func findByPayment(ctx context.Context, tx Tx, pi, orderID string) (Order, bool, error) {
	return lookupOrder(ctx, tx, tx.OrderByPaymentIntent, pi, orderID)
}

// lookupOrder finds the order byKey finds for key, when key is set and it
// finds one, else the order orderID names; found is false when neither
// does.
func lookupOrder(ctx context.Context, tx Tx, byKey func(context.Context, string) (Order, error), key, orderID string) (Order, bool, error) {
	if key != "" {
		o, err := byKey(ctx, key)
		if err == nil {
			return o, true, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return Order{}, false, err
		}
	}
	if orderID == "" {
		return Order{}, false, nil
	}
	o, err := tx.Order(ctx, orderID)
	switch {
	case errors.Is(err, ErrNotFound):
		return Order{}, false, nil
	case err != nil:
		return Order{}, false, err
	}
	return o, true, nil
}

// unmatched raises the alarm an event that names no order deserves: a
// paid session this shop did not create (a Payment Link, another
// integration), or a dispute of a payment it cannot find. Nothing that
// takes money is left silently unmatched.
func (s *Service) unmatched(ctx context.Context, tx Tx, ev Event, fx *effects) error {
	now := s.clock()
	switch {
	case Handled(ev.Type) && Outcome(ev.Type, ev.Session) == StatusPaid:
		amount := "an unknown amount"
		if ev.Session.AmountTotal != nil {
			amount = money.Format(*ev.Session.AmountTotal, ev.Session.Currency)
		}
		return s.raise(ctx, tx, fx, newAlarm(AlarmUnattributedPayment, ev.Session.ID, "",
			"A Checkout Session this shop did not create was paid ("+amount+"): a Payment Link, or another integration on the same Stripe account? "+
				"Find it in the Stripe Dashboard and fulfil or refund it by hand.", now))
	case ev.Dispute != nil:
		return s.raise(ctx, tx, fx, newAlarm(AlarmDispute, ev.Dispute.ID, "",
			"A dispute ("+money.Format(ev.Dispute.Amount, ev.Dispute.Currency)+", "+ev.Dispute.Reason+") is about a payment this shop cannot find. Answer it in the Stripe Dashboard"+
				deadline(ev.Dispute.EvidenceDueBy)+".", now))
	}
	return nil
}

func deadline(t *time.Time) string {
	if t == nil {
		return ""
	}
	return " by " + t.UTC().Format("2006-01-02 15:04 UTC")
}

// afterSale applies an observation of a paid order's refunds or dispute
// (apply reports whether it changed the order), settles its status, queues
// what the change tells the world and keeps the dispute's alarm, and saves
// the order.
func (s *Service) afterSale(ctx context.Context, tx Tx, o Order, fx *effects, apply func(*Order) bool, attrs ...slog.Attr) (Order, error) {
	before := o
	next := o
	next.Refunds = slices.Clone(o.Refunds)
	if !apply(&next) {
		return o, nil
	}
	now := s.clock()
	next.settle()
	next.UpdatedAt = now
	if err := s.announce(ctx, tx, before, next, now, fx); err != nil {
		return Order{}, err
	}
	if err := tx.UpdateOrder(ctx, &next); err != nil {
		return Order{}, err
	}
	if next.Status != before.Status {
		fx.changes = append(fx.changes, statusChange{from: before.Status, order: next, attrs: attrs})
	}
	return next, nil
}

// announce queues the notifications and keeps the alarms of a change in an
// order's refunds or dispute.
func (s *Service) announce(ctx context.Context, tx Tx, before, after Order, now time.Time, fx *effects) error {
	var queue []Notification
	add := func(typ, discriminator string) error {
		data := WebhookData{Order: after}
		if typ == NotifyOrderRefunded || typ == NotifyOrderPartiallyRefunded {
			data.RefundedNow = after.AmountRefunded - before.AmountRefunded
		}
		ns, err := s.channels.notificationsWith(typ, data, now, discriminator)
		queue = append(queue, ns...)
		return err
	}
	if after.AmountRefunded > before.AmountRefunded && (after.lifecycle() == StatusPaid || after.soldOut()) {
		typ := NotifyOrderPartiallyRefunded
		if after.Status == StatusRefunded || (after.Status != StatusPartiallyRefunded && after.AmountRefunded >= paidAmount(after)) {
			typ = NotifyOrderRefunded
		}
		if err := add(typ, strconv.FormatInt(after.AmountRefunded, 10)); err != nil {
			return err
		}
	}
	if after.AmountRefunded > before.AmountRefunded && after.AmountRefunded >= paidAmount(after) {
		// Refunded in full: an order paid after its stock was gone owes
		// the shopper nothing more.
		if err := tx.ResolveAlarm(ctx, newAlarm(AlarmOversold, after.ID, "", "", now).ID, now); err != nil {
			return err
		}
	}
	if d := after.Dispute; d != nil {
		known := before.Dispute != nil && before.Dispute.ID == d.ID
		switch {
		case d.Open() && !known: // a new dispute, first seen open
			if err := add(NotifyDisputeOpened, d.ID); err != nil {
				return err
			}
		case !d.Open() && (!known || before.Dispute.Open()):
			if err := add(NotifyDisputeClosed, d.ID); err != nil {
				return err
			}
		}
		alarm := newAlarm(AlarmDispute, d.ID, after.ID, "The shopper disputes "+money.Format(d.Amount, after.Currency)+
			" ("+d.Reason+"). Submit evidence in the Stripe Dashboard"+deadline(d.EvidenceDueBy)+
			", or accept the dispute; the order shows "+string(StatusDisputed)+" until it is decided.", now)
		if d.NeedsResponse() {
			if err := s.raise(ctx, tx, fx, alarm); err != nil {
				return err
			}
		} else if err := tx.ResolveAlarm(ctx, alarm.ID, now); err != nil {
			return err
		}
	}
	if len(queue) > 0 {
		if err := tx.InsertNotifications(ctx, queue); err != nil {
			return err
		}
		fx.queued += len(queue)
	}
	return nil
}

// paidAmount is what the order's payment took.
func paidAmount(o Order) int64 {
	if o.AmountPaid > 0 {
		return o.AmountPaid
	}
	return o.AmountTotal
}

// eventOutcome is the outcome stored with a new event.
func eventOutcome(acts, matched bool) string {
	switch {
	case !acts:
		return OutcomeIgnored
	case !matched:
		return OutcomeUnmatched
	}
	return OutcomeApplied
}

// SyncSession applies a direct read of a Checkout Session (the success
// page's) to its order, fulfils it if that pays it, and returns the order
// afterwards, or an error wrapping ErrNotFound.
func (s *Service) SyncSession(ctx context.Context, sess Session) (Order, error) {
	var out Order
	err := s.write(ctx, "sync_session", func(ctx context.Context, tx Tx, fx *effects) error {
		o, found, err := findOrder(ctx, tx, sess)
		switch {
		case err != nil:
			return err
		case !found:
			return ErrNotFound
		}
		out, err = s.observe(ctx, tx, o, "", sess, fx, slog.String("session_id", sess.ID))
		return err
	})
	if err != nil {
		return Order{}, fmt.Errorf("sync session %s: %w", sess.ID, err)
	}
	return out, nil
}

// findOrder finds the order a Checkout Session belongs to: the one that
// recorded the session, or else the one the session names (its
// client_reference_id or metadata), even if that order recorded another.
func findOrder(ctx context.Context, tx Tx, sess Session) (Order, bool, error) {
	// The order named may have recorded another session: see observe.
	return lookupOrder(ctx, tx, tx.OrderBySession, sess.ID, sess.OrderID)
}

// observe applies an observation of o's session inside tx: the state
// machine, the session recorded on an order found by its id, and the
// fulfilment when the order is paid. It saves the order if anything changed
// and returns it.
func (s *Service) observe(ctx context.Context, tx Tx, o Order, eventType string, sess Session, fx *effects, attrs ...slog.Attr) (Order, error) {
	now := s.clock()
	if o.SessionID != "" && sess.ID != "" && o.SessionID != sess.ID {
		// A second session of the order, such as one created after the
		// first's idempotency key was forgotten.
		want := Outcome(eventType, sess)
		switch {
		case want != StatusPaid && want != StatusProcessing:
			return o, nil // another session's expiry or failure: the order's own session decides
		case o.lifecycle() == StatusPaid || o.lifecycle() == StatusNeedsReview && o.PaidAt != nil:
			if want != StatusPaid {
				return o, nil
			}
			return s.paidTwice(ctx, tx, o, sess, now, fx, attrs...)
		}
		o.SessionID = sess.ID // the session the shopper went on with
	}
	next, changed := Observe(o, eventType, sess, now)
	if next.SessionID == "" && sess.ID != "" {
		next.SessionID, next.UpdatedAt, changed = sess.ID, now, true
	}
	if next.SessionID != o.SessionID {
		changed = true
	}
	if err := s.settleHold(ctx, tx, o, &next, now, fx); err != nil {
		return Order{}, err
	}
	fulfilled, err := s.fulfil(ctx, tx, &next, now, fx)
	if err != nil {
		return Order{}, err
	}
	if !changed && !fulfilled {
		return o, nil
	}
	if err := tx.UpdateOrder(ctx, &next); err != nil {
		return Order{}, err
	}
	if next.Status != o.Status {
		fx.changes = append(fx.changes, statusChange{from: o.Status, order: next, attrs: attrs})
	}
	return next, nil
}

// paidTwice records that a paid order was paid again by another session:
// it needs a person (refund one of the payments), with an alarm.
func (s *Service) paidTwice(ctx context.Context, tx Tx, o Order, sess Session, now time.Time, fx *effects, attrs ...slog.Attr) (Order, error) {
	reason := "paid twice: session " + sess.ID + " paid for an order already paid through " + o.SessionID
	next := o
	next.Payment, next.Review, next.UpdatedAt = StatusNeedsReview, reason, now
	next.settle()
	if next.Payment == o.Payment && next.Review == o.Review {
		return o, nil
	}
	amount := ""
	if sess.AmountTotal != nil {
		amount = " (" + money.Format(*sess.AmountTotal, sess.Currency) + ")"
	}
	if err := s.raise(ctx, tx, fx, newAlarm(AlarmPaidTwice, sess.ID, o.ID, "Order "+o.ID+" was paid twice: session "+sess.ID+amount+
		" paid after "+o.SessionID+". The order was fulfilled once; refund one of the payments (its PaymentIntent "+sess.PaymentIntent+") in the Stripe Dashboard.", now)); err != nil {
		return Order{}, err
	}
	if err := tx.UpdateOrder(ctx, &next); err != nil {
		return Order{}, err
	}
	fx.changes = append(fx.changes, statusChange{from: o.Status, order: next, attrs: attrs})
	return next, nil
}

// complete fulfils o inside tx if it is paid but its fulfilment is missing.
func (s *Service) complete(ctx context.Context, tx Tx, o Order, fx *effects) error {
	fulfilled, err := s.fulfil(ctx, tx, &o, s.clock(), fx)
	if err != nil || !fulfilled {
		return err
	}
	return tx.UpdateOrder(ctx, &o)
}

// fulfil records the fulfilment of a paid, unfulfilled order on *o (the
// caller saves it) and queues its notifications in tx. It reports whether
// it did.
func (s *Service) fulfil(ctx context.Context, tx Tx, o *Order, now time.Time, fx *effects) (bool, error) {
	if o.lifecycle() != StatusPaid || o.FulfilledAt != nil {
		return false, nil
	}
	o.FulfilledAt, o.UpdatedAt = &now, now
	ns, err := s.channels.notifications(NotifyOrderPaid, *o, now, "")
	if err != nil {
		return false, err
	}
	if len(ns) > 0 {
		if err := tx.InsertNotifications(ctx, ns); err != nil {
			return false, err
		}
	}
	fx.fulfilled = append(fx.fulfilled, *o)
	fx.queued += len(ns)
	return true, nil
}

// FulfilPending fulfils paid orders whose fulfilment is missing, such as
// orders paid before the shop recorded fulfilment with the payment. The
// server runs it at start-up and periodically. It returns how many it did.
func (s *Service) FulfilPending(ctx context.Context) (int, error) {
	ids, err := s.store.Unfulfilled(ctx)
	if err != nil {
		return 0, fmt.Errorf("list unfulfilled orders: %w", err)
	}
	n := 0
	for _, id := range ids {
		var did bool
		err := s.write(ctx, "fulfil", func(ctx context.Context, tx Tx, fx *effects) error {
			o, err := tx.Order(ctx, id)
			if err != nil {
				return err
			}
			before := len(fx.fulfilled)
			if err := s.complete(ctx, tx, o, fx); err != nil {
				return err
			}
			did = len(fx.fulfilled) > before
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("fulfil order %s: %w", id, err)
		}
		if did {
			n++
		}
	}
	return n, nil
}

// Order returns one order, or an error wrapping ErrNotFound.
func (s *Service) Order(ctx context.Context, id string) (Order, error) { return s.store.Order(ctx, id) }

// OrderBySession returns the order of a Checkout Session, or an error
// wrapping ErrNotFound.
func (s *Service) OrderBySession(ctx context.Context, sessionID string) (Order, error) {
	return s.store.OrderBySession(ctx, sessionID)
}

// Notifications returns the notifications of the given orders, oldest
// first.
func (s *Service) Notifications(ctx context.Context, orderIDs []string) ([]Notification, error) {
	if len(orderIDs) == 0 {
		return nil, nil
	}
	return s.store.Notifications(ctx, orderIDs)
}

// OutboxStats describes the notifications not yet delivered.
func (s *Service) OutboxStats(ctx context.Context) (OutboxStats, error) {
	return s.store.OutboxStats(ctx)
}

// ClaimNotifications claims up to limit due notifications for holder for
// lease (see Store.ClaimNotifications).
func (s *Service) ClaimNotifications(ctx context.Context, holder string, limit int, lease time.Duration) ([]Notification, error) {
	now := s.clock()
	ns, err := s.store.ClaimNotifications(ctx, Claim{Holder: holder, Now: now, Until: now.Add(lease), Limit: limit})
	s.noteWrite("claim_notifications", err)
	if err != nil {
		return nil, fmt.Errorf("claim notifications: %w", err)
	}
	return ns, nil
}

// Delivery is the outcome of one delivery attempt.
type Delivery struct {
	ID  string
	Err error // nil: the receiver took it
}

// RecordDeliveries records attempts in one write: a delivered notification
// is done, a failed one waits for its next attempt or, past its deadline,
// is dead. It returns the notifications as recorded; one that is no longer
// pending (delivered meanwhile through another claim) is left alone.
func (s *Service) RecordDeliveries(ctx context.Context, ds []Delivery) ([]Notification, error) {
	var out []Notification
	err := s.write(ctx, "record_deliveries", func(ctx context.Context, tx Tx, _ *effects) error {
		out = out[:0]
		now := s.clock()
		for _, d := range ds {
			n, err := tx.Notification(ctx, d.ID)
			if err != nil {
				return err
			}
			if n.Status != NotificationPending {
				continue
			}
			if d.Err == nil {
				n = n.delivered(now)
			} else {
				n = n.failed(now, d.Err.Error())
			}
			if err := tx.UpdateNotification(ctx, n); err != nil {
				return err
			}
			out = append(out, n)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("record deliveries: %w", err)
	}
	return out, nil
}

// RecordRefund records a refund of the order as Stripe answered its
// creation (the admin's refund): by the same rule as the events, so the
// webhook that follows changes nothing more.
func (s *Service) RecordRefund(ctx context.Context, orderID string, r RefundInfo) (Order, error) {
	var out Order
	err := s.write(ctx, "record_refund", func(ctx context.Context, tx Tx, fx *effects) error {
		o, err := tx.Order(ctx, orderID)
		if err != nil {
			return err
		}
		out, err = s.afterSale(ctx, tx, o, fx, func(o *Order) bool { return observeRefund(o, r, r.Created.Unix()) },
			slog.String("refund_id", r.ID))
		return err
	})
	if err != nil {
		return Order{}, fmt.Errorf("record refund %s of order %s: %w", r.ID, orderID, err)
	}
	return out, nil
}

// ErrNotDead is returned by Requeue for a notification that is not dead.
var ErrNotDead = fmt.Errorf("%w: the notification is not dead", ErrRule)

// Requeue queues a dead notification again, with a fresh retry window.
func (s *Service) Requeue(ctx context.Context, id string) (Notification, error) {
	var n Notification
	err := s.write(ctx, "requeue_notification", func(ctx context.Context, tx Tx, fx *effects) error {
		var err error
		if n, err = tx.Notification(ctx, id); err != nil {
			return err
		}
		if n.Status != NotificationDead {
			return ErrNotDead
		}
		n = n.requeued(s.clock())
		fx.queued++
		return tx.UpdateNotification(ctx, n)
	})
	if err != nil {
		return Notification{}, fmt.Errorf("requeue notification %s: %w", id, err)
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "notification re-queued", slog.String("notification_id", id), slog.String("order_id", n.OrderID))
	return n, nil
}

// Secret returns the shop's secret of that name: 32 random bytes made the
// first time any instance asks, and kept in the store from then on.
func (s *Service) Secret(ctx context.Context, name string) ([]byte, error) {
	init := make([]byte, 32)
	if _, err := rand.Read(init); err != nil {
		return nil, err
	}
	var v []byte
	err := s.write(ctx, "secret", func(ctx context.Context, tx Tx, _ *effects) error {
		var err error
		v, err = tx.Setting(ctx, "secret:"+name, init)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("secret %s: %w", name, err)
	}
	return v, nil
}

// Setting returns the shop's setting of that name ("" when never set).
func (s *Service) Setting(ctx context.Context, name string) (string, error) {
	var v []byte
	err := s.write(ctx, "setting", func(ctx context.Context, tx Tx, _ *effects) error {
		var err error
		v, err = tx.Setting(ctx, "setting:"+name, []byte{})
		return err
	})
	if err != nil {
		return "", fmt.Errorf("setting %s: %w", name, err)
	}
	return string(v), nil
}

// PutSetting stores the shop's setting of that name.
func (s *Service) PutSetting(ctx context.Context, name, value string) error {
	err := s.write(ctx, "setting", func(ctx context.Context, tx Tx, _ *effects) error {
		return tx.PutSetting(ctx, "setting:"+name, []byte(value))
	})
	if err != nil {
		return fmt.Errorf("store setting %s: %w", name, err)
	}
	return nil
}

// TryLease takes the named lease for holder for ttl if it is free, expired
// or already holder's (see Store.TryLease).
func (s *Service) TryLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	return s.store.TryLease(ctx, name, holder, ttl)
}

func (s *Service) logChange(ctx context.Context, from Status, o Order, attrs ...slog.Attr) {
	level := slog.LevelInfo
	if o.Status == StatusNeedsReview {
		level = slog.LevelWarn
		attrs = append(attrs, slog.String("review", o.Review))
	}
	attrs = append(attrs, slog.String("order_id", o.ID), slog.String("from", string(from)), slog.String("to", string(o.Status)))
	s.log.LogAttrs(ctx, level, "order status changed", attrs...)
}
