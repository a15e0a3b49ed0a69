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

// pageLine is one formatted line of the order summary.
type pageLine struct {
	Name, Description string
	Quantity          int64
	UnitAmount        string
	Amount            string
}

// pageData feeds the hosted checkout page.
type pageData struct {
	ID         string
	State      string // open, paid, processing, failed, expired, notfound
	Lines      []pageLine
	Total      string
	Email      string
	Card       string
	Error      string
	SuccessURL string
	CancelURL  string
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
	lines := make([]pageLine, 0, len(ss.LineItems))
	for _, li := range ss.LineItems {
		lines = append(lines, pageLine{
			Name: li.Name, Description: li.Description, Quantity: li.Quantity,
			UnitAmount: money.Format(li.UnitAmount, li.Currency), Amount: money.Format(li.amount(), li.Currency),
		})
	}
	return pageData{
		ID: ss.ID, State: state, Lines: lines, Total: money.Format(ss.AmountTotal, ss.Currency),
		Email: email, Card: "4242 4242 4242 4242",
		SuccessURL: strings.ReplaceAll(ss.SuccessURL, "{CHECKOUT_SESSION_ID}", ss.ID),
		CancelURL:  ss.CancelURL,
	}
}

func (s *Sim) renderPage(w http.ResponseWriter, status int, data pageData) {
	var buf bytes.Buffer
	if err := s.pages.ExecuteTemplate(&buf, "page", data); err != nil {
		s.log.Error("render checkout page", "id", data.ID, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (s *Sim) handlePage(w http.ResponseWriter, r *http.Request) {
	ss, ok := s.lookup(r.PathValue("id"))
	if !ok {
		s.renderPage(w, http.StatusNotFound, pageData{State: "notfound"})
		return
	}
	s.renderPage(w, http.StatusOK, s.pageFor(ss))
}

func (s *Sim) handlePay(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	parseErr := r.ParseForm()
	id := r.PathValue("id")
	ss, ok := s.lookup(id)
	if !ok {
		s.renderPage(w, http.StatusNotFound, pageData{State: "notfound"})
		return
	}
	data := s.pageFor(ss)
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
	case ss.Status != statusOpen:
		fail(http.StatusConflict, "This checkout session is no longer open.")
		return
	case !validEmail(data.Email):
		fail(http.StatusBadRequest, "Enter a valid email address.")
		return
	case outcome == "pay":
		switch strings.Map(dropSpace, data.Card) {
		case cardSuccess:
		case cardDeclined:
			fail(http.StatusPaymentRequired, msgDeclined)
			return
		default:
			fail(http.StatusPaymentRequired, msgBadNumber)
			return
		}
	case outcome != "delayed":
		fail(http.StatusBadRequest, "Choose a way to pay.")
		return
	}
	ss, err := s.update(id, func(ss *session) (string, error) {
		if ss.Status != statusOpen {
			return "", &stateError{"This checkout session is no longer open."}
		}
		ss.Status, ss.Email = statusComplete, data.Email
		s.assignPaymentIntentLocked(ss)
		if outcome == "pay" {
			ss.PaymentStatus = paymentPaid
			s.chargeLocked(ss, s.now())
		}
		return "checkout.session.completed", nil
	})
	if err != nil {
		fail(http.StatusConflict, err.Error())
		return
	}
	s.log.Info("checkout session completed", "id", id, "outcome", outcome)
	target := s.pageFor(ss).SuccessURL
	if target == "" {
		target = "/pay/" + id
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
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
