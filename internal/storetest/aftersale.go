package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shopcheckout/shop/internal/orders"
)

// After the sale: refunds, disputes, second sessions and payments that need
// a person, run over the store under test.

// PaymentIntent is the PaymentIntent of o's payment in the fixtures.
func PaymentIntent(o orders.Order) string { return "pi_" + o.ID }

// PaidEvent is a completed, paid checkout event for o that names its
// PaymentIntent.
func PaidEvent(id string, o orders.Order) orders.Event {
	return CompletedEvent(id, o, "paid", func(s *orders.Session) { s.PaymentIntent = PaymentIntent(o) })
}

// ChargeRefunded is a charge.refunded event created at created (unix
// seconds) whose charge of o says amountRefunded was refunded.
func ChargeRefunded(id string, o orders.Order, amountRefunded, created int64) orders.Event {
	return orders.Event{ID: id, Type: orders.EventChargeRefunded, Created: time.Unix(created, 0).UTC(),
		Charge: &orders.Charge{ID: "ch_" + o.ID, PaymentIntent: PaymentIntent(o), OrderID: o.ID, Amount: o.AmountTotal,
			AmountRefunded: amountRefunded, Currency: o.Currency}}
}

// RefundUpdated is a charge.refund.updated event created at created about
// a refund of o made at made.
func RefundUpdated(id string, o orders.Order, refundID string, amount int64, status string, made, created int64) orders.Event {
	return orders.Event{ID: id, Type: orders.EventRefundUpdated, Created: time.Unix(created, 0).UTC(),
		Refund: &orders.RefundInfo{ID: refundID, Charge: "ch_" + o.ID, PaymentIntent: PaymentIntent(o), Amount: amount,
			Status: status, Reason: "requested_by_customer", Created: time.Unix(made, 0).UTC()}}
}

// DisputeEvent is a charge.dispute event of type typ created at created,
// about o's payment, with the dispute in status.
func DisputeEvent(id, typ string, o orders.Order, status string, created int64) orders.Event {
	due := time.Unix(created, 0).Add(7 * 24 * time.Hour).UTC()
	return orders.Event{ID: id, Type: typ, Created: time.Unix(created, 0).UTC(),
		Dispute: &orders.DisputeInfo{ID: "dp_" + o.ID, Charge: "ch_" + o.ID, PaymentIntent: PaymentIntent(o),
			Amount: o.AmountTotal, Currency: o.Currency, Status: status, Reason: "fraudulent", EvidenceDueBy: &due}}
}

// paidOrder seeds an order and pays it, naming its PaymentIntent.
func paidOrder(t *testing.T, s orders.Store, svc *orders.Service, id string) orders.Order {
	t.Helper()
	o := NewOrder(id)
	Seed(t, s, o)
	if got := mustHandle(t, svc, PaidEvent("evt_paid_"+id, o)).Order; got.PaymentIntentID != PaymentIntent(o) || got.AmountPaid != o.AmountTotal {
		t.Fatalf("paid order %s: PaymentIntent %q, amount paid %d; want %q, %d", id, got.PaymentIntentID, got.AmountPaid, PaymentIntent(o), o.AmountTotal)
	}
	return o
}

// types counts the order's notifications by type.
func types(t *testing.T, s orders.Store, orderID string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, n := range mustNotifications(t, s, orderID) {
		out[n.Type+"/"+string(n.Channel)]++
	}
	return out
}

