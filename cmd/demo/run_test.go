package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopcheckout/shop/internal/testenv"
)

// requireBinary returns the program name, skipping the test when there is
// none locally and failing it in CI.
func requireBinary(t testing.TB, name, install string) string {
	t.Helper()
	bin := findBinary(name, os.Getenv)
	if bin == "" {
		msg := name + " binary not found; install it with " + install
		if os.Getenv("CI") != "" {
			t.Fatal(msg + " (required in CI)")
		}
		t.Skip(msg)
	}
	return bin
}

// demoRun is a run of the demo: finished closes when run returns, after
// err is set, so any number of waiters see the end.
type demoRun struct {
	finished chan struct{}
	err      error
}

// startDemo runs the demo with args until the test ends, and returns its
// output and a stop function returning run's error.
func startDemo(t testing.TB, args ...string) (stdout, stderr *testenv.SyncBuffer, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr = &testenv.SyncBuffer{}, &testenv.SyncBuffer{}
	args = append([]string{"-port", "0", "-sim-port", "0", "-mock-port", "0", "-stripe-mock", requireBinary(t, "stripe-mock", stripeMockInstall),
		"-db", filepath.Join(t.TempDir(), "demo.db")}, args...)
	dr := &demoRun{finished: make(chan struct{})}
	go func() {
		defer close(dr.finished)
		dr.err = run(ctx, args, func(string) string { return "" }, stdout, stderr)
	}()
	var once sync.Once
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case <-dr.finished:
			case <-time.After(30 * time.Second):
				t.Fatal("run did not return within 30s of cancel")
			}
		})
		return dr.err
	}
	t.Cleanup(func() { _ = stop() })
	waitFor(t, stdout, "Ctrl-C stops everything", dr)
	return stdout, stderr, stop
}

