// Command bench-reference is the ceiling cmd/bench measures the shop against:
// plain net/http serving the shop's own home page and /config bytes (copied
// from a running shop at start), and a /webhook that checks Stripe's
// signature as the shop does and de-duplicates event ids in memory, storing
// nothing.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "bench-reference: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fl := flag.NewFlagSet("bench-reference", flag.ContinueOnError)
	addr := fl.String("addr", "127.0.0.1:0", "listen address")
	shop := fl.String("shop", "", "base URL of a running shop whose / and /config are served")
	secret := fl.String("webhook-secret", "", "the whsec_ secret events are signed with")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *shop == "" || *secret == "" {
		return errors.New("-shop and -webhook-secret are required")
	}
	home, err := fetch(ctx, *shop+"/")
	if err != nil {
		return err
	}
	config, err := fetch(ctx, *shop+"/config")
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	ref := &reference{secret: *secret, seen: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", static("text/html; charset=utf-8", home))
	mux.HandleFunc("GET /config", static("application/json; charset=utf-8", config))
	mux.HandleFunc("GET /healthz", static("application/json; charset=utf-8", []byte(`{"status":"ok"}`+"\n")))
	mux.HandleFunc("POST /webhook", ref.handleWebhook)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute}
	fmt.Fprintf(stdout, "reference listening on http://%s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// fetch returns the body of a 200 answer to GET url.
func fetch(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err == nil && res.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", url, res.Status)
	}
	return body, err
}

func static(contentType string, body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		_, _ = w.Write(body)
	}
}

// reference remembers the event ids it has seen, in memory only.
type reference struct {
	secret string
	mu     sync.Mutex
	seen   map[string]bool
}

func (ref *reference) handleWebhook(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 512<<10))
	if err != nil {
		http.Error(w, "could not read the event", http.StatusBadRequest)
		return
	}
	if err := webhook.ValidatePayloadWithTolerance(body, r.Header.Get("Stripe-Signature"), ref.secret, 300*time.Second); err != nil {
		http.Error(w, "invalid signature", http.StatusBadRequest)
		return
	}
	var ev struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &ev); err != nil || ev.ID == "" {
		http.Error(w, "malformed event", http.StatusBadRequest)
		return
	}
	ref.mu.Lock()
	dup := ref.seen[ev.ID]
	ref.seen[ev.ID] = true
	ref.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if dup {
		_, _ = io.WriteString(w, `{"received":true,"duplicate":true}`+"\n")
		return
	}
	_, _ = io.WriteString(w, `{"received":true}`+"\n")
}
