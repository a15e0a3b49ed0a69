package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/price"
)

// PriceLister lists Prices; stripe-go's price.Client is one.
type PriceLister interface {
	List(params *stripe.PriceListParams) *price.Iter
}

// Skipped is a Price of the account that is not for sale here, and why.
type Skipped struct {
	PriceID string
	Reason  string
}

// maxStripePrices bounds how many Prices a catalogue is read from.
const maxStripePrices = 1000

// FromStripe reads the account's active one-time Prices, every page, with
// their Products, and makes a catalogue of them: one product per Price,
// whose id is the Price's id, named after its Product (and the Price's
// nickname, if it has one), with the Product's description and first
// image, metadata.stock as the first stock and metadata.max_quantity as the
// largest quantity. Checkouts then name the Price. Prices that cannot be
// sold as a fixed amount (of an archived Product, pay what you want,
// tiered, or with metadata that does not read) are left out and listed in
// skipped. An account with nothing to sell is an error.
func FromStripe(ctx context.Context, prices PriceLister, maxQuantity int64) (c *Catalog, skipped []Skipped, err error) {
	params := &stripe.PriceListParams{Active: stripe.Bool(true), Type: stripe.String(string(stripe.PriceTypeOneTime))}
	params.Context = ctx
	params.Limit = stripe.Int64(100)
	params.AddExpand("data.product")
	var products []Product
	it := prices.List(params)
	n := 0
	for it.Next() {
		if n++; n > maxStripePrices {
			return nil, nil, fmt.Errorf("the account has more than %d active one-time prices", maxStripePrices)
		}
		p, why := fromPrice(it.Price())
		if why == "" {
			if _, err := New([]Product{p}, maxQuantity); err != nil {
				why = strings.TrimPrefix(err.Error(), "invalid catalogue: ")
			}
		}
		if why != "" {
			skipped = append(skipped, Skipped{PriceID: it.Price().ID, Reason: why})
			continue
		}
		products = append(products, p)
	}
	if err := it.Err(); err != nil {
		return nil, nil, fmt.Errorf("list prices: %w", err)
	}
	if len(products) == 0 {
		return nil, skipped, errors.New("the Stripe account has no active one-time prices of active products to sell")
	}
	c, err = New(products, maxQuantity)
	return c, skipped, err
}

// fromPrice makes a product of a Price, or says why it cannot be one.
func fromPrice(pr *stripe.Price) (Product, string) {
	prod := pr.Product
	switch {
	case prod == nil || prod.Name == "":
		return Product{}, "its product could not be read"
	case !prod.Active || prod.Deleted:
		return Product{}, "its product is archived"
	case pr.Type != stripe.PriceTypeOneTime:
		return Product{}, "not a one-time price"
	case pr.CustomUnitAmount != nil:
		return Product{}, "the shopper chooses the amount"
	case pr.BillingScheme == stripe.PriceBillingSchemeTiered:
		return Product{}, "tiered pricing"
	}
	p := Product{
		ID: pr.ID, Name: prod.Name, Description: prod.Description,
		UnitAmount: pr.UnitAmount, Currency: string(pr.Currency), PriceID: pr.ID,
	}
	if nick := strings.TrimSpace(pr.Nickname); nick != "" {
		p.Name += " (" + nick + ")"
	}
	for _, img := range prod.Images {
		if u, err := url.Parse(img); err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" {
			p.Image = img
			break
		}
	}
	if v, ok := prod.Metadata["stock"]; ok {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return Product{}, fmt.Sprintf("metadata.stock %q is not a whole number", v)
		}
		p.Stock = &n
	}
	if v, ok := prod.Metadata["max_quantity"]; ok {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return Product{}, fmt.Sprintf("metadata.max_quantity %q is not a whole number", v)
		}
		p.MaxQuantity = n
	}
	return p, ""
}

// MarshalJSON writes the catalogue in the CATALOG_FILE format, so the shop
// can keep Stripe's last catalogue and start with it when Stripe cannot be
// read.
func (c *Catalog) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string][]Product{"products": c.products})
}

// ForPrice returns the product that sells a Stripe Price.
func (c *Catalog) ForPrice(priceID string) (Product, bool) {
	i, ok := c.byPrice[priceID]
	if !ok {
		return Product{}, false
	}
	return c.products[i], true
}
