// Package outbox delivers the notifications the orders package queues: it
// claims due ones, sends each through the sender of its channel (the order
// webhook, email) outside any transaction, and records the outcome, so a
// failure is retried with back-off and a success is never sent again.
//
// Delivery is at least once. A dispatcher that dies mid-delivery leaves its
// claims to run out, and whichever instance claims next sends again, with
// the same id and body.
package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/shopcheckout/shop/internal/orders"
)

// Sender delivers one notification; nil means the receiver took it.
type Sender interface {
	Send(ctx context.Context, n orders.Notification) error
}

// SenderFunc adapts a function to Sender.
type SenderFunc func(ctx context.Context, n orders.Notification) error

// Send calls f.
func (f SenderFunc) Send(ctx context.Context, n orders.Notification) error { return f(ctx, n) }

// Queue is the part of orders.Service the dispatcher uses.
type Queue interface {
	ClaimNotifications(ctx context.Context, holder string, limit int, lease time.Duration) ([]orders.Notification, error)
	RecordDeliveries(ctx context.Context, ds []orders.Delivery) ([]orders.Notification, error)
	OutboxStats(ctx context.Context) (orders.OutboxStats, error)
}

// Recorder is told about deliveries and the queue, for metrics. Its methods
// must be quick.
type Recorder interface {
	// Delivered counts one attempt: outcome is delivered, failed or dead.
	Delivered(notificationType, channel, outcome string)
	// Queue reports the notifications not yet delivered.
	Queue(st orders.OutboxStats, now time.Time)
}

// Defaults of Config.
const (
	DefaultWorkers = 16
	DefaultPoll    = time.Second
	DefaultTimeout = 10 * time.Second
)

