// Package templates holds the shop's HTML pages and its emails. The web and
// mail packages parse them once at start-up.
package templates

import "embed"

// FS holds layout.html, the page templates and the partials, and under
// email/ a plain-text (.txt: "subject" and "text") and an HTML (.html:
// "html") template per kind of email.
//
//go:embed *.html email/*.txt email/*.html
var FS embed.FS
