package orders

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"math"
	"strings"
)

// LinkLine is one line of a Checkout Session as Stripe charged it: what a
// Payment Link sale is made of.
type LinkLine struct {
	PriceID     string // price_...
	Name        string // the line's description (the product's name)
	UnitAmount  int64
	Quantity    int64
	AmountTotal int64 // the line's total after discounts and tax
	Currency    string
}

// LineItems reads the lines of a Checkout Session from Stripe. The Service
// calls it before its write, never inside one.
type LineItems func(ctx context.Context, sessionID string) ([]LinkLine, error)

// WithLineItems lets the Service make orders of Payment Link sales: a
// completed session with a payment_link that names no order of this shop
// becomes one, priced as Stripe charged it. Without it such a session is an
// unattributed payment.
func WithLineItems(f LineItems) ServiceOption { return func(s *Service) { s.lineItems = f } }

// WithPriceProducts maps a Stripe Price to the catalogue product it sells,
// so a Payment Link sale takes that product's stock.
func WithPriceProducts(f func(priceID string) (productID string, ok bool)) ServiceOption {
	return func(s *Service) { s.priceProduct = f }
}

// maxLinkLines bounds the lines read for one Payment Link sale.
const maxLinkLines = 100

// linkLines returns the lines of ev's session when ev is a Payment Link
// sale the shop has no order for yet, and nil otherwise. It talks to
// Stripe, so it runs before the write.
func (s *Service) linkLines(ctx context.Context, ev Event) ([]LinkLine, error) {
	sess := ev.Session
	if s.lineItems == nil || sess.PaymentLink == "" || sess.OrderID != "" || sess.ID == "" {
		return nil, nil
	}
	switch ev.Type {
	case EventSessionCompleted, EventAsyncPaymentSucceeded, EventAsyncPaymentFailed:
	default:
		return nil, nil
	}
	if _, err := s.store.OrderBySession(ctx, sess.ID); err == nil {
		return nil, nil // already an order: the event applies to it
	} else if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	lines, err := s.lineItems(ctx, sess.ID)
	if err != nil {
		return nil, fmt.Errorf("read the lines of payment link session %s: %w", sess.ID, err)
	}
	if len(lines) == 0 || len(lines) > maxLinkLines {
		return nil, fmt.Errorf("payment link session %s has %d lines", sess.ID, len(lines))
	}
	return lines, nil
}

// LinkOrderID is the order id of a Payment Link sale's session: the same
// for every event of the session, so that two of them arriving at once make
// one order.
func LinkOrderID(sessionID string) string {
	sum := sha256.Sum256([]byte("payment-link-order:" + sessionID))
	return "ord_" + strings.ToLower(base32.StdEncoding.EncodeToString(sum[:15]))
}

// insertLinkOrder stores the pending order of a Payment Link sale, inside
// tx, and returns it; the event then applies to it like to any order. Lines
// of catalogue products with a counted stock take it when the payment does
// (see settleHold): the order starts without a hold.
func (s *Service) insertLinkOrder(ctx context.Context, tx Tx, ev Event, lines []LinkLine) (Order, error) {
	sess, now := ev.Session, s.clock()
	o := Order{
		ID: LinkOrderID(sess.ID), Status: StatusPending, Payment: StatusPending, Currency: strings.ToLower(sess.Currency),
		SessionID: sess.ID, Source: SourcePaymentLink, CreatedAt: now, UpdatedAt: now,
	}
	var sum int64
	for _, l := range lines {
		id := l.PriceID
		if s.priceProduct != nil {
			if p, ok := s.priceProduct(l.PriceID); ok {
				id = p
			}
		}
		name := strings.TrimSpace(l.Name)
		if name == "" {
			name = l.PriceID
		}
		if id == "" || l.Quantity < 1 || l.UnitAmount < 0 || l.AmountTotal < 0 || l.AmountTotal > MaxAmount || sum > math.MaxInt64-l.AmountTotal {
			return Order{}, fmt.Errorf("payment link session %s: unreadable line %+v", sess.ID, l)
		}
		if o.Currency == "" {
			o.Currency = strings.ToLower(l.Currency)
		}
		o.Items = append(o.Items, Item{ProductID: id, Name: name, UnitAmount: l.UnitAmount, Quantity: l.Quantity})
		sum += l.AmountTotal
	}
	o.AmountTotal = sum
	if sess.AmountTotal != nil {
		o.AmountTotal = *sess.AmountTotal
	}
	limited, _, err := limitedLines(ctx, tx, o)
	if err != nil {
		return Order{}, err
	}
	if len(limited) > 0 {
		o.HoldState = HoldReleased // nothing held: the payment takes it
	}
	if err := o.Validate(); err != nil {
		return Order{}, err
	}
	err = tx.InsertOrder(ctx, o)
	if errors.Is(err, ErrDuplicate) {
		return tx.Order(ctx, o.ID) // another event of the session made it first
	}
	if err != nil {
		return Order{}, err
	}
	return o, nil
}
