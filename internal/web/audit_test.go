package web

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shopcheckout/shop/internal/orders"
)

// logPair is one key=value of a text log line, the value quoted or not.
var logPair = regexp.MustCompile(`([a-z_]+)=("(?:[^"\\]|\\.)*"|\S*)`)

// adminActions returns the "admin action" lines of logs, each as its
// fields.
func adminActions(logs string) []map[string]string {
	var out []map[string]string
	for _, line := range strings.Split(logs, "\n") {
		if !strings.Contains(line, `msg="admin action"`) {
			continue
		}
		fields := map[string]string{}
		for _, m := range logPair.FindAllStringSubmatch(line, -1) {
			v := m[2]
			if u, err := strconv.Unquote(v); err == nil {
				v = u
			}
			fields[m[1]] = v
		}
		out = append(out, fields)
	}
	return out
}

// TestAdminActionLogLines makes every state-changing admin request, and
// each leaves one "admin action" line naming the action, the ids it
// touched and the values before and after, with who sent it and the
// request id; a refused request leaves none.
func TestAdminActionLogLines(t *testing.T) {
	ts := newTestServer(t)
	oid, _ := ts.paidWithIntent(t)
	token := ts.refundToken(t, oid)
	ntf := ts.notifications(t, oid)[0].ID
	ts.raiseAlarms(t, storedAlarm(orders.AlarmPaidTwice, oid, time.Now()))
	form := func(headers ...string) []string {
		return admin(append([]string{"Content-Type", formType}, headers...)...)
	}
	steps := []struct {
		name    string
		before  func()
		method  string
		target  string
		body    []string
		headers []string
		want    map[string]string // nil: no admin action line
	}{
		{name: "refund", target: "/admin/orders/" + oid + "/refund", body: []string{"amount", "1000", "reason", "requested_by_customer", "refund_token", token},
			headers: form(), want: map[string]string{"action": "refund", "order_id": oid, "refund_id": "re_test_fake001", "amount": "1000", "currency": "usd",
				"reason": "requested_by_customer", "refund_status": "succeeded", "refunded_before": "0", "refunded_after": "1000",
				"from": "paid", "to": "partially_refunded", "hold_from": "", "hold_to": "", "restocked": "false"}},
		{name: "refund of more than is left", target: "/admin/orders/" + oid + "/refund", body: []string{"amount", "9999", "refund_token", token}, headers: form()},
		{name: "retry of a pending notification", target: "/admin/notifications/" + ntf + "/retry", headers: form()},
		{name: "retry", before: func() { ts.killNotification(t, ntf) }, target: "/admin/notifications/" + ntf + "/retry", headers: form(),
			want: map[string]string{"action": "retry_notification", "notification_id": ntf, "from": "dead", "to": "pending"}},
		{name: "retry, JSON", before: func() { ts.killNotification(t, ntf) }, target: "/admin/notifications/" + ntf + "/retry",
			headers: admin("Accept", "application/json"), want: map[string]string{"action": "retry_notification", "notification_id": ntf, "from": "dead", "to": "pending"}},
		{name: "stock set", target: "/admin/products/tshirt/stock", body: []string{"stock", "7"}, headers: form(),
			want: map[string]string{"action": "set_stock", "product_id": "tshirt", "from": "unlimited", "to": "7", "held": "0", "sold": "0"}},
		{name: "stock unlimited", target: "/admin/products/tshirt/stock", body: []string{"stock", "unlimited"}, headers: form(),
			want: map[string]string{"action": "set_stock", "product_id": "tshirt", "from": "7", "to": "unlimited", "held": "0", "sold": "0"}},
		{name: "stock refused", target: "/admin/products/tshirt/stock", body: []string{"stock", "-1"}, headers: form()},
		{name: "resolve", target: "/admin/alarms/alm_test_paid_twice/resolve", headers: form(),
			want: map[string]string{"action": "resolve_alarm", "alarm_id": "alm_test_paid_twice", "kind": orders.AlarmPaidTwice, "ref": oid,
				"order_id": oid, "from": "open", "to": "resolved"}},
		{name: "resolve again", target: "/admin/alarms/alm_test_paid_twice/resolve", headers: form(),
			want: map[string]string{"action": "resolve_alarm", "alarm_id": "alm_test_paid_twice", "kind": orders.AlarmPaidTwice, "ref": oid,
				"order_id": oid, "from": "resolved", "to": "resolved"}},
		{name: "resolve unknown", target: "/admin/alarms/alm_nope/resolve", headers: form()},
	}
	for i, st := range steps {
		reqID := "req-" + strconv.Itoa(i)
		if st.before != nil {
			st.before()
		}
		mark := len(ts.logs.String())
		res := ts.do(t, "POST", st.target, formBody(st.body...), append(st.headers, "X-Request-Id", reqID)...)
		lines := adminActions(ts.logs.String()[mark:])
		if st.want == nil {
			if len(lines) != 0 || res.StatusCode < 400 {
				t.Errorf("%s: got %d and %d admin action lines %v, want a refusal and none", st.name, res.StatusCode, len(lines), lines)
			}
			continue
		}
		if res.StatusCode != http.StatusSeeOther && res.StatusCode != http.StatusOK {
			t.Errorf("%s: got %d, want 303 or 200", st.name, res.StatusCode)
		}
		if len(lines) != 1 {
			t.Errorf("%s: got %d admin action lines %v, want 1", st.name, len(lines), lines)
			continue
		}
		got := map[string]string{}
		for k := range st.want {
			if v, ok := lines[0][k]; ok {
				got[k] = v
			}
		}
		if diff := cmp.Diff(st.want, got); diff != "" {
			t.Errorf("%s: admin action line (-want +got):\n%s\nline: %v", st.name, diff, lines[0])
		}
		if lines[0]["client"] == "" || lines[0]["request_id"] != reqID {
			t.Errorf("%s: client %q, request id %q; want both", st.name, lines[0]["client"], lines[0]["request_id"])
		}
	}
}
