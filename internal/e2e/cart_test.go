package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/go-cmp/cmp"

	"github.com/shopcheckout/shop/internal/catalog"
	"github.com/shopcheckout/shop/internal/orders"
)

// cartProducts is a shop of two products in one currency.
var cartProducts = []catalog.Product{
	{ID: "tshirt", Name: "T-shirt", Description: "Comfortable cotton T-shirt", UnitAmount: 2000, Currency: "usd", Image: "/static/tshirt.svg"},
	{ID: "mug", Name: "Mug", Description: "A mug for your coffee", UnitAmount: 1250, Currency: "usd"},
}

// TestCart fills a cart with two products from the home page, changes a
// quantity on the cart page, checks out and pays, then finds both lines on
// the success page, in the store, in the admin and in the confirmation
// email, and the cart emptied; with JavaScript on (main.js adds to the
// cart in place) and off (every form posts and is answered 303).
func TestCart(t *testing.T) {
	for _, noScript := range []bool{false, true} {
		name := "javascript"
		if noScript {
			name = "no javascript"
		}
		t.Run(name, func(t *testing.T) { testCart(t, noScript) })
	}
}

func testCart(t *testing.T, noScript bool) {
	st := newStackWith(t, stackOptions{mail: true, products: cartProducts})
	b := newBrowser(t, browserOptions{noScript: noScript}, nil)
	shopper := "cart-" + strings.ToLower(rand.Text()[:10]) + "@example.com"

	b.open(t, st.shopURL+"/")
	b.wantText(t, "#cart-count", "0")
	b.setValue(t, "#product-tshirt input[name=quantity]", "2")
	addToCart(t, b, st, "tshirt", noScript, "2")
	b.setValue(t, "#product-mug input[name=quantity]", "1")
	addToCart(t, b, st, "mug", noScript, "3")
	b.screenshot(t, "cart-home.png")

	if got := b.clickAndLoad(t, "#cart-link"); got != http.StatusOK {
		t.Fatalf("cart page: got status %d, want 200", got)
	}
	b.wantPage(t, st.shopURL+"/cart")
	b.wantText(t, "#line-tshirt .amount", "$40.00")
	b.wantText(t, "#line-mug .amount", "$12.50")
	b.wantText(t, ".subtotal", "$52.50")

	b.setValue(t, "#line-tshirt input[name=quantity]", "3")
	if got := b.clickAndLoad(t, "#line-tshirt button.update"); got != http.StatusOK {
		t.Fatalf("after the update: got status %d, want the cart page", got)
	}
	b.wantPage(t, st.shopURL+"/cart")
	b.wantText(t, "#line-tshirt .amount", "$60.00")
	b.wantText(t, ".subtotal", "$72.50")
	wantExactText(t, b, "#cart-count", "4")
	b.screenshot(t, "cart.png")

	if got := b.clickAndLoad(t, "#checkout"); got != http.StatusOK {
		t.Fatalf("checkout page: got status %d, want 200", got)
	}
	id := strings.TrimPrefix(b.wantPage(t, st.simURL+"/pay/cs_test_"), st.simURL+"/pay/")
	b.wantText(t, "#total", "$72.50")
	b.setValue(t, "#email", shopper)
	b.setValue(t, "#card", cardOK)
	if got := b.clickAndLoad(t, "#pay"); got != http.StatusOK {
		t.Fatalf("success page: got status %d, want 200", got)
	}

	// The success page lists both lines, and the cart it bought is gone.
	b.wantPage(t, st.shopURL+"/success?session_id="+id)
	b.wantText(t, ".receipt h1", "Payment received")
	wantRow(t, b, ".receipt .items tbody tr:nth-child(1)", "T-shirt", "3", "$60.00")
	wantRow(t, b, ".receipt .items tbody tr:nth-child(2)", "Mug", "1", "$12.50")
	b.wantText(t, ".receipt #total", "$72.50")
	wantExactText(t, b, "#cart-count", "0")
	b.screenshot(t, "cart-success.png")

	o := st.waitOrder(t, id, orders.StatusPaid)
	want := []orders.Item{
		{ProductID: "tshirt", Name: "T-shirt", UnitAmount: 2000, Quantity: 3},
		{ProductID: "mug", Name: "Mug", UnitAmount: 1250, Quantity: 1},
	}
	if diff := cmp.Diff(want, o.Items); diff != "" {
		t.Errorf("order items (-want +got):\n%s", diff)
	}
	if o.AmountTotal != 7250 || o.Currency != "usd" || o.Email != shopper {
		t.Errorf("order: got %d %s for %q, want 7250 usd for %q", o.AmountTotal, o.Currency, o.Email, shopper)
	}
	st.assertFulfilledOnce(t, o.ID)

	// The confirmation email lists both lines.
	msgs := st.mailbox.Wait(t, "to:"+shopper+" subject:confirmed", 1, 20*time.Second)
	if len(msgs) != 1 {
		t.Fatalf("confirmation emails to %s: got %d, want 1", shopper, len(msgs))
	}
	m := st.mailbox.Message(t, msgs[0].ID)
	for _, line := range []string{"3 x T-shirt", "$60.00", "1 x Mug", "$12.50", "Total: $72.50"} {
		if !strings.Contains(m.Text, line) {
			t.Errorf("confirmation email lacks %q:\n%s", line, m.Text)
		}
	}
	for _, cell := range []string{"<td>T-shirt</td>", "<td>Mug</td>"} {
		if !strings.Contains(m.HTML, cell) {
			t.Errorf("confirmation email's HTML lacks %q", cell)
		}
	}

	// The admin shows both lines, in the list and on the order's page.
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+adminPassword))
	b.setHeaders(t, map[string]any{"Authorization": auth})
	b.open(t, st.shopURL+"/admin/orders")
	b.wantText(t, "tbody tr.status-paid td:nth-child(4)", "3 × T-shirt, 1 × Mug")
	b.open(t, st.shopURL+"/admin/orders/"+o.ID)
	for _, text := range []string{"tshirt", "T-shirt", "mug", "Mug", "$72.50"} {
		b.wantText(t, "main", text)
	}
	b.setHeaders(t, map[string]any{})

	b.open(t, st.shopURL+"/cart")
	b.wantText(t, "#cart-empty", "Your cart is empty")
}