// TestRunServesTheDemoAndStops starts the demo on free ports with its own
// stripe-mock and mailpit, buys a T-shirt through the printed URLs, finds
// the emails in mailpit, and checks that cancelling stops the shop, the
// simulator, stripe-mock and mailpit.
func TestRunServesTheDemoAndStops(t *testing.T) {
	mailpitBin := requireBinary(t, "mailpit", mailpitInstall)
	stdout, stderr, stop := startDemo(t, "-mailpit", mailpitBin, "-mail-port", "0", "-mail-web-port", "0")
	banner := stdout.String()
	shopURL := match(t, banner, `Shop\s+(http://localhost:\d+)`)
	password := match(t, banner, `password (\S+)\)`)
	simURL := match(t, banner, `Checkout simulator (http://localhost:\d+)`)
	mockURL := match(t, banner, `stripe-mock (http://127\.0\.0\.1:\d+) \(started by the demo\)`)
	mailURL := match(t, banner, `Email\s+(http://localhost:\d+)\s+\(mailpit: confirmation emails land here\)`)
	mailSMTP := "smtp://" + match(t, banner, `mailpit SMTP (127\.0\.0\.1:\d+) \(started by the demo\)`)
	for _, u := range []string{shopURL, simURL, mockURL, mailURL, mailSMTP} {
		if strings.HasSuffix(u, ":0") {
			t.Errorf("banner shows %s, want the real port", u)
		}
	}
	for _, want := range []string{"4242 4242 4242 4242", "4000 0000 0000 0002",
		"2. open the order in the admin and refund part of it", "3. the shopper's refund email lands in mailpit, " + mailURL,
		"curl -X POST " + simURL + "/sim/sessions/SESSION_ID/dispute", "curl -X POST '" + simURL + "/sim/disputes/DISPUTE_ID/close?outcome=won'",
		"4. buy through the Payment Link " + simURL + "/pl/plink_demo_mug", "Admin        " + shopURL + "/admin  (user admin"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner: got %q, want %q", banner, want)
		}
	}

	home := get(t, shopURL+"/", "", http.StatusOK)
	if !strings.Contains(home, "Demo mode: no real payments") {
		t.Errorf("home page: got %q, want the demo banner", home)
	}
	for _, want := range []string{"T-shirt", "Mug", "Signed print", "/static/tshirt.svg"} {
		if !strings.Contains(home, want) {
			t.Errorf("home page lacks %q from the simulator's catalogue", want)
		}
	}
	get(t, shopURL+"/admin/orders", "", http.StatusUnauthorized)
	get(t, shopURL+"/admin/orders", password, http.StatusOK)

	// Buy one through the simulator's plain forms, as a browser without
	// JavaScript would.
	noFollow := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	payURL := postForm(t, noFollow, shopURL+"/create-checkout-session", url.Values{"product_id": {"price_demo_tshirt"}, "quantity": {"2"}})
	if !strings.HasPrefix(payURL, simURL+"/pay/cs_test_") {
		t.Fatalf("checkout redirect: got %q, want the simulator's page under %s", payURL, simURL)
	}
	successURL := postForm(t, noFollow, payURL, url.Values{"email": {"newcomer@example.com"}, "card": {"4242 4242 4242 4242"}, "outcome": {"pay"}})
	if !strings.HasPrefix(successURL, shopURL+"/success?session_id=") {
		t.Fatalf("payment redirect: got %q, want the shop's success page", successURL)
	}
	if page := get(t, successURL, "", http.StatusOK); !strings.Contains(page, "Payment received") {
		t.Errorf("success page: got %q, want Payment received", page)
	}
	out := waitFor(t, stdout, "paid and fulfilled: $40.00, receipt to newcomer@example.com; emails at "+mailURL, nil)
	orderID := match(t, out, `order (\S+) paid and fulfilled`)

	// The confirmation and the owner's note are in mailpit, and the
	// confirmation's link opens the order page.
	box := testenv.Mailbox{URL: loopbackURL(mailURL)}
	confirmation := box.Wait(t, "to:newcomer@example.com", 1, 15*time.Second)
	if len(confirmation) != 1 || confirmation[0].Subject != "Your order "+orderID+" is confirmed" ||
		confirmation[0].From != (testenv.MailAddress{Name: "Demo Shop", Address: "shop@demo.test"}) {
		t.Errorf("mailpit: got %+v, want one confirmation of %s from Demo Shop <shop@demo.test>", confirmation, orderID)
	}
	if owner := box.Wait(t, "to:"+demoOwnerEmail, 1, 15*time.Second); len(owner) != 1 || !strings.Contains(owner[0].Subject, "New order "+orderID) {
		t.Errorf("mailpit: got %+v, want one new-order email to %s", owner, demoOwnerEmail)
	}
	text := box.Message(t, confirmation[0].ID).Text
	orderPage := match(t, text, `(`+regexp.QuoteMeta(shopURL)+`/orders/\S+)`)
	if page := get(t, orderPage, "", http.StatusOK); !strings.Contains(page, orderID) {
		t.Errorf("order page %s: got %q, want it to show %s", orderPage, page, orderID)
	}

	// As the banner says: refund part of the order from the admin, and the
	// shopper's refund email arrives in mailpit.
	refundPart(t, shopURL, password, orderID, 1500)
	var refundMail []testenv.MailMessage
	for _, m := range box.Wait(t, "to:newcomer@example.com", 2, 15*time.Second) {
		if m.Subject == "Part of your order "+orderID+" was refunded" {
			refundMail = append(refundMail, m)
		}
	}
	if len(refundMail) != 1 {
		t.Fatalf("mailpit: got %+v, want one refund email for %s", box.Search(t, "to:newcomer@example.com"), orderID)
	}
	if text := box.Message(t, refundMail[0].ID).Text; !strings.Contains(text, "$15.00") {
		t.Errorf("refund email: got %q, want it to name $15.00", text)
	}

	// As the banner says: a Payment Link sale lands in the admin beside
	// the shop's order.
	linkPay := postForm(t, noFollow, simURL+"/pl/plink_demo_mug", url.Values{})
	if strings.HasPrefix(linkPay, "/") {
		linkPay = simURL + linkPay
	}
	if !strings.HasPrefix(linkPay, simURL+"/pay/cs_test_") {
		t.Fatalf("payment link: got %q, want the simulator's payment page", linkPay)
	}
	postForm(t, noFollow, linkPay, url.Values{"email": {"linkbuyer@example.com"}, "card": {"4242 4242 4242 4242"}, "outcome": {"pay"}})
	out = waitFor(t, stdout, "paid through the Payment Link and fulfilled: $12.00, receipt to linkbuyer@example.com", nil)
	linkOrder := match(t, out, `order (\S+) paid through the Payment Link`)
	if list := get(t, shopURL+"/admin/orders", password, http.StatusOK); !strings.Contains(list, linkOrder) || !strings.Contains(list, orderID) {
		t.Errorf("admin orders: want both %s and the link's %s", orderID, linkOrder)
	}

	if err := stop(); err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, stderr)
	}
	for _, u := range []string{shopURL, simURL, mockURL, mailURL, mailSMTP} {
		host := strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "smtp://")
		host = strings.Replace(host, "localhost", "127.0.0.1", 1)
		if c, err := net.DialTimeout("tcp", host, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after cancel, want it stopped", u)
		}
	}
	if n := strings.Count(stdout.String(), "Ctrl-C stops everything"); n != 1 {
		t.Errorf("banner printed %d times, want once", n)
	}
}

