// The embedded checkout page's script. It tells Stripe.js in the page that
// frames it how tall it is, and, once the session is complete, that it is,
// with where to go. Opened on its own, unframed, it goes there itself.
(function () {
  "use strict";

  var root = document.getElementById("embedded");
  if (!root) {
    return;
  }
  var framed = window.parent !== window;
  var origin = root.getAttribute("data-parent-origin") || "*";

  function tell(message) {
    if (framed) {
      window.parent.postMessage(message, origin);
    }
  }

  function resize() {
    tell({ type: "stripe-sim:resize", height: document.documentElement.scrollHeight });
  }

  resize();
  window.addEventListener("load", resize);

  if (root.getAttribute("data-complete") !== "true") {
    return;
  }
  var returnUrl = root.getAttribute("data-return-url") || "";
  var redirect = root.getAttribute("data-redirect") === "true" && returnUrl !== "";
  if (!framed) {
    if (redirect) {
      window.location.replace(returnUrl);
    }
    return;
  }
  tell({ type: "stripe-sim:complete", sessionId: root.getAttribute("data-session"), returnUrl: returnUrl, redirect: redirect });
}());
