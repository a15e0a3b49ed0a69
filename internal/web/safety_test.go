package web

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shopcheckout/shop/internal/metrics"
)

// testClock is a clock a test moves by hand.
type testClock struct{ t time.Time }

func (c *testClock) now() time.Time          { return c.t }
func (c *testClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// onClock runs ts, and the limiters that read the time, on a clock the test
// moves.
func (ts *testServer) onClock() *testClock {
	c := &testClock{t: time.Unix(1_700_000_000, 0)}
	ts.now = c.now
	ts.limiter = newLimiter(ts.cfg.RateLimit, c.now)
	ts.guesses = newAdminLimiter(c.now)
	return c
}

// doFrom sends a request from the client address remote (host:port).
func (ts *testServer) doFrom(t testing.TB, remote, method, target string, headers ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	req.RemoteAddr = remote
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	ts.ServeHTTP(rec, req)
	res := rec.Result()
	assertNoSecrets(t, method+" "+target, rec.Body.String())
	return res
}

func TestRateLimitIPv6BySlash64(t *testing.T) {
	ts := newTestServer(t, limited(10, 1, 0))
	tests := []struct {
		remote     string
		wantStatus int
	}{
		{"[2001:db8:1:2::1]:1000", http.StatusSeeOther},
		{"[2001:db8:1:2:ffff::7]:1000", http.StatusTooManyRequests}, // same /64
		{"[2001:db8:1:3::1]:1000", http.StatusSeeOther},             // another /64
		{"203.0.113.1:1000", http.StatusSeeOther},
		{"203.0.113.2:1000", http.StatusSeeOther}, // IPv4: per address
		{"[::ffff:203.0.113.1]:1000", http.StatusTooManyRequests},
	}
	for _, tt := range tests {
		if res := ts.postFrom(t, tt.remote, ""); res.StatusCode != tt.wantStatus {
			t.Errorf("checkout from %s: got %d, want %d", tt.remote, res.StatusCode, tt.wantStatus)
		}
	}
}

func TestSuccessPageRateLimited(t *testing.T) {
	t.Run("per client", func(t *testing.T) {
		ts := newTestServer(t, limited(10, 2, 0))
		sid, _ := ts.checkout(t, "tshirt", "1") // from httptest's own address
		target := "/success?session_id=" + sid
		for i := range 2 {
			if res := ts.doFrom(t, "203.0.113.5:1000", "GET", target); res.StatusCode != http.StatusOK {
				t.Fatalf("request %d: got %d, want 200", i+1, res.StatusCode)
			}
		}
		_, getsBefore := ts.fake.calls()
		res := ts.doFrom(t, "203.0.113.5:1000", "GET", target)
		if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") != "6" {
			t.Errorf("over the limit: got %d Retry-After %q, want 429, 6", res.StatusCode, res.Header.Get("Retry-After"))
		}
		if _, gets := ts.fake.calls(); gets != getsBefore {
			t.Errorf("Stripe reads after a refused request: got %d, want %d", gets, getsBefore)
		}
		if res := ts.doFrom(t, "203.0.113.6:1000", "GET", target); res.StatusCode != http.StatusOK {
			t.Errorf("another client: got %d, want 200", res.StatusCode)
		}
	})
	t.Run("global, shared with checkout", func(t *testing.T) {
		ts := newTestServer(t, limited(1000, 100, 1))
		sid, _ := ts.checkout(t, "tshirt", "1") // spends the global burst of 1
		res := ts.doFrom(t, "203.0.113.5:1000", "GET", "/success?session_id="+sid)
		if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") != "1" {
			t.Errorf("over the global cap: got %d Retry-After %q, want 429, 1", res.StatusCode, res.Header.Get("Retry-After"))
		}
	})
}

// adminFrom asks for /admin/orders from remote with user and password.
func (ts *testServer) adminFrom(t testing.TB, remote, user, pass string) *http.Response {
	t.Helper()
	return ts.doFrom(t, remote, "GET", "/admin/orders", "Authorization", "Basic "+basic(user, pass))
}

