package stripesim

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestParseSession(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    session
		wantErr bool
	}{
		{
			name: "bracket notation",
			body: "mode=payment&success_url=https%3A%2F%2Fs&cancel_url=https%3A%2F%2Fc&client_reference_id=42&customer_email=a%40b.co&locale=de" +
				"&metadata[order_id]=42&metadata[note]=x&payment_intent_data[metadata][order_id]=42&payment_intent_data[description]=d" +
				"&line_items[1][price_data][currency]=USD&line_items[1][price_data][unit_amount]=250&line_items[1][quantity]=4" +
				"&line_items[1][price_data][product_data][name]=Mug&line_items[1][price_data][product_data][description]=Big" +
				"&line_items[0][price_data][currency]=usd&line_items[0][price_data][unit_amount_decimal]=1000.4" +
				"&line_items[0][price_data][product_data][name]=Cap",
			want: session{
				Mode: "payment", Currency: "usd", SuccessURL: "https://s", CancelURL: "https://c", ClientReferenceID: "42",
				CustomerEmail: "a@b.co", Locale: "de", Metadata: map[string]string{"order_id": "42", "note": "x"}, AmountTotal: 2000,
				PIMetadata: map[string]string{"order_id": "42"},
				LineItems: []lineItem{
					{Name: "Cap", Currency: "usd", UnitAmount: 1000, Quantity: 1},
					{Name: "Mug", Description: "Big", Currency: "usd", UnitAmount: 250, Quantity: 4},
				},
			},
		},
		{
			name: "price id",
			body: "mode=payment&currency=eur&line_items[0][price]=price_9&line_items[0][quantity]=2",
			want: session{Mode: "payment", Currency: "eur", Metadata: map[string]string{}, PIMetadata: map[string]string{},
				LineItems: []lineItem{{PriceID: "price_9", Name: "price_9", Currency: "eur", Quantity: 2}}},
		},
		{name: "negative quantity", body: "line_items[0][quantity]=-1", wantErr: true},
		{name: "index out of range", body: "line_items[100][quantity]=1", wantErr: true},
		{name: "overflow", body: "line_items[0][price_data][unit_amount]=9223372036854775807&line_items[0][quantity]=2", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form, err := url.ParseQuery(tt.body)
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseSession(form)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			for _, li := range got.LineItems {
				if !strings.HasPrefix(li.ID, "li_") || !strings.HasPrefix(li.PriceID, "price_") || !strings.HasPrefix(li.ProductID, "prod_") {
					t.Errorf("line item ids %q %q %q", li.ID, li.PriceID, li.ProductID)
				}
			}
			opts := cmp.Options{
				cmp.AllowUnexported(session{}),
				cmpopts.IgnoreFields(lineItem{}, "ID", "ProductID"),
				cmp.FilterPath(func(p cmp.Path) bool { // generated price ids
					return p.Last().String() == ".PriceID" && !strings.Contains(tt.body, "[price]=")
				}, cmp.Ignore()),
			}
			if diff := cmp.Diff(tt.want, got, opts); diff != "" {
				t.Errorf("session (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id := newID("cs_test_", 58)
		if len(id) != 66 || !strings.HasPrefix(id, "cs_test_") || seen[id] {
			t.Fatalf("bad or repeated id %q", id)
		}
		seen[id] = true
		if strings.Trim(id[8:], "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") != "" {
			t.Fatalf("id %q has non-alphanumerics", id)
		}
	}
}

// TestForgetOldestSession shows that a session forgotten beyond maxSessions
// takes its PaymentIntent, charge, refunds and dispute with it, so the
// simulator's memory stays bounded.
func TestForgetOldestSession(t *testing.T) {
	s, err := New(Config{MockURL: "http://127.0.0.1:1", PublicURL: "http://127.0.0.1:2"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	now := time.Unix(1_700_000_000, 0)
	first := &session{ID: "cs_first", AmountTotal: 4000, Currency: "usd", PIMetadata: map[string]string{}}
	s.addSession(first)
	s.mu.Lock()
	s.chargeLocked(first, now)
	rf, c, resp := s.refundLocked(refundRequest{PaymentIntent: first.PaymentIntent, Amount: 100, HasAmount: true}, nil, now)
	if rf == nil {
		s.mu.Unlock()
		t.Fatalf("refund: got %d %s, want a refund", resp.status, resp.body)
	}
	c.Dispute = "dp_first"
	s.disputes[c.Dispute] = &dispute{ID: c.Dispute}
	s.mu.Unlock()

	for i := range maxSessions {
		s.addSession(&session{ID: fmt.Sprintf("cs_%d", i)})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	got := map[string]int{"sessions": len(s.sessions), "piSession": len(s.piSession), "charges": len(s.charges),
		"refunds": len(s.refunds), "disputes": len(s.disputes)}
	want := map[string]int{"sessions": maxSessions, "piSession": 0, "charges": 0, "refunds": 0, "disputes": 0}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("state sizes after forgetting the oldest session (-want +got):\n%s", diff)
	}
}
