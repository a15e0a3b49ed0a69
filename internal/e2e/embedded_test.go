package e2e

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/go-cmp/cmp"

	"github.com/shopcheckout/shop/internal/orders"
)

// TestEmbeddedCheckout buys from the home page of a shop set to
// CHECKOUT_UI=embedded, with the simulator's stand-in for Stripe.js: the
// checkout mounts in the page, in place of the products, as a frame of the
// simulator's embedded page; paying in the frame takes the page to the
// shop's success page, and the order is paid and fulfilled once.
func TestEmbeddedCheckout(t *testing.T) {
	st := newStackWith(t, stackOptions{embedded: true, simStripeJS: true})
	b := newBrowser(t, browserOptions{}, nil)

	b.open(t, st.shopURL+"/")
	b.setValue(t, "#product-tshirt input[name=quantity]", "2")
	b.do(t, chromedp.Click(chromedp.CSS("#product-tshirt button.purchase")))
	frame, id := embeddedFrame(t, b, st)
	b.wantPage(t, st.shopURL+"/")
	if shown := evaluate[bool](t, b, `document.querySelector("section.products").hidden && !document.getElementById("embedded-checkout").hidden`); !shown {
		t.Error("the embedded checkout is not shown in place of the products")
	}
	if got := inFrame(t, b, frame, "#total"); got != "$40.00" {
		t.Errorf("total in the embedded checkout: got %q, want $40.00", got)
	}
	wantStatus(t, st.order(t, id), orders.StatusPending)
	b.screenshot(t, "embedded-checkout.png")

	payInFrame(t, b, st, frame, id, email)
	wantReceipt(t, b, st, id, "Payment received", "$40.00", "2")
	o := st.waitOrder(t, id, orders.StatusPaid)
	if o.AmountTotal != 4000 || o.Email != email {
		t.Errorf("order: got %d for %q, want 4000 for %q", o.AmountTotal, o.Email, email)
	}
	st.assertFulfilledOnce(t, o.ID)
}

// TestEmbeddedCheckoutBack: "Back" puts the products back in the page
// without reloading it, and buying the same again mounts the same session.
func TestEmbeddedCheckoutBack(t *testing.T) {
	st := newStackWith(t, stackOptions{embedded: true, simStripeJS: true})
	b := newBrowser(t, browserOptions{}, nil)

	b.open(t, st.shopURL+"/")
	evaluate[bool](t, b, `window.sameDocument = true`)
	b.do(t, chromedp.Click(chromedp.CSS("#product-tshirt button.purchase")))
	_, first := embeddedFrame(t, b, st)

	b.do(t, chromedp.Click(chromedp.CSS("#embedded-checkout-back")))
	if back := evaluate[bool](t, b, `window.sameDocument === true && !document.querySelector("section.products").hidden && document.getElementById("embedded-checkout").hidden && document.querySelectorAll("#embedded-checkout iframe").length === 0 && !document.querySelector("#product-tshirt button.purchase").disabled`); !back {
		t.Fatal("after Back: want the same page with the products, no embedded checkout, and Purchase enabled")
	}

	b.do(t, chromedp.Click(chromedp.CSS("#product-tshirt button.purchase")))
	frame, again := embeddedFrame(t, b, st)
	if again != first {
		t.Errorf("buying the same again: got session %s, want %s", again, first)
	}
	payInFrame(t, b, st, frame, again, email)
	wantReceipt(t, b, st, again, "Payment received", "$20.00", "1")
	st.assertFulfilledOnce(t, st.waitOrder(t, again, orders.StatusPaid).ID)
}

