package mail_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shopcheckout/shop/internal/config"
	"github.com/shopcheckout/shop/internal/mail"
	"github.com/shopcheckout/shop/internal/orders"
	"github.com/shopcheckout/shop/internal/outbox"
	"github.com/shopcheckout/shop/internal/sqlite"
	"github.com/shopcheckout/shop/internal/storetest"
	"github.com/shopcheckout/shop/internal/testenv"
	"github.com/shopcheckout/shop/templates"
)

const (
	testFrom     = "Test Shop <orders@shop.example.com>"
	testShopName = "Test Shop"
	testBase     = "https://shop.example.com/store" // a base with a path: links keep it
)

var testLinks = orders.LinkKey("0123456789abcdef0123456789abcdef")

func testConfig(t testing.TB) mail.Config {
	t.Helper()
	base, err := url.Parse(testBase)
	if err != nil {
		t.Fatal(err)
	}
	return mail.Config{
		SMTP:      config.SMTP{Host: "127.0.0.1", Port: 1},
		From:      testFrom,
		ShopName:  testShopName,
		BaseURL:   base,
		Links:     testLinks,
		Templates: templates.FS,
		Timeout:   5 * time.Second,
	}
}

func newMailer(t testing.TB, cfg mail.Config) *mail.Mailer {
	t.Helper()
	m, err := mail.New(cfg)
	if err != nil {
		t.Fatalf("mail.New: %v", err)
	}
	return m
}

// paidOrder is a paid order of two lines: 2 T-shirts at $20.00 and a mug at
// $12.50.
func paidOrder(id, email string) orders.Order {
	now := time.Date(2025, 6, 7, 8, 9, 10, 0, time.UTC)
	return orders.Order{
		ID:     id,
		Status: orders.StatusPaid,
		Items: []orders.Item{
			{ProductID: "tshirt", Name: "T-shirt", UnitAmount: 2000, Quantity: 2},
			{ProductID: "mug", Name: "Mug", UnitAmount: 1250, Quantity: 1},
		},
		AmountTotal: 5250, Currency: "usd", SessionID: "cs_" + id, Email: email,
		CreatedAt: now, UpdatedAt: now, PaidAt: &now, FulfilledAt: &now,
	}
}

// notification is what the outbox would hand a sender for o's payment on
// ch.
func notification(t testing.TB, id string, ch orders.Channel, recipient string, o orders.Order) orders.Notification {
	t.Helper()
	return notificationOf(t, orders.NotifyOrderPaid, id, ch, recipient, o)
}

// notificationOf is what the outbox would hand a sender for a notification
// of type typ about o on ch.
func notificationOf(t testing.TB, typ, id string, ch orders.Channel, recipient string, o orders.Order) orders.Notification {
	t.Helper()
	body, err := json.Marshal(orders.WebhookBody{ID: id, Type: typ, Created: 1749283750, Data: orders.WebhookData{Order: o.Public()}})
	if err != nil {
		t.Fatal(err)
	}
	return orders.Notification{ID: id, OrderID: o.ID, Type: typ, Channel: ch, Recipient: recipient,
		Status: orders.NotificationPending, Payload: body}
}

func render(t testing.TB, m *mail.Mailer, n orders.Notification) mail.Message {
	t.Helper()
	msg, err := m.Render(n)
	if err != nil {
		t.Fatalf("Render(%s to %s): %v", n.Type, n.Channel, err)
	}
	return msg
}

// wantItems are the lines of paidOrder as the emails show them.
var wantItems = []struct{ qty, name, amount string }{{"2", "T-shirt", "$40.00"}, {"1", "Mug", "$12.50"}}

// checkItems checks that text has a line per item with its quantity, name
// and amount, and html a table row with the same.
func checkItems(t testing.TB, text, html string) {
	t.Helper()
	for _, it := range wantItems {
		line := regexp.MustCompile(`(?m)^` + it.qty + ` x ` + regexp.QuoteMeta(it.name) + `\s+` + regexp.QuoteMeta(it.amount) + `\r?$`)
		if !line.MatchString(text) {
			t.Errorf("text: got %q, want a line %q x %q %q", text, it.qty, it.name, it.amount)
		}
		row := regexp.MustCompile(`<td>` + regexp.QuoteMeta(it.name) + `</td>\s*<td[^>]*>` + it.qty + `</td>\s*<td[^>]*>` + regexp.QuoteMeta(it.amount) + `</td>`)
		if !row.MatchString(html) {
			t.Errorf("html: got %q, want a row %q, %q, %q", html, it.name, it.qty, it.amount)
		}
	}
}

