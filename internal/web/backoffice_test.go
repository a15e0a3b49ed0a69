package web

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shopcheckout/shop/internal/orders"
	"github.com/shopcheckout/shop/internal/storetest"
)

// adminBasic and adminJSON sign in as the test admin, as header pairs for
// testServer.do; adminJSON also asks for JSON.
var (
	adminBasic = []string{"Authorization", "Basic " + basic("admin", "let-me-in")}
	adminJSON  = []string{"Authorization", "Basic " + basic("admin", "let-me-in"), "Accept", "application/json"}
)

// berlin is the shop's time zone in these tests: an hour ahead of UTC in
// winter, so a local day and a UTC day differ.
func berlin(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skipf("no time zone database: %v", err)
	}
	return loc
}

// paidAt is a paid order of amount in currency, paid at paid (and created
// a minute before), refunded of refunded.
func paidAt(currency string, amount, refunded int64, paid time.Time) orders.Order {
	created := paid.Add(-time.Minute)
	st := orders.StatusPaid
	if refunded > 0 {
		st = orders.StatusPartiallyRefunded
	}
	return orders.Order{
		ID: orders.NewID(), Status: st, Payment: orders.StatusPaid, Currency: currency, AmountTotal: amount, AmountPaid: amount,
		AmountRefunded: refunded, Items: []orders.Item{{ProductID: "tshirt", Name: "T-shirt", UnitAmount: amount, Quantity: 1}},
		CreatedAt: created, UpdatedAt: paid, PaidAt: &paid, FulfilledAt: &paid,
	}
}

