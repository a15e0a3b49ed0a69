package web

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shopcheckout/shop/internal/catalog"
	"github.com/shopcheckout/shop/internal/orders"
)

// signedCart is a cart cookie with these lines ("id:quantity" joined by
// "."), signed with the test key as the shop signs it.
func signedCart(payload string) string {
	cc := cartCookies{key: testCartKey}
	return payload + "~" + base64.RawURLEncoding.EncodeToString(cc.mac(payload))
}

// withCatalog has the test server sell products instead of the test
// catalogue, through a CATALOG_FILE as the shop reads one.
func withCatalog(t testing.TB, products ...catalog.Product) testOption {
	t.Helper()
	b, err := json.Marshal(map[string]any{"products": products})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "catalog.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return func(c *configT) { c.CatalogFile = path }
}

// dollarShop sells three products, all in USD.
func dollarShop(t testing.TB) testOption {
	return withCatalog(t,
		catalog.Product{ID: "tshirt", Name: "T-shirt", UnitAmount: 2000, Currency: "usd"},
		catalog.Product{ID: "cap", Name: "Cap", UnitAmount: 1500, Currency: "usd", MaxQuantity: 3},
		catalog.Product{ID: "sticker", Name: "Sticker", UnitAmount: 300, Currency: "usd"},
	)
}

// shopper is a browser's cookie jar for the cart: it sends the cart cookie
// with every request and keeps what the shop sets.
type shopper struct {
	ts   *testServer
	cart string // the cookie's value; "" for none
}

func (sh *shopper) do(t testing.TB, method, target string, body io.Reader, headers ...string) *http.Response {
	t.Helper()
	if sh.cart != "" {
		headers = append(headers, "Cookie", cartCookie+"="+sh.cart)
	}
	res := sh.ts.do(t, method, target, body, headers...)
	if c := setCart(res); c != nil {
		sh.cart = c.Value
		if c.MaxAge < 0 {
			sh.cart = ""
		}
	}
	return res
}

// post sends a form.
func (sh *shopper) post(t testing.TB, target string, kv ...string) *http.Response {
	t.Helper()
	return sh.do(t, "POST", target, formBody(kv...), "Content-Type", formType)
}

// add puts quantity of a product in the cart from the home page's form.
func (sh *shopper) add(t testing.TB, productID, quantity string) {
	t.Helper()
	res := sh.post(t, "/cart/items", "product_id", productID, "quantity", quantity, "checkout_token", "ignored")
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("add %s × %s: got %d, want 303: %s", quantity, productID, res.StatusCode, readBody(t, res))
	}
}

// cartJSON reads the cart as GET /cart tells a JSON client.
func (sh *shopper) cartJSON(t testing.TB) cartJSON {
	t.Helper()
	res := sh.do(t, "GET", "/cart", nil, "Accept", "application/json")
	var body cartBody
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET /cart as JSON: got %d, %v", res.StatusCode, err)
	}
	return body.Cart
}

// lines are the cart's lines as "id×quantity".
func (c cartJSON) lines() []string {
	out := []string{}
	for _, it := range c.Items {
		out = append(out, fmt.Sprintf("%s×%d", it.ProductID, it.Quantity))
	}
	return out
}

// setCart returns the cart cookie a response sets, or nil.
func setCart(res *http.Response) *http.Cookie {
	for _, c := range res.Cookies() {
		if c.Name == cartCookie {
			return c
		}
	}
	return nil
}

var countRE = regexp.MustCompile(`<a href="/cart" class="cart-link" id="cart-link">Cart \(<span id="cart-count">(\d+)</span>\)</a>`)

// headerCount is the cart count a page's header shows ("" for none).
func headerCount(body string) string {
	m := countRE.FindAllStringSubmatch(body, -1)
	if len(m) != 1 {
		return fmt.Sprintf("%d headers", len(m))
	}
	return m[0][1]
}