func TestRenderCustomer(t *testing.T) {
	m := newMailer(t, testConfig(t))
	o := paidOrder("ord_render1", "buyer@example.com")
	msg := render(t, m, notification(t, "ntf_render1", orders.ChannelEmailCustomer, o.Email, o))

	if got, want := msg.To, "buyer@example.com"; got != want {
		t.Errorf("To: got %q, want %q", got, want)
	}
	if got, want := msg.Subject, "Your order ord_render1 is confirmed"; got != want {
		t.Errorf("Subject: got %q, want %q", got, want)
	}
	if got, want := msg.MessageID, "ntf_render1@shop.example.com"; got != want {
		t.Errorf("MessageID: got %q, want %q (the notification id at MAIL_FROM's domain)", got, want)
	}
	checkItems(t, msg.Text, msg.HTML)
	orderURL := testBase + "/orders/ord_render1?token=" + testLinks.Token("ord_render1")
	for _, want := range []string{"Total: $52.50", "Order reference: ord_render1", orderURL, testShopName} {
		if !strings.Contains(msg.Text, want) {
			t.Errorf("text: got %q, want it to contain %q", msg.Text, want)
		}
	}
	for _, want := range []string{"<strong>$52.50</strong>", "<code>ord_render1</code>", `href="` + orderURL + `"`, testShopName} {
		if !strings.Contains(msg.HTML, want) {
			t.Errorf("html: got %q, want it to contain %q", msg.HTML, want)
		}
	}
	if !testLinks.Valid("ord_render1", mustToken(t, orderURL)) {
		t.Errorf("the order link %s does not open the order page", orderURL)
	}
	if strings.Contains(msg.Text+msg.HTML, "/admin") {
		t.Error("the shopper's email links to the admin pages")
	}
}

func mustToken(t testing.TB, link string) string {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("token")
}

func TestRenderOwner(t *testing.T) {
	m := newMailer(t, testConfig(t))
	o := paidOrder("ord_render2", "buyer@example.com")
	msg := render(t, m, notification(t, "ntf_render2", orders.ChannelEmailOwner, "owner@example.com", o))

	if got, want := msg.To, "owner@example.com"; got != want {
		t.Errorf("To: got %q, want %q", got, want)
	}
	if got, want := msg.Subject, "New order ord_render2: $52.50"; got != want {
		t.Errorf("Subject: got %q, want %q", got, want)
	}
	if got, want := msg.MessageID, "ntf_render2@shop.example.com"; got != want {
		t.Errorf("MessageID: got %q, want %q", got, want)
	}
	checkItems(t, msg.Text, msg.HTML)
	for _, want := range []string{"Shopper: buyer@example.com", "Total: $52.50", "ord_render2", "cs_ord_render2", testBase + "/admin/orders"} {
		if !strings.Contains(msg.Text, want) {
			t.Errorf("text: got %q, want it to contain %q", msg.Text, want)
		}
	}
	for _, want := range []string{"Shopper: buyer@example.com", "$52.50", "ord_render2", "cs_ord_render2", `href="` + testBase + `/admin/orders"`} {
		if !strings.Contains(msg.HTML, want) {
			t.Errorf("html: got %q, want it to contain %q", msg.HTML, want)
		}
	}
	// The owner's email carries no link that opens the order page as the shopper.
	if strings.Contains(msg.Text+msg.HTML, testLinks.Token("ord_render2")) {
		t.Error("the owner's email holds the shopper's order-page token")
	}

	o.Email = ""
	msg = render(t, m, notification(t, "ntf_render3", orders.ChannelEmailOwner, "owner@example.com", o))
	if !strings.Contains(msg.Text, "Shopper: (no email)") || !strings.Contains(msg.HTML, "Shopper: (no email)") {
		t.Errorf("without a shopper email: got text %q, html %q; want Shopper: (no email)", msg.Text, msg.HTML)
	}
}

// TestRenderEscapesHTML renders item names and an email address written to
// break out of the markup: the HTML part shows them as text.
func TestRenderEscapesHTML(t *testing.T) {
	m := newMailer(t, testConfig(t))
	hostile := `<script>alert("x")</script><img src=x onerror=alert(1)> & "quotes"`
	o := paidOrder("ord_hostile", `"<b>bold</b>"@example.com`)
	o.Items[0].Name = hostile
	for _, ch := range []orders.Channel{orders.ChannelEmailCustomer, orders.ChannelEmailOwner} {
		msg := render(t, m, notification(t, "ntf_hostile", ch, "owner@example.com", o))
		for _, bad := range []string{"<script", "<img", "<b>"} {
			if strings.Contains(msg.HTML, bad) {
				t.Errorf("%s html: got %q, want no %s element", ch, msg.HTML, bad)
			}
		}
		if !strings.Contains(msg.HTML, "&lt;script&gt;") {
			t.Errorf("%s html: got %q, want the name shown escaped", ch, msg.HTML)
		}
		if !strings.Contains(msg.Text, hostile) {
			t.Errorf("%s text: got %q, want the name as it is", ch, msg.Text)
		}
	}
}

