package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/shopcheckout/shop/internal/catalog"
	"github.com/shopcheckout/shop/internal/orders"
	"github.com/shopcheckout/shop/internal/sqlite"
)

// viewport is a window the admin pages must fit.
type viewport struct {
	name          string
	width, height int64
	phone         bool // a touch screen that honours the page's viewport meta tag
}

// adminViewports are a laptop's window and a phone's screen.
var adminViewports = []viewport{
	{name: "1280×800", width: 1280, height: 800},
	{name: "390×844", width: 390, height: 844, phone: true},
}

// overflowScript lists what makes a page wider than the window: the
// document scrolling sideways, an element whose right edge is past the
// window's (unless an ancestor clips it, as a truncated cell does; only
// the innermost of those, which say what to fix), and a
// box that scrolls sideways inside itself (the document fits, but the
// owner would still have to scroll to read it). An empty list is a page
// that fits.
const overflowScript = `(() => {
  const root = document.documentElement, width = root.clientWidth, out = [];
  const name = el => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
    (typeof el.className === "string" && el.className ? "." + el.className.trim().split(/\s+/).join(".") : "") +
    ' "' + (el.textContent || "").trim().replace(/\s+/g, " ").slice(0, 50) + '"';
  const clipped = el => {
    for (let p = el.parentElement; p && p !== root; p = p.parentElement) {
      if (getComputedStyle(p).overflowX !== "visible") return true;
    }
    return false;
  };
  if (root.scrollWidth > width) out.push("the document is " + root.scrollWidth + "px wide in a " + width + "px window");
  const sticksOut = el => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.right > width + 0.5 && !clipped(el);
  };
  for (const el of document.body.querySelectorAll("*")) {
    const style = getComputedStyle(el);
    // Only the innermost elements past the edge: they say what to fix.
    if (sticksOut(el) && ![...el.children].some(sticksOut)) {
      out.push(name(el) + " ends at " + Math.round(el.getBoundingClientRect().right) + "px");
    }
    if ((style.overflowX === "auto" || style.overflowX === "scroll") && el.scrollWidth > el.clientWidth + 1) {
      out.push(name(el) + " scrolls sideways (" + el.scrollWidth + "px in " + el.clientWidth + "px)");
    }
    if (out.length >= 8) break;
  }
  return out;
})()`

// TestAdminPagesFitTheWindow seeds a back office with long data (long
// emails, product names and ids, refunds, a dispute, dead notifications,
// alarms of several kinds, orders with many events) and loads every admin
// page at a laptop's and a phone's size: none may be wider than the
// window, whether the document scrolls sideways or an element sticks out.
func TestAdminPagesFitTheWindow(t *testing.T) {
	st := newStackWith(t, stackOptions{products: layoutProducts()})
	seed := seedBackOffice(t, st)
	b := newBrowser(t, browserOptions{}, nil)
	b.setHeaders(t, map[string]any{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+adminPassword))})

	today := time.Now().UTC().Format(time.DateOnly)
	pages := []string{
		"/admin",
		"/admin/orders",
		"/admin/orders?status=" + string(orders.StatusPaid),
		"/admin/orders?status=" + string(orders.StatusDisputed),
		"/admin/orders?q=example-customer-domain.com&from=" + today + "&to=" + today,
		"/admin/orders?limit=3",
		"/admin/alarms",
		"/admin/alarms?all=1",
		"/admin/products",
	}
	for _, id := range seed.orderIDs {
		pages = append(pages, "/admin/orders/"+url.PathEscape(id))
	}
	// With SCREENSHOTS_DIR set, a few of them are kept, under names that
	// do not change from run to run.
	shots := map[string]string{"/admin/orders": "admin-orders", "/admin/alarms": "admin-alarms",
		"/admin/orders/" + url.PathEscape(seed.full): "admin-order"}
	for _, vp := range adminViewports {
		opts := []chromedp.EmulateViewportOption{}
		if vp.phone {
			opts = append(opts, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait)
		}
		b.do(t, chromedp.EmulateViewport(vp.width, vp.height, opts...))
		for _, page := range pages {
			b.open(t, st.shopURL+page)
			problems, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](overflowScript))
			if err != nil {
				t.Fatalf("%s at %s: measure: %v", page, vp.name, err)
			}
			for _, p := range problems {
				t.Errorf("%s at %s: %s; want the page to fit the window", page, vp.name, p)
			}
			if name, ok := shots[page]; ok {
				b.screenshot(t, fmt.Sprintf("%s-%d.png", name, vp.width))
			}
		}
	}
}

