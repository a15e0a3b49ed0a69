package stripesim

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Embedded Checkout: a session created with ui_mode=embedded has no hosted
// page (its url is null) but a client_secret, which Stripe.js in the
// shop's page mounts as an iframe of the embedded page. The simulator
// serves both the page (/embedded/{client_secret}) and a stand-in for
// Stripe.js (/v3/) that frames it.
//
// API version 2023-10-16 names the modes embedded and hosted; the API
// description the pinned stripe-mock validates against only knows the
// names later versions gave them (embedded_page, hosted_page, and
// elements), and refuses the old ones. The simulator speaks 2023-10-16 to
// the shop and translates for stripe-mock.

// UI modes and completion redirects, as API version 2023-10-16 spells them.
const (
	uiModeHosted       = "hosted"
	uiModeEmbedded     = "embedded"
	redirectAlways     = "always"
	redirectIfRequired = "if_required"
	redirectNever      = "never"
)

// mockUIModes maps the shop's ui_mode to what stripe-mock accepts.
func mockUIMode(mode string) (string, bool) {
	switch mode {
	case uiModeHosted:
		return "hosted_page", true
	case uiModeEmbedded:
		return "embedded_page", true
	}
	return "", false
}

// toMockUIMode rewrites the ui_mode of a form body for stripe-mock,
// leaving every other byte as the shop sent it. A mode that 2023-10-16
// does not know (including the later names stripe-mock would accept) is
// refused, as Stripe would.
func toMockUIMode(body []byte) ([]byte, apiResponse, bool) {
	pairs := strings.Split(string(body), "&")
	changed := false
	for i, pair := range pairs {
		k, v, _ := strings.Cut(pair, "=")
		if key, err := url.QueryUnescape(k); err != nil || key != "ui_mode" {
			continue
		}
		mode, err := url.QueryUnescape(v)
		mock, ok := mockUIMode(mode)
		if err != nil || !ok {
			return nil, invalid("ui_mode", fmt.Sprintf("Invalid ui_mode: must be one of %s or %s", uiModeEmbedded, uiModeHosted)), false
		}
		pairs[i], changed = k+"="+mock, true
	}
	if !changed {
		return body, apiResponse{}, true
	}
	return []byte(strings.Join(pairs, "&")), apiResponse{}, true
}

// checkUIMode applies Stripe's rules on the urls of each mode: a hosted
// session returns to success_url and cancel_url, an embedded one to
// return_url (unless it never redirects), and neither takes the other's.
func checkUIMode(form url.Values, ss *session) (apiResponse, bool) {
	has := func(k string) bool { return form.Get(k) != "" }
	notWith := func(param, mode string) apiResponse {
		return invalid(param, fmt.Sprintf("`%s` cannot be used when `ui_mode` is `%s`.", param, mode))
	}
	if ss.UIMode != uiModeEmbedded {
		for _, p := range []string{"return_url", "redirect_on_completion"} {
			if has(p) {
				return notWith(p, uiModeHosted), false
			}
		}
		return apiResponse{}, true
	}
	for _, p := range []string{"success_url", "cancel_url"} {
		if has(p) {
			return notWith(p, uiModeEmbedded), false
		}
	}
	if ss.RedirectOnCompletion == "" {
		ss.RedirectOnCompletion = redirectAlways
	}
	switch ss.RedirectOnCompletion {
	case redirectNever:
		if has("return_url") {
			return invalid("return_url", "`return_url` cannot be used when `redirect_on_completion` is `never`."), false
		}
	case redirectAlways, redirectIfRequired:
		if !has("return_url") {
			return missingParam("return_url"), false
		}
		if _, err := parseBaseURL(ss.ReturnURL); err != nil {
			return invalid("return_url", "Not a valid URL"), false
		}
	default:
		return invalid("redirect_on_completion", "Invalid redirect_on_completion: must be one of always, if_required or never"), false
	}
	return apiResponse{}, true
}

