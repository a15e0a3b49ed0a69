package web

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/stripe/stripe-go/v76"

	"github.com/shopcheckout/shop/internal/money"
	"github.com/shopcheckout/shop/internal/orders"
)

// maxRefundBody caps POST /admin/orders/{id}/refund: an amount, a reason
// and a token fit in far less.
const maxRefundBody = 8 << 10

// maxIdempotencyKey is the longest Idempotency-Key a JSON client may send
// (Stripe's own limit).
const maxIdempotencyKey = 255

// refundReasons are the reasons Stripe takes for a refund.
func refundReasons() []string { return []string{"duplicate", "fraudulent", "requested_by_customer"} }

// refundRequest is what the admin may say: how much, in minor units (nil:
// everything not yet refunded), and why.
type refundRequest struct {
	Amount *int64 `json:"amount"`
	Reason string `json:"reason"`
	// Restock puts the order's quantities back in stock once the refund
	// leaves it refunded in full; it is refused, before Stripe is called,
	// for a refund of less than all that is left.
	Restock bool `json:"restock"`
	// token is the refund form's token (a form post only).
	token string
}

// refundBody answers a JSON refund: the order after it, and the refund as
// Stripe answered.
type refundBody struct {
	Order  orders.Order `json:"order"`
	Refund refundJSON   `json:"refund"`
	// Restocked says the order's quantities went back in stock.
	Restocked bool `json:"restocked"`
}

type refundJSON struct {
	ID            string    `json:"id"`
	Amount        int64     `json:"amount"`
	Currency      string    `json:"currency"`
	Status        string    `json:"status"`
	Reason        string    `json:"reason,omitempty"`
	PaymentIntent string    `json:"paymentIntent,omitempty"`
	Created       time.Time `json:"created"`
}