func TestCartAddMergesAndShows(t *testing.T) {
	ts := newTestServer(t)
	sh := &shopper{ts: ts}

	res := sh.post(t, "/cart/items", "product_id", "tshirt", "quantity", "2")
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/#product-tshirt" {
		t.Fatalf("add: got %d to %q, want 303 back to /#product-tshirt", res.StatusCode, res.Header.Get("Location"))
	}
	c := setCart(res)
	if c == nil || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Secure || c.MaxAge != int(cartLife.Seconds()) {
		t.Errorf("cart cookie: got %+v, want HttpOnly, SameSite=Lax, Path=/, not Secure over http, Max-Age %v", c, cartLife)
	}
	sh.add(t, "mug", "1")
	sh.add(t, "tshirt", "3") // merged into the T-shirt line
	sh.add(t, "mug", "")     // a form without a quantity adds one
	if got, want := sh.cartJSON(t).lines(), []string{"tshirt×5", "mug×2"}; !cmp.Equal(got, want) {
		t.Errorf("cart: got %v, want %v", got, want)
	}
	if created, _ := ts.fake.calls(); created != 0 {
		t.Errorf("Stripe calls: got %d, want 0", created)
	}
	if list, _ := ts.store.ListOrders(context.Background(), orders.ListFilter{}); len(list) != 0 {
		t.Errorf("orders stored: got %d, want 0 (a cart is a cookie)", len(list))
	}

	body := readBody(t, sh.do(t, "GET", "/cart", nil))
	for _, want := range []string{
		`id="line-tshirt"`, `value="5" min="0" max="10"`, "$100.00", `id="line-mug"`, `value="2" min="0" max="3"`, "€25.00",
		`action="/cart/items/tshirt"`, `action="/cart/items/mug"`, "Mug &lt;b&gt;bold&lt;/b&gt;",
		"Subtotal in USD", "Subtotal in EUR", "prices in USD and EUR",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("cart page lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, `id="cart-checkout"`) {
		t.Error("the cart page offers a checkout for a cart in two currencies")
	}
	if got := headerCount(body); got != "7" {
		t.Errorf("header count on /cart: got %s, want 7", got)
	}
}

// TestCartCountOnEveryPage: the header shows the cart's item count on
// every page, the cached home page included, as plain markup (no script).
func TestCartCountOnEveryPage(t *testing.T) {
	ts := newTestServer(t)
	sid, oid := ts.checkout(t, "tshirt", "1")
	sh := &shopper{ts: ts}
	sh.add(t, "tshirt", "2")
	sh.add(t, "mug", "1")
	for _, target := range []string{"/", "/cart", "/cancelled", "/nope", "/success?session_id=" + sid, testLinks.PagePath(oid)} {
		res := sh.do(t, "GET", target, nil)
		if got := headerCount(readBody(t, res)); got != "3" {
			t.Errorf("GET %s (%d): header count got %s, want 3", target, res.StatusCode, got)
		}
		if got := headerCount(readBody(t, ts.do(t, "GET", target, nil))); got != "0" {
			t.Errorf("GET %s without a cart: header count got %s, want 0", target, got)
		}
	}
	res := sh.do(t, "GET", "/admin/orders", nil, "Authorization", "Basic "+basic("admin", "let-me-in"))
	if got := headerCount(readBody(t, res)); got != "3" {
		t.Errorf("admin: header count got %s, want 3", got)
	}
}

func TestCartAddRejects(t *testing.T) {
	full := make([]catalog.Product, maxCartLines+1)
	lines := make([]string, maxCartLines)
	for i := range full {
		full[i] = catalog.Product{ID: fmt.Sprintf("p%02d", i), Name: fmt.Sprintf("Product %d", i), UnitAmount: 100, Currency: "usd"}
		if i < maxCartLines {
			lines[i] = full[i].ID + ":1"
		}
	}
	tests := []struct {
		name       string
		opts       []testOption
		cart       string
		body       string
		json       bool
		wantStatus int
		wantMsg    string
	}{
		{"unknown product", nil, "", "product_id=hat&quantity=1", false, 400, "not for sale"},
		{"no product", nil, "", "quantity=1", false, 400, "not for sale"},
		{"quantity zero", nil, "", "product_id=tshirt&quantity=0", false, 400, "from 1 to 10"},
		{"quantity over max", nil, "", "product_id=mug&quantity=4", false, 400, "from 1 to 3"},
		{"quantity not a number", nil, "", "product_id=tshirt&quantity=lots", false, 400, "could not be read"},
		{"merged over max", nil, signedCart("mug:2"), "product_id=mug&quantity=2", false, 400, "already holds 2 of Mug"},
		{"json quantity as string", nil, "", `{"productId":"tshirt","quantity":"2"}`, true, 400, "could not be read"},
		{"json negative", nil, "", `{"productId":"tshirt","quantity":-1}`, true, 400, "from 1 to 10"},
		{"oversized", nil, "", "product_id=tshirt&pad=" + strings.Repeat("x", 10<<10), false, 413, "too large"},
		{"twenty-first product", []testOption{withCatalog(t, full...)}, signedCart(strings.Join(lines, ".")), "product_id=p20&quantity=1", false, 400, "at most 20 different products"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, tt.opts...)
			sh := &shopper{ts: ts, cart: tt.cart}
			ct := formType
			if tt.json {
				ct = "application/json"
			}
			res := sh.do(t, "POST", "/cart/items", strings.NewReader(tt.body), "Content-Type", ct)
			body := readBody(t, res)
			if res.StatusCode != tt.wantStatus || !strings.Contains(body, tt.wantMsg) {
				t.Errorf("got %d %s, want %d saying %q", res.StatusCode, body, tt.wantStatus, tt.wantMsg)
			}
			if c := setCart(res); c != nil {
				t.Errorf("a refused change set the cart cookie: %+v", c)
			}
		})
	}
	// The twentieth product still fits.
	ts := newTestServer(t, withCatalog(t, full...))
	sh := &shopper{ts: ts, cart: signedCart(strings.Join(lines[:maxCartLines-1], "."))}
	sh.add(t, "p19", "1")
	if n := len(sh.cartJSON(t).Items); n != maxCartLines {
		t.Errorf("lines: got %d, want %d", n, maxCartLines)
	}
}

