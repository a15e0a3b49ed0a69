package stripesim

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Session and payment statuses, as Stripe spells them.
const (
	statusOpen     = "open"
	statusComplete = "complete"
	statusExpired  = "expired"
	paymentUnpaid  = "unpaid"
	paymentPaid    = "paid"
	maxLineItems   = 100
)

type lineItem struct {
	ID, PriceID, ProductID string
	Name, Description      string
	Currency               string
	UnitAmount, Quantity   int64
	// Price is the catalogue Price the line names (line_items[i][price]),
	// as it was when the line was made; nil for a price_data line.
	Price *price
}

func (li lineItem) amount() int64 { return li.UnitAmount * li.Quantity }

// session is the simulator's state of one Checkout Session. Values handed
// out of the store are copies; LineItems, Metadata and PIMetadata are never
// mutated after creation, so sharing them between copies is safe.
type session struct {
	ID                   string
	Mode                 string
	UIMode               string // hosted or embedded
	Status               string // open, complete or expired
	PaymentStatus        string // unpaid or paid
	AsyncResult          string // "", "succeeded" or "failed" for delayed payments
	Currency             string
	AmountTotal          int64
	SuccessURL           string
	CancelURL            string
	ReturnURL            string // embedded sessions
	RedirectOnCompletion string // embedded sessions: always, if_required or never
	ClientSecret         string // embedded sessions: what Stripe.js mounts the form with
	PaymentLink          string // plink_... when the session sells a Payment Link
	LinkMessage          string // the Payment Link's confirmation message
	ClientReferenceID    string
	CustomerEmail        string // given at creation
	Email                string // collected on the hosted page
	Locale               string
	PaymentIntent        string // set when the session completes
	Charge               string // set once paid
	Metadata             map[string]string
	PIMetadata           map[string]string // payment_intent_data[metadata]; the charge's metadata
	LineItems            []lineItem
	Created              int64
	ExpiresAt            int64
	base                 []byte // stripe-mock's answer to the create request
}

// event is one entry of the event log. payload is immutable; deliveries
// are guarded by Sim.mu.
type event struct {
	ID, Type   string
	Created    int64
	payload    []byte
	deliveries []*delivery
}

// stateError is a request that the session's current state forbids.
type stateError struct{ msg string }

func (e *stateError) Error() string { return e.msg }

var errNoSession = errors.New("no such checkout session")

// parseSession reads Stripe's bracket-notation form of a create request.
// Its lines are as given: priceLinesLocked prices them.
func parseSession(form url.Values) (session, error) {
	ss := session{
		Mode:                 form.Get("mode"),
		UIMode:               form.Get("ui_mode"),
		Currency:             strings.ToLower(form.Get("currency")),
		SuccessURL:           form.Get("success_url"),
		CancelURL:            form.Get("cancel_url"),
		ReturnURL:            form.Get("return_url"),
		RedirectOnCompletion: form.Get("redirect_on_completion"),
		ClientReferenceID:    form.Get("client_reference_id"),
		CustomerEmail:        form.Get("customer_email"),
		Locale:               form.Get("locale"),
		Metadata:             map[string]string{},
		PIMetadata:           map[string]string{},
	}
	if ss.UIMode == "" {
		ss.UIMode = uiModeHosted
	}
	for key, vals := range form {
		parts := formKey(key)
		v := vals[0]
		switch {
		case parts[0] == "metadata" && len(parts) == 2:
			ss.Metadata[parts[1]] = v
		case parts[0] == "payment_intent_data" && len(parts) == 3 && parts[1] == "metadata":
			ss.PIMetadata[parts[2]] = v
		}
	}
	lines, err := parseLineItems(form, maxLineItems)
	ss.LineItems = lines
	return ss, err
}

