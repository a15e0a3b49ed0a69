package stripesim

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The catalogue: Products and their one-time Prices, which Checkout
// Sessions and Payment Links price their lines from. It starts from
// Config.Products and changes through the API, each change recorded and
// delivered as the event Stripe sends about it. All of it is guarded by
// Sim.mu. Products and Prices are never deleted (Stripe archives them), so
// instead of forgetting the oldest, the simulator refuses to make more than
// maxProducts and maxPrices.

const (
	maxProducts      = 10000
	maxPrices        = 10000
	maxImages        = 8
	maxMetadataKeys  = 50
	maxMetadataKey   = 40
	maxMetadataValue = 500
	maxCustomID      = 64
	msgPriceInactive = "The price specified is inactive. This field only accepts active prices."
	msgProductGone   = "The price specified belongs to an inactive product. This field only accepts prices of active products."
)

// Event types of the catalogue.
const (
	eventProductCreated = "product.created"
	eventProductUpdated = "product.updated"
	eventPriceCreated   = "price.created"
	eventPriceUpdated   = "price.updated"
)

// Catalogue fault modes, set with POST /sim/faults?catalog=MODE.
const (
	faultOK          = "ok"
	faultDown        = "down"        // every catalogue request fails with a 500 api_error
	faultUnreachable = "unreachable" // every catalogue request loses its connection unanswered
)

// SeedProduct is a Product the simulator starts with, as if it had been
// made in the Dashboard before the simulator started: seeding records no
// events. Seeds are listed in the order given, though Stripe lists newest
// first, so that a seed file reads like the list the shop gets.
type SeedProduct struct {
	// ID is the Product's id; empty: a generated prod_... id. Stripe lets
	// an API call choose it, so any 1 to 64 letters, digits, - and _ do.
	ID          string   `json:"id,omitempty"`
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Images      []string `json:"images,omitempty"` // absolute http(s) URLs, at most 8
	// Metadata is the Product's metadata; the shop reads stock and
	// max_quantity from it.
	Metadata map[string]string `json:"metadata,omitempty"`
	// Active is whether the Product is for sale; nil means true.
	Active *bool       `json:"active,omitempty"`
	Prices []SeedPrice `json:"prices,omitempty"`
}

// SeedPrice is one of a SeedProduct's Prices.
type SeedPrice struct {
	// ID is the Price's id, price_...; empty: a generated one.
	ID         string            `json:"id,omitempty"`
	UnitAmount int64             `json:"unit_amount"` // in the currency's minor unit
	Currency   string            `json:"currency"`    // ISO 4217, e.g. usd
	Nickname   string            `json:"nickname,omitempty"`
	Metadata   map[string]string `json:"metadata,omitempty"`
	// Active is whether the Price can be sold; nil means true.
	Active *bool `json:"active,omitempty"`
	// Type is one_time, the only kind the simulator sells; empty means it.
	Type string `json:"type,omitempty"`
}

// product is a Product. Images and Metadata are replaced on change, never
// mutated, so a rendered object may share them.
type product struct {
	ID, Name, Description string
	Active                bool
	Images                []string
	Metadata              map[string]string
	Created, Updated      int64
}

// price is a one-time, per-unit Price. Metadata is replaced on change,
// never mutated.
type price struct {
	ID, Product        string
	Currency, Nickname string
	UnitAmount         int64
	Active             bool
	Metadata           map[string]string
	Created            int64
}

func productObject(p *product) map[string]any {
	return map[string]any{
		"id":                   p.ID,
		"object":               "product",
		"active":               p.Active,
		"created":              p.Created,
		"default_price":        nil,
		"description":          nullable(p.Description),
		"features":             []any{},
		"images":               orEmpty(p.Images),
		"livemode":             false,
		"metadata":             orEmptyMap(p.Metadata),
		"name":                 p.Name,
		"package_dimensions":   nil,
		"shippable":            nil,
		"statement_descriptor": nil,
		"tax_code":             nil,
		"type":                 "service",
		"unit_label":           nil,
		"updated":              p.Updated,
		"url":                  nil,
	}
}