func TestAdminOverview(t *testing.T) {
	loc := berlin(t)
	// Tuesday 10 March 2026, 00:45 in Berlin, still the 9th in UTC: today
	// began at 23:00 UTC on the 9th, the 30 days at 23:00 UTC on 8 February.
	now := time.Date(2026, 3, 10, 0, 45, 0, 0, loc)
	ts := newClockedTestServer(t, nil, func() time.Time { return now }, func(c *configT) { c.Location = loc })
	utc := func(month time.Month, day, hour, minute int) time.Time {
		return time.Date(2026, month, day, hour, minute, 0, 0, time.UTC)
	}
	a := paidAt("usd", 2000, 500, utc(3, 9, 23, 40))
	storetest.Seed(t, ts.store,
		a,
		paidAt("usd", 1000, 0, utc(3, 9, 23, 5)), // 00:05 in Berlin: today, though the 9th in UTC
		paidAt("eur", 1250, 0, utc(3, 9, 22, 30)), // 23:30 on the 9th in Berlin: not today
		paidAt("jpy", 500, 0, utc(3, 1, 12, 0)),   // within the 30 days
		paidAt("usd", 3000, 0, utc(2, 8, 23, 0)),  // midnight of 9 February in Berlin: the 30 days' first instant
		paidAt("usd", 7000, 0, utc(2, 8, 22, 59)), // a minute before: outside
		orders.Order{ID: orders.NewID(), Status: orders.StatusPending, Currency: "usd", AmountTotal: 9999, // never paid
			CreatedAt: utc(3, 9, 23, 30), UpdatedAt: utc(3, 9, 23, 30)},
	)
	err := ts.store.Write(context.Background(), func(ctx context.Context, tx orders.Tx) error {
		later := now.Add(time.Hour)
		ns := []orders.Notification{
			{ID: "ntf_p1", OrderID: a.ID, Type: orders.NotifyOrderPaid, Channel: orders.ChannelWebhook, Status: orders.NotificationPending, NextAttempt: &later, CreatedAt: now, Deadline: later, Payload: []byte("{}")},
			{ID: "ntf_p2", OrderID: a.ID, Type: orders.NotifyOrderPaid, Channel: orders.ChannelEmailOwner, Status: orders.NotificationPending, NextAttempt: &later, CreatedAt: now, Deadline: later, Payload: []byte("{}")},
			{ID: "ntf_d1", OrderID: a.ID, Type: orders.NotifyOrderPaid, Channel: orders.ChannelEmailCustomer, Status: orders.NotificationDead, Attempts: 80, LastError: "mailbox full", CreatedAt: now, Deadline: now, Payload: []byte("{}")},
		}
		if err := tx.InsertNotifications(ctx, ns); err != nil {
			return err
		}
		for _, id := range []string{"alm_one", "alm_two", "alm_resolved"} {
			if err := tx.InsertAlarm(ctx, orders.Alarm{ID: id, Kind: orders.AlarmUnreadableEvent, Ref: "evt_" + id, Detail: "look", CreatedAt: now}); err != nil {
				return err
			}
		}
		return tx.ResolveAlarm(ctx, "alm_resolved", now)
	})
	if err != nil {
		t.Fatal(err)
	}

	res := ts.do(t, "GET", "/admin", nil, adminJSON...)
	if res.StatusCode != http.StatusOK || res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("JSON: got %d (Cache-Control %q): %s", res.StatusCode, res.Header.Get("Cache-Control"), readBody(t, res))
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(readBody(t, res)), &raw); err != nil {
		t.Fatal(err)
	}
	want := `{"timeZone":"Europe/Berlin",` +
		`"today":{"since":"2026-03-10T00:00:00+01:00","sales":[{"currency":"usd","orders":2,"paid":3000,"refunded":500,"net":2500}]},` +
		`"last30Days":{"since":"2026-02-09T00:00:00+01:00","sales":[` +
		`{"currency":"eur","orders":1,"paid":1250,"refunded":0,"net":1250},` +
		`{"currency":"jpy","orders":1,"paid":500,"refunded":0,"net":500},` +
		`{"currency":"usd","orders":3,"paid":6000,"refunded":500,"net":5500}]},` +
		// Two stored alarms open, and the dead notification's.
		`"openAlarms":3,"outbox":{"pending":2,"dead":1}}`
	got, _ := json.Marshal(raw) // keys sorted, as in want's own encoding below
	var wantRaw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(want), &wantRaw); err != nil {
		t.Fatal(err)
	}
	wantSorted, _ := json.Marshal(wantRaw)
	if string(got) != string(wantSorted) {
		t.Errorf("overview JSON:\ngot  %s\nwant %s", got, wantSorted)
	}

	res = ts.do(t, "GET", "/admin", nil, adminBasic...)
	page := readBody(t, res)
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("HTML: got %d %s", res.StatusCode, page)
	}
	today, recent := section(t, page, "today"), section(t, page, "last-30-days")
	for _, want := range []string{"Tue 10 Mar 2026, 00:00", "<td>USD</td><td>2</td><td>$30.00</td><td>$5.00</td><td>$25.00</td>"} {
		if !strings.Contains(today, want) {
			t.Errorf("today lacks %q:\n%s", want, today)
		}
	}
	if strings.Contains(today, "EUR") || strings.Contains(today, "JPY") {
		t.Errorf("today shows a currency sold only before today:\n%s", today)
	}
	for _, want := range []string{
		"30 calendar days, today included", "Mon 9 Feb 2026, 00:00",
		"<td>EUR</td><td>1</td><td>€12.50</td><td>€0.00</td><td>€12.50</td>",
		"<td>JPY</td><td>1</td><td>¥500</td><td>¥0</td><td>¥500</td>",
		"<td>USD</td><td>3</td><td>$60.00</td><td>$5.00</td><td>$55.00</td>",
	} {
		if !strings.Contains(recent, want) {
			t.Errorf("last 30 days lack %q:\n%s", want, recent)
		}
	}
	for _, want := range []string{
		"Europe/Berlin", "Open alarms: 3", "2 pending", "1 dead",
		`href="/admin/alarms"`, `href="/admin/orders"`, `href="/admin/orders.csv"`, `href="/admin/products"`, `href="/admin/metrics"`,
		`<a href="/admin" aria-current="page">Overview</a>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("overview lacks %q", want)
		}
	}
}

// section is the overview's section with id, as HTML.
func section(t testing.TB, page, id string) string {
	t.Helper()
	start := strings.Index(page, `<section class="overview-sales" id="`+id+`">`)
	if start < 0 {
		t.Fatalf("no section %s in:\n%s", id, page)
	}
	end := strings.Index(page[start:], "</section>")
	return page[start : start+end]
}

func TestAdminOverviewQuiet(t *testing.T) {
	ts := newTestServer(t)
	body := readBody(t, ts.do(t, "GET", "/admin", nil, adminJSON...))
	want := `{"timeZone":"UTC","today":{"since":"`
	if !strings.HasPrefix(body, want) || !strings.Contains(body, `"sales":[]`) || !strings.Contains(body, `"openAlarms":0,"outbox":{"pending":0,"dead":0}}`) {
		t.Errorf("empty shop's overview: got %s", body)
	}
	page := readBody(t, ts.do(t, "GET", "/admin/", nil, adminBasic...))
	if !strings.Contains(page, "No paid orders.") || !strings.Contains(page, "Open alarms: none") {
		t.Errorf("empty shop's overview page:\n%s", page)
	}
}

// listed is one order the list tests seed: what they filter on.
type listed struct {
	id, email, session, intent string
	status                     orders.Status
	created                    time.Time
}

// seedListed stores orders with the given fields, in one transaction.
func seedListed(t testing.TB, ts *testServer, list ...listed) {
	t.Helper()
	var seed []orders.Order
	for _, l := range list {
		o := orders.Order{ID: l.id, Status: l.status, Currency: "usd", AmountTotal: 2000, Email: l.email, SessionID: l.session, PaymentIntentID: l.intent,
			Items:     []orders.Item{{ProductID: "tshirt", Name: "T-shirt", UnitAmount: 2000, Quantity: 1}},
			CreatedAt: l.created, UpdatedAt: l.created}
		if o.Status == "" {
			o.Status = orders.StatusPending
		}
		seed = append(seed, o)
	}
	storetest.Seed(t, ts.store, seed...)
}

// listIDs asks for the admin's list as JSON and returns its order ids and
// next cursor.
func listIDs(t testing.TB, ts *testServer, query string) (ids []string, next *string) {
	t.Helper()
	res := ts.do(t, "GET", "/admin/orders"+query, nil, adminJSON...)
	body := readBody(t, res)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /admin/orders%s: got %d %s", query, res.StatusCode, body)
	}
	var got adminOrdersBody
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	for _, o := range got.Orders {
		ids = append(ids, o.ID)
	}
	return ids, got.Next
}

func TestAdminOrdersFilters(t *testing.T) {
	loc := berlin(t)
	ts := newTestServer(t, func(c *configT) { c.Location = loc })
	local := func(day, hour, minute int) time.Time { return time.Date(2026, 3, day, hour, minute, 0, 0, loc) }
	seedListed(t, ts,
		listed{id: "ord_a", email: "Alice@Example.com", session: "cs_test_a", intent: "pi_a", status: orders.StatusPaid, created: local(1, 0, 0)},
		listed{id: "ord_b", email: "bob@example.org", session: "cs_test_b", status: orders.StatusExpired, created: local(1, 23, 59)},
		listed{id: "ord_c", email: "carol@example.com", session: "cs_test_c", intent: "pi_c", status: orders.StatusPaid, created: local(2, 0, 0)},
		listed{id: "ord_d", email: "dave@mail.test", session: "cs_test_d", status: orders.StatusPending, created: local(3, 12, 0)},
		// 23:30 UTC on the 3rd is already the 4th in Berlin.
		listed{id: "ord_e", email: "erin@example.com", session: "cs_test_e", intent: "pi_e", status: orders.StatusPaid, created: time.Date(2026, 3, 3, 23, 30, 0, 0, time.UTC)},
	)
	tests := []struct {
		query string
		want  []string
	}{
		{"", []string{"ord_e", "ord_d", "ord_c", "ord_b", "ord_a"}},
		{"?status=paid", []string{"ord_e", "ord_c", "ord_a"}},
		{"?from=2026-03-02", []string{"ord_e", "ord_d", "ord_c"}},
		{"?to=2026-03-01", []string{"ord_b", "ord_a"}}, // the whole day, to 23:59
		{"?from=2026-03-01&to=2026-03-01", []string{"ord_b", "ord_a"}},
		{"?from=2026-03-04", []string{"ord_e"}}, // Berlin's day, not UTC's
		{"?to=2026-03-03", []string{"ord_d", "ord_c", "ord_b", "ord_a"}},
		{"?from=2026-03-02&to=2026-03-03&status=pending", []string{"ord_d"}},
		{"?q=ord_c", []string{"ord_c"}},
		{"?q=cs_test_b", []string{"ord_b"}},
		{"?q=pi_e", []string{"ord_e"}},
		{"?q=pi_", nil}, // ids match exactly
		{"?q=alice@", []string{"ord_a"}},
		{"?q=EXAMPLE.COM", []string{"ord_e", "ord_c", "ord_a"}}, // part of an email, any case
		{"?q=+example.org+", []string{"ord_b"}},                 // trimmed
		{"?q=example.com&status=paid&from=2026-03-02", []string{"ord_e", "ord_c"}},
		{"?q=nobody", nil},
		{"?status=", []string{"ord_e", "ord_d", "ord_c", "ord_b", "ord_a"}},
	}
	for _, tt := range tests {
		got, next := listIDs(t, ts, tt.query)
		if !slices.Equal(got, tt.want) || next != nil {
			t.Errorf("GET /admin/orders%s: got %v next %v, want %v and no next", tt.query, got, next, tt.want)
		}
	}

	// The HTML page shows the filter back in its form, and says when nothing
	// matches.
	page := readBody(t, ts.do(t, "GET", "/admin/orders?status=paid&from=2026-03-02&to=2026-03-03&q=carol", nil, adminBasic...))
	for _, want := range []string{
		`<option value="paid" selected>`, `name="from" value="2026-03-02"`, `name="to" value="2026-03-03"`, `name="q" value="carol"`,
		`href="/admin/orders/ord_c"`, "2026-03-02 00:00:00", // times in Berlin
		`href="/admin/orders.csv?from=2026-03-02&amp;q=carol&amp;status=paid&amp;to=2026-03-03"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("filtered page lacks %q", want)
		}
	}
	if n := strings.Count(page, `<tr class="status-`); n != 1 {
		t.Errorf("filtered page: %d rows, want 1", n)
	}
	page = readBody(t, ts.do(t, "GET", "/admin/orders?q=nobody", nil, adminBasic...))
	if !strings.Contains(page, "No orders match these filters.") {
		t.Errorf("empty result does not say so:\n%s", page)
	}
}

func TestAdminOrdersEmpty(t *testing.T) {
	ts := newTestServer(t)
	page := readBody(t, ts.do(t, "GET", "/admin/orders", nil, adminBasic...))
	if !strings.Contains(page, "No orders yet.") || strings.Contains(page, `rel="next"`) || strings.Contains(page, `rel="first"`) {
		t.Errorf("empty shop's list:\n%s", page)
	}
	if body := readBody(t, ts.do(t, "GET", "/admin/orders", nil, adminJSON...)); body != `{"orders":[],"next":null}`+"\n" {
		t.Errorf("empty JSON: got %s", body)
	}
}

func TestAdminOrdersBadInput(t *testing.T) {
	ts := newTestServer(t)
	long := url.QueryEscape(strings.Repeat("x", orders.MaxQueryLength+1))
	tests := []struct{ query, want string }{
		{"?status=bogus", "Unknown status filter."},
		{"?from=2026-13-01", "The from date must be a day written as YYYY-MM-DD"},
		{"?from=yesterday", "The from date must be a day"},
		{"?to=2026-02-30", "The to date must be a day"},
		{"?to=1%2F2%2F2026", "The to date must be a day"},
		{"?from=2026-03-02&to=2026-03-01", "The from date is after the to date."},
		{"?after=not-a-cursor", "The after parameter is not a place in this list"},
		{"?after=" + orders.Cursor{}.String()[:3], "The after parameter is not a place in this list"},
		{"?limit=0", "The limit must be a whole number from 1 to 1000."},
		{"?limit=1001", "The limit must be a whole number from 1 to 1000."},
		{"?limit=-5", "The limit must be a whole number"},
		{"?limit=ten", "The limit must be a whole number"},
		{"?q=" + long, "Search for at most 200 characters."},
	}
	for _, tt := range tests {
		for _, path := range []string{"/admin/orders", "/admin/orders.csv"} {
			if path == "/admin/orders.csv" && (strings.HasPrefix(tt.query, "?after") || strings.HasPrefix(tt.query, "?limit")) {
				continue // the export refuses them outright, below
			}
			res := ts.do(t, "GET", path+tt.query, nil, adminJSON...)
			var got errorBody
			if err := json.Unmarshal([]byte(readBody(t, res)), &got); err != nil || res.StatusCode != http.StatusBadRequest || !strings.Contains(got.Error.Message, tt.want) {
				t.Errorf("JSON %s%s: got %d %+v, want 400 %q", path, tt.query, res.StatusCode, got, tt.want)
			}
			res = ts.do(t, "GET", path+tt.query, nil, adminBasic...)
			page := readBody(t, res)
			if res.StatusCode != http.StatusBadRequest || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") || !strings.Contains(page, tt.want) {
				t.Errorf("HTML %s%s: got %d %s, want 400 saying %q", path, tt.query, res.StatusCode, res.Header.Get("Content-Type"), tt.want)
			}
		}
	}
	for _, query := range []string{"?limit=10", "?after=" + (orders.Cursor{CreatedAt: time.Now(), ID: "ord_x"}).String()} {
		res := ts.do(t, "GET", "/admin/orders.csv"+query, nil, adminBasic...)
		if body := readBody(t, res); res.StatusCode != http.StatusBadRequest || !strings.Contains(body, "it takes no limit or after") {
			t.Errorf("export%s: got %d, want 400 (it has every order)", query, res.StatusCode)
		}
	}
}