func TestAdminFailuresThrottled(t *testing.T) {
	ts := newTestServer(t)
	clock := ts.onClock()
	const guesser, other = "203.0.113.7:1000", "203.0.113.8:1000"
	for i := range adminFailuresPerMinute {
		if res := ts.adminFrom(t, guesser, "admin", fmt.Sprint("guess", i)); res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failure %d: got %d, want 401", i+1, res.StatusCode)
		}
	}
	for _, pass := range []string{"guess-again", "let-me-in"} { // throttled: even the right password waits
		res := ts.adminFrom(t, guesser, "admin", pass)
		if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") != "6" {
			t.Errorf("over the budget (%s): got %d Retry-After %q, want 429, 6", pass, res.StatusCode, res.Header.Get("Retry-After"))
		}
	}
	if res := ts.adminFrom(t, other, "admin", "let-me-in"); res.StatusCode != http.StatusOK {
		t.Errorf("another client, right password: got %d, want 200", res.StatusCode)
	}
	if res := ts.adminFrom(t, other, "admin", "nope"); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("another client, wrong password: got %d, want 401", res.StatusCode)
	}

	clock.advance(6 * time.Second) // one guess's worth refilled
	if res := ts.adminFrom(t, guesser, "admin", "let-me-in"); res.StatusCode != http.StatusOK {
		t.Errorf("after 6s, right password: got %d, want 200", res.StatusCode)
	}
	if res := ts.adminFrom(t, guesser, "admin", "nope"); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("after 6s, one more guess: got %d, want 401", res.StatusCode)
	}
	if res := ts.adminFrom(t, guesser, "admin", "nope"); res.StatusCode != http.StatusTooManyRequests {
		t.Errorf("and another: got %d, want 429", res.StatusCode)
	}

	clock.advance(time.Minute) // the whole budget refilled
	for i := range adminFailuresPerMinute {
		if res := ts.adminFrom(t, guesser, "admin", "nope"); res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("a minute later, failure %d: got %d, want 401", i+1, res.StatusCode)
		}
	}
}

func TestAdminRightPasswordCostsNothing(t *testing.T) {
	ts := newTestServer(t)
	ts.onClock() // time stands still: nothing refills
	const client = "203.0.113.9:1000"
	for i := range 10 * adminFailuresPerMinute {
		if res := ts.adminFrom(t, client, "admin", "let-me-in"); res.StatusCode != http.StatusOK {
			t.Fatalf("request %d with the right password: got %d, want 200", i+1, res.StatusCode)
		}
	}
	for i := range 5 * adminFailuresPerMinute { // a browser's first request carries no credentials
		if res := ts.doFrom(t, client, "GET", "/admin/orders"); res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("request %d without credentials: got %d, want 401", i+1, res.StatusCode)
		}
	}
	for i := range adminFailuresPerMinute - 1 {
		if res := ts.adminFrom(t, client, "admin", "nope"); res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failure %d: got %d, want 401", i+1, res.StatusCode)
		}
	}
	if res := ts.adminFrom(t, client, "admin", "let-me-in"); res.StatusCode != http.StatusOK {
		t.Errorf("right password with budget left: got %d, want 200", res.StatusCode)
	}
}

