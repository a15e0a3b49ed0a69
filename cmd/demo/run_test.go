package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shopcheckout/shop/internal/testenv"
)

// requireStripeMockBinary returns the stripe-mock binary, skipping the test
// when there is none locally and failing it in CI.
func requireStripeMockBinary(t testing.TB) string {
	t.Helper()
	bin := findStripeMock(os.Getenv)
	if bin == "" {
		msg := "stripe-mock binary not found; install it with " + stripeMockInstall
		if os.Getenv("CI") != "" {
			t.Fatal(msg + " (required in CI)")
		}
		t.Skip(msg)
	}
	return bin
}

// TestRunServesTheDemoAndStops starts the demo on free ports with its own
// stripe-mock, buys a T-shirt through the printed URLs, and checks that
// cancelling stops the shop, the simulator and stripe-mock.
func TestRunServesTheDemoAndStops(t *testing.T) {
	bin := requireStripeMockBinary(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := &testenv.SyncBuffer{}, &testenv.SyncBuffer{}
	args := []string{"-port", "0", "-sim-port", "0", "-mock-port", "0", "-stripe-mock", bin, "-db", filepath.Join(t.TempDir(), "demo.db")}
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, func(string) string { return "" }, stdout, stderr) }()

	banner := waitFor(t, stdout, "Ctrl-C stops everything", done)
	shopURL := match(t, banner, `Shop\s+(http://localhost:\d+)`)
	password := match(t, banner, `password (\S+)\)`)
	simURL := match(t, banner, `Checkout simulator (http://localhost:\d+)`)
	mockURL := match(t, banner, `stripe-mock (http://127\.0\.0\.1:\d+) \(started by the demo\)`)
	for _, u := range []string{shopURL, simURL, mockURL} {
		if strings.HasSuffix(u, ":0") {
			t.Errorf("banner shows %s, want the real port", u)
		}
	}
	for _, card := range []string{"4242 4242 4242 4242", "4000 0000 0000 0002"} {
		if !strings.Contains(banner, card) {
			t.Errorf("banner: got %q, want the test card %s", banner, card)
		}
	}

	home := get(t, shopURL+"/", "", http.StatusOK)
	if !strings.Contains(home, "Demo mode: no real payments") {
		t.Errorf("home page: got %q, want the demo banner", home)
	}
	get(t, shopURL+"/admin/orders", "", http.StatusUnauthorized)
	get(t, shopURL+"/admin/orders", password, http.StatusOK)

	// Buy one through the simulator's plain forms, as a browser without
	// JavaScript would.
	noFollow := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	payURL := postForm(t, noFollow, shopURL+"/create-checkout-session", url.Values{"product_id": {"tshirt"}, "quantity": {"2"}})
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
	waitFor(t, stdout, "paid and fulfilled: $40.00, receipt to newcomer@example.com", done)

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v\nstderr:\n%s", err, stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return within 30s of cancel")
	}
	for _, u := range []string{shopURL, simURL, mockURL} {
		host := strings.TrimPrefix(u, "http://")
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

func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-port", "70000"}, {"extra"}, {"-nope"}} {
		err := run(context.Background(), args, func(string) string { return "" }, io.Discard, io.Discard)
		if err == nil {
			t.Errorf("run(%q): got nil error, want one", args)
		}
	}
}

// waitFor waits until out contains want, and returns out. It fails the test
// if run ends first or 30s pass.
func waitFor(t testing.TB, out *testenv.SyncBuffer, want string, done <-chan error) string {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		if s := out.String(); strings.Contains(s, want) {
			return s
		}
		select {
		case err := <-done:
			t.Fatalf("run returned %v before printing %q; output:\n%s", err, want, out)
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
