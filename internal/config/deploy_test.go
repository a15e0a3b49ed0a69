package config

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestComposeKeepsThingsPrivate reads compose.yaml: no published port is
// open on every interface of the host, and no unauthenticated metrics
// listener is set on every interface of a container.
func TestComposeKeepsThingsPrivate(t *testing.T) {
	b, err := os.ReadFile("../../compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	ports := regexp.MustCompile(`(?m)^\s*-\s*"?([^"\s]+)"?\s*$`)
	inPorts := false
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "ports:":
			inPorts = true
			continue
		case !strings.HasPrefix(trimmed, "-"):
			inPorts = false
		}
		if !inPorts {
			continue
		}
		m := ports.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if parts := strings.Split(m[1], ":"); len(parts) < 3 || parts[0] != "127.0.0.1" {
			t.Errorf("compose.yaml publishes %q on every interface: bind it to 127.0.0.1", m[1])
		}
	}
	for _, m := range regexp.MustCompile(`METRICS_ADDR:\s*"?([^"\s]*)"?`).FindAllStringSubmatch(text, -1) {
		if host, _, _ := strings.Cut(m[1], ":"); host == "" || host == "0.0.0.0" || host == "[::]" {
			t.Errorf("compose.yaml serves unauthenticated metrics on every interface (METRICS_ADDR %q)", m[1])
		}
	}
}
