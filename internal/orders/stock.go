package orders

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// Stock. A product may have a limited stock; the store keeps its live count.
// Placing an order holds its quantities in the same write that stores the
// order, so stock is taken before the shopper pays, never after: a popular
// item cannot sell twice. The hold lasts as long as the Checkout Session may
// be paid (its expires_at is the hold's deadline), through a delayed payment
// (at most the processing hold), and becomes sold when the order is paid.

// StockLevel is one product's stock: what is left to sell (nil: unlimited),
// what open orders hold, and what was sold.
type StockLevel struct {
	ProductID string `json:"id"`
	Stock     *int64 `json:"stock"`
	Held      int64  `json:"held"`
	Sold      int64  `json:"sold"`
}

// Limited reports whether the product's stock is counted.
func (l StockLevel) Limited() bool { return l.Stock != nil }

// The states of an order's hold on stock.
const (
	HoldNone     = ""          // nothing held: no line has a limited stock
	HoldHeld     = "held"      // its quantities are held for it
	HoldSold     = "sold"      // paid: the held quantities were sold
	HoldReleased = "released"  // given back: the session expired, the payment failed, or the hold ran out
	HoldReturned = "restocked" // sold, then refunded in full and put back
)

// ErrOutOfStock is what placing an order gets when a line asks for more
// than is left (see OutOfStock).
var ErrOutOfStock = errors.New("out of stock")

// OutOfStock says which line could not be held, and how many are left.
type OutOfStock struct {
	ProductID string
	Name      string
	Wanted    int64
	Left      int64
}

func (e *OutOfStock) Error() string {
	return fmt.Sprintf("%s: %d wanted, %d left", e.ProductID, e.Wanted, e.Left)
}

// Is makes an OutOfStock both ErrOutOfStock and a refusal (ErrRule), not a
// store failure.
func (e *OutOfStock) Is(target error) bool { return target == ErrOutOfStock || target == ErrRule }

// Default hold limits.
const (
	DefaultProcessingHold = 14 * 24 * time.Hour
)

// SessionExpiry is when the Checkout Session of an order placed at placed
// stops taking payment, and so when its hold on stock ends: ttl
// (CHECKOUT_SESSION_TTL) after the order, kept two minutes inside Stripe's
// bounds (30 minutes to 24 hours after the session's creation) for clocks
// that disagree and a slow first attempt. It depends on the order alone, so
// a retried creation sends the same parameters under the same idempotency
// key.
func SessionExpiry(placed time.Time, ttl time.Duration) time.Time {
	const margin = 2 * time.Minute
	return placed.Add(min(max(ttl, 30*time.Minute+margin), 24*time.Hour-margin))
}

// limitedLines returns, sorted by product so that concurrent writes lock
// stock rows in one order (no deadlock), the lines of o whose product has a
// limited stock, with each product's level read (and locked) in tx.
func limitedLines(ctx context.Context, tx Tx, o Order) ([]Item, map[string]StockLevel, error) {
	lines := slices.Clone(o.Items)
	slices.SortFunc(lines, func(a, b Item) int {
		switch {
		case a.ProductID < b.ProductID:
			return -1
		case a.ProductID > b.ProductID:
			return 1
		}
		return 0
	})
	levels := map[string]StockLevel{}
	var out []Item
	for _, it := range lines {
		l, err := tx.StockLevel(ctx, it.ProductID)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		if !l.Limited() {
			continue
		}
		if prev, ok := levels[it.ProductID]; ok {
			l = prev
		}
		levels[it.ProductID] = l
		out = append(out, it)
	}
	return out, levels, nil
}

// hold takes o's limited quantities from the stock into its hold, or
// returns an *OutOfStock naming the first line that lacks stock (and
// changes nothing: the caller's transaction rolls back).
func hold(ctx context.Context, tx Tx, o *Order, until time.Time) error {
	lines, levels, err := limitedLines(ctx, tx, *o)
	if err != nil || len(lines) == 0 {
		return err
	}
	for _, it := range lines {
		l := levels[it.ProductID]
		if *l.Stock < it.Quantity {
			return &OutOfStock{ProductID: it.ProductID, Name: it.Name, Wanted: it.Quantity, Left: *l.Stock}
		}
		left := *l.Stock - it.Quantity
		l.Stock, l.Held = &left, l.Held+it.Quantity
		levels[it.ProductID] = l
	}
	if err := putLevels(ctx, tx, levels); err != nil {
		return err
	}
	o.HoldState, o.HoldUntil = HoldHeld, &until
	return nil
}

// moveHold moves o's held quantities: to sold, or back to the stock.
func moveHold(ctx context.Context, tx Tx, o *Order, to string) error {
	lines, levels, err := limitedLines(ctx, tx, *o)
	if err != nil {
		return err
	}
	for _, it := range lines {
		l := levels[it.ProductID]
		l.Held = max(0, l.Held-it.Quantity)
		switch to {
		case HoldSold:
			l.Sold += it.Quantity
		case HoldReleased:
			back := *l.Stock + it.Quantity
			l.Stock = &back
		}
		levels[it.ProductID] = l
	}
	if err := putLevels(ctx, tx, levels); err != nil {
		return err
	}
	o.HoldState = to
	return nil
}