// parseLineItems reads line_items[i][...] of a form, in index order, with
// at most limit lines. A line's quantity defaults to 1.
func parseLineItems(form url.Values, limit int) ([]lineItem, error) {
	items := map[int]*lineItem{}
	for key, vals := range form {
		parts := formKey(key)
		if parts[0] != "line_items" || len(parts) < 3 {
			continue
		}
		i, err := strconv.Atoi(parts[1])
		if err != nil || i < 0 || i >= limit {
			return nil, fmt.Errorf("invalid line item index in %q: at most %d line items", key, limit)
		}
		li := items[i]
		if li == nil {
			li = &lineItem{Quantity: 1}
			items[i] = li
		}
		if err := li.set(strings.Join(parts[2:], "."), vals[0]); err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
	}
	idx := make([]int, 0, len(items))
	for i := range items {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	lines := make([]lineItem, 0, len(idx))
	for _, i := range idx {
		lines = append(lines, *items[i])
	}
	return lines, nil
}

// sumLines is the total of lines, refusing one that overflows.
func sumLines(lines []lineItem) (int64, error) {
	var total int64
	for i, li := range lines {
		if li.Quantity != 0 && li.UnitAmount > math.MaxInt64/li.Quantity {
			return 0, fmt.Errorf("line item %d: amount overflows", i)
		}
		if total > math.MaxInt64-li.amount() {
			return 0, errors.New("amount total overflows")
		}
		total += li.amount()
	}
	return total, nil
}

func (li *lineItem) set(field, v string) error {
	var err error
	switch field {
	case "price":
		li.PriceID = v
	case "quantity":
		li.Quantity, err = parseNonNegative(v)
	case "price_data.currency":
		li.Currency = strings.ToLower(v)
	case "price_data.unit_amount":
		li.UnitAmount, err = parseNonNegative(v)
	case "price_data.unit_amount_decimal":
		var f float64
		if f, err = strconv.ParseFloat(v, 64); err == nil && li.UnitAmount == 0 {
			li.UnitAmount = int64(math.Round(f))
		}
	case "price_data.product":
		li.ProductID = v
	case "price_data.product_data.name":
		li.Name = v
	case "price_data.product_data.description":
		li.Description = v
	}
	return err
}

func parseNonNegative(v string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid non-negative integer %q", v)
	}
	return n, nil
}

// formKey splits "a[b][c]" into ["a", "b", "c"].
func formKey(key string) []string {
	head, rest, ok := strings.Cut(key, "[")
	if !ok {
		return []string{key}
	}
	return append([]string{head}, strings.Split(strings.TrimSuffix(rest, "]"), "][")...)
}

// listParam returns the values of an array parameter, accepting both
// "name[]" and stripe-go's indexed "name[0]", "name[1]", ... forms.
func listParam(q url.Values, name string) []string {
	out := q[name+"[]"]
	for i := 0; ; i++ {
		v, ok := q[name+"["+strconv.Itoa(i)+"]"]
		if !ok {
			return out
		}
		out = append(out, v...)
	}
}

func expandSet(q url.Values) map[string]bool {
	set := map[string]bool{}
	for _, v := range listParam(q, "expand") {
		set[v] = true
	}
	return set
}

