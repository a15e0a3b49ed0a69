package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// stripeMockInstall is how a newcomer gets the pinned stripe-mock.
const stripeMockInstall = "make tools (go install github.com/stripe/stripe-mock@v0.203.0)"

// stripeMock is a stripe-mock the demo started, or one that already ran.
type stripeMock struct {
	url  string
	proc *process // nil when reused
}

func (m *stripeMock) origin() string {
	if m.proc == nil {
		return "already running"
	}
	return "started by the demo"
}

// stop ends the stripe-mock if the demo started it.
func (m *stripeMock) stop() {
	if m.proc != nil {
		m.proc.stop()
	}
}

// startStripeMock reuses a stripe-mock answering on port, or starts bin on
// it (port 0: a free port) and waits until it answers.
func startStripeMock(ctx context.Context, bin string, port int, getenv func(string) string, stderr io.Writer, verbose bool) (*stripeMock, error) {
	if port != 0 {
		url := "http://127.0.0.1:" + strconv.Itoa(port)
		switch err := probeStripeMock(ctx, url); {
		case err == nil:
			return &stripeMock{url: url}, nil
		case !errors.Is(err, errNotListening):
			return nil, fmt.Errorf("port %d: %w; stop it or choose another port with -mock-port", port, err)
		}
	} else {
		var err error
		if port, err = freePort(); err != nil {
			return nil, err
		}
	}
	if bin == "" {
		bin = findBinary("stripe-mock", getenv)
		if bin == "" {
			return nil, fmt.Errorf("stripe-mock not found on PATH or in $GOPATH/bin: install it with %s, or pass -stripe-mock PATH", stripeMockInstall)
		}
	}

	addr := "127.0.0.1:" + strconv.Itoa(port)
	p, err := startProcess("stripe-mock", bin, []string{"-http-addr", addr, "-https-addr", "127.0.0.1:0"}, stderr, verbose)
	if err != nil {
		return nil, fmt.Errorf("start stripe-mock (install it with %s): %w", stripeMockInstall, err)
	}
	m := &stripeMock{url: "http://" + addr, proc: p}
	if err := p.waitReady(ctx, m.url, func(ctx context.Context) error { return probeStripeMock(ctx, m.url) }); err != nil {
		return nil, err
	}
	return m, nil
}

// process is a helper program the demo started.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *tail         // the end of its output, for error messages
	done chan struct{} // closed when cmd has exited
}

// startProcess starts bin with args; its output goes to stderr too when
// verbose.
func startProcess(name, bin string, args []string, stderr io.Writer, verbose bool) (*process, error) {
	out := &tail{max: 8 << 10}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if verbose {
		cmd.Stdout, cmd.Stderr = io.MultiWriter(out, stderr), io.MultiWriter(out, stderr)
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{name: name, cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait() // its exit is reported by waitReady or expected in stop
		close(p.done)
	}()
	return p, nil
}

// waitReady calls ready until it returns nil. If the process exits first,
// ctx ends or 30s pass, it stops the process and says why, with the end of
// its output.
func (p *process) waitReady(ctx context.Context, where string, ready func(context.Context) error) error {
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := ready(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited at start (%v):\n%s", p.name, p.cmd.ProcessState, p.out)
		case <-ctx.Done():
			p.stop()
			return ctx.Err()
		case <-deadline.C:
			p.stop()
			return fmt.Errorf("%s did not answer on %s within 30s (%v):\n%s", p.name, where, err, p.out)
		case <-tick.C:
		}
	}
}

// stop ends the process: politely, then by force.
func (p *process) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt) // fails only if it has exited already
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

var errNotListening = errors.New("nothing listens")

// probeStripeMock reports whether stripe-mock answers at url: nil if it
// does, errNotListening if nothing listens, another error if something else
// does.
func probeStripeMock(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v1/customers", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+demoSecretKey)
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return errNotListening
		}
		return err
	}
	resp.Body.Close()
	if resp.Header.Get("Stripe-Mock-Version") == "" {
		return fmt.Errorf("%s answers, but it is not stripe-mock", url)
	}
	return nil
}

// findBinary looks for the program name on PATH, then in $GOBIN,
// $GOPATH/bin and ~/go/bin, where `go install` puts it.
func findBinary(name string, getenv func(string) string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	var dirs []string
	if d := getenv("GOBIN"); d != "" {
		dirs = append(dirs, d)
	}
	for _, d := range filepath.SplitList(getenv("GOPATH")) {
		dirs = append(dirs, filepath.Join(d, "bin"))
	}
	if home := getenv("HOME"); home != "" {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// freePort asks the system for a free port on 127.0.0.1.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(p)
	if over := t.buf.Len() - t.max; over > 0 {
		t.buf.Next(over)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.String()
}