func testRefunds(t *testing.T, s orders.Store) {
	svc := NewService(s, NewClock())
	o := paidOrder(t, s, svc, "ord_refund")
	const t0 = 1_800_000_000

	res := mustHandle(t, svc, ChargeRefunded("evt_r1", o, 1500, t0))
	if res.Order.Status != orders.StatusPartiallyRefunded || res.Order.AmountRefunded != 1500 {
		t.Fatalf("after 15.00 of 40.00: %s, %d; want partially_refunded, 1500", res.Order.Status, res.Order.AmountRefunded)
	}
	res = mustHandle(t, svc, ChargeRefunded("evt_r2", o, 4000, t0+10))
	if res.Order.Status != orders.StatusRefunded || res.Order.AmountRefunded != 4000 {
		t.Fatalf("after all of it: %s, %d; want refunded, 4000", res.Order.Status, res.Order.AmountRefunded)
	}
	// An older view never undoes a newer one; a duplicate is a no-op.
	mustHandle(t, svc, ChargeRefunded("evt_r0", o, 500, t0-5))
	mustHandle(t, svc, ChargeRefunded("evt_r1", o, 1500, t0))
	if got := mustOrder(t, s, o.ID); got.AmountRefunded != 4000 || got.Status != orders.StatusRefunded {
		t.Errorf("after an older view and a duplicate: %s, %d; want refunded, 4000", got.Status, got.AmountRefunded)
	}
	want := map[string]int{
		"order.paid/webhook": 1, "order.paid/email_customer": 1, "order.paid/email_owner": 1,
		"order.partially_refunded/webhook": 1, "order.partially_refunded/email_customer": 1,
		"order.refunded/webhook": 1, "order.refunded/email_customer": 1,
	}
	if diff := cmp.Diff(want, types(t, s, o.ID)); diff != "" {
		t.Errorf("notifications mismatch (-want +got):\n%s", diff)
	}
	// Each refund notification tells what its change refunded.
	for _, n := range mustNotifications(t, s, o.ID) {
		var body orders.WebhookBody
		if err := json.Unmarshal(n.Payload, &body); err != nil {
			t.Fatal(err)
		}
		want := map[string]int64{orders.NotifyOrderPartiallyRefunded: 1500, orders.NotifyOrderRefunded: 2500}[n.Type]
		if body.Data.RefundedNow != want {
			t.Errorf("%s: refundedNow %d, want %d", n.Type, body.Data.RefundedNow, want)
		}
	}
	// The order keeps its fulfilment; the payment itself stays paid.
	if got := mustOrder(t, s, o.ID); got.FulfilledAt == nil || got.PaymentState() != orders.StatusPaid {
		t.Errorf("refunded order: fulfilled %v, payment %s; want fulfilled, paid", got.FulfilledAt, got.PaymentState())
	}
}

// testRefundArrivalOrder delivers the events of one story in every order:
// a refund of 10.00 (seen on the charge), a second of 15.00 (seen on the
// charge and by id), then the second fails. Every order ends at 10.00.
func testRefundArrivalOrder(t *testing.T, s orders.Store) {
	svc := NewService(s, NewClock())
	const t0 = 1_800_000_000
	mk := []func(o orders.Order) orders.Event{
		func(o orders.Order) orders.Event { return ChargeRefunded("evt_c1_"+o.ID, o, 1000, t0) },
		func(o orders.Order) orders.Event { return ChargeRefunded("evt_c2_"+o.ID, o, 2500, t0+10) },
		func(o orders.Order) orders.Event {
			return RefundUpdated("evt_u2_"+o.ID, o, "re_2_"+o.ID, 1500, "succeeded", t0+10, t0+11)
		},
		func(o orders.Order) orders.Event {
			return RefundUpdated("evt_f2_"+o.ID, o, "re_2_"+o.ID, 1500, "failed", t0+10, t0+20)
		},
	}
	for pi, perm := range permutations(mk) {
		o := paidOrder(t, s, svc, fmt.Sprintf("ord_rperm%02d", pi))
		for _, ev := range perm {
			mustHandle(t, svc, ev(o))
			mustHandle(t, svc, ev(o)) // every event twice
		}
		got := mustOrder(t, s, o.ID)
		if got.AmountRefunded != 1000 || got.Status != orders.StatusPartiallyRefunded {
			t.Errorf("permutation %d: refunded %d, %s; want 1000, partially_refunded", pi, got.AmountRefunded, got.Status)
		}
		if len(got.Refunds) != 1 || got.Refunds[0].Status != "failed" || got.Refunds[0].Amount != 1500 {
			t.Errorf("permutation %d: refunds %+v, want the failed one of 15.00 by id", pi, got.Refunds)
		}
	}
}