func TestCartUpdate(t *testing.T) {
	ts := newTestServer(t)
	sh := &shopper{ts: ts}
	sh.add(t, "tshirt", "2")
	sh.add(t, "mug", "1")

	res := sh.post(t, "/cart/items/tshirt", "quantity", "4")
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/cart" {
		t.Fatalf("update: got %d to %q, want 303 to /cart", res.StatusCode, res.Header.Get("Location"))
	}
	if got, want := sh.cartJSON(t).lines(), []string{"tshirt×4", "mug×1"}; !cmp.Equal(got, want) {
		t.Errorf("after the update: got %v, want %v", got, want)
	}
	sh.post(t, "/cart/items/sticker", "quantity", "0") // not there, not sold: nothing to remove
	for _, bad := range []struct{ target, quantity, want string }{
		{"/cart/items/tshirt", "11", "from 0 to 10"},
		{"/cart/items/tshirt", "-1", "from 0 to 10"},
		{"/cart/items/tshirt", "", "send a quantity"},
		{"/cart/items/tshirt", "two", "send a quantity"},
		{"/cart/items/hat", "1", "not for sale"},
	} {
		res := sh.post(t, bad.target, "quantity", bad.quantity)
		if body := readBody(t, res); res.StatusCode/100 != 4 || !strings.Contains(body, bad.want) {
			t.Errorf("POST %s quantity=%q: got %d %s, want 4xx saying %q", bad.target, bad.quantity, res.StatusCode, body, bad.want)
		}
	}
	if got, want := sh.cartJSON(t).lines(), []string{"tshirt×4", "mug×1"}; !cmp.Equal(got, want) {
		t.Errorf("after refused updates: got %v, want %v", got, want)
	}

	sh.post(t, "/cart/items/mug", "quantity", "0")
	if got, want := sh.cartJSON(t).lines(), []string{"tshirt×4"}; !cmp.Equal(got, want) {
		t.Errorf("after removing the mug: got %v, want %v", got, want)
	}
	// A product set from the cart page that is not in the cart goes last.
	sh.post(t, "/cart/items/mug", "quantity", "3")
	if got, want := sh.cartJSON(t).lines(), []string{"tshirt×4", "mug×3"}; !cmp.Equal(got, want) {
		t.Errorf("after setting the mug: got %v, want %v", got, want)
	}
	sh.post(t, "/cart/items/tshirt", "quantity", "0")
	res = sh.post(t, "/cart/items/mug", "quantity", "0")
	if c := setCart(res); c == nil || c.MaxAge >= 0 {
		t.Errorf("emptying the cart: got cookie %+v, want it removed", c)
	}
	body := readBody(t, sh.do(t, "GET", "/cart", nil))
	if !strings.Contains(body, "Your cart is empty") || headerCount(body) != "0" {
		t.Errorf("empty cart page: got %s", body)
	}
}

func TestCartJSON(t *testing.T) {
	ts := newTestServer(t)
	sh := &shopper{ts: ts}
	res := sh.do(t, "POST", "/cart/items", strings.NewReader(`{"productId":"tshirt","quantity":2,"unitAmount":1}`), "Content-Type", "application/json", "Accept", "application/json")
	var body cartBody
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("add as JSON: got %d, %v", res.StatusCode, err)
	}
	want := cartJSON{
		Items:     []cartItemJSON{{ProductID: "tshirt", Name: "T-shirt", Quantity: 2, UnitAmount: 2000, Currency: "usd"}},
		Count:     2,
		Subtotals: []subtotalJSON{{Currency: "usd", Amount: 4000}},
	}
	if diff := cmp.Diff(want, body.Cart); diff != "" {
		t.Errorf("cart (-want +got):\n%s", diff)
	}
	if sh.cart == "" {
		t.Error("adding as JSON set no cart cookie")
	}
	res = sh.do(t, "POST", "/cart/items/tshirt", strings.NewReader(`{"quantity":0}`), "Content-Type", "application/json")
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil || res.StatusCode != http.StatusOK || len(body.Cart.Items) != 0 || body.Cart.Subtotals == nil {
		t.Errorf("remove as JSON: got %d %+v, %v; want an empty cart", res.StatusCode, body, err)
	}
	res = sh.do(t, "POST", "/cart/items", strings.NewReader(`{"productId":"hat"}`), "Content-Type", "application/json")
	var e errorBody
	if err := json.NewDecoder(res.Body).Decode(&e); err != nil || res.StatusCode != 400 || !strings.Contains(e.Error.Message, "not for sale") {
		t.Errorf("unknown product as JSON: got %d %+v, %v", res.StatusCode, e, err)
	}
}

