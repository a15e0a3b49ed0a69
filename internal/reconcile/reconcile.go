// Package reconcile catches up on Stripe events the webhook missed. Stripe
// retries a failed delivery for three days and keeps events for thirty; a
// shop that was down longer, or whose endpoint was misconfigured, lists the
// events through the Events API and feeds them through the same idempotent
// path as the webhook, so running it twice, or beside live webhooks, changes
// nothing more.
//
// A run walks the events from the oldest forward and keeps a cursor (the
// last event it handled) in the shop's database, so a window holding more
// events than one run reads is covered by the runs that follow, and each run
// starts where the last one stopped.
package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/event"

	"github.com/shopcheckout/shop/internal/orders"
)

// MaxWindow is how far back Stripe keeps events.
const MaxWindow = 30 * 24 * time.Hour

// DefaultMaxEvents bounds the events one run handles, so a huge backlog is
// worked through in bounded runs; the next run picks up at the cursor.
const DefaultMaxEvents = 50_000

// pageSize is the Events API's largest page.
const pageSize = 100

// Events is the part of Stripe's Events API reconciliation calls;
// client.API.Events satisfies it.
type Events interface {
	List(params *stripe.EventListParams) *event.Iter
}

// Shop is the part of orders.Service a run uses.
type Shop interface {
	HandleSigned(ctx context.Context, body []byte) (orders.Event, orders.ApplyResult, error)
	Setting(ctx context.Context, name string) (string, error)
	PutSetting(ctx context.Context, name, value string) error
}

// Options says what a run covers.
type Options struct {
	// Since is where the first run (one without a cursor) starts.
	Since time.Time
	// MaxEvents bounds the run (default DefaultMaxEvents).
	MaxEvents int
}

// Report says what a run did.
type Report struct {
	Listed     int  // events Stripe returned and the run handled
	Applied    int  // new to the shop and handled now
	Duplicates int  // already handled (by the webhook or an earlier run)
	Truncated  bool // MaxEvents was reached: more remain for the next run
	Cursor     string
}

// cursorSetting names the cursor among the shop's settings. A cursor
// belongs to one list of types: the name changes with the list, so a shop
// that reconciles more types starts the new walk from the window's oldest.
func cursorSetting() string {
	return "reconcile-cursor:" + strings.Join(orders.ReconciledTypes(), ",")
}

// Run handles the events after the stored cursor (or, without one, those
// created since opts.Since), oldest first, and moves the cursor along.
func Run(ctx context.Context, events Events, shop Shop, opts Options, log *slog.Logger) (Report, error) {
	if opts.MaxEvents <= 0 {
		opts.MaxEvents = DefaultMaxEvents
	}
	var rep Report
	cursor, err := shop.Setting(ctx, cursorSetting())
	if err != nil {
		return rep, fmt.Errorf("read the cursor: %w", err)
	}
	if cursor == "" {
		if cursor, err = oldestPage(ctx, events, shop, opts, &rep); err != nil {
			return rep, err
		}
	}
	for cursor != "" && rep.Listed < opts.MaxEvents {
		page, more, err := listPage(ctx, events, func(p *stripe.EventListParams) { p.EndingBefore = stripe.String(cursor) })
		var se *stripe.Error
		if errors.As(err, &se) && se.Code == stripe.ErrorCodeResourceMissing {
			// Stripe no longer has the cursor's event (it is older than
			// thirty days): start again from the window's oldest.
			log.WarnContext(ctx, "reconcile: the cursor's event is gone; starting from the oldest event of the window", "cursor", cursor)
			if err := shop.PutSetting(ctx, cursorSetting(), ""); err != nil {
				return rep, err
			}
			return Run(ctx, events, shop, opts, log)
		}
		if err != nil {
			return rep, err
		}
		if len(page) == 0 {
			break
		}
		if cursor, err = handlePage(ctx, shop, page, opts.MaxEvents, &rep); err != nil {
			return rep, err
		}
		if !more {
			break
		}
	}
	rep.Cursor = cursor
	rep.Truncated = rep.Listed >= opts.MaxEvents
	log.InfoContext(ctx, "reconciled with Stripe's events", "listed", rep.Listed, "applied", rep.Applied,
		"duplicates", rep.Duplicates, "truncated", rep.Truncated, "cursor", rep.Cursor)
	return rep, nil
}

// oldestPage walks the window from the newest event back to the oldest,
// keeping only the last page it reads (the window's oldest events), handles
// that page, and returns the cursor after it, or "" if the window is empty.
func oldestPage(ctx context.Context, events Events, shop Shop, opts Options, rep *Report) (string, error) {
	var last []*stripe.Event
	after := ""
	for {
		page, more, err := listPage(ctx, events, func(p *stripe.EventListParams) {
			p.CreatedRange = &stripe.RangeQueryParams{GreaterThanOrEqual: opts.Since.Unix()}
			if after != "" {
				p.StartingAfter = stripe.String(after)
			}
		})
		if err != nil {
			return "", err
		}
		if len(page) > 0 {
			last, after = page, page[0].ID // the page's oldest
		}
		if !more || len(page) == 0 {
			break
		}
	}
	if len(last) == 0 {
		return "", nil
	}
	return handlePage(ctx, shop, last, opts.MaxEvents, rep)
}

// listPage lists one page of events and returns it oldest first. Stripe
// lists newest first; stripe-go turns a page fetched with ending_before
// around already.
func listPage(ctx context.Context, events Events, set func(*stripe.EventListParams)) ([]*stripe.Event, bool, error) {
	p := &stripe.EventListParams{Types: stripe.StringSlice(orders.ReconciledTypes())}
	p.Context = ctx
	p.Limit = stripe.Int64(pageSize)
	p.Single = true
	set(p)
	it := events.List(p)
	var page []*stripe.Event
	for it.Next() {
		page = append(page, it.Event())
	}
	if err := it.Err(); err != nil {
		return nil, false, fmt.Errorf("list events: %w", err)
	}
	if p.EndingBefore == nil {
		slices.Reverse(page)
	}
	return page, it.Meta() != nil && it.Meta().HasMore, nil
}

// handlePage handles a page, oldest first, within the run's bound, stores
// the cursor after the last event handled and returns it.
func handlePage(ctx context.Context, shop Shop, page []*stripe.Event, max int, rep *Report) (string, error) {
	cursor := ""
	for _, ev := range page {
		if rep.Listed >= max {
			break
		}
		b, err := json.Marshal(ev)
		if err != nil {
			return "", fmt.Errorf("encode event %s: %w", ev.ID, err)
		}
		_, res, err := shop.HandleSigned(ctx, b)
		if err != nil {
			if cursor != "" {
				err = errors.Join(err, shop.PutSetting(ctx, cursorSetting(), cursor))
			}
			return "", err
		}
		rep.Listed++
		if res.Duplicate {
			rep.Duplicates++
		} else {
			rep.Applied++
		}
		cursor = ev.ID
	}
	if err := shop.PutSetting(ctx, cursorSetting(), cursor); err != nil {
		return "", fmt.Errorf("store the cursor: %w", err)
	}
	return cursor, nil
}
