package stripesim

import _ "embed" // the scripts

// stripeJS is the Stripe.js stand-in served at /v3/, with placeholders
// for the simulator's address (see renderStripeJS).
//
//go:embed assets/stripe.js
var stripeJS string

// embeddedJS is the embedded checkout page's script.
//
//go:embed assets/embedded.js
var embeddedJS string

// The simulator's pages: the checkout page, hosted (/pay/{id}) or
// embedded (/embedded/{client_secret}), and a Payment Link's page
// (/pl/{id}). The hosted pages use no script and no inline styles, so they
// work with JavaScript disabled and under a strict Content-Security-Policy;
// the embedded page runs one script of its own, embedded.js, to talk to
// Stripe.js in the page that frames it.
const pageTemplates = `{{define "head"}}<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/pay-assets/sim.css">
{{end}}

{{define "banner"}}<header class="banner" id="banner"><strong>Simulated Stripe Checkout — no real payment</strong> <span class="badge">Test mode</span></header>
{{end}}

{{define "summary"}}<h1 id="summary-title">Order summary</h1>
<p class="due"><span class="label">Total due</span> <span id="total" class="total">{{.Total}}</span></p>
<ul class="lines">
{{range .Lines}}<li class="line">
<div class="line-text"><span class="name">{{.Name}}</span>{{if .Description}} <span class="desc">{{.Description}}</span>{{end}} <span class="qty">Qty {{.Quantity}} × {{.UnitAmount}}</span></div>
<span class="line-amount">{{.Amount}}</span>
</li>
{{end}}</ul>
<p class="total-row"><span>Total</span> <span>{{.Total}}</span></p>
{{end}}

{{define "page"}}<!DOCTYPE html>
<html lang="en">
<head>
{{template "head"}}<title>{{if eq .State "notfound"}}Checkout session not found{{else}}Pay {{.Total}}{{end}} · Simulated Stripe Checkout</title>
{{if .Embedded}}<script src="/pay-assets/embedded.js" defer></script>
{{end}}</head>
<body{{if .Embedded}} id="embedded" class="embedded" data-parent-origin="{{.ParentOrigin}}"{{if .Complete}} data-complete="true" data-session="{{.ID}}" data-return-url="{{.ReturnURL}}" data-redirect="{{.Redirect}}"{{end}}{{end}}>
{{template "banner"}}{{if eq .State "notfound"}}
<main class="single">
<h1>Checkout session not found</h1>
<p>The simulator knows no checkout session under this link. Sessions live in memory: it may have been created before the simulator restarted.</p>
</main>
{{else}}
<main class="checkout">
<section class="summary" aria-labelledby="summary-title">
{{if and .CancelURL (eq .State "open")}}<a id="back" class="back" href="{{.CancelURL}}">← Back</a>{{end}}
{{template "summary" .}}</section>
<section class="pay" aria-labelledby="pay-title">
{{if eq .State "open"}}
<h2 id="pay-title">Pay with card</h2>
<form method="post" action="{{.Action}}">
<label for="email">Email</label>
<input id="email" name="email" type="email" required autocomplete="email" value="{{.Email}}">
<label for="card">Card number</label>
<input id="card" name="card" inputmode="numeric" autocomplete="cc-number" value="{{.Card}}">
<p class="hint">Test cards: 4242 4242 4242 4242 succeeds, 4000 0000 0000 0002 is declined.</p>
{{if .Error}}<p id="error" class="error" role="alert">{{.Error}}</p>{{end}}
<button id="pay" class="button primary" type="submit" name="outcome" value="pay">Pay {{.Total}}</button>
<button id="delayed" class="button" type="submit" name="outcome" value="delayed">Pay by bank debit (delayed)</button>
</form>
{{else}}
{{if .Error}}<p id="error" class="error" role="alert">{{.Error}}</p>{{end}}
{{if .Embedded}}
{{if .Complete}}
<h2 id="pay-title">{{if eq .State "paid"}}Payment complete{{else if eq .State "processing"}}Payment processing{{else}}Payment failed{{end}}</h2>
{{if .Redirect}}<p>Taking you back to the shop…</p>
<a id="return" class="button primary" href="{{.ReturnURL}}" target="_top">Return to the shop</a>{{else}}<p>The shop takes it from here.</p>{{end}}
{{else}}
<h2 id="pay-title">Checkout session expired</h2>
<p>This checkout session has expired and can no longer be paid.</p>
{{end}}
{{else if eq .State "paid"}}
{{if .PaymentLink}}<h2 id="pay-title">Thank you</h2>
<p>Your payment is complete.</p>
{{if .Message}}<p id="confirmation">{{.Message}}</p>{{end}}
{{else}}<h2 id="pay-title">Payment complete</h2>
<p>This checkout session is complete and paid.</p>
{{end}}
{{if .SuccessURL}}<a id="return" class="button primary" href="{{.SuccessURL}}">Return to the shop</a>{{end}}
{{else if eq .State "processing"}}
<h2 id="pay-title">Payment processing</h2>
<p>The order is placed; the delayed bank debit has not settled yet. Decide how it ends: the shop is told by a <code>checkout.session.async_payment_succeeded</code> or <code>checkout.session.async_payment_failed</code> event.</p>
<form method="post" action="/sim/sessions/{{.ID}}/async_succeed"><input type="hidden" name="return" value="page"><button id="async-succeed" class="button primary" type="submit">Simulate payment succeeded</button></form>
<form method="post" action="/sim/sessions/{{.ID}}/async_fail"><input type="hidden" name="return" value="page"><button id="async-fail" class="button" type="submit">Simulate payment failed</button></form>
{{if .SuccessURL}}<a id="return" class="link" href="{{.SuccessURL}}">Return to the shop</a>{{end}}
{{else if eq .State "failed"}}
<h2 id="pay-title">Payment failed</h2>
<p>The delayed payment for this checkout session failed.</p>
{{if .CancelURL}}<a id="return" class="button" href="{{.CancelURL}}">Return to the shop</a>{{end}}
{{else}}
<h2 id="pay-title">Checkout session expired</h2>
<p>This checkout session has expired and can no longer be paid.</p>
{{if .CancelURL}}<a id="return" class="button" href="{{.CancelURL}}">Return to the shop</a>{{end}}
{{end}}
{{end}}
</section>
</main>
{{end}}
<footer class="foot">stripe-sim{{if .ID}} · {{.ID}}{{end}}</footer>
</body>
</html>
{{end}}

{{define "link"}}<!DOCTYPE html>
<html lang="en">
<head>
{{template "head"}}<title>{{if .Found}}Buy for {{.Total}}{{else}}Payment link not found{{end}} · Simulated Stripe Checkout</title>
</head>
<body>
{{template "banner"}}{{if not .Found}}
<main class="single">
<h1>Payment link not found</h1>
<p>The simulator knows no payment link under this address. Links live in memory: seed them with the simulator's -seed file to have them after a restart.</p>
</main>
{{else}}
<main class="checkout">
<section class="summary" aria-labelledby="summary-title">
{{template "summary" .}}</section>
<section class="pay" aria-labelledby="pay-title">
<h2 id="pay-title">Payment link</h2>
{{if .Error}}<p id="error" class="error" role="alert">{{.Error}}</p>{{end}}
{{if .Active}}<p>Buy these items through the simulated checkout.</p>
<form method="post" action="/pl/{{.ID}}">
<button id="buy" class="button primary" type="submit">Continue to payment</button>
</form>
{{else}}<p>This payment link is no longer active.</p>{{end}}
</section>
</main>
{{end}}
<footer class="foot">stripe-sim{{if .ID}} · {{.ID}}{{end}}</footer>
</body>
</html>
{{end}}`

