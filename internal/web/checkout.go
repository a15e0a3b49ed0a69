package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/stripe/stripe-go/v76"

	"github.com/shopcheckout/shop/internal/catalog"
	"github.com/shopcheckout/shop/internal/config"
	"github.com/shopcheckout/shop/internal/orders"
)

// maxCheckoutBody caps POST /create-checkout-session: a product id and a
// quantity, or a cart's 20 lines, fit in far less.
const maxCheckoutBody = 8 << 10

// checkoutRequest is what a shopper may say: which products and how many
// of each. Anything else a client sends (an amount, a price, a currency)
// is ignored.
type checkoutRequest struct {
	// ProductID and Quantity name one product: the home page's "Purchase"
	// form, or JSON {"productId", "quantity"}.
	ProductID string `json:"productId"`
	Quantity  int64  `json:"quantity"`
	// Items are a JSON client's lines: {"items": [{"productId",
	// "quantity"}, ...]}, instead of productId and quantity.
	Items []checkoutItem `json:"items"`
	// FromCart is set by the cart page's checkout, form source=cart or JSON
	// {"source": "cart"}: the lines are the shopper's cart, read from its
	// cookie.
	FromCart bool `json:"-"`
	// Source is JSON's spelling of FromCart: "cart", or absent.
	Source string `json:"source"`
	// UI is how a JSON client means to open Checkout: "embedded" (main.js,
	// about to mount Embedded Checkout with Stripe.js) gets an embedded
	// session when the shop is configured for it (CHECKOUT_UI=embedded),
	// and "hosted" or absent gets Stripe's page, as does every form post:
	// a browser that posts the form has no JavaScript to mount anything.
	UI string `json:"ui"`
	// Token is the form token the page handed out (see formTokens). The
	// same token and lines name the same order, so a double click or a
	// retried post reuses the order and, through its idempotency key, its
	// Checkout Session. A token the shop did not sign, or one past its
	// life, names nothing: the request places a fresh order.
	Token string `json:"token"`
}

// checkoutItem is one line of a JSON checkout.
type checkoutItem struct {
	ProductID string `json:"productId"`
	Quantity  int64  `json:"quantity"`
}

// Errors of a JSON checkout that cannot be read: one that names both one
// product and items, one that names products as well as the cart, and one
// with a ui or source the shop does not know.
var (
	errTwoShapes   = errors.New("both productId and items")
	errCartAndMore = errors.New("source cart with productId or items")
	errBadChoice   = errors.New("unknown ui or source")
)

// checkoutResponse answers a JSON request: a hosted session's url, or an
// embedded session's client secret for Stripe.js, never both.
type checkoutResponse struct {
	SessionID    string `json:"sessionId"`
	URL          string `json:"url,omitempty"`
	ClientSecret string `json:"clientSecret,omitempty"`
}

