// Package testenv is what the shop's tests share about their surroundings:
// where the services they need run, and the rule for when one is missing
// (skip on a developer's machine, fail in CI, where .ci/run starts them all).
package testenv

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
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