// priceObject renders a Price, with its Product expanded when prod is not
// nil.
func priceObject(p *price, prod *product) map[string]any {
	var productField any = p.Product
	if prod != nil {
		productField = productObject(prod)
	}
	return map[string]any{
		"id":                  p.ID,
		"object":              "price",
		"active":              p.Active,
		"billing_scheme":      "per_unit",
		"created":             p.Created,
		"currency":            p.Currency,
		"custom_unit_amount":  nil,
		"livemode":            false,
		"lookup_key":          nil,
		"metadata":            orEmptyMap(p.Metadata),
		"nickname":            nullable(p.Nickname),
		"product":             productField,
		"recurring":           nil,
		"tax_behavior":        "unspecified",
		"tiers_mode":          nil,
		"transform_quantity":  nil,
		"type":                "one_time",
		"unit_amount":         p.UnitAmount,
		"unit_amount_decimal": strconv.FormatInt(p.UnitAmount, 10),
	}
}

func orEmpty(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}

func orEmptyMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// missingRef answers a parameter naming an object that does not exist:
// Stripe's resource_missing, with 400 rather than 404, since the request
// itself names a route that exists.
func missingRef(object, id, param string) apiResponse {
	return stripeError(http.StatusBadRequest, "invalid_request_error", "resource_missing", param,
		fmt.Sprintf("No such %s: '%s'", object, id))
}

func missingParam(param string) apiResponse {
	return stripeError(http.StatusBadRequest, "invalid_request_error", "parameter_missing", param,
		fmt.Sprintf("Missing required param: %s.", param))
}

func tooMany(objects string, limit int) apiResponse {
	return invalid("", fmt.Sprintf("stripe-sim keeps at most %d %s: restart it to start afresh.", limit, objects))
}