func TestAdminOrdersPagination(t *testing.T) {
	ts := newTestServer(t)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var all []listed
	for i := range 130 {
		// Pairs share an instant, so the id breaks the tie.
		all = append(all, listed{id: fmt.Sprintf("ord_p%03d", i), created: base.Add(time.Duration(i/2) * time.Minute)})
	}
	seedListed(t, ts, all...)
	newest := func(list []listed) []string {
		var ids []string
		for i := len(list) - 1; i >= 0; i-- {
			ids = append(ids, list[i].id)
		}
		return ids
	}
	want := newest(all)

	// 50 a page by default; the JSON's next walks them all, once each, even
	// with orders placed between pages (they are newer than every page).
	var seen []string
	query := ""
	for page := 0; ; page++ {
		ids, next := listIDs(t, ts, query)
		if page < 2 && len(ids) != adminPageSize {
			t.Fatalf("page %d: %d orders, want %d", page, len(ids), adminPageSize)
		}
		seen = append(seen, ids...)
		if next == nil {
			break
		}
		seedListed(t, ts, listed{id: fmt.Sprintf("ord_new%d", page), created: time.Now()})
		query = "?after=" + url.QueryEscape(*next)
		if page > 5 {
			t.Fatal("the pages do not end")
		}
	}
	if diff := cmp.Diff(want, seen); diff != "" {
		t.Errorf("walking the pages (-want +got):\n%s", diff)
	}

	// A list ending on a page boundary has no empty last page: after
	// ord_p129 come 129 orders, 65 and then 64.
	after := url.QueryEscape(orders.CursorOf(orders.Order{ID: "ord_p129", CreatedAt: all[129].created}).String())
	ids, next := listIDs(t, ts, "?limit=65&after="+after)
	if len(ids) != 65 || ids[0] != "ord_p128" || next == nil {
		t.Fatalf("limit 65 after ord_p129: got %d orders from %v, next %v; want 65 from ord_p128 and a next page", len(ids), ids[:1], next)
	}
	ids, next = listIDs(t, ts, "?limit=64&after="+url.QueryEscape(*next))
	if len(ids) != 64 || next != nil || ids[63] != "ord_p000" {
		t.Errorf("last page: got %d orders ending %v, next %v; want 64 ending ord_p000 and no next", len(ids), ids[len(ids)-1:], next)
	}

	// The HTML's links keep the filters and walk the same pages.
	seen = nil
	link := "/admin/orders?status=pending&limit=40&to=2026-01-01"
	for page := 0; link != ""; page++ {
		body := readBody(t, ts.do(t, "GET", link, nil, adminBasic...))
		for _, m := range regexp.MustCompile(`<a href="/admin/orders/(ord_p\d+)"`).FindAllStringSubmatch(body, -1) {
			seen = append(seen, m[1])
		}
		if page > 0 && !strings.Contains(body, `<a href="/admin/orders?limit=40&amp;status=pending&amp;to=2026-01-01" rel="first">← Newest</a>`) {
			t.Errorf("page %d has no link back to the newest:\n%s", page, body)
		}
		if page == 0 && strings.Contains(body, `rel="first"`) {
			t.Errorf("the first page links to itself as the newest")
		}
		link = ""
		if m := regexp.MustCompile(`<a href="([^"]+)" rel="next">Next page →</a>`).FindStringSubmatch(body); m != nil {
			link = strings.ReplaceAll(m[1], "&amp;", "&")
			u, err := url.Parse(link)
			if err != nil || u.Query().Get("status") != "pending" || u.Query().Get("limit") != "40" || u.Query().Get("to") != "2026-01-01" || u.Query().Get("after") == "" {
				t.Fatalf("next link %q does not keep the filters", link)
			}
		}
		if page > 5 {
			t.Fatal("the pages do not end")
		}
	}
	if diff := cmp.Diff(want, seen); diff != "" {
		t.Errorf("walking the HTML pages (-want +got):\n%s", diff)
	}
}

