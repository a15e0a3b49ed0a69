package stripesim

import (
	"bytes"
	"net/http"
	"net/mail"
	"strings"
	"unicode"

	"github.com/shopcheckout/shop/internal/money"
)

// Test card numbers, as on Stripe's test-card list.
const (
	cardSuccess  = "4242424242424242"
	cardDeclined = "4000000000000002"
	msgDeclined  = "Your card was declined."
	msgBadNumber = "Your card number is invalid."
)

// Pay outcomes a buyer picks on the pay form.
const (
	outcomePay     = "pay"
	outcomeDelayed = "delayed"
)

// Content-Security-Policy of the hosted pages, which no one may frame, and
// of the embedded page, which any shop may frame and whose script tells
// Stripe.js in the shop's page that the session completed.
const (
	hostedCSP   = "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'"
	embeddedCSP = "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors *"
)

// pageLine is one formatted line of the order summary.
type pageLine struct {
	Name, Description string
	Quantity          int64
	UnitAmount        string
	Amount            string
}

// pageData feeds the checkout page, hosted or embedded.
type pageData struct {
	ID         string
	State      string // open, paid, processing, failed, expired, notfound
	Lines      []pageLine
	Total      string
	Email      string
	Card       string
	Error      string
	Action     string // where the pay form posts
	SuccessURL string
	CancelURL  string
	// PaymentLink is set for a Payment Link sale, whose paid page thanks
	// the buyer, with the link's Message if it has one.
	PaymentLink bool
	Message     string
	// Embedded pages (for a client secret, framed by Stripe.js in the
	// shop's page) have no links of their own: once complete, they have
	// Stripe.js take the shop's page to ReturnURL, or call its onComplete
	// when Redirect is false. ParentOrigin is the shop page's origin,
	// which the page reports to.
	Embedded     bool
	ReturnURL    string
	Redirect     bool
	ParentOrigin string
}

// Complete reports whether the page shows a completed session, paid or
// not yet.
func (d pageData) Complete() bool {
	return d.State == "paid" || d.State == "processing" || d.State == "failed"
}

func pageLines(lines []lineItem) []pageLine {
	out := make([]pageLine, 0, len(lines))
	for _, li := range lines {
		out = append(out, pageLine{
			Name: li.Name, Description: li.Description, Quantity: li.Quantity,
			UnitAmount: money.Format(li.UnitAmount, li.Currency), Amount: money.Format(li.amount(), li.Currency),
		})
	}
	return out
}

func (s *Sim) pageFor(ss session) pageData {
	state := ss.Status
	if ss.Status == statusComplete {
		switch {
		case ss.PaymentStatus == paymentPaid:
			state = "paid"
		case ss.AsyncResult == "failed":
			state = "failed"
		default:
			state = "processing"
		}
	}
	email := ss.Email
	if email == "" {
		email = ss.CustomerEmail
	}
	return pageData{
		ID: ss.ID, State: state, Lines: pageLines(ss.LineItems), Total: money.Format(ss.AmountTotal, ss.Currency),
		Email: email, Card: "4242 4242 4242 4242", Action: "/pay/" + ss.ID,
		SuccessURL:  strings.ReplaceAll(ss.SuccessURL, "{CHECKOUT_SESSION_ID}", ss.ID),
		CancelURL:   ss.CancelURL,
		PaymentLink: ss.PaymentLink != "", Message: ss.LinkMessage,
	}
}

// renderHTML executes page template name into a buffer, then answers it
// with the page's Content-Security-Policy.
func (s *Sim) renderHTML(w http.ResponseWriter, status int, name string, data any, csp string) {
	var buf bytes.Buffer
	if err := s.pages.ExecuteTemplate(&buf, name, data); err != nil {
		s.log.Error("render page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", csp)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (s *Sim) renderPage(w http.ResponseWriter, status int, data pageData) {
	csp := hostedCSP
	if data.Embedded {
		csp = embeddedCSP
	}
	s.renderHTML(w, status, "page", data, csp)
}

// hostedSession looks up a session that has a hosted page: an embedded
// session has none.
func (s *Sim) hostedSession(id string) (session, bool) {
	ss, ok := s.lookup(id)
	return ss, ok && ss.UIMode != uiModeEmbedded
}

func (s *Sim) handlePage(w http.ResponseWriter, r *http.Request) {
	ss, ok := s.hostedSession(r.PathValue("id"))
	if !ok {
		s.renderPage(w, http.StatusNotFound, pageData{State: "notfound"})
		return
	}
	s.renderPage(w, http.StatusOK, s.pageFor(ss))
}

func (s *Sim) handlePay(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	parseErr := r.ParseForm()
	ss, ok := s.hostedSession(r.PathValue("id"))
	if !ok {
		s.renderPage(w, http.StatusNotFound, pageData{State: "notfound"})
		return
	}
	s.pay(w, r, parseErr, s.pageFor(ss), func(ss session) {
		target := s.pageFor(ss).SuccessURL
		if target == "" {
			target = "/pay/" + ss.ID
		}
		http.Redirect(w, r, target, http.StatusSeeOther)
	})
}

// pay handles a posted pay form (already parsed, with parseErr) for the
// session that data shows: it shows the form again with what went wrong,
// or completes the session and has done answer.
func (s *Sim) pay(w http.ResponseWriter, r *http.Request, parseErr error, data pageData, done func(session)) {
	data.Email = strings.TrimSpace(r.PostFormValue("email"))
	data.Card = r.PostFormValue("card")
	fail := func(status int, msg string) {
		data.Error = msg
		s.renderPage(w, status, data)
	}
	outcome := r.PostFormValue("outcome")
	switch {
	case parseErr != nil:
		fail(http.StatusBadRequest, "The form could not be read.")
		return
	case data.State != statusOpen:
		fail(http.StatusConflict, "This checkout session is no longer open.")
		return
	case !validEmail(data.Email):
		fail(http.StatusBadRequest, "Enter a valid email address.")
		return
	case outcome == outcomePay:
		switch strings.Map(dropSpace, data.Card) {
		case cardSuccess:
		case cardDeclined:
			fail(http.StatusPaymentRequired, msgDeclined)
			return
		default:
			fail(http.StatusPaymentRequired, msgBadNumber)
			return
		}
	case outcome != outcomeDelayed:
		fail(http.StatusBadRequest, "Choose a way to pay.")
		return
	}
	ss, err := s.completeSession(data.ID, outcome, data.Email)
	if err != nil {
		fail(http.StatusConflict, err.Error())
		return
	}
	done(ss)
}

// completeSession completes open session id for email, paid by card
// (outcome pay) or by a delayed bank debit that settles later (outcome
// delayed), and records checkout.session.completed.
func (s *Sim) completeSession(id, outcome, email string) (session, error) {
	ss, err := s.update(id, func(ss *session) (string, error) {
		if ss.Status != statusOpen {
			return "", &stateError{"This checkout session is no longer open."}
		}
		ss.Status, ss.Email = statusComplete, email
		s.assignPaymentIntentLocked(ss)
		if outcome == outcomePay {
			ss.PaymentStatus = paymentPaid
			s.chargeLocked(ss, s.now())
		}
		return "checkout.session.completed", nil
	})
	if err == nil {
		s.log.Info("checkout session completed", "id", id, "outcome", outcome)
	}
	return ss, err
}

func dropSpace(r rune) rune {
	if unicode.IsSpace(r) {
		return -1
	}
	return r
}

func validEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s && a.Name == "" && strings.Contains(s, "@")
}

func (s *Sim) handleCSS(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write([]byte(pageCSS))
}
