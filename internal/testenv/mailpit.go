package testenv

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// Mailbox reads what a mailpit received, through its HTTP API.
type Mailbox struct {
	URL string // the API base, as Mailpit returns it
}

// MailAddress is an address as mailpit shows it.
type MailAddress struct {
	Name    string
	Address string
}

// MailMessage is a message as mailpit shows it. A search fills everything
// but Text and HTML; Message fills those too.
type MailMessage struct {
	ID        string // mailpit's id of the message
	MessageID string // the Message-ID header, without the angle brackets
	From      MailAddress
	To        []MailAddress
	Subject   string
	Text      string // the text/plain part
	HTML      string // the text/html part
}

// Search returns the messages matching query, in mailpit's search syntax
// (to:ADDRESS, subject:WORD, message-id:ID...), newest first.
func (b Mailbox) Search(t testing.TB, query string) []MailMessage {
	t.Helper()
	var res struct {
		Messages []MailMessage `json:"messages"`
	}
	b.get(t, "/api/v1/search?"+url.Values{"query": {query}, "limit": {"100"}}.Encode(), &res)
	return res.Messages
}

// Wait searches until at least n messages match query, and returns them;
// it fails the test if they have not all arrived within timeout.
func (b Mailbox) Wait(t testing.TB, query string, n int, timeout time.Duration) []MailMessage {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := b.Search(t, query)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("mailpit %s: got %d messages for %q after %v, want %d", b.URL, len(got), query, timeout, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Message returns the message with mailpit's id, with its text and HTML
// parts.
func (b Mailbox) Message(t testing.TB, id string) MailMessage {
	t.Helper()
	var m MailMessage
	b.get(t, "/api/v1/message/"+url.PathEscape(id), &m)
	return m
}

// Headers returns the top-level headers of the message with mailpit's id.
func (b Mailbox) Headers(t testing.TB, id string) map[string][]string {
	t.Helper()
	h := map[string][]string{}
	b.get(t, "/api/v1/message/"+url.PathEscape(id)+"/headers", &h)
	return h
}

func (b Mailbox) get(t testing.TB, path string, v any) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(b.URL + path)
	if err != nil {
		t.Fatalf("mailpit: GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("mailpit: GET %s: got %s, want 200 OK", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("mailpit: GET %s: decode: %v", path, err)
	}
}