func TestAdminOrdersLimit(t *testing.T) {
	ts := newTestServer(t)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var all []listed
	for i := range orders.MaxListLimit + 1 {
		all = append(all, listed{id: fmt.Sprintf("ord_l%04d", i), created: base.Add(time.Duration(i) * time.Second)})
	}
	seedListed(t, ts, all...)
	ids, next := listIDs(t, ts, "?limit=1000")
	if len(ids) != 1000 || ids[0] != "ord_l1000" || next == nil {
		t.Fatalf("limit=1000: got %d orders from %v, next %v; want 1000 from ord_l1000 and a next page", len(ids), ids[:1], next)
	}
	ids, next = listIDs(t, ts, "?limit=1000&after="+url.QueryEscape(*next))
	if !slices.Equal(ids, []string{"ord_l0000"}) || next != nil {
		t.Errorf("second page: got %v next %v, want [ord_l0000] and no next", ids, next)
	}
	if ids, _ := listIDs(t, ts, "?limit=1"); !slices.Equal(ids, []string{"ord_l1000"}) {
		t.Errorf("limit=1: got %v", ids)
	}
}

// TestAdminOrdersJSONUnchanged checks that each order in the list's JSON
// is what it was before pages came: the order's public fields and its
// notifications, every field as the order's own page encodes it.
func TestAdminOrdersJSONUnchanged(t *testing.T) {
	ts := newTestServer(t)
	_, paid, _ := ts.paidOrder(t)
	storetest.Seed(t, ts.store, orders.Order{ID: orders.NewID(), Status: orders.StatusPending, Currency: "eur", AmountTotal: 1250,
		Items: []orders.Item{{ProductID: "mug", Name: "Mug", UnitAmount: 1250, Quantity: 1}}, CreatedAt: time.Now().Add(time.Minute), UpdatedAt: time.Now()})
	body := readBody(t, ts.do(t, "GET", "/admin/orders", nil, adminJSON...))
	var top map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &top); err != nil {
		t.Fatal(err)
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range top {
			if !yield(k) {
				return
			}
		}
	})
	if !slices.Equal(keys, []string{"next", "orders"}) || string(top["next"]) != "null" {
		t.Errorf("top level: got keys %v next %s, want next (null) and orders", keys, top["next"])
	}
	var list []json.RawMessage
	if err := json.Unmarshal(top["orders"], &list); err != nil || len(list) != 2 {
		t.Fatalf("orders: %v, %v", len(list), err)
	}
	for _, raw := range list {
		var head struct{ ID string }
		json.Unmarshal(raw, &head)
		o, err := ts.svc.Order(context.Background(), head.ID)
		if err != nil {
			t.Fatal(err)
		}
		ns, _ := ts.svc.Notifications(context.Background(), []string{o.ID})
		if ns == nil {
			ns = []orders.Notification{}
		}
		want, _ := json.Marshal(adminOrder{Order: o.Public(), Notifications: ns})
		if diff := cmp.Diff(string(want), string(raw)); diff != "" {
			t.Errorf("order %s (-want +got):\n%s", o.ID, diff)
		}
	}
	// The fields the paid order had before this change, by name.
	var fields map[string]any
	json.Unmarshal(list[1], &fields)
	for _, k := range []string{"id", "status", "items", "amountTotal", "currency", "sessionId", "email", "createdAt", "updatedAt", "paidAt", "fulfilledAt", "amountRefunded", "refunds", "notifications"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("paid order %s lacks %q: %s", paid, k, list[1])
		}
	}
}

