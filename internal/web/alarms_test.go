package web

import (
	"context"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/shopcheckout/shop/internal/orders"
)

// writeFailer fails every write while fail is set, as a full disk would;
// reads go through.
type writeFailer struct {
	orders.Store
	fail atomic.Bool
}

func (w *writeFailer) Write(ctx context.Context, fn func(ctx context.Context, tx orders.Tx) error) error {
	if w.fail.Load() {
		return errors.New("disk I/O error: database or disk is full")
	}
	return w.Store.Write(ctx, fn)
}

// raiseAlarms stores alarms as the service would have raised them.
func (ts *testServer) raiseAlarms(t testing.TB, list ...orders.Alarm) {
	t.Helper()
	err := ts.store.Write(context.Background(), func(ctx context.Context, tx orders.Tx) error {
		for _, a := range list {
			if err := tx.InsertAlarm(ctx, a); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// storedAlarm is a stored alarm of kind, about orderID if not "".
func storedAlarm(kind, orderID string, at time.Time) orders.Alarm {
	ref := "ref_" + kind
	if orderID != "" {
		ref = orderID
	}
	return orders.Alarm{ID: "alm_test_" + kind, Kind: kind, Ref: ref, OrderID: orderID, Detail: "What the shop saw: " + kind + ".", CreatedAt: at}
}

// everyAlarm raises an alarm of every kind: the stored ones directly, a
// dead notification by killing one, and failing writes by breaking the
// store (which stays broken for writes; reads work). It returns the paid
// order the alarms that have one are about.
func everyAlarm(t *testing.T) (*testServer, string) {
	t.Helper()
	failer := &writeFailer{}
	ts := newWrappedTestServer(t, func(s orders.Store) orders.Store { failer.Store = s; return failer })
	oid, _ := ts.paidWithIntent(t)
	ts.killNotification(t, ts.notifications(t, oid)[0].ID)
	now := time.Now().UTC().Truncate(time.Second)
	ts.raiseAlarms(t,
		storedAlarm(orders.AlarmUnreadableEvent, "", now.Add(-5*time.Minute)),
		storedAlarm(orders.AlarmUnattributedPayment, "", now.Add(-4*time.Minute)),
		storedAlarm(orders.AlarmPaidTwice, oid, now.Add(-3*time.Minute)),
		storedAlarm(orders.AlarmDispute, oid, now.Add(-2*time.Minute)),
		storedAlarm(orders.AlarmOversold, oid, now.Add(-time.Minute)),
	)
	failer.fail.Store(true)
	if err := ts.svc.PutSetting(context.Background(), "probe", "x"); err == nil {
		t.Fatal("a write went through the broken store")
	}
	return ts, oid
}

// alarmRows splits the alarms page into its rows, by kind.
func alarmRows(t testing.TB, body string) map[string]string {
	t.Helper()
	rows := map[string]string{}
	for _, m := range regexp.MustCompile(`(?s)<tr class="alarm alarm-([a-z_]+)[^"]*" id="alarm-[^"]+">.*?</tr>`).FindAllStringSubmatch(body, -1) {
		rows[m[1]] = m[0]
	}
	return rows
}

func TestAdminAlarmsEveryKind(t *testing.T) {
	ts, oid := everyAlarm(t)
	body := readBody(t, ts.do(t, "GET", "/admin/alarms", nil, adminAuthHeader...))
	rows := alarmRows(t, body)
	if len(rows) != len(orders.AlarmKinds()) {
		t.Errorf("rows: got %d kinds, want %d", len(rows), len(orders.AlarmKinds()))
	}
	withOrder := map[string]bool{orders.AlarmPaidTwice: true, orders.AlarmDispute: true, orders.AlarmOversold: true, orders.AlarmDeadNotification: true}
	for _, kind := range orders.AlarmKinds() {
		row, ok := rows[kind]
		if !ok {
			t.Errorf("%s: no row", kind)
			continue
		}
		if alarmLabel(kind) == kind {
			t.Errorf("%s: no label in words", kind)
		}
		wantIn(t, kind+"'s row", row, "<strong>"+template.HTMLEscapeString(alarmLabel(kind))+"</strong>",
			`<p class="advice">`+template.HTMLEscapeString(orders.Advice(kind))+"</p>", `<p class="detail muted">`)
		if link := `<a href="/admin/orders/` + oid + `" class="order-link">`; strings.Contains(row, link) != withOrder[kind] {
			t.Errorf("%s: links its order: %v, want %v", kind, !withOrder[kind], withOrder[kind])
		}
		derived := kind == orders.AlarmDeadNotification || kind == orders.AlarmStoreWrites
		if resolvable := strings.Contains(row, `/resolve"`); resolvable == derived {
			t.Errorf("%s: resolve button %v, want %v", kind, resolvable, !derived)
		}
		if derived && !strings.Contains(row, "open; ends with its cause") {
			t.Errorf("%s: the row does not say it ends with its cause", kind)
		}
	}
	wantIn(t, "the dispute's row", rows[orders.AlarmDispute], `action="/admin/alarms/alm_test_dispute/resolve"`)
	wantIn(t, "the failing store's row", rows[orders.AlarmStoreWrites], "database or disk is full")
	if !strings.Contains(body, `aria-current="page">Alarms</a>`) {
		t.Error("the alarms page lacks the admin nav with Alarms current")
	}

	// JSON: the stored fields as before, plus derived, label and advice.
	raw := readBody(t, ts.do(t, "GET", "/admin/alarms", nil, admin("Accept", "application/json")...))
	var got struct {
		Alarms []map[string]any `json:"alarms"`
	}
	if err := json.Unmarshal([]byte(raw), &got); err != nil || len(got.Alarms) != len(orders.AlarmKinds()) {
		t.Fatalf("JSON: %v, %d alarms; want %d: %s", err, len(got.Alarms), len(orders.AlarmKinds()), raw)
	}
	for _, a := range got.Alarms {
		kind, _ := a["kind"].(string)
		derived := kind == orders.AlarmDeadNotification || kind == orders.AlarmStoreWrites
		if a["derived"] != derived || a["advice"] != orders.Advice(kind) || a["label"] != alarmLabel(kind) {
			t.Errorf("JSON %s: got derived %v, advice %q, label %q", kind, a["derived"], a["advice"], a["label"])
		}
		for _, k := range []string{"id", "kind", "ref", "detail", "createdAt"} {
			if _, ok := a[k]; !ok {
				t.Errorf("JSON %s lacks %q", kind, k)
			}
		}
	}
}

func TestAlarmResolve(t *testing.T) {
	ts := newTestServer(t)
	oid, _ := ts.paidWithIntent(t)
	ts.killNotification(t, ts.notifications(t, oid)[0].ID)
	now := time.Now().UTC()
	ts.raiseAlarms(t, storedAlarm(orders.AlarmPaidTwice, oid, now), storedAlarm(orders.AlarmOversold, oid, now))
	path := "/admin/alarms/alm_test_paid_twice/resolve"

	// A form: 303 back to the list, which no longer shows it; ?all=1 does,
	// resolved, without a button.
	res := ts.do(t, "POST", path, nil, admin("Content-Type", formType, "Origin", "http://shop.test", "Sec-Fetch-Site", "same-origin")...)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/admin/alarms" {
		t.Fatalf("resolve: got %d to %q, want 303 to /admin/alarms", res.StatusCode, res.Header.Get("Location"))
	}
	if a, err := ts.svc.Alarm(t.Context(), "alm_test_paid_twice"); err != nil || a.ResolvedAt == nil {
		t.Fatalf("after resolve: %+v, %v; want it resolved", a, err)
	}
	if rows := alarmRows(t, readBody(t, ts.do(t, "GET", "/admin/alarms", nil, adminAuthHeader...))); rows[orders.AlarmPaidTwice] != "" || rows[orders.AlarmOversold] == "" {
		t.Errorf("open alarms after resolving paid_twice: got kinds %v, want oversold and no paid_twice", rows)
	}
	row := alarmRows(t, readBody(t, ts.do(t, "GET", "/admin/alarms?all=1", nil, adminAuthHeader...)))[orders.AlarmPaidTwice]
	if !strings.Contains(row, "resolved 20") || strings.Contains(row, "/resolve") {
		t.Errorf("?all=1: paid_twice row %q, want it resolved without a button", row)
	}
	// Again: nothing changes, and it still answers 303.
	if res := ts.do(t, "POST", path, nil, admin("Content-Type", formType)...); res.StatusCode != http.StatusSeeOther {
		t.Errorf("resolve again: got %d, want 303", res.StatusCode)
	}

	// JSON: 200 with the alarm.
	res = ts.do(t, "POST", "/admin/alarms/alm_test_oversold/resolve", nil, admin("Accept", "application/json")...)
	var got struct {
		Alarm map[string]any `json:"alarm"`
	}
	if err := json.NewDecoder(res.Body).Decode(&got); err != nil || res.StatusCode != 200 || got.Alarm["id"] != "alm_test_oversold" ||
		got.Alarm["resolvedAt"] == nil || got.Alarm["derived"] != false || got.Alarm["advice"] != orders.Advice(orders.AlarmOversold) {
		t.Errorf("JSON resolve: got %d %v (%v), want 200 with the resolved alarm", res.StatusCode, got.Alarm, err)
	}

	// Unknown and derived alarms: 404, saying derived ones end with their
	// cause.
	list, err := ts.svc.Alarms(t.Context(), orders.AlarmFilter{Open: true})
	if err != nil || len(list) != 1 || !list[0].Derived() {
		t.Fatalf("open alarms: %+v, %v; want the dead notification's only", list, err)
	}
	for _, id := range []string{"alm_nosuchalarm", list[0].ID} {
		for _, accept := range []string{"text/html", "application/json"} {
			res := ts.do(t, "POST", "/admin/alarms/"+id+"/resolve", nil, admin("Accept", accept)...)
			if body := readBody(t, res); res.StatusCode != http.StatusNotFound || !strings.Contains(body, "they end with their cause") {
				t.Errorf("resolve %s (%s): got %d %s, want 404 saying derived alarms end with their cause", id, accept, res.StatusCode, body)
			}
		}
	}
	if after, _ := ts.svc.Alarms(t.Context(), orders.AlarmFilter{Open: true}); len(after) != 1 {
		t.Errorf("open alarms after the refusals: got %d, want the dead notification's still", len(after))
	}
}

func TestAlarmResolveAuthAndOrigin(t *testing.T) {
	ts := newTestServer(t)
	ts.raiseAlarms(t, storedAlarm(orders.AlarmUnreadableEvent, "", time.Now()))
	path := "/admin/alarms/alm_test_unreadable_event/resolve"
	for name, tt := range map[string]struct {
		method     string
		headers    []string
		wantStatus int
	}{
		"no auth":                         {"POST", []string{"Content-Type", formType}, http.StatusUnauthorized},
		"wrong password":                  {"POST", []string{"Authorization", "Basic " + basic("admin", "nope")}, http.StatusUnauthorized},
		"cross-origin":                    {"POST", admin("Content-Type", formType, "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"), http.StatusForbidden},
		"cross-origin, no fetch metadata": {"POST", admin("Content-Type", formType, "Origin", "https://evil.example"), http.StatusForbidden},
		"GET":                             {"GET", adminAuthHeader, http.StatusMethodNotAllowed},
	} {
		if res := ts.do(t, tt.method, path, nil, tt.headers...); res.StatusCode != tt.wantStatus {
			t.Errorf("%s: got %d, want %d", name, res.StatusCode, tt.wantStatus)
		}
	}
	if a, err := ts.svc.Alarm(t.Context(), "alm_test_unreadable_event"); err != nil || a.ResolvedAt != nil {
		t.Errorf("after the refused requests: %+v, %v; want it open", a, err)
	}
}

// TestAdminPostsNeedAuthAndSameOrigin walks every admin POST route: each
// refuses a request without the admin's password, and one from another
// origin even with it.
func TestAdminPostsNeedAuthAndSameOrigin(t *testing.T) {
	ts := newTestServer(t)
	var posts []string
	for _, p := range ts.routePatterns(t, http.MethodPost) {
		if strings.HasPrefix(p, "/admin/") {
			posts = append(posts, strings.ReplaceAll(strings.ReplaceAll(p, "{id}", "x"), "{product_id}", "x"))
		}
	}
	if len(posts) < 4 {
		t.Fatalf("admin POST routes: got %v, want refund, retry, stock and resolve at least", posts)
	}
	for _, target := range posts {
		if res := ts.do(t, "POST", target, formBody("stock", "1"), "Content-Type", formType); res.StatusCode != http.StatusUnauthorized {
			t.Errorf("POST %s without auth: got %d, want 401", target, res.StatusCode)
		}
		if res := ts.do(t, "POST", target, formBody("stock", "1"), admin("Content-Type", formType, "Sec-Fetch-Site", "cross-site")...); res.StatusCode != http.StatusForbidden {
			t.Errorf("POST %s cross-site: got %d, want 403", target, res.StatusCode)
		}
	}
	if strings.Contains(ts.logs.String(), `msg="admin action"`) {
		t.Errorf("a refused request logged an admin action:\n%s", ts.logs.String())
	}
}

// routePatterns lists the router's route patterns for method.
func (ts *testServer) routePatterns(t testing.TB, method string) []string {
	t.Helper()
	var patterns []string
	err := chi.Walk(ts.handler.(chi.Routes), func(m, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if m == method {
			patterns = append(patterns, route)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return patterns
}