// TestCartCookieTampering: whatever the cart cookie holds, the cart page
// and the home page answer 200; a cookie the shop did not write exactly so
// is an empty cart, and a change made with it starts from empty.
func TestCartCookieTampering(t *testing.T) {
	otherKey := cartCookies{key: []byte("another-shop-cart-key-0123456789")}
	over := make([]string, maxCartLines+1)
	for i := range over {
		over[i] = fmt.Sprintf("p%02d:1", i)
	}
	good := signedCart("tshirt:2.mug:1")
	payload, mac, _ := strings.Cut(good, "~")
	tests := []struct {
		name   string
		cookie string
		want   []string // the cart's lines
	}{
		{"signed", good, []string{"tshirt×2", "mug×1"}},
		{"garbage", "%%%not a cart%%%", nil},
		{"lines without a mac", payload, nil},
		{"empty mac", payload + "~", nil},
		{"quantity changed", strings.Replace(payload, "tshirt:2", "tshirt:9", 1) + "~" + mac, nil},
		{"line added", payload + ".sticker:1~" + mac, nil},
		{"mac of other lines", "tshirt:9~" + mac, nil},
		{"mac cut short", payload + "~" + mac[:10], nil},
		{"mac not base64", payload + "~" + strings.Repeat("*", len(mac)), nil},
		{"other shop's key", otherKey.encode([]cartLine{{"tshirt", 2}}), nil},
		{"two tildes", payload + "~" + mac + "~" + mac, nil},
		{"oversize", signedCart("tshirt:1." + strings.Repeat("x", maxCartCookie)), nil},
		{"signed, over the line cap", signedCart(strings.Join(over, ".")), nil},
		{"signed, product twice", signedCart("tshirt:1.tshirt:2"), nil},
		{"signed, zero quantity", signedCart("tshirt:0"), nil},
		{"signed, quantity over 999", signedCart("tshirt:1000"), nil},
		{"signed, not a number", signedCart("tshirt:two"), nil},
		{"signed, no quantity", signedCart("tshirt"), nil},
		{"signed, empty id", signedCart(":2"), nil},
		{"signed, empty line", signedCart("tshirt:1..mug:1"), nil},
		{"signed, empty", signedCart(""), nil},
		// Signed by the shop under an older catalogue: what it still sells
		// stays, within today's maximum.
		{"signed, product no longer sold", signedCart("hat:1.tshirt:2"), []string{"tshirt×2"}},
		{"signed, over today's maximum", signedCart("mug:7.tshirt:2"), []string{"mug×3", "tshirt×2"}},
	}
	ts := newTestServer(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			count := int64(0)
			for _, l := range tt.want {
				var id string
				var n int64
				fmt.Sscanf(strings.Replace(l, "×", " ", 1), "%s %d", &id, &n)
				count += n
			}
			for _, target := range []string{"/cart", "/"} {
				res := ts.do(t, "GET", target, nil, "Cookie", cartCookie+"="+tt.cookie)
				body := readBody(t, res)
				if res.StatusCode != 200 || headerCount(body) != fmt.Sprint(count) {
					t.Errorf("GET %s: got %d with header count %s, want 200 and %d", target, res.StatusCode, headerCount(body), count)
				}
			}
			sh := &shopper{ts: ts, cart: tt.cookie}
			if got, want := sh.cartJSON(t).lines(), append([]string{}, tt.want...); !cmp.Equal(got, want) {
				t.Errorf("cart: got %v, want %v", got, want)
			}
		})
	}
	for _, tt := range tests[1:3] {
		sh := &shopper{ts: ts, cart: tt.cookie}
		sh.add(t, "tshirt", "1")
		if got, want := sh.cartJSON(t).lines(), []string{"tshirt×1"}; !cmp.Equal(got, want) {
			t.Errorf("%s, then add: got %v, want %v (a fresh cart)", tt.name, got, want)
		}
	}
}