// csvRows reads an export, checking its CRLF line ends.
func csvRows(t testing.TB, body string) [][]string {
	t.Helper()
	if strings.Count(body, "\n") != strings.Count(body, "\r\n") || !strings.HasSuffix(body, "\r\n") {
		t.Errorf("export lines do not all end in CRLF: %q", body[:min(len(body), 300)])
	}
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("export is not CSV: %v\n%s", err, body)
	}
	return rows
}

func TestAdminOrdersCSV(t *testing.T) {
	loc := berlin(t)
	now := time.Date(2026, 3, 10, 0, 30, 0, 0, loc) // still the 9th in UTC
	ts := newClockedTestServer(t, nil, func() time.Time { return now }, func(c *configT) { c.Location = loc })
	created := time.Date(2026, 3, 1, 9, 15, 30, 123456000, time.UTC)
	paid := created.Add(2 * time.Minute)
	storetest.Seed(t, ts.store,
		orders.Order{ID: "ord_csv1", Status: orders.StatusPartiallyRefunded, Payment: orders.StatusPaid, Currency: "usd",
			AmountTotal: 4500, AmountPaid: 4500, AmountRefunded: 2000, Email: "=cmd@x.test", SessionID: "cs_test_csv1", PaymentIntentID: "pi_csv1",
			Items: []orders.Item{
				{ProductID: "tshirt", Name: "T-shirt", UnitAmount: 2000, Quantity: 2},
				{ProductID: "mug", Name: "-Mug, \"big\"", UnitAmount: 500, Quantity: 1},
			},
			CreatedAt: created, UpdatedAt: paid, PaidAt: &paid, FulfilledAt: &paid},
		orders.Order{ID: "ord_csv2", Status: orders.StatusPending, Currency: "jpy", AmountTotal: 500, Email: "+1@x.test",
			Items:     []orders.Item{{ProductID: "tea", Name: "@tea\nleaves", UnitAmount: 500, Quantity: 1}},
			CreatedAt: created.Add(time.Hour), UpdatedAt: created.Add(time.Hour)},
		orders.Order{ID: "ord_csv3", Status: orders.StatusExpired, Currency: "kwd", AmountTotal: 12345, Email: "plain@x.test",
			Items:     []orders.Item{{ProductID: "lamp", Name: "Lamp", UnitAmount: 12345, Quantity: 1}},
			CreatedAt: created.AddDate(0, 0, 5), UpdatedAt: created.AddDate(0, 0, 5)},
	)
	res := ts.do(t, "GET", "/admin/orders.csv", nil, adminBasic...)
	body := readBody(t, res)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("export: got %d %s", res.StatusCode, body)
	}
	for h, want := range map[string]string{
		"Content-Type":        "text/csv; charset=utf-8",
		"Content-Disposition": `attachment; filename="orders-2026-03-10.csv"`, // the shop's day
		"Cache-Control":       "no-store",
	} {
		if got := res.Header.Get(h); got != want {
			t.Errorf("%s: got %q, want %q", h, got, want)
		}
	}
	want := [][]string{
		{"id", "created_at", "status", "email", "currency", "amount_total", "amount_total_decimal", "amount_refunded", "amount_refunded_decimal",
			"items", "session_id", "payment_intent_id", "paid_at", "fulfilled_at"},
		{"ord_csv3", "2026-03-06T09:15:30Z", "expired", "plain@x.test", "kwd", "12345", "12.345", "0", "0.000", "1 × Lamp", "", "", "", ""},
		{"ord_csv2", "2026-03-01T10:15:30Z", "pending", "'+1@x.test", "jpy", "500", "500", "0", "0", "1 × @tea\nleaves", "", "", "", ""},
		{"ord_csv1", "2026-03-01T09:15:30Z", "partially_refunded", "'=cmd@x.test", "usd", "4500", "45.00", "2000", "20.00",
			"2 × T-shirt; 1 × -Mug, \"big\"", "cs_test_csv1", "pi_csv1", "2026-03-01T09:17:30Z", "2026-03-01T09:17:30Z"},
	}
	if diff := cmp.Diff(want, csvRows(t, body)); diff != "" {
		t.Errorf("export (-want +got):\n%s", diff)
	}
	if !strings.Contains(body, "\"1 × @tea\r\nleaves\"") {
		t.Errorf("a line break inside a cell is not quoted (and CRLF) as RFC 4180 says: %q", body)
	}

	// The list's filters, and a header row alone when nothing matches.
	for query, wantIDs := range map[string][]string{
		"?status=pending":       {"ord_csv2"},
		"?from=2026-03-02":      {"ord_csv3"},
		"?to=2026-03-01":        {"ord_csv2", "ord_csv1"},
		"?q=X.TEST&status=paid": nil,
		"?q=cs_test_csv1":       {"ord_csv1"},
		"?q=plain":              {"ord_csv3"},
	} {
		res := ts.do(t, "GET", "/admin/orders.csv"+query, nil, adminBasic...)
		rows := csvRows(t, readBody(t, res))
		var ids []string
		for _, r := range rows[1:] {
			ids = append(ids, r[0])
		}
		if res.StatusCode != http.StatusOK || rows[0][0] != "id" || !slices.Equal(ids, wantIDs) {
			t.Errorf("export%s: got %d %v, want %v", query, res.StatusCode, ids, wantIDs)
		}
	}
}

