package e2e

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shopcheckout/shop/internal/orders"
)

// TestRefundFromAdmin pays for two T-shirts, refunds part of the order from
// the admin's order page in the browser, and checks the admin page, the
// shopper's order page and the refund email.
func TestRefundFromAdmin(t *testing.T) {
	st := newStackWith(t, stackOptions{mail: true})
	b := newBrowser(t, browserOptions{}, nil)
	shopper := "refund-" + strings.ToLower(rand.Text()[:10]) + "@example.com"

	id := startCheckout(t, b, st, "2")
	b.setValue(t, "#email", shopper)
	b.setValue(t, "#card", cardOK)
	if got := b.clickAndLoad(t, "#pay"); got != http.StatusOK {
		t.Fatalf("success page: got status %d, want 200", got)
	}
	orderPage := b.attr(t, "#order-page", "href")
	o := st.waitOrder(t, id, orders.StatusPaid)
	if o.PaymentIntentID == "" {
		t.Fatalf("the paid order has no PaymentIntent")
	}

	// The admin, signed in, refunds 15.00 of the 40.00.
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+adminPassword))
	b.setHeaders(t, map[string]any{"Authorization": auth})
	b.open(t, st.shopURL+"/admin/orders/"+o.ID)
	b.wantText(t, "#refundable", "$40.00")
	b.setValue(t, "#refund-form input[name=amount]", "1500")
	if got := b.clickAndLoad(t, "#refund-form button"); got != http.StatusOK {
		t.Fatalf("after the refund: got status %d, want the order page", got)
	}
	b.wantPage(t, st.shopURL+"/admin/orders/"+o.ID)
	b.wantText(t, "#status", string(orders.StatusPartiallyRefunded))
	b.wantText(t, "#amount-refunded", "$15.00")
	b.wantText(t, "#refunds", "$15.00")

	// Stripe's charge.refunded arrives and changes nothing more.
	st.waitWebhooks(t)
	got := st.order(t, id)
	if got.AmountRefunded != 1500 || got.Status != orders.StatusPartiallyRefunded || len(got.Refunds) != 1 {
		t.Errorf("after the webhook: %d refunded, %s, %d refunds; want 1500, partially_refunded, 1", got.AmountRefunded, got.Status, len(got.Refunds))
	}

	// The shopper's order page says so.
	b.setHeaders(t, map[string]any{})
	b.open(t, st.shopURL+orderPage)
	b.wantText(t, "#order-status", "part of the payment was refunded")

	// And the shopper's refund email arrived, once.
	msgs := st.mailbox.Wait(t, "to:"+shopper+" subject:refunded", 1, 20*time.Second)
	if len(msgs) != 1 {
		t.Fatalf("refund emails to %s: got %d, want 1", shopper, len(msgs))
	}
	m := st.mailbox.Message(t, msgs[0].ID)
	if !strings.Contains(m.Text, "$15.00") || !strings.Contains(m.Text, o.ID) {
		t.Errorf("refund email does not say what was refunded:\n%s", m.Text)
	}
}
