package web

import (
	"bytes"
	"regexp"
	"slices"
	"testing"
)

// TestHomeCache checks that GET /, served from the page rendered at start-up,
// is byte for byte what executing the template with the same token and the
// shopper's cart count gives: with no cart, a cart of three items and
// eleven, and a forged cart (empty).
func TestHomeCache(t *testing.T) {
	tokenRE := regexp.MustCompile(`name="checkout_token" value="([A-Za-z0-9_-]+)"`)
	carts := []struct {
		name   string
		cookie string
		count  int64
	}{
		{"no cart", "", 0},
		{"three items", signedCart("tshirt:2.mug:1"), 3},
		{"eleven items", signedCart("mug:1.tshirt:10"), 11},
		{"forged", "tshirt:5~AAAAAAAAAAAAAAAAAAAAAA", 0},
	}
	for _, demo := range []bool{false, true} {
		ts := newTestServer(t, func(c *configT) { c.DemoMode = demo })
		for _, c := range carts {
			for range 2 {
				var headers []string
				if c.cookie != "" {
					headers = []string{"Cookie", cartCookie + "=" + c.cookie}
				}
				got := []byte(readBody(t, ts.do(t, "GET", "/", nil, headers...)))
				m := tokenRE.FindAllSubmatch(got, -1)
				if len(m) != 2 || !bytes.Equal(m[0][1], m[1][1]) {
					t.Fatalf("demo=%v, %s: want the same token in both forms, got %q", demo, c.name, m)
				}
				var want bytes.Buffer
				v := ts.homeView(string(m[0][1]), ts.home.page.Load().stock)
				if err := ts.pages.byName["home"].ExecuteTemplate(&want, "layout", newFrame(v, cartBadge{Count: c.count})); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want.Bytes()) {
					t.Errorf("demo=%v, %s: cached page differs from the template's:\n%s\nwant:\n%s", demo, c.name, got, want.Bytes())
				}
			}
		}
	}
}

// TestCutAt cuts at every marker, in page order, whichever comes first.
func TestCutAt(t *testing.T) {
	parts, gaps := cutAt([]byte("aTbCcTd"), []byte("T"), []byte("C"))
	var got []string
	for _, p := range parts {
		got = append(got, string(p))
	}
	if want := []string{"a", "b", "c", "d"}; !slices.Equal(got, want) || len(gaps) != 3 || gaps[0] != gapToken || gaps[1] != gapCartCount || gaps[2] != gapToken {
		t.Errorf("cutAt: got parts %q gaps %v, want %q and [token count token]", got, gaps, want)
	}
}