// TestRunWithoutMailpit gives the demo a mailpit that cannot start: the
// shop still runs, and the banner says there is no email and why.
func TestRunWithoutMailpit(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "mailpit")
	stdout, stderr, stop := startDemo(t, "-mailpit", missing, "-mail-port", "0", "-mail-web-port", "0")
	banner := stdout.String()
	for _, want := range []string{"Email        off: start mailpit", mailpitInstall, "The shop runs without email",
		"3. the order page shows the refund (no email: mailpit is off)"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner: got %q, want %q", banner, want)
		}
	}
	if strings.Contains(banner, "mailpit SMTP") || strings.Contains(banner, "confirmation emails land here") {
		t.Errorf("banner: got %q, want no mailpit address", banner)
	}
	if !strings.Contains(stderr.String(), "running without email") {
		t.Errorf("stderr: got %q, want a warning", stderr)
	}
	shopURL := match(t, banner, `Shop\s+(http://localhost:\d+)`)
	get(t, shopURL+"/", "", http.StatusOK)
	if err := stop(); err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, stderr)
	}
}

// TestRunReusesMailpit points the demo at a mailpit that already runs: it
// uses it, and leaves it running.
func TestRunReusesMailpit(t *testing.T) {
	smtpAddr, apiURL := testenv.Mailpit(t)
	_, smtpPort, _ := net.SplitHostPort(smtpAddr)
	webPort := match(t, apiURL, `:(\d+)$`)
	stdout, stderr, stop := startDemo(t, "-mailpit", filepath.Join(t.TempDir(), "not-needed"), "-mail-port", smtpPort, "-mail-web-port", webPort)
	banner := stdout.String()
	for _, want := range []string{"Email        http://localhost:" + webPort, "mailpit SMTP 127.0.0.1:" + smtpPort + " (already running)"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner: got %q, want %q", banner, want)
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, stderr)
	}
	testenv.Mailpit(t) // still answers
}

// refundPart refunds amount of an order through the admin's JSON door,
// which calls the simulator's POST /v1/refunds.
func refundPart(t testing.TB, shopURL, password, orderID string, amount int64) {
	t.Helper()
	body := strings.NewReader(`{"amount":` + strconv.FormatInt(amount, 10) + `,"reason":"requested_by_customer"}`)
	req, err := http.NewRequest(http.MethodPost, shopURL+"/admin/orders/"+orderID+"/refund", body)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("admin", password)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "demo-test-refund-"+orderID)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("refund: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("refund %s: got %s, want 200\n%s", orderID, resp.Status, b)
	}
}