// TestEmbeddedCheckoutCart checks a cart of two products out in the cart
// page's embedded checkout and finds both lines paid, and the cart emptied.
func TestEmbeddedCheckoutCart(t *testing.T) {
	st := newStackWith(t, stackOptions{embedded: true, simStripeJS: true, products: cartProducts})
	b := newBrowser(t, browserOptions{}, nil)

	b.open(t, st.shopURL+"/")
	b.setValue(t, "#product-tshirt input[name=quantity]", "2")
	addToCart(t, b, st, "tshirt", false, "2")
	b.setValue(t, "#product-mug input[name=quantity]", "1")
	addToCart(t, b, st, "mug", false, "3")
	b.open(t, st.shopURL+"/cart")
	b.wantText(t, ".subtotal", "$52.50")

	b.do(t, chromedp.Click(chromedp.CSS("#checkout")))
	frame, id := embeddedFrame(t, b, st)
	b.wantPage(t, st.shopURL+"/cart")
	if shown := evaluate[bool](t, b, `document.getElementById("cart").hidden && document.getElementById("cart-checkout").hidden && !document.getElementById("embedded-checkout").hidden`); !shown {
		t.Error("the embedded checkout is not shown in place of the cart")
	}
	if got := inFrame(t, b, frame, "#total"); got != "$52.50" {
		t.Errorf("total in the embedded checkout: got %q, want $52.50", got)
	}
	b.screenshot(t, "embedded-checkout-cart.png")

	payInFrame(t, b, st, frame, id, email)
	b.wantText(t, ".receipt h1", "Payment received")
	wantRow(t, b, ".receipt .items tbody tr:nth-child(1)", "T-shirt", "2", "$40.00")
	wantRow(t, b, ".receipt .items tbody tr:nth-child(2)", "Mug", "1", "$12.50")
	wantExactText(t, b, "#cart-count", "0")

	o := st.waitOrder(t, id, orders.StatusPaid)
	want := []orders.Item{
		{ProductID: "tshirt", Name: "T-shirt", UnitAmount: 2000, Quantity: 2},
		{ProductID: "mug", Name: "Mug", UnitAmount: 1250, Quantity: 1},
	}
	if diff := cmp.Diff(want, o.Items); diff != "" {
		t.Errorf("order items (-want +got):\n%s", diff)
	}
	st.assertFulfilledOnce(t, o.ID)
}

// TestEmbeddedCheckoutRefusedByShop: when the shop refuses the checkout
// itself (the cart's product sold out meanwhile), the page says why and
// shows the cart again, rather than trying the hosted page, which would be
// refused too.
func TestEmbeddedCheckoutRefusedByShop(t *testing.T) {
	st := newStackWith(t, stackOptions{embedded: true, simStripeJS: true, products: cartProducts})
	// Chrome logs the 409, and the stand-in says it could not mount.
	refused := func(p problem) bool {
		return strings.Contains(p.text, "status of 409") || strings.Contains(p.text, "embedded checkout could not mount")
	}
	b := newBrowser(t, browserOptions{}, refused)

	b.open(t, st.shopURL+"/")
	addToCart(t, b, st, "mug", false, "1")
	st.setStock(t, "mug", 0)
	b.open(t, st.shopURL+"/cart")
	b.do(t, chromedp.Click(chromedp.CSS("#checkout")))
	waitText(t, b, "#checkout-error", "Sorry, Mug is sold out. Nothing was charged.")
	b.wantPage(t, st.shopURL+"/cart")
	if back := evaluate[bool](t, b, `!document.getElementById("cart").hidden && document.getElementById("embedded-checkout").hidden && !document.getElementById("checkout").disabled`); !back {
		t.Error("after the refusal: want the cart shown, the embedded checkout hidden and Checkout enabled")
	}
	if n := evaluate[int](t, b, `document.querySelectorAll("#embedded-checkout iframe").length`); n != 0 {
		t.Errorf("frames left in the page: got %d, want 0", n)
	}
	// One refusal: the hosted page was not tried.
	time.Sleep(100 * time.Millisecond) // a second one would be logged by now
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, p := range b.problems {
		if strings.Contains(p.text, "status of 409") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("checkouts refused: got %d, want 1", n)
	}
}