// validCustomID reports whether id can name a Product or Payment Link: the
// simulator's pages and routes put it in a path segment.
func validCustomID(id string) bool {
	if id == "" || len(id) > maxCustomID {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func validCurrency(c string) bool {
	return len(c) == 3 && strings.Trim(c, "abcdefghijklmnopqrstuvwxyz") == ""
}

// checkMetadata applies Stripe's limits on metadata.
func checkMetadata(m map[string]string, param string) error {
	if len(m) > maxMetadataKeys {
		return fmt.Errorf("%s: at most %d keys are allowed", param, maxMetadataKeys)
	}
	for k, v := range m {
		switch {
		case k == "" || len(k) > maxMetadataKey:
			return fmt.Errorf("%s: keys must have 1 to %d characters, %q has %d", param, maxMetadataKey, k, len(k))
		case len(v) > maxMetadataValue:
			return fmt.Errorf("%s[%s]: values can have up to %d characters", param, k, maxMetadataValue)
		}
	}
	return nil
}

// applyMetadata returns old updated by the form's metadata under prefix
// (e.g. metadata[key]=value, or product_data[metadata][key]=value), as
// Stripe does: an empty value removes its key, and metadata="" removes
// every key first. old itself is left alone.
func applyMetadata(old map[string]string, form url.Values, prefix ...string) (map[string]string, apiResponse, bool) {
	path := append(slices.Clone(prefix), "metadata")
	name := path[0]
	for _, p := range path[1:] {
		name += "[" + p + "]"
	}
	next := maps.Clone(old)
	if next == nil {
		next = map[string]string{}
	}
	if vals, ok := form[name]; ok && vals[0] == "" {
		clear(next)
	}
	for key, vals := range form {
		parts := formKey(key)
		if len(parts) != len(path)+1 || !slices.Equal(parts[:len(path)], path) {
			continue
		}
		if k := parts[len(path)]; vals[0] == "" {
			delete(next, k)
		} else {
			next[k] = vals[0]
		}
	}
	if err := checkMetadata(next, name); err != nil {
		return nil, invalid(name, err.Error()), false
	}
	return next, apiResponse{}, true
}

// metadataChanges is what previous_attributes shows of a metadata change:
// the old value of each key that changed, null for a key that was added.
// It is nil when nothing changed.
func metadataChanges(old, next map[string]string) map[string]any {
	changed := map[string]any{}
	for k, v := range old {
		if nv, ok := next[k]; !ok || nv != v {
			changed[k] = v
		}
	}
	for k := range next {
		if _, ok := old[k]; !ok {
			changed[k] = nil
		}
	}
	if len(changed) == 0 {
		return nil
	}
	return changed
}

func checkImages(images []string) error {
	if len(images) > maxImages {
		return fmt.Errorf("images: at most %d are allowed", maxImages)
	}
	for _, img := range images {
		if _, err := parseBaseURL(img); err != nil {
			return fmt.Errorf("images: %w", err)
		}
	}
	return nil
}

// formImages reads images[] (or images[0], ...) of a form; set is false
// when the form leaves the images alone, and images="" empties them.
func formImages(form url.Values) (images []string, set bool, errResp apiResponse, ok bool) {
	vals := listParam(form, "images")
	_, cleared := form["images"]
	if vals == nil && !cleared {
		return nil, false, apiResponse{}, true
	}
	images = []string{}
	for _, v := range vals {
		if v != "" {
			images = append(images, v)
		}
	}
	if err := checkImages(images); err != nil {
		return nil, false, invalid("images", err.Error()), false
	}
	return images, true, apiResponse{}, true
}

// formBool reads a boolean parameter; set is false when it is absent.
func formBool(form url.Values, key string) (v, set bool, errResp apiResponse, ok bool) {
	raw, set := form[key]
	if !set {
		return false, false, apiResponse{}, true
	}
	v, err := strconv.ParseBool(raw[0])
	if err != nil {
		return false, false, invalid(key, fmt.Sprintf("Invalid boolean: %s", raw[0])), false
	}
	return v, true, apiResponse{}, true
}

// seedCatalog loads the seeds into an empty catalogue, naming every problem
// at once.
func (s *Sim) seedCatalog(seeds []SeedProduct, now time.Time) error {
	var problems []error
	var products []*product
	var prices []*price
	seenPrice := map[string]bool{}
	for i, sp := range seeds {
		where := fmt.Sprintf("product %d", i+1)
		p := &product{ID: sp.ID, Name: strings.TrimSpace(sp.Name), Description: sp.Description, Active: sp.Active == nil || *sp.Active,
			Images: slices.Clone(sp.Images), Metadata: maps.Clone(orEmptyMap(sp.Metadata)), Created: now.Unix(), Updated: now.Unix()}
		if p.ID == "" {
			p.ID = newID("prod_", 14)
		}
		where += fmt.Sprintf(" (%q)", p.ID)
		if !validCustomID(p.ID) {
			problems = append(problems, fmt.Errorf("%s: id must be 1 to %d letters, digits, - or _", where, maxCustomID))
		} else if slices.ContainsFunc(products, func(o *product) bool { return o.ID == p.ID }) {
			problems = append(problems, fmt.Errorf("%s: duplicate id", where))
		}
		if p.Name == "" {
			problems = append(problems, fmt.Errorf("%s: name is required", where))
		}
		if err := checkImages(p.Images); err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", where, err))
		}
		if err := checkMetadata(p.Metadata, "metadata"); err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", where, err))
		}
		products = append(products, p)
		for j, sq := range sp.Prices {
			pr := &price{ID: sq.ID, Product: p.ID, Currency: strings.ToLower(sq.Currency), Nickname: sq.Nickname,
				UnitAmount: sq.UnitAmount, Active: sq.Active == nil || *sq.Active, Metadata: maps.Clone(orEmptyMap(sq.Metadata)),
				Created: now.Unix()}
			if pr.ID == "" {
				pr.ID = newID("price_", 24)
			}
			at := fmt.Sprintf("%s, price %d (%q)", where, j+1, pr.ID)
			if rest, ok := strings.CutPrefix(pr.ID, "price_"); !ok || !validCustomID(rest) {
				problems = append(problems, fmt.Errorf("%s: id must be price_ followed by letters, digits, - or _", at))
			} else if seenPrice[pr.ID] {
				problems = append(problems, fmt.Errorf("%s: duplicate id", at))
			}
			seenPrice[pr.ID] = true
			if !validCurrency(pr.Currency) {
				problems = append(problems, fmt.Errorf("%s: currency must be a three-letter ISO code", at))
			}
			if pr.UnitAmount < 0 {
				problems = append(problems, fmt.Errorf("%s: unit_amount must not be negative", at))
			}
			if sq.Type != "" && sq.Type != "one_time" {
				problems = append(problems, fmt.Errorf("%s: type %q: the simulator sells one_time prices only", at, sq.Type))
			}
			if err := checkMetadata(pr.Metadata, "metadata"); err != nil {
				problems = append(problems, fmt.Errorf("%s: %w", at, err))
			}
			prices = append(prices, pr)
		}
	}
	if len(products) > maxProducts || len(prices) > maxPrices {
		problems = append(problems, fmt.Errorf("%d products and %d prices: the simulator keeps at most %d and %d", len(products), len(prices), maxProducts, maxPrices))
	}
	if err := errors.Join(problems...); err != nil {
		return err
	}
	// Lists run newest first: adding the seeds last to first lists them in
	// the order given.
	for _, p := range slices.Backward(products) {
		s.addProductLocked(p)
	}
	for _, pr := range slices.Backward(prices) {
		s.addPriceLocked(pr)
	}
	return nil
}

