// Progressive enhancement for the purchase forms (the home page's
// "Purchase" and the cart's "Checkout"): post JSON, then send the browser to
// the Checkout Session's url, or, when the shop is set to CHECKOUT_UI=embedded
// and Stripe.js is there, mount Embedded Checkout in the page instead. "Add
// to cart" adds without leaving the page and updates the header's count.
// Without this script the plain form posts still work (the server answers
// 303 to the hosted page), and without Stripe.js, or when it cannot mount
// the embedded checkout, the script falls back to the hosted page.
(function () {
  "use strict";

  var stripe = null;
  var config = null; // a Promise of GET /config's answer, once asked
  var mounted = null; // the embedded checkout in the page, if any
  var waiting = null; // the button of the checkout in progress

  // loadConfig fetches the shop's publishable key and how Checkout opens
  // ({"publicKey", "checkoutUi"}), once; it never rejects.
  function loadConfig() {
    if (!config) {
      config = fetch("/config", { headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : {}; })
        .catch(function () { return {}; });
    }
    return config;
  }

  // stripeFor starts Stripe.js with the shop's key, if it has loaded: it
  // loads asynchronously and may be blocked (null then).
  function stripeFor(cfg) {
    if (!stripe && typeof window.Stripe === "function" && cfg && cfg.publicKey) {
      stripe = window.Stripe(cfg.publicKey);
    }
    return stripe;
  }

  // Stripe.js adds Stripe's fraud signals to the session when it is
  // initialised early; a hosted purchase does not depend on it.
  function initStripe() {
    if (stripe || typeof window.Stripe !== "function" || !window.fetch) return;
    loadConfig().then(function (cfg) {
      try {
        stripeFor(cfg);
      } catch (err) { /* the purchase works without Stripe.js */ }
    });
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

  // postCheckout asks the shop for a Checkout Session. When the shop
  // refuses (out of stock, a bad quantity) it rejects with the shop's
  // message and fromShop set: another way to pay would be refused too.
  function postCheckout(action, body) {
    return fetch(action, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
      credentials: "same-origin"
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (answer) {
        if (!r.ok) {
          var msg = answer && answer.error && answer.error.message;
          var err = new Error(msg || "Something went wrong. Please try again.");
          err.fromShop = true;
          throw err;
        }
        return answer;
      });
    });
  }

  // openHosted sends the browser to Stripe's hosted page.
  function openHosted(action, body) {
    return postCheckout(action, body).then(function (answer) {
      if (!answer.url) throw new Error("Something went wrong. Please try again.");
      window.location.assign(answer.url);
    });
  }

  // showEmbedded shows the embedded checkout's box in place of the
  // products (or the cart), or the other way round.
  function showEmbedded(on) {
    var box = document.getElementById("embedded-checkout");
    if (box) box.hidden = !on;
    document.querySelectorAll("[data-embedded-hide]").forEach(function (el) { el.hidden = on; });
    var status = document.getElementById("cart-status");
    if (status && on) status.hidden = true;
  }

  function unmount() {
    if (mounted) {
      try {
        mounted.destroy();
      } catch (err) { /* gone already */ }
    }
    mounted = null;
    showEmbedded(false);
  }

  // openEmbedded mounts Embedded Checkout in the page with the session's
  // client secret, which fetchClientSecret asks the shop for (once, however
  // often Stripe.js calls it). It resolves once the checkout is mounted
  // and the shop has answered; it rejects when either fails, with the box
  // hidden again.
  function openEmbedded(s, action, body) {
    var secret = null;
    function fetchClientSecret() {
      if (!secret) {
        var embedded = {};
        Object.keys(body).forEach(function (k) { embedded[k] = body[k]; });
        embedded.ui = "embedded";
        secret = postCheckout(action, embedded).then(function (answer) {
          if (typeof answer.clientSecret !== "string" || !answer.clientSecret) {
            throw new Error("The shop did not open an embedded checkout.");
          }
          return answer.clientSecret;
        });
      }
      return secret;
    }
    return Promise.resolve()
      .then(function () { return s.initEmbeddedCheckout({ fetchClientSecret: fetchClientSecret }); })
      .then(function (checkout) {
        mounted = checkout;
        showEmbedded(true);
        checkout.mount("#embedded-checkout-mount");
        return fetchClientSecret();
      })
      .catch(function (err) {
        unmount();
        throw err;
      });
  }

  // startCheckout opens the embedded checkout when the shop is set to it
  // and Stripe.js can, and the hosted page otherwise, or when Stripe.js
  // fails; a refusal of the shop's is shown on the page.
  function startCheckout(form, body, button) {
    var action = form.action;
    waiting = button;
    loadConfig().then(function (cfg) {
      var s = null;
      if (cfg.checkoutUi === "embedded" && document.getElementById("embedded-checkout-mount")) {
        try {
          s = stripeFor(cfg);
        } catch (err) {
          s = null;
        }
      }
      if (!s || typeof s.initEmbeddedCheckout !== "function") return openHosted(action, body);
      return openEmbedded(s, action, body).catch(function (err) {
        if (err && err.fromShop) throw err;
        return openHosted(action, body);
      });
    }).catch(function (err) {
      showError(err.message || "Could not reach the shop. Please try again.");
      button.disabled = false;
    });
  }

  function onSubmit(event) {
    var form = event.currentTarget;
    if (!window.fetch || !window.JSON || !window.Promise) return; // let the browser post the form
    var submitter = event.submitter;
    if (submitter && submitter.classList.contains("add-to-cart")) {
      event.preventDefault();
      addToCart(form, submitter);
      return;
    }
    event.preventDefault();
    var button = form.querySelector("button[type=submit]");
    button.disabled = true;
    var box = document.getElementById("checkout-error");
    if (box) box.hidden = true;
    var data = new FormData(form);
    var body;
    if (data.get("source") === "cart") {
      body = { source: "cart", token: data.get("checkout_token") || "" };
    } else {
      var quantity = parseInt(data.get("quantity"), 10);
      body = {
        productId: data.get("product_id"),
        quantity: isNaN(quantity) ? 0 : quantity,
        token: data.get("checkout_token") || ""
      };
    }
    startCheckout(form, body, button);
  }

  // "Back" leaves the embedded checkout for the products, in the page; its
  // order stays open until it expires, and buying the same again reuses it.
  var back = document.getElementById("embedded-checkout-back");
  if (back) {
    back.addEventListener("click", function (event) {
      if (!mounted) return; // follow the link
      event.preventDefault();
      unmount();
      if (waiting) waiting.disabled = false;
    });
  }

  document.querySelectorAll("form.checkout-form, form.cart-checkout").forEach(function (form) {
    form.addEventListener("submit", onSubmit);
  });
  initStripe();
  window.addEventListener("load", initStripe);
})();