// layoutProducts is a catalogue of long names and ids, some with stock.
func layoutProducts() []catalog.Product {
	stock := func(n int64) *int64 { return &n }
	return []catalog.Product{
		{ID: "heavyweight-organic-cotton-tshirt-2026-limited-midnight-blue-xl", Name: "Heavyweight organic cotton T-shirt, limited 2026 edition in midnight blue with an embroidered pocket (XL)",
			Description: "A long description.", UnitAmount: 3450, Currency: "usd", Stock: stock(40)},
		{ID: "enamelcampingmugwithaverylongidentifierthatneverbreaksanywhere", Name: "Enamelled steel camping mug with a hand-painted pine forest and a name far too long for one line",
			UnitAmount: 1850, Currency: "usd", Stock: stock(5)},
		{ID: "sticker", Name: "Sticker", UnitAmount: 300, Currency: "usd"},
	}
}

// backOffice is what seedBackOffice made.
type backOffice struct {
	orderIDs []string
	// full is the order with the most on its page: every product, two
	// refunds (one failed) and dead notifications.
	full string
}

// seedBackOffice fills the shop through its orders service, as webhooks
// and the admin would (paid orders with long emails, refunds, a dispute,
// a payment made twice, a payment of no order, an unreadable event),
// then, straight in the store, what would take days: dead notifications
// and an oversold order's alarm.
func seedBackOffice(t testing.TB, st *stack) backOffice {
	t.Helper()
	ctx := context.Background()
	svc := st.shop.Orders
	products := layoutProducts()
	now := time.Now()
	var seed backOffice
	n := 0
	event := func(typ string, at time.Time, object map[string]any) []byte {
		n++
		b, err := json.Marshal(map[string]any{
			"id": fmt.Sprintf("evt_1PzLayoutTestEventWithALongIdentifier%04d", n), "object": "event", "api_version": "2023-10-16",
			"created": at.Unix(), "livemode": false, "type": typ, "data": map[string]any{"object": object},
		})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	apply := func(body []byte) {
		t.Helper()
		if _, _, err := svc.HandleSigned(ctx, body); err != nil {
			t.Fatalf("seed event: %v", err)
		}
	}
	// paid places an order of the products' lines and pays it through a
	// Checkout Session; it returns the order and its PaymentIntent.
	paid := func(i int, lines ...int64) (orders.Order, string) {
		t.Helper()
		var items []orders.Item
		var total int64
		for j, q := range lines {
			if q == 0 {
				continue
			}
			p := products[j]
			items = append(items, orders.Item{ProductID: p.ID, Name: p.Name, UnitAmount: p.UnitAmount, Quantity: q})
			total += p.UnitAmount * q
		}
		o, _, err := svc.PlaceOrder(ctx, orders.Placement{Items: items, Currency: "usd"})
		if err != nil {
			t.Fatalf("place order: %v", err)
		}
		sid := fmt.Sprintf("cs_test_b1LayoutSessionIdentifierThatIsLongerThanAnyScreenIsWide%04d", i)
		if err := svc.AttachSession(ctx, o.ID, sid); err != nil {
			t.Fatal(err)
		}
		pi := fmt.Sprintf("pi_3PzLayoutPaymentIntentIdentifier%04d", i)
		apply(event(orders.EventSessionCompleted, now.Add(-time.Duration(48-i)*time.Hour), map[string]any{
			"id": sid, "object": "checkout.session", "mode": "payment", "status": "complete", "payment_status": "paid",
			"amount_subtotal": total, "amount_total": total, "currency": "usd", "client_reference_id": o.ID,
			"metadata":         map[string]string{"order_id": o.ID},
			"customer_details": map[string]any{"email": fmt.Sprintf("a.very.long.name.for.a.shopper+order-%04d@subdomain.of.an.example-customer-domain.com", i)},
			"payment_intent":   pi,
		}))
		seed.orderIDs = append(seed.orderIDs, o.ID)
		return o, pi
	}
	charge := func(o orders.Order, pi string, paidAmount, refunded int64) map[string]any {
		return map[string]any{"id": "ch_" + strings.TrimPrefix(pi, "pi_"), "object": "charge", "payment_intent": pi,
			"amount": paidAmount, "amount_refunded": refunded, "currency": "usd", "metadata": map[string]string{"order_id": o.ID}}
	}

	// A plain paid order, and one with every product.
	paid(1, 1)
	full, fullPI := paid(2, 2, 1, 3)
	seed.full = full.ID
	fullTotal := int64(2*3450 + 1850 + 3*300)

	// Two refunds (one failed), with the charge's and the refunds' events.
	for k, r := range []orders.RefundInfo{
		{ID: "re_3PzLayoutRefundIdentifierNumberOne0001", Amount: 1850, Status: "succeeded", Reason: "requested_by_customer"},
		{ID: "re_3PzLayoutRefundIdentifierNumberTwo0002", Amount: 900, Status: "failed"},
	} {
		r.PaymentIntent, r.Created = fullPI, now.Add(-time.Duration(20-k)*time.Hour)
		if _, err := svc.RecordRefund(ctx, full.ID, r); err != nil {
			t.Fatalf("refund: %v", err)
		}
		apply(event(orders.EventRefundUpdated, r.Created.Add(time.Minute), map[string]any{
			"id": r.ID, "object": "refund", "amount": r.Amount, "status": r.Status, "reason": r.Reason, "created": r.Created.Unix(),
			"payment_intent": fullPI, "charge": "ch_" + strings.TrimPrefix(fullPI, "pi_"), "metadata": map[string]string{"order_id": full.ID},
		}))
	}
	apply(event(orders.EventChargeRefunded, now.Add(-19*time.Hour), charge(full, fullPI, fullTotal, 1850)))

	// A disputed order, its dispute updated twice.
	_, disputedPI := paid(3, 1, 1)
	for k, status := range []string{"warning_needs_response", "needs_response", "needs_response"} {
		typ := orders.EventDisputeCreated
		if k > 0 {
			typ = orders.EventDisputeUpdated
		}
		apply(event(typ, now.Add(-time.Duration(10-k)*time.Hour), map[string]any{
			"id": "dp_1PzLayoutDisputeIdentifier0003", "object": "dispute", "charge": "ch_" + strings.TrimPrefix(disputedPI, "pi_"),
			"payment_intent": disputedPI, "amount": 3450 + 1850, "currency": "usd", "status": status, "reason": "product_not_received",
			"evidence_details": map[string]any{"due_by": now.Add(6 * 24 * time.Hour).Unix()},
		}))
	}

	// An order paid twice, through a second session.
	twice, _ := paid(4, 0, 0, 2)
	apply(event(orders.EventSessionCompleted, now.Add(-30*time.Hour), map[string]any{
		"id": "cs_test_b1LayoutSecondSessionOfTheSameOrderWhichWasPaidTwice0004", "object": "checkout.session", "mode": "payment",
		"status": "complete", "payment_status": "paid", "amount_subtotal": 600, "amount_total": 600, "currency": "usd",
		"client_reference_id": twice.ID, "metadata": map[string]string{"order_id": twice.ID},
		"customer_details": map[string]any{"email": "someone.who.pays.twice.for.the.same.order@example-customer-domain.com"},
		"payment_intent":   "pi_3PzLayoutSecondPaymentIntent0004",
	}))

	// A payment of a session this shop did not create, a dispute of a
	// payment it cannot find, and an event it cannot read.
	apply(event(orders.EventSessionCompleted, now.Add(-5*time.Hour), map[string]any{
		"id": "cs_live_b1AForeignSessionFromAPaymentLinkWithAVeryLongIdentifier", "object": "checkout.session", "mode": "payment",
		"status": "complete", "payment_status": "paid", "amount_subtotal": 12900, "amount_total": 12900, "currency": "usd",
	}))
	apply(event(orders.EventDisputeCreated, now.Add(-4*time.Hour), map[string]any{
		"id": "dp_1PzLayoutDisputeOfAnUnknownPayment0005", "object": "dispute", "charge": "ch_unknown", "payment_intent": "pi_unknown",
		"amount": 4200, "currency": "usd", "status": "needs_response", "reason": "fraudulent",
		"evidence_details": map[string]any{"due_by": now.Add(9 * 24 * time.Hour).Unix()},
	}))
	apply([]byte(fmt.Sprintf(`{"id":"evt_1PzLayoutUnreadableEventWithAnAmountThatIsAString","object":"event","created":%d,"type":"checkout.session.completed","data":{"object":{"id":"cs_x","object":"checkout.session","amount_total":"4000"}}}`, now.Unix())))

	// More paid orders, and some still waiting for payment.
	for i := 5; i <= 8; i++ {
		paid(i, 1, 0, int64(i))
	}
	for i := 0; i < 3; i++ {
		o, _, err := svc.PlaceOrder(ctx, orders.Placement{Currency: "usd", Items: []orders.Item{{ProductID: products[2].ID, Name: products[2].Name, UnitAmount: 300, Quantity: 1}}})
		if err != nil {
			t.Fatal(err)
		}
		seed.orderIDs = append(seed.orderIDs, o.ID)
	}

	// What takes days: the notifications of two orders ran out of
	// attempts, and an order was oversold.
	store, err := sqlite.Open(ctx, st.dbPath)
	if err != nil {
		t.Fatalf("open the shop's store: %v", err)
	}
	defer store.Close()
	dead, err := svc.Notifications(ctx, []string{full.ID, seed.orderIDs[0]})
	if err != nil || len(dead) == 0 {
		t.Fatalf("notifications to kill: %v, %v", dead, err)
	}
	err = store.Write(ctx, func(ctx context.Context, tx orders.Tx) error {
		for _, d := range dead {
			n, err := tx.Notification(ctx, d.ID)
			if err != nil {
				return err
			}
			n.Status, n.NextAttempt, n.Attempts = orders.NotificationDead, nil, 80
			n.LastError = "POST https://fulfilment.example-warehouse-partner.com/webhooks/shop/orders/incoming: 502 Bad Gateway: upstream connect error or disconnect/reset before headers; reset reason: connection termination"
			if err := tx.UpdateNotification(ctx, n); err != nil {
				return err
			}
		}
		return tx.InsertAlarm(ctx, orders.Alarm{ID: "alm_layoutoversoldalarmwithalongidentifier", Kind: orders.AlarmOversold,
			Ref: seed.orderIDs[len(seed.orderIDs)-4], OrderID: seed.orderIDs[len(seed.orderIDs)-4], CreatedAt: now.Add(-time.Hour),
			Detail: "The payment landed after the hold ended and " + products[1].Name + " is sold out (0 left, 3 wanted)."})
	})
	if err != nil {
		t.Fatalf("seed dead notifications and an oversold alarm: %v", err)
	}
	alarms, err := svc.Alarms(ctx, orders.AlarmFilter{})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, a := range alarms {
		kinds[a.Kind] = true
	}
	for _, k := range []string{orders.AlarmDeadNotification, orders.AlarmUnreadableEvent, orders.AlarmUnattributedPayment,
		orders.AlarmPaidTwice, orders.AlarmDispute, orders.AlarmOversold} {
		if !kinds[k] {
			t.Errorf("seeded alarms: no %s among %v", k, kinds)
		}
	}
	// One resolved alarm, for ?all=1.
	for _, a := range alarms {
		if a.Kind == orders.AlarmUnattributedPayment {
			if _, err := svc.ResolveAlarm(ctx, a.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	return seed
}
