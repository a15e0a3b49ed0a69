package stripesim

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shopcheckout/shop/internal/money"
)

// Payment Links sell fixed lines of catalogue Prices from a page of their
// own, /pl/{id}, made without the shop. Buying there (or through POST
// /sim/payment_links/{id}/purchase) starts a Checkout Session with
// payment_link set and nothing of the shop's: no client_reference_id, no
// metadata. The session is then paid on the hosted page like any other,
// and its events carry the link's id. After payment the buyer goes to the
// link's redirect URL, or stays on the hosted page, which thanks them.
// Links are guarded by Sim.mu; like the catalogue they are never
// forgotten, and the simulator makes at most maxPaymentLinks.

const (
	maxPaymentLinks         = 10000
	maxLinkLines            = 20 // as many as Stripe allows on a link
	afterRedirect           = "redirect"
	afterConfirmation       = "hosted_confirmation"
	defaultBuyerEmail       = "customer@example.com"
	eventPaymentLinkCreated = "payment_link.created"
	eventPaymentLinkUpdated = "payment_link.updated"
	// linkKey authenticates the simulator's own requests to stripe-mock,
	// which accepts any test key.
	linkKey = "sk_test_stripesim"
)

var errNoLink = errors.New("no such payment link")

// SeedPaymentLink is a Payment Link the simulator starts with; its lines
// name seeded Prices. Seeding records no events.
type SeedPaymentLink struct {
	// ID is the link's id, plink_...; empty: a generated one.
	ID        string         `json:"id,omitempty"`
	LineItems []SeedLinkLine `json:"line_items"`
	// RedirectURL is where the buyer goes after paying
	// (after_completion[redirect][url]); {CHECKOUT_SESSION_ID} in it is
	// replaced. Empty: the simulator's own confirmation.
	RedirectURL string            `json:"redirect_url,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
}

// SeedLinkLine is one line of a SeedPaymentLink.
type SeedLinkLine struct {
	Price    string `json:"price"`              // a seeded Price's id
	Quantity int64  `json:"quantity,omitempty"` // 0 means 1
}

// PaymentLink is a Payment Link's id and the address of its page.
type PaymentLink struct {
	ID  string
	URL string
}

// paymentLink is a Payment Link. Lines and Metadata are never mutated.
type paymentLink struct {
	ID          string
	Active      bool
	Lines       []lineItem
	Currency    string
	AmountTotal int64
	RedirectURL string // after_completion redirect; "" for the hosted confirmation
	Message     string // the hosted confirmation's custom_message
	Metadata    map[string]string
	Created     int64
}

func (s *Sim) linkURL(id string) string { return s.public + "/pl/" + id }

func linkLinesPath(id string) string { return "/v1/payment_links/" + id + "/line_items" }

func (s *Sim) linkObject(l *paymentLink, expandLines bool) map[string]any {
	after := map[string]any{"type": afterConfirmation, "hosted_confirmation": map[string]any{"custom_message": nullable(l.Message)}}
	if l.RedirectURL != "" {
		after = map[string]any{"type": afterRedirect, "redirect": map[string]any{"url": l.RedirectURL}}
	}
	obj := map[string]any{
		"id":                          l.ID,
		"object":                      "payment_link",
		"active":                      l.Active,
		"after_completion":            after,
		"allow_promotion_codes":       false,
		"application":                 nil,
		"application_fee_amount":      nil,
		"application_fee_percent":     nil,
		"automatic_tax":               map[string]any{"enabled": false},
		"billing_address_collection":  "auto",
		"consent_collection":          nil,
		"currency":                    l.Currency,
		"custom_fields":               []any{},
		"custom_text":                 map[string]any{"after_submit": nil, "shipping_address": nil, "submit": nil, "terms_of_service_acceptance": nil},
		"customer_creation":           "if_required",
		"inactive_message":            nil,
		"invoice_creation":            map[string]any{"enabled": false, "invoice_data": nil},
		"livemode":                    false,
		"metadata":                    orEmptyMap(l.Metadata),
		"on_behalf_of":                nil,
		"payment_intent_data":         nil,
		"payment_method_collection":   "always",
		"payment_method_types":        nil,
		"phone_number_collection":     map[string]any{"enabled": false},
		"shipping_address_collection": nil,
		"shipping_options":            []any{},
		"submit_type":                 "auto",
		"subscription_data":           nil,
		"tax_id_collection":           map[string]any{"enabled": false},
		"transfer_data":               nil,
		"url":                         s.linkURL(l.ID),
	}
	if expandLines {
		page, hasMore, _, _ := paginate(l.Lines, lineID, nil, listQuery{limit: defaultListLimit}, "line_item")
		obj["line_items"] = lineItemList(page, hasMore, l.Created, linkLinesPath(l.ID))
	}
	return obj
}

// PaymentLinks lists the simulator's Payment Links with the address of
// their pages, oldest first: the seeded ones, then those made through the
// API.
func (s *Sim) PaymentLinks() []PaymentLink {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PaymentLink, 0, len(s.linkOrder))
	for _, id := range s.linkOrder {
		out = append(out, PaymentLink{ID: id, URL: s.linkURL(id)})
	}
	return out
}

// newLinkLocked prices lines and adds a link with them.
func (s *Sim) newLinkLocked(id string, lines []lineItem, redirect, message string, metadata map[string]string, now time.Time) (*paymentLink, apiResponse, bool) {
	if len(s.links) >= maxPaymentLinks {
		return nil, tooMany("payment links", maxPaymentLinks), false
	}
	priced, lerr := s.priceLinesLocked(lines)
	if lerr != nil {
		return nil, lerr.response(), false
	}
	ss := session{LineItems: priced}
	if errResp, ok := settleLines(&ss); !ok {
		return nil, errResp, false
	}
	if id == "" {
		id = newID("plink_", 24)
	}
	l := &paymentLink{ID: id, Active: true, Lines: ss.LineItems, Currency: ss.Currency, AmountTotal: ss.AmountTotal,
		RedirectURL: redirect, Message: message, Metadata: metadata, Created: now.Unix()}
	s.links[l.ID] = l
	s.linkOrder = append(s.linkOrder, l.ID)
	return l, apiResponse{}, true
}

// seedLinks adds the seeded links, naming every problem at once. The
// catalogue is seeded first.
func (s *Sim) seedLinks(seeds []SeedPaymentLink, now time.Time) error {
	var problems []error
	for i, sl := range seeds {
		where := fmt.Sprintf("payment link %d", i+1)
		if sl.ID != "" {
			where += fmt.Sprintf(" (%q)", sl.ID)
			if rest, ok := strings.CutPrefix(sl.ID, "plink_"); !ok || !validCustomID(rest) {
				problems = append(problems, fmt.Errorf("%s: id must be plink_ followed by letters, digits, - or _", where))
				continue
			}
			if s.links[sl.ID] != nil {
				problems = append(problems, fmt.Errorf("%s: duplicate id", where))
				continue
			}
		}
		if len(sl.LineItems) == 0 || len(sl.LineItems) > maxLinkLines {
			problems = append(problems, fmt.Errorf("%s: a link has 1 to %d line items", where, maxLinkLines))
			continue
		}
		if sl.RedirectURL != "" {
			if _, err := parseBaseURL(sl.RedirectURL); err != nil {
				problems = append(problems, fmt.Errorf("%s: redirect_url: %w", where, err))
				continue
			}
		}
		if err := checkMetadata(orEmptyMap(sl.Metadata), "metadata"); err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", where, err))
			continue
		}
		lines := make([]lineItem, 0, len(sl.LineItems))
		for _, sll := range sl.LineItems {
			lines = append(lines, lineItem{PriceID: sll.Price, Quantity: max(sll.Quantity, 1)})
		}
		if slices.ContainsFunc(lines, func(li lineItem) bool { return li.PriceID == "" }) {
			problems = append(problems, fmt.Errorf("%s: every line item names a price", where))
			continue
		}
		if _, errResp, ok := s.newLinkLocked(sl.ID, lines, sl.RedirectURL, "", maps.Clone(orEmptyMap(sl.Metadata)), now); !ok {
			problems = append(problems, fmt.Errorf("%s: %s", where, errorMessage(errResp)))
		}
	}
	return errors.Join(problems...)
}

// errorMessage is the message of an error answer, for start-up errors.
func errorMessage(resp apiResponse) string {
	obj, err := decodeObject(resp.body)
	if e, ok := obj["error"].(map[string]any); ok && err == nil {
		if p, ok := e["param"].(string); ok && p != "" {
			return fmt.Sprintf("%s: %v", p, e["message"])
		}
		return fmt.Sprint(e["message"])
	}
	return string(resp.body)
}

func (s *Sim) createLink(_ *http.Request, form url.Values) apiResponse {
	expand, errResp, ok := checkExpand(form, "line_items")
	if !ok {
		return errResp
	}
	lines, err := parseLineItems(form, maxLinkLines)
	if err != nil {
		return invalid("line_items", err.Error())
	}
	if len(lines) == 0 {
		return missingParam("line_items")
	}
	for i, li := range lines {
		switch {
		case li.PriceID == "":
			return missingParam(fmt.Sprintf("line_items[%d][price]", i))
		case li.Quantity < 1:
			return invalid(fmt.Sprintf("line_items[%d][quantity]", i), "This value must be greater than or equal to 1.")
		}
	}
	var redirect, message string
	switch typ := form.Get("after_completion[type]"); typ {
	case "", afterConfirmation:
		message = form.Get("after_completion[hosted_confirmation][custom_message]")
	case afterRedirect:
		if redirect = form.Get("after_completion[redirect][url]"); redirect == "" {
			return missingParam("after_completion[redirect][url]")
		}
		if _, err := parseBaseURL(redirect); err != nil {
			return invalid("after_completion[redirect][url]", "Not a valid URL")
		}
	default:
		return invalid("after_completion[type]", fmt.Sprintf("Invalid after_completion[type]: must be one of %s or %s", afterRedirect, afterConfirmation))
	}
	metadata, errResp, ok := applyMetadata(nil, form)
	if !ok {
		return errResp
	}
	now := s.now()
	s.mu.Lock()
	l, errResp, ok := s.newLinkLocked("", lines, redirect, message, metadata, now)
	if !ok {
		s.mu.Unlock()
		return errResp
	}
	ev := s.recordLocked(eventPaymentLinkCreated, s.encode("payment_link", s.linkObject(l, false)), l.ID, now)
	obj := s.linkObject(l, expand["line_items"])
	s.mu.Unlock()
	s.deliver(ev)
	s.log.Info("payment link created", "id", l.ID, "url", s.linkURL(l.ID))
	return jsonResponse(http.StatusOK, obj)
}

// updateLink changes a link's active and metadata, recording
// payment_link.updated with what changed. A deactivated link's page no
// longer sells.
func (s *Sim) updateLink(r *http.Request, form url.Values) apiResponse {
	expand, errResp, ok := checkExpand(form, "line_items")
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
	l := s.links[id]
	if l == nil {
		s.mu.Unlock()
		return missing("payment_link", id, "id")
	}
	next := *l
	if setActive {
		next.Active = active
	}
	if next.Metadata, errResp, ok = applyMetadata(l.Metadata, form); !ok {
		s.mu.Unlock()
		return errResp
	}
	prev := map[string]any{}
	if next.Active != l.Active {
		prev["active"] = l.Active
	}
	if m := metadataChanges(l.Metadata, next.Metadata); m != nil {
		prev["metadata"] = m
	}
	var ev *event
	if len(prev) > 0 {
		*l = next
		ev = s.recordChangeLocked(eventPaymentLinkUpdated, s.encode("payment_link", s.linkObject(l, false)), prev, l.ID, now)
		s.log.Info("payment link updated", "id", l.ID, "active", l.Active)
	}
	obj := s.linkObject(l, expand["line_items"])
	s.mu.Unlock()
	s.deliver(ev)
	return jsonResponse(http.StatusOK, obj)
}

func (s *Sim) getLink(r *http.Request, q url.Values) apiResponse {
	expand, errResp, ok := checkExpand(q, "line_items")
	if !ok {
		return errResp
	}
	id := r.PathValue("id")
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.links[id]
	if l == nil {
		return missing("payment_link", id, "id")
	}
	return jsonResponse(http.StatusOK, s.linkObject(l, expand["line_items"]))
}

func (s *Sim) getLinkLines(r *http.Request, q url.Values) apiResponse {
	lq, errResp, ok := parseListQuery(q)
	if !ok {
		return errResp
	}
	id := r.PathValue("id")
	s.mu.Lock()
	l := s.links[id]
	s.mu.Unlock()
	if l == nil {
		return missing("payment_link", id, "id")
	}
	page, hasMore, errResp, ok := paginate(l.Lines, lineID, nil, lq, "line_item")
	if !ok {
		return errResp
	}
	return jsonResponse(http.StatusOK, lineItemList(page, hasMore, l.Created, linkLinesPath(id)))
}

// startLinkSession starts a Checkout Session selling link id's lines. Its
// base object is stripe-mock's answer to the create request the session
// stands for, so that it reads like one the shop created.
func (s *Sim) startLinkSession(ctx context.Context, id string) (session, error) {
	s.mu.Lock()
	var l paymentLink
	found := s.links[id] != nil
	if found {
		l = *s.links[id]
	}
	s.mu.Unlock()
	switch {
	case !found:
		return session{}, errNoLink
	case !l.Active:
		return session{}, &stateError{"This payment link is no longer active."}
	}
	form := url.Values{"mode": {"payment"}}
	for i, li := range l.Lines {
		form.Set(fmt.Sprintf("line_items[%d][price]", i), li.PriceID)
		form.Set(fmt.Sprintf("line_items[%d][quantity]", i), strconv.FormatInt(li.Quantity, 10))
	}
	if l.RedirectURL != "" {
		form.Set("success_url", l.RedirectURL)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "/v1/checkout/sessions", nil)
	if err != nil {
		return session{}, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+linkKey)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Stripe-Version", apiVersion)
	resp, err := s.forward(req, "/v1/checkout/sessions", []byte(form.Encode()))
	if err != nil {
		return session{}, fmt.Errorf("stripe-mock: %w", err)
	}
	if resp.status/100 != 2 {
		return session{}, fmt.Errorf("stripe-mock answered %d: %s", resp.status, errorMessage(resp))
	}
	lines := slices.Clone(l.Lines)
	for i := range lines {
		lines[i].ID = newID("li_", 24)
	}
	now := s.now()
	ss := session{
		ID: newID("cs_test_", 58), Mode: "payment", UIMode: uiModeHosted, Status: statusOpen, PaymentStatus: paymentUnpaid,
		Currency: l.Currency, AmountTotal: l.AmountTotal, SuccessURL: l.RedirectURL, PaymentLink: l.ID, LinkMessage: l.Message,
		Metadata: map[string]string{}, PIMetadata: map[string]string{}, LineItems: lines,
		Created: now.Unix(), ExpiresAt: now.Add(sessionLifetime).Unix(), base: resp.body,
	}
	s.addSession(&ss)
	s.log.Info("checkout session created", "id", ss.ID, "payment_link", l.ID, "amount_total", ss.AmountTotal, "currency", ss.Currency)
	return ss, nil
}

// linkPageData feeds a Payment Link's page.
type linkPageData struct {
	ID     string
	Found  bool
	Active bool
	Lines  []pageLine
	Total  string
	Error  string
}

func (s *Sim) linkPage(id string) (linkPageData, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.links[id]
	if l == nil {
		return linkPageData{ID: id}, false
	}
	return linkPageData{ID: l.ID, Found: true, Active: l.Active, Lines: pageLines(l.Lines),
		Total: money.Format(l.AmountTotal, l.Currency)}, true
}

func (s *Sim) renderLinkPage(w http.ResponseWriter, status int, data linkPageData) {
	s.renderHTML(w, status, "link", data, hostedCSP)
}

func (s *Sim) handleLinkPage(w http.ResponseWriter, r *http.Request) {
	data, ok := s.linkPage(r.PathValue("id"))
	if !ok {
		s.renderLinkPage(w, http.StatusNotFound, data)
		return
	}
	s.renderLinkPage(w, http.StatusOK, data)
}

// handleLinkBuy starts a session for the link and sends the buyer to its
// hosted page.
func (s *Sim) handleLinkBuy(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	data, ok := s.linkPage(id)
	if !ok {
		s.renderLinkPage(w, http.StatusNotFound, data)
		return
	}
	ss, err := s.startLinkSession(r.Context(), id)
	var se *stateError
	switch {
	case errors.As(err, &se):
		data.Error = se.msg
		s.renderLinkPage(w, http.StatusConflict, data)
		return
	case err != nil:
		s.log.Error("start payment link session", "link", id, "err", err)
		data.Error = "The checkout could not be started: the simulator could not reach stripe-mock."
		s.renderLinkPage(w, http.StatusBadGateway, data)
		return
	}
	http.Redirect(w, r, "/pay/"+ss.ID, http.StatusSeeOther)
}

// handleLinkPurchase buys through a link without a browser: it starts a
// session and completes it as the hosted page would, by card
// (outcome=pay, the default) or by delayed bank debit (outcome=delayed),
// for email (default customer@example.com). It answers like GET
// /sim/sessions/{id}.
func (s *Sim) handleLinkPurchase(w http.ResponseWriter, r *http.Request) {
	controlForm(w, r)
	outcome := cmp.Or(r.FormValue("outcome"), outcomePay)
	if outcome != outcomePay && outcome != outcomeDelayed {
		invalid("outcome", "outcome must be pay or delayed").write(w)
		return
	}
	email := cmp.Or(strings.TrimSpace(r.FormValue("email")), defaultBuyerEmail)
	if !validEmail(email) {
		invalid("email", "email must be a plain email address").write(w)
		return
	}
	id := r.PathValue("id")
	ss, err := s.startLinkSession(r.Context(), id)
	var se *stateError
	switch {
	case errors.Is(err, errNoLink):
		missing("payment_link", id, "id").write(w)
		return
	case errors.As(err, &se):
		invalid("", se.msg).write(w)
		return
	case err != nil:
		s.log.Error("start payment link session", "link", id, "err", err)
		mockUnreachable(err).write(w)
		return
	}
	if ss, err = s.completeSession(ss.ID, outcome, email); err != nil {
		stripeError(statusFor(err), "invalid_request_error", "", "", err.Error()).write(w)
		return
	}
	s.writeSession(w, ss)
}