func (s *Sim) addProductLocked(p *product) {
	s.products[p.ID] = p
	s.productOrder = append(s.productOrder, p.ID)
}

func (s *Sim) addPriceLocked(pr *price) {
	s.prices[pr.ID] = pr
	s.priceOrder = append(s.priceOrder, pr.ID)
}

// lineError is a line that Stripe would refuse, for both the API (as an
// answer) and start-up (as an error naming a bad seed).
type lineError struct {
	missing bool // the line names an object that does not exist
	param   string
	msg     string
}

func (e *lineError) Error() string { return e.param + ": " + e.msg }

func (e *lineError) response() apiResponse {
	if e.missing {
		return stripeError(http.StatusBadRequest, "invalid_request_error", "resource_missing", e.param, e.msg)
	}
	return invalid(e.param, e.msg)
}

// priceLinesLocked prices lines of a new session or Payment Link: a line
// naming a Price (line_items[i][price]) takes its amount, currency and
// Product's name from the catalogue, refused like Stripe refuses an unknown
// or archived Price; a price_data line keeps its own, and gets generated
// ids. Every line gets a fresh line item id.
func (s *Sim) priceLinesLocked(lines []lineItem) ([]lineItem, *lineError) {
	out := make([]lineItem, 0, len(lines))
	for i, li := range lines {
		param := fmt.Sprintf("line_items[%d]", i)
		if li.PriceID != "" {
			p := s.prices[li.PriceID]
			if p == nil {
				return nil, &lineError{missing: true, param: param + "[price]", msg: fmt.Sprintf("No such price: '%s'", li.PriceID)}
			}
			if !p.Active {
				return nil, &lineError{param: param + "[price]", msg: msgPriceInactive}
			}
			prod := s.products[p.Product]
			if prod == nil || !prod.Active {
				return nil, &lineError{param: param + "[price]", msg: msgProductGone}
			}
			snapshot := *p
			li.Price = &snapshot
			li.ProductID, li.Currency, li.UnitAmount = p.Product, p.Currency, p.UnitAmount
			li.Name, li.Description = prod.Name, prod.Description
		} else {
			if li.ProductID != "" {
				prod := s.products[li.ProductID]
				if prod == nil {
					return nil, &lineError{missing: true, param: param + "[price_data][product]", msg: fmt.Sprintf("No such product: '%s'", li.ProductID)}
				}
				if li.Name == "" {
					li.Name, li.Description = prod.Name, prod.Description
				}
			} else {
				li.ProductID = newID("prod_", 14)
			}
			li.PriceID = newID("price_", 24)
		}
		li.ID = newID("li_", 24)
		out = append(out, li)
	}
	return out, nil
}

// catalogRoute fails catalogue requests while a fault is set, so that the
// shop's handling of a Stripe outage can be tried.
func (s *Sim) catalogRoute(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		fault := s.catalogFault
		s.mu.Unlock()
		switch fault {
		case faultDown:
			stripeError(http.StatusInternalServerError, "api_error", "", "",
				"stripe-sim: the catalogue is down on purpose (POST /sim/faults?catalog=ok restores it).").write(w)
			return
		case faultUnreachable:
			panic(http.ErrAbortHandler) // net/http drops the connection without an answer or a log line
		}
		h(w, r)
	}
}

