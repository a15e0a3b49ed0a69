package stripesim

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// apiResponse is a buffered API answer, so that it can be saved for
// idempotent replay.
type apiResponse struct {
	status int
	header http.Header
	body   []byte
}

func (a apiResponse) write(w http.ResponseWriter) {
	for k, v := range a.header {
		w.Header()[k] = v
	}
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body)
}

func jsonResponse(status int, v any) apiResponse {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return stripeError(http.StatusInternalServerError, "api_error", "", "", "encode response: "+err.Error())
	}
	return apiResponse{status: status, body: append(b, '\n')}
}

// stripeError builds an error answer in Stripe's shape.
func stripeError(status int, typ, code, param, msg string) apiResponse {
	type body struct {
		Type    string `json:"type"`
		Code    string `json:"code,omitempty"`
		Message string `json:"message"`
		Param   string `json:"param,omitempty"`
	}
	b, _ := json.Marshal(map[string]body{"error": {typ, code, msg, param}}) // plain strings: cannot fail
	return apiResponse{status: status, body: b}
}

func missing(object, id, param string) apiResponse {
	return stripeError(http.StatusNotFound, "invalid_request_error", "resource_missing", param,
		fmt.Sprintf("No such %s: '%s'", object, id))
}

func invalid(param, msg string) apiResponse {
	return stripeError(http.StatusBadRequest, "invalid_request_error", "", param, msg)
}

func mockUnreachable(err error) apiResponse {
	return stripeError(http.StatusBadGateway, "api_error", "", "", "stripe-sim: stripe-mock request failed: "+err.Error())
}

// readBody reads a capped request body; on failure it answers and
// returns false.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		stripeError(http.StatusRequestEntityTooLarge, "invalid_request_error", "", "", "request body: "+err.Error()).write(w)
		return nil, false
	}
	return body, true
}

// forward sends r, with the given body, to stripe-mock at path and buffers
// the answer.
func (s *Sim) forward(r *http.Request, path string, body []byte) (apiResponse, error) {
	u := *s.mock
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawPath = ""
	u.RawQuery = r.URL.RawQuery
	req, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		return apiResponse{}, fmt.Errorf("build request: %w", err)
	}
	for k, v := range r.Header {
		switch http.CanonicalHeaderKey(k) {
		case "Connection", "Keep-Alive", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
			"Proxy-Connection", "Proxy-Authorization", "Accept-Encoding", "Content-Length", "Host":
			continue
		}
		req.Header[k] = slices.Clone(v)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return apiResponse{}, fmt.Errorf("%s %s: %w", r.Method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxMockBytes+1))
	if err != nil {
		return apiResponse{}, fmt.Errorf("read stripe-mock answer: %w", err)
	}
	if len(b) > maxMockBytes {
		return apiResponse{}, errors.New("stripe-mock answer too large")
	}
	h := http.Header{}
	for _, k := range []string{"Content-Type", "Request-Id"} {
		if v := resp.Header.Get(k); v != "" {
			h.Set(k, v)
		}
	}
	return apiResponse{status: resp.StatusCode, header: h, body: b}, nil
}

// validate forwards r to stripe-mock. ok reports a 2xx answer; otherwise
// the returned answer (stripe-mock's error, or a 502) is to be relayed.
func (s *Sim) validate(r *http.Request, body []byte) (apiResponse, bool) {
	resp, err := s.forward(r, r.URL.Path, body)
	if err != nil {
		s.log.Error("stripe-mock request failed", "err", err)
		return mockUnreachable(err), false
	}
	return resp, resp.status/100 == 2
}

// idemEntry is one idempotency key. done is closed once the first request
// finished; resp and saved are then immutable.
type idemEntry struct {
	done  chan struct{}
	hash  [32]byte
	resp  apiResponse
	saved bool
	at    time.Time
}