func TestSpreadsheetSafe(t *testing.T) {
	tests := []struct{ cell, want string }{
		{"", ""},
		{"plain", "plain"},
		{"=cmd@x", "'=cmd@x"},
		{"=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"},
		{"+1@x", "'+1@x"},
		{"-Mug", "'-Mug"},
		{"@SUM(A1)", "'@SUM(A1)"},
		{"\tTab", "'\tTab"},
		{"\rReturn", "'\rReturn"},
		{"a=b", "a=b"},
		{" =x", " =x"},
		{"'quoted", "'quoted"},
		{"20.00", "20.00"},
		{"2 × T-shirt", "2 × T-shirt"},
	}
	for _, tt := range tests {
		if got := spreadsheetSafe(tt.cell); got != tt.want {
			t.Errorf("spreadsheetSafe(%q) = %q, want %q", tt.cell, got, tt.want)
		}
	}
}

// flushCounter is a ResponseWriter that counts its flushes and the bytes
// written before each.
type flushCounter struct {
	*httptest.ResponseRecorder
	flushedAt []int
}

func (f *flushCounter) Flush() {
	f.flushedAt = append(f.flushedAt, f.Body.Len())
	f.ResponseRecorder.Flush()
}

func TestAdminOrdersCSVStreams(t *testing.T) {
	ts := newTestServer(t)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const n = 2500
	var all []listed
	for i := range n {
		all = append(all, listed{id: fmt.Sprintf("ord_s%04d", i), email: fmt.Sprintf("s%d@x.test", i), created: base.Add(time.Duration(i) * time.Second)})
	}
	seedListed(t, ts, all...)
	rec := &flushCounter{ResponseRecorder: httptest.NewRecorder()}
	req := httptest.NewRequest("GET", "/admin/orders.csv", nil)
	req.Header.Set("Authorization", adminBasic[1])
	ts.ServeHTTP(rec, req)
	rows := csvRows(t, rec.Body.String())
	if rec.Code != http.StatusOK || len(rows) != n+1 {
		t.Fatalf("export: got %d with %d rows, want 200 with %d", rec.Code, len(rows), n+1)
	}
	for i, r := range rows[1:] {
		if want := fmt.Sprintf("ord_s%04d", n-1-i); r[0] != want {
			t.Fatalf("row %d: got %s, want %s (newest first)", i+1, r[0], want)
		}
	}
	// A flush a page: after 1000 and 2000 rows, and at the end.
	if len(rec.flushedAt) != 3 || rec.flushedAt[0] == 0 || rec.flushedAt[0] >= rec.flushedAt[1] || rec.flushedAt[2] != rec.Body.Len() {
		t.Errorf("flushes at bytes %v of %d, want one a page of rows", rec.flushedAt, rec.Body.Len())
	}
}

