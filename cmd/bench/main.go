// Command bench measures the shop against a reference server, side by side
// on this machine: it builds cmd/server and cmd/bench-reference, starts them
// (and stripe-mock, if it is not running), loads each endpoint for a fixed
// time from a small load generator over loopback, checks that every webhook
// answered 2xx is stored and every paid order fulfilled, and prints one
// table. The catalogue it gives the shop has the default T-shirt and a
// stocked twin, whose checkouts (holding stock in the order's write) are
// measured against the shop's own unlimited checkouts.
//
// Then it seeds a million orders into SQLite (and, with -postgres, into
// PostgreSQL) and measures the back office: list, search and order pages at
// 8 admins at once, and the CSV export of every order.
//
//	go run ./cmd/bench [-d 5s] [-warmup 1s] [-orders 60000] [-backoffice 1000000] [-postgres URL] [-only backoffice]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// unlimited names the shop itself, buying the unlimited product, as the
// ceiling of the stocked checkout.
const unlimited = "shop, unlimited"

// The keys the shop runs with: stripe-mock accepts any test key.
const (
	secretKey      = "sk_test_bench"
	publishableKey = "pk_test_bench"
	webhookSecret  = "whsec_bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

type options struct {
	d, warmup  time.Duration
	orders     int
	conns      int // for the pages
	senders    int // for webhooks and checkouts
	stripeMock string
	keep       bool
	pprof      bool
	rounds     int
	only       string
	outboxRate float64
	backoffice int    // orders seeded for the back office's run; 0 skips it
	postgres   string // a PostgreSQL server for the back office's run
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("bench", flag.ContinueOnError)
	fl.SetOutput(stderr)
	var o options
	fl.DurationVar(&o.d, "d", 5*time.Second, "measured time per endpoint and server")
	fl.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured time before each measurement")
	fl.IntVar(&o.orders, "orders", 60000, "pending orders to seed, one per webhook event sent to the shop")
	fl.IntVar(&o.conns, "conns", 32, "connections for GET / and GET /config")
	fl.IntVar(&o.senders, "senders", 16, "concurrent senders of webhooks and of checkouts")
	fl.StringVar(&o.stripeMock, "stripe-mock", "127.0.0.1:12111", "stripe-mock's address (started from GOPATH/bin if nobody listens there)")
	fl.BoolVar(&o.keep, "keep", false, "keep the work directory (binaries, database, logs)")
	fl.StringVar(&o.only, "only", "", "measure only the endpoints whose label contains this (e.g. webhook)")
	fl.Float64Var(&o.outboxRate, "outbox-rate", 200, "paid webhooks per second in the outbox latency run")
	fl.IntVar(&o.backoffice, "backoffice", 1_000_000, "orders seeded for the back office's run (list, search, detail, CSV export); 0 skips it")
	fl.StringVar(&o.postgres, "postgres", "", "a PostgreSQL URL (e.g. $SHOP_TEST_POSTGRES_URL): the back office's run also seeds a schema there")
	fl.IntVar(&o.rounds, "rounds", 5, "turns in which the shop and its ceiling share each endpoint's time (1 with -pprof)")
	fl.BoolVar(&o.pprof, "pprof", false, "build the shop with net/http/pprof and keep a CPU profile of each shop measurement in the work directory")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if o.d <= 0 || o.d > time.Minute || o.warmup < 0 || o.warmup > 10*time.Second {
		return errors.New("-d must be in (0, 1m] and -warmup in [0, 10s]: the run stays bounded")
	}
	dir, err := os.MkdirTemp("", "shop-bench-")
	if err != nil {
		return err
	}
	o.keep = o.keep || o.pprof
	if o.pprof || o.rounds < 1 {
		o.rounds = 1
	}
	if o.keep {
		fmt.Fprintf(stderr, "work directory: %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	b := &bench{opts: o, dir: dir, log: stderr}
	defer b.cleanup()
	table, err := b.run(ctx)
	if table != nil {
		table.print(stdout)
	}
	return err
}

// bench is one run: its work directory, the processes it started, what it
// measured.
type bench struct {
	opts      options
	dir       string
	log       io.Writer
	procs     []*proc
	pprofAddr string // the shop's net/http/pprof, with -pprof
	receiver  *receiver
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "bench: "+format+"\n", args...)
}

// cleanup stops whatever is still running.
func (b *bench) cleanup() {
	for _, p := range b.procs {
		p.stop()
	}
}

func (b *bench) run(ctx context.Context) (*table, error) {
	shopBin, refBin, err := b.build(ctx)
	if err != nil {
		return nil, err
	}
	if err := b.ensureStripeMock(ctx); err != nil {
		return nil, err
	}
	if b.opts.only == "backoffice" {
		t := &table{}
		t.backoffice, err = b.backoffice(ctx, shopBin)
		return t, err
	}
	dbPath := filepath.Join(b.dir, "data", "shop.db")
	if err := os.MkdirAll(filepath.Dir(dbPath), 0o750); err != nil {
		return nil, err
	}
	fsyncs, err := fsyncRate(filepath.Dir(dbPath), 2000)
	if err != nil {
		return nil, fmt.Errorf("fsync probe: %w", err)
	}
	b.logf("disk: %.0f fsyncs/s (4 KiB write + fdatasync)", fsyncs)
	b.logf("seeding %d pending orders", b.opts.orders)
	start := time.Now()
	if err := seed(ctx, dbPath, b.opts.orders); err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	b.logf("seeded in %v", time.Since(start).Round(time.Millisecond))

	rcv, err := startReceiver()
	if err != nil {
		return nil, err
	}
	defer rcv.close()
	b.receiver = rcv
	shop, shopAddr, ready, err := b.startShop(ctx, shopBin, dbPath)
	if err != nil {
		return nil, err
	}
	refPort, err := freePort()
	if err != nil {
		return nil, err
	}
	refAddr := "127.0.0.1:" + strconv.Itoa(refPort)
	ref, err := startProc(ctx, "reference", refBin,
		[]string{"-addr", refAddr, "-shop", "http://" + shopAddr, "-webhook-secret", webhookSecret}, nil,
		filepath.Join(b.dir, "reference.log"), "http://"+refAddr+"/healthz")
	if err != nil {
		return nil, err
	}
	b.procs = append(b.procs, ref)

	t := &table{fsyncs: fsyncs, ready: ready}
	l := newLedger(b.opts.orders)
	pairs := []struct {
		label, vs string
		conns     int
		shop, ref phase
		target    float64
	}{
		{"GET /", "reference", b.opts.conns, pageLoad("shop", shopAddr, "/", "text/html"), pageLoad("reference", refAddr, "/", "text/html"), 0.7},
		{"GET /config", "reference", b.opts.conns, pageLoad("shop", shopAddr, "/config", "application/json"), pageLoad("reference", refAddr, "/config", "application/json"), 0.8},
		{"POST /webhook (durable, + outbox row)", "reference", b.opts.senders, l.webhookLoad("shop", shopAddr, true), l.webhookLoad("reference", refAddr, false), 0.5},
		{"POST /create-checkout-session", "stripe-mock", b.opts.senders, l.checkoutLoad(shopAddr, product), stripeMockLoad(b.opts.stripeMock), 0.6},
		// Holding stock in the order's write costs at most a tenth.
		{"POST /create-checkout-session (stock)", unlimited, b.opts.senders, l.checkoutLoad(shopAddr, stocked), l.checkoutLoad(shopAddr, product), 0.9},
	}
	mockPID := findProcess("stripe-mock")
	var problems []string
	for _, p := range pairs {
		if err := ctx.Err(); err != nil {
			return t, err
		}
		if !strings.Contains(p.label, b.opts.only) {
			continue
		}
		p.shop.conns, p.ref.conns = p.conns, p.conns
		p.shop.pid, p.ref.pid = shop.cmd.Process.Pid, ref.cmd.Process.Pid
		switch p.vs {
		case "stripe-mock":
			p.ref.pid = mockPID
		case unlimited:
			p.ref.pid = shop.cmd.Process.Pid
		}
		rs, rr := b.compare(p.shop, p.ref)
		t.add(p.label, p.vs, p.conns, rs, rr, p.target)
		if n := rs.serverErrors(); n > 0 {
			problems = append(problems, fmt.Sprintf("%s: the shop answered %d 5xx", p.label, n))
		}
		if rs.failures > 0 {
			problems = append(problems, fmt.Sprintf("%s: %d failed requests to the shop; first: %v", p.label, rs.failures, rs.firstErr))
		}
	}
	if strings.Contains("outbox", b.opts.only) || b.opts.only == "" {
		b.logf("outbox: paid webhooks at %.0f/s for %v, open loop", b.opts.outboxRate, b.opts.d)
		lat, err := l.outboxLatency(ctx, shopAddr, rcv, b.opts.outboxRate, b.opts.d)
		t.outbox = &lat
		if err != nil {
			problems = append(problems, fmt.Sprintf("outbox: %v (%d missing)", err, lat.missing))
		}
		if lat.failures > 0 {
			problems = append(problems, fmt.Sprintf("outbox: %d webhooks not acknowledged", lat.failures))
		}
	}
	// Every acknowledged payment's notification reaches the receiver.
	want := 0
	for i := range l.acked {
		if l.acked[i].Load() {
			want++
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for rcv.count() < want && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	t.check.delivered, t.check.redelivered, t.check.badSignatures = rcv.count(), int(rcv.duplicates.Load()), int(rcv.bad.Load())
	if t.check.delivered != want {
		problems = append(problems, fmt.Sprintf("%d paid orders acknowledged, %d order.paid notifications delivered", want, t.check.delivered))
	}
	if t.check.badSignatures > 0 {
		problems = append(problems, fmt.Sprintf("%d deliveries with a bad signature", t.check.badSignatures))
	}
	if t.peakRSS, t.rss, err = shop.memory(); err != nil {
		return t, fmt.Errorf("read the shop's memory: %w", err)
	}
	if err := shop.stop(); err != nil {
		return t, fmt.Errorf("stop shop: %w", err)
	}
	if l.exhausted.Load() {
		t.notes = append(t.notes, fmt.Sprintf("the %d seeded orders ran out: raise -orders", b.opts.orders))
	}
	delivered := t.check
	t.check, err = verify(ctx, dbPath, l)
	t.check.delivered, t.check.redelivered, t.check.badSignatures = delivered.delivered, delivered.redelivered, delivered.badSignatures
	t.check.problems = append(t.check.problems, problems...)
	if err == nil && len(problems) > 0 {
		err = errors.New("verification failed")
	}
	if err == nil && b.opts.backoffice > 0 && b.opts.only == "" {
		t.backoffice, err = b.backoffice(ctx, shopBin)
	}
	return t, err
}

// build compiles the shop (cmd/server, as deployed; with -pprof, plus
// net/http/pprof through an overlay) and the reference.
func (b *bench) build(ctx context.Context) (shopBin, refBin string, err error) {
	b.logf("building cmd/server and cmd/bench-reference")
	shopBin, refBin = filepath.Join(b.dir, "server"), filepath.Join(b.dir, "bench-reference")
	var overlay []string
	if b.opts.pprof {
		o, err := pprofOverlay(b.dir)
		if err != nil {
			return "", "", err
		}
		overlay = []string{"-overlay", o}
	}
	for bin, pkg := range map[string]string{shopBin: "./cmd/server", refBin: "./cmd/bench-reference"} {
		args := append([]string{"build", "-trimpath", "-o", bin}, overlay...)
		cmd := exec.CommandContext(ctx, "go", append(args, pkg)...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
		}
	}
	return shopBin, refBin, nil
}

// startShop starts the shop on the existing database three times, timing
// each start to ready, and keeps the third running: the shop under test. It
// runs with rate limiting off and stripe-mock as its Stripe.
func (b *bench) startShop(ctx context.Context, bin, dbPath string) (shop *proc, addr string, ready time.Duration, err error) {
	port, err := freePort()
	if err != nil {
		return nil, "", 0, err
	}
	addr = "127.0.0.1:" + strconv.Itoa(port)
	catalogPath := filepath.Join(b.dir, "catalog.json")
	if err := writeCatalog(catalogPath); err != nil {
		return nil, "", 0, fmt.Errorf("write catalogue: %w", err)
	}
	env := []string{
		"STRIPE_SECRET_KEY=" + secretKey, "STRIPE_PUBLISHABLE_KEY=" + publishableKey, "STRIPE_WEBHOOK_SECRET=" + webhookSecret,
		"PORT=" + strconv.Itoa(port), "BASE_URL=http://" + addr, "DATABASE_URL=sqlite:" + dbPath,
		"STRIPE_API_BASE=http://" + b.opts.stripeMock, "RATE_LIMIT_PER_MINUTE=0", "RATE_LIMIT_GLOBAL_PER_SECOND=0",
		"FULFILMENT_WEBHOOK_URL=" + b.receiver.url(), "FULFILMENT_WEBHOOK_SECRET=" + receiverSecret,
		"CATALOG_FILE=" + catalogPath,
	}
	if b.opts.pprof {
		pport, err := freePort()
		if err != nil {
			return nil, "", 0, err
		}
		b.pprofAddr = "127.0.0.1:" + strconv.Itoa(pport)
		env = append(env, pprofEnv+"="+b.pprofAddr)
	}
	var readies []time.Duration
	for i := range 3 {
		p, err := startProc(ctx, "shop", bin, []string{"-env-file", filepath.Join(b.dir, "absent.env")}, env,
			filepath.Join(b.dir, "shop.log"), "http://"+addr+"/healthz")
		if err != nil {
			return nil, "", 0, err
		}
		readies = append(readies, p.ready)
		if i == 2 {
			shop = p
			b.procs = append(b.procs, p)
		} else if err := p.stop(); err != nil {
			return nil, "", 0, fmt.Errorf("stop shop: %w", err)
		}
	}
	slices.Sort(readies)
	b.logf("start to ready: %v", readies)
	return shop, addr, readies[1], nil
}

// compare measures the shop and its ceiling in turns, so that a machine
// whose speed drifts (a shared VM) treats both alike: rounds of d/rounds
// each, the ceiling first in every other round.
func (b *bench) compare(shop, ref phase) (rs, rr result) {
	rounds := b.opts.rounds
	d := b.opts.d / time.Duration(rounds)
	for i := range rounds {
		warmup := b.opts.warmup / time.Duration(rounds)
		if i%2 == 1 {
			rr = rr.add(b.measure(ref, warmup, d))
			rs = rs.add(b.measureShop(shop, warmup, d))
		} else {
			rs = rs.add(b.measureShop(shop, warmup, d))
			rr = rr.add(b.measure(ref, warmup, d))
		}
	}
	b.logf("%-40s %6.0f req/s (%v CPU/req; client %v), %s %.0f req/s (%v CPU/req; client %v): ratio %.2f",
		shop.name, rs.rate(), rs.cpuPerRequest().Round(100*time.Nanosecond), (rs.clientCPU / time.Duration(max(1, rs.requests))).Round(100*time.Nanosecond),
		ref.name, rr.rate(), rr.cpuPerRequest().Round(100*time.Nanosecond), (rr.clientCPU / time.Duration(max(1, rr.requests))).Round(100*time.Nanosecond),
		rs.rate()/rr.rate())
	return rs, rr
}

// measureShop is measure, with a CPU profile of the shop taken meanwhile
// when -pprof is on.
func (b *bench) measureShop(p phase, warmup, d time.Duration) result {
	if b.pprofAddr == "" {
		return b.measure(p, warmup, d)
	}
	name := strings.NewReplacer(" ", "-", "/", "_").Replace(p.name)
	path := filepath.Join(b.dir, name+".pprof")
	done := make(chan error, 1)
	go func() { done <- cpuProfile(b.pprofAddr, warmup, d, path) }()
	r := b.measure(p, warmup, d)
	if err := <-done; err != nil {
		b.logf("profile of %s: %v", p.name, err)
	} else {
		b.logf("profile: go tool pprof -top %s", path)
	}
	return r
}

// measure runs one phase and logs a line about it.
func (b *bench) measure(p phase, warmup, d time.Duration) result {
	r := p.run(warmup, d)
	if r.failures > 0 {
		b.logf("  %d failures; first: %v", r.failures, r.firstErr)
	}
	return r
}

// ensureStripeMock starts stripe-mock from GOPATH/bin unless it is running.
func (b *bench) ensureStripeMock(ctx context.Context) error {
	if listening(b.opts.stripeMock) {
		return nil
	}
	gopath, err := exec.CommandContext(ctx, "go", "env", "GOPATH").Output()
	if err != nil {
		return fmt.Errorf("go env GOPATH: %w", err)
	}
	bin := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "stripe-mock")
	_, port, _ := strings.Cut(b.opts.stripeMock, ":")
	httpsPort, _ := strconv.Atoi(port)
	b.logf("starting %s on %s", bin, b.opts.stripeMock)
	p, err := startProc(ctx, "stripe-mock", bin, []string{"-http-port", port, "-https-port", strconv.Itoa(httpsPort + 1)}, nil,
		filepath.Join(b.dir, "stripe-mock.log"), "http://"+secretKey+":@"+b.opts.stripeMock+"/v1/charges")
	if err != nil {
		return fmt.Errorf("%w (install it with `make tools`)", err)
	}
	b.procs = append(b.procs, p)
	return nil
}
