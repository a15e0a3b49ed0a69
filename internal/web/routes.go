package web

import (
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

// routes is the whole HTTP surface of the shop.
func (s *Server) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(s.requestID, s.logRequests, s.recoverPanics, s.securityHeaders, s.sameOrigin, middleware.StripSlashes, middleware.GetHead)
	r.NotFound(s.handleNotFound)
	r.MethodNotAllowed(s.handleMethodNotAllowed)

	r.Get("/", s.handleHome)
	r.Get("/config", s.handleConfig)
	r.With(s.rateLimit).Post("/create-checkout-session", s.handleCheckoutCreate)
	r.With(s.rateLimit).Get("/success", s.handleSuccess) // reads the session from Stripe
	r.Get("/cancelled", s.handleCancelled)
	r.Get("/cart", s.handleCartPage)
	r.Post("/cart/items", s.handleCartAdd)                 // form: 303 back to the product
	r.Post("/cart/items/{product_id}", s.handleCartUpdate) // quantity 0 removes; form: 303 to /cart
	r.Get("/orders/{id}", s.handleOrderPage)
	r.Post("/webhook", s.handleWebhook) // signed by Stripe: exempt from sameOrigin
	r.Get("/healthz", s.handleHealth)
	if s.cfg.AdminPassword != "" {
		r.With(s.adminAuth).Get("/admin", s.handleAdminOverview)
		r.With(s.adminAuth).Get("/admin/orders", s.handleAdminOrders)        // ?status, from, to, q, limit, after
		r.With(s.adminAuth).Get("/admin/orders.csv", s.handleAdminOrdersCSV) // streamed; the list's filters
		r.With(s.adminAuth).Get("/admin/orders/{id}", s.handleAdminOrder)
		r.With(s.adminAuth).Post("/admin/orders/{id}/refund", s.handleRefundCreate) // calls Stripe
		r.With(s.adminAuth).Get("/admin/metrics", s.metrics.Handler().ServeHTTP)
		r.With(s.adminAuth).Post("/admin/notifications/{id}/retry", s.handleNotificationRetry)
		r.With(s.adminAuth).Get("/admin/alarms", s.handleAdminAlarms)
		r.With(s.adminAuth).Post("/admin/alarms/{id}/resolve", s.handleAlarmResolve) // stored alarms; derived ones 404
		r.With(s.adminAuth).Get("/admin/products", s.handleAdminProducts)
		r.With(s.adminAuth).Post("/admin/products/{id}/stock", s.handleStockSet)
	}
	r.Handle("/static/*", s.staticFiles())
	return r
}
