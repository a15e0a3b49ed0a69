package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shopcheckout/shop/internal/orders"
	"github.com/shopcheckout/shop/internal/postgres"
	"github.com/shopcheckout/shop/internal/sqlite"
)

// The back office's targets, at a million orders and 8 admins at once.
const (
	adminConns     = 8
	maxAdminP99    = 50 * time.Millisecond
	minExportRate  = 100_000 // CSV rows a second
	maxExportRSS   = 64 << 20
	adminPassword  = "bench-admin-password"
	seedBatch      = 500
	seedWorkers    = 8
	customersEvery = 3 // about three orders per customer
)

// boResult is what the back office measured on one store.
type boResult struct {
	store                string
	orders               int
	seeded               time.Duration
	list, search, detail result
	csvRows              int
	csvBytes             int64
	csvTime              time.Duration
	peakRSS              int64
	problems             []string
}

// boOrder is the i-th of n seeded orders: a year of trade, newest last,
// mostly paid and fulfilled, some refunded, some abandoned.
func boOrder(i, n int, end time.Time, book customerBook) orders.Order {
	created := end.Add(-time.Duration(n-i) * (365 * 24 * time.Hour / time.Duration(n))).UTC().Truncate(time.Microsecond)
	o := orders.Order{
		ID: orderID(i), SessionID: sessionID(i), Currency: "usd", CreatedAt: created, UpdatedAt: created,
		Items: []orders.Item{{ProductID: product.ID, Name: product.Name, UnitAmount: product.UnitAmount, Quantity: int64(1 + i%3)}},
	}
	if i%5 == 4 {
		o.Currency = "eur"
	}
	if i%4 == 0 {
		o.Items = append(o.Items, orders.Item{ProductID: stocked.ID, Name: stocked.Name, UnitAmount: stocked.UnitAmount, Quantity: 1})
	}
	for _, it := range o.Items {
		o.AmountTotal += it.UnitAmount * it.Quantity
	}
	switch r := i % 20; {
	case r < 15: // paid and fulfilled; one in ten of them partly refunded
		paid := created.Add(2 * time.Minute)
		o.Status, o.Payment, o.PaidAt, o.FulfilledAt = orders.StatusPaid, orders.StatusPaid, &paid, &paid
		o.Email = book.email(i / customersEvery)
		o.PaymentIntentID, o.AmountPaid = fmt.Sprintf("pi_bench%07d", i), o.AmountTotal
		if r == 3 {
			o.AmountRefunded, o.Status = o.AmountTotal/2, orders.StatusPartiallyRefunded
		}
	case r < 19:
		o.Status, o.Payment = orders.StatusExpired, orders.StatusExpired
	default:
		o.Status, o.Payment = orders.StatusPending, orders.StatusPending
	}
	return o
}

// customerBook makes the seeded customers' addresses from names and
// domains: a few very common domains, as in life, and many small ones.
type customerBook struct{ first, last, domains []string }

func newCustomerBook() customerBook {
	return customerBook{
		first: strings.Fields(`ada alan amara ben carla chen dana diego elena emma farah felix grace hana hugo ines ivan jane
		jonas kai lara leo lina malik maria mateo nadia nils olga omar paula pedro quinn rosa sam sara tariq tess uma victor
		wen xavier yara yusuf zoe anna bruno clara`),
		last: strings.Fields(`abbott baker castro dubois evans fischer garcia haddad ito jensen kowalski lopez moreau nakamura
		okafor petrov quinteros rossi schmidt tanaka ueda vargas weber xu yilmaz zhang novak brown silva kim muller smith
		martin bernard rojas singh khan ali nguyen costa dias ferreira gomes lima moreira nunes pereira ramos santos sousa`),
		domains: []string{"gmail.com", "gmail.com", "gmail.com", "outlook.com", "yahoo.com", "hotmail.com", "icloud.com", "proton.me"},
	}
}