// idempotent runs fn at most once per Idempotency-Key and credential and
// replays the saved answer for repeats, like Stripe. Concurrent repeats wait
// for the first request. Only successful answers are saved, so a request
// that failed validation can be retried with the same key.
func (s *Sim) idempotent(r *http.Request, body []byte, fn func() apiResponse) apiResponse {
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		return fn()
	}
	scope := strings.Join([]string{r.Header.Get("Authorization"), r.Header.Get("Stripe-Account"), key}, "\x00")
	hash := sha256.Sum256([]byte(r.Method + " " + r.URL.Path + "?" + string(body)))
	for {
		s.mu.Lock()
		s.sweepIdempotencyLocked()
		e, found := s.idem[scope]
		if !found {
			e = &idemEntry{done: make(chan struct{}), hash: hash}
			s.idem[scope] = e
		}
		s.mu.Unlock()
		if !found {
			return s.runIdempotent(scope, e, fn)
		}
		if e.hash != hash {
			return stripeError(http.StatusBadRequest, "idempotency_error", "", "",
				fmt.Sprintf("Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '%s' if you meant to execute a different request.", key))
		}
		select {
		case <-e.done:
		case <-r.Context().Done():
			return stripeError(http.StatusConflict, "idempotency_error", "idempotency_key_in_use", "", "request canceled while another request with the same idempotency key was in progress")
		}
		if e.saved {
			resp := e.resp
			resp.header = resp.header.Clone()
			if resp.header == nil {
				resp.header = http.Header{}
			}
			resp.header.Set("Idempotent-Replayed", "true")
			resp.header.Set("Idempotency-Key", key)
			return resp
		}
		// The first request failed and was not saved: compete again.
	}
}

func (s *Sim) runIdempotent(scope string, e *idemEntry, fn func() apiResponse) (resp apiResponse) {
	resp.status = http.StatusInternalServerError // if fn panics
	defer func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if resp.status/100 == 2 {
			e.resp, e.saved, e.at = resp, true, s.now()
		} else {
			delete(s.idem, scope)
		}
		close(e.done)
	}()
	return fn()
}

func (s *Sim) sweepIdempotencyLocked() {
	now := s.now()
	if now.Sub(s.lastSweep) < time.Minute {
		return
	}
	s.lastSweep = now
	for k, e := range s.idem {
		if e.saved && now.Sub(e.at) > idempotencyLifetime {
			delete(s.idem, k)
		}
	}
}

func (s *Sim) handleCreate(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	s.idempotent(r, body, func() apiResponse { return s.create(r, body) }).write(w)
}

func (s *Sim) create(r *http.Request, body []byte) apiResponse {
	mockBody, errResp, ok := toMockUIMode(body)
	if !ok {
		return errResp
	}
	resp, ok := s.validate(r, mockBody)
	if !ok {
		return resp
	}
	if _, err := decodeObject(resp.body); err != nil {
		return mockUnreachable(err)
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return invalid("", "invalid form body: "+err.Error())
	}
	ss, err := parseSession(form)
	if err != nil {
		return invalid("line_items", err.Error())
	}
	if errResp, ok := checkUIMode(form, &ss); !ok {
		return errResp
	}
	s.mu.Lock()
	lines, lerr := s.priceLinesLocked(ss.LineItems)
	s.mu.Unlock()
	if lerr != nil {
		return lerr.response()
	}
	ss.LineItems = lines
	if errResp, ok := settleLines(&ss); !ok {
		return errResp
	}
	now := s.now()
	ss.ID = newID("cs_test_", 58)
	if ss.UIMode == uiModeEmbedded {
		ss.ClientSecret = ss.ID + "_secret_" + newID("", 24)
	}
	ss.Status, ss.PaymentStatus = statusOpen, paymentUnpaid
	ss.Created, ss.ExpiresAt = now.Unix(), now.Add(sessionLifetime).Unix()
	if v := form.Get("expires_at"); v != "" {
		if ss.ExpiresAt, err = strconv.ParseInt(v, 10, 64); err != nil {
			return invalid("expires_at", "Invalid integer: "+v)
		}
	}
	ss.base = resp.body
	s.addSession(&ss)
	s.log.Info("checkout session created", "id", ss.ID, "ui_mode", ss.UIMode, "amount_total", ss.AmountTotal, "currency", ss.Currency)
	resp.body = s.renderSession(resp.body, &ss, expandSet(form))
	return resp
}

// settleLines gives the session and its lines one currency and the session
// its total, refusing lines in several currencies: one payment is in one.
func settleLines(ss *session) (apiResponse, bool) {
	for i := range ss.LineItems {
		li := &ss.LineItems[i]
		if ss.Currency == "" {
			ss.Currency = li.Currency
		}
		if li.Currency == "" {
			li.Currency = ss.Currency
		}
		if li.Currency != ss.Currency {
			return invalid(fmt.Sprintf("line_items[%d]", i), fmt.Sprintf(
				"All line items must be in one currency: line item %d is in %s, the others in %s.", i, li.Currency, ss.Currency)), false
		}
	}
	total, err := sumLines(ss.LineItems)
	if err != nil {
		return invalid("line_items", err.Error()), false
	}
	ss.AmountTotal = total
	return apiResponse{}, true
}