// testRecordRefund: the admin's refund is recorded from Stripe's answer,
// and the webhooks that follow change nothing more.
func testRecordRefund(t *testing.T, s orders.Store) {
	svc := NewService(s, NewClock())
	o := paidOrder(t, s, svc, "ord_admin_refund")
	const t0 = 1_800_000_000
	r := orders.RefundInfo{ID: "re_admin", PaymentIntent: PaymentIntent(o), OrderID: o.ID, Amount: 1000, Status: "succeeded",
		Reason: "requested_by_customer", Created: time.Unix(t0, 0).UTC()}
	got, err := svc.RecordRefund(t.Context(), o.ID, r)
	if err != nil || got.AmountRefunded != 1000 || got.Status != orders.StatusPartiallyRefunded || len(got.Refunds) != 1 {
		t.Fatalf("RecordRefund = %+v, %v; want 1000 refunded, partially", got, err)
	}
	if again, _ := svc.RecordRefund(t.Context(), o.ID, r); again.AmountRefunded != 1000 {
		t.Errorf("recording the same answer twice: %d refunded, want 1000", again.AmountRefunded)
	}
	before := mustNotifications(t, s, o.ID)
	mustHandle(t, svc, ChargeRefunded("evt_after_admin", o, 1000, t0))
	mustHandle(t, svc, RefundUpdated("evt_after_admin2", o, "re_admin", 1000, "succeeded", t0, t0+1))
	after := mustOrder(t, s, o.ID)
	if after.AmountRefunded != 1000 || len(after.Refunds) != 1 {
		t.Errorf("after the webhooks: %d refunded, %d refunds; want 1000, 1", after.AmountRefunded, len(after.Refunds))
	}
	if n := len(mustNotifications(t, s, o.ID)); n != len(before) {
		t.Errorf("the webhooks queued %d more notifications, want none", n-len(before))
	}
	if _, err := svc.RecordRefund(t.Context(), "ord_missing", r); err == nil {
		t.Error("RecordRefund of a missing order: got nil error")
	}
}

