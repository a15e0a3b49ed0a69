package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/shopcheckout/shop/internal/money"
	"github.com/shopcheckout/shop/internal/orders"
)

// homePage is the view model of home.html.
type homePage struct {
	Page
	Products []productView
	// Token identifies this rendering of the forms: posting the same form
	// twice reuses one order (see checkoutRequest.Token).
	Token string
}

type productView struct {
	ID, Name, Description, Price, Image string
	MaxQuantity                         int64
}

func (s *Server) handleHome(w http.ResponseWriter, r *http.Request) {
	noStore(w) // each rendering carries its own form token
	buf := s.pages.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer s.pages.bufs.Put(buf)
	s.home.render(buf, s.tokens.issue())
	writeHTML(w, http.StatusOK, buf.Bytes())
}

// homeView is the home page's view model. The catalogue and the config are
// fixed for the server's life: only the token changes.
func (s *Server) homeView(token string) homePage {
	products := s.catalog.Products()
	v := homePage{Page: s.page("Shop"), Products: make([]productView, len(products)), Token: token}
	for i, p := range products {
		v.Products[i] = productView{
			ID: p.ID, Name: p.Name, Description: p.Description, Image: p.Image,
			Price:       money.Format(p.UnitAmount, p.Currency),
			MaxQuantity: p.MaxQuantity,
		}
	}
	return v
}

// homeCache is the home page rendered once, at start-up, and cut where the
// form token goes. Executing the template was most of the CPU time of GET /
// (html/template walks the page by reflection); splicing a fresh token into
// the cached bytes gives the very bytes the template would.
type homeCache struct {
	parts [][]byte
}

// newHomeCache renders the home page with a token and cuts it there. A
// token is 48 characters of [A-Za-z0-9_-], which html/template leaves as
// they are in every context, and random: it cannot occur by chance in the
// rest of the page.
func (s *Server) newHomeCache() (homeCache, error) {
	token := s.tokens.issue()
	var buf bytes.Buffer
	if err := s.pages.byName["home"].ExecuteTemplate(&buf, "layout", s.homeView(token)); err != nil {
		return homeCache{}, fmt.Errorf("render home page: %w", err)
	}
	return homeCache{parts: bytes.Split(buf.Bytes(), []byte(token))}, nil
}

// render writes the page with token in every form.
func (h homeCache) render(buf *bytes.Buffer, token string) {
	for i, p := range h.parts {
		if i > 0 {
			buf.WriteString(token)
		}
		buf.Write(p)
	}
}

// configBody is the JSON of GET /config.
type configBody struct {
	PublicKey string `json:"publicKey"`
}

func (s *Server) handleConfig(w http.ResponseWriter, r *http.Request) {
	writeJSONBytes(w, http.StatusOK, s.configJSON)
}

type cancelledPage struct{ Page }

func (s *Server) handleCancelled(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "cancelled", cancelledPage{Page: s.page("Checkout cancelled")})
}

type healthBody struct {
	Status string `json:"status"`
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.orders.Health(ctx); err != nil {
		s.log.ErrorContext(r.Context(), "health check failed", "error", err)
		status := "store unavailable"
		if errors.Is(err, orders.ErrWritesFailing) {
			status = "store writes failing"
		}
		s.writeJSON(w, r, http.StatusServiceUnavailable, healthBody{Status: status})
		return
	}
	s.writeJSON(w, r, http.StatusOK, healthBody{Status: "ok"})
}

// staticFiles serves the embedded assets; directory listings are refused.
func (s *Server) staticFiles() http.Handler {
	files := http.StripPrefix("/static/", http.FileServerFS(s.static))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/static/")
		if st, err := fs.Stat(s.static, name); err != nil || st.IsDir() {
			s.handleNotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=300")
		files.ServeHTTP(w, r)
	})
}
