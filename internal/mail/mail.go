// Package mail sends the shop's emails (order confirmations to shoppers, new
// order notes to the owner) through an SMTP server, with github.com/wneessen/go-mail.
// Each email is an outbox notification: the dispatcher calls Send until the
// server takes it, and every attempt carries the same Message-ID, derived
// from the notification's id, so a retry is recognisable.
package mail

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"maps"
	"net"
	netmail "net/mail"
	"net/url"
	"slices"
	"strconv"
	"strings"
	texttemplate "text/template"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/shopcheckout/shop/internal/config"
	"github.com/shopcheckout/shop/internal/money"
	"github.com/shopcheckout/shop/internal/orders"
)

// Config configures a Mailer.
type Config struct {
	SMTP     config.SMTP
	From     string   // MAIL_FROM
	ShopName string   // shown in every email
	BaseURL  *url.URL // links in emails point below it
	Links    orders.LinkKey
	// Templates holds email/*.txt and email/*.html (the templates
	// package's FS).
	Templates fs.FS
	// Timeout bounds one connection (default 10s); the caller's context
	// bounds it too.
	Timeout time.Duration
}

// kinds are the emails there are: one per notification type and audience,
// each a template pair email/<name>.txt and email/<name>.html.
var kinds = map[kind]string{
	{orders.NotifyOrderPaid, orders.ChannelEmailCustomer}:              "order_paid_customer",
	{orders.NotifyOrderPaid, orders.ChannelEmailOwner}:                 "order_paid_owner",
	{orders.NotifyOrderRefunded, orders.ChannelEmailCustomer}:          "order_refund_customer",
	{orders.NotifyOrderPartiallyRefunded, orders.ChannelEmailCustomer}: "order_refund_customer",
	{orders.NotifyDisputeOpened, orders.ChannelEmailOwner}:             "dispute_opened_owner",
	{orders.NotifyDisputeClosed, orders.ChannelEmailOwner}:             "dispute_closed_owner",
}

type kind struct {
	typ     string
	channel orders.Channel
}

// Mailer renders and sends emails. Build it with New.
type Mailer struct {
	cfg      Config
	from     *netmail.Address
	domain   string
	text     map[string]*texttemplate.Template
	html     map[string]*htmltemplate.Template
	dialOpts []gomail.Option
}