// pageCSS is served at /pay-assets/sim.css.
const pageCSS = `*{box-sizing:border-box}
body{margin:0;font:15px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1a1f36;background:#f6f9fc}
.banner{background:#fff4d6;border-bottom:1px solid #f5d98b;color:#7a5200;padding:.6rem 1rem;text-align:center}
.badge{display:inline-block;margin-left:.5rem;padding:0 .45rem;border-radius:4px;background:#f5d98b;font-size:12px;font-weight:600;text-transform:uppercase}
.checkout{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:3rem;max-width:920px;margin:2.5rem auto;padding:0 1.5rem}
.single{max-width:560px;margin:3rem auto;padding:0 1.5rem}
@media (max-width:760px){.checkout{grid-template-columns:minmax(0,1fr);gap:1.5rem;margin-top:1.5rem}}
code{overflow-wrap:anywhere;font-size:13px}
h1{font-size:1rem;font-weight:500;color:#697386;margin:1rem 0 .25rem}
.single h1{font-size:1.4rem;color:#1a1f36}
h2{font-size:1.15rem;margin:0 0 1rem}
.back{color:#697386;text-decoration:none}
.back:hover{color:#1a1f36}
.due{margin:0 0 1.5rem}
.due .label{display:block;color:#697386}
.total{font-size:2.1rem;font-weight:600}
.lines{list-style:none;margin:0;padding:0}
.line{display:flex;justify-content:space-between;gap:1rem;padding:.75rem 0;border-bottom:1px solid #e3e8ee}
.line-text span{display:block}
.name{font-weight:500}
.desc,.qty{color:#697386;font-size:13px}
.line-amount{font-weight:500;white-space:nowrap}
.total-row{display:flex;justify-content:space-between;font-weight:600;margin:1rem 0}
.pay{background:#fff;border-radius:8px;box-shadow:0 2px 5px rgba(60,66,87,.08),0 0 0 1px rgba(60,66,87,.12);padding:1.5rem}
label{display:block;font-size:13px;font-weight:500;color:#3c4257;margin:.9rem 0 .3rem}
input{width:100%;padding:.6rem .75rem;font:inherit;border:1px solid #cfd7df;border-radius:6px}
input:focus{outline:2px solid #635bff;outline-offset:-1px}
.hint{font-size:12px;color:#697386;margin:.35rem 0 1rem}
.error{color:#df1b41;background:#fde8ec;border-radius:6px;padding:.5rem .75rem}
.button{display:block;width:100%;margin-top:.75rem;padding:.7rem 1rem;font:inherit;font-weight:600;text-align:center;text-decoration:none;border-radius:6px;border:1px solid #cfd7df;background:#fff;color:#1a1f36;cursor:pointer}
.button.primary{background:#635bff;border-color:#635bff;color:#fff}
.button:hover{filter:brightness(.96)}
.link{display:block;margin-top:1rem;color:#635bff}
.embedded .checkout{margin-top:1.5rem}
.foot{text-align:center;color:#a3acb9;font-size:12px;margin:2rem 0;padding:0 1rem;overflow-wrap:anywhere}
`