// renderSession overwrites a stripe-mock checkout.session object (base)
// with the session's state. fallback is used if base is not a JSON object.
func (s *Sim) renderSession(base []byte, ss *session, expand map[string]bool) []byte {
	obj, err := decodeObject(base)
	if err != nil {
		obj, _ = decodeObject(ss.base)
	}
	var pageURL any
	if ss.Status == statusOpen && ss.UIMode != uiModeEmbedded {
		pageURL = s.public + "/pay/" + ss.ID
	}
	var details any
	if ss.Email != "" {
		details = map[string]any{
			"email": ss.Email, "name": nil, "phone": nil, "address": nil,
			"tax_exempt": "none", "tax_ids": []any{},
		}
	}
	for k, v := range map[string]any{
		"id":                     ss.ID,
		"object":                 "checkout.session",
		"url":                    pageURL,
		"ui_mode":                ss.UIMode,
		"client_secret":          nullable(ss.ClientSecret),
		"return_url":             nullable(ss.ReturnURL),
		"redirect_on_completion": nullable(ss.RedirectOnCompletion),
		"payment_link":           nullable(ss.PaymentLink),
		"amount_subtotal":        ss.AmountTotal,
		"amount_total":           ss.AmountTotal,
		"currency":               nullable(ss.Currency),
		"status":                 ss.Status,
		"payment_status":         ss.PaymentStatus,
		"client_reference_id":    nullable(ss.ClientReferenceID),
		"metadata":               ss.Metadata,
		"success_url":            nullable(ss.SuccessURL),
		"cancel_url":             nullable(ss.CancelURL),
		"customer_email":         nullable(ss.CustomerEmail),
		"customer_details":       details,
		"mode":                   ss.Mode,
		"locale":                 nullable(ss.Locale),
		"livemode":               false,
		"created":                ss.Created,
		"expires_at":             ss.ExpiresAt,
		"currency_conversion":    nil,
		"shipping_cost":          nil,
		"total_details":          map[string]any{"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
	} {
		obj[k] = v
	}
	if expand["line_items"] {
		// An expanded list holds its first page, as Stripe's do.
		page, hasMore, _, _ := paginate(ss.LineItems, lineID, nil, listQuery{limit: defaultListLimit}, "line_item")
		obj["line_items"] = lineItemList(page, hasMore, ss.Created, sessionLinesPath(ss.ID))
	} else {
		delete(obj, "line_items")
	}
	switch pi, expanded := obj["payment_intent"].(map[string]any); {
	case ss.PaymentIntent == "":
		obj["payment_intent"] = nil
	case expand["payment_intent"] && expanded:
		pi["id"], pi["amount"], pi["currency"] = ss.PaymentIntent, ss.AmountTotal, ss.Currency
		pi["metadata"], pi["latest_charge"] = ss.PIMetadata, nullable(ss.Charge)
		switch {
		case ss.PaymentStatus == paymentPaid:
			pi["status"] = "succeeded"
		case ss.AsyncResult == "failed":
			pi["status"] = "requires_payment_method"
		default:
			pi["status"] = "processing"
		}
	default:
		obj["payment_intent"] = ss.PaymentIntent
	}
	out, err := json.Marshal(obj)
	if err != nil { // cannot happen: obj holds only JSON-decoded and plain values
		s.log.Error("encode session", "id", ss.ID, "err", err)
		return []byte("{}")
	}
	return out
}

func sessionLinesPath(id string) string { return "/v1/checkout/sessions/" + id + "/line_items" }

func lineID(li lineItem) string { return li.ID }

// lineItemList renders lines (of a session or Payment Link made at
// created) as a list of Stripe line items. A line of a catalogue Price
// shows that Price as it was when the line was made.
func lineItemList(lines []lineItem, hasMore bool, created int64, path string) map[string]any {
	data := make([]any, 0, len(lines))
	for _, li := range lines {
		p := price{ID: li.PriceID, Product: li.ProductID, Currency: li.Currency, UnitAmount: li.UnitAmount,
			Active: true, Metadata: map[string]string{}, Created: created}
		if li.Price != nil {
			p = *li.Price
		}
		data = append(data, map[string]any{
			"id":              li.ID,
			"object":          "item",
			"amount_discount": 0,
			"amount_subtotal": li.amount(),
			"amount_tax":      0,
			"amount_total":    li.amount(),
			"currency":        li.Currency,
			"description":     li.Name,
			"quantity":        li.Quantity,
			"price":           priceObject(&p, nil),
		})
	}
	return listObject(data, hasMore, path)
}

func decodeObject(b []byte) (map[string]any, error) {
	obj := map[string]any{}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil {
		return map[string]any{}, fmt.Errorf("decode object: %w", err)
	}
	return obj, nil
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// addSession stores a new session, forgetting the oldest one (with its
// payment, refunds and dispute) beyond maxSessions.
func (s *Sim) addSession(ss *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sessions[ss.ID] = ss
	s.order = append(s.order, ss.ID)
	if len(s.order) > maxSessions {
		s.forgetLocked(s.sessions[s.order[0]])
		delete(s.sessions, s.order[0])
		s.order = s.order[1:]
	}
}

// lookup returns a snapshot of the session, expiring it first if due.
func (s *Sim) lookup(id string) (session, bool) {
	ss, err := s.update(id, nil)
	return ss, err == nil
}

// update applies fn to session id under the lock and returns the new
// snapshot. A session past expires_at is expired first. If fn returns an
// event type, that event is logged and delivered.
func (s *Sim) update(id string, fn func(ss *session) (string, error)) (session, error) {
	var evs []*event
	defer func() {
		for _, ev := range evs {
			s.deliver(ev)
		}
	}()
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.sessions[id]
	if !ok {
		return session{}, errNoSession
	}
	now := s.now()
	if ss.Status == statusOpen && now.Unix() >= ss.ExpiresAt {
		ss.Status = statusExpired
		evs = append(evs, s.recordSessionLocked("checkout.session.expired", ss, now))
	}
	if fn == nil {
		return *ss, nil
	}
	typ, err := fn(ss)
	if err == nil && typ != "" {
		evs = append(evs, s.recordSessionLocked(typ, ss, now))
	}
	return *ss, err
}

func (s *Sim) recordSessionLocked(typ string, ss *session, now time.Time) *event {
	return s.recordLocked(typ, s.renderSession(ss.base, ss, nil), ss.ID, now)
}

func expireSession(ss *session) (string, error) {
	if ss.Status != statusOpen {
		return "", &stateError{fmt.Sprintf("Only Checkout Sessions with a status of `open` can be expired. This Checkout Session has a status of `%s`.", ss.Status)}
	}
	ss.Status = statusExpired
	return "checkout.session.expired", nil
}

// recordLocked appends an event of type typ about object (a rendered
// checkout.session, charge, refund, dispute, product, price or payment
// link, whose id is subject) to the log. The caller delivers it after
// unlocking.
func (s *Sim) recordLocked(typ string, object []byte, subject string, now time.Time) *event {
	return s.recordDataLocked(typ, map[string]json.RawMessage{"object": object}, subject, now)
}

// recordDataLocked is recordLocked with the event's whole data member.
func (s *Sim) recordDataLocked(typ string, data map[string]json.RawMessage, subject string, now time.Time) *event {
	pending := 0
	if s.cfg.WebhookURL != "" {
		pending = 1
	}
	ev := &event{ID: newID("evt_", 24), Type: typ, Created: now.Unix()}
	payload, err := json.Marshal(map[string]any{
		"id":               ev.ID,
		"object":           "event",
		"api_version":      apiVersion,
		"created":          ev.Created,
		"data":             data,
		"livemode":         false,
		"pending_webhooks": pending,
		"request":          map[string]any{"id": nil, "idempotency_key": nil},
		"type":             typ,
	})
	if err != nil { // cannot happen: the object is valid JSON from json.Marshal
		s.log.Error("encode event", "type", typ, "err", err)
	}
	ev.payload = payload
	s.events = append(s.events, ev)
	s.eventByID[ev.ID] = ev
	if len(s.events) > maxEvents {
		delete(s.eventByID, s.events[0].ID)
		s.events = s.events[1:]
	}
	s.log.Info("event", "id", ev.ID, "type", typ, "object", subject)
	return ev
}

// newID returns prefix followed by n random alphanumerics.
func newID(prefix string, n int) string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	b := make([]byte, 0, len(prefix)+n)
	b = append(b, prefix...)
	buf := make([]byte, n+n/2)
	for len(b) < len(prefix)+n {
		_, _ = rand.Read(buf) // never fails, see crypto/rand.Read
		for _, c := range buf {
			if c < 248 && len(b) < len(prefix)+n { // 248 = 4*62: unbiased
				b = append(b, alphabet[c%62])
			}
		}
	}
	return string(b)
}

// statusFor maps a state transition error to an HTTP status.
func statusFor(err error) int {
	var se *stateError
	switch {
	case errors.Is(err, errNoSession):
		return http.StatusNotFound
	case errors.As(err, &se):
		return http.StatusBadRequest
	default:
		return http.StatusInternalServerError
	}
}