func testDisputes(t *testing.T, s orders.Store) {
	ctx := t.Context()
	svc := NewService(s, NewClock())
	const t0 = 1_800_000_000
	for _, tt := range []struct {
		name    string
		closeAs string
		want    orders.Status
	}{
		{"won", "won", orders.StatusPaid},
		{"lost", "lost", orders.StatusDisputeLost},
		{"warning closed", "warning_closed", orders.StatusPaid},
	} {
		o := paidOrder(t, s, svc, "ord_dispute_"+tt.closeAs)
		got := mustHandle(t, svc, DisputeEvent("evt_d1_"+o.ID, orders.EventDisputeCreated, o, "needs_response", t0)).Order
		if got.Status != orders.StatusDisputed || got.Dispute == nil || got.Dispute.EvidenceDueBy == nil {
			t.Fatalf("%s: opened: %s %+v; want disputed with a deadline", tt.name, got.Status, got.Dispute)
		}
		open := openAlarms(t, svc, orders.AlarmDispute, o.ID)
		if open != 1 {
			t.Errorf("%s: %d open dispute alarms while a response is due, want 1", tt.name, open)
		}
		mustHandle(t, svc, DisputeEvent("evt_d2_"+o.ID, orders.EventDisputeUpdated, o, "under_review", t0+60))
		if n := openAlarms(t, svc, orders.AlarmDispute, o.ID); n != 0 {
			t.Errorf("%s: evidence submitted, %d dispute alarms still open, want 0", tt.name, n)
		}
		if got := mustOrder(t, s, o.ID); got.Status != orders.StatusDisputed {
			t.Errorf("%s: under review: %s, want disputed", tt.name, got.Status)
		}
		got = mustHandle(t, svc, DisputeEvent("evt_d3_"+o.ID, orders.EventDisputeClosed, o, tt.closeAs, t0+120)).Order
		if got.Status != tt.want {
			t.Errorf("%s: closed: %s, want %s", tt.name, got.Status, tt.want)
		}
		c := types(t, s, o.ID)
		if c["order.dispute_opened/webhook"] != 1 || c["order.dispute_opened/email_owner"] != 1 ||
			c["order.dispute_closed/webhook"] != 1 || c["order.dispute_closed/email_owner"] != 1 || c["order.dispute_opened/email_customer"] != 0 {
			t.Errorf("%s: notifications %v, want one opened and one closed, to the webhook and the owner", tt.name, c)
		}
	}
	// A won dispute returns the order to what it was: here partially refunded.
	o := paidOrder(t, s, svc, "ord_dispute_partial")
	mustHandle(t, svc, ChargeRefunded("evt_dp_r", o, 1000, t0))
	mustHandle(t, svc, DisputeEvent("evt_dp_1", orders.EventDisputeCreated, o, "needs_response", t0+1))
	if got := mustHandle(t, svc, DisputeEvent("evt_dp_2", orders.EventDisputeClosed, o, "won", t0+2)).Order; got.Status != orders.StatusPartiallyRefunded {
		t.Errorf("won after a partial refund: %s, want partially_refunded", got.Status)
	}
	// Any arrival order ends the same; the closed view wins over older ones.
	mk := []func(o orders.Order) orders.Event{
		func(o orders.Order) orders.Event {
			return DisputeEvent("evt_pa_"+o.ID, orders.EventDisputeCreated, o, "needs_response", t0)
		},
		func(o orders.Order) orders.Event {
			return DisputeEvent("evt_pb_"+o.ID, orders.EventDisputeFundsWithdrawn, o, "needs_response", t0)
		},
		func(o orders.Order) orders.Event {
			return DisputeEvent("evt_pc_"+o.ID, orders.EventDisputeUpdated, o, "under_review", t0+5)
		},
		func(o orders.Order) orders.Event {
			return DisputeEvent("evt_pd_"+o.ID, orders.EventDisputeClosed, o, "lost", t0+9)
		},
	}
	for pi, perm := range permutations(mk) {
		o := paidOrder(t, s, svc, fmt.Sprintf("ord_dperm%02d", pi))
		for _, ev := range perm {
			mustHandle(t, svc, ev(o))
		}
		if got := mustOrder(t, s, o.ID); got.Status != orders.StatusDisputeLost || got.Dispute.Status != "lost" {
			t.Errorf("permutation %d: %s (%s), want dispute_lost", pi, got.Status, got.Dispute.Status)
		}
		if n := openAlarms(t, svc, orders.AlarmDispute, o.ID); n != 0 {
			t.Errorf("permutation %d: %d dispute alarms left open after the decision", pi, n)
		}
	}
	// No dispute event makes an unpaid, expired or failed order look paid.
	for _, st := range []orders.Status{orders.StatusPending, orders.StatusExpired, orders.StatusFailed} {
		o := NewOrder("ord_dispute_unpaid_" + string(st))
		o.Status, o.Payment = st, st
		Seed(t, s, o)
		// The PaymentIntent is unknown to the order: matched by the order's
		// id cannot happen for a dispute, so give the order its PaymentIntent.
		write(t, s, func(ctx context.Context, tx orders.Tx) error {
			cur, err := tx.Order(ctx, o.ID)
			if err != nil {
				return err
			}
			cur.PaymentIntentID = PaymentIntent(o)
			return tx.UpdateOrder(ctx, &cur)
		})
		for i, status := range []string{"needs_response", "won"} {
			mustHandle(t, svc, DisputeEvent(fmt.Sprintf("evt_du%d_%s", i, o.ID), orders.EventDisputeUpdated, o, status, t0+int64(i)))
			if got := mustOrder(t, s, o.ID); got.Status != st {
				t.Errorf("%s order after a %s dispute event: %s, want %s", st, status, got.Status, st)
			}
		}
	}
	// A dispute of a payment the shop cannot find is an alarm.
	stranger := NewOrder("ord_never_stored")
	mustHandle(t, svc, DisputeEvent("evt_d_stranger", orders.EventDisputeCreated, stranger, "needs_response", t0))
	list, err := svc.Alarms(ctx, orders.AlarmFilter{Open: true})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, a := range list {
		found = found || (a.Kind == orders.AlarmDispute && a.Ref == "dp_"+stranger.ID && a.OrderID == "")
	}
	if !found {
		t.Error("no alarm for a dispute of an unknown payment")
	}
}

