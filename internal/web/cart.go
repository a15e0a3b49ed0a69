package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/shopcheckout/shop/internal/catalog"
	"github.com/shopcheckout/shop/internal/money"
	"github.com/shopcheckout/shop/internal/orders"
)

// The cart. A shopper's cart lives in one cookie the shop signs, never in
// the database: nobody pays for rows of carts nobody buys. The cookie names
// products and quantities only; prices are the catalogue's, read whenever
// the cart is shown or checked out. A cookie the shop did not sign, or
// cannot read, is an empty cart, never an error. A signed one may name a
// product the catalogue has since dropped (that line is left out) or more
// than a product's maximum quantity now allows (the line is cut to it): the
// shop wrote it, so it is honoured as far as the catalogue still allows.

const (
	// maxCartLines is how many different products a cart, and an order,
	// may hold.
	maxCartLines = 20
	// cartCookie is the cookie's name.
	cartCookie = "cart"
	// cartLife is how long a browser keeps a cart nobody touches.
	cartLife = 30 * 24 * time.Hour
	// maxCartCookie caps the cookie a request may send: 20 lines of
	// 64-character ids with 3-digit quantities and the MAC take about 1,400
	// bytes. A longer one was not written by the shop and is not looked at.
	maxCartCookie = 2048
	// cartMAC is how many bytes of the HMAC-SHA256 the cookie keeps.
	cartMAC = 16
	// maxCartBody caps POST /cart/items: a product id and a quantity.
	maxCartBody = 8 << 10
)

// cartLine is one product of a cart and how many of it.
type cartLine struct {
	ProductID string
	Quantity  int64
}

// cart is a shopper's cart: at most one line per product, in the order
// they were added.
type cart struct {
	lines []cartLine
}

// count is the number of items in the cart, as the header shows it.
func (c cart) count() int64 {
	var n int64
	for _, l := range c.lines {
		n += l.Quantity
	}
	return n
}

// quantity is how many of a product the cart holds.
func (c cart) quantity(productID string) int64 {
	for _, l := range c.lines {
		if l.ProductID == productID {
			return l.Quantity
		}
	}
	return 0
}

// with returns the cart with productID's quantity set to n: a new line
// goes last, 0 removes the line.
func (c cart) with(productID string, n int64) cart {
	out := cart{lines: make([]cartLine, 0, len(c.lines)+1)}
	found := false
	for _, l := range c.lines {
		if l.ProductID == productID {
			found = true
			if n > 0 {
				out.lines = append(out.lines, cartLine{ProductID: productID, Quantity: n})
			}
			continue
		}
		out.lines = append(out.lines, l)
	}
	if !found && n > 0 {
		out.lines = append(out.lines, cartLine{ProductID: productID, Quantity: n})
	}
	return out
}

// bought reports whether items are exactly the cart's lines: the order
// bought this cart.
func (c cart) bought(items []orders.Item) bool {
	if len(c.lines) == 0 || len(items) != len(c.lines) {
		return false
	}
	for _, it := range items {
		if c.quantity(it.ProductID) != it.Quantity {
			return false
		}
	}
	return true
}

// badge is what the page header shows of the cart.
func (c cart) badge() cartBadge { return cartBadge{Count: c.count()} }

// cartBadge is what every page's header shows of the shopper's cart.
type cartBadge struct {
	Count int64
}

// cartCookies writes and reads the cart cookie: the lines as
// "id:quantity" joined by ".", then "~" and an HMAC-SHA256 of them (its
// first 16 bytes, base64url) under a key the shop keeps in its database.
// Product ids are [a-z0-9_-], so none of ":.~" can be part of one, and
// every byte is one a cookie value may hold unquoted.
type cartCookies struct {
	key    []byte
	secure bool // BASE_URL is https
}

// cookie is the Set-Cookie that stores c: one that removes the cookie when
// c is empty.
func (cc cartCookies) cookie(c cart) *http.Cookie {
	ck := &http.Cookie{Name: cartCookie, Path: "/", HttpOnly: true, Secure: cc.secure, SameSite: http.SameSiteLaxMode}
	if len(c.lines) == 0 {
		ck.MaxAge = -1
		return ck
	}
	ck.Value, ck.MaxAge = cc.encode(c.lines), int(cartLife/time.Second)
	return ck
}