func TestCartCookieSecureOverHTTPS(t *testing.T) {
	ts := newTestServer(t, func(c *configT) { c.BaseURL, _ = url.Parse("https://shop.example.com") })
	res := ts.do(t, "POST", "/cart/items", formBody("product_id", "tshirt"), "Content-Type", formType,
		"Origin", "https://shop.example.com", "Sec-Fetch-Site", "same-origin")
	if c := setCart(res); c == nil || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode {
		t.Errorf("cart cookie with an https BASE_URL: got %+v, want Secure, HttpOnly, SameSite=Lax", c)
	}
}

func TestCartCrossOriginRefused(t *testing.T) {
	ts := newTestServer(t)
	for _, target := range []string{"/cart/items", "/cart/items/tshirt", "/cart"} {
		res := ts.do(t, "POST", target, formBody("product_id", "tshirt", "quantity", "1"), "Content-Type", formType,
			"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site")
		if res.StatusCode != http.StatusForbidden || setCart(res) != nil {
			t.Errorf("POST %s cross-origin: got %d (cookie %v), want 403 and no cookie", target, res.StatusCode, setCart(res))
		}
	}
}

// TestCartCheckout checks a cart out: one order with every line, one
// Checkout Session with a line item per product, priced from the
// catalogue; the cart stays until the order is paid.
func TestCartCheckout(t *testing.T) {
	ts := newTestServer(t, dollarShop(t))
	sh := &shopper{ts: ts}
	sh.add(t, "cap", "2")
	sh.add(t, "tshirt", "1")
	sh.add(t, "sticker", "3")
	page := readBody(t, sh.do(t, "GET", "/cart", nil))
	m := regexp.MustCompile(`id="cart-checkout"[^>]*>\s*<input type="hidden" name="source" value="cart">\s*<input type="hidden" name="checkout_token" value="([^"]+)">`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no checkout form with source=cart and a token on the cart page:\n%s", page)
	}
	if !strings.Contains(page, "$59.00") || strings.Contains(page, "Subtotal in") {
		t.Errorf("cart page: want one subtotal of $59.00:\n%s", page)
	}

	res := sh.post(t, "/create-checkout-session", "source", "cart", "checkout_token", m[1], "product_id", "tshirt", "quantity", "9")
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "https://checkout.stripe.com/") {
		t.Fatalf("checkout: got %d to %q, want 303 to Stripe: %s", res.StatusCode, res.Header.Get("Location"), readBody(t, res))
	}
	if setCart(res) != nil {
		t.Error("placing the order changed the cart: it stays until the order is paid")
	}
	p := ts.fake.lastParams(t)
	o := ts.order(t, *p.ClientReferenceID)
	wantItems := []orders.Item{
		{ProductID: "cap", Name: "Cap", UnitAmount: 1500, Quantity: 2},
		{ProductID: "tshirt", Name: "T-shirt", UnitAmount: 2000, Quantity: 1},
		{ProductID: "sticker", Name: "Sticker", UnitAmount: 300, Quantity: 3},
	}
	if diff := cmp.Diff(wantItems, o.Items); diff != "" {
		t.Errorf("order items (-want +got):\n%s", diff)
	}
	if o.AmountTotal != 5900 || o.Currency != "usd" {
		t.Errorf("order: got %d %s, want 5900 usd", o.AmountTotal, o.Currency)
	}
	var got []string
	for _, li := range p.LineItems {
		got = append(got, fmt.Sprintf("%s %d %s × %d", *li.PriceData.ProductData.Name, *li.PriceData.UnitAmount, *li.PriceData.Currency, *li.Quantity))
	}
	if diff := cmp.Diff([]string{"Cap 1500 usd × 2", "T-shirt 2000 usd × 1", "Sticker 300 usd × 3"}, got); diff != "" {
		t.Errorf("line items (-want +got):\n%s", diff)
	}

	// The same page posted again (a double click) is the same order; the
	// same page with a changed cart is another.
	sh.post(t, "/create-checkout-session", "source", "cart", "checkout_token", m[1])
	if n := ts.fake.distinctSessions(); n != 1 {
		t.Errorf("after a second post: got %d sessions, want 1", n)
	}
	sh.post(t, "/cart/items/sticker", "quantity", "1")
	sh.post(t, "/create-checkout-session", "source", "cart", "checkout_token", m[1])
	if n := ts.fake.distinctSessions(); n != 2 {
		t.Errorf("after changing the cart: got %d sessions, want 2", n)
	}
	if got := ts.order(t, *ts.fake.lastParams(t).ClientReferenceID).AmountTotal; got != 5300 {
		t.Errorf("second order: got %d, want 5300", got)
	}
}

