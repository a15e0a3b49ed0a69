package e2e

import (
	"cmp"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/shopcheckout/shop/internal/testenv"
)

// testTimeout bounds each test, browser included.
const testTimeout = 60 * time.Second

// stepTimeout bounds one wait for an element or a page, so that a missing
// one fails fast and says which.
const stepTimeout = 15 * time.Second

// Viewport of every page, and of the screenshots.
const viewportWidth, viewportHeight = 1200, 900

// stripeJSStub stands in for https://js.stripe.com/v3/: the tests have no
// network, and the shop only needs window.Stripe to exist.
const stripeJSStub = `window.Stripe = function (key) { return { key: key }; };`

// browserOptions change how newBrowser sets up the tab.
type browserOptions struct {
	blockStripeJS bool // fail requests to js.stripe.com instead of serving the stub
	noScript      bool // run the pages with JavaScript disabled
}

// problem is a console error, an uncaught exception or an error entry of
// the browser log (where CSP violations and failed loads show up).
type problem struct {
	kind, text, url string
}

func (p problem) String() string {
	if p.url == "" {
		return p.kind + ": " + p.text
	}
	return p.kind + ": " + p.text + " (" + p.url + ")"
}

// browser is one tab of a fresh headless Chromium.
type browser struct {
	ctx context.Context

	mu       sync.Mutex
	problems []problem
}

// newBrowser starts headless Chromium with a fresh profile, intercepts
// https://js.stripe.com/*, and records every problem the pages report. When
// the test ends it fails the test on any problem that ignore does not
// excuse (ignore may be nil), then closes the browser.
func newBrowser(t testing.TB, opts browserOptions, ignore func(problem) bool) *browser {
	t.Helper()
	// The defaults already run headless with no first-run UI, background
	// networking or sync. No UserDataDir: the allocator makes a fresh
	// profile directory for this browser and removes it afterwards.
	allocOpts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(testenv.Chromium(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.WindowSize(viewportWidth, viewportHeight),
	)
	base, cancelBase := context.WithTimeout(context.Background(), testTimeout)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(base, allocOpts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	b := &browser{ctx: ctx}
	t.Cleanup(func() {
		if t.Failed() {
			b.logPage(t)
		}
		b.assertNoProblems(t, ignore)
		cancelTab()
		cancelAlloc()
		cancelBase()
	})

	if err := chromedp.Do(ctx); err != nil { // starts the browser and opens the tab
		t.Fatalf("start Chromium: %v", err)
	}
	if err := chromedp.Listen(ctx, b.record); err != nil {
		t.Fatalf("listen to the console: %v", err)
	}

	paused := chromedp.Events(ctx, fetch.RequestPaused)
	go func() {
		for ev, err := range paused {
			if err != nil {
				return
			}
			if err := answerStripeJS(ctx, ev, opts.blockStripeJS); err != nil && ctx.Err() == nil {
				b.add(problem{kind: "interception", text: err.Error(), url: ev.Request.URL})
			}
		}
	}()
	_, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{
		Patterns: []*fetch.RequestPattern{{URLPattern: "https://js.stripe.com/*"}},
	})
	if err != nil {
		t.Fatalf("intercept js.stripe.com: %v", err)
	}
	if _, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: opts.noScript}); err != nil {
		t.Fatalf("set script execution: %v", err)
	}
	b.do(t, chromedp.EmulateViewport(viewportWidth, viewportHeight))
	return b
}

// answerStripeJS serves the stub, or fails the request as an ad blocker
// would.
func answerStripeJS(ctx context.Context, ev fetch.EventRequestPaused, block bool) error {
	if block {
		_, err := chromedp.Call(ctx, fetch.FailRequest, fetch.FailRequestParams{
			RequestID: ev.RequestID, ErrorReason: network.ErrorReasonBlockedByClient,
		})
		return err
	}
	_, err := chromedp.Call(ctx, fetch.FulfillRequest, fetch.FulfillRequestParams{
		RequestID:    ev.RequestID,
		ResponseCode: 200,
		ResponseHeaders: []*fetch.HeaderEntry{
			{Name: "Content-Type", Value: "application/javascript; charset=utf-8"},
		},
		Body: []byte(stripeJSStub),
	})
	return err
}