// openAlarms counts the open alarms of a kind about an order.
func openAlarms(t *testing.T, svc *orders.Service, kind, orderID string) int {
	t.Helper()
	list, err := svc.Alarms(t.Context(), orders.AlarmFilter{Open: true})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, a := range list {
		if a.Kind == kind && a.OrderID == orderID {
			n++
		}
	}
	return n
}

// testSecondSession: a session that is not the order's recorded one but
// names it is matched to it; paying an order already paid sends it to a
// person.
func testSecondSession(t *testing.T, s orders.Store) {
	var alarms atomic.Int32
	svc := NewService(s, NewClock(), orders.OnAlarm(func(orders.Alarm) { alarms.Add(1) }))
	second := func(sess *orders.Session) { sess.ID = sess.ID + "_second" }

	// The first session was abandoned; the second pays.
	o := NewOrder("ord_second_pays")
	Seed(t, s, o)
	mustHandle(t, svc, EventFor("evt_sp_x", orders.EventSessionExpired, o, second, func(s *orders.Session) { s.ID = "cs_stale" }))
	if got := mustOrder(t, s, o.ID); got.Status != orders.StatusPending {
		t.Errorf("another session's expiry moved the order to %s, want pending", got.Status)
	}
	got := mustHandle(t, svc, CompletedEvent("evt_sp", o, "paid", second)).Order
	if got.Status != orders.StatusPaid || got.SessionID != o.SessionID+"_second" || got.FulfilledAt == nil {
		t.Errorf("paid by a second session: %s, session %q, fulfilled %v; want paid by it, fulfilled", got.Status, got.SessionID, got.FulfilledAt)
	}
	if got, err := s.OrderBySession(t.Context(), o.SessionID+"_second"); err != nil || got.ID != o.ID {
		t.Errorf("the paying session does not find its order: %v", err)
	}

	// Paid twice: needs review, an alarm, fulfilled once.
	p := NewOrder("ord_paid_twice")
	Seed(t, s, p)
	mustHandle(t, svc, CompletedEvent("evt_pt1", p, "paid"))
	got = mustHandle(t, svc, CompletedEvent("evt_pt2", p, "paid", second)).Order
	if got.Status != orders.StatusNeedsReview || got.Review == "" || got.FulfilledAt == nil {
		t.Errorf("paid twice: %s (%q), fulfilled %v; want needs_review with a reason, fulfilled once", got.Status, got.Review, got.FulfilledAt)
	}
	if n := openAlarms(t, svc, orders.AlarmPaidTwice, p.ID); n != 1 {
		t.Errorf("%d paid_twice alarms, want 1", n)
	}
	if c := types(t, s, p.ID); c["order.paid/webhook"] != 1 {
		t.Errorf("notifications %v, want order.paid once", c)
	}
	// The same through the second session's success page.
	q := NewOrder("ord_paid_twice_page")
	Seed(t, s, q)
	mustHandle(t, svc, CompletedEvent("evt_ptp1", q, "paid"))
	read := CompletedEvent("", q, "paid", second).Session
	if got, err := svc.SyncSession(t.Context(), read); err != nil || got.Status != orders.StatusNeedsReview {
		t.Errorf("success page of the second session: %s, %v; want needs_review", got.Status, err)
	}
}