// apiPost serves a POST of the simulator's own API: idempotent per
// Idempotency-Key, validated by stripe-mock, then answered by fn from the
// request's form.
func (s *Sim) apiPost(fn func(r *http.Request, form url.Values) apiResponse) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, ok := readBody(w, r)
		if !ok {
			return
		}
		s.idempotent(r, body, func() apiResponse {
			resp, ok := s.validate(r, body)
			if !ok {
				return resp
			}
			form, err := url.ParseQuery(string(body))
			if err != nil {
				return invalid("", "invalid form body: "+err.Error())
			}
			return fn(r, form)
		}).write(w)
	}
}

// apiGet serves a GET of the simulator's own API: validated by
// stripe-mock, then answered by fn from the query.
func (s *Sim) apiGet(fn func(r *http.Request, q url.Values) apiResponse) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		resp, ok := s.validate(r, nil)
		if !ok {
			resp.write(w)
			return
		}
		fn(r, r.URL.Query()).write(w)
	}
}

func (s *Sim) createProduct(_ *http.Request, form url.Values) apiResponse {
	if _, errResp, ok := checkExpand(form); !ok {
		return errResp
	}
	name := strings.TrimSpace(form.Get("name"))
	if name == "" {
		return missingParam("name")
	}
	id := form.Get("id")
	if id != "" && !validCustomID(id) {
		return invalid("id", fmt.Sprintf("Invalid id: use 1 to %d letters, digits, - or _.", maxCustomID))
	}
	active, set, errResp, ok := formBool(form, "active")
	if !ok {
		return errResp
	}
	images, _, errResp, ok := formImages(form)
	if !ok {
		return errResp
	}
	metadata, errResp, ok := applyMetadata(nil, form)
	if !ok {
		return errResp
	}
	now := s.now()
	s.mu.Lock()
	p, errResp, ok := s.newProductLocked(id, name, form.Get("description"), !set || active, images, metadata, now)
	if !ok {
		s.mu.Unlock()
		return errResp
	}
	obj := productObject(p)
	ev := s.recordLocked(eventProductCreated, s.encode("product", obj), p.ID, now)
	s.mu.Unlock()
	s.deliver(ev)
	s.log.Info("product created", "id", p.ID, "name", p.Name)
	return jsonResponse(http.StatusOK, obj)
}

// newProductLocked adds a Product, with a generated id if id is empty.
func (s *Sim) newProductLocked(id, name, description string, active bool, images []string, metadata map[string]string, now time.Time) (*product, apiResponse, bool) {
	switch {
	case id == "":
		id = newID("prod_", 14)
	case s.products[id] != nil:
		return nil, stripeError(http.StatusBadRequest, "invalid_request_error", "resource_already_exists", "id", "Product already exists."), false
	}
	if len(s.products) >= maxProducts {
		return nil, tooMany("products", maxProducts), false
	}
	p := &product{ID: id, Name: name, Description: description, Active: active, Images: images, Metadata: metadata,
		Created: now.Unix(), Updated: now.Unix()}
	s.addProductLocked(p)
	return p, apiResponse{}, true
}

func (s *Sim) getProduct(r *http.Request, q url.Values) apiResponse {
	if _, errResp, ok := checkExpand(q); !ok {
		return errResp
	}
	id := r.PathValue("id")
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.products[id]
	if p == nil {
		return missing("product", id, "id")
	}
	return jsonResponse(http.StatusOK, productObject(p))
}

