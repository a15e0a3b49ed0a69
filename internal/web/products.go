package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/shopcheckout/shop/internal/catalog"
	"github.com/shopcheckout/shop/internal/orders"
)

// Stock, as the shop shows it: the home page says "Sold out" or "Only N
// left", and the admin reads and sets each product's count. The count
// itself lives in the store (orders.StockLevel); placing an order holds
// from it, and PlaceOrder refuses what is not there (orders.OutOfStock).

// lowStock is the most left at which the home page says "Only N left".
const lowStock = 5

// stockReadEvery is how often, at most, the home page reads the stock:
// it follows a change within about that long.
const stockReadEvery = time.Second

// maxStock is the largest stock the admin may set, as in the catalogue.
const maxStock = 1_000_000_000

// stockShown is what the home page shows of the stock: how many are left
// of each catalogue product with lowStock or fewer (0: sold out). A
// product absent from it is shown as available. Only a change of this
// re-renders the page; the other counts move with every order and are not
// shown.
type stockShown map[string]int64

// liveHome is the home page served from memory: rendered at start-up and
// again whenever what it shows of the stock changes. GET / splices a
// token into the current page and, once a second, one request reads the
// stock first (the others go on serving the page they find), so the page
// follows the stock without executing the template per request.
type liveHome struct {
	page atomic.Pointer[homeCache]
	// readAt is when the stock was last read (Unix nanoseconds of the
	// server's clock); mu is held by the request reading it.
	readAt atomic.Int64
	mu     sync.Mutex
}

// newLiveHome renders the home page with the stock as it is at start-up.
// A store that does not answer leaves the page without stock notes until
// the next read; the checkout refuses what is not there either way.
func (s *Server) newLiveHome() (*liveHome, error) {
	page, err := s.newHomeCache(nil)
	if err != nil {
		return nil, err
	}
	h := &liveHome{}
	h.page.Store(&page)
	h.readAt.Store(s.now().UnixNano())
	s.refreshHome(context.Background(), h)
	return h, nil
}

// currentHome returns the home page to serve, reading the stock first if
// the last read is a second old (or the clock went back by as much).
func (s *Server) currentHome(ctx context.Context) *homeCache {
	h := s.home
	now := s.now().UnixNano()
	if stale(now, h.readAt.Load()) && h.mu.TryLock() {
		if stale(now, h.readAt.Load()) {
			h.readAt.Store(now)
			s.refreshHome(ctx, h)
		}
		h.mu.Unlock()
	}
	if page := h.page.Load(); page.cat != s.catalogs.Current() && h.mu.TryLock() {
		// The catalogue changed (Stripe's was read again): show it now.
		if page := h.page.Load(); page.cat != s.catalogs.Current() {
			s.renderHome(ctx, h, page.stock, "the catalogue changed")
		}
		h.mu.Unlock()
	}
	return h.page.Load()
}

// stale reports whether a read at readAt is too old at now.
func stale(now, readAt int64) bool {
	since := now - readAt
	return since >= int64(stockReadEvery) || since <= -int64(stockReadEvery)
}

// refreshHome reads the stock and, if what the home page h shows of it
// changed, renders the page again and swaps it in. On a failure the page
// stays as it is: the next read is a second away.
func (s *Server) refreshHome(ctx context.Context, h *liveHome) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stockReadEvery)
	defer cancel()
	levels, err := s.orders.StockLevels(ctx)
	if err != nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "home page: stock not read; the page stays as it was", slog.Any("error", err))
		return
	}
	shown := stockShown{}
	for _, l := range levels {
		if _, err := s.catalog().Product(l.ProductID); err == nil && l.Stock != nil && *l.Stock <= lowStock {
			shown[l.ProductID] = max(0, *l.Stock)
		}
	}
	if maps.Equal(shown, h.page.Load().stock) {
		return
	}
	s.renderHome(ctx, h, shown, "the stock it shows changed")
}

// renderHome renders the home page again with stock, and swaps it in; on a
// failure the page stays as it was.
func (s *Server) renderHome(ctx context.Context, h *liveHome, stock stockShown, why string) {
	page, err := s.newHomeCache(stock)
	if err != nil {
		s.log.LogAttrs(ctx, slog.LevelError, "home page: not rendered again; the page stays as it was", slog.Any("error", err))
		return
	}
	h.page.Store(&page)
	s.log.LogAttrs(ctx, slog.LevelInfo, "home page rendered again: "+why, slog.Any("low_stock", stock))
}

// showStock marks a product's view sold out, or low with how many are
// left (the quantity cannot go above that), as stock says.
func showStock(v *productView, stock stockShown) {
	left, ok := stock[v.ID]
	switch {
	case !ok:
	case left == 0:
		v.SoldOut = true
	default:
		v.Left = left
		v.MaxQuantity = min(v.MaxQuantity, left)
	}
}

// outOfStockMessage tells a shopper what is left of what they asked for.
func outOfStockMessage(e *orders.OutOfStock) string {
	if e.Left <= 0 {
		return fmt.Sprintf("Sorry, %s is sold out. Nothing was charged.", e.Name)
	}
	return fmt.Sprintf("Only %d of %s left: choose %d or fewer. Nothing was charged.", e.Left, e.Name, e.Left)
}