func (s *Server) handleCheckoutCreate(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	req, err := decodeCheckoutRequest(w, r)
	if err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			s.fail(w, r, http.StatusRequestEntityTooLarge, "The request is too large.", err)
		case errors.Is(err, errTwoShapes):
			s.fail(w, r, http.StatusBadRequest, "The request could not be read: send either a product id and a quantity, or items, not both.", err)
		case errors.Is(err, errCartAndMore):
			s.fail(w, r, http.StatusBadRequest, "The request could not be read: a checkout of the cart names no products.", err)
		case errors.Is(err, errBadChoice):
			s.fail(w, r, http.StatusBadRequest, `The request could not be read: "ui" may be "hosted" or "embedded", and "source" only "cart".`, err)
		default:
			s.fail(w, r, http.StatusBadRequest, "The request could not be read: send a product id and a quantity.", err)
		}
		return
	}
	var asked []cartLine
	switch {
	case req.FromCart:
		asked = s.readCart(r).lines
		if len(asked) == 0 {
			s.fail(w, r, http.StatusBadRequest, "Your cart is empty: add something to it first.", nil)
			return
		}
	case len(req.Items) > 0:
		for _, it := range req.Items {
			asked = append(asked, cartLine{ProductID: strings.TrimSpace(it.ProductID), Quantity: it.Quantity})
		}
	default:
		asked = []cartLine{{ProductID: req.ProductID, Quantity: req.Quantity}}
	}
	lines, problem := s.checkoutLines(asked, len(req.Items) == 0 && !req.FromCart)
	if problem != "" {
		s.fail(w, r, http.StatusBadRequest, problem, nil)
		return
	}

	placement := orders.Placement{Items: make([]orders.Item, len(lines)), Currency: lines[0].Currency}
	products := make(map[string]catalog.Product, len(lines))
	for i, l := range lines {
		placement.Items[i] = orders.Item{ProductID: l.ID, Name: l.Name, UnitAmount: l.UnitAmount, Quantity: l.Quantity}
		products[l.ID] = l.Product
	}
	if s.tokens.valid(req.Token) {
		// The same form and lines name the same order.
		placement.RequestKey = req.Token + "|" + requestLines(lines)
	}
	order, _, err := s.orders.PlaceOrder(r.Context(), placement)
	var short *orders.OutOfStock
	if errors.As(err, &short) {
		left := max(0, short.Left)
		s.failWith(w, r, http.StatusConflict, errorDetail{Message: outOfStockMessage(short), Code: "out_of_stock", ProductID: short.ProductID, Left: &left}, nil)
		return
	}
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "We could not record your order. Nothing was charged; please try again.", err)
		return
	}

	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.StripeTimeout)
	defer cancel()
	embedded := req.UI == config.CheckoutEmbedded && s.cfg.Checkout.UI == config.CheckoutEmbedded
	params, err := s.sessionParams(ctx, order, products, embedded)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, "The payment page could not be opened. Nothing was charged; please try again.", err)
		return
	}
	sess, err := s.sessions.New(params)
	if err != nil {
		s.fail(w, r, http.StatusBadGateway, "The payment page could not be opened. Nothing was charged; please try again in a moment.", stripeErr("create checkout session", err))
		return
	}
	if sess.ID == "" || (!embedded && sess.URL == "") || (embedded && sess.ClientSecret == "") {
		s.fail(w, r, http.StatusBadGateway, "The payment page could not be opened. Nothing was charged; please try again in a moment.", errors.New("stripe returned a session without id, or without url (hosted) or client_secret (embedded)"))
		return
	}
	switch err := s.orders.AttachSession(r.Context(), order.ID, sess.ID); {
	case errors.Is(err, orders.ErrRule) && order.SessionID != "" && order.SessionID != sess.ID:
		// The order's other way of paying (embedded, then hosted when it
		// would not mount): the order keeps its first session, and the
		// webhook and the success page find it from this one through
		// client_reference_id.
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "order keeps its first checkout session", slog.String("order_id", order.ID),
			slog.String("session_id", sess.ID), slog.Any("reason", err))
	case err != nil:
		// The webhook still finds the order through client_reference_id, so
		// the shopper may go on and pay.
		s.log.LogAttrs(r.Context(), slog.LevelError, "record session id", slog.String("order_id", order.ID), slog.Any("error", err))
	}
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "checkout session created",
		slog.String("order_id", order.ID), slog.String("session_id", sess.ID), slog.Bool("embedded", embedded),
		slog.Int("lines", len(order.Items)), slog.Int64("amount", order.AmountTotal), slog.String("currency", order.Currency))

	if embedded {
		// Only JSON asks for an embedded session (see checkoutRequest.UI).
		s.writeJSON(w, r, http.StatusOK, checkoutResponse{SessionID: sess.ID, ClientSecret: sess.ClientSecret})
		return
	}
	if wantsJSON(r) {
		s.writeJSON(w, r, http.StatusOK, checkoutResponse{SessionID: sess.ID, URL: sess.URL})
		return
	}
	http.Redirect(w, r, sess.URL, http.StatusSeeOther)
}

