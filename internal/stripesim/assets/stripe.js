// A stand-in for Stripe.js (https://js.stripe.com/v3/), served by stripe-sim
// at /v3/. It knows one thing, Embedded Checkout: Stripe(key)
// .initEmbeddedCheckout({fetchClientSecret, onComplete}) resolves to an
// object whose mount(selectorOrElement) frames the simulator's embedded
// page for the session's client secret. When the session completes, the
// framed page tells this script, which takes this page to the session's
// return_url or, for a session that does not redirect, calls onComplete.
// Everything else of Stripe.js is absent. Plain ES5 with Promise, no eval.
(function () {
  "use strict";

  var SIM_URL = STRIPE_SIM_URL;
  var SIM_ORIGIN = STRIPE_SIM_ORIGIN;
  var current = null; // a page has at most one embedded checkout at a time

  function integrationError(message) {
    var err = new Error(message);
    err.name = "IntegrationError";
    return err;
  }

  function EmbeddedCheckout(options) {
    this._options = options;
    this._secret = null; // the client secret, once fetched
    this._iframe = null;
    this._destroyed = false;
    var self = this;
    this._listener = function (event) { self._receive(event); };
    window.addEventListener("message", this._listener);
  }

  EmbeddedCheckout.prototype._clientSecret = function () {
    var self = this;
    if (this._secret !== null) {
      return Promise.resolve(this._secret);
    }
    var options = this._options;
    var pending = typeof options.clientSecret === "string"
      ? Promise.resolve(options.clientSecret)
      : Promise.resolve().then(function () { return options.fetchClientSecret(); });
    return pending.then(function (secret) {
      if (typeof secret !== "string" || secret.indexOf("_secret_") < 0) {
        throw integrationError("fetchClientSecret must resolve to a Checkout Session's client_secret, got " + String(secret) + ".");
      }
      self._secret = secret;
      return secret;
    });
  };

  EmbeddedCheckout.prototype.mount = function (target) {
    if (this._destroyed) {
      throw integrationError("This embedded checkout was destroyed: call initEmbeddedCheckout again.");
    }
    if (this._iframe !== null) {
      throw integrationError("This embedded checkout is already mounted.");
    }
    var container = typeof target === "string" ? document.querySelector(target) : target;
    if (!container || container.nodeType !== 1) {
      throw integrationError("mount() needs an element or a selector that matches one, got " + String(target) + ".");
    }
    var iframe = document.createElement("iframe");
    iframe.name = "stripe-sim-embedded-checkout";
    iframe.title = "Simulated Stripe Checkout";
    iframe.setAttribute("allow", "payment");
    iframe.style.display = "block";
    iframe.style.width = "100%";
    iframe.style.minHeight = "480px";
    iframe.style.border = "0";
    this._iframe = iframe;
    var self = this;
    this._clientSecret().then(function (secret) {
      if (self._iframe !== iframe) {
        return; // unmounted meanwhile
      }
      iframe.src = SIM_URL + "/embedded/" + encodeURIComponent(secret) +
        "?origin=" + encodeURIComponent(window.location.origin);
      container.appendChild(iframe);
    }).catch(function (err) {
      self._iframe = null;
      if (window.console) {
        window.console.error("stripe-sim: embedded checkout could not mount:", err);
      }
    });
  };

  EmbeddedCheckout.prototype.unmount = function () {
    var iframe = this._iframe;
    this._iframe = null;
    if (iframe !== null && iframe.parentNode) {
      iframe.parentNode.removeChild(iframe);
    }
  };

  EmbeddedCheckout.prototype.destroy = function () {
    this.unmount();
    if (!this._destroyed) {
      this._destroyed = true;
      window.removeEventListener("message", this._listener);
      if (current === this) {
        current = null;
      }
    }
  };

  // _receive takes the framed page's messages, and only those.
  EmbeddedCheckout.prototype._receive = function (event) {
    var iframe = this._iframe;
    var data = event.data;
    if (event.origin !== SIM_ORIGIN || iframe === null || event.source !== iframe.contentWindow ||
        !data || typeof data.type !== "string") {
      return;
    }
    if (data.type === "stripe-sim:resize" && typeof data.height === "number") {
      iframe.style.height = Math.ceil(data.height) + "px";
    } else if (data.type === "stripe-sim:complete") {
      if (data.redirect && typeof data.returnUrl === "string") {
        window.location.assign(data.returnUrl);
      } else if (typeof this._options.onComplete === "function") {
        this._options.onComplete();
      }
    }
  };

  function initEmbeddedCheckout(options) {
    if (!options || (typeof options.fetchClientSecret !== "function" && typeof options.clientSecret !== "string")) {
      return Promise.reject(integrationError("initEmbeddedCheckout needs fetchClientSecret, a function returning a Promise of the client secret."));
    }
    if (current !== null) {
      return Promise.reject(integrationError("You cannot have multiple embedded checkouts: destroy the current one first."));
    }
    current = new EmbeddedCheckout(options);
    return Promise.resolve(current);
  }

  window.Stripe = function (publishableKey) {
    if (typeof publishableKey !== "string" || publishableKey === "") {
      throw integrationError("Stripe() needs your publishable key (pk_test_...).");
    }
    if (publishableKey.indexOf("sk_") === 0 || publishableKey.indexOf("rk_") === 0) {
      throw integrationError("Stripe() was given a secret key: use your publishable key (pk_test_...).");
    }
    return {
      initEmbeddedCheckout: initEmbeddedCheckout
    };
  };
}());
