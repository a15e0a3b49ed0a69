// Package reconcile catches up on Stripe events the webhook missed. Stripe
// retries a failed delivery for three days and keeps events for thirty; a
// shop that was down longer, or whose endpoint was misconfigured, lists the
// events through the Events API and feeds them through the same idempotent
// path as the webhook, so running it twice, or beside live webhooks, changes
// nothing more.
package reconcile

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/event"

	"github.com/shopcheckout/shop/internal/orders"
)

// MaxWindow is how far back Stripe keeps events.
const MaxWindow = 30 * 24 * time.Hour

// maxEvents bounds one run, so a huge backlog cannot exhaust memory; a second
// run picks up the rest.
const maxEvents = 50_000

// Events is the part of Stripe's Events API reconciliation calls;
// client.API.Events satisfies it.
type Events interface {
	List(params *stripe.EventListParams) *event.Iter
}

// Report says what a run did.
type Report struct {
	Listed     int // checkout.session.* events Stripe returned
	Applied    int // new to the shop and applied now
	Duplicates int // already applied (by the webhook or an earlier run)
	Truncated  bool
}

// Run lists checkout.session.* events created since the given time and
// applies those the shop has not seen, oldest first.
func Run(ctx context.Context, events Events, svc *orders.Service, since time.Time, log *slog.Logger) (Report, error) {
	var rep Report
	params := &stripe.EventListParams{
		Type:         stripe.String("checkout.session.*"),
		CreatedRange: &stripe.RangeQueryParams{GreaterThanOrEqual: since.Unix()},
	}
	params.Context = ctx
	params.Limit = stripe.Int64(100)
	var bodies [][]byte
	it := events.List(params)
	for it.Next() {
		if len(bodies) == maxEvents {
			rep.Truncated = true
			break
		}
		b, err := json.Marshal(it.Event())
		if err != nil {
			return rep, fmt.Errorf("encode event: %w", err)
		}
		bodies = append(bodies, b)
	}
	if err := it.Err(); err != nil {
		return rep, fmt.Errorf("list events: %w", err)
	}
	rep.Listed = len(bodies)
	slices.Reverse(bodies) // Stripe lists newest first
	for _, b := range bodies {
		ev, err := orders.ParseEvent(b)
		if err != nil {
			log.WarnContext(ctx, "reconcile: skipping an event that does not parse", "error", err)
			continue
		}
		res, err := svc.HandleEvent(ctx, ev)
		if err != nil {
			return rep, fmt.Errorf("apply event %s: %w", ev.ID, err)
		}
		if res.Duplicate {
			rep.Duplicates++
		} else {
			rep.Applied++
		}
	}
	log.InfoContext(ctx, "reconciled with Stripe's events", "since", since.UTC().Format(time.RFC3339),
		"listed", rep.Listed, "applied", rep.Applied, "duplicates", rep.Duplicates, "truncated", rep.Truncated)
	return rep, nil
}