// takeAgain sells o's limited quantities straight from the stock, for a
// payment that came after its hold was given back; short reports the first
// line there is not enough left for (and then nothing was taken).
func takeAgain(ctx context.Context, tx Tx, o *Order) (short *OutOfStock, err error) {
	lines, levels, err := limitedLines(ctx, tx, *o)
	if err != nil {
		return nil, err
	}
	for _, it := range lines {
		l := levels[it.ProductID]
		if *l.Stock < it.Quantity {
			return &OutOfStock{ProductID: it.ProductID, Name: it.Name, Wanted: it.Quantity, Left: *l.Stock}, nil
		}
		left := *l.Stock - it.Quantity
		l.Stock, l.Sold = &left, l.Sold+it.Quantity
		levels[it.ProductID] = l
	}
	if err := putLevels(ctx, tx, levels); err != nil {
		return nil, err
	}
	if len(lines) > 0 {
		o.HoldState = HoldSold
	}
	return nil, nil
}

// restock puts a sold order's limited quantities back in stock.
func restock(ctx context.Context, tx Tx, o *Order) error {
	lines, levels, err := limitedLines(ctx, tx, *o)
	if err != nil {
		return err
	}
	for _, it := range lines {
		l := levels[it.ProductID]
		back := *l.Stock + it.Quantity
		l.Stock, l.Sold = &back, max(0, l.Sold-it.Quantity)
		levels[it.ProductID] = l
	}
	if err := putLevels(ctx, tx, levels); err != nil {
		return err
	}
	o.HoldState = HoldReturned
	return nil
}

func putLevels(ctx context.Context, tx Tx, levels map[string]StockLevel) error {
	ids := make([]string, 0, len(levels))
	for id := range levels {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if err := tx.PutStockLevel(ctx, levels[id]); err != nil {
			return err
		}
	}
	return nil
}

// settleHold moves the hold of an order whose payment changed from before
// to after (inside tx, on *after, which the caller saves): a payment sells
// what was held, or takes it again if the hold was given back meanwhile (a
// late payment; short of stock the order needs a person); a delayed payment
// keeps the hold for the processing hold; an expiry or a failed payment
// gives it back.
func (s *Service) settleHold(ctx context.Context, tx Tx, before Order, after *Order, now time.Time, fx *effects) error {
	was, is := before.lifecycle(), after.lifecycle()
	if was == is {
		return nil
	}
	switch {
	case is == StatusPaid && after.HoldState == HoldHeld:
		return moveHold(ctx, tx, after, HoldSold)
	case is == StatusPaid && after.HoldState == HoldReleased:
		short, err := takeAgain(ctx, tx, after)
		if err != nil || short == nil {
			return err
		}
		return s.oversold(ctx, tx, after, short, now, fx)
	case is == StatusProcessing && after.HoldState == HoldHeld:
		until := now.Add(s.processingHold)
		after.HoldUntil = &until
	case is == StatusProcessing && after.HoldState == HoldReleased && after.Source == SourcePaymentLink:
		// A Payment Link sale paid by a delayed method holds its stock
		// while the payment settles, if there is enough; if not, the
		// payment takes what is left when it lands.
		err := hold(ctx, tx, after, now.Add(s.processingHold))
		if errors.Is(err, ErrOutOfStock) {
			return nil
		}
		return err
	case (is == StatusExpired || is == StatusFailed) && after.HoldState == HoldHeld:
		return moveHold(ctx, tx, after, HoldReleased)
	}
	return nil
}

// reviewOutOfStock begins the Review of an order paid after its stock was
// gone.
const reviewOutOfStock = "paid, out of stock: "

// soldOut reports whether o is a paid order waiting for a person because
// its stock was gone: the shopper paid, so they hear of its refunds as
// from any paid order.
func (o Order) soldOut() bool {
	return o.lifecycle() == StatusNeedsReview && o.PaidAt != nil && strings.HasPrefix(o.Review, reviewOutOfStock)
}

// oversold sends a paid order whose stock is gone to a person: never
// fulfilled silently, with an alarm and a notification.
func (s *Service) oversold(ctx context.Context, tx Tx, o *Order, short *OutOfStock, now time.Time, fx *effects) error {
	o.Payment, o.Review = StatusNeedsReview, reviewOutOfStock+short.Error()
	o.settle()
	if err := s.raise(ctx, tx, fx, newAlarm(AlarmOversold, o.ID, o.ID, "Order "+o.ID+" was paid after its hold on stock ended, and "+
		short.ProductID+" is out of stock ("+short.Error()+"). Find the goods, or refund the order.", now)); err != nil {
		return err
	}
	ns, err := s.channels.notifications(NotifyOrderNeedsReview, *o, now, "oversold")
	if err != nil {
		return err
	}
	if len(ns) > 0 {
		if err := tx.InsertNotifications(ctx, ns); err != nil {
			return err
		}
		fx.queued += len(ns)
	}
	return nil
}