// addToCart presses the product's "Add to cart" and checks the header's
// count: without JavaScript the form posts and the shop answers 303 back to
// the home page; with it, main.js adds in place.
func addToCart(t *testing.T, b *browser, st *stack, productID string, noScript bool, wantCount string) {
	t.Helper()
	sel := "#product-" + productID + " button.add-to-cart"
	if noScript {
		if got := b.clickAndLoad(t, sel); got != http.StatusOK {
			t.Fatalf("add %s: got status %d, want the home page", productID, got)
		}
		b.wantPage(t, st.shopURL+"/")
	} else {
		b.do(t, chromedp.Click(chromedp.CSS(sel)))
		waitText(t, b, "#cart-count", wantCount)
		b.wantText(t, "#cart-status", "Added to your cart")
		b.wantPage(t, st.shopURL+"/")
	}
	wantExactText(t, b, "#cart-count", wantCount)
}

// waitText waits up to stepTimeout for the element's text to be want.
func waitText(t testing.TB, b *browser, sel, want string) {
	t.Helper()
	var got string
	err := poll(stepTimeout, func() (bool, error) {
		ctx, cancel := context.WithTimeout(b.ctx, time.Second)
		defer cancel()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		got = strings.TrimSpace(s)
		return err == nil && got == want, nil
	})
	if err != nil {
		t.Fatalf("text of %s: got %q, want %q: %v", sel, got, want, err)
	}
}

// wantExactText fails the test unless the element's text is want.
func wantExactText(t testing.TB, b *browser, sel, want string) {
	t.Helper()
	if got := b.text(t, sel); got != want {
		t.Errorf("text of %s: got %q, want %q", sel, got, want)
	}
}

// wantRow checks the cells of a table row.
func wantRow(t testing.TB, b *browser, row string, cells ...string) {
	t.Helper()
	for i, want := range cells {
		sel := row + " td:nth-child(" + string(rune('1'+i)) + ")"
		if got := b.text(t, sel); got != want {
			t.Errorf("%s: got %q, want %q", sel, got, want)
		}
	}
}