func (cc cartCookies) encode(lines []cartLine) string {
	parts := make([]string, len(lines))
	for i, l := range lines {
		parts[i] = l.ProductID + ":" + strconv.FormatInt(l.Quantity, 10)
	}
	payload := strings.Join(parts, ".")
	return payload + "~" + base64.RawURLEncoding.EncodeToString(cc.mac(payload))
}

// decode returns the lines of a cookie the shop wrote, or false for any
// other: too long, unsigned, signed under another key, or not in the form
// encode writes (more than maxCartLines lines, a product twice, a quantity
// that is not a number from 1 to 999).
func (cc cartCookies) decode(value string) ([]cartLine, bool) {
	if len(value) > maxCartCookie || len(cc.key) == 0 {
		return nil, false
	}
	payload, sig, ok := strings.Cut(value, "~")
	if !ok || payload == "" {
		return nil, false
	}
	mac, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(mac, cc.mac(payload)) {
		return nil, false
	}
	parts := strings.Split(payload, ".")
	if len(parts) > maxCartLines {
		return nil, false
	}
	lines := make([]cartLine, 0, len(parts))
	seen := make(map[string]bool, len(parts))
	for _, p := range parts {
		id, q, ok := strings.Cut(p, ":")
		n, err := strconv.ParseInt(q, 10, 64)
		if !ok || id == "" || seen[id] || err != nil || n < 1 || n > 999 {
			return nil, false
		}
		seen[id] = true
		lines = append(lines, cartLine{ProductID: id, Quantity: n})
	}
	return lines, true
}

func (cc cartCookies) mac(payload string) []byte {
	m := hmac.New(sha256.New, cc.key)
	m.Write([]byte("cart-v1\x00"))
	m.Write([]byte(payload))
	return m.Sum(nil)[:cartMAC]
}

// readCart returns the request's cart as the catalogue allows it now: empty
// for a cookie the shop did not write, without the lines of products no
// longer sold, each quantity at most its product's maximum.
func (s *Server) readCart(r *http.Request) cart {
	ck, err := r.Cookie(cartCookie)
	if err != nil {
		return cart{}
	}
	lines, ok := s.carts.decode(ck.Value)
	if !ok {
		return cart{}
	}
	c := cart{lines: lines[:0]}
	for _, l := range lines {
		p, err := s.catalog().Product(l.ProductID)
		if err != nil {
			continue
		}
		c.lines = append(c.lines, cartLine{ProductID: p.ID, Quantity: min(l.Quantity, p.MaxQuantity)})
	}
	return c
}

// writeCart sets the cart cookie to c (removes it when c is empty).
func (s *Server) writeCart(w http.ResponseWriter, c cart) {
	http.SetCookie(w, s.carts.cookie(c))
}

// cartAfterSuccess returns the cart the header of o's success page shows:
// once o is paid, a cart it bought (the same lines) is emptied. Until then
// the cart stays, so a shopper who leaves Stripe's page without paying, or
// whose payment fails, still has it.
func (s *Server) cartAfterSuccess(w http.ResponseWriter, r *http.Request, o orders.Order) cart {
	c := s.readCart(r)
	if o.PaymentState() == orders.StatusPaid && c.bought(o.Items) {
		s.writeCart(w, cart{})
		return cart{}
	}
	return c
}

// pricedLine is a line with its product, from the catalogue.
type pricedLine struct {
	catalog.Product
	Quantity int64
}

// priced looks up the products of c's lines (readCart left only known ones).
func (s *Server) priced(c cart) []pricedLine {
	out := make([]pricedLine, 0, len(c.lines))
	for _, l := range c.lines {
		if p, err := s.catalog().Product(l.ProductID); err == nil {
			out = append(out, pricedLine{Product: p, Quantity: l.Quantity})
		}
	}
	return out
}

// subtotal is what the lines in one currency come to.
type subtotal struct {
	Currency string
	Amount   int64
}

// subtotals adds the lines up per currency, in the order the currencies
// first appear.
func subtotals(lines []pricedLine) []subtotal {
	var out []subtotal
	for _, l := range lines {
		i := 0
		for i < len(out) && out[i].Currency != l.Currency {
			i++
		}
		if i == len(out) {
			out = append(out, subtotal{Currency: l.Currency})
		}
		out[i].Amount += l.UnitAmount * l.Quantity
	}
	return out
}