// SeedStock gives each product with a first stock its row, the first time
// the shop sees it; a live count is never overwritten.
func (s *Service) SeedStock(ctx context.Context, seeds map[string]int64) error {
	if len(seeds) == 0 {
		return nil
	}
	err := s.write(ctx, "seed_stock", func(ctx context.Context, tx Tx, _ *effects) error {
		ids := make([]string, 0, len(seeds))
		for id := range seeds {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			_, err := tx.StockLevel(ctx, id)
			if err == nil {
				continue
			}
			if !errors.Is(err, ErrNotFound) {
				return err
			}
			n := seeds[id]
			if err := tx.PutStockLevel(ctx, StockLevel{ProductID: id, Stock: &n}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("seed stock: %w", err)
	}
	return nil
}

// StockLevels returns every product's stock the store counts.
func (s *Service) StockLevels(ctx context.Context) ([]StockLevel, error) {
	return s.store.StockLevels(ctx)
}

// SetStock sets what is left of a product (nil: unlimited), as the owner
// counted it; what is held and sold stays.
func (s *Service) SetStock(ctx context.Context, productID string, stock *int64) (StockLevel, error) {
	if stock != nil && *stock < 0 {
		return StockLevel{}, ruleErr("stock cannot be negative")
	}
	var out StockLevel
	err := s.write(ctx, "set_stock", func(ctx context.Context, tx Tx, _ *effects) error {
		l, err := tx.StockLevel(ctx, productID)
		if errors.Is(err, ErrNotFound) {
			l, err = StockLevel{ProductID: productID}, nil
		}
		if err != nil {
			return err
		}
		l.Stock = stock
		out = l
		return tx.PutStockLevel(ctx, l)
	})
	if err != nil {
		return StockLevel{}, fmt.Errorf("set stock of %s: %w", productID, err)
	}
	left := "unlimited"
	if stock != nil {
		left = fmt.Sprint(*stock)
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "stock set", slog.String("product_id", productID), slog.String("stock", left))
	return out, nil
}

// Restock puts the quantities of a sold order refunded in full back in
// stock, once.
func (s *Service) Restock(ctx context.Context, orderID string) (Order, error) {
	var out Order
	err := s.write(ctx, "restock", func(ctx context.Context, tx Tx, _ *effects) error {
		o, err := tx.Order(ctx, orderID)
		if err != nil {
			return err
		}
		if o.HoldState != HoldSold || o.Status != StatusRefunded {
			return ruleErr("only a sold order refunded in full can be restocked")
		}
		if err := restock(ctx, tx, &o); err != nil {
			return err
		}
		o.UpdatedAt = s.clock()
		out = o
		return tx.UpdateOrder(ctx, &o)
	})
	if err != nil {
		return Order{}, fmt.Errorf("restock order %s: %w", orderID, err)
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "order restocked", slog.String("order_id", orderID))
	return out, nil
}

// ExpireSession ends a Checkout Session at Stripe (POST
// /v1/checkout/sessions/{id}/expire) and returns its status afterwards:
// "expired", or "complete" when the shopper paid first.
type ExpireSession func(ctx context.Context, sessionID string) (status string, err error)

// SweepHolds gives back the holds past their deadline: a pending order's
// session is expired at Stripe first, outside any transaction, so no late
// payment can follow (if Stripe says it was paid meanwhile, the hold stays
// for the payment's event); a delayed payment's hold ends with the
// processing hold. It returns how many holds it gave back.
func (s *Service) SweepHolds(ctx context.Context, expire ExpireSession, limit int) (int, error) {
	due, err := s.store.DueHolds(ctx, s.clock(), limit)
	if err != nil {
		return 0, fmt.Errorf("list due holds: %w", err)
	}
	released := 0
	for _, o := range due {
		if o.lifecycle() == StatusPending && o.SessionID != "" {
			status, err := expire(ctx, o.SessionID)
			if err != nil {
				s.log.LogAttrs(ctx, slog.LevelWarn, "sweep: session not expired; the hold stays until the next sweep",
					slog.String("order_id", o.ID), slog.String("session_id", o.SessionID), slog.Any("error", err))
				continue
			}
			if status == "complete" {
				continue // paid meanwhile: its event settles the hold
			}
		}
		var did bool
		err := s.write(ctx, "release_hold", func(ctx context.Context, tx Tx, _ *effects) error {
			did = false
			cur, err := tx.Order(ctx, o.ID)
			if err != nil {
				return err
			}
			now := s.clock()
			st := cur.lifecycle()
			if cur.HoldState != HoldHeld || cur.HoldUntil == nil || cur.HoldUntil.After(now) || (st != StatusPending && st != StatusProcessing) {
				return nil // settled meanwhile
			}
			if err := moveHold(ctx, tx, &cur, HoldReleased); err != nil {
				return err
			}
			cur.UpdatedAt, did = now, true
			return tx.UpdateOrder(ctx, &cur)
		})
		if err != nil {
			return released, fmt.Errorf("release hold of order %s: %w", o.ID, err)
		}
		if did {
			released++
			s.log.LogAttrs(ctx, slog.LevelInfo, "hold released: its deadline passed", slog.String("order_id", o.ID))
		}
	}
	return released, nil
}
