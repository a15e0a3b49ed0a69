package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// phase loads one endpoint of one server over keep-alive connections for a
// fixed time. Requests are written as raw HTTP/1.1 bytes and answers read
// with http.ReadResponse: a client much cheaper than net/http's, so that
// more of the machine's two cores go to the servers being compared.
type phase struct {
	name  string
	addr  string // host:port
	conns int
	// next returns the next request; key identifies it to check.
	next func() (req []byte, key int)
	// check judges an answer; nil accepts any 2xx or 3xx.
	check func(key int, res *http.Response, body []byte) error
	// pid is the server's process, whose CPU time is measured; 0 if unknown.
	pid int
}

// result is what a phase measured, warm-up excluded.
type result struct {
	requests int
	elapsed  time.Duration
	status   map[int]int
	failures int   // transport errors and failed checks, warm-up included
	firstErr error // the first of them
	lat      []time.Duration
	// CPU time used meanwhile by the server (-1: unknown) and by this
	// load generator.
	serverCPU, clientCPU time.Duration
}

// cpuPerRequest is the server's CPU time per request, or 0 if unknown.
func (r result) cpuPerRequest() time.Duration {
	if r.serverCPU < 0 || r.requests == 0 {
		return 0
	}
	return r.serverCPU / time.Duration(r.requests)
}

func (r result) rate() float64 { return float64(r.requests) / r.elapsed.Seconds() }

// quantile returns the q-quantile of the latencies (sorted by run).
func (r result) quantile(q float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[min(len(r.lat)-1, int(q*float64(len(r.lat))))]
}

// serverErrors counts 5xx answers.
func (r result) serverErrors() int {
	n := 0
	for code, c := range r.status {
		if code >= 500 {
			n += c
		}
	}
	return n
}

// add merges what another run of the same phase measured.
func (r result) add(o result) result {
	r.elapsed += o.elapsed
	if r.serverCPU >= 0 && o.serverCPU >= 0 {
		r.serverCPU += o.serverCPU
	} else {
		r.serverCPU = -1
	}
	r.clientCPU += o.clientCPU
	r.absorb(o)
	slices.Sort(r.lat)
	return r
}

// absorb adds o's requests, failures, answers and latencies to r; times and
// CPU are the caller's to combine (runs add up, concurrent workers do not).
func (r *result) absorb(o result) {
	if r.status == nil {
		r.status = map[int]int{}
	}
	r.requests += o.requests
	r.failures += o.failures
	if r.firstErr == nil {
		r.firstErr = o.firstErr
	}
	for code, n := range o.status {
		r.status[code] += n
	}
	r.lat = append(r.lat, o.lat...)
}

// run drives the phase for warmup and then d, and returns what it measured
// during d.
func (p phase) run(warmup, d time.Duration) result {
	from := time.Now().Add(warmup)
	end := from.Add(d)
	parts := make([]result, p.conns)
	var wg sync.WaitGroup
	for i := range parts {
		wg.Go(func() { parts[i] = p.worker(from, end) })
	}
	var serverCPU, clientCPU time.Duration
	wg.Go(func() {
		time.Sleep(time.Until(from))
		s0, c0 := processCPU(p.pid), selfCPU()
		time.Sleep(time.Until(end))
		s1, c1 := processCPU(p.pid), selfCPU()
		serverCPU, clientCPU = s1-s0, c1-c0
		if s0 < 0 || s1 < 0 {
			serverCPU = -1
		}
	})
	wg.Wait()
	total := result{elapsed: d, status: map[int]int{}, serverCPU: serverCPU, clientCPU: clientCPU}
	for _, r := range parts {
		total.absorb(r)
	}
	slices.Sort(total.lat)
	return total
}

// worker sends requests one after another on one connection (a new one
// after an error or a Connection: close) until end.
func (p phase) worker(from, end time.Time) result {
	r := result{status: map[int]int{}}
	fail := func(err error) {
		r.failures++
		if r.firstErr == nil {
			r.firstErr = err
		}
	}
	var (
		c  net.Conn
		br *bufio.Reader
	)
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for time.Now().Before(end) {
		if c == nil {
			var err error
			if c, err = net.DialTimeout("tcp", p.addr, 5*time.Second); err != nil {
				fail(err)
				c = nil
				time.Sleep(10 * time.Millisecond)
				continue
			}
			br = bufio.NewReaderSize(c, 16<<10)
		}
		req, key := p.next()
		start := time.Now()
		res, body, err := roundTrip(c, br, req, start.Add(30*time.Second))
		lat := time.Since(start)
		if err != nil {
			fail(fmt.Errorf("%s: %w", p.name, err))
			c.Close()
			c = nil
			continue
		}
		if res.Close {
			c.Close()
			c = nil
		}
		switch {
		case p.check != nil:
			err = p.check(key, res, body)
		case res.StatusCode >= 400:
			err = fmt.Errorf("status %d", res.StatusCode)
		}
		if err != nil {
			fail(fmt.Errorf("%s: %w", p.name, err))
		}
		if !start.Before(from) && start.Before(end) {
			r.requests++
			r.status[res.StatusCode]++
			r.lat = append(r.lat, lat)
		}
	}
	return r
}

func roundTrip(c net.Conn, br *bufio.Reader, req []byte, deadline time.Time) (*http.Response, []byte, error) {
	if err := c.SetDeadline(deadline); err != nil {
		return nil, nil, err
	}
	if _, err := c.Write(req); err != nil {
		return nil, nil, err
	}
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	return res, body, err
}

// get is a raw GET request.
func get(host, path, accept string) []byte {
	return []byte("GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: shop-bench\r\nAccept: " + accept + "\r\n\r\n")
}

// post is a raw POST request; headers are "Name: value" lines.
func post(host, path, contentType string, body []byte, headers ...string) []byte {
	b := make([]byte, 0, 512+len(body))
	b = append(b, "POST "+path+" HTTP/1.1\r\nHost: "+host+"\r\nUser-Agent: shop-bench\r\nContent-Type: "+contentType+
		"\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n"...)
	for _, h := range headers {
		b = append(b, h+"\r\n"...)
	}
	b = append(b, "\r\n"...)
	return append(b, body...)
}