// mixedCurrencies says why lines in several currencies cannot be paid as
// one ("" for one currency).
func mixedCurrencies(sums []subtotal) string {
	if len(sums) < 2 {
		return ""
	}
	codes := make([]string, len(sums))
	for i, st := range sums {
		codes[i] = strings.ToUpper(st.Currency)
	}
	return fmt.Sprintf("Your cart holds prices in %s and %s, and one payment is in one currency: remove the items in all but one currency to check out, then buy the others separately.",
		strings.Join(codes[:len(codes)-1], ", "), codes[len(codes)-1])
}

// cartPage is the view model of cart.html.
type cartPage struct {
	Page
	Lines     []cartLineView
	Subtotals []subtotalView
	// Mixed says why the cart cannot be checked out as it is (it mixes
	// currencies); "" when it can.
	Mixed string
	// Token is the checkout form's token (see checkoutRequest.Token).
	Token string
	// StripeJS is where the page loads Stripe.js from (STRIPE_JS_URL).
	StripeJS string
}

type cartLineView struct {
	ProductID, Name, Price, Amount string
	Quantity, MaxQuantity          int64
	Action                         string // where the line's forms post
}

type subtotalView struct {
	Currency, Amount string
}

// cartBody is the cart as JSON: GET /cart and the answer to every change.
type cartBody struct {
	Cart cartJSON `json:"cart"`
}

type cartJSON struct {
	Items     []cartItemJSON `json:"items"`
	Count     int64          `json:"count"`
	Subtotals []subtotalJSON `json:"subtotals"`
}

type cartItemJSON struct {
	ProductID  string `json:"productId"`
	Name       string `json:"name"`
	Quantity   int64  `json:"quantity"`
	UnitAmount int64  `json:"unitAmount"`
	Currency   string `json:"currency"`
}

type subtotalJSON struct {
	Currency string `json:"currency"`
	Amount   int64  `json:"amount"`
}

func (s *Server) cartJSON(c cart) cartBody {
	lines := s.priced(c)
	body := cartBody{Cart: cartJSON{Items: make([]cartItemJSON, len(lines)), Count: c.count(), Subtotals: []subtotalJSON{}}}
	for i, l := range lines {
		body.Cart.Items[i] = cartItemJSON{ProductID: l.ID, Name: l.Name, Quantity: l.Quantity, UnitAmount: l.UnitAmount, Currency: l.Currency}
	}
	for _, st := range subtotals(lines) {
		body.Cart.Subtotals = append(body.Cart.Subtotals, subtotalJSON(st))
	}
	return body
}

// handleCartPage shows the cart: its lines with forms to change or remove
// each, the subtotal per currency, and the checkout form.
func (s *Server) handleCartPage(w http.ResponseWriter, r *http.Request) {
	noStore(w) // the page is the shopper's own, and carries a form token
	c := s.readCart(r)
	if wantsJSON(r) {
		s.writeJSON(w, r, http.StatusOK, s.cartJSON(c))
		return
	}
	lines := s.priced(c)
	v := cartPage{Page: s.page("Your cart"), Lines: make([]cartLineView, len(lines)), Token: s.tokens.issue(), StripeJS: s.cfg.StripeJSURL}
	for i, l := range lines {
		v.Lines[i] = cartLineView{
			ProductID: l.ID, Name: l.Name, Quantity: l.Quantity, MaxQuantity: l.MaxQuantity,
			Price:  money.Format(l.UnitAmount, l.Currency),
			Amount: money.Format(l.UnitAmount*l.Quantity, l.Currency),
			Action: "/cart/items/" + l.ID,
		}
	}
	sums := subtotals(lines)
	for _, st := range sums {
		v.Subtotals = append(v.Subtotals, subtotalView{Currency: strings.ToUpper(st.Currency), Amount: money.Format(st.Amount, st.Currency)})
	}
	v.Mixed = mixedCurrencies(sums)
	s.renderFrame(w, r, http.StatusOK, "cart", newFrame(v, c.badge()))
}

// cartRequest is what a shopper may say to the cart: a product and how
// many. Quantity is nil when the request left it out.
type cartRequest struct {
	ProductID string `json:"productId"`
	Quantity  *int64 `json:"quantity"`
}

// errNoQuantity is a quantity that is missing or not a whole number.
var errNoQuantity = errors.New("quantity missing or not a number")

