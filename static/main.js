// Progressive enhancement for the purchase forms: post JSON, then send the
// browser to the Checkout Session's url. Without this script (or without
// Stripe.js) the plain form post still works: the server answers 303.
(function () {
  "use strict";

  var stripe = null;

  // Stripe.js loads asynchronously and may be blocked; the purchase does not
  // depend on it, but when it is there we initialise it with the shop's key
  // (it adds Stripe's fraud signals to the session).
  function initStripe() {
    if (stripe || typeof window.Stripe !== "function") return;
    fetch("/config", { headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (cfg) {
        if (cfg && cfg.publicKey && !stripe) stripe = window.Stripe(cfg.publicKey);
      })
      .catch(function () { /* the purchase works without Stripe.js */ });
  }

  function showError(message) {
    var box = document.getElementById("checkout-error");
    if (!box) return;
    box.textContent = message;
    box.hidden = false;
  }

  function onSubmit(event) {
    var form = event.currentTarget;
    if (!window.fetch || !window.JSON) return; // let the browser post the form
    event.preventDefault();
    var button = form.querySelector("button[type=submit]");
    button.disabled = true;
    var data = new FormData(form);
    var quantity = parseInt(data.get("quantity"), 10);
    fetch(form.action, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({
        productId: data.get("product_id"),
        quantity: isNaN(quantity) ? 0 : quantity,
        token: data.get("checkout_token") || ""
      }),
      credentials: "same-origin"
    })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (body) {
          if (!r.ok || !body.url) {
            var msg = body && body.error && body.error.message;
            throw new Error(msg || "Something went wrong. Please try again.");
          }
          window.location.assign(body.url);
        });
      })
      .catch(function (err) {
        showError(err.message || "Could not reach the shop. Please try again.");
        button.disabled = false;
      });
  }

  document.querySelectorAll("form.checkout-form").forEach(function (form) {
    form.addEventListener("submit", onSubmit);
  });
  initStripe();
  window.addEventListener("load", initStripe);
})();
