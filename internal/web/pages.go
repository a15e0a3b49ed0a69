package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	mrand "math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/shopcheckout/shop/internal/catalog"
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
	// Closed says why nothing is for sale (the catalogue could not be
	// read); "" when the shop is open.
	Closed string
	// StripeJS is where the page loads Stripe.js from (STRIPE_JS_URL).
	StripeJS string
}

type productView struct {
	ID, Name, Description, Price, Image string
	MaxQuantity                         int64
	// SoldOut, or Left (1 to lowStock; 0: not shown), from the stock the
	// page was rendered with (see showStock).
	SoldOut bool
	Left    int64
}

func (s *Server) handleHome(w http.ResponseWriter, r *http.Request) {
	noStore(w) // each rendering carries its own form token
	buf := s.pages.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer s.pages.bufs.Put(buf)
	page := s.currentHome(r.Context())
	page.render(buf, homeValues{token: s.tokens.issue(), cartCount: s.readCart(r).count()})
	status := http.StatusOK
	if page.cat == nil {
		status = http.StatusServiceUnavailable // the page says why
	}
	writeHTML(w, status, buf.Bytes())
}

// homeView is the home page's view model. The catalogue and the config are
// fixed for the server's life: only the token changes, and what it shows
// of the stock (see liveHome).
func (s *Server) homeView(token string, stock stockShown) homePage {
	products := s.catalog().Products()
	v := homePage{Page: s.page("Shop"), Products: make([]productView, len(products)), Token: token, StripeJS: s.cfg.StripeJSURL}
	if s.catalogs.Current() == nil {
		v.Closed = "The shop is closed for a moment: its products could not be read (" + s.catalogs.Problem() +
			"). It opens again by itself as soon as they can; please come back in a few minutes."
	}
	for i, p := range products {
		v.Products[i] = productView{
			ID: p.ID, Name: p.Name, Description: p.Description, Image: p.Image,
			Price:       money.Format(p.UnitAmount, p.Currency),
			MaxQuantity: p.MaxQuantity,
		}
		showStock(&v.Products[i], stock)
	}
	return v
}

// homeCache is the home page rendered once, at start-up, and cut where
// what changes per request goes: the form token and the header's cart
// count. Executing the template was most of the CPU time of GET /
// (html/template walks the page by reflection); splicing fresh values into
// the cached bytes gives the very bytes the template would.
type homeCache struct {
	parts [][]byte
	// gaps[i] is what goes between parts[i] and parts[i+1].
	gaps  []homeGap
	stock stockShown // what the page shows of the stock
	// cat is the catalogue it shows (nil: none, the shop is closed).
	cat *catalog.Catalog
}

// homeGap names a value spliced into the home page.
type homeGap uint8

const (
	gapToken     homeGap = iota // the form token, in every form
	gapCartCount                // the cart's item count, in the header
)

// homeValues are one request's values for the gaps.
type homeValues struct {
	token     string
	cartCount int64
}

// newHomeCache renders the home page with a marker for each value and cuts
// it at every marker. Each marker is random and comes out of html/template
// as it went in: a token is 48 characters of [A-Za-z0-9_-], left as they
// are in every context, and the count's marker 19 decimal digits, so
// neither occurs by chance in the rest of the page. Each value must print
// the same in every context it appears in: the count is printed as a
// plain number, like the marker.
func (s *Server) newHomeCache(stock stockShown) (homeCache, error) {
	cat := s.catalogs.Current()
	token := s.tokens.issue()
	count := 1e18 + mrand.Int64N(8e18)
	var buf bytes.Buffer
	if err := s.pages.byName["home"].ExecuteTemplate(&buf, "layout", newFrame(s.homeView(token, stock), cartBadge{Count: count})); err != nil {
		return homeCache{}, fmt.Errorf("render home page: %w", err)
	}
	h := homeCache{stock: stock, cat: cat}
	h.parts, h.gaps = cutAt(buf.Bytes(), []byte(token), strconv.AppendInt(nil, count, 10))
	return h, nil
}

// cutAt cuts page at every occurrence of each marker, in page order, and
// says which marker each cut was (its index in markers, as a homeGap).
func cutAt(page []byte, markers ...[]byte) (parts [][]byte, gaps []homeGap) {
	for {
		at, which := -1, 0
		for i, m := range markers {
			if j := bytes.Index(page, m); j >= 0 && (at < 0 || j < at) {
				at, which = j, i
			}
		}
		if at < 0 {
			return append(parts, page), gaps
		}
		parts, gaps = append(parts, page[:at]), append(gaps, homeGap(which))
		page = page[at+len(markers[which]):]
	}
}

// render writes the page with v's values in their gaps.
func (h *homeCache) render(buf *bytes.Buffer, v homeValues) {
	for i, p := range h.parts {
		if i > 0 {
			switch h.gaps[i-1] {
			case gapToken:
				buf.WriteString(v.token)
			case gapCartCount:
				buf.Write(strconv.AppendInt(buf.AvailableBuffer(), v.cartCount, 10))
			}
		}
		buf.Write(p)
	}
}

// configBody is the JSON of GET /config: what main.js needs to start
// Stripe.js, and how Checkout opens (config.CheckoutHosted or
// config.CheckoutEmbedded).
type configBody struct {
	PublicKey  string `json:"publicKey"`
	CheckoutUI string `json:"checkoutUi"`
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
