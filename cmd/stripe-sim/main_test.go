package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
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
