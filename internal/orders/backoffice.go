package orders

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Cursor is a place in the list of orders (newest first, the greater id
// first among orders created at the same instant): the last order of a
// page. Orders placed after a page was read are newer than every order on
// it, so the pages after it neither skip nor repeat an order.
type Cursor struct {
	CreatedAt time.Time
	ID        string
}

// CursorOf is the place of o in the list.
func CursorOf(o Order) Cursor { return Cursor{CreatedAt: o.CreatedAt, ID: o.ID} }

// String is the cursor as an opaque token for a URL.
func (c Cursor) String() string {
	raw := strconv.FormatInt(c.CreatedAt.UnixMicro(), 10) + ":" + c.ID
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// ParseCursor reads a token made by Cursor.String; anything else is a
// refusal (ErrRule).
func ParseCursor(token string) (Cursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) > 200 {
		return Cursor{}, ruleErr("not a list cursor")
	}
	micros, id, ok := strings.Cut(string(raw), ":")
	us, err := strconv.ParseInt(micros, 10, 64)
	if !ok || err != nil || id == "" {
		return Cursor{}, ruleErr("not a list cursor")
	}
	return Cursor{CreatedAt: time.UnixMicro(us).UTC(), ID: id}, nil
}

// OrderPage is one page of the list of orders.
type OrderPage struct {
	Orders []Order
	// Next is where the next page starts; nil when this page is the last.
	Next *Cursor
}

// Sales is what the orders of one currency paid within a period.
type Sales struct {
	Currency string `json:"currency"`
	Orders   int    `json:"orders"`
	// Paid is what the orders' payments took, Refunded what has gone back
	// since, both in minor units.
	Paid     int64 `json:"paid"`
	Refunded int64 `json:"refunded"`
}

// Net is what the shop kept.
func (s Sales) Net() int64 { return s.Paid - s.Refunded }

// MaxQueryLength bounds ListFilter.Query: an id or an email fits well
// inside it.
const MaxQueryLength = 200

func (f ListFilter) check() error {
	switch {
	case f.Status != "" && !f.Status.Valid():
		return ruleErr("invalid status %q", f.Status)
	case len(f.Query) > MaxQueryLength:
		return ruleErr("search for at most %d characters", MaxQueryLength)
	case !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To):
		return ruleErr("the period ends before it starts")
	}
	return nil
}

// ListOrders returns a page of orders, newest first, and where the next
// page starts.
func (s *Service) ListOrders(ctx context.Context, f ListFilter) (OrderPage, error) {
	if err := f.check(); err != nil {
		return OrderPage{}, err
	}
	f.Query = strings.TrimSpace(f.Query)
	list, err := s.store.ListOrders(ctx, f)
	if err != nil {
		return OrderPage{}, err
	}
	page := OrderPage{Orders: list}
	if len(list) == f.Bound() {
		// A full page: look one order further to tell whether it is the
		// last, so a list that ends on a page boundary has no empty page.
		last := CursorOf(list[len(list)-1])
		probe := f
		probe.After, probe.Limit = &last, 1
		more, err := s.store.ListOrders(ctx, probe)
		if err != nil {
			return OrderPage{}, err
		}
		if len(more) > 0 {
			page.Next = &last
		}
	}
	return page, nil
}

// EachOrder calls fn with every order f lists (f.Limit aside), newest
// first, reading them a page at a time so memory stays flat however many
// there are. It stops at fn's first error and returns it.
func (s *Service) EachOrder(ctx context.Context, f ListFilter, fn func(Order) error) error {
	if err := f.check(); err != nil {
		return err
	}
	f.Query, f.Limit = strings.TrimSpace(f.Query), MaxListLimit
	for {
		list, err := s.store.ListOrders(ctx, f)
		if err != nil {
			return err
		}
		for _, o := range list {
			if err := fn(o); err != nil {
				return err
			}
		}
		if len(list) < f.Limit {
			return nil
		}
		last := CursorOf(list[len(list)-1])
		f.After = &last
	}
}

// OrderEvents returns the Stripe events stored for an order, in the order
// they were received, without their payloads.
func (s *Service) OrderEvents(ctx context.Context, orderID string) ([]EventRecord, error) {
	return s.store.OrderEvents(ctx, orderID)
}

// Sales sums, per currency, the orders paid at or after since.
func (s *Service) Sales(ctx context.Context, since time.Time) ([]Sales, error) {
	list, err := s.store.Sales(ctx, since)
	if err != nil {
		return nil, fmt.Errorf("sales since %s: %w", since.Format(time.RFC3339), err)
	}
	return list, nil
}
