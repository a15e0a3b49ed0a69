// Progressive enhancement for the purchase forms: post JSON, then send the
// browser to the Checkout Session's url; "Add to cart" adds without leaving
// the page and updates the header's count. Without this script (or without
// Stripe.js) the plain form posts still work: the server answers 303.
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

  function showStatus(message) {
    var box = document.getElementById("cart-status");
    if (!box) return;
    box.textContent = message;
    box.hidden = false;
  }

  // addToCart posts the form's product and quantity to the cart (the
  // button's formaction) and shows the cart's new count.
  function addToCart(form, button) {
    button.disabled = true;
    var data = new FormData(form);
    var quantity = parseInt(data.get("quantity"), 10);
    fetch(button.formAction, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ productId: data.get("product_id"), quantity: isNaN(quantity) ? 0 : quantity }),
      credentials: "same-origin"
    })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (body) {
          if (!r.ok || !body.cart) {
            var msg = body && body.error && body.error.message;
            throw new Error(msg || "Something went wrong. Please try again.");
          }
          var count = document.getElementById("cart-count");
          if (count) count.textContent = String(body.cart.count);
          var box = document.getElementById("checkout-error");
          if (box) box.hidden = true;
          showStatus("Added to your cart. Your cart holds " + body.cart.count + (body.cart.count === 1 ? " item." : " items."));
          button.disabled = false;
        });
      })
      .catch(function (err) {
        var box = document.getElementById("cart-status");
        if (box) box.hidden = true;
        showError(err.message || "Could not reach the shop. Please try again.");
        button.disabled = false;
      });
  }

  function onSubmit(event) {
    var form = event.currentTarget;
    if (!window.fetch || !window.JSON) return; // let the browser post the form
    var submitter = event.submitter;
    if (submitter && submitter.classList.contains("add-to-cart")) {
      event.preventDefault();
      addToCart(form, submitter);
      return;
    }
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