// New checks cfg and parses every email template once.
func New(cfg Config) (*Mailer, error) {
	from, err := netmail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("mail: MAIL_FROM: %w", err)
	}
	if cfg.BaseURL == nil || cfg.Templates == nil || len(cfg.Links) == 0 {
		return nil, errors.New("mail: missing base URL, templates or link key")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	m := &Mailer{cfg: cfg, from: from, text: map[string]*texttemplate.Template{}, html: map[string]*htmltemplate.Template{}}
	_, m.domain, _ = strings.Cut(from.Address, "@")
	for _, name := range slices.Sorted(maps.Values(kinds)) { // in order, so a broken set fails the same way every time
		if m.text[name] != nil {
			continue // a pair several kinds share
		}
		t, err := texttemplate.ParseFS(cfg.Templates, "email/"+name+".txt")
		if err != nil {
			return nil, fmt.Errorf("mail: parse %s.txt: %w", name, err)
		}
		if t.Lookup("subject") == nil || t.Lookup("text") == nil {
			return nil, fmt.Errorf("mail: %s.txt must define subject and text", name)
		}
		h, err := htmltemplate.ParseFS(cfg.Templates, "email/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("mail: parse %s.html: %w", name, err)
		}
		if h.Lookup("html") == nil {
			return nil, fmt.Errorf("mail: %s.html must define html", name)
		}
		m.text[name], m.html[name] = t, h
	}
	s := cfg.SMTP
	m.dialOpts = []gomail.Option{gomail.WithPort(s.Port), gomail.WithTimeout(cfg.Timeout)}
	if s.ImplicitTLS {
		m.dialOpts = append(m.dialOpts, gomail.WithSSL())
	} else {
		m.dialOpts = append(m.dialOpts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	}
	if s.Username != "" {
		m.dialOpts = append(m.dialOpts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(s.Username), gomail.WithPassword(s.Password))
	}
	return m, nil
}

// line is one item of an email.
type line struct {
	Name     string
	Quantity int64
	Amount   string
}

// view is what an email template sees.
type view struct {
	ShopName, Reference, Total, Email, SessionID string
	// OrderURL is the shopper's order page; AdminURL the admin's list of
	// orders and AdminOrderURL its page of this order.
	OrderURL, AdminURL, AdminOrderURL string
	Items                             []line

	// The refund emails: what Stripe charged, what went back so far and
	// what is still paid; ThisRefund is the amount this email is about,
	// when the order tells it ("" otherwise), and Refunds the refunds that
	// count, oldest first.
	Paid, Refunded, Remaining, ThisRefund string
	FullyRefunded                         bool
	Refunds                               []refundLine

	// Dispute is the order's dispute, for the dispute emails.
	Dispute *disputeLine
}

// refundLine is one refund, as the shopper's email lists it.
type refundLine struct {
	Amount, Date, Status string
}

// disputeLine is a dispute, as the owner's emails show it.
type disputeLine struct {
	ID, Amount, Status, Reason, EvidenceDueBy string
	// NeedsResponse: the shop must answer by EvidenceDueBy. Inquiry: it
	// is an inquiry (warning_*), not yet a chargeback, which a refund may
	// still settle.
	NeedsResponse, Inquiry bool
	// Outcome is the decision in a word (won, lost, inquiry closed), and
	// OutcomeText says what it means for the shop.
	Outcome, OutcomeText string
}

// Message is a rendered email.
type Message struct {
	MessageID string // without the angle brackets
	To        string
	Subject   string
	Text      string
	HTML      string
}

// Render builds the email of a notification.
func (m *Mailer) Render(n orders.Notification) (Message, error) {
	name, ok := kinds[kind{n.Type, n.Channel}]
	if !ok {
		return Message{}, fmt.Errorf("no email for %s to %s", n.Type, n.Channel)
	}
	var body orders.WebhookBody
	if err := json.Unmarshal(n.Payload, &body); err != nil {
		return Message{}, fmt.Errorf("notification %s: %w", n.ID, err)
	}
	o := body.Data.Order
	v := view{
		ShopName: m.cfg.ShopName, Reference: o.ID, Total: money.Format(o.AmountTotal, o.Currency),
		Email: o.Email, SessionID: o.SessionID,
		OrderURL: m.absolute(m.cfg.Links.PagePath(o.ID)), AdminURL: m.absolute("/admin/orders"),
	}
	for _, it := range o.Items {
		v.Items = append(v.Items, line{Name: it.Name, Quantity: it.Quantity, Amount: money.Format(it.UnitAmount*it.Quantity, o.Currency)})
	}
	v.AdminOrderURL = m.absolute("/admin/orders/" + url.PathEscape(o.ID))
	switch n.Type {
	case orders.NotifyOrderRefunded, orders.NotifyOrderPartiallyRefunded:
		refundView(&v, o, n.Type == orders.NotifyOrderRefunded)
		if body.Data.RefundedNow > 0 {
			v.ThisRefund = money.Format(body.Data.RefundedNow, o.Currency)
		}
	case orders.NotifyDisputeOpened, orders.NotifyDisputeClosed:
		if o.Dispute == nil {
			return Message{}, fmt.Errorf("notification %s: %s without a dispute in the order", n.ID, n.Type)
		}
		v.Dispute = disputeView(*o.Dispute, o.Currency)
	}
	msg := Message{MessageID: n.ID + "@" + m.domain, To: n.Recipient}
	var buf bytes.Buffer
	if err := m.text[name].ExecuteTemplate(&buf, "subject", v); err != nil {
		return Message{}, fmt.Errorf("render %s subject: %w", name, err)
	}
	msg.Subject = strings.Join(strings.Fields(buf.String()), " ") // one line, whatever the data
	buf.Reset()
	if err := m.text[name].ExecuteTemplate(&buf, "text", v); err != nil {
		return Message{}, fmt.Errorf("render %s text: %w", name, err)
	}
	msg.Text = strings.TrimLeft(buf.String(), "\n")
	buf.Reset()
	if err := m.html[name].ExecuteTemplate(&buf, "html", v); err != nil {
		return Message{}, fmt.Errorf("render %s html: %w", name, err)
	}
	msg.HTML = buf.String()
	return msg, nil
}

// refundView fills in what the refund emails say from the order after the
// refund. What this refund added comes with the notification (refundedNow);
// for a body without it, it is told only when the refunds the order lists
// account for all that was refunded (then it is the newest of them).
func refundView(v *view, o orders.Order, full bool) {
	paid := o.AmountPaid
	if paid <= 0 {
		paid = o.AmountTotal
	}
	v.Paid, v.Refunded = money.Format(paid, o.Currency), money.Format(o.AmountRefunded, o.Currency)
	v.Remaining = money.Format(max(paid-o.AmountRefunded, 0), o.Currency)
	v.FullyRefunded = full
	var sum int64
	var newest *orders.Refund
	for i, r := range o.Refunds {
		if r.FailedAt != 0 || r.Status == "failed" || r.Status == "canceled" {
			continue // its money came back: it refunded nothing
		}
		sum += r.Amount
		if newest == nil || !r.CreatedAt.Before(newest.CreatedAt) {
			newest = &o.Refunds[i]
		}
		status := "on its way"
		if r.Status == "succeeded" {
			status = "sent"
		}
		v.Refunds = append(v.Refunds, refundLine{Amount: money.Format(r.Amount, o.Currency), Date: r.CreatedAt.UTC().Format(time.DateOnly), Status: status})
	}
	if newest != nil && sum == o.AmountRefunded {
		v.ThisRefund = money.Format(newest.Amount, o.Currency)
	}
}

// disputeView describes a dispute for the owner.
func disputeView(d orders.Dispute, currency string) *disputeLine {
	out := &disputeLine{ID: d.ID, Amount: money.Format(d.Amount, currency), Status: d.Status,
		Reason: strings.ReplaceAll(d.Reason, "_", " "), NeedsResponse: d.NeedsResponse(), Inquiry: strings.HasPrefix(d.Status, "warning_")}
	if d.EvidenceDueBy != nil {
		out.EvidenceDueBy = d.EvidenceDueBy.UTC().Format("2006-01-02 15:04 UTC")
	}
	switch d.Status {
	case "won":
		out.Outcome, out.OutcomeText = "won", "You won the dispute: the "+out.Amount+" stays yours and returns to your balance."
	case "lost":
		out.Outcome, out.OutcomeText = "lost", "The dispute was lost: the "+out.Amount+" went back to the shopper, and the order shows dispute_lost."
	case "warning_closed":
		out.Outcome, out.OutcomeText = "inquiry closed", "The inquiry closed without becoming a dispute: nothing was taken from your balance."
	default:
		out.Outcome, out.OutcomeText = d.Status, "The dispute closed with the status "+d.Status+"; see the Stripe Dashboard."
	}
	return out
}

func (m *Mailer) absolute(path string) string {
	base := strings.TrimRight(m.cfg.BaseURL.String(), "/")
	return base + path
}

// Send renders and sends one notification's email; nil means the server
// took it.
func (m *Mailer) Send(ctx context.Context, n orders.Notification) error {
	msg, err := m.Render(n)
	if err != nil {
		return err
	}
	gm := gomail.NewMsg()
	if err := gm.FromFormat(m.from.Name, m.from.Address); err != nil {
		return fmt.Errorf("from: %w", err)
	}
	if err := gm.To(msg.To); err != nil {
		return fmt.Errorf("recipient: %w", err)
	}
	gm.Subject(msg.Subject)
	gm.SetMessageIDWithValue(msg.MessageID)
	gm.SetDate()
	gm.SetBodyString(gomail.TypeTextPlain, msg.Text)
	gm.AddAlternativeString(gomail.TypeTextHTML, msg.HTML)
	c, err := gomail.NewClient(m.cfg.SMTP.Host, m.dialOpts...)
	if err != nil {
		return fmt.Errorf("smtp client: %w", err)
	}
	if err := c.DialAndSendWithContext(ctx, gm); err != nil {
		if errors.Is(err, gomail.ErrNoSupportedAuthDiscovered) {
			// go-mail sends a password in clear (PLAIN, LOGIN) only over TLS.
			err = fmt.Errorf("%w: the server offers no TLS, or no login mechanism that keeps the password secret without it; use smtps://, a server with STARTTLS, or SMTP_URL without a user", err)
		}
		return fmt.Errorf("send to %s: %w", net.JoinHostPort(m.cfg.SMTP.Host, strconv.Itoa(m.cfg.SMTP.Port)), err)
	}
	return nil
}
