package web

import (
	"bytes"
	"regexp"
	"testing"
)

// TestHomeCache checks that GET /, served from the page rendered at start-up,
// is byte for byte what executing the template with the same token gives.
func TestHomeCache(t *testing.T) {
	tokenRE := regexp.MustCompile(`name="checkout_token" value="([A-Za-z0-9_-]+)"`)
	for _, demo := range []bool{false, true} {
		ts := newTestServer(t, func(c *configT) { c.DemoMode = demo })
		for range 3 {
			got := []byte(readBody(t, ts.do(t, "GET", "/", nil)))
			m := tokenRE.FindAllSubmatch(got, -1)
			if len(m) != 2 || !bytes.Equal(m[0][1], m[1][1]) {
				t.Fatalf("demo=%v: want the same token in both forms, got %q", demo, m)
			}
			var want bytes.Buffer
			if err := ts.pages.byName["home"].ExecuteTemplate(&want, "layout", ts.homeView(string(m[0][1]))); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want.Bytes()) {
				t.Errorf("demo=%v: cached page differs from the template's:\n%s\nwant:\n%s", demo, got, want.Bytes())
			}
		}
	}
}