// email is the address of customer c: a first and a last name, a number,
// and a domain (three in five of them a big provider's).
func (b customerBook) email(c int) string {
	first, last := b.first[c%len(b.first)], b.last[(c/len(b.first))%len(b.last)]
	domain := fmt.Sprintf("mail%03d.example", c%997)
	if c%5 < 3 {
		domain = b.domains[c%len(b.domains)]
	}
	return fmt.Sprintf("%s.%s%d@%s", first, last, c/(len(b.first)*len(b.last)), domain)
}

// seedBackoffice stores n orders through the store's own writes, a batch
// per transaction, from a few workers at once.
func seedBackoffice(ctx context.Context, s orders.Store, n int, end time.Time, book customerBook) error {
	errs := make([]error, seedWorkers)
	var wg sync.WaitGroup
	for w := range seedWorkers {
		wg.Go(func() {
			for start := w * seedBatch; start < n && errs[w] == nil; start += seedWorkers * seedBatch {
				errs[w] = s.Write(ctx, func(ctx context.Context, tx orders.Tx) error {
					for i := start; i < min(n, start+seedBatch); i++ {
						if err := tx.InsertOrder(ctx, boOrder(i, n, end, book)); err != nil {
							return err
						}
					}
					return nil
				})
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// adminGet is a raw GET with the admin's credentials.
func adminGet(host, path string) []byte {
	auth := base64.StdEncoding.EncodeToString([]byte("admin:" + adminPassword))
	return []byte("GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: shop-bench\r\nAccept: text/html\r\nAuthorization: Basic " + auth + "\r\n\r\n")
}

// backoffice seeds each store with b.opts.backoffice orders, runs the shop
// on it and measures the admin's pages and the CSV export.
func (b *bench) backoffice(ctx context.Context, shopBin string) ([]boResult, error) {
	n := b.opts.backoffice
	var out []boResult
	stores := []string{"sqlite"}
	if b.opts.postgres != "" {
		stores = append(stores, "postgres")
	} else {
		b.logf("back office: no -postgres URL, PostgreSQL skipped")
	}
	for _, kind := range stores {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		var dbURL string
		var drop func()
		switch kind {
		case "sqlite":
			dbURL = "sqlite:" + filepath.Join(b.dir, "data", "backoffice.db")
		case "postgres":
			var err error
			if dbURL, drop, err = benchSchema(ctx, b.opts.postgres); err != nil {
				return out, fmt.Errorf("postgres: %w", err)
			}
		}
		r, err := b.backofficeOn(ctx, shopBin, kind, dbURL, n)
		if drop != nil {
			drop()
		}
		out = append(out, r)
		if err != nil {
			return out, fmt.Errorf("back office on %s: %w", kind, err)
		}
	}
	return out, nil
}

func (b *bench) backofficeOn(ctx context.Context, shopBin, kind, dbURL string, n int) (boResult, error) {
	r := boResult{store: kind, orders: n}
	end := time.Now()
	b.logf("back office: seeding %d orders into %s", n, kind)
	start := time.Now()
	var s orders.Store
	var err error
	if kind == "sqlite" {
		s, err = sqlite.Open(ctx, dbURL[len("sqlite:"):])
	} else {
		s, err = postgres.Open(ctx, dbURL)
	}
	if err != nil {
		return r, err
	}
	book := newCustomerBook()
	if err := errors.Join(seedBackoffice(ctx, s, n, end, book), s.Close()); err != nil {
		return r, fmt.Errorf("seed: %w", err)
	}
	r.seeded = time.Since(start)
	b.logf("back office: seeded in %v", r.seeded.Round(time.Millisecond))

	port, err := freePort()
	if err != nil {
		return r, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	env := []string{
		"STRIPE_SECRET_KEY=" + secretKey, "STRIPE_PUBLISHABLE_KEY=" + publishableKey, "STRIPE_WEBHOOK_SECRET=" + webhookSecret,
		"PORT=" + strconv.Itoa(port), "BASE_URL=http://" + addr, "DATABASE_URL=" + dbURL, "ADMIN_PASSWORD=" + adminPassword,
		"STRIPE_API_BASE=http://" + b.opts.stripeMock, "RATE_LIMIT_PER_MINUTE=0", "RATE_LIMIT_GLOBAL_PER_SECOND=0",
	}
	shop, err := startProc(ctx, "shop ("+kind+", back office)", shopBin, []string{"-env-file", filepath.Join(b.dir, "absent.env")}, env,
		filepath.Join(b.dir, "shop-backoffice-"+kind+".log"), "http://"+addr+"/healthz")
	if err != nil {
		return r, err
	}
	defer shop.stop()

	// Deep pages start from real cursors: an order's place in the list.
	cursors := make([]string, 256)
	for i := range cursors {
		cursors[i] = orders.CursorOf(boOrder(mrand.IntN(n), n, end, book)).String()
	}
	var mu sync.Mutex
	rng := mrand.New(mrand.NewPCG(1, 2))
	pick := func(k int) int {
		mu.Lock()
		defer mu.Unlock()
		return rng.IntN(k)
	}
	ok200 := func(_ int, res *http.Response, body []byte) error {
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d: %.200s", res.StatusCode, body)
		}
		return nil
	}
	phases := []struct {
		into *result
		p    phase
	}{
		{&r.list, phase{name: kind + " GET /admin/orders (first, filtered and deep pages)", next: func() ([]byte, int) {
			switch i := pick(3); i {
			case 0:
				return adminGet(addr, "/admin/orders"), i
			case 1:
				return adminGet(addr, "/admin/orders?status=paid&from="+end.AddDate(0, -3, 0).Format(time.DateOnly)), i
			default:
				return adminGet(addr, "/admin/orders?after="+cursors[pick(len(cursors))]), i
			}
		}}},
		{&r.search, phase{name: kind + " GET /admin/orders?q= (part of an email)", next: func() ([]byte, int) {
			// A customer's address without its domain (about three
			// orders); one search in eight is a domain, which matches a
			// third of all orders.
			q := book.email(pick(n * 3 / 4 / customersEvery))
			q = q[:strings.IndexByte(q, '@')]
			if pick(8) == 0 {
				q = "@gmail.com"
			}
			return adminGet(addr, "/admin/orders?q="+url.QueryEscape(q)), 0
		}}},
		{&r.detail, phase{name: kind + " GET /admin/orders/{id}", next: func() ([]byte, int) {
			return adminGet(addr, "/admin/orders/"+orderID(pick(n))), 0
		}}},
	}
	for _, ph := range phases {
		ph.p.addr, ph.p.conns, ph.p.pid, ph.p.check = addr, adminConns, shop.cmd.Process.Pid, ok200
		*ph.into = b.measure(ph.p, b.opts.warmup, b.opts.d)
		b.logf("%-60s %6.0f req/s, p50 %s, p99 %s", ph.p.name, ph.into.rate(), ms(ph.into.quantile(0.5)), ms(ph.into.quantile(0.99)))
		if ph.into.failures > 0 {
			r.problems = append(r.problems, fmt.Sprintf("%s: %d failures; first: %v", ph.p.name, ph.into.failures, ph.into.firstErr))
		}
	}

	// The export of every order, read as fast as the shop writes it.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/admin/orders.csv", nil)
	req.SetBasicAuth("admin", adminPassword)
	start = time.Now()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return r, fmt.Errorf("export: %w", err)
	}
	lines, size, err := countLines(res.Body)
	res.Body.Close()
	r.csvTime = time.Since(start)
	if err != nil || res.StatusCode != http.StatusOK {
		return r, fmt.Errorf("export: %s, %v", res.Status, err)
	}
	r.csvRows, r.csvBytes = lines-1, size // less the header
	if r.csvRows != n {
		r.problems = append(r.problems, fmt.Sprintf("%s: the export has %d rows, want %d", kind, r.csvRows, n))
	}
	b.logf("back office: %s export: %d rows, %.1f MiB in %v (%.0f rows/s)", kind, r.csvRows, float64(size)/(1<<20),
		r.csvTime.Round(time.Millisecond), float64(r.csvRows)/r.csvTime.Seconds())
	if r.peakRSS, _, err = shop.memory(); err != nil {
		return r, fmt.Errorf("read the shop's memory: %w", err)
	}
	return r, shop.stop()
}

// countLines counts the newlines and bytes of a stream.
func countLines(rd io.Reader) (int, int64, error) {
	buf := make([]byte, 256<<10)
	lines, size := 0, int64(0)
	for {
		k, err := rd.Read(buf)
		lines += bytes.Count(buf[:k], []byte{'\n'})
		size += int64(k)
		if errors.Is(err, io.EOF) {
			return lines, size, nil
		}
		if err != nil {
			return lines, size, err
		}
	}
}

// benchSchema makes a fresh schema on the PostgreSQL at base for one run
// and returns the URL that puts the shop in it, and a function dropping it.
func benchSchema(ctx context.Context, base string) (string, func(), error) {
	var raw [6]byte
	rand.Read(raw[:])
	name := "shop_bench_" + hex.EncodeToString(raw[:])
	exec := func(ctx context.Context, sql string) error {
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	if err := exec(ctx, "CREATE SCHEMA "+name); err != nil {
		return "", nil, err
	}
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := exec(ctx, "DROP SCHEMA "+name+" CASCADE"); err != nil {
			fmt.Fprintf(os.Stderr, "bench: drop schema %s: %v\n", name, err)
		}
	}
	u, err := url.Parse(base)
	if err != nil {
		drop()
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String(), drop, nil
}

// printBackoffice prints the back office's table.
func printBackoffice(w io.Writer, results []boResult) {
	if len(results) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "back office\tstore\torders\treq/s\tp50\tp99\ttarget\t\t\n")
	for _, r := range results {
		for _, m := range []struct {
			label string
			res   result
		}{{"GET /admin/orders (pages)", r.list}, {"GET /admin/orders?q= (email)", r.search}, {"GET /admin/orders/{id}", r.detail}} {
			p99 := m.res.quantile(0.99)
			fmt.Fprintf(tw, "%s, %d admins\t%s\t%d\t%.0f\t%s\t%s\tp99 < %v\t%s\t\n", m.label, adminConns, r.store, r.orders, m.res.rate(),
				ms(m.res.quantile(0.5)), ms(p99), maxAdminP99, verdict(m.res.requests > 0 && m.res.failures == 0 && p99 < maxAdminP99))
		}
		rate := float64(r.csvRows) / r.csvTime.Seconds()
		fmt.Fprintf(tw, "GET /admin/orders.csv, every order\t%s\t%d\t%.0f rows/s\t%.1f MiB\t%v\t≥ %d rows/s\t%s\t\n", r.store, r.csvRows, rate,
			float64(r.csvBytes)/(1<<20), r.csvTime.Round(time.Millisecond), minExportRate, verdict(r.csvRows == r.orders && rate >= minExportRate))
		fmt.Fprintf(tw, "peak RSS of the shop (VmHWM), export included\t%s\t\t%.1f MiB\t\t\t≤ %d MiB\t%s\t\n", r.store,
			float64(r.peakRSS)/(1<<20), maxExportRSS>>20, verdict(r.peakRSS > 0 && r.peakRSS <= maxExportRSS))
		fmt.Fprintf(tw, "seeding (the store's own writes, %d a transaction)\t%s\t%d\t%v\t\t\t\t\t\n", seedBatch, r.store, r.orders, r.seeded.Round(time.Second))
	}
	tw.Flush()
	for _, r := range results {
		for _, p := range r.problems {
			fmt.Fprintf(w, "  PROBLEM: %s\n", p)
		}
	}
}
