package web

import (
	"errors"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/shopcheckout/shop/internal/money"
	"github.com/shopcheckout/shop/internal/orders"
)

// orderPage is the view model of order.html: what the shopper may see of
// an order with its link. It leaves out the email, so a forwarded link
// tells nobody who bought.
type orderPage struct {
	Page
	OrderID string
	State   string
	Heading string
	Status  string
	Items   []lineView
	Total   string
}

// handleOrderPage shows an order to whoever holds its link. A wrong or
// missing token is answered exactly as an unknown order, so the page tells
// nothing about which order ids exist.
func (s *Server) handleOrderPage(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	id := chi.URLParam(r, "id")
	if !s.links.Valid(id, r.URL.Query().Get("token")) {
		s.fail(w, r, http.StatusNotFound, "There is no order at this address.", nil)
		return
	}
	o, err := s.orders.Order(r.Context(), id)
	if errors.Is(err, orders.ErrNotFound) {
		s.fail(w, r, http.StatusNotFound, "There is no order at this address.", nil)
		return
	}
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "We could not look up your order just now; please reload in a minute.", err)
		return
	}
	v := orderPage{Page: s.page("Your order"), OrderID: o.ID, State: stateOf(o.Status), Total: money.Format(o.AmountTotal, o.Currency)}
	v.Heading, v.Status = orderHeading(o.Status)
	for _, it := range o.Items {
		v.Items = append(v.Items, lineView{Name: it.Name, Quantity: it.Quantity, Amount: money.Format(it.UnitAmount*it.Quantity, o.Currency)})
	}
	s.render(w, r, http.StatusOK, "order", v)
}

// orderHeading describes an order's status to its shopper.
func orderHeading(st orders.Status) (heading, status string) {
	switch st {
	case orders.StatusPaid:
		return "Order confirmed", "Paid. Thank you!"
	case orders.StatusProcessing:
		return "Payment processing", "Your payment is on its way; bank payments can take a few days."
	case orders.StatusFailed:
		return "Payment failed", "The payment did not go through and nothing was charged."
	case orders.StatusExpired:
		return "Checkout expired", "This checkout expired before payment. Nothing was charged."
	case orders.StatusNeedsReview:
		return "We are checking your order", "Your order needs a quick manual check; we will be in touch."
	case orders.StatusPartiallyRefunded:
		return "Order confirmed", "Paid; part of the payment was refunded."
	case orders.StatusRefunded:
		return "Order refunded", "Your payment was refunded."
	case orders.StatusDisputed:
		return "Payment under dispute", "The payment is disputed with your bank; we will hear its decision."
	case orders.StatusDisputeLost:
		return "Payment reversed", "The payment was reversed after a dispute."
	}
	return "Waiting for payment", "We have not received a payment for this order yet."
}
