package testenv

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// fakeSMTP greets every connection with greeting.
func fakeSMTP(t *testing.T, greeting string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte(greeting + "\r\n"))
			c.Close()
		}
	}()
	return ln.Addr().String()
}

func fakeAPI(t *testing.T, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/messages" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestProbeMailpit(t *testing.T) {
	const list = `{"total":0,"unread":0,"messages_count":0,"start":0,"tags":[],"messages":[]}`
	closed := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}()
	tests := []struct {
		name      string
		smtp, api string
		want      string // in the error; "" for none
	}{
		{"mailpit", fakeSMTP(t, "220 host Mailpit ESMTP Service ready"), fakeAPI(t, list), ""},
		{"another API", fakeSMTP(t, "220 ready"), fakeAPI(t, `{"status":"ok"}`), "not as mailpit's API does"},
		{"no API", fakeSMTP(t, "220 ready"), "http://" + closed, "refused"},
		{"no SMTP", closed, fakeAPI(t, list), "refused"},
		{"SMTP refuses", fakeSMTP(t, "554 go away"), fakeAPI(t, list), "greeted with 554"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := probeMailpit(tt.smtp, tt.api)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("got %v, want no error", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
}
