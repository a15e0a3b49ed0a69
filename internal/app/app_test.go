package app

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shopcheckout/shop/internal/config"
)

func serveTest(t *testing.T, tweak func(*http.Server)) string {
	t.Helper()
	hs := NewHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		config.Config{StripeTimeout: time.Second}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if tweak != nil {
		tweak(hs)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return ln.Addr().String()
}

func TestHTTPServerLimits(t *testing.T) {
	hs := NewHTTPServer(nil, config.Config{StripeTimeout: 10 * time.Second}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if hs.ReadHeaderTimeout <= 0 || hs.ReadTimeout <= 0 || hs.WriteTimeout <= 10*time.Second || hs.IdleTimeout <= 0 || hs.MaxHeaderBytes <= 0 {
		t.Errorf("got %+v, want every timeout set, WriteTimeout above the Stripe deadline, and a header cap", hs)
	}
}

// TestSlowHeadersCutOff sends half a request and stops: the server must hang
// up after ReadHeaderTimeout instead of holding the connection.
func TestSlowHeadersCutOff(t *testing.T) {
	addr := serveTest(t, func(hs *http.Server) { hs.ReadHeaderTimeout = 200 * time.Millisecond })
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: shop\r\nX-Slow: ")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, err = io.ReadAll(conn)
	if err != nil {
		t.Fatalf("read: %v (the server kept the connection open)", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("closed after %v, want about the header timeout", d)
	}
}

func TestHeaderSizeCap(t *testing.T) {
	addr := serveTest(t, nil)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: shop\r\nX-Big: "+strings.Repeat("a", 64<<10)+"\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("status: got %d, want 431", res.StatusCode)
	}
}