// setStock sets what is left of a product through the admin.
func (s *stack) setStock(t testing.TB, productID string, left int) {
	t.Helper()
	req, err := http.NewRequest("POST", s.shopURL+"/admin/products/"+productID+"/stock", strings.NewReader("stock="+strconv.Itoa(left)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("admin", adminPassword)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("set the stock of %s: %v", productID, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("set the stock of %s: got %s, want 303", productID, resp.Status)
	}
}

// TestEmbeddedCheckoutFallsBackToHosted: a shop set to embedded still
// sells to a browser that cannot mount the checkout, on the hosted page:
// with JavaScript off the form posts, and with Stripe.js blocked, or a
// Stripe.js without Embedded Checkout, main.js asks for a hosted session.
func TestEmbeddedCheckoutFallsBackToHosted(t *testing.T) {
	tests := []struct {
		name        string
		browser     browserOptions
		simStripeJS bool
		wantStripe  string // typeof window.Stripe
	}{
		{"javascript off", browserOptions{noScript: true}, true, "undefined"},
		{"stripe.js blocked", browserOptions{blockStripeJS: true}, false, "undefined"},
		{"stripe.js without embedded checkout", browserOptions{}, false, "function"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newStackWith(t, stackOptions{embedded: true, simStripeJS: tt.simStripeJS})
			fromStripeJS := func(p problem) bool { return tt.browser.blockStripeJS && p.about("js.stripe.com") }
			b := newBrowser(t, tt.browser, fromStripeJS)

			b.open(t, st.shopURL+"/")
			if got := windowStripe(t, b); got != tt.wantStripe {
				t.Errorf("typeof window.Stripe: got %q, want %q", got, tt.wantStripe)
			}
			b.setValue(t, "#product-tshirt input[name=quantity]", "1")
			id := clickPurchase(t, b, st)
			b.wantText(t, "#total", "$20.00")
			payAndExpectPaid(t, b, st, id, "$20.00", "1")
		})
	}
}

// embeddedFrame waits for the embedded checkout to mount in the shop's
// page, a frame of the simulator's embedded page for a client secret, and
// returns the frame's node and the Checkout Session's id. The simulator is
// on the shop's site (127.0.0.1, another port), so Chrome keeps the frame
// in the page's process and queries reach into it from its node.
func embeddedFrame(t testing.TB, b *browser, st *stack) (*chromedp.Node, string) {
	t.Helper()
	var frame *chromedp.Node
	err := poll(stepTimeout, func() (bool, error) {
		ctx, cancel := context.WithTimeout(b.ctx, time.Second)
		defer cancel()
		nodes, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSS("#embedded-checkout-mount iframe")))
		if err != nil || len(nodes) == 0 {
			return false, nil
		}
		doc := nodes[0].ContentDocument
		if doc == nil || !strings.HasPrefix(doc.DocumentURL, st.simURL+"/embedded/") {
			return false, nil
		}
		frame = nodes[0]
		return true, nil
	})
	if err != nil {
		t.Fatalf("no embedded checkout from %s/embedded/ in the page: %v", st.simURL, err)
	}
	src, err := url.Parse(b.attr(t, "#embedded-checkout-mount iframe", "src"))
	if err != nil {
		t.Fatal(err)
	}
	secret := strings.TrimPrefix(src.Path, "/embedded/")
	id, _, ok := strings.Cut(secret, "_secret_")
	if !ok || !strings.HasPrefix(id, "cs_test_") {
		t.Fatalf("embedded checkout frame %s: want /embedded/cs_test_..._secret_...", src)
	}
	if got, want := src.Query().Get("origin"), st.shopURL; got != want {
		t.Errorf("embedded checkout's parent origin: got %q, want %q", got, want)
	}
	return frame, id
}

// inFrame returns the text of an element of the frame.
func inFrame(t testing.TB, b *browser, frame *chromedp.Node, sel string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel), chromedp.FromNode(frame)))
	if err != nil {
		t.Fatalf("text of %s in the embedded checkout: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// payInFrame pays with the good card in the embedded checkout and waits
// for the page to reach the shop's success page for the session.
func payInFrame(t testing.TB, b *browser, st *stack, frame *chromedp.Node, id, shopper string) {
	t.Helper()
	in := chromedp.FromNode(frame)
	b.do(t,
		chromedp.WaitVisible(chromedp.CSS("#email"), in),
		chromedp.SetValue(chromedp.CSS("#email"), shopper, in),
		chromedp.SetValue(chromedp.CSS("#card"), cardOK, in),
		chromedp.Click(chromedp.CSS("#pay"), in),
	)
	want := st.shopURL + "/success?session_id=" + id
	var loc string
	err := poll(stepTimeout, func() (bool, error) {
		ctx, cancel := context.WithTimeout(b.ctx, time.Second)
		defer cancel()
		l, err := chromedp.Run(ctx, chromedp.Location())
		loc = l
		return err == nil && loc == want, nil
	})
	if err != nil {
		t.Fatalf("after paying in the embedded checkout: at %s, want %s: %v", loc, want, err)
	}
}

// evaluate runs a JavaScript expression in the page.
func evaluate[T any](t testing.TB, b *browser, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}