// TestRenderSubjectIsOneLine gives the subject's data line breaks: they
// must not end the header and start another.
func TestRenderSubjectIsOneLine(t *testing.T) {
	m := newMailer(t, testConfig(t))
	o := paidOrder("ord_1\r\nBcc: victim@example.com\n\tX", "buyer@example.com")
	for _, ch := range []orders.Channel{orders.ChannelEmailCustomer, orders.ChannelEmailOwner} {
		msg := render(t, m, notification(t, "ntf_subject", ch, "buyer@example.com", o))
		if strings.ContainsAny(msg.Subject, "\r\n\t") {
			t.Errorf("%s: got subject %q, want one line", ch, msg.Subject)
		}
		if !strings.Contains(msg.Subject, "ord_1 Bcc: victim@example.com X") {
			t.Errorf("%s: got subject %q, want the breaks turned into spaces", ch, msg.Subject)
		}
	}
}

func TestRenderRejects(t *testing.T) {
	m := newMailer(t, testConfig(t))
	o := paidOrder("ord_rejects", "buyer@example.com")
	webhook := notification(t, "ntf_r1", orders.ChannelWebhook, "", o)
	otherType := notification(t, "ntf_r2", orders.ChannelEmailCustomer, o.Email, o)
	otherType.Type = "order.shipped"
	unknownChannel := notification(t, "ntf_r3", "sms", "+15550100", o)
	badPayload := notification(t, "ntf_r4", orders.ChannelEmailCustomer, o.Email, o)
	badPayload.Payload = []byte("{")
	noDispute := notificationOf(t, orders.NotifyDisputeOpened, "ntf_r5", orders.ChannelEmailOwner, "owner@example.com", o)
	refundToOwner := notificationOf(t, orders.NotifyOrderRefunded, "ntf_r6", orders.ChannelEmailOwner, "owner@example.com", o)
	disputeToShopper := notificationOf(t, orders.NotifyDisputeOpened, "ntf_r7", orders.ChannelEmailCustomer, o.Email, disputed(o, "needs_response"))
	for name, n := range map[string]orders.Notification{
		"webhook channel": webhook, "unknown type": otherType, "unknown channel": unknownChannel, "bad payload": badPayload,
		"dispute email without a dispute": noDispute, "refund to the owner": refundToOwner, "dispute to the shopper": disputeToShopper,
	} {
		if msg, err := m.Render(n); err == nil {
			t.Errorf("%s: got %+v, want an error", name, msg)
		}
		if err := m.Send(t.Context(), n); err == nil {
			t.Errorf("%s: Send got nil error, want one", name)
		}
	}
}

// emailFS is the shop's email templates with some files replaced (an
// empty value removes the file).
func emailFS(t testing.TB, replace map[string]string) fs.FS {
	t.Helper()
	out := fstest.MapFS{}
	names, err := fs.Glob(templates.FS, "email/*")
	if err != nil || len(names) == 0 {
		t.Fatalf("email templates: %v, %d files", err, len(names))
	}
	for _, name := range names {
		b, err := fs.ReadFile(templates.FS, name)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = &fstest.MapFile{Data: b}
	}
	for name, text := range replace {
		if text == "" {
			delete(out, name)
			continue
		}
		out[name] = &fstest.MapFile{Data: []byte(text)}
	}
	return out
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name   string
		change func(*mail.Config)
		want   string // in the error
	}{
		{"no from", func(c *mail.Config) { c.From = "" }, "MAIL_FROM"},
		{"bad from", func(c *mail.Config) { c.From = "the shop" }, "MAIL_FROM"},
		{"no base URL", func(c *mail.Config) { c.BaseURL = nil }, "base URL"},
		{"no link key", func(c *mail.Config) { c.Links = nil }, "link key"},
		{"no templates", func(c *mail.Config) { c.Templates = nil }, "templates"},
		{"empty template FS", func(c *mail.Config) { c.Templates = fstest.MapFS{} }, "pattern matches no files"},
		{"missing refund text", func(c *mail.Config) {
			c.Templates = emailFS(t, map[string]string{"email/order_refund_customer.txt": ""})
		}, "order_refund_customer.txt"},
		{"missing dispute html", func(c *mail.Config) {
			c.Templates = emailFS(t, map[string]string{"email/dispute_closed_owner.html": ""})
		}, "dispute_closed_owner.html"},
		{"missing html", func(c *mail.Config) {
			c.Templates = emailFS(t, map[string]string{"email/order_paid_owner.html": ""})
		}, "order_paid_owner.html"},
		{"text without subject", func(c *mail.Config) {
			c.Templates = emailFS(t, map[string]string{"email/order_paid_customer.txt": `{{define "text"}}hi{{end}}`})
		}, "must define subject and text"},
		{"html without html", func(c *mail.Config) {
			c.Templates = emailFS(t, map[string]string{"email/order_paid_customer.html": `{{define "body"}}hi{{end}}`})
		}, "must define html"},
		{"html does not parse", func(c *mail.Config) {
			c.Templates = emailFS(t, map[string]string{"email/order_paid_owner.html": `{{define "html"}}{{.Total}{{end}}`})
		}, "order_paid_owner.html"},
		{"text does not parse", func(c *mail.Config) {
			c.Templates = emailFS(t, map[string]string{"email/order_paid_owner.txt": `{{define "subject"}}{{if}}{{end}}`})
		}, "order_paid_owner.txt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			tt.change(&cfg)
			m, err := mail.New(cfg)
			if err == nil {
				t.Fatalf("got a Mailer %v, want an error", m)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %q, want it to mention %q", err, tt.want)
			}
		})
	}
}