// record runs in the tab's event loop: it must return fast.
func (b *browser) record(ev any) {
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type != runtime.ConsoleAPICalledTypeError && ev.Type != runtime.ConsoleAPICalledTypeAssert {
			return
		}
		var args []string
		for _, a := range ev.Args {
			var s string
			if json.Unmarshal(a.Value, &s) != nil {
				s = cmp.Or(a.Description, string(a.Value))
			}
			args = append(args, s)
		}
		b.add(problem{kind: "console." + string(ev.Type), text: strings.Join(args, " ")})
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		text := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			text += " " + d.Exception.Description
		}
		b.add(problem{kind: "uncaught exception", text: text, url: d.URL})
	case *log.EventEntryAdded:
		if e := ev.Entry; e.Level == log.EntryLevelError {
			b.add(problem{kind: "log " + string(e.Source), text: e.Text, url: e.URL})
		}
	}
}

func (b *browser) add(p problem) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.problems = append(b.problems, p)
}

func (b *browser) assertNoProblems(t testing.TB, ignore func(problem) bool) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		if ignore != nil && ignore(p) {
			continue
		}
		t.Errorf("browser reported %s; want no console errors, exceptions or CSP violations", p)
	}
}

// logPage logs where the tab is and what it shows, to explain a failure.
func (b *browser) logPage(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	t.Logf("browser at %s showing:\n%s", loc, text)
}

// do runs actions in the tab, within stepTimeout.
func (b *browser) do(t testing.TB, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("browser: %v", err)
	}
}

// open navigates to url and waits for the page to load.
func (b *browser) open(t testing.TB, url string) {
	t.Helper()
	resp, err := chromedp.Run(b.ctx, chromedp.NavigateResponse(url))
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	if resp == nil || resp.Status != 200 {
		t.Fatalf("open %s: got status %v, want 200", url, statusOf(resp))
	}
}

// clickAndLoad clicks the element and waits for the page it leads to; it
// returns the status of that page's document.
func (b *browser) clickAndLoad(t testing.TB, sel string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("click %s: %v", sel, err)
	}
	return statusOf(resp)
}

func statusOf(resp *network.Response) int64 {
	if resp == nil {
		return 0
	}
	return resp.Status
}

// setValue sets a form field.
func (b *browser) setValue(t testing.TB, sel, value string) {
	t.Helper()
	b.do(t, chromedp.SetValue(chromedp.CSS(sel), value))
}

// text returns the visible text of the first element matching sel, waiting
// up to stepTimeout for it to appear.
func (b *browser) text(t testing.TB, sel string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// location returns the URL of the page.
func (b *browser) location(t testing.TB) string {
	t.Helper()
	loc, err := chromedp.Run(b.ctx, chromedp.Location())
	if err != nil {
		t.Fatalf("location: %v", err)
	}
	return loc
}

// screenshot writes the viewport to $SCREENSHOTS_DIR/name, when set.
func (b *browser) screenshot(t testing.TB, name string) {
	t.Helper()
	dir := os.Getenv("SCREENSHOTS_DIR")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d KB)", path, len(png)>>10)
}

// wantText fails the test unless the element's text contains want.
func (b *browser) wantText(t testing.TB, sel, want string) {
	t.Helper()
	if got := b.text(t, sel); !strings.Contains(got, want) {
		t.Errorf("text of %s: got %q, want it to contain %q", sel, got, want)
	}
}

// wantPage fails the test unless the tab shows a page under prefix.
func (b *browser) wantPage(t testing.TB, prefix string) string {
	t.Helper()
	loc := b.location(t)
	if !strings.HasPrefix(loc, prefix) {
		t.Fatalf("page: got %s, want a page under %s", loc, prefix)
	}
	return loc
}

// about reports whether the problem concerns host.
func (p problem) about(host string) bool {
	return strings.Contains(p.url, host) || strings.Contains(p.text, host)
}

// attr returns an attribute of the first element matching sel.
func (b *browser) attr(t testing.TB, sel, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	res, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(sel), name))
	if err != nil || !res.Exists {
		t.Fatalf("attribute %s of %s: %v (present %v)", name, sel, err, res.Exists)
	}
	return res.Value
}

// setHeaders sends these headers with every request of the tab from now on
// (an empty map stops them).
func (b *browser) setHeaders(t testing.TB, h map[string]any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("network: %v", err)
	}
	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers(h)}); err != nil {
		t.Fatalf("set headers: %v", err)
	}
}