// adminProductsPage is the view model of admin_products.html.
type adminProductsPage struct {
	Page
	Products []productStockRow
}

// productStockRow is one product's stock and the form that sets it.
type productStockRow struct {
	ID, Name, Action string
	// Limited is false for an unlimited product, whose Left means nothing.
	Limited          bool
	Left, Held, Sold int64
	Max              int64
}

// adminProductsBody is GET /admin/products as JSON.
type adminProductsBody struct {
	Products []orders.StockLevel `json:"products"`
}

// productBody answers a JSON stock change.
type productBody struct {
	Product orders.StockLevel `json:"product"`
}

// productStock returns the stock of every catalogue product, in catalogue
// order; a product the store has no row for is unlimited.
func (s *Server) productStock(ctx context.Context) ([]catalog.Product, []orders.StockLevel, error) {
	levels, err := s.orders.StockLevels(ctx)
	if err != nil {
		return nil, nil, err
	}
	byID := make(map[string]orders.StockLevel, len(levels))
	for _, l := range levels {
		byID[l.ProductID] = l
	}
	products := s.catalog().Products()
	out := make([]orders.StockLevel, len(products))
	for i, p := range products {
		l, ok := byID[p.ID]
		if !ok {
			l = orders.StockLevel{ProductID: p.ID}
		}
		out[i] = l
	}
	return products, out, nil
}

// handleAdminProducts shows each product's stock left, held and sold: a
// page with a form per product, or for Accept: application/json the
// counts ("stock": null when unlimited).
func (s *Server) handleAdminProducts(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	products, levels, err := s.productStock(r.Context())
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "The stock could not be loaded.", err)
		return
	}
	if wantsJSON(r) {
		s.writeJSON(w, r, http.StatusOK, adminProductsBody{Products: levels})
		return
	}
	v := adminProductsPage{Page: s.page("Products"), Products: make([]productStockRow, len(products))}
	for i, p := range products {
		l := levels[i]
		v.Products[i] = productStockRow{
			ID: p.ID, Name: p.Name, Action: "/admin/products/" + url.PathEscape(p.ID) + "/stock",
			Limited: l.Limited(), Held: l.Held, Sold: l.Sold, Max: maxStock,
		}
		if l.Limited() {
			v.Products[i].Left = *l.Stock
		}
	}
	s.render(w, r, http.StatusOK, "admin_products", v)
}

// errStockUnreadable is a stock the admin sent that is not one.
var errStockUnreadable = errors.New("stock is not a whole number")

// handleStockSet sets what is left of a product, as the owner counted it
// (absolute, so sending it twice is harmless; what is held and sold
// stays): a form's stock field or JSON {"stock": N}. "unlimited" in a
// form, or null in JSON, removes the limit.
func (s *Server) handleStockSet(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	id := chi.URLParam(r, "id")
	if _, err := s.catalog().Product(id); errors.Is(err, catalog.ErrUnknownProduct) {
		s.fail(w, r, http.StatusNotFound, "There is no such product.", nil)
		return
	}
	stock, err := decodeStock(w, r)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.fail(w, r, http.StatusRequestEntityTooLarge, "The request is too large.", err)
			return
		}
		s.fail(w, r, http.StatusBadRequest, fmt.Sprintf("Send stock: a whole number from 0 to %d, or unlimited.", maxStock), err)
		return
	}
	if stock != nil && (*stock < 0 || *stock > maxStock) {
		s.fail(w, r, http.StatusBadRequest, fmt.Sprintf("The stock must be a whole number from 0 to %d.", maxStock), nil)
		return
	}
	// What was left before, for the admin action line: read just before
	// the write, so two admins setting it at once may both log the same.
	from := "unknown"
	if _, levels, err := s.productStock(r.Context()); err == nil {
		for _, lv := range levels {
			if lv.ProductID == id {
				from = stockValue(lv.Stock)
			}
		}
	}
	l, err := s.orders.SetStock(r.Context(), id, stock)
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "The stock could not be saved; try again.", err)
		return
	}
	s.logAdminAction(r, "set_stock", slog.String("product_id", id), slog.String("from", from), slog.String("to", stockValue(l.Stock)),
		slog.Int64("held", l.Held), slog.Int64("sold", l.Sold))
	if wantsJSON(r) {
		s.writeJSON(w, r, http.StatusOK, productBody{Product: l})
		return
	}
	http.Redirect(w, r, "/admin/products", http.StatusSeeOther)
}

// decodeStock reads the stock a form or JSON body sends, capped; nil is
// unlimited.
func decodeStock(w http.ResponseWriter, r *http.Request) (*int64, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxAdminForm)
	if sentJSON(r) {
		var body struct {
			Stock json.RawMessage `json:"stock"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			return nil, fmt.Errorf("decode json: %w", err)
		}
		if string(body.Stock) == "null" {
			return nil, nil
		}
		var n int64
		if err := json.Unmarshal(body.Stock, &n); err != nil {
			return nil, fmt.Errorf("%w: %w", errStockUnreadable, err)
		}
		return &n, nil
	}
	if err := r.ParseForm(); err != nil {
		return nil, fmt.Errorf("parse form: %w", err)
	}
	v := strings.TrimSpace(r.PostForm.Get("stock"))
	if v == "unlimited" {
		return nil, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%w: %q", errStockUnreadable, v)
	}
	return &n, nil
}
