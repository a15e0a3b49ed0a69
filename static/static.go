// Package static holds the shop's browser assets: script, styles and images.
package static

import "embed"

// FS holds main.js, style.css and the images.
//
//go:embed *.js *.css *.svg
var FS embed.FS