// TestRenderFailsOnATemplateError renders with templates that parse but
// fail on the data: Render says so rather than sending half an email.
func TestRenderFailsOnATemplateError(t *testing.T) {
	cfg := testConfig(t)
	cfg.Templates = emailFS(t, map[string]string{"email/order_paid_customer.html": `{{define "html"}}{{.NoSuchField}}{{end}}`})
	m := newMailer(t, cfg)
	o := paidOrder("ord_tplerr", "buyer@example.com")
	if msg, err := m.Render(notification(t, "ntf_tplerr", orders.ChannelEmailCustomer, o.Email, o)); err == nil {
		t.Errorf("got %+v, want an error", msg)
	}
}

// unique returns a lower-case token no other test run uses, for
// recipients and ids in the shared mailpit.
func unique() string { return strings.ToLower(rand.Text()[:12]) }

func splitAddr(t testing.TB, addr string) (string, int) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return host, n
}

// TestSendToMailpit sends both emails of an order through a real SMTP
// server and reads them back through mailpit's API.
func TestSendToMailpit(t *testing.T) {
	smtpAddr, apiURL := testenv.Mailpit(t)
	box := testenv.Mailbox{URL: apiURL}
	host, port := splitAddr(t, smtpAddr)
	id := unique()
	customer, owner := "buyer-"+id+"@example.test", "owner-"+id+"@example.test"
	o := paidOrder("ord_send_"+id, customer)

	cfg := testConfig(t)
	cfg.SMTP = config.SMTP{Host: host, Port: port}
	m := newMailer(t, cfg)
	for _, tt := range []struct {
		name      string
		ch        orders.Channel
		recipient string
	}{
		{"customer", orders.ChannelEmailCustomer, customer},
		{"owner", orders.ChannelEmailOwner, owner},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := notification(t, "ntf_send_"+string(tt.ch)+"_"+id, tt.ch, tt.recipient, o)
			want := render(t, m, n)
			if err := m.Send(t.Context(), n); err != nil {
				t.Fatalf("Send: %v", err)
			}
			got := box.Wait(t, "to:"+tt.recipient, 1, 10*time.Second)
			if len(got) != 1 {
				t.Fatalf("mailpit holds %d messages to %s, want 1", len(got), tt.recipient)
			}
			msg := box.Message(t, got[0].ID)
			gotHead := map[string]any{"from": msg.From, "to": msg.To, "subject": msg.Subject, "message-id": msg.MessageID}
			wantHead := map[string]any{
				"from": testenv.MailAddress{Name: testShopName, Address: "orders@shop.example.com"},
				"to":   []testenv.MailAddress{{Address: tt.recipient}}, "subject": want.Subject,
				"message-id": n.ID + "@shop.example.com",
			}
			if diff := cmp.Diff(wantHead, gotHead); diff != "" {
				t.Errorf("received message (-want +got):\n%s", diff)
			}
			checkItems(t, msg.Text, msg.HTML)
			if !strings.Contains(msg.Text, o.ID) || !strings.Contains(msg.HTML, o.ID) {
				t.Errorf("got text %q, html %q; want both to name %s", msg.Text, msg.HTML, o.ID)
			}
			h := box.Headers(t, got[0].ID)
			if ids := h["Message-Id"]; len(ids) != 1 || ids[0] != "<"+n.ID+"@shop.example.com>" {
				t.Errorf("Message-ID header: got %q, want <%s@shop.example.com>", ids, n.ID)
			}
			if ct := h["Content-Type"]; len(ct) != 1 || !strings.HasPrefix(ct[0], "multipart/alternative") {
				t.Errorf("Content-Type: got %q, want multipart/alternative (a text and an HTML part)", ct)
			}
			if d := h["Date"]; len(d) != 1 {
				t.Errorf("Date header: got %q, want one", d)
			}
		})
	}
}

// TestSendKeepsThePasswordSecret sends with a user and password to a
// server that offers to take them only in clear (mailpit: no TLS, AUTH
// PLAIN and LOGIN): Send refuses, says why, and nothing is sent.
func TestSendKeepsThePasswordSecret(t *testing.T) {
	smtpAddr, apiURL := testenv.Mailpit(t)
	host, port := splitAddr(t, smtpAddr)
	cfg := testConfig(t)
	cfg.SMTP = config.SMTP{Host: host, Port: port, Username: "shop", Password: "secretpw"}
	m := newMailer(t, cfg)
	id := unique()
	rcpt := "buyer-" + id + "@example.test"
	o := paidOrder("ord_auth_"+id, rcpt)
	err := m.Send(t.Context(), notification(t, "ntf_auth_"+id, orders.ChannelEmailCustomer, rcpt, o))
	if err == nil {
		t.Fatal("Send with a password over plain SMTP: got nil error, want a refusal")
	}
	for _, want := range []string{smtpAddr, "smtps://", "SMTP_URL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("got error %q, want it to mention %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "secretpw") {
		t.Errorf("error shows the password: %v", err)
	}
	time.Sleep(100 * time.Millisecond)
	if got := (testenv.Mailbox{URL: apiURL}).Search(t, "to:"+rcpt); len(got) != 0 {
		t.Errorf("mailpit got %d messages, want none", len(got))
	}
}