// TestCartCheckoutRefused: an empty cart, or one in two currencies, places
// no order and calls Stripe not at all.
func TestCartCheckoutRefused(t *testing.T) {
	tests := []struct {
		name    string
		cart    string
		wantMsg string
	}{
		{"empty", "", "Your cart is empty"},
		{"forged", "tshirt:1~AAAAAAAAAAAAAAAAAAAAAA", "Your cart is empty"},
		{"two currencies", signedCart("tshirt:1.mug:1"), "prices in USD and EUR"},
	}
	for _, tt := range tests {
		for _, asJSON := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s json=%v", tt.name, asJSON), func(t *testing.T) {
				ts := newTestServer(t)
				sh := &shopper{ts: ts, cart: tt.cart}
				headers := []string{"Content-Type", formType}
				if asJSON {
					headers = append(headers, "Accept", "application/json")
				}
				res := sh.do(t, "POST", "/create-checkout-session", formBody("source", "cart"), headers...)
				body := readBody(t, res)
				if res.StatusCode != http.StatusBadRequest || !strings.Contains(body, tt.wantMsg) {
					t.Errorf("got %d %s, want 400 saying %q", res.StatusCode, body, tt.wantMsg)
				}
				if asJSON != strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
					t.Errorf("Content-Type: got %q", res.Header.Get("Content-Type"))
				}
				if created, _ := ts.fake.calls(); created != 0 {
					t.Errorf("Stripe calls: got %d, want 0", created)
				}
				if list, _ := ts.store.ListOrders(context.Background(), orders.ListFilter{}); len(list) != 0 {
					t.Errorf("orders stored: got %d, want 0", len(list))
				}
			})
		}
	}
}

func TestCheckoutJSONItems(t *testing.T) {
	many := make([]catalog.Product, maxCartLines+1)
	var items []string
	for i := range many {
		many[i] = catalog.Product{ID: fmt.Sprintf("p%02d", i), Name: fmt.Sprintf("Product %d", i), UnitAmount: 100, Currency: "usd"}
		items = append(items, fmt.Sprintf(`{"productId":"p%02d","quantity":1}`, i))
	}
	tests := []struct {
		name       string
		opts       []testOption
		body       string
		wantStatus int
		wantMsg    string
		wantLines  []string
	}{
		{"two products", nil, `{"items":[{"productId":"cap","quantity":2},{"productId":"tshirt","quantity":1}]}`, 200, "", []string{"Cap 1500 × 2", "T-shirt 2000 × 1"}},
		{"client prices ignored", nil, `{"items":[{"productId":"cap","quantity":1,"unitAmount":1,"currency":"jpy","price":"price_evil"}],"amount":1}`, 200, "", []string{"Cap 1500 × 1"}},
		{"repeats merged", nil, `{"items":[{"productId":"sticker","quantity":1},{"productId":"cap","quantity":1},{"productId":"sticker","quantity":4}]}`, 200, "", []string{"Sticker 300 × 5", "Cap 1500 × 1"}},
		{"one product as before", nil, `{"productId":"tshirt","quantity":3}`, 200, "", []string{"T-shirt 2000 × 3"}},
		{"repeats over max", nil, `{"items":[{"productId":"cap","quantity":2},{"productId":"cap","quantity":2}]}`, 400, "Cap from 1 to 3", nil},
		{"quantity over max", nil, `{"items":[{"productId":"tshirt","quantity":11}]}`, 400, "T-shirt from 1 to 10", nil},
		{"quantity zero", nil, `{"items":[{"productId":"tshirt"}]}`, 400, "T-shirt from 1 to 10", nil},
		{"unknown product", nil, `{"items":[{"productId":"tshirt","quantity":1},{"productId":"hat","quantity":1}]}`, 400, "Item 2: that product is not for sale", nil},
		{"both shapes", nil, `{"productId":"tshirt","quantity":1,"items":[{"productId":"cap","quantity":1}]}`, 400, "not both", nil},
		{"quantity as string", nil, `{"items":[{"productId":"tshirt","quantity":"1"}]}`, 400, "could not be read", nil},
		{"items not a list", nil, `{"items":{"productId":"tshirt"}}`, 400, "could not be read", nil},
		{"two currencies", nil, `{"items":[{"productId":"tshirt","quantity":1},{"productId":"mug","quantity":1}]}`, 400, "USD and EUR", nil},
		{"twenty products", []testOption{withCatalog(t, many...)}, `{"items":[` + strings.Join(items[:maxCartLines], ",") + `]}`, 200, "", nil},
		{"twenty-one products", []testOption{withCatalog(t, many...)}, `{"items":[` + strings.Join(items, ",") + `]}`, 400, "at most 20 different products", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			if opts == nil {
				opts = []testOption{withCatalog(t,
					catalog.Product{ID: "tshirt", Name: "T-shirt", UnitAmount: 2000, Currency: "usd"},
					catalog.Product{ID: "cap", Name: "Cap", UnitAmount: 1500, Currency: "usd", MaxQuantity: 3},
					catalog.Product{ID: "sticker", Name: "Sticker", UnitAmount: 300, Currency: "usd"},
					catalog.Product{ID: "mug", Name: "Mug", UnitAmount: 1250, Currency: "eur"},
				)}
			}
			ts := newTestServer(t, opts...)
			res := ts.do(t, "POST", "/create-checkout-session", strings.NewReader(tt.body), "Content-Type", "application/json")
			body := readBody(t, res)
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status: got %d, want %d: %s", res.StatusCode, tt.wantStatus, body)
			}
			created, _ := ts.fake.calls()
			if tt.wantStatus != 200 {
				var e errorBody
				if err := json.Unmarshal([]byte(body), &e); err != nil || !strings.Contains(e.Error.Message, tt.wantMsg) {
					t.Errorf("error: got %s, want a JSON error saying %q", body, tt.wantMsg)
				}
				if created != 0 {
					t.Errorf("Stripe calls: got %d, want 0", created)
				}
				return
			}
			p := ts.fake.lastParams(t)
			if tt.wantLines == nil {
				if len(p.LineItems) != maxCartLines {
					t.Errorf("line items: got %d, want %d", len(p.LineItems), maxCartLines)
				}
				return
			}
			var got []string
			for _, li := range p.LineItems {
				got = append(got, fmt.Sprintf("%s %d × %d", *li.PriceData.ProductData.Name, *li.PriceData.UnitAmount, *li.Quantity))
			}
			if diff := cmp.Diff(tt.wantLines, got); diff != "" {
				t.Errorf("line items (-want +got):\n%s", diff)
			}
			if o := ts.order(t, *p.ClientReferenceID); len(o.Items) != len(tt.wantLines) {
				t.Errorf("order lines: got %d, want %d", len(o.Items), len(tt.wantLines))
			}
		})
	}
}