// embeddedSession looks up the embedded session a client secret belongs
// to.
func (s *Sim) embeddedSession(secret string) (session, bool) {
	id, _, ok := strings.Cut(secret, "_secret_")
	if !ok {
		return session{}, false
	}
	ss, ok := s.lookup(id)
	if !ok || ss.UIMode != uiModeEmbedded || subtle.ConstantTimeCompare([]byte(ss.ClientSecret), []byte(secret)) != 1 {
		return session{}, false
	}
	return ss, true
}

// parentOrigin reads the origin of the page that frames the embedded page,
// which Stripe.js passes: a bare http(s) origin, or "" for any.
func parentOrigin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

func (s *Sim) embeddedPageFor(ss session, secret, origin string) pageData {
	data := s.pageFor(ss)
	data.Embedded, data.ParentOrigin = true, origin
	data.Action = "/embedded/" + url.PathEscape(secret)
	if origin != "" {
		data.Action += "?" + url.Values{"origin": {origin}}.Encode()
	}
	data.SuccessURL, data.CancelURL = "", ""
	data.ReturnURL = strings.ReplaceAll(ss.ReturnURL, "{CHECKOUT_SESSION_ID}", ss.ID)
	// Neither cards nor the simulated bank debit need a redirect, so only
	// always redirects.
	data.Redirect = ss.RedirectOnCompletion == redirectAlways && data.ReturnURL != ""
	return data
}

func (s *Sim) handleEmbeddedPage(w http.ResponseWriter, r *http.Request) {
	secret := r.PathValue("secret")
	origin := parentOrigin(r.URL.Query().Get("origin"))
	ss, ok := s.embeddedSession(secret)
	if !ok {
		s.renderPage(w, http.StatusNotFound, pageData{State: "notfound", Embedded: true, ParentOrigin: origin})
		return
	}
	s.renderPage(w, http.StatusOK, s.embeddedPageFor(ss, secret, origin))
}

// handleEmbeddedPay takes the embedded pay form. Once the session is
// complete it answers with the embedded page again (post, redirect, get),
// whose script then has Stripe.js finish in the shop's page.
func (s *Sim) handleEmbeddedPay(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	parseErr := r.ParseForm()
	secret := r.PathValue("secret")
	origin := parentOrigin(r.URL.Query().Get("origin"))
	ss, ok := s.embeddedSession(secret)
	if !ok {
		s.renderPage(w, http.StatusNotFound, pageData{State: "notfound", Embedded: true, ParentOrigin: origin})
		return
	}
	data := s.embeddedPageFor(ss, secret, origin)
	s.pay(w, r, parseErr, data, func(session) {
		http.Redirect(w, r, data.Action, http.StatusSeeOther)
	})
}

// renderStripeJS makes the Stripe.js stand-in, which knows where the
// simulator is. The values are JSON strings, safe inside the script.
func renderStripeJS(public string) ([]byte, error) {
	u, err := url.Parse(public)
	if err != nil {
		return nil, fmt.Errorf("public url: %w", err)
	}
	simURL, err := json.Marshal(public)
	if err != nil {
		return nil, fmt.Errorf("encode public url: %w", err)
	}
	simOrigin, err := json.Marshal(u.Scheme + "://" + u.Host)
	if err != nil {
		return nil, fmt.Errorf("encode public origin: %w", err)
	}
	js := strings.NewReplacer("STRIPE_SIM_URL", string(simURL), "STRIPE_SIM_ORIGIN", string(simOrigin)).Replace(stripeJS)
	if strings.Contains(js, "STRIPE_SIM_") {
		return nil, fmt.Errorf("stripe.js stand-in: a placeholder was left")
	}
	return []byte(js), nil
}

// handleStripeJS serves the Stripe.js stand-in, in place of
// https://js.stripe.com/v3/.
func (s *Sim) handleStripeJS(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/javascript; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Access-Control-Allow-Origin", "*")
	_, _ = w.Write(s.stripeJS)
}

// handleEmbeddedJS serves the embedded page's script.
func (s *Sim) handleEmbeddedJS(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/javascript; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write([]byte(embeddedJS))
}
