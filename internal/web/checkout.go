package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/stripe/stripe-go/v76"

	"github.com/shopcheckout/shop/internal/catalog"
	"github.com/shopcheckout/shop/internal/orders"
)

// maxCheckoutBody caps POST /create-checkout-session: a product id and a
// quantity fit in far less.
const maxCheckoutBody = 8 << 10

// checkoutRequest is what a shopper may say: which product and how many.
// Anything else a client sends (an amount, a price, a currency) is ignored.
type checkoutRequest struct {
	ProductID string `json:"productId"`
	Quantity  int64  `json:"quantity"`
	// Token is the form token the home page handed out (see formTokens).
	// The same token, product and quantity name the same order, so a double
	// click or a retried post reuses the order and, through its idempotency
	// key, its Checkout Session. A token the shop did not sign, or one past
	// its life, names nothing: the request places a fresh order.
	Token string `json:"token"`
}

// checkoutResponse answers a JSON request.
type checkoutResponse struct {
	SessionID string `json:"sessionId"`
	URL       string `json:"url"`
}

func (s *Server) handleCheckoutCreate(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	req, err := decodeCheckoutRequest(w, r)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.fail(w, r, http.StatusRequestEntityTooLarge, "The request is too large.", err)
			return
		}
		s.fail(w, r, http.StatusBadRequest, "The request could not be read: send a product id and a quantity.", err)
		return
	}
	product, err := s.catalog.Product(req.ProductID)
	if errors.Is(err, catalog.ErrUnknownProduct) {
		s.fail(w, r, http.StatusBadRequest, "That product is not for sale here.", nil)
		return
	}
	if req.Quantity < 1 || req.Quantity > product.MaxQuantity {
		s.fail(w, r, http.StatusBadRequest, fmt.Sprintf("Choose a quantity from 1 to %d.", product.MaxQuantity), nil)
		return
	}

	placement := orders.Placement{
		Items:    []orders.Item{{ProductID: product.ID, Name: product.Name, UnitAmount: product.UnitAmount, Quantity: req.Quantity}},
		Currency: product.Currency,
	}
	if s.tokens.valid(req.Token) {
		// The same form, product and quantity name the same order.
		placement.RequestKey = req.Token + "|" + product.ID + "|" + strconv.FormatInt(req.Quantity, 10)
	}
	order, _, err := s.orders.PlaceOrder(r.Context(), placement)
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "We could not record your order. Nothing was charged; please try again.", err)
		return
	}

	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.StripeTimeout)

	defer cancel()
	sess, err := s.sessions.New(s.sessionParams(ctx, order, product))
	if err != nil {
		s.fail(w, r, http.StatusBadGateway, "The payment page could not be opened. Nothing was charged; please try again in a moment.", stripeErr("create checkout session", err))
		return
	}
	if sess.URL == "" || sess.ID == "" {
		s.fail(w, r, http.StatusBadGateway, "The payment page could not be opened. Nothing was charged; please try again in a moment.", errors.New("stripe returned a session without id or url"))
		return
	}
	if err := s.orders.AttachSession(r.Context(), order.ID, sess.ID); err != nil {
		// The webhook still finds the order through client_reference_id, so
		// the shopper may go on and pay.
		s.log.LogAttrs(r.Context(), slog.LevelError, "record session id", slog.String("order_id", order.ID), slog.Any("error", err))
	}
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "checkout session created",
		slog.String("order_id", order.ID), slog.String("session_id", sess.ID), slog.Int64("amount", order.AmountTotal), slog.String("currency", order.Currency))

	if wantsJSON(r) {
		s.writeJSON(w, r, http.StatusOK, checkoutResponse{SessionID: sess.ID, URL: sess.URL})
		return
	}
	http.Redirect(w, r, sess.URL, http.StatusSeeOther)
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
		return req, nil
	}
	if err := r.ParseForm(); err != nil {
		return req, fmt.Errorf("parse form: %w", err)
	}
	req.ProductID = strings.TrimSpace(r.PostForm.Get("product_id"))
	req.Token = r.PostForm.Get("checkout_token")
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
// the order only.
func (s *Server) sessionParams(ctx context.Context, o orders.Order, p catalog.Product) *stripe.CheckoutSessionParams {
	base := s.cfg.BaseURL.String()
	item := &stripe.CheckoutSessionLineItemParams{Quantity: stripe.Int64(o.Items[0].Quantity)}
	if p.PriceID != "" {
		item.Price = stripe.String(p.PriceID)
	} else {
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
	}
	params := &stripe.CheckoutSessionParams{
		Mode:              stripe.String(string(stripe.CheckoutSessionModePayment)),
		LineItems:         []*stripe.CheckoutSessionLineItemParams{item},
		SuccessURL:        stripe.String(base + "/success?session_id={CHECKOUT_SESSION_ID}"),
		CancelURL:         stripe.String(base + "/cancelled"),
		ClientReferenceID: stripe.String(o.ID),
		Locale:            stripe.String(s.cfg.Checkout.Locale),
	}
	params.Context = ctx
	params.AddMetadata("order_id", o.ID)
	// Refunds, charges and disputes name the PaymentIntent, not the
	// session: its metadata lets them find the order even before the
	// session's completion is seen.
	params.PaymentIntentData = &stripe.CheckoutSessionPaymentIntentDataParams{}
	params.PaymentIntentData.AddMetadata("order_id", o.ID)
	params.ExpiresAt = stripe.Int64(orders.SessionExpiry(o.CreatedAt, s.cfg.SessionTTL).Unix())
	// One session per order, however often the call is retried.
	params.SetIdempotencyKey("checkout-session-" + o.ID)
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
	return params
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