// testUnattributed: a paid session this shop did not create is an alarm
// with its id and amount; an unpaid one is not.
func testUnattributed(t *testing.T, s orders.Store) {
	svc := NewService(s, NewClock())
	stranger := NewOrder("ord_stranger")
	stranger.SessionID = "cs_payment_link"
	mustHandle(t, svc, CompletedEvent("evt_link_unpaid", stranger, "unpaid", func(s *orders.Session) { s.OrderID = "" }))
	mustHandle(t, svc, CompletedEvent("evt_link", stranger, "paid", func(s *orders.Session) { s.OrderID = "" }))
	mustHandle(t, svc, CompletedEvent("evt_link", stranger, "paid", func(s *orders.Session) { s.OrderID = "" }))
	list, err := svc.Alarms(t.Context(), orders.AlarmFilter{Open: true})
	if err != nil {
		t.Fatal(err)
	}
	var got []orders.Alarm
	for _, a := range list {
		if a.Kind == orders.AlarmUnattributedPayment {
			got = append(got, a)
		}
	}
	if len(got) != 1 || got[0].Ref != "cs_payment_link" || !strings.Contains(got[0].Detail, "$40.00") {
		t.Errorf("unattributed alarms %+v, want one about cs_payment_link for $40.00", got)
	}
}

// testAdaptivePricing: a payment converted to the shopper's currency is
// compared against the shop's currency and amounts.
func testAdaptivePricing(t *testing.T, s orders.Store) {
	svc := NewService(s, NewClock())
	body := func(id, version string, o orders.Order) []byte {
		return fmt.Appendf(nil, `{"id":%q,"object":"event","api_version":%q,"created":%d,"type":"checkout.session.completed","data":{"object":`+
			`{"id":%q,"object":"checkout.session","status":"complete","payment_status":"paid","client_reference_id":%q,`+
			`"amount_subtotal":3712,"amount_total":3712,"currency":"eur","currency_conversion":{"amount_subtotal":4000,"amount_total":4000,"fx_rate":"0.928","source_currency":"usd"}}}}`,
			id, version, NewClock().Now().Unix(), o.SessionID, o.ID)
	}
	old := NewOrder("ord_adaptive_old")
	Seed(t, s, old)
	if _, res, err := svc.HandleSigned(t.Context(), body("evt_ap_old", "2024-06-20", old)); err != nil || res.Order.Status != orders.StatusPaid || res.Order.AmountPaid != 4000 {
		t.Errorf("converted payment (2024-06-20): %+v, %v; want paid, 4000 in the shop's currency", res.Order, err)
	}
	// From 2025-03-31 currency is the shop's: eur 37.12 differs from usd 40.00.
	moved := NewOrder("ord_adaptive_new")
	Seed(t, s, moved)
	if _, res, err := svc.HandleSigned(t.Context(), body("evt_ap_new", "2025-03-31.basil", moved)); err != nil || res.Order.Status != orders.StatusNeedsReview {
		t.Errorf("the same figures in 2025-03-31: %s, %v; want needs_review", res.Order.Status, err)
	}
}

// testPlaceOrderReuseWindow: a pending order is re-used for a repeated
// request only while its session can still be open.
func testPlaceOrderReuseWindow(t *testing.T, s orders.Store) {
	clock := NewClock()
	svc := NewService(s, clock, orders.WithSessionTTL(30*time.Minute))
	first, _, err := svc.PlaceOrder(t.Context(), placement("tab"))
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(29 * time.Minute)
	if again, reused, _ := svc.PlaceOrder(t.Context(), placement("tab")); !reused || again.ID != first.ID {
		t.Errorf("29 minutes on: got %s reused=%v, want the first order", again.ID, reused)
	}
	clock.Advance(2 * time.Minute)
	if later, reused, _ := svc.PlaceOrder(t.Context(), placement("tab")); reused || later.ID == first.ID {
		t.Errorf("31 minutes on: got %s reused=%v, want a new order", later.ID, reused)
	}
}