// loopbackURL is u with localhost spelled 127.0.0.1, where the demo listens.
func loopbackURL(u string) string { return strings.Replace(u, "//localhost:", "//127.0.0.1:", 1) }

func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-port", "70000"}, {"extra"}, {"-nope"}} {
		err := run(context.Background(), args, func(string) string { return "" }, io.Discard, io.Discard)
		if err == nil {
			t.Errorf("run(%q): got nil error, want one", args)
		}
	}
}

// waitFor waits until out contains want, and returns out. It fails the test
// if the run (when given) ends first or 30s pass.
func waitFor(t testing.TB, out *testenv.SyncBuffer, want string, dr *demoRun) string {
	t.Helper()
	deadline := time.After(30 * time.Second)
	var finished <-chan struct{} // nil: never
	if dr != nil {
		finished = dr.finished
	}
	for {
		if s := out.String(); strings.Contains(s, want) {
			return s
		}
		select {
		case <-finished:
			t.Fatalf("run returned %v before printing %q; output:\n%s", dr.err, want, out)
		case <-deadline:
			t.Fatalf("output has no %q after 30s:\n%s", want, out)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func match(t testing.TB, s, pattern string) string {
	t.Helper()
	m := regexp.MustCompile(pattern).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("banner: got %q, want a match for %s", s, pattern)
	}
	return m[1]
}

// get fetches url (as admin when password is set) and returns the body.
func get(t testing.TB, url, password string, want int) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if password != "" {
		req.SetBasicAuth("admin", password)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	if resp.StatusCode != want {
		t.Fatalf("GET %s: got %s, want %d", url, resp.Status, want)
	}
	return string(body)
}

// postForm posts a form and returns the 303's Location.
func postForm(t testing.TB, c *http.Client, url string, form url.Values) string {
	t.Helper()
	resp, err := c.PostForm(url, form)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST %s: got %s, want 303 See Other", url, resp.Status)
	}
	return resp.Header.Get("Location")
}

// TestRunEmbedded: with -checkout-ui embedded the shop hands out client
// secrets for the simulator's embedded page, and loads the simulator's
// Stripe.js, since the real one is out of reach offline.
func TestRunEmbedded(t *testing.T) {
	stdout, stderr, stop := startDemo(t, "-checkout-ui", "embedded", "-mailpit", "/nonexistent/mailpit")
	banner := stdout.String()
	shopURL := match(t, banner, `Shop\s+(http://localhost:\d+)`)
	simURL := match(t, banner, `Checkout simulator (http://localhost:\d+)`)
	if home := get(t, shopURL+"/", "", http.StatusOK); !strings.Contains(home, `src="`+simURL+`/v3/"`) {
		t.Errorf("home page: want Stripe.js from %s/v3/:\n%s", simURL, home)
	}
	res, err := http.Post(shopURL+"/create-checkout-session", "application/json",
		strings.NewReader(`{"productId":"price_demo_mug","quantity":1,"ui":"embedded"}`))
	if err != nil {
		t.Fatal(err)
	}
	var body struct{ SessionID, ClientSecret string }
	json.NewDecoder(res.Body).Decode(&body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || body.ClientSecret == "" {
		t.Fatalf("embedded checkout: %s %+v", res.Status, body)
	}
	if page := get(t, simURL+"/embedded/"+body.ClientSecret, "", http.StatusOK); !strings.Contains(page, "4242") && !strings.Contains(page, `id="card"`) {
		t.Errorf("the simulator's embedded page: %q", page)
	}
	if err := stop(); err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, stderr)
	}
}
