// Package testenv is what the shop's tests share about their surroundings:
// where the services they need run, and the rule for when one is missing
// (skip on a developer's machine, fail in CI, where .ci/run starts them all).
package testenv

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Unavailable skips the test with the reason, or fails it when the CI
// environment variable is set: CI must never pass by skipping.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (required in CI)", msg)
	}
	t.Skip(msg)
}

// StripeMock returns the base URL of a running stripe-mock
// (STRIPE_MOCK_URL, default http://localhost:12111), or skips/fails.
func StripeMock(t testing.TB) string {
	t.Helper()
	base := os.Getenv("STRIPE_MOCK_URL")
	if base == "" {
		base = "http://localhost:12111"
	}
	req, err := http.NewRequest(http.MethodGet, base+"/v1/customers", nil)
	if err != nil {
		t.Fatalf("STRIPE_MOCK_URL=%q: %v", base, err)
	}
	req.Header.Set("Authorization", "Bearer sk_test_probe")
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Do(req)
	if err == nil {
		resp.Body.Close()
		if resp.Header.Get("Stripe-Mock-Version") != "" {
			return base
		}
		err = fmt.Errorf("answered %s without a Stripe-Mock-Version header", resp.Status)
	}
	Unavailable(t, "stripe-mock is not running at %s (%v): start it with `make stripe-mock` or set STRIPE_MOCK_URL", base, err)
	return ""
}

// Postgres returns the URL of the test PostgreSQL (SHOP_TEST_POSTGRES_URL),
// or skips/fails.
func Postgres(t testing.TB) string {
	t.Helper()
	u := os.Getenv("SHOP_TEST_POSTGRES_URL")
	if u == "" {
		Unavailable(t, "PostgreSQL tests need SHOP_TEST_POSTGRES_URL: export SHOP_TEST_POSTGRES_URL=$(make -s postgres)")
	}
	return u
}

// Mailpit returns the SMTP address (MAILPIT_SMTP, default 127.0.0.1:1025)
// and the HTTP API base URL (MAILPIT_URL, default http://127.0.0.1:8025) of
// a running mailpit, or skips/fails. Tests share one mailpit, so each one
// sends to recipients of its own and finds its messages by searching for
// them (see Mailbox), never by expecting an empty mailbox.
func Mailpit(t testing.TB) (smtpAddr, apiURL string) {
	t.Helper()
	smtpAddr = os.Getenv("MAILPIT_SMTP")
	if smtpAddr == "" {
		smtpAddr = "127.0.0.1:1025"
	}
	apiURL = strings.TrimRight(os.Getenv("MAILPIT_URL"), "/")
	if apiURL == "" {
		apiURL = "http://127.0.0.1:8025"
	}
	if err := probeMailpit(smtpAddr, apiURL); err != nil {
		Unavailable(t, "mailpit is not running at SMTP %s, API %s (%v): start it with `make mailpit` or set MAILPIT_SMTP and MAILPIT_URL", smtpAddr, apiURL, err)
	}
	return smtpAddr, apiURL
}

// probeMailpit checks that mailpit's API answers at apiURL and that an SMTP
// server greets on smtpAddr.
func probeMailpit(smtpAddr, apiURL string) error {
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(apiURL + "/api/v1/messages?limit=1")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var list struct {
		Total    *uint64           `json:"total"`
		Messages []json.RawMessage `json:"messages"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); resp.StatusCode != http.StatusOK || err != nil || list.Total == nil || list.Messages == nil {
		return fmt.Errorf("%s answered %s, but not as mailpit's API does", apiURL, resp.Status)
	}
	c, err := net.DialTimeout("tcp", smtpAddr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	greeting, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("SMTP %s: no greeting: %w", smtpAddr, err)
	}
	if !strings.HasPrefix(greeting, "220") {
		return errors.New("SMTP " + smtpAddr + " greeted with " + strings.TrimSpace(greeting))
	}
	_, _ = c.Write([]byte("QUIT\r\n"))
	return nil
}

// SyncBuffer collects what a server writes while a test reads it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Chromium returns the path of a Chromium binary: $CHROMIUM, else
// /usr/bin/chromium, chromium or chromium-browser on PATH; or skips/fails.
func Chromium(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			Unavailable(t, "CHROMIUM=%q is not an executable: %v", p, err)
		}
		return p
	}
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	Unavailable(t, "Chromium not found: install it (apt-get install chromium) or set CHROMIUM to its path")
	return ""
}
