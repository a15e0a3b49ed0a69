package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/shopcheckout/shop/internal/ratelimit"
)

// requestID gives every request the id its log lines and error pages carry,
// stored where chi's middleware.GetReqID finds it. A client's (or a
// proxy's) X-Request-Id is kept when it is a plain token, so logs join up
// across hops; anything else, which could break a log line, forge a
// field or bloat every line, is replaced by a fresh random id.
func (s *Server) requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			id = rand.Text()
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), middleware.RequestIDKey, id)))
	})
}

// validRequestID reports whether id is 1 to 64 characters of
// [A-Za-z0-9._-].
func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := range len(id) {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// quietKey marks, in a request's context, a switch a handler may turn on to
// leave the request's access log line out (see quiet).
type quietKey struct{}

// quiet leaves this request out of the access log: for traffic whose lines
// are sampled, such as forged webhooks. Metrics still count it.
func quiet(r *http.Request) {
	if q, ok := r.Context().Value(quietKey{}).(*bool); ok {
		*q = true
	}
}

// logRequests logs one line per request: never the query string, which can
// carry a Checkout Session id.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		hush := new(bool)
		r = r.WithContext(context.WithValue(r.Context(), quietKey{}, hush))
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
		if *hush {
			return
		}
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

// contentSecurityPolicy allows Stripe.js, from stripeJS (STRIPE_JS_URL:
// Stripe's, or the simulator's stand-in) as well as from Stripe, the frames
// of Embedded Checkout, and form posts to the shop and to Checkout (Chrome
// applies form-action to the redirect after a form post). checkoutOrigins
// (CHECKOUT_ORIGINS) are other payment pages: a form may post to them and
// an embedded checkout may frame them.
func contentSecurityPolicy(stripeJS string, checkoutOrigins []string) string {
	scripts := []string{"'self'", "https://js.stripe.com"}
	frames := []string{"https://js.stripe.com", "https://checkout.stripe.com", "https://hooks.stripe.com"}
	if u, err := url.Parse(stripeJS); err == nil && u.Host != "" {
		origin := u.Scheme + "://" + u.Host
		scripts = appendMissing(scripts, origin)
		frames = appendMissing(frames, origin)
	}
	frames = appendMissing(frames, checkoutOrigins...)
	formAction := append([]string{"'self'", "https://checkout.stripe.com"}, checkoutOrigins...)
	return strings.Join([]string{
		"default-src 'self'",
		"script-src " + strings.Join(scripts, " "),
		"style-src 'self'",
		"img-src 'self' data: https:", // product images may live anywhere on https (a Stripe catalogue's do)
		"connect-src 'self' https://api.stripe.com",
		"frame-src " + strings.Join(frames, " "),
		"form-action " + strings.Join(formAction, " "),
		"frame-ancestors 'none'",
		"base-uri 'none'",
		"object-src 'none'",
	}, "; ")
}

// appendMissing appends each of sources that list does not hold yet.
func appendMissing(list []string, sources ...string) []string {
	for _, src := range sources {
		if !slices.Contains(list, src) {
			list = append(list, src)
		}
	}
	return list
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

// adminFailuresPerMinute is how many wrong admin logins a client may make
// a minute (and at once) before it is refused with 429.
const adminFailuresPerMinute = 10

// newAdminLimiter counts failed admin logins per client address (an IPv6
// /64 counting as one). There is no global cap: one would let anybody lock
// the operator out.
func newAdminLimiter(now func() time.Time) *ratelimit.Limiter {
	return ratelimit.New(ratelimit.Config{
		PerClient:      adminFailuresPerMinute / 60.0,
		PerClientBurst: adminFailuresPerMinute,
		Now:            now,
	})
}

// adminAuth guards the operator pages with HTTP basic auth, user "admin".
//
// The user and the password are each compared as SHA-256 digests, both
// always, with subtle.ConstantTimeCompare: comparing the strings themselves
// would return early on a length mismatch and tell the password's length.
//
// Only failures spend a client's budget (adminFailuresPerMinute). A client
// over it gets 429 with Retry-After until the budget refills, before its
// credentials are looked at, even right ones: answering a right guess
// during the lock-out would let a guesser carry on at full speed, reading
// 200 against 429. The price is that an operator behind the same address
// as a guesser waits too (one more try every 60/adminFailuresPerMinute s).
func (s *Server) adminAuth(next http.Handler) http.Handler {
	want := newCredentials("admin", s.cfg.AdminPassword)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		client := clientAddr(r, s.cfg.TrustedProxies)
		if ok, retry := s.guesses.Check(client); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(int(retry.Seconds())))
			s.log.LogAttrs(r.Context(), slog.LevelWarn, "admin login throttled", slog.String("client", client), slog.String("path", r.URL.Path))
			s.fail(w, r, http.StatusTooManyRequests, "Too many failed sign-ins. Please wait a moment and try again.", nil)
			return
		}
		user, pass, ok := r.BasicAuth()
		if match := want.match(user, pass); !ok || !match {
			if ok {
				s.guesses.Charge(client) // a guess; a browser's first, credential-less request is not
			}
			w.Header().Set("WWW-Authenticate", `Basic realm="shop admin", charset="UTF-8"`)
			s.fail(w, r, http.StatusUnauthorized, "Sign in to see this page.", nil)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// credentials are a user name and password kept as SHA-256 digests, so
// that comparing them takes the same time whatever either is.
type credentials struct{ user, pass [sha256.Size]byte }

func newCredentials(user, pass string) credentials {
	return credentials{user: sha256.Sum256([]byte(user)), pass: sha256.Sum256([]byte(pass))}
}

// match reports whether user and pass are c's, comparing both, always.
func (c credentials) match(user, pass string) bool {
	got := newCredentials(user, pass)
	return subtle.ConstantTimeCompare(got.user[:], c.user[:])&subtle.ConstantTimeCompare(got.pass[:], c.pass[:]) == 1
}

// noStore marks a response as private to this request.
func noStore(w http.ResponseWriter) { w.Header().Set("Cache-Control", "no-store") }
