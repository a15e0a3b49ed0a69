// Package e2e holds the shop's browser tests: headless Chromium, driven from
// Go with chromedp, buys from a shop and an offline Checkout simulator that
// each test builds in-process, and every step is checked in the page and in
// the store. The package has no code outside its tests.
//
// The tests need Chromium (CHROMIUM, or chromium on PATH) and stripe-mock
// (STRIPE_MOCK_URL, default http://localhost:12111). Without them they skip,
// except in CI (CI non-empty), where they fail.
package e2e
