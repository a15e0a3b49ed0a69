package stripesim

import (
	"net/url"
	"strings"
	"testing"

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
				"&metadata[order_id]=42&metadata[note]=x" +
				"&line_items[1][price_data][currency]=USD&line_items[1][price_data][unit_amount]=250&line_items[1][quantity]=4" +
				"&line_items[1][price_data][product_data][name]=Mug&line_items[1][price_data][product_data][description]=Big" +
				"&line_items[0][price_data][currency]=usd&line_items[0][price_data][unit_amount_decimal]=1000.4" +
				"&line_items[0][price_data][product_data][name]=Cap",
			want: session{
				Mode: "payment", Currency: "usd", SuccessURL: "https://s", CancelURL: "https://c", ClientReferenceID: "42",
				CustomerEmail: "a@b.co", Locale: "de", Metadata: map[string]string{"order_id": "42", "note": "x"}, AmountTotal: 2000,
				LineItems: []lineItem{
					{Name: "Cap", Currency: "usd", UnitAmount: 1000, Quantity: 1},
					{Name: "Mug", Description: "Big", Currency: "usd", UnitAmount: 250, Quantity: 4},
				},
			},
		},
		{
			name: "price id",
			body: "mode=payment&currency=eur&line_items[0][price]=price_9&line_items[0][quantity]=2",
			want: session{Mode: "payment", Currency: "eur", Metadata: map[string]string{},
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