// flakyProxy stands between the mailer and mailpit: while down it accepts
// connections and drops them at once, as a mail server that is restarting
// does; while up it passes them through.
type flakyProxy struct {
	addr    string
	target  string
	up      atomic.Bool
	dropped atomic.Int32
	passed  atomic.Int32
}

func newFlakyProxy(t testing.TB, target string) *flakyProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &flakyProxy{addr: ln.Addr().String(), target: target}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed
			}
			if !p.up.Load() {
				p.dropped.Add(1)
				c.Close()
				continue
			}
			p.passed.Add(1)
			wg.Go(func() { p.pipe(c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return p
}

func (p *flakyProxy) pipe(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	u, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		return
	}
	defer u.Close()
	_ = u.SetDeadline(time.Now().Add(10 * time.Second))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(u, c)
		_ = u.(*net.TCPConn).CloseWrite()
	}()
	_, _ = io.Copy(c, u)
	_ = c.(*net.TCPConn).CloseWrite()
	<-done
}

// TestSMTPDownThenUp pays an order while the mail server is unreachable:
// the emails wait in the outbox, retried, and each arrives exactly once
// when the server is back.
func TestSMTPDownThenUp(t *testing.T) {
	smtpAddr, apiURL := testenv.Mailpit(t)
	box := testenv.Mailbox{URL: apiURL}
	proxy := newFlakyProxy(t, smtpAddr)
	host, port := splitAddr(t, proxy.addr)
	id := unique()
	customer, owner := "buyer-"+id+"@example.test", "owner-"+id+"@example.test"

	ctx := t.Context()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "shop.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	var d *outbox.Dispatcher // set before the first write
	svc := storetest.NewService(store, storetest.NewClock(),
		orders.WithClock(time.Now), // retries come due in real time
		orders.WithChannels(orders.Channels{EmailCustomer: true, OwnerEmail: owner}),
		orders.OnQueued(func() { d.Wake() }))
	key, err := svc.Secret(ctx, "order-page")
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.SMTP, cfg.Links, cfg.Timeout = config.SMTP{Host: host, Port: port}, orders.LinkKey(key), 2*time.Second
	m := newMailer(t, cfg)
	log := &testenv.SyncBuffer{}
	d, err = outbox.New(outbox.Config{
		Queue:   svc,
		Senders: map[orders.Channel]outbox.Sender{orders.ChannelEmailCustomer: m, orders.ChannelEmailOwner: m},
		Holder:  "mail-test", Log: slog.New(slog.NewTextHandler(log, nil)),
		Poll: 50 * time.Millisecond, Timeout: 3 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		d.Run(runCtx)
	}()
	t.Cleanup(func() {
		stop()
		<-stopped
		if t.Failed() {
			t.Logf("dispatcher log:\n%s", log)
		}
	})

	o := storetest.NewOrder("ord_down_" + id)
	storetest.Seed(t, store, o)
	if _, err := svc.HandleEvent(ctx, storetest.CompletedEvent("evt_down_"+id, o, "paid", func(s *orders.Session) { s.Email = customer })); err != nil {
		t.Fatalf("HandleEvent: %v", err)
	}

	// While the server is down: every email is tried, fails, and waits for
	// a retry; one attempt after another, with a reason.
	ns := waitNotifications(t, svc, o.ID, 10*time.Second, "both emails failed twice", func(n orders.Notification) bool {
		return n.Attempts >= 2
	})
	recipients := map[orders.Channel]string{}
	for _, n := range ns {
		recipients[n.Channel] = n.Recipient
		if n.Status != orders.NotificationPending || n.LastError == "" || n.NextAttempt == nil || n.DeliveredAt != nil {
			t.Errorf("while down: got %+v, want pending with a last error and a next attempt", n)
		}
		if !strings.Contains(n.LastError, proxy.addr) {
			t.Errorf("last error %q does not name the server %s", n.LastError, proxy.addr)
		}
	}
	if diff := cmp.Diff(map[orders.Channel]string{orders.ChannelEmailCustomer: customer, orders.ChannelEmailOwner: owner}, recipients); diff != "" {
		t.Errorf("queued emails (-want +got):\n%s", diff)
	}
	if err := m.Send(ctx, ns[0]); err == nil {
		t.Error("Send while the server is down: got nil error, want one")
	}
	if n := proxy.dropped.Load(); n < 4 {
		t.Errorf("the proxy dropped %d connections, want at least 4 (2 emails x 2 attempts)", n)
	}
	for _, rcpt := range []string{customer, owner} {
		if got := box.Search(t, "to:"+rcpt); len(got) != 0 {
			t.Errorf("while down, mailpit got %d messages to %s, want 0", len(got), rcpt)
		}
	}

	proxy.up.Store(true)
	ns = waitNotifications(t, svc, o.ID, 10*time.Second, "both emails delivered", func(n orders.Notification) bool {
		return n.Status == orders.NotificationDelivered
	})
	for _, n := range ns {
		if n.Attempts < 3 || n.DeliveredAt == nil || n.LastError != "" || n.NextAttempt != nil {
			t.Errorf("after the server is back: got %+v, want delivered after at least 3 attempts", n)
		}
	}
	byRecipient := map[string]orders.Notification{}
	for _, n := range ns {
		byRecipient[n.Recipient] = n
	}
	time.Sleep(300 * time.Millisecond) // several polls: time for a second, wrong delivery
	for _, rcpt := range []string{customer, owner} {
		got := box.Wait(t, "to:"+rcpt, 1, 5*time.Second)
		if len(got) != 1 {
			t.Fatalf("mailpit got %d messages to %s, want exactly 1", len(got), rcpt)
		}
		if want := byRecipient[rcpt].ID + "@shop.example.com"; got[0].MessageID != want {
			t.Errorf("message to %s: got Message-ID %q, want %q", rcpt, got[0].MessageID, want)
		}
	}
	msg := box.Message(t, box.Search(t, "to:"+customer)[0].ID)
	if want := testBase + "/orders/" + o.ID + "?token=" + orders.LinkKey(key).Token(o.ID); !strings.Contains(msg.Text, want) {
		t.Errorf("confirmation text: got %q, want the order link %s", msg.Text, want)
	}
}

// waitNotifications waits until the order has notifications and every one
// satisfies ok, and returns them; it fails the test after timeout.
func waitNotifications(t testing.TB, svc *orders.Service, orderID string, timeout time.Duration, what string, ok func(orders.Notification) bool) []orders.Notification {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ns, err := svc.Notifications(t.Context(), []string{orderID})
		if err != nil {
			t.Fatalf("Notifications: %v", err)
		}
		all := len(ns) > 0
		for _, n := range ns {
			all = all && ok(n)
		}
		if all {
			return ns
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: got %+v, want %s", timeout, ns, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// refunded is o paid through a PaymentIntent, with refunds and refunded
// in all (which the charge's view may make more than the refunds listed).
func refunded(o orders.Order, refundedTotal int64, refunds ...orders.Refund) orders.Order {
	o.PaymentIntentID, o.AmountPaid, o.AmountRefunded, o.Refunds = "pi_"+o.ID, o.AmountTotal, refundedTotal, refunds
	o.Status = orders.StatusPartiallyRefunded
	if refundedTotal >= o.AmountPaid {
		o.Status = orders.StatusRefunded
	}
	return o
}

func refundOn(id string, amount int64, status string, day int) orders.Refund {
	r := orders.Refund{ID: id, Amount: amount, Status: status, CreatedAt: time.Date(2025, 6, day, 12, 0, 0, 0, time.UTC)}
	if status == "failed" || status == "canceled" {
		r.FailedAt = r.CreatedAt.Unix() + 60
	}
	return r
}

func TestRenderRefundCustomer(t *testing.T) {
	m := newMailer(t, testConfig(t))
	base := paidOrder("ord_refund", "buyer@example.com")
	orderURL := testBase + "/orders/ord_refund?token=" + testLinks.Token("ord_refund")
	tests := []struct {
		name        string
		typ         string
		order       orders.Order
		wantSubject string
		wantText    []string
		wantHTML    []string
		notText     []string
	}{
		{"first partial refund", orders.NotifyOrderPartiallyRefunded,
			refunded(base, 1000, refundOn("re_1", 1000, "succeeded", 8)),
			"Part of your order ord_refund was refunded",
			[]string{"We have refunded $10.00 of your order at Test Shop.", "Paid: $52.50", "Refunded so far: $10.00", "Still paid: $42.50",
				"2025-06-08    $10.00    sent", "5 to 10 business days", "Order reference: ord_refund", orderURL},
			[]string{"We have refunded <strong>$10.00</strong>", "<strong>$10.00</strong></td>", "$42.50", "<td>2025-06-08</td>", `href="` + orderURL + `"`},
			[]string{"refunded in full"}},
		{"second partial refund, still pending", orders.NotifyOrderPartiallyRefunded,
			refunded(base, 1500, refundOn("re_1", 1000, "succeeded", 8), refundOn("re_2", 500, "pending", 9)),
			"Part of your order ord_refund was refunded",
			[]string{"We have refunded $5.00 of your order", "Refunded so far: $15.00", "Still paid: $37.50",
				"2025-06-08    $10.00    sent", "2025-06-09    $5.00    on its way"},
			[]string{"<strong>$5.00</strong>", "<strong>$15.00</strong>", "on its way"},
			nil},
		{"refunded in full", orders.NotifyOrderRefunded,
			refunded(base, 5250, refundOn("re_1", 1000, "succeeded", 8), refundOn("re_2", 4250, "succeeded", 10)),
			"Your order ord_refund was refunded",
			[]string{"We have refunded $42.50 of your order", "Refunded so far: $52.50", "Your payment has been refunded in full."},
			[]string{"<strong>$42.50</strong>", "refunded in full"},
			[]string{"Still paid"}},
		{"a failed refund does not count", orders.NotifyOrderPartiallyRefunded,
			refunded(base, 700, refundOn("re_1", 1000, "failed", 8), refundOn("re_2", 700, "succeeded", 9)),
			"Part of your order ord_refund was refunded",
			[]string{"We have refunded $7.00 of your order", "Refunded so far: $7.00", "2025-06-09    $7.00    sent"},
			[]string{"<strong>$7.00</strong>"},
			[]string{"$10.00"}},
		{"only the charge's total is known", orders.NotifyOrderPartiallyRefunded,
			refunded(base, 2000),
			"Part of your order ord_refund was refunded",
			[]string{"We have refunded money on your order at Test Shop.", "Refunded so far: $20.00", "Still paid: $32.50"},
			[]string{"We have refunded money on your order", "<strong>$20.00</strong>"},
			[]string{"Refunds:"}},
		{"listed refunds short of the total", orders.NotifyOrderPartiallyRefunded,
			refunded(base, 3000, refundOn("re_1", 1000, "succeeded", 8)),
			"Part of your order ord_refund was refunded",
			[]string{"We have refunded money on your order", "Refunded so far: $30.00", "2025-06-08    $10.00    sent"},
			nil,
			[]string{"We have refunded $10.00"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := render(t, m, notificationOf(t, tt.typ, "ntf_refund", orders.ChannelEmailCustomer, "buyer@example.com", tt.order))
			if msg.To != "buyer@example.com" || msg.MessageID != "ntf_refund@shop.example.com" {
				t.Errorf("To %q, Message-ID %q: want the shopper, ntf_refund@shop.example.com", msg.To, msg.MessageID)
			}
			if msg.Subject != tt.wantSubject {
				t.Errorf("Subject: got %q, want %q", msg.Subject, tt.wantSubject)
			}
			for _, want := range tt.wantText {
				if !strings.Contains(msg.Text, want) {
					t.Errorf("text: got %q, want it to contain %q", msg.Text, want)
				}
			}
			for _, want := range tt.wantHTML {
				if !strings.Contains(msg.HTML, want) {
					t.Errorf("html: got %q, want it to contain %q", msg.HTML, want)
				}
			}
			for _, not := range tt.notText {
				if strings.Contains(msg.Text, not) {
					t.Errorf("text: got %q, want no %q", msg.Text, not)
				}
			}
			if strings.Contains(msg.Text+msg.HTML, "/admin") {
				t.Error("the shopper's email links to the admin pages")
			}
		})
	}
}

// disputed is o with a dispute in status, for all of its amount.
func disputed(o orders.Order, status string) orders.Order {
	due := time.Date(2025, 6, 20, 23, 59, 59, 0, time.UTC)
	o.PaymentIntentID, o.AmountPaid = "pi_"+o.ID, o.AmountTotal
	o.Dispute = &orders.Dispute{ID: "dp_" + o.ID, Status: status, Reason: "product_not_received", Amount: o.AmountTotal, EvidenceDueBy: &due}
	o.Status = orders.StatusDisputed
	if status == "lost" {
		o.Status = orders.StatusDisputeLost
	}
	return o
}

func TestRenderDisputeOwner(t *testing.T) {
	m := newMailer(t, testConfig(t))
	base := paidOrder("ord_dispute", "buyer@example.com")
	adminURL := testBase + "/admin/orders/ord_dispute"
	noDeadline := disputed(base, "under_review")
	noDeadline.Dispute.EvidenceDueBy = nil
	tests := []struct {
		name        string
		typ         string
		order       orders.Order
		wantSubject string
		want        []string // in the text and the HTML
		wantText    []string
		notText     []string
	}{
		{"opened, needs a response", orders.NotifyDisputeOpened, disputed(base, "needs_response"),
			"Dispute on order ord_dispute: $52.50, respond by 2025-06-20 23:59 UTC",
			[]string{"$52.50", "product not received", "needs_response", "2025-06-20 23:59 UTC", "ubmit evidence in the Stripe Dashboard",
				"accept the dispute", "buyer@example.com", "dp_ord_dispute", "ord_dispute", adminURL},
			[]string{"Amount disputed: $52.50", "Reason: product not received", "Evidence due by: 2025-06-20 23:59 UTC", "Shopper: buyer@example.com", "The order: " + adminURL},
			[]string{"nothing to send now", "inquiry"}},
		{"opened, an inquiry", orders.NotifyDisputeOpened, disputed(base, "warning_needs_response"),
			"Dispute on order ord_dispute: $52.50, respond by 2025-06-20 23:59 UTC",
			[]string{"warning_needs_response", "ubmit evidence", "This is an inquiry, not yet a chargeback", "refunding"},
			nil,
			[]string{"refuses refunds"}},
		{"opened, under review", orders.NotifyDisputeOpened, noDeadline,
			"Dispute on order ord_dispute: $52.50",
			[]string{"under_review", "(Stripe gave no deadline)", "nothing to send now", "The shop refuses refunds of this payment", adminURL},
			nil,
			[]string{"Submit evidence"}},
		{"won", orders.NotifyDisputeClosed, disputed(base, "won"),
			"Dispute on order ord_dispute closed: won",
			[]string{"You won the dispute: the $52.50 stays yours", "product not received", "dp_ord_dispute", adminURL},
			[]string{"is closed: won.", "Status: won"}, nil},
		{"lost", orders.NotifyDisputeClosed, disputed(base, "lost"),
			"Dispute on order ord_dispute closed: lost",
			[]string{"The dispute was lost: the $52.50 went back to the shopper", adminURL},
			[]string{"is closed: lost."}, nil},
		{"inquiry closed", orders.NotifyDisputeClosed, disputed(base, "warning_closed"),
			"Dispute on order ord_dispute closed: inquiry closed",
			[]string{"The inquiry closed without becoming a dispute"},
			nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := render(t, m, notificationOf(t, tt.typ, "ntf_dispute", orders.ChannelEmailOwner, "owner@example.com", tt.order))
			if msg.To != "owner@example.com" {
				t.Errorf("To: got %q, want owner@example.com", msg.To)
			}
			if msg.Subject != tt.wantSubject {
				t.Errorf("Subject: got %q, want %q", msg.Subject, tt.wantSubject)
			}
			for _, want := range tt.want {
				if !strings.Contains(msg.Text, want) {
					t.Errorf("text: got %q, want it to contain %q", msg.Text, want)
				}
				if !strings.Contains(msg.HTML, want) {
					t.Errorf("html: got %q, want it to contain %q", msg.HTML, want)
				}
			}
			for _, want := range tt.wantText {
				if !strings.Contains(msg.Text, want) {
					t.Errorf("text: got %q, want it to contain %q", msg.Text, want)
				}
			}
			for _, not := range tt.notText {
				if strings.Contains(msg.Text+msg.HTML, not) {
					t.Errorf("got text %q, html %q; want no %q", msg.Text, msg.HTML, not)
				}
			}
			if !strings.Contains(msg.HTML, `href="`+adminURL+`"`) {
				t.Errorf("html: got %q, want a link to %s", msg.HTML, adminURL)
			}
			if strings.Contains(msg.Text+msg.HTML, testLinks.Token("ord_dispute")) {
				t.Error("the owner's email holds the shopper's order-page token")
			}
		})
	}
}

// TestRenderAfterSaleEscapes gives the refund and dispute emails markup
// and header breaks where Stripe's or the shopper's text goes: the HTML
// shows it as text, the subject stays one line.
func TestRenderAfterSaleEscapes(t *testing.T) {
	m := newMailer(t, testConfig(t))
	hostile := `<script>alert("x")</script>`
	o := paidOrder("ord_"+hostile+"\r\nBcc: victim@example.com", `"<b>bold</b>"@example.com`)
	refund := refunded(o, 1000, refundOn("re_1", 1000, "succeeded", 8))
	dispute := disputed(o, "needs_response")
	dispute.Dispute.Reason, dispute.Dispute.ID = hostile, hostile
	for _, n := range []orders.Notification{
		notificationOf(t, orders.NotifyOrderPartiallyRefunded, "ntf_e1", orders.ChannelEmailCustomer, "buyer@example.com", refund),
		notificationOf(t, orders.NotifyOrderRefunded, "ntf_e2", orders.ChannelEmailCustomer, "buyer@example.com", refund),
		notificationOf(t, orders.NotifyDisputeOpened, "ntf_e3", orders.ChannelEmailOwner, "owner@example.com", dispute),
		notificationOf(t, orders.NotifyDisputeClosed, "ntf_e4", orders.ChannelEmailOwner, "owner@example.com", dispute),
	} {
		msg := render(t, m, n)
		for _, bad := range []string{"<script", "<b>"} {
			if strings.Contains(msg.HTML, bad) {
				t.Errorf("%s html: got %q, want no %s element", n.Type, msg.HTML, bad)
			}
		}
		if !strings.Contains(msg.HTML, "&lt;script&gt;") {
			t.Errorf("%s html: got %q, want the text shown escaped", n.Type, msg.HTML)
		}
		if strings.ContainsAny(msg.Subject, "\r\n") || !strings.Contains(msg.Subject, "Bcc: victim@example.com") {
			t.Errorf("%s: got subject %q, want one line", n.Type, msg.Subject)
		}
	}
}