// decodeCartRequest reads a JSON or form-encoded body, capped.
func decodeCartRequest(w http.ResponseWriter, r *http.Request) (cartRequest, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxCartBody)
	var req cartRequest
	if sentJSON(r) {
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			return req, fmt.Errorf("decode json: %w", err)
		}
		req.ProductID = strings.TrimSpace(req.ProductID)
		return req, nil
	}
	if err := r.ParseForm(); err != nil {
		return req, fmt.Errorf("parse form: %w", err)
	}
	req.ProductID = strings.TrimSpace(r.PostForm.Get("product_id"))
	if q := strings.TrimSpace(r.PostForm.Get("quantity")); q != "" {
		n, err := strconv.ParseInt(q, 10, 64)
		if err != nil {
			return req, fmt.Errorf("%w: %q", errNoQuantity, q)
		}
		req.Quantity = &n
	}
	return req, nil
}

// failCartRequest answers a body decodeCartRequest could not read.
func (s *Server) failCartRequest(w http.ResponseWriter, r *http.Request, err error, message string) {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		s.fail(w, r, http.StatusRequestEntityTooLarge, "The request is too large.", err)
		return
	}
	s.fail(w, r, http.StatusBadRequest, message, err)
}

// handleCartAdd adds a quantity of a product (product_id, quantity: 1 if
// left out) to the cart, on top of what it already holds, and goes back to
// the product: 303 for a form, the cart for JSON.
func (s *Server) handleCartAdd(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	req, err := decodeCartRequest(w, r)
	if err != nil {
		s.failCartRequest(w, r, err, "The request could not be read: send a product id and a quantity.")
		return
	}
	p, err := s.catalog().Product(req.ProductID)
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, "That product is not for sale here.", nil)
		return
	}
	n := int64(1)
	if req.Quantity != nil {
		n = *req.Quantity
	}
	if n < 1 || n > p.MaxQuantity {
		s.fail(w, r, http.StatusBadRequest, fmt.Sprintf("Choose a quantity from 1 to %d.", p.MaxQuantity), nil)
		return
	}
	c := s.readCart(r)
	have := c.quantity(p.ID)
	switch {
	case have+n > p.MaxQuantity:
		s.fail(w, r, http.StatusBadRequest, fmt.Sprintf("Your cart already holds %d of %s, and an order takes at most %d: change the quantity in your cart.", have, p.Name, p.MaxQuantity), nil)
		return
	case have == 0 && len(c.lines) >= maxCartLines:
		s.fail(w, r, http.StatusBadRequest, fmt.Sprintf("A cart holds at most %d different products: check out or remove one first.", maxCartLines), nil)
		return
	}
	s.cartChanged(w, r, c.with(p.ID, have+n), "/#product-"+p.ID)
}

// handleCartUpdate sets the quantity of a product in the cart (quantity;
// 0 removes it) and goes back to the cart.
func (s *Server) handleCartUpdate(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	id := chi.URLParam(r, "product_id")
	req, err := decodeCartRequest(w, r)
	if err == nil && req.Quantity == nil {
		err = errNoQuantity
	}
	if err != nil {
		s.failCartRequest(w, r, err, "The request could not be read: send a quantity (0 removes the product).")
		return
	}
	n, c := *req.Quantity, s.readCart(r)
	if n == 0 {
		s.cartChanged(w, r, c.with(id, 0), "/cart")
		return
	}
	p, err := s.catalog().Product(id)
	if err != nil {
		s.fail(w, r, http.StatusNotFound, "That product is not for sale here.", nil)
		return
	}
	switch {
	case n < 0 || n > p.MaxQuantity:
		s.fail(w, r, http.StatusBadRequest, fmt.Sprintf("Choose a quantity from 0 to %d (0 removes it).", p.MaxQuantity), nil)
		return
	case c.quantity(p.ID) == 0 && len(c.lines) >= maxCartLines:
		s.fail(w, r, http.StatusBadRequest, fmt.Sprintf("A cart holds at most %d different products: check out or remove one first.", maxCartLines), nil)
		return
	}
	s.cartChanged(w, r, c.with(p.ID, n), "/cart")
}

// cartChanged stores c and answers: the cart as JSON, or 303 to back.
func (s *Server) cartChanged(w http.ResponseWriter, r *http.Request, c cart, back string) {
	s.writeCart(w, c)
	if wantsJSON(r) {
		s.writeJSON(w, r, http.StatusOK, s.cartJSON(c))
		return
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}
