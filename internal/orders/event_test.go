package orders_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shopcheckout/shop/internal/orders"
)

func ptr(n int64) *int64 { return &n }

// TestParseSession reads sessions as Stripe sends them, in an event or a
// retrieve answer: the one parser both paths use.
func TestParseSession(t *testing.T) {
	for _, tt := range []struct {
		name string
		json string
		want orders.Session
	}{
		{"paid", `{"id":"cs_1","object":"checkout.session","status":"complete","payment_status":"paid","amount_subtotal":4000,
			"amount_total":4300,"currency":"usd","client_reference_id":"ord_1","customer_details":{"email":"a@example.com"}}`,
			orders.Session{ID: "cs_1", OrderID: "ord_1", Status: "complete", PaymentStatus: "paid", AmountSubtotal: ptr(4000),
				AmountTotal: ptr(4300), Currency: "usd", Email: "a@example.com"}},
		{"null amounts stay unknown, not zero", `{"id":"cs_2","object":"checkout.session","status":"open","amount_subtotal":null,"amount_total":null,"currency":null}`,
			orders.Session{ID: "cs_2", Status: "open"}},
		{"order id from metadata", `{"id":"cs_3","object":"checkout.session","client_reference_id":null,"metadata":{"order_id":"ord_3"}}`,
			orders.Session{ID: "cs_3", OrderID: "ord_3"}},
		{"customer_email when no details", `{"id":"cs_4","object":"checkout.session","customer_email":"b@example.com","customer_details":null}`,
			orders.Session{ID: "cs_4", Email: "b@example.com"}},
		{"details win over customer_email", `{"id":"cs_5","object":"checkout.session","customer_email":"b@example.com","customer_details":{"email":"c@example.com"}}`,
			orders.Session{ID: "cs_5", Email: "c@example.com"}},
	} {
		got, err := orders.ParseSession([]byte(tt.json), orders.PinnedAPIVersion)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s: mismatch (-want +got):\n%s", tt.name, diff)
		}
	}
	for name, bad := range map[string]string{
		"not JSON":       `{`,
		"another object": `{"id":"pi_1","object":"payment_intent"}`,
		"no id":          `{"object":"checkout.session"}`,
		"null":           `null`,
	} {
		if _, err := orders.ParseSession([]byte(bad), orders.PinnedAPIVersion); err == nil {
			t.Errorf("%s: got nil error, want one", name)
		}
	}
}
