// Package metrics counts what an operator of several shop instances needs to
// see: requests by route and status, webhook events by type and outcome,
// fulfilments, Stripe call latency and errors, and store errors. Every
// instance exports its own series; Prometheus sums them.
//
// A nil *Metrics is valid and records nothing, so tests and tools need not
// build one.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shopcheckout/shop/internal/orders"
)

// Metrics holds the shop's collectors, registered on one registry.
type Metrics struct {
	reg         *prometheus.Registry
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	webhooks    *prometheus.CounterVec
	fulfilments prometheus.Counter
	stripe      *prometheus.HistogramVec
	stripeErrs  *prometheus.CounterVec
	storeErrs   *prometheus.CounterVec
	rateLimited prometheus.Counter
	deliveries  *prometheus.CounterVec
	outboxDepth *prometheus.GaugeVec
	outboxAge   prometheus.Gauge
	alarms      *prometheus.CounterVec
}

// New builds the collectors on a fresh registry, with Go runtime and process
// metrics beside them.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shop_http_requests_total", Help: "HTTP requests by route pattern, method and status.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "shop_http_request_duration_seconds", Help: "HTTP request latency by route pattern.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shop_webhook_events_total", Help: "Stripe webhook events by type and outcome (applied, duplicate, unmatched, ignored, rejected, failed).",
		}, []string{"type", "outcome"}),
		fulfilments: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shop_fulfilments_total", Help: "Orders fulfilled.",
		}),
		stripe: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "shop_stripe_request_duration_seconds", Help: "Stripe API call latency by operation, retries included.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"operation"}),
		stripeErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shop_stripe_errors_total", Help: "Failed Stripe API calls by operation.",
		}, []string{"operation"}),
		storeErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shop_store_errors_total", Help: "Failed store writes by operation.",
		}, []string{"operation"}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shop_rate_limited_total", Help: "Checkout requests refused by the rate limiter.",
		}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shop_notification_deliveries_total", Help: "Notification delivery attempts by type, channel and outcome (delivered, failed, dead).",
		}, []string{"type", "channel", "outcome"}),
		outboxDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shop_outbox_notifications", Help: "Notifications not yet delivered, by status (pending, dead).",
		}, []string{"status"}),
		alarms: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shop_alarms_raised_total", Help: "Alarms raised, by kind: each needs a person (see /admin/alarms).",
		}, []string{"kind"}),
		outboxAge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shop_outbox_oldest_pending_seconds", Help: "Age of the oldest notification not yet delivered (0 when none).",
		}),
	}
	reg.MustRegister(m.requests, m.duration, m.webhooks, m.fulfilments, m.stripe, m.stripeErrs, m.storeErrs, m.rateLimited,
		m.deliveries, m.outboxDepth, m.outboxAge, m.alarms,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in Prometheus's text format.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Request records one HTTP request. route is the router's pattern, ""
// when nothing matched: every label comes from a fixed set, so no client
// can create a series by making up a path or a method.
func (m *Metrics) Request(route, method string, status int, d time.Duration) {
	if m == nil {
		return
	}
	if route == "" {
		route = "none"
	}
	m.requests.WithLabelValues(route, methodLabel(method), strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
}

// methodLabel is method if it is one of HTTP's, OTHER if not.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "OTHER"
}

// Gatherer is the registry the metrics are on, for tests that count series.
// A nil *Metrics has an empty one.
func (m *Metrics) Gatherer() prometheus.Gatherer {
	if m == nil {
		return prometheus.NewRegistry()
	}
	return m.reg
}

// Webhook records one webhook event's outcome.
func (m *Metrics) Webhook(eventType, outcome string) {
	if m == nil {
		return
	}
	if eventType == "" {
		eventType = "unknown"
	}
	m.webhooks.WithLabelValues(eventType, outcome).Inc()
}

// Fulfilled records one fulfilment.
func (m *Metrics) Fulfilled() {
	if m != nil {
		m.fulfilments.Inc()
	}
}

// Stripe records one Stripe call.
func (m *Metrics) Stripe(operation string, d time.Duration, err error) {
	if m == nil {
		return
	}
	m.stripe.WithLabelValues(operation).Observe(d.Seconds())
	if err != nil {
		m.stripeErrs.WithLabelValues(operation).Inc()
	}
}

// StoreError records one failed store write.
func (m *Metrics) StoreError(operation string) {
	if m != nil {
		m.storeErrs.WithLabelValues(operation).Inc()
	}
}

// RateLimited records one refused checkout request.
func (m *Metrics) RateLimited() {
	if m != nil {
		m.rateLimited.Inc()
	}
}

// Delivered records one notification delivery attempt.
func (m *Metrics) Delivered(notificationType, channel, outcome string) {
	if m != nil {
		m.deliveries.WithLabelValues(notificationType, channel, outcome).Inc()
	}
}

// Queue records the outbox's depth and the age of its oldest pending
// notification.
func (m *Metrics) Queue(st orders.OutboxStats, now time.Time) {
	if m == nil {
		return
	}
	m.outboxDepth.WithLabelValues("pending").Set(float64(st.Pending))
	m.outboxDepth.WithLabelValues("dead").Set(float64(st.Dead))
	age := 0.0
	if st.OldestQueued != nil {
		age = max(0, now.Sub(*st.OldestQueued).Seconds())
	}
	m.outboxAge.Set(age)
}

// Alarm records one alarm raised.
func (m *Metrics) Alarm(a orders.Alarm) {
	if m != nil {
		m.alarms.WithLabelValues(a.Kind).Inc()
	}
}
