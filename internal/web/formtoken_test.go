package web

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/shopcheckout/shop/internal/orders"
)

func TestFormTokensUnit(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f := formTokens{key: []byte("key-0123456789abcdef"), ttl: 30 * time.Minute, now: func() time.Time { return now }}
	tok := f.issue()
	if len(tok) != 48 || strings.Trim(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") != "" {
		t.Fatalf("token %q: want 48 characters of [A-Za-z0-9_-]", tok)
	}
	if tok == f.issue() {
		t.Error("two tokens are the same")
	}
	if !f.valid(tok) {
		t.Fatal("a fresh token is refused")
	}
	flipped := []byte(tok)
	flipped[5] ^= 1
	other := formTokens{key: []byte("another-key-0123456"), ttl: time.Hour, now: f.now}
	for name, bad := range map[string]string{
		"made up":          strings.Repeat("A", 48),
		"tampered":         string(flipped),
		"another key's":    other.issue(),
		"truncated":        tok[:40],
		"empty":            "",
		"not base64":       strings.Repeat("*", 48),
		"old random token": "dGhpcyBpcyAyNCBieXRlcyBsb25n",
	} {
		if f.valid(bad) {
			t.Errorf("%s token accepted", name)
		}
	}
	late := f
	late.now = func() time.Time { return now.Add(30*time.Minute + time.Second) }
	if late.valid(tok) {
		t.Error("a token past its life is accepted")
	}
	early := f
	early.now = func() time.Time { return now.Add(29 * time.Minute) }
	if !early.valid(tok) {
		t.Error("a token within its life is refused")
	}
}

// TestFormTokenNamesOneOrder: the home page's token names one order for a
// repeated post; a token the shop did not sign gets a fresh order each time,
// so nobody can aim at another shopper's order.
func TestFormTokenNamesOneOrder(t *testing.T) {
	ts := newTestServer(t)
	post := func(token string) string {
		t.Helper()
		ts.do(t, "POST", "/create-checkout-session", formBody("product_id", "tshirt", "quantity", "1", "checkout_token", token), "Content-Type", formType)
		return *ts.fake.lastParams(t).ClientReferenceID
	}
	token := ts.homeToken(t)
	if a, b := post(token), post(token); a != b {
		t.Errorf("the home page's token named orders %s and %s, want one", a, b)
	}
	madeUp := strings.Repeat("Zz", 24)
	a, b := post(madeUp), post(madeUp)
	if a == b {
		t.Errorf("a made-up token named one order twice (%s): a guessed token could reach another shopper's order", a)
	}
	for _, id := range []string{a, b} {
		if id == orders.IDFor(madeUp+"|tshirt|1") {
			t.Errorf("a made-up token's order id %s was derived from the token", id)
		}
	}
	page, err := ts.svc.ListOrders(context.Background(), orders.ListFilter{})
	if err != nil || len(page.Orders) != 3 {
		t.Errorf("%d orders, %v; want 3 (one for the signed token, one per made-up post)", len(page.Orders), err)
	}
}