// handleRefundCreate refunds an order's payment through Stripe: all that
// is left, or the amount asked for.
//
// One request makes at most one refund, however often it is sent: Stripe's
// idempotency key comes from the refund form's signed token (a double
// submit sends it twice) or, for a JSON client, from the Idempotency-Key
// header it must send. A refund the shop can tell is not allowed (more than
// is left, an order never paid) is refused before Stripe is called. The
// refund is recorded from Stripe's answer by the rule the webhooks follow,
// so the charge.refunded that comes after changes nothing.
func (s *Server) handleRefundCreate(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	req, err := decodeRefundRequest(w, r)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.fail(w, r, http.StatusRequestEntityTooLarge, "The request is too large.", err)
			return
		}
		s.fail(w, r, http.StatusBadRequest, "The refund could not be read: send amount, a whole number of minor units (cents), and optionally a reason.", err)
		return
	}
	if req.Amount != nil && *req.Amount < 1 {
		s.fail(w, r, http.StatusBadRequest, "The amount must be a whole number of minor units (cents) above 0.", nil)
		return
	}
	if req.Reason != "" && !slices.Contains(refundReasons(), req.Reason) {
		s.fail(w, r, http.StatusBadRequest, "The reason must be one of "+strings.Join(refundReasons(), ", ")+", or none.", nil)
		return
	}
	id := chi.URLParam(r, "id")
	key, msg := s.refundKey(r, id, req)
	if msg != "" {
		s.fail(w, r, http.StatusBadRequest, msg, nil)
		return
	}
	o, err := s.orders.Order(r.Context(), id)
	if errors.Is(err, orders.ErrNotFound) {
		s.fail(w, r, http.StatusNotFound, "There is no such order.", nil)
		return
	}
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "The order could not be loaded; nothing was refunded.", err)
		return
	}
	if why := refundRefusal(o); why != "" {
		s.fail(w, r, http.StatusConflict, why, nil)
		return
	}
	rest := o.Refundable()
	amount := rest
	if req.Amount != nil {
		amount = *req.Amount
	}
	if amount > rest {
		s.fail(w, r, http.StatusConflict, fmt.Sprintf("At most %d (%s) is left to refund on this order; nothing was refunded.", rest, money.Format(rest, o.Currency)), nil)
		return
	}
	if why := restockRefusal(o, amount, req.Restock); why != "" {
		s.fail(w, r, http.StatusConflict, why, nil)
		return
	}

	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.StripeTimeout)
	defer cancel()
	params := &stripe.RefundParams{PaymentIntent: stripe.String(o.PaymentIntentID), Amount: stripe.Int64(amount)}
	params.Context = ctx
	if req.Reason != "" {
		params.Reason = stripe.String(req.Reason)
	}
	params.AddMetadata("order_id", o.ID)
	params.SetIdempotencyKey(key)
	refund, err := s.refunds.New(params)
	if err != nil {
		var se *stripe.Error
		if errors.As(err, &se) && se.Type == stripe.ErrorTypeIdempotency {
			s.fail(w, r, http.StatusConflict, "This form (or Idempotency-Key) was already used for a refund with other details; nothing more was refunded. Reload the order page to refund again.", stripeErr("create refund", err))
			return
		}
		s.fail(w, r, http.StatusBadGateway, "Stripe did not confirm the refund, and nothing was recorded. If it went through after all, Stripe's webhook will show it on the order page in a minute; sending the same form again never refunds twice.", stripeErr("create refund", err))
		return
	}
	var raw []byte
	if refund != nil && refund.LastResponse != nil {
		raw = refund.LastResponse.RawJSON
	}
	info, err := orders.ParseRefund(raw)
	if err != nil {
		s.fail(w, r, http.StatusBadGateway, "Stripe's answer could not be read, and nothing was recorded. If the refund was made, Stripe's webhook will show it on the order page in a minute.", fmt.Errorf("read refund answer: %w", err))
		return
	}
	after, err := s.orders.RecordRefund(r.Context(), o.ID, info)
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "Stripe made refund "+info.ID+", but the shop could not record it yet; it will show on the order page when Stripe's webhook arrives.", err)
		return
	}
	var restockErr error
	if req.Restock {
		var restocked orders.Order
		if restocked, restockErr = s.restockRefunded(r.Context(), after); restockErr == nil {
			after = restocked
		}
	}
	// The refund is made whether or not the restock worked: log it first.
	s.logAdminAction(r, "refund",
		slog.String("order_id", o.ID), slog.String("refund_id", info.ID),
		slog.Int64("amount", info.Amount), slog.String("currency", o.Currency),
		slog.String("reason", info.Reason), slog.String("refund_status", info.Status),
		slog.Int64("refunded_before", o.AmountRefunded), slog.Int64("refunded_after", after.AmountRefunded),
		slog.String("from", string(o.Status)), slog.String("to", string(after.Status)),
		slog.String("hold_from", o.HoldState), slog.String("hold_to", after.HoldState), slog.Bool("restocked", after.HoldState == orders.HoldReturned),
	)
	if restockErr != nil {
		status, msg := http.StatusServiceUnavailable, "Stripe made refund "+info.ID+" and the shop recorded it, but the quantities could not be put back in stock; set them on /admin/products."
		if errors.Is(restockErr, orders.ErrRule) {
			status, msg = http.StatusConflict, "Stripe made refund "+info.ID+" and the shop recorded it, but the order is not refunded in full, so nothing was put back in stock; set the stock on /admin/products if it should be."
		}
		s.fail(w, r, status, msg, restockErr)
		return
	}
	if wantsJSON(r) {
		s.writeJSON(w, r, http.StatusOK, refundBody{Order: after.Public(), Refund: refundJSON{
			ID: info.ID, Amount: info.Amount, Currency: o.Currency, Status: info.Status, Reason: info.Reason,
			PaymentIntent: info.PaymentIntent, Created: info.Created,
		}, Restocked: req.Restock})
		return
	}
	http.Redirect(w, r, adminOrderPath(o.ID), http.StatusSeeOther)
}

// refundKey returns the Stripe idempotency key of a refund request, or a
// message saying why the request names none.
//
// A form names its refund with its signed token: a double submit of one
// form is one refund. A JSON client must send an Idempotency-Key header;
// the shop does not derive a key from the request's content, since two
// refunds of the same amount can both be meant, and a key that counted
// what was already refunded would let a retry of a request that had
// succeeded refund a second time. Either key is hashed with the order id,
// so no client input reaches Stripe as it is, and a key used for one order
// cannot collide with another's.
func (s *Server) refundKey(r *http.Request, orderID string, req refundRequest) (key, problem string) {
	if sentJSON(r) {
		k := r.Header.Get("Idempotency-Key")
		if k == "" || len(k) > maxIdempotencyKey {
			return "", "Send an Idempotency-Key header (up to 255 characters, unique per refund you mean), so that a retry cannot refund twice."
		}
		return "refund-" + orderID + "-client-" + digest(k), ""
	}
	if !s.tokens.valid(req.token) {
		return "", "This refund form has expired or is not this shop's; reload the page and try again. Nothing was refunded."
	}
	return "refund-" + orderID + "-" + digest(req.token), ""
}

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
}

