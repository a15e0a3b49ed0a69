package catalog

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDefault(t *testing.T) {
	c := Default(10)
	p, err := c.Product("tshirt")
	if err != nil {
		t.Fatalf("Product(tshirt): %v", err)
	}
	if p.UnitAmount != 2000 || p.Currency != "usd" || p.MaxQuantity != 10 {
		t.Errorf("got %+v, want 2000 usd, max 10", p)
	}
	if _, err := c.Product("nope"); !errors.Is(err, ErrUnknownProduct) {
		t.Errorf("Product(nope): got %v, want ErrUnknownProduct", err)
	}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		wantErr string
	}{
		{"ok", `{"products":[{"id":"mug","name":"Mug","unitAmount":1200,"currency":"EUR","maxQuantity":3}]}`, ""},
		{"price id", `{"products":[{"id":"mug","name":"Mug","unitAmount":1200,"currency":"eur","priceId":"price_123"}]}`, ""},
		{"empty", `{"products":[]}`, "no products"},
		{"unknown field", `{"products":[{"id":"mug","name":"Mug","unitAmount":1,"currency":"usd","amount":5}]}`, "unknown field"},
		{"bad id", `{"products":[{"id":"Mug!","name":"Mug","unitAmount":1,"currency":"usd"}]}`, "id must be"},
		{"duplicate", `{"products":[{"id":"a","name":"A","unitAmount":1,"currency":"usd"},{"id":"a","name":"B","unitAmount":1,"currency":"usd"}]}`, "duplicate id"},
		{"zero amount", `{"products":[{"id":"a","name":"A","unitAmount":0,"currency":"usd"}]}`, "unitAmount"},
		{"bad currency", `{"products":[{"id":"a","name":"A","unitAmount":1,"currency":"dollars"}]}`, "currency"},
		{"bad price id", `{"products":[{"id":"a","name":"A","unitAmount":1,"currency":"usd","priceId":"prod_1"}]}`, "priceId"},
		{"no name", `{"products":[{"id":"a","name":" ","unitAmount":1,"currency":"usd"}]}`, "name is empty"},
		{"max too big", `{"products":[{"id":"a","name":"A","unitAmount":1,"currency":"usd","maxQuantity":5000}]}`, "maxQuantity"},
		{"not json", `nope`, "decode catalogue"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Decode(strings.NewReader(tt.json), 10)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("got error %v, want none", err)
				}
				p := c.Products()[0]
				if p.Currency != strings.ToLower(p.Currency) {
					t.Errorf("currency %q not lower-cased", p.Currency)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.json")
	if err := os.WriteFile(path, []byte(`{"products":[{"id":"mug","name":"Mug","unitAmount":1200,"currency":"usd"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, 7)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got := c.Products()[0].MaxQuantity; got != 7 {
		t.Errorf("MaxQuantity: got %d, want 7 (the default)", got)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.json"), 7); err == nil {
		t.Error("Load of a missing file: got nil error, want one")
	}
}

func TestStock(t *testing.T) {
	c, err := Decode(strings.NewReader(`{"products":[{"id":"print","name":"Print","unitAmount":500,"currency":"usd","stock":25},
		{"id":"mug","name":"Mug","unitAmount":900,"currency":"usd"}]}`), 10)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := c.Product("print")
	m, _ := c.Product("mug")
	if p.Stock == nil || *p.Stock != 25 || m.Stock != nil {
		t.Errorf("stock: print %v, mug %v; want 25 and unlimited", p.Stock, m.Stock)
	}
	if _, err := Decode(strings.NewReader(`{"products":[{"id":"x","name":"X","unitAmount":1,"currency":"usd","stock":-1}]}`), 10); err == nil {
		t.Error("a negative stock was accepted")
	}
}
