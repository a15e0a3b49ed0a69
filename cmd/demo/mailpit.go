package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// mailpitInstall is how a newcomer gets the pinned mailpit.
const mailpitInstall = "make tools (go install github.com/axllent/mailpit@v1.33.1)"

// The demo shop's email addresses; mailpit takes mail to any address.
const (
	demoMailFrom   = "Demo Shop <shop@demo.test>"
	demoOwnerEmail = "owner@demo.test"
)

// mailpit is a mailpit (an SMTP server that keeps every message and shows
// them on a web page) the demo started, or one that already ran.
type mailpit struct {
	smtpAddr string   // host:port of its SMTP server
	webPort  int      // its web page and API, on 127.0.0.1
	proc     *process // nil when reused
	dir      string   // its database, removed on stop; "" when reused
}

// webURL is the address of its web page for a browser.
func (m *mailpit) webURL() string { return "http://localhost:" + strconv.Itoa(m.webPort) }

func (m *mailpit) origin() string {
	if m.proc == nil {
		return "already running"
	}
	return "started by the demo"
}

// stop ends the mailpit if the demo started it, and removes its messages.
func (m *mailpit) stop() {
	if m.proc != nil {
		m.proc.stop()
	}
	if m.dir != "" {
		_ = os.RemoveAll(m.dir)
	}
}

// startMailpit reuses a mailpit answering on both ports, or starts bin on
// them (0: a free port) and waits until it answers. Its messages live in a
// temporary directory until stop.
func startMailpit(ctx context.Context, bin string, smtpPort, webPort int, getenv func(string) string, stderr io.Writer, verbose bool) (*mailpit, error) {
	if smtpPort != 0 && webPort != 0 {
		m := &mailpit{smtpAddr: loopback(smtpPort), webPort: webPort}
		switch err := probeMailpit(ctx, m); {
		case err == nil:
			return m, nil
		case !errors.Is(err, errNotListening):
			return nil, fmt.Errorf("%w; stop it or choose other ports with -mail-port and -mail-web-port", err)
		}
	}
	for _, p := range []*int{&smtpPort, &webPort} {
		if *p == 0 {
			var err error
			if *p, err = freePort(); err != nil {
				return nil, err
			}
		}
	}
	if bin == "" {
		bin = findBinary("mailpit", getenv)
		if bin == "" {
			return nil, fmt.Errorf("mailpit not found on PATH or in $GOPATH/bin: install it with %s, or pass -mailpit PATH", mailpitInstall)
		}
	}
	dir, err := os.MkdirTemp("", "demo-mailpit-")
	if err != nil {
		return nil, fmt.Errorf("mailpit: %w", err)
	}
	m := &mailpit{smtpAddr: loopback(smtpPort), webPort: webPort, dir: dir}
	args := []string{
		"--smtp", m.smtpAddr, "--listen", loopback(webPort), "--database", filepath.Join(dir, "mailpit.db"),
		// Like a mail provider, take any login; never look anything up on
		// the network.
		"--smtp-auth-accept-any", "--smtp-auth-allow-insecure", "--smtp-disable-rdns", "--disable-version-check",
	}
	if m.proc, err = startProcess("mailpit", bin, args, stderr, verbose); err != nil {
		m.stop()
		return nil, fmt.Errorf("start mailpit: %w; install it with %s, or pass -mailpit PATH", err, mailpitInstall)
	}
	if err := m.proc.waitReady(ctx, m.smtpAddr+" and "+loopback(webPort), func(ctx context.Context) error { return probeMailpit(ctx, m) }); err != nil {
		m.stop()
		return nil, err
	}
	return m, nil
}

func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// probeMailpit reports whether m answers: nil if its API and its SMTP
// server both do, errNotListening if nothing listens on either port,
// another error if something else does.
func probeMailpit(ctx context.Context, m *mailpit) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	apiErr := probeMailpitAPI(ctx, "http://"+loopback(m.webPort))
	smtpErr := probeSMTP(ctx, m.smtpAddr)
	switch {
	case apiErr == nil && smtpErr == nil:
		return nil
	case errors.Is(apiErr, errNotListening) && errors.Is(smtpErr, errNotListening):
		return errNotListening
	case apiErr == nil:
		return fmt.Errorf("mailpit answers on port %d, but SMTP on %s does not (%v)", m.webPort, m.smtpAddr, smtpErr)
	case errors.Is(apiErr, errNotListening):
		return fmt.Errorf("port %d is free, but %s is taken (%v)", m.webPort, m.smtpAddr, smtpErr)
	}
	return apiErr
}

func probeMailpitAPI(ctx context.Context, base string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/messages?limit=1", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return errNotListening
		}
		return err
	}
	defer resp.Body.Close()
	var list struct {
		Total    *uint64           `json:"total"`
		Messages []json.RawMessage `json:"messages"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); resp.StatusCode != http.StatusOK || err != nil || list.Total == nil || list.Messages == nil {
		return fmt.Errorf("%s answers, but it is not mailpit", base)
	}
	return nil
}

// probeSMTP reports whether an SMTP server greets on addr.
func probeSMTP(ctx context.Context, addr string) error {
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return errNotListening
	}
	defer c.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(d)
	}
	greeting, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("%s sends no SMTP greeting: %w", addr, err)
	}
	if !strings.HasPrefix(greeting, "220") {
		return fmt.Errorf("%s greets with %q, not as an SMTP server", addr, strings.TrimSpace(greeting))
	}
	_, _ = io.WriteString(c, "QUIT\r\n")
	return nil
}
