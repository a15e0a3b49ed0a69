package web

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strconv"
	"sync"
)

// pages holds every page template, parsed once: layout plus the page.
type pages struct {
	byName map[string]*template.Template
	bufs   sync.Pool
}

// pageNames lists the page templates; parsePages fails if one is missing.
var pageNames = []string{"home", "success", "cancelled", "error", "admin_orders", "admin_order", "order", "admin_alarms", "admin_products", "cart", "admin_overview"}

// partialNames lists the templates every page may include: admin_nav.html
// defines "admin_nav", the admin's row of links, which a page includes with
// the name of its own section (`{{template "admin_nav" "orders"}}`).
var partialNames = []string{"admin_nav"}

func parsePages(fsys fs.FS) (*pages, error) {
	p := &pages{byName: make(map[string]*template.Template, len(pageNames))}
	p.bufs.New = func() any { return new(bytes.Buffer) }
	files := []string{"layout.html"}
	for _, name := range partialNames {
		files = append(files, name+".html")
	}
	for _, name := range pageNames {
		t, err := template.New(name).ParseFS(fsys, append(files, name+".html")...)
		if err != nil {
			return nil, fmt.Errorf("parse template %s: %w", name, err)
		}
		if t.Lookup("layout") == nil {
			return nil, fmt.Errorf("parse template %s: no layout", name)
		}
		p.byName[name] = t
	}
	return p, nil
}

// Page is what the layout needs of a page; every page's view model embeds
// it, and so is a view.
type Page struct {
	Title    string
	ShopName string
	Demo     bool
}

// view is a page's view model: a struct that embeds Page.
type view interface{ layoutPage() Page }

func (p Page) layoutPage() Page { return p }

// frame is what the layout executes with: the page's Page, what the header
// shows for this request (the shopper's cart), and the page's own view
// model, which the page's "head" and "content" templates get as their dot.
// The header is the request's, not the page's, so handlers need not each
// read the cart.
type frame struct {
	Page Page
	Cart cartBadge
	View view
}

func newFrame(v view, c cartBadge) frame { return frame{Page: v.layoutPage(), Cart: c, View: v} }

// render renders a page with the request's cart in its header.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, v view) {
	s.renderFrame(w, r, status, name, newFrame(v, s.readCart(r).badge()))
}

// renderFrame executes a page into a pooled buffer and only then writes
// headers and body, so a template error never sends half a page.
func (s *Server) renderFrame(w http.ResponseWriter, r *http.Request, status int, name string, data frame) {
	t := s.pages.byName[name]
	buf := s.pages.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer s.pages.bufs.Put(buf)
	if t == nil {
		s.log.ErrorContext(r.Context(), "unknown page template", "page", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if err := t.ExecuteTemplate(buf, "layout", data); err != nil {
		s.log.ErrorContext(r.Context(), "render page", "page", name, "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	writeHTML(w, status, buf.Bytes())
}

// writeHTML writes a rendered page.
func writeHTML(w http.ResponseWriter, status int, page []byte) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(page)))
	w.WriteHeader(status)
	_, _ = w.Write(page)
}

// ShopName is the shop's name on every page and in every email.
const ShopName = "Stripe Checkout Shop"

func (s *Server) page(title string) Page {
	return Page{Title: title, ShopName: ShopName, Demo: s.cfg.DemoMode}
}