// checkoutLines prices the lines a checkout asks for from the catalogue,
// one per product (a product asked for twice is one line of the sum), or
// says what is wrong with them, in words for the shopper: an unknown
// product, a quantity outside 1 to the product's maximum, more than
// maxCartLines products, or more than one currency. single is the one
// product of the "Purchase" form, whose messages name no product.
func (s *Server) checkoutLines(asked []cartLine, single bool) ([]pricedLine, string) {
	var out []pricedLine
	at := map[string]int{}
	for i, l := range asked {
		p, err := s.catalog().Product(l.ProductID)
		if err != nil {
			if single {
				return nil, "That product is not for sale here."
			}
			return nil, fmt.Sprintf("Item %d: that product is not for sale here.", i+1)
		}
		j, ok := at[p.ID]
		if !ok {
			j, at[p.ID] = len(out), len(out)
			out = append(out, pricedLine{Product: p})
		}
		if l.Quantity < 1 || l.Quantity > p.MaxQuantity || out[j].Quantity+l.Quantity > p.MaxQuantity {
			if single {
				return nil, fmt.Sprintf("Choose a quantity from 1 to %d.", p.MaxQuantity)
			}
			return nil, fmt.Sprintf("Choose a quantity of %s from 1 to %d.", p.Name, p.MaxQuantity)
		}
		out[j].Quantity += l.Quantity
		if len(out) > maxCartLines {
			return nil, fmt.Sprintf("An order holds at most %d different products.", maxCartLines)
		}
	}
	if mixed := mixedCurrencies(subtotals(out)); mixed != "" {
		return nil, mixed
	}
	return out, ""
}

// requestLines is the lines' part of a request key: "id|quantity" per
// line, sorted by product, joined by "|" (for one product, what the key
// always was: token|id|quantity).
func requestLines(lines []pricedLine) string {
	parts := make([]string, len(lines))
	for i, l := range lines {
		parts[i] = l.ID + "|" + strconv.FormatInt(l.Quantity, 10)
	}
	slices.Sort(parts)
	return strings.Join(parts, "|")
}

// decodeCheckoutRequest reads a JSON or form-encoded body, capped.
func decodeCheckoutRequest(w http.ResponseWriter, r *http.Request) (checkoutRequest, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxCheckoutBody)
	var req checkoutRequest
	if sentJSON(r) {
		dec := json.NewDecoder(r.Body)
		if err := dec.Decode(&req); err != nil {
			return req, fmt.Errorf("decode json: %w", err)
		}
		req.ProductID = strings.TrimSpace(req.ProductID)
		switch {
		case req.UI != "" && req.UI != config.CheckoutHosted && req.UI != config.CheckoutEmbedded,
			req.Source != "" && req.Source != "cart":
			return req, errBadChoice
		case req.Source == "cart" && (req.ProductID != "" || len(req.Items) > 0):
			return req, errCartAndMore
		case req.ProductID != "" && len(req.Items) > 0:
			return req, errTwoShapes
		}
		req.FromCart = req.Source == "cart"
		return req, nil
	}
	if err := r.ParseForm(); err != nil {
		return req, fmt.Errorf("parse form: %w", err)
	}
	req.Token = r.PostForm.Get("checkout_token")
	if r.PostForm.Get("source") == "cart" {
		req.FromCart = true
		return req, nil
	}
	req.ProductID = strings.TrimSpace(r.PostForm.Get("product_id"))
	q := strings.TrimSpace(r.PostForm.Get("quantity"))
	if q == "" {
		q = "1"
	}
	n, err := strconv.ParseInt(q, 10, 64)
	if err != nil {
		n = 0 // reported as a quantity out of range
	}
	req.Quantity = n
	return req, nil
}