// TestCheckoutJSONItemsDoubleSubmit: the same token and lines, in any
// order, name one order; other lines another.
func TestCheckoutJSONItemsDoubleSubmit(t *testing.T) {
	ts := newTestServer(t, dollarShop(t))
	token := ts.homeToken(t)
	post := func(items string) {
		t.Helper()
		res := ts.do(t, "POST", "/create-checkout-session", strings.NewReader(`{"token":"`+token+`","items":`+items+`}`), "Content-Type", "application/json")
		if res.StatusCode != 200 {
			t.Fatalf("got %d: %s", res.StatusCode, readBody(t, res))
		}
	}
	post(`[{"productId":"cap","quantity":1},{"productId":"tshirt","quantity":2}]`)
	post(`[{"productId":"tshirt","quantity":2},{"productId":"cap","quantity":1}]`)
	post(`[{"productId":"tshirt","quantity":1},{"productId":"tshirt","quantity":1},{"productId":"cap","quantity":1}]`)
	if n := ts.fake.distinctSessions(); n != 1 {
		t.Errorf("same lines: got %d sessions, want 1", n)
	}
	post(`[{"productId":"tshirt","quantity":2},{"productId":"cap","quantity":2}]`)
	if n := ts.fake.distinctSessions(); n != 2 {
		t.Errorf("other lines: got %d sessions, want 2", n)
	}
}

// TestCartCheckoutOutOfStock: a line short of stock is refused with 409
// naming the product and what is left; nothing is ordered or held, and
// Stripe is not called.
func TestCartCheckoutOutOfStock(t *testing.T) {
	ts := newTestServer(t, dollarShop(t))
	ts.setStock(t, "cap", ptr(1))
	sh := &shopper{ts: ts}
	sh.add(t, "tshirt", "1")
	sh.add(t, "cap", "2")

	res := sh.post(t, "/create-checkout-session", "source", "cart")
	if body := readBody(t, res); res.StatusCode != http.StatusConflict || !strings.Contains(body, "Only 1 of Cap left") {
		t.Errorf("form: got %d %s, want 409 saying Only 1 of Cap left", res.StatusCode, body)
	}
	if sh.cart == "" {
		t.Error("the refusal emptied the cart")
	}
	res = ts.do(t, "POST", "/create-checkout-session", strings.NewReader(`{"items":[{"productId":"tshirt","quantity":1},{"productId":"cap","quantity":2}]}`), "Content-Type", "application/json")
	var e errorBody
	if err := json.NewDecoder(res.Body).Decode(&e); err != nil || res.StatusCode != http.StatusConflict {
		t.Fatalf("json: got %d, %v", res.StatusCode, err)
	}
	if e.Error.Code != "out_of_stock" || e.Error.ProductID != "cap" || e.Error.Left == nil || *e.Error.Left != 1 || !strings.Contains(e.Error.Message, "Only 1 of Cap left") {
		t.Errorf("json error: got %+v (left %v), want out_of_stock, cap, 1 left", e.Error, e.Error.Left)
	}
	if created, _ := ts.fake.calls(); created != 0 {
		t.Errorf("Stripe calls: got %d, want 0", created)
	}
	if list, _ := ts.store.ListOrders(context.Background(), orders.ListFilter{}); len(list) != 0 {
		t.Errorf("orders stored: got %d, want 0", len(list))
	}
	ts.wantLevel(t, "cap", ptr(1), 0, 0)

	sh.post(t, "/cart/items/cap", "quantity", "1")
	if res := sh.post(t, "/create-checkout-session", "source", "cart"); res.StatusCode != http.StatusSeeOther {
		t.Errorf("with what is left: got %d, want 303", res.StatusCode)
	}
	ts.wantLevel(t, "cap", ptr(0), 1, 0)
}

