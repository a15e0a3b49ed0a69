package app

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/shopcheckout/shop/internal/catalog"
	"github.com/shopcheckout/shop/internal/orders"
)

// storedCatalog is the setting that keeps Stripe's last catalogue, for a
// start-up when Stripe cannot be read.
const storedCatalog = "catalog.stripe"

// catalogRetry is how soon a Stripe catalogue that could not be read is
// tried again, whatever CATALOG_REFRESH says.
const catalogRetry = time.Minute

// fileCatalog is the catalogue of CATALOG_FILE, or the built-in one.
func fileCatalog(path string, maxQuantity int64) (*catalog.Catalog, error) {
	if path == "" {
		return catalog.Default(maxQuantity), nil
	}
	c, err := catalog.Load(path, maxQuantity)
	if err != nil {
		return nil, fmt.Errorf("CATALOG_FILE: %w", err)
	}
	return c, nil
}

// RefreshCatalog reads Stripe's catalogue again and sells from it: it is
// stored (for a start-up without Stripe), and its products' first stock
// seeded. On a failure the catalogue stays as it was, saying why.
func (a *App) RefreshCatalog(ctx context.Context) error {
	if a.prices == nil {
		return nil // a file's catalogue: nothing to read
	}
	ctx, cancel := context.WithTimeout(ctx, 4*a.Config.StripeTimeout)
	defer cancel()
	c, skipped, err := catalog.FromStripe(ctx, a.prices, a.Config.Checkout.MaxQuantityDefault)
	if err != nil {
		a.catalog.Fail("Stripe could not be read: " + err.Error())
		return fmt.Errorf("read the catalogue from Stripe: %w", err)
	}
	for _, s := range skipped {
		a.log.Warn("catalogue: a price is not for sale", "price_id", s.PriceID, "reason", s.Reason)
	}
	if err := a.seedStock(ctx, c); err != nil {
		a.catalog.Fail("the stock of the new products could not be stored: " + err.Error())
		return err
	}
	before := a.catalog.Current()
	a.catalog.Set(c, time.Now(), "")
	if b, err := json.Marshal(c); err != nil {
		a.log.Error("catalogue: not stored", "error", err)
	} else if err := a.Orders.PutSetting(ctx, storedCatalog, string(b)); err != nil {
		a.log.Warn("catalogue: not stored; a start-up without Stripe would have none", "error", err)
	}
	if before == nil || !sameProducts(before, c) {
		a.log.Info("catalogue read from Stripe", "products", len(c.Products()), "skipped", len(skipped))
	}
	return nil
}

// sameProducts reports whether two catalogues sell the same things.
func sameProducts(a, b *catalog.Catalog) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// startCatalog reads Stripe's catalogue at start-up. If Stripe cannot be
// read the shop starts with the last catalogue it stored, saying it may be
// out of date; with none stored it starts closed, its home page saying why,
// until a later read succeeds.
func (a *App) startCatalog(ctx context.Context) {
	err := a.RefreshCatalog(ctx)
	if err == nil {
		return
	}
	stored, serr := a.Orders.Setting(ctx, storedCatalog)
	if serr == nil && stored != "" {
		c, derr := catalog.Decode(strings.NewReader(stored), a.Config.Checkout.MaxQuantityDefault)
		if derr == nil {
			a.catalog.Set(c, time.Time{}, "Stripe could not be read at start-up, so the shop sells from the catalogue it last read")
			a.log.Warn("catalogue: Stripe could not be read; selling from the last catalogue stored", "error", err, "products", len(c.Products()))
			return
		}
		serr = derr
	}
	a.log.Error("catalogue: Stripe could not be read and no catalogue is stored: the shop is closed until it can be read",
		"error", err, "stored", serr)
}

// refreshCatalogEvery reads Stripe's catalogue every interval, sooner when
// poked (a product.* or price.* webhook), and a minute after a failure.
func (a *App) refreshCatalogEvery(ctx context.Context, every time.Duration) {
	wait := every
	if a.catalog.Current() == nil || a.catalog.Problem() != "" {
		wait = catalogRetry
	}
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-a.catalogPoke:
			t.Stop()
		case <-t.C:
		}
		wait = every
		if err := a.RefreshCatalog(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("catalogue: not read again; the shop keeps selling from the one it has", "error", err)
			wait = catalogRetry
		}
	}
}

// pokeCatalog has the catalogue read again soon, for an event about
// Stripe's products or prices.
func (a *App) pokeCatalog(eventType string) {
	if a.prices == nil || !(strings.HasPrefix(eventType, "product.") || strings.HasPrefix(eventType, "price.")) {
		return
	}
	select {
	case a.catalogPoke <- struct{}{}:
	default: // a read is already due
	}
}

// seedStock gives the catalogue's stocked products their first count.
func (a *App) seedStock(ctx context.Context, c *catalog.Catalog) error {
	seeds := map[string]int64{}
	for _, p := range c.Products() {
		if p.Stock != nil {
			seeds[p.ID] = *p.Stock
		}
	}
	return a.Orders.SeedStock(ctx, seeds)
}

// priceProduct maps a Stripe Price to the product of the current catalogue
// that sells it.
func (a *App) priceProduct(priceID string) (string, bool) {
	p, ok := a.catalog.Selling().ForPrice(priceID)
	return p.ID, ok
}

// lineItems reads a Checkout Session's lines from Stripe, for a Payment
// Link sale.
func lineItems(sc *client.API, timeout time.Duration) orders.LineItems {
	return func(ctx context.Context, sessionID string) ([]orders.LinkLine, error) {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		params := &stripe.CheckoutSessionListLineItemsParams{Session: stripe.String(sessionID)}
		params.Context = ctx
		params.Limit = stripe.Int64(100)
		var out []orders.LinkLine
		it := sc.CheckoutSessions.ListLineItems(params)
		for it.Next() {
			li := it.LineItem()
			l := orders.LinkLine{Name: li.Description, Quantity: li.Quantity, AmountTotal: li.AmountTotal, Currency: string(li.Currency)}
			if li.Price != nil {
				l.PriceID, l.UnitAmount = li.Price.ID, li.Price.UnitAmount
			}
			if l.UnitAmount == 0 && li.Quantity > 0 {
				l.UnitAmount = li.AmountSubtotal / li.Quantity
			}
			out = append(out, l)
			if len(out) > 100 {
				break
			}
		}
		if err := it.Err(); err != nil {
			return nil, err
		}
		return out, nil
	}
}