func (s *Sim) handleRetrieve(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	ss, ok := s.lookup(id)
	if !ok {
		missing("checkout.session", id, "id").write(w)
		return
	}
	resp, ok := s.validate(r, nil)
	if ok {
		resp.body = s.renderSession(resp.body, &ss, expandSet(r.URL.Query()))
	}
	resp.write(w)
}

func (s *Sim) handleLineItems(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	ss, ok := s.lookup(id)
	if !ok {
		missing("checkout.session", id, "id").write(w)
		return
	}
	resp, ok := s.validate(r, nil)
	if !ok {
		resp.write(w)
		return
	}
	lq, errResp, ok := parseListQuery(r.URL.Query())
	if !ok {
		errResp.write(w)
		return
	}
	page, hasMore, errResp, ok := paginate(ss.LineItems, lineID, nil, lq, "line_item")
	if !ok {
		errResp.write(w)
		return
	}
	jsonResponse(http.StatusOK, lineItemList(page, hasMore, ss.Created, sessionLinesPath(id))).write(w)
}

func (s *Sim) handleExpire(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	s.idempotent(r, body, func() apiResponse {
		id := r.PathValue("id")
		if _, ok := s.lookup(id); !ok {
			return missing("checkout.session", id, "id")
		}
		resp, ok := s.validate(r, body)
		if !ok {
			return resp
		}
		ss, err := s.update(id, expireSession)
		if err != nil {
			return invalid("", err.Error())
		}
		form, _ := url.ParseQuery(string(body)) // stripe-mock accepted it
		resp.body = s.renderSession(resp.body, &ss, expandSet(form))
		return resp
	}).write(w)
}

func (s *Sim) handleGetEvent(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	ev := s.eventByID[id]
	s.mu.Unlock()
	if ev == nil {
		missing("event", id, "id").write(w)
		return
	}
	resp, ok := s.validate(r, nil)
	if ok {
		resp.body = ev.payload
	}
	resp.write(w)
}

// eventFilter selects events for GET /v1/events.
type eventFilter struct {
	typ    string   // exact, or prefix ending in "*"
	types  []string // any of
	gt, lt int64    // exclusive bounds on created
}

func parseEventFilter(q url.Values) (eventFilter, apiResponse, bool) {
	f := eventFilter{typ: q.Get("type"), types: listParam(q, "types"), gt: math.MinInt64, lt: math.MaxInt64}
	bounds := []struct {
		key   string
		apply func(n int64)
	}{
		{"created", func(n int64) { f.gt, f.lt = max(f.gt, n-1), min(f.lt, n+1) }},
		{"created[gt]", func(n int64) { f.gt = max(f.gt, n) }},
		{"created[gte]", func(n int64) { f.gt = max(f.gt, n-1) }},
		{"created[lt]", func(n int64) { f.lt = min(f.lt, n) }},
		{"created[lte]", func(n int64) { f.lt = min(f.lt, n+1) }},
	}
	for _, b := range bounds {
		if v := q.Get(b.key); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return f, invalid(b.key, "Invalid integer: "+v), false
			}
			b.apply(n)
		}
	}
	return f, apiResponse{}, true
}

func (f eventFilter) match(ev *event) bool {
	if ev.Created <= f.gt || ev.Created >= f.lt {
		return false
	}
	if len(f.types) > 0 && !slices.Contains(f.types, ev.Type) {
		return false
	}
	if prefix, ok := strings.CutSuffix(f.typ, "*"); ok {
		return strings.HasPrefix(ev.Type, prefix)
	}
	return f.typ == "" || f.typ == ev.Type
}

func (s *Sim) handleListEvents(w http.ResponseWriter, r *http.Request) {
	resp, ok := s.validate(r, nil)
	if !ok {
		resp.write(w)
		return
	}
	q := r.URL.Query()
	lq, errResp, ok := parseListQuery(q)
	if !ok {
		errResp.write(w)
		return
	}
	f, errResp, ok := parseEventFilter(q)
	if !ok {
		errResp.write(w)
		return
	}

	s.mu.Lock()
	all := make([]*event, 0, len(s.events)) // newest first
	for i := len(s.events) - 1; i >= 0; i-- {
		all = append(all, s.events[i])
	}
	s.mu.Unlock()

	page, hasMore, errResp, ok := paginate(all, func(ev *event) string { return ev.ID }, f.match, lq, "event")
	if !ok {
		errResp.write(w)
		return
	}
	data := make([]json.RawMessage, 0, len(page))
	for _, ev := range page {
		data = append(data, ev.payload)
	}
	jsonResponse(http.StatusOK, listObject(data, hasMore, "/v1/events")).write(w)
}