// failingLists breaks ListOrders from its failFrom-th call on.
type failingLists struct {
	orders.Store
	mu       sync.Mutex
	calls    int
	failFrom int
}

func (f *failingLists) ListOrders(ctx context.Context, lf orders.ListFilter) ([]orders.Order, error) {
	f.mu.Lock()
	f.calls++
	n := f.calls
	f.mu.Unlock()
	if n >= f.failFrom {
		return nil, errors.New("disk on fire")
	}
	return f.Store.ListOrders(ctx, lf)
}

// seedPageAndAHalf stores a page of orders and half another, their ids
// prefix and a number.
func seedPageAndAHalf(t *testing.T, ts *testServer, prefix string) {
	t.Helper()
	var all []listed
	for i := range orders.MaxListLimit + 500 {
		all = append(all, listed{id: fmt.Sprintf("%s%04d", prefix, i), created: time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC)})
	}
	seedListed(t, ts, all...)
}

func TestAdminOrdersCSVAbortsMidway(t *testing.T) {
	broken := &failingLists{failFrom: 2}
	ts := newWrappedTestServer(t, func(s orders.Store) orders.Store { broken.Store = s; return broken })
	seedPageAndAHalf(t, ts, "ord_f")
	srv := httptest.NewServer(ts)
	t.Cleanup(srv.Close)
	req, _ := http.NewRequest("GET", srv.URL+"/admin/orders.csv", nil)
	req.Header.Set("Authorization", adminBasic[1])
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || err == nil {
		t.Fatalf("got %d, a body of %d bytes read to its end (err %v); want 200 and a broken download", res.StatusCode, len(body), err)
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("download broke with %v, want an unexpected EOF (the chunked body never ends)", err)
	}
	if lines := strings.Count(string(body), "\r\n"); lines < orders.MaxListLimit {
		t.Errorf("only %d lines came before the abort, want the first page's %d and the header", lines, orders.MaxListLimit+1)
	}
	if logs := ts.logs.String(); !strings.Contains(logs, "order export failed midway") || !strings.Contains(logs, "disk on fire") || !strings.Contains(logs, "rows_sent=1000") {
		t.Errorf("the aborted export is not logged:\n%s", logs)
	}
}

func TestAdminOrdersCSVStoreDownFirst(t *testing.T) {
	broken := &failingLists{failFrom: 1}
	ts := newWrappedTestServer(t, func(s orders.Store) orders.Store { broken.Store = s; return broken })
	res := ts.do(t, "GET", "/admin/orders.csv", nil, adminBasic...)
	body := readBody(t, res)
	if res.StatusCode != http.StatusServiceUnavailable || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") ||
		res.Header.Get("Content-Disposition") != "" || strings.Contains(body, "disk on fire") {
		t.Errorf("store down before the first row: got %d %q %q, want a plain 503 page", res.StatusCode, res.Header.Get("Content-Type"), res.Header.Get("Content-Disposition"))
	}
}

