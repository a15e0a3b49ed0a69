package config

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestEnvExampleListsEveryVariable keeps .env.example complete: every
// variable Load reads must be there.
func TestEnvExampleListsEveryVariable(t *testing.T) {
	example, err := os.ReadFile("../../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("config.go")
	if err != nil {
		t.Fatal(err)
	}
	read := map[string]bool{}
	for _, m := range regexp.MustCompile(`get(?:env)?\("([A-Z_]+)"\)`).FindAllStringSubmatch(string(src), -1) {
		read[m[1]] = true
	}
	if len(read) < 20 {
		t.Fatalf("found only %d variables in config.go; the pattern is stale", len(read))
	}
	for name := range read {
		if !regexp.MustCompile(`(?m)^` + name + `=`).Match(example) {
			t.Errorf(".env.example lacks %s", name)
		}
	}
	if strings.Contains(string(example), "sk_live_") {
		t.Error(".env.example holds a live key")
	}
}
