package stripesim_test

import (
	"context"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/shopcheckout/shop/internal/testenv"
)

// TestStripeJSInBrowser mounts the embedded page with the stand-in in a
// shop page of another origin, pays in the frame, and sees the shop's page
// go to the return_url, or onComplete called when the session does not
// redirect.
func TestStripeJSInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test")
	}
	path := testenv.Chromium(t)
	h := newHarness(t, options{products: testCatalog()})

	// shopPage is a shop's page that mounts Embedded Checkout with the
	// stand-in, as the Stripe docs have it.
	shopPage := template.Must(template.New("shop").Parse(`<!DOCTYPE html>
<html><head><title>shop</title><script src="{{.Sim}}/v3/"></script></head>
<body><h1>Checkout</h1><div id="checkout"></div>
<script>
var stripe = Stripe("pk_test_123");
stripe.initEmbeddedCheckout({
  fetchClientSecret: function () { return fetch("/secret").then(function (r) { return r.text(); }); },
  onComplete: function () { document.title = "onComplete called"; }
}).then(function (checkout) {
  checkout.mount("#checkout");
  return stripe.initEmbeddedCheckout({ clientSecret: "x_secret_y" }).catch(function (err) {
    document.body.setAttribute("data-second", err.name);
  });
});
</script></body></html>`))

	// The shop is on localhost, the simulator on 127.0.0.1: two origins.
	var mu sync.Mutex
	secret := ""
	shop := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/checkout":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_ = shopPage.Execute(w, map[string]string{"Sim": h.url})
		case "/secret":
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprint(w, secret)
		case "/return":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, `<!DOCTYPE html><title>returned</title><p id="returned">back at the shop</p>`)
		default:
			http.NotFound(w, r)
		}
	}))
	shop.Start()
	t.Cleanup(shop.Close)
	_, port, _ := net.SplitHostPort(shop.Listener.Addr().String())
	shopURL := "http://localhost:" + port

	allocOpts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU)
	base, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(base, allocOpts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelTab)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	var pmu sync.Mutex
	var problems []string
	record := func(ev any) {
		pmu.Lock()
		defer pmu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			problems = append(problems, "exception: "+ev.ExceptionDetails.Text)
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				problems = append(problems, "console.error")
			}
		}
	}
	if err := chromedp.Listen(ctx, record); err != nil {
		t.Fatalf("listen: %v", err)
	}

	// frame attaches to the embedded page for a client secret: the
	// simulator's origin is another site, so Chrome runs it as a target of
	// its own.
	frame := func(t *testing.T, clientSecret string) context.Context {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			infos, err := chromedp.Targets(ctx)
			if err != nil {
				t.Fatalf("targets: %v", err)
			}
			for _, info := range infos {
				if info.Type == "iframe" && strings.HasPrefix(info.URL, h.url+"/embedded/"+clientSecret+"?") {
					fctx, cancel := chromedp.NewContext(ctx, chromedp.WithTargetID(info.TargetID), chromedp.WithDetachOnCancel())
					t.Cleanup(cancel)
					return fctx
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no embedded checkout frame among %d targets", len(infos))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	checkout := func(t *testing.T, form url.Values) (sessionID string) {
		t.Helper()
		s := h.create(t, form)
		mu.Lock()
		secret = s.ClientSecret
		mu.Unlock()
		step, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		if err := chromedp.Do(step, chromedp.Navigate(shopURL+"/checkout"), chromedp.WaitVisible(chromedp.CSS("#checkout iframe"))); err != nil {
			t.Fatalf("mount: %v", err)
		}
		second, err := chromedp.Run(step, chromedp.Poll[string](`document.body.getAttribute("data-second")`))
		if err != nil || second != "IntegrationError" {
			t.Errorf("a second initEmbeddedCheckout: got %q (%v), want an IntegrationError", second, err)
		}
		fctx := frame(t, s.ClientSecret)
		fstep, fcancel := context.WithTimeout(fctx, 15*time.Second)
		defer fcancel()
		err = chromedp.Do(fstep,
			chromedp.WaitVisible(chromedp.CSS("#email")),
			chromedp.SetValue(chromedp.CSS("#email"), "buyer@example.com"),
			chromedp.Click(chromedp.CSS("#pay")),
		)
		if err != nil {
			t.Fatalf("pay in the frame: %v", err)
		}
		if d := h.hook.next(t); d.event.Type != "checkout.session.completed" || d.event.Data.Object["id"] != s.ID {
			t.Errorf("event %s about %v, want checkout.session.completed about %s", d.event.Type, d.event.Data.Object["id"], s.ID)
		}
		return s.ID
	}

	t.Run("redirects to return_url", func(t *testing.T) {
		form := embeddedForm(item{price: "price_tee", qty: 1})
		form.Set("return_url", shopURL+"/return?session_id={CHECKOUT_SESSION_ID}")
		id := checkout(t, form)
		step, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		if err := chromedp.Do(step, chromedp.WaitVisible(chromedp.CSS("#returned"))); err != nil {
			t.Fatalf("back at the shop: %v", err)
		}
		if loc, err := chromedp.Run(step, chromedp.Location()); err != nil || loc != shopURL+"/return?session_id="+id {
			t.Errorf("after paying: at %q (%v), want %s/return?session_id=%s", loc, err, shopURL, id)
		}
	})
	t.Run("calls onComplete when it does not redirect", func(t *testing.T) {
		form := embeddedForm(item{price: "price_tee", qty: 1})
		form.Del("return_url")
		form.Set("redirect_on_completion", "never")
		checkout(t, form)
		step, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		if _, err := chromedp.Run(step, chromedp.Poll[bool](`document.title === "onComplete called"`)); err != nil {
			t.Fatalf("onComplete: %v", err)
		}
		if loc, err := chromedp.Run(step, chromedp.Location()); err != nil || loc != shopURL+"/checkout" {
			t.Errorf("after paying: at %q (%v), want still %s/checkout", loc, err, shopURL)
		}
	})
	pmu.Lock()
	defer pmu.Unlock()
	if len(problems) > 0 {
		t.Errorf("the shop's page reported problems: %v", problems)
	}
}