func TestBackOfficeNeedsAuth(t *testing.T) {
	ts := newTestServer(t)
	for _, target := range []string{"/admin", "/admin/", "/admin/orders", "/admin/orders?status=paid", "/admin/orders.csv", "/admin/orders.csv?q=x"} {
		for _, headers := range [][]string{nil, {"Accept", "application/json"}, {"Authorization", "Basic " + basic("admin", "wrong")}} {
			res := ts.do(t, "GET", target, nil, headers...)
			if body := readBody(t, res); res.StatusCode != http.StatusUnauthorized || res.Header.Get("WWW-Authenticate") == "" || strings.Contains(body, "id,created_at") {
				t.Errorf("GET %s %v: got %d, want 401 with a challenge", target, headers, res.StatusCode)
			}
		}
	}
	off := newTestServer(t, func(c *configT) { c.AdminPassword = "" })
	for _, target := range []string{"/admin", "/admin/orders.csv"} {
		if res := off.do(t, "GET", target, nil, "Authorization", "Basic "+basic("admin", "")); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s without ADMIN_PASSWORD: got %d, want 404", target, res.StatusCode)
		}
	}
}

func TestAdminNav(t *testing.T) {
	ts := newTestServer(t)
	for target, current := range map[string]string{"/admin": "Overview", "/admin/orders": "Orders", "/admin/products": "Products"} {
		body := readBody(t, ts.do(t, "GET", target, nil, adminBasic...))
		if !strings.Contains(body, `<nav class="admin-nav" aria-label="Admin">`) || !strings.Contains(body, `aria-current="page">`+current+`</a>`) ||
			strings.Count(body, `aria-current="page"`) != 1 {
			t.Errorf("GET %s: no admin nav with %s current:\n%s", target, current, body)
		}
		for _, link := range []string{`href="/admin"`, `href="/admin/orders"`, `href="/admin/alarms"`, `href="/admin/products"`, `href="/admin/orders.csv"`} {
			if !strings.Contains(body, link) {
				t.Errorf("GET %s: nav lacks %s", target, link)
			}
		}
	}
}

// slowLists takes delay over every ListOrders.
type slowLists struct {
	orders.Store
	delay time.Duration
}

func (s slowLists) ListOrders(ctx context.Context, f orders.ListFilter) ([]orders.Order, error) {
	time.Sleep(s.delay)
	return s.Store.ListOrders(ctx, f)
}

// TestAdminOrdersCSVOutlivesWriteTimeout exports through a server whose
// WriteTimeout is shorter than the export: each page pushes the deadline
// on, so the file arrives whole.
func TestAdminOrdersCSVOutlivesWriteTimeout(t *testing.T) {
	ts := newWrappedTestServer(t, func(s orders.Store) orders.Store { return slowLists{Store: s, delay: 150 * time.Millisecond} })
	var all []listed
	for i := range 3*orders.MaxListLimit + 500 {
		all = append(all, listed{id: fmt.Sprintf("ord_w%04d", i), created: time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC)})
	}
	seedListed(t, ts, all...)
	srv := httptest.NewUnstartedServer(ts)
	srv.Config.WriteTimeout = 400 * time.Millisecond // the export takes four pages of 150 ms
	srv.Start()
	t.Cleanup(srv.Close)
	req, _ := http.NewRequest("GET", srv.URL+"/admin/orders.csv", nil)
	req.Header.Set("Authorization", adminBasic[1])
	start := time.Now()
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("after %v: got %d, %d bytes, %v; want the whole export", time.Since(start).Round(time.Millisecond), res.StatusCode, len(body), err)
	}
	if rows := csvRows(t, string(body)); len(rows) != len(all)+1 {
		t.Errorf("got %d rows, want %d", len(rows), len(all)+1)
	}
}

// A HEAD of the export answers what a GET would begin with after one read
// of the store, instead of running the whole export for nothing.
func TestAdminOrdersCSVHead(t *testing.T) {
	broken := &failingLists{failFrom: 2} // a second page would fail
	ts := newWrappedTestServer(t, func(s orders.Store) orders.Store { broken.Store = s; return broken })
	seedPageAndAHalf(t, ts, "ord_h")
	srv := httptest.NewServer(ts)
	t.Cleanup(srv.Close)
	head := func() *http.Response {
		req, _ := http.NewRequest("HEAD", srv.URL+"/admin/orders.csv", nil)
		req.Header.Set("Authorization", adminBasic[1])
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	res := head()
	body := readBody(t, res)
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/csv; charset=utf-8" ||
		!strings.HasPrefix(res.Header.Get("Content-Disposition"), `attachment; filename="orders-`) || body != "" {
		t.Errorf("HEAD: got %d %q %q and %d bytes, want the export's 200 and headers, no body",
			res.StatusCode, res.Header.Get("Content-Type"), res.Header.Get("Content-Disposition"), len(body))
	}
	broken.mu.Lock()
	calls := broken.calls
	broken.mu.Unlock()
	if calls != 1 {
		t.Errorf("HEAD read %d pages of orders, want 1", calls)
	}
	if logs := ts.logs.String(); strings.Contains(logs, "order export") {
		t.Errorf("HEAD logged an export:\n%s", logs)
	}

	// The store down: HEAD answers the GET's 503.
	broken.mu.Lock()
	broken.failFrom = 0
	broken.mu.Unlock()
	if res := head(); res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("HEAD with the store down: got %d, want 503", res.StatusCode)
	}
}
