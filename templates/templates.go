// Package templates holds the shop's HTML templates. The web package parses
// them once at start-up.
package templates

import "embed"

// FS holds layout.html, the page templates and the partials.
//
//go:embed *.html
var FS embed.FS