// refundRefusal says why an order cannot be refunded from the shop, or
// returns "" if it can.
func refundRefusal(o orders.Order) string {
	switch {
	case o.PaymentState() == orders.StatusNeedsReview:
		return "This order needs a review; refund it in the Stripe Dashboard, where you can choose the payment."
	case o.PaymentState() != orders.StatusPaid:
		return "This order was never paid: there is nothing to refund."
	case o.PaymentIntentID == "":
		return "The shop does not know this order's payment; refund it in the Stripe Dashboard."
	case o.Dispute != nil && o.Dispute.Open() && !strings.HasPrefix(o.Dispute.Status, "warning_"):
		// An inquiry (warning_*) may still be settled by a refund; a
		// chargeback may not.
		return "The payment is disputed: Stripe refuses refunds until the dispute is decided. Answer it in the Stripe Dashboard."
	case o.Dispute != nil && o.Dispute.Status == "lost":
		return "The dispute was lost: the money already went back to the shopper."
	case o.Refundable() == 0:
		return "This order is already refunded in full."
	}
	return ""
}

// restockRefusal says why a refund of amount cannot restock o (when
// restock is asked for), or returns "". Restocking puts the whole order
// back, so only the refund that leaves the order refunded in full may ask
// for it: refunding part and restocking all would lose count of what the
// shopper kept.
func restockRefusal(o orders.Order, amount int64, restock bool) string {
	switch {
	case !restock:
		return ""
	case o.HoldState != orders.HoldSold:
		return "This order took nothing from a counted stock: there is nothing to put back. Send the refund without restock; nothing was refunded."
	case amount != o.Refundable():
		rest := o.Refundable()
		return fmt.Sprintf("Restocking puts the whole order back, so only a refund of all that is left (%d, %s) can restock. Refund that, or refund without restock; nothing was refunded.", rest, money.Format(rest, o.Currency))
	}
	return ""
}

// restockRefunded puts the quantities of an order just refunded in full
// back in stock. An order already restocked (a double submit of the same
// form, the other one first) is left as it is.
func (s *Server) restockRefunded(ctx context.Context, o orders.Order) (orders.Order, error) {
	after, err := s.orders.Restock(ctx, o.ID)
	if errors.Is(err, orders.ErrRule) {
		if cur, lerr := s.orders.Order(ctx, o.ID); lerr == nil && cur.HoldState == orders.HoldReturned {
			return cur, nil
		}
	}
	return after, err
}

// decodeRefundRequest reads a JSON or form-encoded body, capped. A form's
// empty amount means everything not yet refunded.
func decodeRefundRequest(w http.ResponseWriter, r *http.Request) (refundRequest, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxRefundBody)
	var req refundRequest
	if sentJSON(r) {
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			return req, fmt.Errorf("decode json: %w", err)
		}
		return req, nil
	}
	if err := r.ParseForm(); err != nil {
		return req, fmt.Errorf("parse form: %w", err)
	}
	req.Reason = strings.TrimSpace(r.PostForm.Get("reason"))
	req.token = r.PostForm.Get("refund_token")
	if v := strings.TrimSpace(r.PostForm.Get("restock")); v != "" {
		b, err := strconv.ParseBool(v)
		if v == "on" { // a checkbox without a value
			b, err = true, nil
		}
		if err != nil {
			return req, fmt.Errorf("restock %q: %w", v, err)
		}
		req.Restock = b
	}
	if a := strings.TrimSpace(r.PostForm.Get("amount")); a != "" {
		n, err := strconv.ParseInt(a, 10, 64)
		if err != nil {
			return req, fmt.Errorf("amount %q: %w", a, err)
		}
		req.Amount = &n
	}
	return req, nil
}
