package web

import (
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

// logRequests logs one line per request: never the query string, which can
// carry a Checkout Session id.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		elapsed := s.now().Sub(start)
		status := ww.Status()
		if status == 0 {
			status = http.StatusOK
		}
		route := ""
		if rctx := chi.RouteContext(r.Context()); rctx != nil {
			route = rctx.RoutePattern()
		}
		s.metrics.Request(route, r.Method, status, elapsed)
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", status),
			slog.Int("bytes", ww.BytesWritten()),
			slog.Duration("duration", elapsed),
			slog.String("request_id", middleware.GetReqID(r.Context())),
		)
	})
}

// recoverPanics turns a panic into a generic 500 page and keeps serving.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.ErrorContext(r.Context(), "panic", "panic", v, "stack", string(debug.Stack()))
			s.fail(w, r, http.StatusInternalServerError, "Something went wrong. Please try again.", nil)
		}()
		next.ServeHTTP(w, r)
	})
}

// contentSecurityPolicy allows Stripe.js, and form posts to the shop and to
// Checkout (Chrome applies form-action to the redirect after a form post).
func contentSecurityPolicy(checkoutOrigins []string) string {
	formAction := append([]string{"'self'", "https://checkout.stripe.com"}, checkoutOrigins...)
	return strings.Join([]string{
		"default-src 'self'",
		"script-src 'self' https://js.stripe.com",
		"style-src 'self'",
		"img-src 'self' data: https://*.stripe.com",
		"connect-src 'self' https://api.stripe.com",
		"frame-src https://js.stripe.com https://hooks.stripe.com",
		"form-action " + strings.Join(formAction, " "),
		"frame-ancestors 'none'",
		"base-uri 'none'",
		"object-src 'none'",
	}, "; ")
}

// securityHeaders sets the headers every response carries.
func (s *Server) securityHeaders(next http.Handler) http.Handler {
	hsts := s.cfg.BaseURL.Scheme == "https"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", s.csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		if hsts {
			h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		}
		next.ServeHTTP(w, r)
	})
}

// sameOrigin rejects cross-origin state-changing requests (every method but
// GET, HEAD and OPTIONS) with Go's CrossOriginProtection, answering through
// fail. The webhook is exempt: Stripe is cross-origin by nature and its
// requests are authenticated by their signature instead.
func (s *Server) sameOrigin(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.AddInsecureBypassPattern("POST /webhook")
	cop.AddInsecureBypassPattern("POST /webhook/")
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, http.StatusForbidden, "Cross-origin requests are not allowed.", errors.New("cross-origin request refused"))
	}))
	return cop.Handler(next)
}

// rateLimit refuses a client over its budget, or everybody over the shop's,
// with 429 and Retry-After, before any work is done.
func (s *Server) rateLimit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		client := clientAddr(r, s.cfg.TrustedProxies)
		if ok, retry := s.limiter.Allow(client); !ok {
			s.metrics.RateLimited()
			w.Header().Set("Retry-After", strconv.Itoa(int(retry.Seconds())))
			s.log.LogAttrs(r.Context(), slog.LevelWarn, "rate limited", slog.String("client", client), slog.String("path", r.URL.Path))
			s.fail(w, r, http.StatusTooManyRequests, "Too many attempts. Please wait a moment and try again.", nil)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// adminAuth guards the operator pages with HTTP basic auth, user "admin".
func (s *Server) adminAuth(next http.Handler) http.Handler {
	want := []byte(s.cfg.AdminPassword)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		userOK := subtle.ConstantTimeCompare([]byte(user), []byte("admin")) == 1
		passOK := subtle.ConstantTimeCompare([]byte(pass), want) == 1
		if !ok || !userOK || !passOK {
			w.Header().Set("WWW-Authenticate", `Basic realm="shop admin", charset="UTF-8"`)
			s.fail(w, r, http.StatusUnauthorized, "Sign in to see this page.", nil)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// noStore marks a response as private to this request.
func noStore(w http.ResponseWriter) { w.Header().Set("Cache-Control", "no-store") }
