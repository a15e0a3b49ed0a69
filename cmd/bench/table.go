package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// table is the run's one table.
type table struct {
	rows         []row
	fsyncs       float64
	ready        time.Duration
	peakRSS, rss int64
	check        check
	notes        []string
	outbox       *latency
	backoffice   []boResult
}

type row struct {
	label, vs string
	conns     int
	shop, ref result
	target    float64 // least shop/ref ratio
}

// Targets other than the ratios.
const (
	maxP99   = 10 * time.Millisecond // for the pages, at 32 connections
	maxRSS   = 48 << 20
	maxReady = 200 * time.Millisecond
	// maxOutboxP99 bounds the time from a webhook's 2xx to the receiver's
	// 2xx for that order's notification.
	maxOutboxP99 = time.Second
)

func (t *table) add(label, vs string, conns int, shop, ref result, target float64) {
	t.rows = append(t.rows, row{label, vs, conns, shop, ref, target})
}

func verdict(ok bool) string {
	if ok {
		return "ok"
	}
	return "MISSED"
}

func us(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func (t *table) print(w io.Writer) {
	defer printBackoffice(w, t.backoffice)
	if len(t.rows) == 0 && t.outbox == nil {
		return // a back office run alone
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "endpoint\tserver\tconns\treq/s\tp50\tp99\tCPU/req\tratio\ttarget\t\t")
	var fails, serverErrs int
	for _, r := range t.rows {
		ratio := r.shop.rate() / r.ref.rate()
		target := fmt.Sprintf("≥ %.2f", r.target)
		ok := ratio >= r.target
		if strings.HasPrefix(r.label, "GET ") {
			target += fmt.Sprintf(", p99 < %v", maxP99)
			ok = ok && r.shop.quantile(0.99) < maxP99
		}
		fmt.Fprintf(tw, "%s\tshop\t%d\t%.0f\t%s\t%s\t%s\t%.2f\t%s\t%s\t\n", r.label, r.conns, r.shop.rate(),
			ms(r.shop.quantile(0.5)), ms(r.shop.quantile(0.99)), us(r.shop.cpuPerRequest()), ratio, target, verdict(ok))
		fmt.Fprintf(tw, "\t%s\t%d\t%.0f\t%s\t%s\t%s\t\t\t\t\n", r.vs, r.conns, r.ref.rate(),
			ms(r.ref.quantile(0.5)), ms(r.ref.quantile(0.99)), us(r.ref.cpuPerRequest()))
		fails += r.shop.failures + r.ref.failures
		serverErrs += r.shop.serverErrors()
	}
	fmt.Fprintf(tw, "peak RSS of the shop (VmHWM; VmRSS at the end)\t\t\t%.1f MiB\t(%.1f MiB)\t\t\t\t≤ %d MiB\t%s\t\n",
		float64(t.peakRSS)/(1<<20), float64(t.rss)/(1<<20), maxRSS>>20, verdict(t.peakRSS > 0 && t.peakRSS <= maxRSS))
	fmt.Fprintf(tw, "start to ready (median of 3)\t\t\t%s\t\t\t\t\t< %v\t%s\t\n", ms(t.ready), maxReady, verdict(t.ready < maxReady))
	webhooks := 0.0
	for _, r := range t.rows {
		if strings.Contains(r.label, "webhook") {
			webhooks = r.shop.rate()
		}
	}
	fmt.Fprintf(tw, "disk fsyncs/s (4 KiB + fdatasync)\t\t\t%.0f\t\t\t\t\t\t\t\n", t.fsyncs)
	fmt.Fprintf(tw, "shop webhook writes/s (one a paid event: event, payment, fulfilment, outbox row)\t\t\t%.0f\t\t\t\t%.2f × fsyncs/s\t\t\t\n", webhooks, webhooks/t.fsyncs)
	if o := t.outbox; o != nil {
		fmt.Fprintf(tw, "outbox: webhook 2xx → receiver 2xx at %.0f paid orders/s (%d)\t\t\t\t%s\t%s\tmax %s\t\t< %v p99\t%s\t\n",
			o.rate, len(o.lat), ms(o.quantile(0.5)), ms(o.quantile(0.99)), ms(o.quantile(1)), maxOutboxP99,
			verdict(len(o.lat) > 0 && o.missing == 0 && o.quantile(0.99) < maxOutboxP99))
	}
	tw.Flush()
	c := t.check
	fmt.Fprintf(w, "\ncorrectness: %d webhooks answered 2xx, %d found stored (re-applying each is a duplicate), %d orders paid, %d fulfilled; "+
		"%d events in the database; %d order.paid notifications delivered (%d redelivered, %d bad signatures); "+
		"%d checkouts answered 303, %d pending orders with their session; %d stock checkouts answered 303, %d held (%d sold, %d left); "+
		"%d 5xx answers from the shop; %d failed requests in all\n",
		c.acked, c.stored, c.paid, c.fulfilled, c.events, c.delivered, c.redelivered, c.badSignatures, c.checkouts, c.sessions,
		c.stockCheckouts, c.stockHeld, c.stockSold, c.stockLeft, serverErrs, fails)
	for _, p := range c.problems {
		fmt.Fprintf(w, "  PROBLEM: %s\n", p)
	}
	for _, n := range t.notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
}
