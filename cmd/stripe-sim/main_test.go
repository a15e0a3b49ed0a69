package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRunServesAndShutsDown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	outR, outW := io.Pipe()
	env := map[string]string{"STRIPE_WEBHOOK_SECRET": "whsec_first, whsec_second"}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-mock", "http://127.0.0.1:1", "-webhook-url", ""},
			func(k string) string { return env[k] }, outW, io.Discard)
		outW.Close()
	}()

	line, err := bufio.NewReader(outR).ReadString('\n')
	if err != nil {
		t.Fatalf("read banner: %v (run: %v)", err, <-done)
	}
	go func() { _, _ = io.Copy(io.Discard, outR) }()
	fields := strings.Fields(line) // stripe-sim listening on URL ...
	if len(fields) < 4 || !strings.HasPrefix(fields[3], "http://127.0.0.1:") {
		t.Fatalf("banner %q", line)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(fields[3] + "/pay-assets/sim.css")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("css: %s", resp.Status)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}

func TestRunRejectsBadArguments(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"unknown flag", []string{"-nope"}},
		{"extra argument", []string{"serve"}},
		{"bad mock url", []string{"-addr", "127.0.0.1:0", "-mock", "localhost:12111"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(context.Background(), tt.args, func(string) string { return "" }, io.Discard, io.Discard)
			if err == nil {
				t.Error("run succeeded, want an error")
			}
		})
	}
}

func TestDefaultPublicURL(t *testing.T) {
	bound := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4321}
	tests := []struct{ addr, want string }{
		{"localhost:12113", "http://localhost:12113"},
		{":12113", "http://localhost:12113"},
		{"0.0.0.0:12113", "http://localhost:12113"},
		{"127.0.0.1:0", "http://127.0.0.1:4321"},
		{"[::1]:8080", "http://[::1]:8080"},
	}
	for _, tt := range tests {
		if got := defaultPublicURL(tt.addr, bound); got != tt.want {
			t.Errorf("defaultPublicURL(%q) = %q, want %q", tt.addr, got, tt.want)
		}
	}
}

func TestFirstSecret(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"whsec_a", "whsec_a"},
		{" whsec_a , whsec_b", "whsec_a"},
	}
	for _, tt := range tests {
		if got := firstSecret(tt.in); got != tt.want {
			t.Errorf("firstSecret(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// writeFile writes a file under a fresh temporary directory.
func writeFile(t testing.TB, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRunSeeds starts the simulator with the example of -h and finds its
// payment link printed and served.
func TestRunSeeds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seed := writeFile(t, "seed.json", seedExample)
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-mock", "http://127.0.0.1:1", "-webhook-url", "", "-seed", seed},
			func(string) string { return "" }, outW, io.Discard)
		outW.Close()
	}()
	out := bufio.NewReader(outR)
	var lines []string
	for range 3 {
		line, err := out.ReadString('\n')
		if err != nil {
			t.Fatalf("read output: %v (run: %v)", err, <-done)
		}
		lines = append(lines, strings.TrimSpace(line))
	}
	go func() { _, _ = io.Copy(io.Discard, outR) }()
	base := strings.Fields(lines[0])[3]
	want := []string{"seeded 1 products and 1 prices from " + seed, "payment link plink_tshirt: " + base + "/pl/plink_tshirt"}
	if diff := cmp.Diff(want, lines[1:]); diff != "" {
		t.Errorf("output after the banner (-want +got):\n%s", diff)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(base + "/pl/plink_tshirt")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "T-shirt") || !strings.Contains(string(body), "$20.00") {
		t.Errorf("payment link page: got %s\n%s", resp.Status, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
}

func TestRunRefusesBadSeed(t *testing.T) {
	tests := []struct {
		name, content string
		want          string
	}{
		{"not JSON", `{"products": [`, "unexpected EOF"},
		{"unknown field", `{"products": [{"name": "T-shirt", "price": 2000}]}`, `unknown field "price"`},
		{"two values", `{} {}`, "more than one JSON value"},
		{"bad seed", `{"products": [{"name": "T-shirt", "prices": [{"unit_amount": 1, "currency": "dollars"}]}]}`, "three-letter"},
		{"link to nothing", `{"payment_links": [{"line_items": [{"price": "price_nope"}]}]}`, "No such price"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, "seed.json", tt.content)
			err := run(context.Background(), []string{"-addr", "127.0.0.1:0", "-seed", path}, func(string) string { return "" }, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run: got %v, want an error saying %q", err, tt.want)
			}
		})
	}
	err := run(context.Background(), []string{"-seed", filepath.Join(t.TempDir(), "missing.json")}, func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing seed file: got %v", err)
	}
}

func TestHelpDocumentsSeed(t *testing.T) {
	var stderr strings.Builder
	if err := run(context.Background(), []string{"-h"}, func(string) string { return "" }, io.Discard, &stderr); err != nil {
		t.Fatalf("run -h: %v", err)
	}
	for _, want := range []string{"-seed file", `"payment_links"`, `"unit_amount": 2000`, `"redirect_url"`, `"active": false`} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("-h output lacks %s", want)
		}
	}
	var seed seedFile
	dec := json.NewDecoder(strings.NewReader(seedExample))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&seed); err != nil || len(seed.Products) != 1 || len(seed.PaymentLinks) != 1 {
		t.Errorf("the example does not read: %v, %+v", err, seed)
	}
}
