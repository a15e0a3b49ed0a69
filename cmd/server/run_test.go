package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopcheckout/shop/internal/testenv"
)

const (
	testSecretKey      = "sk_test_runTestSecretKey123"
	testPublishableKey = "pk_test_runTestPublishable123"
)

// startServer runs the real server in the background, until the test ends,
// and returns its URL.
func startServer(t *testing.T, env map[string]string) (string, *testenv.SyncBuffer) {
	t.Helper()
	base, logs, _ := startStoppable(t, env)
	return base, logs
}

// startStoppable is startServer, also returning a function that stops the
// server and waits for run to return.
func startStoppable(t *testing.T, env map[string]string) (string, *testenv.SyncBuffer, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := &testenv.SyncBuffer{}, &testenv.SyncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-env-file", filepath.Join(t.TempDir(), "absent.env")}, func(k string) string { return env[k] }, stdout, stderr)
	}()
	stop := sync.OnceFunc(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("server did not stop within 30s")
		}
		if m := regexp.MustCompile(`\b(sk|rk)_(test|live)_[A-Za-z0-9]{4,}|\bwhsec_[A-Za-z0-9_]{4,}`).FindString(stdout.String() + stderr.String()); m != "" {
			t.Errorf("server output contains a secret (%s...)", m[:8])
		}
	})
	t.Cleanup(stop)
	re := regexp.MustCompile(`listening on (http://localhost:\d+)`)
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(stdout.String()); m != nil {
			return m[1], stderr, stop
		}
		select {
		case err := <-done:
			t.Fatalf("server exited: %v\n%s", err, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("server did not start:\n%s", stderr.String())
	return "", nil, nil
}

func TestRunAgainstStripeMock(t *testing.T) {
	mock := testenv.StripeMock(t)
	base, logs := startServer(t, map[string]string{
		"STRIPE_SECRET_KEY":      testSecretKey,
		"STRIPE_PUBLISHABLE_KEY": testPublishableKey,
		"STRIPE_WEBHOOK_SECRET":  "whsec_runtest",
		"STRIPE_API_BASE":        mock,
		"PORT":                   "0",
		"DATABASE_URL":           "sqlite:" + filepath.Join(t.TempDir(), "shop.db"),
	})
	client := &http.Client{
		Timeout:       20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	get := func(path string) (int, string) {
		t.Helper()
		res, err := client.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}

	if status, body := get("/"); status != 200 || !strings.Contains(body, "Purchase") || !strings.Contains(body, "$20.00") {
		t.Fatalf("home: got %d\n%s", status, body)
	}
	if status, body := get("/config"); status != 200 || !strings.Contains(body, testPublishableKey) {
		t.Fatalf("config: got %d %s", status, body)
	}

	// The form post: 303 to Checkout.
	res, err := client.PostForm(base+"/create-checkout-session", url.Values{"product_id": {"tshirt"}, "quantity": {"2"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "https://checkout.stripe.com/") {
		t.Fatalf("form checkout: got %d Location %q\n%s", res.StatusCode, res.Header.Get("Location"), logs.String())
	}

	// The JSON request main.js sends.
	res, err = client.Post(base+"/create-checkout-session", "application/json", strings.NewReader(`{"productId":"tshirt","quantity":1}`))
	if err != nil {
		t.Fatal(err)
	}
	var created struct{ SessionID, URL string }
	err = json.NewDecoder(res.Body).Decode(&created)
	res.Body.Close()
	if err != nil || res.StatusCode != 200 || !strings.HasPrefix(created.SessionID, "cs_") || created.URL == "" {
		t.Fatalf("json checkout: got %d %+v %v", res.StatusCode, created, err)
	}

	if status, body := get("/success?session_id=" + created.SessionID); status != 200 || !strings.Contains(body, "ord_") || !strings.Contains(body, "$20.00") {
		t.Fatalf("success: got %d\n%s", status, body)
	}
	if status, _ := get("/success?session_id=cs_test_neverCreated"); status != 404 {
		t.Errorf("unknown session: got %d, want 404", status)
	}
	if status, body := get("/cancelled"); status != 200 || !strings.Contains(body, "Nothing was charged") {
		t.Fatalf("cancelled: got %d", status)
	}
	if status, _ := get("/healthz"); status != 200 {
		t.Errorf("healthz: got %d", status)
	}
}

func TestRunWithoutKeys(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-env-file", filepath.Join(t.TempDir(), "none")}, func(string) string { return "" }, &stdout, &stderr)
	if err == nil {
		t.Fatal("run: got nil error, want one")
	}
	for _, want := range []string{"STRIPE_SECRET_KEY is not set", "STRIPE_PUBLISHABLE_KEY is not set", "dashboard.stripe.com/test/apikeys", ".env.example"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}

func TestEnvFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".env")
	if err := os.WriteFile(path, []byte("A=from-file\nB=from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv, err := withEnvFile(path, func(k string) string { return map[string]string{"A": "from-env"}[k] })
	if err != nil {
		t.Fatal(err)
	}
	if getenv("A") != "from-env" || getenv("B") != "from-file" || getenv("C") != "" {
		t.Errorf("got A=%q B=%q C=%q, want from-env, from-file, empty", getenv("A"), getenv("B"), getenv("C"))
	}
	if _, err := withEnvFile(filepath.Join(t.TempDir(), "missing"), func(string) string { return "" }); err != nil {
		t.Errorf("missing file: got %v, want no error", err)
	}
}

func TestReconcileCommand(t *testing.T) {
	mock := testenv.StripeMock(t)
	env := map[string]string{
		"STRIPE_SECRET_KEY": testSecretKey, "STRIPE_PUBLISHABLE_KEY": testPublishableKey, "STRIPE_API_BASE": mock,
		"DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "shop.db"),
	}
	var stdout, stderr bytes.Buffer
	args := []string{"reconcile", "-env-file", filepath.Join(t.TempDir(), "none"), "-since", "24h"}
	if err := run(context.Background(), args, func(k string) string { return env[k] }, &stdout, &stderr); err != nil {
		t.Fatalf("reconcile: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "reconciled:") {
		t.Errorf("stdout: got %q, want a report", stdout.String())
	}
	for _, bad := range [][]string{{"frobnicate"}, {"reconcile", "-since", "1000h"}} {
		if err := run(context.Background(), bad, func(k string) string { return env[k] }, io.Discard, io.Discard); err == nil {
			t.Errorf("run %q: got nil error, want one", bad)
		}
	}
}

// TestRunWithoutWebhookSecret: the shop still starts, says loudly what is
// missing, and refuses every event rather than processing an unsigned one.
func TestRunWithoutWebhookSecret(t *testing.T) {
	base, logs := startServer(t, map[string]string{
		"STRIPE_SECRET_KEY": testSecretKey, "STRIPE_PUBLISHABLE_KEY": testPublishableKey,
		"STRIPE_API_BASE": "http://127.0.0.1:9", "PORT": "0",
		"DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "shop.db"),
	})
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "STRIPE_WEBHOOK_SECRET is not set") {
		t.Errorf("no warning about the missing secret:\n%s", logs.String())
	}
	res, err := http.Post(base+"/webhook", "application/json", strings.NewReader(`{"id":"evt_1","object":"event","type":"checkout.session.completed"}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("webhook: got %d, want 503", res.StatusCode)
	}
}