// Config configures a Dispatcher.
type Config struct {
	Queue   Queue
	Senders map[orders.Channel]Sender
	// Holder names this dispatcher in its claims; unique per process.
	Holder string
	Log    *slog.Logger
	// Recorder, if not nil, is told about every attempt.
	Recorder Recorder
	// Workers is how many deliveries run at once (default 16).
	Workers int
	// Poll is how often the queue is looked at without a Wake (default 1s):
	// notifications queued by other instances, and retries coming due.
	Poll time.Duration
	// Timeout bounds one delivery attempt (default 10s).
	Timeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Dispatcher delivers notifications until its Run's context ends.
type Dispatcher struct {
	cfg   Config
	lease time.Duration
	wake  chan struct{}
}

// New checks cfg and returns a Dispatcher.
func New(cfg Config) (*Dispatcher, error) {
	switch {
	case cfg.Queue == nil:
		return nil, errors.New("outbox: no queue")
	case cfg.Holder == "":
		return nil, errors.New("outbox: no holder name")
	case cfg.Log == nil:
		return nil, errors.New("outbox: no logger")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	// A claim outlives the attempt it covers by a margin for recording the
	// outcome; then another dispatcher may take it over.
	return &Dispatcher{cfg: cfg, lease: cfg.Timeout + 5*time.Second, wake: make(chan struct{}, 1)}, nil
}

// Lease is how long a claim lasts: after a crash, that long until another
// dispatcher sends the notifications the dead one had claimed.
func (d *Dispatcher) Lease() time.Duration { return d.lease }

// Wake tells the dispatcher that notifications were queued. It never
// blocks.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends, then stops claiming, cancels the attempts in
// flight (they count as failed and are retried), records every outcome and
// returns.
func (d *Dispatcher) Run(ctx context.Context) {
	sendCtx, stopSending := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSending()

	results := make(chan orders.Delivery, d.cfg.Workers)
	recorded := make(chan struct{})
	go func() {
		defer close(recorded)
		d.record(results)
	}()

	slots := make(chan struct{}, d.cfg.Workers)
	freed := make(chan struct{}, 1)
	var inFlight sync.WaitGroup
	poll := time.NewTicker(d.cfg.Poll)
	defer poll.Stop()
	lastStats := time.Time{}

	for ctx.Err() == nil {
		if now := d.cfg.Now(); now.Sub(lastStats) >= d.cfg.Poll {
			d.reportQueue(ctx, now)
			lastStats = now
		}
		free := d.cfg.Workers - len(slots)
		if free == 0 {
			select { // every worker is busy
			case <-ctx.Done():
			case <-freed:
			}
			continue
		}
		claimed, err := d.cfg.Queue.ClaimNotifications(ctx, d.cfg.Holder, free, d.lease)
		if err != nil && ctx.Err() == nil {
			d.cfg.Log.LogAttrs(ctx, slog.LevelError, "outbox: claim failed; trying again", slog.Any("error", err))
		}
		for _, n := range claimed {
			slots <- struct{}{}
			inFlight.Go(func() {
				defer func() {
					<-slots
					select {
					case freed <- struct{}{}:
					default:
					}
				}()
				results <- d.deliver(sendCtx, n)
			})
		}
		if len(claimed) == free {
			continue // there may be more due: claim again at once
		}
		select { // nothing more is due: wait for news
		case <-ctx.Done():
		case <-d.wake:
		case <-poll.C:
		}
	}
	stopSending()
	inFlight.Wait()
	close(results)
	<-recorded
}

// deliver makes one attempt at n.
func (d *Dispatcher) deliver(ctx context.Context, n orders.Notification) orders.Delivery {
	sender := d.cfg.Senders[n.Channel]
	if sender == nil {
		return orders.Delivery{ID: n.ID, Err: fmt.Errorf("no sender for channel %q: is it still configured?", n.Channel)}
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	err := sender.Send(ctx, n)
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("no answer within %v: %w", d.cfg.Timeout, err)
	}
	return orders.Delivery{ID: n.ID, Err: err}
}

// record writes outcomes as they come, several to a write, until results
// is closed.
func (d *Dispatcher) record(results <-chan orders.Delivery) {
	const maxBatch = 64
	batch := make([]orders.Delivery, 0, maxBatch)
	flush := func() {
		if len(batch) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		recorded, err := d.cfg.Queue.RecordDeliveries(ctx, batch)
		if err != nil {
			// The claims run out and the notifications are sent again.
			d.cfg.Log.LogAttrs(ctx, slog.LevelError, "outbox: recording deliveries failed; they will be retried",
				slog.Int("count", len(batch)), slog.Any("error", err))
		}
		for _, n := range recorded {
			d.observe(ctx, n)
			if n.Status == orders.NotificationPending && n.NextAttempt != nil {
				// Claim the retry when it comes due rather than at the
				// first poll after: an attempt made at a poll fails just
				// after it, so waiting for the polls would make every
				// retry almost one poll late (a first retry after 2s, not 1s).
				time.AfterFunc(n.NextAttempt.Sub(d.cfg.Now()), d.Wake)
			}
		}
		batch = batch[:0]
	}
	for r := range results {
		batch = append(batch, r)
		// Take whatever else is ready, then write.
	more:
		for len(batch) < maxBatch {
			select {
			case r, ok := <-results:
				if !ok {
					break more
				}
				batch = append(batch, r)
			default:
				break more
			}
		}
		flush()
	}
	flush()
}

// observe logs and counts one recorded attempt.
func (d *Dispatcher) observe(ctx context.Context, n orders.Notification) {
	attrs := []slog.Attr{
		slog.String("notification_id", n.ID), slog.String("order_id", n.OrderID), slog.String("type", n.Type),
		slog.String("channel", string(n.Channel)), slog.Int("attempts", n.Attempts),
	}
	outcome := string(n.Status)
	switch n.Status {
	case orders.NotificationDelivered:
		d.cfg.Log.LogAttrs(ctx, slog.LevelInfo, "notification delivered", attrs...)
	case orders.NotificationDead:
		d.cfg.Log.LogAttrs(ctx, slog.LevelError, "notification dead: retried for too long; re-queue it from the admin",
			append(attrs, slog.String("last_error", n.LastError))...)
	default:
		outcome = "failed"
		d.cfg.Log.LogAttrs(ctx, slog.LevelWarn, "notification not delivered; will retry",
			append(attrs, slog.String("error", n.LastError), slog.Time("next_attempt", *n.NextAttempt))...)
	}
	if d.cfg.Recorder != nil {
		d.cfg.Recorder.Delivered(n.Type, string(n.Channel), outcome)
	}
}

func (d *Dispatcher) reportQueue(ctx context.Context, now time.Time) {
	if d.cfg.Recorder == nil {
		return
	}
	st, err := d.cfg.Queue.OutboxStats(ctx)
	if err != nil {
		return
	}
	d.cfg.Recorder.Queue(st, now)
}
