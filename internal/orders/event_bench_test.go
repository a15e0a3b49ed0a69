package orders

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkParseEvent decodes a checkout.session.completed the size of a
// real one: the webhook does it once per event.
func BenchmarkParseEvent(b *testing.B) {
	body := fmt.Appendf(nil, `{"id":"evt_1","object":"event","api_version":"2023-10-16","created":1700000000,"type":"checkout.session.completed",
"livemode":false,"pending_webhooks":1,"request":{"id":null,"idempotency_key":null},
"data":{"object":{"id":"cs_test_1","object":"checkout.session","after_expiration":null,"allow_promotion_codes":null,
"amount_subtotal":2000,"amount_total":2000,"automatic_tax":{"enabled":false,"liability":null,"status":null},
"billing_address_collection":null,"cancel_url":"http://localhost:8000/cancelled","client_reference_id":"ord_1",
"consent":null,"created":1700000000,"currency":"usd","custom_fields":[],"custom_text":{"shipping_address":null,"submit":null},
"customer":null,"customer_creation":"if_required","customer_details":{"address":{"city":null,"country":"US","line1":null,
"line2":null,"postal_code":"94103","state":null},"email":"shopper@example.com","name":"Jenny Rosen","phone":null,
"tax_exempt":"none","tax_ids":[]},"customer_email":null,"expires_at":1700086400,"invoice":null,"livemode":false,
"locale":"auto","metadata":{"order_id":"ord_1"},"mode":"payment","payment_intent":"pi_1","payment_method_types":["card"],
"payment_status":"paid","shipping_details":null,"status":"complete","submit_type":null,
"success_url":"http://localhost:8000/success?session_id={CHECKOUT_SESSION_ID}",
"total_details":{"amount_discount":0,"amount_shipping":0,"amount_tax":0},"url":null,"pad":%q}}}`, strings.Repeat("x", 600))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseEvent(body); err != nil {
			b.Fatal(err)
		}
	}
}
