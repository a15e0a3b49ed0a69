package orders_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/shopcheckout/shop/internal/orders"
	"github.com/shopcheckout/shop/internal/sqlite"
	"github.com/shopcheckout/shop/internal/storetest"
)

// TestServiceFulfilsOnce drives the Service through the paths that can
// fulfil an order: the webhook (twice), the success page, and the start-up
// sweep. The Fulfiller and the OnFulfilled hook (which feeds the metrics)
// each run once; a failing Fulfiller records nothing and is retried.
func TestServiceFulfilsOnce(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "shop.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	calls, hooks, failNext := 0, 0, true
	svc := orders.NewService(store, orders.FulfillerFunc(func(context.Context, orders.Order) error {
		calls++
		if failNext {
			failNext = false
			return errors.New("warehouse down")
		}
		return nil
	}), slog.New(slog.NewTextHandler(io.Discard, nil)), orders.OnFulfilled(func(orders.Order) { hooks++ }))

	o := storetest.NewOrder("ord_service")
	if err := store.CreateOrder(ctx, o); err != nil {
		t.Fatal(err)
	}
	ev := storetest.CompletedEvent("evt_service", o, "paid")
	if _, err := svc.HandleEvent(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if got, _ := store.Order(ctx, o.ID); got.Status != orders.StatusPaid || got.FulfilledAt != nil {
		t.Fatalf("after a failing Fulfiller: got %s fulfilled=%v, want paid, not fulfilled", got.Status, got.FulfilledAt)
	}
	if n, err := svc.FulfilPending(ctx); err != nil || n != 1 {
		t.Fatalf("FulfilPending: got %d, %v; want 1", n, err)
	}
	if _, err := svc.HandleEvent(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Reconcile(ctx, ev.Session); err != nil {
		t.Fatal(err)
	}
	if n, err := svc.FulfilPending(ctx); err != nil || n != 0 {
		t.Fatalf("FulfilPending again: got %d, %v; want 0", n, err)
	}
	if calls != 2 || hooks != 1 {
		t.Errorf("Fulfiller calls %d (want 2: one failure, one success), OnFulfilled calls %d (want 1)", calls, hooks)
	}
}