// TestSuccessPageEmptiesBoughtCart: the success page of a paid order
// empties the cart it bought, and its header says so; an unpaid one, or a
// paid order of other lines, leaves the cart.
func TestSuccessPageEmptiesBoughtCart(t *testing.T) {
	ts := newTestServer(t, dollarShop(t))
	ts.sessionReads = newReadThrottle(0, time.Now) // every visit reads the session
	sh := &shopper{ts: ts}
	sh.add(t, "tshirt", "2")
	sh.add(t, "cap", "1")
	cartBought := sh.cart
	sh.post(t, "/create-checkout-session", "source", "cart")
	o := ts.order(t, *ts.fake.lastParams(t).ClientReferenceID)

	// Back from Stripe without paying: the cart stays.
	res := sh.do(t, "GET", "/success?session_id="+o.SessionID, nil)
	if body := readBody(t, res); setCart(res) != nil || headerCount(body) != "3" || !strings.Contains(body, "Waiting for payment") {
		t.Errorf("unpaid: got cookie %v, header count %s; want the cart kept (3)", setCart(res), headerCount(body))
	}
	// Another order, of other lines, paid: the cart stays.
	sid, _ := ts.checkout(t, "tshirt", "2")
	ts.fake.pay(sid, "paid", "buyer@example.com")
	res = sh.do(t, "GET", "/success?session_id="+sid, nil)
	if body := readBody(t, res); setCart(res) != nil || headerCount(body) != "3" {
		t.Errorf("another paid order: got cookie %v, header count %s; want the cart kept (3)", setCart(res), headerCount(body))
	}

	ts.fake.pay(o.SessionID, "paid", "buyer@example.com")
	res = sh.do(t, "GET", "/success?session_id="+o.SessionID, nil)
	body := readBody(t, res)
	if c := setCart(res); c == nil || c.MaxAge >= 0 || headerCount(body) != "0" {
		t.Errorf("paid: got cookie %+v, header count %s; want the cart removed and 0", c, headerCount(body))
	}
	for _, want := range []string{"Payment received", "<td>T-shirt</td><td>2</td><td>$40.00</td>", "<td>Cap</td><td>1</td><td>$15.00</td>", "$55.00"} {
		if !strings.Contains(body, want) {
			t.Errorf("success page lacks %q:\n%s", want, body)
		}
	}
	// The order page shows both lines too.
	body = readBody(t, ts.do(t, "GET", testLinks.PagePath(o.ID), nil))
	for _, want := range []string{"<td>T-shirt</td><td>2</td>", "<td>Cap</td><td>1</td>", "$55.00"} {
		if !strings.Contains(body, want) {
			t.Errorf("order page lacks %q", want)
		}
	}
	// A later visit with the same cart (a second tab) empties it too.
	res = (&shopper{ts: ts, cart: cartBought}).do(t, "GET", "/success?session_id="+o.SessionID, nil)
	if c := setCart(res); c == nil || c.MaxAge >= 0 {
		t.Errorf("paid, settled: got cookie %+v, want the cart removed", c)
	}
}

// FuzzCartCookie: no cookie value makes decode panic, and one it accepts
// is exactly what encode writes for its lines.
func FuzzCartCookie(f *testing.F) {
	for _, seed := range []string{signedCart("tshirt:2.mug:1"), signedCart("tshirt:1000"), "tshirt:1~", "~", "", strings.Repeat("a:1.", 30)} {
		f.Add(seed)
	}
	cc := cartCookies{key: testCartKey}
	f.Fuzz(func(t *testing.T, value string) {
		lines, ok := cc.decode(value)
		if ok && cc.encode(lines) != value {
			t.Fatalf("accepted %q, which encodes as %q", value, cc.encode(lines))
		}
		if ok && (len(lines) == 0 || len(lines) > maxCartLines) {
			t.Fatalf("accepted %d lines", len(lines))
		}
	})
}