func (s *Sim) listProducts(_ *http.Request, q url.Values) apiResponse {
	if _, errResp, ok := checkExpand(q); !ok {
		return errResp
	}
	lq, errResp, ok := parseListQuery(q)
	if !ok {
		return errResp
	}
	active, filterActive, errResp, ok := formBool(q, "active")
	if !ok {
		return errResp
	}
	ids := listParam(q, "ids")
	keep := func(p *product) bool {
		return (!filterActive || p.Active == active) && (len(ids) == 0 || slices.Contains(ids, p.ID))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	all := make([]*product, 0, len(s.productOrder)) // newest first
	for _, id := range slices.Backward(s.productOrder) {
		all = append(all, s.products[id])
	}
	page, hasMore, errResp, ok := paginate(all, func(p *product) string { return p.ID }, keep, lq, "product")
	if !ok {
		return errResp
	}
	data := make([]map[string]any, 0, len(page))
	for _, p := range page {
		data = append(data, productObject(p))
	}
	return jsonResponse(http.StatusOK, listObject(data, hasMore, "/v1/products"))
}

func (s *Sim) updateProduct(r *http.Request, form url.Values) apiResponse {
	if _, errResp, ok := checkExpand(form); !ok {
		return errResp
	}
	active, setActive, errResp, ok := formBool(form, "active")
	if !ok {
		return errResp
	}
	images, setImages, errResp, ok := formImages(form)
	if !ok {
		return errResp
	}
	id := r.PathValue("id")
	now := s.now()
	s.mu.Lock()
	p := s.products[id]
	if p == nil {
		s.mu.Unlock()
		return missing("product", id, "id")
	}
	next := *p
	if v, ok := form["name"]; ok {
		if next.Name = strings.TrimSpace(v[0]); next.Name == "" {
			s.mu.Unlock()
			return invalid("name", "You passed an empty string for 'name'. A product must have a name.")
		}
	}
	if v, ok := form["description"]; ok {
		next.Description = v[0]
	}
	if setActive {
		next.Active = active
	}
	if setImages {
		next.Images = images
	}
	if next.Metadata, errResp, ok = applyMetadata(p.Metadata, form); !ok {
		s.mu.Unlock()
		return errResp
	}
	ev := s.changeProductLocked(p, next, now)
	obj := productObject(p)
	s.mu.Unlock()
	s.deliver(ev)
	return jsonResponse(http.StatusOK, obj)
}

// changeProductLocked makes p next and records product.updated with what
// changed in previous_attributes. Nothing changed, nothing is recorded: the
// event is nil.
func (s *Sim) changeProductLocked(p *product, next product, now time.Time) *event {
	prev := map[string]any{}
	if next.Name != p.Name {
		prev["name"] = p.Name
	}
	if next.Description != p.Description {
		prev["description"] = nullable(p.Description)
	}
	if next.Active != p.Active {
		prev["active"] = p.Active
	}
	if !slices.Equal(next.Images, p.Images) {
		prev["images"] = orEmpty(p.Images)
	}
	if m := metadataChanges(p.Metadata, next.Metadata); m != nil {
		prev["metadata"] = m
	}
	if len(prev) == 0 {
		return nil
	}
	if next.Updated = now.Unix(); next.Updated != p.Updated {
		prev["updated"] = p.Updated
	}
	*p = next
	s.log.Info("product updated", "id", p.ID, "active", p.Active)
	return s.recordChangeLocked(eventProductUpdated, s.encode("product", productObject(p)), prev, p.ID, now)
}

// unsupportedPriceParam reports whether a parameter of POST /v1/prices
// asks for a price the simulator does not sell: recurring, tiered,
// transformed, in several currencies or with a customer-chosen or
// fractional amount.
func unsupportedPriceParam(form url.Values, key string) (string, bool) {
	switch head := formKey(key)[0]; head {
	case "recurring", "custom_unit_amount", "tiers", "tiers_mode", "transform_quantity", "currency_options", "unit_amount_decimal":
		return head, true
	case "billing_scheme":
		return head, form.Get(key) != "per_unit"
	}
	return "", false
}

func (s *Sim) createPrice(_ *http.Request, form url.Values) apiResponse {
	expand, errResp, ok := checkExpand(form, "product")
	if !ok {
		return errResp
	}
	for key := range form {
		if param, ok := unsupportedPriceParam(form, key); ok {
			return invalid(param, fmt.Sprintf("stripe-sim sells one-time, per-unit prices with a unit_amount only: %s is not supported.", param))
		}
	}
	currency := strings.ToLower(form.Get("currency"))
	if !validCurrency(currency) {
		return invalid("currency", fmt.Sprintf("Invalid currency: %s.", form.Get("currency")))
	}
	if form.Get("unit_amount") == "" {
		return missingParam("unit_amount")
	}
	amount, err := parseNonNegative(form.Get("unit_amount"))
	if err != nil {
		return invalid("unit_amount", "Invalid non-negative integer")
	}
	active, set, errResp, ok := formBool(form, "active")
	if !ok {
		return errResp
	}
	metadata, errResp, ok := applyMetadata(nil, form)
	if !ok {
		return errResp
	}
	productID, newName := form.Get("product"), strings.TrimSpace(form.Get("product_data[name]"))
	var productMetadata map[string]string
	if productID == "" {
		if newName == "" {
			return missingParam("product")
		}
		if productMetadata, errResp, ok = applyMetadata(nil, form, "product_data"); !ok {
			return errResp
		}
	}
	now := s.now()
	var evs []*event
	s.mu.Lock()
	prod := s.products[productID]
	switch {
	case productID != "" && prod == nil:
		s.mu.Unlock()
		return missingRef("product", productID, "product")
	case len(s.prices) >= maxPrices:
		s.mu.Unlock()
		return tooMany("prices", maxPrices)
	case prod == nil:
		if prod, errResp, ok = s.newProductLocked("", newName, "", true, nil, productMetadata, now); !ok {
			s.mu.Unlock()
			return errResp
		}
		evs = append(evs, s.recordLocked(eventProductCreated, s.encode("product", productObject(prod)), prod.ID, now))
	}
	pr := &price{ID: newID("price_", 24), Product: prod.ID, Currency: currency, Nickname: form.Get("nickname"),
		UnitAmount: amount, Active: !set || active, Metadata: metadata, Created: now.Unix()}
	s.addPriceLocked(pr)
	evs = append(evs, s.recordLocked(eventPriceCreated, s.encode("price", priceObject(pr, nil)), pr.ID, now))
	obj := s.priceObjectLocked(pr, expand["product"])
	s.mu.Unlock()
	for _, ev := range evs {
		s.deliver(ev)
	}
	s.log.Info("price created", "id", pr.ID, "product", pr.Product, "unit_amount", pr.UnitAmount, "currency", pr.Currency)
	return jsonResponse(http.StatusOK, obj)
}

// priceObjectLocked renders a Price, with its Product if expand says so.
func (s *Sim) priceObjectLocked(pr *price, expandProduct bool) map[string]any {
	if prod := s.products[pr.Product]; expandProduct && prod != nil {
		return priceObject(pr, prod)
	}
	return priceObject(pr, nil)
}

func (s *Sim) getPrice(r *http.Request, q url.Values) apiResponse {
	expand, errResp, ok := checkExpand(q, "product")
	if !ok {
		return errResp
	}
	id := r.PathValue("id")
	s.mu.Lock()
	defer s.mu.Unlock()
	pr := s.prices[id]
	if pr == nil {
		return missing("price", id, "id")
	}
	return jsonResponse(http.StatusOK, s.priceObjectLocked(pr, expand["product"]))
}

func (s *Sim) listPrices(_ *http.Request, q url.Values) apiResponse {
	expand, errResp, ok := checkExpand(q, "data.product")
	if !ok {
		return errResp
	}
	lq, errResp, ok := parseListQuery(q)
	if !ok {
		return errResp
	}
	active, filterActive, errResp, ok := formBool(q, "active")
	if !ok {
		return errResp
	}
	typ, productID, currency := q.Get("type"), q.Get("product"), strings.ToLower(q.Get("currency"))
	lookupKeys := listParam(q, "lookup_keys")
	keep := func(pr *price) bool {
		return (!filterActive || pr.Active == active) &&
			(typ == "" || typ == "one_time") && // every Price here is one_time
			len(lookupKeys) == 0 && // and has no lookup key
			(productID == "" || pr.Product == productID) &&
			(currency == "" || pr.Currency == currency)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	all := make([]*price, 0, len(s.priceOrder)) // newest first
	for _, id := range slices.Backward(s.priceOrder) {
		all = append(all, s.prices[id])
	}
	page, hasMore, errResp, ok := paginate(all, func(pr *price) string { return pr.ID }, keep, lq, "price")
	if !ok {
		return errResp
	}
	data := make([]map[string]any, 0, len(page))
	for _, pr := range page {
		data = append(data, s.priceObjectLocked(pr, expand["data.product"]))
	}
	return jsonResponse(http.StatusOK, listObject(data, hasMore, "/v1/prices"))
}

func (s *Sim) updatePrice(r *http.Request, form url.Values) apiResponse {
	expand, errResp, ok := checkExpand(form, "product")
	if !ok {
		return errResp
	}
	active, setActive, errResp, ok := formBool(form, "active")
	if !ok {
		return errResp
	}
	id := r.PathValue("id")
	now := s.now()
	s.mu.Lock()
	pr := s.prices[id]
	if pr == nil {
		s.mu.Unlock()
		return missing("price", id, "id")
	}
	next := *pr
	if setActive {
		next.Active = active
	}
	if v, ok := form["nickname"]; ok {
		next.Nickname = v[0]
	}
	if next.Metadata, errResp, ok = applyMetadata(pr.Metadata, form); !ok {
		s.mu.Unlock()
		return errResp
	}
	ev := s.changePriceLocked(pr, next, now)
	obj := s.priceObjectLocked(pr, expand["product"])
	s.mu.Unlock()
	s.deliver(ev)
	return jsonResponse(http.StatusOK, obj)
}

// changePriceLocked makes pr next and records price.updated with what
// changed in previous_attributes; nothing changed, the event is nil.
func (s *Sim) changePriceLocked(pr *price, next price, now time.Time) *event {
	prev := map[string]any{}
	if next.Active != pr.Active {
		prev["active"] = pr.Active
	}
	if next.Nickname != pr.Nickname {
		prev["nickname"] = nullable(pr.Nickname)
	}
	if m := metadataChanges(pr.Metadata, next.Metadata); m != nil {
		prev["metadata"] = m
	}
	if len(prev) == 0 {
		return nil
	}
	*pr = next
	s.log.Info("price updated", "id", pr.ID, "active", pr.Active)
	return s.recordChangeLocked(eventPriceUpdated, s.encode("price", priceObject(pr, nil)), prev, pr.ID, now)
}

// handleArchiveProduct archives a Product as the Dashboard does:
// product.updated with previous_attributes.active, unless it already was.
func (s *Sim) handleArchiveProduct(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	now := s.now()
	s.mu.Lock()
	p := s.products[id]
	if p == nil {
		s.mu.Unlock()
		missing("product", id, "id").write(w)
		return
	}
	next := *p
	next.Active = false
	ev := s.changeProductLocked(p, next, now)
	obj := productObject(p)
	s.mu.Unlock()
	s.deliver(ev)
	jsonResponse(http.StatusOK, map[string]any{"product": obj}).write(w)
}

// handleArchivePrice archives a Price: price.updated, unless it already
// was archived.
func (s *Sim) handleArchivePrice(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	now := s.now()
	s.mu.Lock()
	pr := s.prices[id]
	if pr == nil {
		s.mu.Unlock()
		missing("price", id, "id").write(w)
		return
	}
	next := *pr
	next.Active = false
	ev := s.changePriceLocked(pr, next, now)
	obj := priceObject(pr, nil)
	s.mu.Unlock()
	s.deliver(ev)
	jsonResponse(http.StatusOK, map[string]any{"price": obj}).write(w)
}

// handleFaults sets (POST, catalog=ok|down|unreachable) or shows (GET) the
// faults the simulator plays.
func (s *Sim) handleFaults(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		controlForm(w, r)
		mode := r.FormValue("catalog")
		if mode != faultOK && mode != faultDown && mode != faultUnreachable {
			invalid("catalog", fmt.Sprintf("catalog must be %s, %s or %s", faultOK, faultDown, faultUnreachable)).write(w)
			return
		}
		s.mu.Lock()
		s.catalogFault = mode
		s.mu.Unlock()
		s.log.Info("catalogue fault set", "catalog", mode)
	}
	s.mu.Lock()
	mode := s.catalogFault
	s.mu.Unlock()
	jsonResponse(http.StatusOK, map[string]any{"faults": map[string]string{"catalog": mode}}).write(w)
}

// recordChangeLocked is recordLocked for an *.updated event, whose data
// carries previous_attributes.
func (s *Sim) recordChangeLocked(typ string, object []byte, previous map[string]any, subject string, now time.Time) *event {
	prev, err := json.Marshal(previous)
	if err != nil { // cannot happen: plain values only
		s.log.Error("encode previous attributes", "type", typ, "err", err)
		prev = []byte("{}")
	}
	return s.recordDataLocked(typ, map[string]json.RawMessage{"object": object, "previous_attributes": prev}, subject, now)
}
