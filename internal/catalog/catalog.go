// Package catalog holds what the shop sells. Prices live here, on the server,
// and nowhere else: a shopper's browser only ever names a product and a
// quantity.
package catalog

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

// ErrUnknownProduct is returned for a product id not in the catalogue.
var ErrUnknownProduct = errors.New("unknown product")

// Product is one thing for sale.
type Product struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	UnitAmount  int64  `json:"unitAmount"` // minor units: 2000 is $20.00
	Currency    string `json:"currency"`   // lower-case ISO 4217
	// PriceID, when set, is a Stripe Price (price_...) used instead of
	// price_data. UnitAmount and Currency must match it: they are what the
	// order records and checks Stripe's total against.
	PriceID     string `json:"priceId,omitempty"`
	MaxQuantity int64  `json:"maxQuantity,omitempty"` // 0: the shop's default
	Image       string `json:"image,omitempty"`       // path under /static, or an https URL
	// Stock, when set, is how many the shop has to sell at first: the
	// database keeps the live count from then on (absent: unlimited).
	Stock *int64 `json:"stock,omitempty"`
}

// Catalog is the immutable list of products, in display order.
type Catalog struct {
	products []Product
	byID     map[string]int
	byPrice  map[string]int // products with a PriceID
}

// Default is the tutorial's single product.
func Default(maxQuantity int64) *Catalog {
	c, err := New([]Product{{
		ID:          "tshirt",
		Name:        "T-shirt",
		Description: "Comfortable cotton T-shirt",
		UnitAmount:  2000,
		Currency:    "usd",
		Image:       "/static/tshirt.svg",
	}}, maxQuantity)
	if err != nil {
		panic(err) // the built-in catalogue is valid; a test checks it
	}
	return c
}

// Load reads a JSON catalogue: {"products": [...]}.
func Load(path string, maxQuantity int64) (*Catalog, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open catalogue: %w", err)
	}
	defer f.Close()
	return Decode(f, maxQuantity)
}

// Decode reads a JSON catalogue from r, rejecting unknown fields.
func Decode(r io.Reader, maxQuantity int64) (*Catalog, error) {
	var doc struct {
		Products []Product `json:"products"`
	}
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("decode catalogue: %w", err)
	}
	return New(doc.Products, maxQuantity)
}

var (
	idPattern       = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)
	currencyPattern = regexp.MustCompile(`^[a-z]{3}$`)
)

// New validates products and builds a catalogue. Products without a
// MaxQuantity get maxQuantity.
func New(products []Product, maxQuantity int64) (*Catalog, error) {
	if len(products) == 0 {
		return nil, errors.New("catalogue has no products")
	}
	c := &Catalog{byID: make(map[string]int, len(products)), byPrice: map[string]int{}}
	var problems []string
	for i, p := range products {
		p.Currency = strings.ToLower(p.Currency)
		if p.MaxQuantity == 0 {
			p.MaxQuantity = maxQuantity
		}
		where := fmt.Sprintf("product %d (%q)", i+1, p.ID)
		switch {
		case !idPattern.MatchString(p.ID):
			problems = append(problems, where+": id must be 1-64 letters, digits, - or _")
		case c.has(p.ID):
			problems = append(problems, where+": duplicate id")
		}
		if strings.TrimSpace(p.Name) == "" {
			problems = append(problems, where+": name is empty")
		}
		if p.UnitAmount <= 0 || p.UnitAmount > 99_999_999 {
			problems = append(problems, where+": unitAmount must be from 1 to 99999999 minor units")
		}
		if !currencyPattern.MatchString(p.Currency) {
			problems = append(problems, where+": currency must be a three-letter code such as usd")
		}
		if p.PriceID != "" && !strings.HasPrefix(p.PriceID, "price_") {
			problems = append(problems, where+": priceId must start with price_")
		}
		if p.MaxQuantity < 1 || p.MaxQuantity > 999 {
			problems = append(problems, where+": maxQuantity must be from 1 to 999")
		}
		if p.Stock != nil && (*p.Stock < 0 || *p.Stock > 1_000_000_000) {
			problems = append(problems, where+": stock must be from 0 to 1000000000")
		}
		c.byID[p.ID] = len(c.products)
		if p.PriceID != "" {
			c.byPrice[p.PriceID] = len(c.products)
		}
		c.products = append(c.products, p)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("invalid catalogue: %s", strings.Join(problems, "; "))
	}
	return c, nil
}

func (c *Catalog) has(id string) bool { _, ok := c.byID[id]; return ok }

// Products returns the products in display order.
func (c *Catalog) Products() []Product { return append([]Product(nil), c.products...) }

// Product returns the product with this id, or ErrUnknownProduct.
func (c *Catalog) Product(id string) (Product, error) {
	i, ok := c.byID[id]
	if !ok {
		return Product{}, ErrUnknownProduct
	}
	return c.products[i], nil
}