// sessionParams builds the Checkout Session from the server's catalogue and
// the order only: one line item per line of the order, in its order (a
// retry of the same order sends the same parameters under the same
// idempotency key), priced from products, which holds each line's product.
// An embedded session (ui_mode embedded, for Stripe.js in the shop's page)
// comes back to return_url, the success page; a hosted one to success_url
// or cancel_url.
func (s *Server) sessionParams(ctx context.Context, o orders.Order, products map[string]catalog.Product, embedded bool) (*stripe.CheckoutSessionParams, error) {
	base := s.cfg.BaseURL.String()
	items := make([]*stripe.CheckoutSessionLineItemParams, len(o.Items))
	for i, it := range o.Items {
		p, ok := products[it.ProductID]
		if !ok {
			return nil, fmt.Errorf("order %s: line %d: product %q not in the request", o.ID, i+1, it.ProductID)
		}
		items[i] = lineItem(p, it.Quantity)
	}
	params := &stripe.CheckoutSessionParams{
		Mode:              stripe.String(string(stripe.CheckoutSessionModePayment)),
		LineItems:         items,
		ClientReferenceID: stripe.String(o.ID),
		Locale:            stripe.String(s.cfg.Checkout.Locale),
	}
	// One session per order and way of paying, however often the call is
	// retried. The two ways send different parameters, so they must not
	// share a key: Stripe refuses a key reused with other parameters, and
	// a shopper whose embedded checkout failed to mount goes on to the
	// hosted page with the same order.
	success := base + "/success?session_id={CHECKOUT_SESSION_ID}"
	if embedded {
		params.UIMode = stripe.String(string(stripe.CheckoutSessionUIModeEmbedded))
		params.ReturnURL = stripe.String(success)
		params.SetIdempotencyKey("checkout-session-embedded-" + o.ID)
	} else {
		// No ui_mode: hosted is Stripe's default, and a hosted session's
		// parameters stay what they were before Embedded Checkout, so a
		// retry across an upgrade matches its key.
		params.SuccessURL = stripe.String(success)
		params.CancelURL = stripe.String(base + "/cancelled")
		params.SetIdempotencyKey("checkout-session-" + o.ID)
	}
	params.Context = ctx
	params.AddMetadata("order_id", o.ID)
	// Refunds, charges and disputes name the PaymentIntent, not the
	// session: its metadata lets them find the order even before the
	// session's completion is seen.
	params.PaymentIntentData = &stripe.CheckoutSessionPaymentIntentDataParams{}
	params.PaymentIntentData.AddMetadata("order_id", o.ID)
	params.ExpiresAt = stripe.Int64(orders.SessionExpiry(o.CreatedAt, s.cfg.SessionTTL).Unix())
	opts := s.cfg.Checkout
	if opts.PromotionCodes {
		params.AllowPromotionCodes = stripe.Bool(true)
	}
	if opts.AutomaticTax {
		params.AutomaticTax = &stripe.CheckoutSessionAutomaticTaxParams{Enabled: stripe.Bool(true)}
	}
	if len(opts.ShippingCountries) > 0 {
		params.ShippingAddressCollection = &stripe.CheckoutSessionShippingAddressCollectionParams{
			AllowedCountries: stripe.StringSlice(opts.ShippingCountries),
		}
	}
	if opts.BillingAddress {
		params.BillingAddressCollection = stripe.String(string(stripe.CheckoutSessionBillingAddressCollectionRequired))
	}
	return params, nil
}

// lineItem is one product's line of a Checkout Session: its Stripe Price,
// or else the catalogue's price, name and description.
func lineItem(p catalog.Product, quantity int64) *stripe.CheckoutSessionLineItemParams {
	item := &stripe.CheckoutSessionLineItemParams{Quantity: stripe.Int64(quantity)}
	if p.PriceID != "" {
		item.Price = stripe.String(p.PriceID)
		return item
	}
	item.PriceData = &stripe.CheckoutSessionLineItemPriceDataParams{
		Currency:   stripe.String(p.Currency),
		UnitAmount: stripe.Int64(p.UnitAmount),
		ProductData: &stripe.CheckoutSessionLineItemPriceDataProductDataParams{
			Name: stripe.String(p.Name),
		},
	}
	if p.Description != "" {
		item.PriceData.ProductData.Description = stripe.String(p.Description)
	}
	return item
}

// stripeErr describes a failed Stripe call for the log: the error type, code,
// status and request id, never Stripe's message (it can quote what we sent).
func stripeErr(op string, err error) error {
	var se *stripe.Error
	if errors.As(err, &se) {
		return fmt.Errorf("%s: stripe %s error (code %q, status %d, request %s)", op, se.Type, se.Code, se.HTTPStatusCode, se.RequestID)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: timed out", op)
	}
	return fmt.Errorf("%s: %w", op, err)
}
