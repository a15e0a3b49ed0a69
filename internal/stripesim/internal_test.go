package stripesim

import (
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
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
				Mode: "payment", UIMode: "hosted", SuccessURL: "https://s", CancelURL: "https://c", ClientReferenceID: "42",
				CustomerEmail: "a@b.co", Locale: "de", Metadata: map[string]string{"order_id": "42", "note": "x"},
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
			want: session{Mode: "payment", UIMode: "hosted", Currency: "eur", Metadata: map[string]string{}, PIMetadata: map[string]string{},
				LineItems: []lineItem{{PriceID: "price_9", Quantity: 2}}},
		},
		{
			name: "embedded",
			body: "mode=payment&ui_mode=embedded&return_url=https%3A%2F%2Fr&redirect_on_completion=if_required",
			want: session{Mode: "payment", UIMode: "embedded", ReturnURL: "https://r", RedirectOnCompletion: "if_required",
				Metadata: map[string]string{}, PIMetadata: map[string]string{}, LineItems: []lineItem{}},
		},
		{name: "negative quantity", body: "line_items[0][quantity]=-1", wantErr: true},
		{name: "index out of range", body: "line_items[100][quantity]=1", wantErr: true},
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
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(session{})); diff != "" {
				t.Errorf("session (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSettleLines shows how a session's lines become one currency and a
// total, and what is refused.
func TestSettleLines(t *testing.T) {
	tests := []struct {
		name         string
		currency     string
		lines        []lineItem
		wantCurrency string
		wantTotal    int64
		wantErr      string // in the error answer
	}{
		{"from the first line", "", []lineItem{{Currency: "usd", UnitAmount: 1000, Quantity: 1}, {Currency: "usd", UnitAmount: 250, Quantity: 4}}, "usd", 2000, ""},
		{"session currency fills lines", "eur", []lineItem{{UnitAmount: 300, Quantity: 2}}, "eur", 600, ""},
		{"mixed currencies", "", []lineItem{{Currency: "usd", UnitAmount: 1, Quantity: 1}, {Currency: "eur", UnitAmount: 1, Quantity: 1}}, "", 0, "line item 1 is in eur"},
		{"overflow", "", []lineItem{{Currency: "usd", UnitAmount: math.MaxInt64, Quantity: 2}}, "", 0, "overflows"},
		{"total overflows", "", []lineItem{{Currency: "usd", UnitAmount: math.MaxInt64, Quantity: 1}, {Currency: "usd", UnitAmount: 1, Quantity: 1}}, "", 0, "overflows"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ss := session{Currency: tt.currency, LineItems: tt.lines}
			resp, ok := settleLines(&ss)
			if tt.wantErr != "" {
				if ok || resp.status != 400 || !strings.Contains(string(resp.body), tt.wantErr) {
					t.Errorf("got %v %d %s, want a 400 saying %q", ok, resp.status, resp.body, tt.wantErr)
				}
				return
			}
			if !ok || ss.Currency != tt.wantCurrency || ss.AmountTotal != tt.wantTotal {
				t.Errorf("got %v, currency %q total %d; want %q %d", ok, ss.Currency, ss.AmountTotal, tt.wantCurrency, tt.wantTotal)
			}
			for i, li := range ss.LineItems {
				if li.Currency != tt.wantCurrency {
					t.Errorf("line %d currency %q, want %q", i, li.Currency, tt.wantCurrency)
				}
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

// TestCatalogueBounds shows that the simulator refuses to make more
// Products, Prices and Payment Links than it keeps, through the API and
// from seeds.
func TestCatalogueBounds(t *testing.T) {
	mock := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{}`)
	}))
	t.Cleanup(mock.Close)
	s, err := New(Config{MockURL: mock.URL, PublicURL: "http://127.0.0.1:2", Products: []SeedProduct{
		{ID: "prod_a", Name: "A", Prices: []SeedPrice{{ID: "price_a", UnitAmount: 100, Currency: "usd"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	s.mu.Lock()
	for i := len(s.products); i < maxProducts; i++ {
		s.addProductLocked(&product{ID: fmt.Sprintf("prod_%d", i), Name: "P", Active: true})
	}
	for i := len(s.prices); i < maxPrices; i++ {
		s.addPriceLocked(&price{ID: fmt.Sprintf("price_%d", i), Product: "prod_a", Currency: "usd", Active: true})
	}
	for i := len(s.links); i < maxPaymentLinks; i++ {
		id := fmt.Sprintf("plink_%d", i)
		s.links[id] = &paymentLink{ID: id}
		s.linkOrder = append(s.linkOrder, id)
	}
	s.mu.Unlock()

	for _, tc := range []struct{ path, body, want string }{
		{"/v1/products", "name=B", "at most 10000 products"},
		{"/v1/prices", "product=prod_a&unit_amount=1&currency=usd", "at most 10000 prices"},
		{"/v1/payment_links", "line_items[0][price]=price_a&line_items[0][quantity]=1", "at most 10000 payment links"},
	} {
		req := httptest.NewRequest(http.MethodPost, tc.path, strings.NewReader(tc.body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Bearer sk_test_123")
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), tc.want) {
			t.Errorf("POST %s when full: got %d %s, want 400 saying %q", tc.path, rec.Code, rec.Body, tc.want)
		}
	}
	s.mu.Lock()
	sizes := []int{len(s.products), len(s.prices), len(s.links)}
	s.mu.Unlock()
	if diff := cmp.Diff([]int{maxProducts, maxPrices, maxPaymentLinks}, sizes); diff != "" {
		t.Errorf("sizes (-want +got):\n%s", diff)
	}

	seeds := make([]SeedProduct, maxProducts+1)
	for i := range seeds {
		seeds[i] = SeedProduct{Name: "P"}
	}
	if _, err := New(Config{MockURL: mock.URL, PublicURL: "http://127.0.0.1:2", Products: seeds}); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("New with %d seeds: got %v, want an error", len(seeds), err)
	}
}

func TestRenderStripeJS(t *testing.T) {
	js, err := renderStripeJS("https://sim.example:8443/stripe")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`var SIM_URL = "https://sim.example:8443/stripe";`, `var SIM_ORIGIN = "https://sim.example:8443";`} {
		if !strings.Contains(string(js), want) {
			t.Errorf("stand-in lacks %s", want)
		}
	}
	// A URL cannot break out of its string.
	js, err = renderStripeJS(`http://h/"</script>`)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(js), `"</script>`) || !strings.Contains(string(js), `\"\u003c/script\u003e`) {
		t.Errorf("the URL is not escaped:\n%s", js[:400])
	}
}

func TestParentOrigin(t *testing.T) {
	tests := []struct{ in, want string }{
		{"http://localhost:8000", "http://localhost:8000"},
		{"https://shop.example/", "https://shop.example"},
		{"", ""},
		{"javascript:alert(1)", ""},
		{"https://shop.example/path", ""},
		{"https://u:p@shop.example", ""},
		{"https://shop.example?x=1", ""},
		{"null", ""},
	}
	for _, tt := range tests {
		if got := parentOrigin(tt.in); got != tt.want {
			t.Errorf("parentOrigin(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