func TestAdminCredentials(t *testing.T) {
	tests := []struct {
		user, pass string
		want       int
	}{
		{"admin", "let-me-in", http.StatusOK},
		{"admin", "let-me-i", http.StatusUnauthorized},
		{"admin", "let-me-in!", http.StatusUnauthorized},
		{"admin", "LET-ME-IN", http.StatusUnauthorized},
		{"admin", "", http.StatusUnauthorized},
		{"Admin", "let-me-in", http.StatusUnauthorized},
		{"", "let-me-in", http.StatusUnauthorized},
		{"admin:let-me-in", "", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		ts := newTestServer(t)
		if res := ts.adminFrom(t, "203.0.113.10:1000", tt.user, tt.pass); res.StatusCode != tt.want {
			t.Errorf("%q:%q: got %d, want %d", tt.user, tt.pass, res.StatusCode, tt.want)
		}
	}
}

// BenchmarkCredentialsMatch shows that checking a password takes no longer
// for a guess of the real one's length (9) or with a right prefix: the
// comparison is of fixed-size digests, and the time grows only with the
// guess's own length (SHA-256 blocks), which the guesser knows anyway. A
// timed unit test would be flaky: compare the sub-benchmarks' ns/op.
func BenchmarkCredentialsMatch(b *testing.B) {
	want := newCredentials("admin", "let-me-in")
	for _, pass := range []string{"x", "xxxxxxxx", "xxxxxxxxx", "let-me-ix", "let-me-in", "xxxxxxxxxx", strings.Repeat("x", 64)} {
		b.Run(fmt.Sprintf("len=%d/%s", len(pass), pass[:min(len(pass), 9)]), func(b *testing.B) {
			for b.Loop() {
				want.match("admin", pass)
			}
		})
	}
}

// getRoutes lists the router's GET route patterns.
func (ts *testServer) getRoutes(t testing.TB) []string {
	t.Helper()
	var patterns []string
	err := chi.Walk(ts.handler.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if method == http.MethodGet {
			patterns = append(patterns, route)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(patterns)
	return patterns
}

// routeTargets is a request target for each of the router's GET routes,
// reaching its handler's main path (a paid order's success and order pages,
// a real static file). A route with parameters and no entry here fails the
// test, so a new one cannot be forgotten.
func (ts *testServer) routeTargets(t testing.TB) map[string]string {
	t.Helper()
	sid, oid := ts.checkout(t, "tshirt", "2")
	ts.fake.pay(sid, "paid", "buyer@example.com")
	special := map[string]string{
		"/success":           "/success?session_id=" + sid,
		"/orders/{id}":       testLinks.PagePath(oid),
		"/admin/orders/{id}": "/admin/orders/" + oid,
		"/static/*":          "/static/main.js",
	}
	targets := map[string]string{}
	for _, p := range ts.getRoutes(t) {
		target, ok := special[p]
		if !ok && strings.ContainsAny(p, "{*") {
			t.Fatalf("GET %s: no request target for this route; add one to routeTargets", p)
		}
		if !ok {
			target = p
		}
		targets[p] = target
	}
	return targets
}

func TestHeadOnEveryGetRoute(t *testing.T) {
	ts := newTestServer(t)
	ts.metrics = metrics.New()
	ts.handler = ts.routes()
	srv := httptest.NewServer(ts)
	t.Cleanup(srv.Close)
	client := &http.Client{
		Transport:     &http.Transport{DisableCompression: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	t.Cleanup(client.CloseIdleConnections)
	send := func(method, target string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+target, nil)
		if err != nil {
			t.Fatal(err)
		}
		if target == "/admin" || strings.HasPrefix(target, "/admin/") {
			req.Header.Set("Authorization", "Basic "+basic("admin", "let-me-in"))
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res, body
	}
	for pattern, target := range ts.routeTargets(t) {
		get, getBody := send("GET", target)
		if get.StatusCode != http.StatusOK {
			t.Errorf("GET %s (%s): got %d, want 200 (fix its target in routeTargets)", target, pattern, get.StatusCode)
		}
		head, headBody := send("HEAD", target)
		if head.StatusCode != get.StatusCode {
			t.Errorf("HEAD %s (%s): got %d, want %d as GET", target, pattern, head.StatusCode, get.StatusCode)
		}
		if len(headBody) != 0 {
			t.Errorf("HEAD %s: got a %d-byte body, want none", target, len(headBody))
		}
		if cl := get.Header.Get("Content-Length"); cl != "" && cl != fmt.Sprint(len(getBody)) {
			t.Errorf("GET %s: Content-Length %s for a %d-byte body", target, cl, len(getBody))
		}
		get.Header.Del("Date")
		head.Header.Del("Date")
		if diff := cmp.Diff(get.Header, head.Header); diff != "" {
			t.Errorf("HEAD %s: headers differ from GET's (-GET +HEAD):\n%s", target, diff)
		}
	}
}

func TestRequestID(t *testing.T) {
	ts := newTestServer(t)
	long := strings.Repeat("a", 64)
	tests := []struct {
		name, sent string
		kept       bool
	}{
		{"plain", "req-1.2_ABC", true},
		{"64 characters", long, true},
		{"65 characters", long + "a", false},
		{"space", "req 1", false},
		{"CR LF", "req\r\nrequest_id=forged", false},
		{"LF", "req\nx", false},
		{"markup", "<script>", false},
		{"slash", "host/abc-000001", false},
		{"non-ASCII", "réq", false},
		{"empty", "", false},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mark := len(ts.logs.String())
			req := httptest.NewRequest("GET", "/nope", nil)
			req.Header.Set("Accept", "application/json")
			if tt.sent != "" {
				req.Header.Set("X-Request-Id", tt.sent)
			}
			rec := httptest.NewRecorder()
			ts.ServeHTTP(rec, req)
			var body errorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("decode %s: %v", rec.Body, err)
			}
			got := body.Error.RequestID
			if tt.kept {
				if got != tt.sent {
					t.Errorf("requestId: got %q, want %q", got, tt.sent)
				}
			} else {
				if got == tt.sent || !validRequestID(got) {
					t.Errorf("requestId: got %q, want a fresh id of the shop's", got)
				}
				if seen[got] {
					t.Errorf("requestId %q made twice", got)
				}
				seen[got] = true
			}
			logs := ts.logs.String()[mark:]
			if !regexp.MustCompile(`request_id=` + regexp.QuoteMeta(got) + `(\s|$)`).MatchString(logs) {
				t.Errorf("log lacks request_id=%s:\n%s", got, logs)
			}
		})
	}
}

// requestSeries counts the series of the request metrics.
func requestSeries(t testing.TB, m *metrics.Metrics) int {
	t.Helper()
	n, err := testutil.GatherAndCount(m.Gatherer(), "shop_http_requests_total", "shop_http_request_duration_seconds")
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	return n
}

func TestMetricsCannotBeInflated(t *testing.T) {
	ts := newTestServer(t)
	ts.metrics = metrics.New()
	ts.handler = ts.routes()
	auth := "Basic " + basic("admin", "let-me-in")
	send := func(method, target string) {
		t.Helper()
		req := httptest.NewRequest("GET", target, nil)
		req.Method = method // any token, as a client may send
		req.Header.Set("Authorization", auth)
		ts.ServeHTTP(httptest.NewRecorder(), req)
	}
	// Warm up: every real route once, and each kind of made-up request.
	targets := ts.routeTargets(t)
	err := chi.Walk(ts.handler.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		target, ok := targets[route]
		if !ok {
			target = strings.ReplaceAll(route, "{id}", "x")
		}
		send(method, target)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	prefixes := []string{"/x/", "/static/", "/orders/"}
	for _, p := range prefixes {
		for _, method := range []string{"GET", "HEAD", "POST", "FOO"} {
			send(method, p+"warm")
		}
	}
	before := requestSeries(t, ts.metrics)

	rnd := rand.New(rand.NewPCG(1, 2))
	word := func() string {
		const letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
		b := make([]byte, 3+rnd.IntN(8))
		for i := range b {
			b[i] = letters[rnd.IntN(len(letters))]
		}
		return string(b)
	}
	for i := range 5000 {
		method := word() // "FOO123" and the like
		if i%2 == 1 {
			method = "GET" // so the made-up paths are routed too
		}
		target := prefixes[rnd.IntN(len(prefixes))] + strings.ToLower(word())
		if rnd.IntN(2) == 0 {
			target += strings.Repeat("/", 1+rnd.IntN(2))
		}
		send(method, target)
	}
	if after := requestSeries(t, ts.metrics); after != before {
		t.Errorf("request series after 5,000 made-up requests: got %d, want %d (unchanged)", after, before)
	}
}
