package web

import (
	"encoding/csv"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5/middleware"

	"github.com/shopcheckout/shop/internal/money"
	"github.com/shopcheckout/shop/internal/orders"
)

// csvHeader is the export's first row; csvRecord fills the others in the
// same order.
var csvHeader = []string{
	"id", "created_at", "status", "email", "currency",
	"amount_total", "amount_total_decimal", "amount_refunded", "amount_refunded_decimal",
	"items", "session_id", "payment_intent_id", "paid_at", "fulfilled_at",
}

// csvFlushEvery is how many rows the export writes between flushes: a
// page of the store's (see orders.Service.EachOrder).
const csvFlushEvery = orders.MaxListLimit

// csvWriteWindow is how long the client has to take each flushed page: the
// export outlives the server's WriteTimeout as long as it keeps reading.
const csvWriteWindow = 30 * time.Second

// errHeadAnswered stops a HEAD request's export at its first order: the
// status and headers are known then, and the body is not sent.
var errHeadAnswered = errors.New("head answered")

// handleAdminOrdersCSV exports every order the list's filter keeps, newest
// first, as RFC 4180 CSV. Rows go out as the store returns them, so memory
// stays flat however many orders there are. A failure once the first row is
// out aborts the connection: the client sees a broken download, never a
// file that looks complete and is not.
func (s *Server) handleAdminOrdersCSV(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	f, _, problem := s.orderFilter(r.URL.Query(), false)
	if problem != "" {
		s.fail(w, r, http.StatusBadRequest, problem, nil)
		return
	}
	rc := http.NewResponseController(w)
	cw := csv.NewWriter(w)
	cw.UseCRLF = true
	rows := 0
	var writeErr error
	// start sends the headers and the header row, once the store has
	// answered: until then a failure is still an ordinary error page.
	start := func() {
		h := w.Header()
		h.Set("Content-Type", "text/csv; charset=utf-8")
		h.Set("Content-Disposition", `attachment; filename="orders-`+s.now().In(s.cfg.Location).Format(time.DateOnly)+`.csv"`)
		_ = cw.Write(csvHeader) // an error stays in cw: see flush
	}
	flush := func() error {
		cw.Flush()
		err := cw.Error()
		if err == nil {
			err = rc.Flush()
		}
		if err == nil {
			err = rc.SetWriteDeadline(time.Now().Add(csvWriteWindow))
		}
		if errors.Is(err, http.ErrNotSupported) {
			err = nil // a writer that cannot flush or has no deadline still takes the rows
		}
		return err
	}
	record := make([]string, len(csvHeader))
	var items strings.Builder
	head := r.Method == http.MethodHead
	err := s.orders.EachOrder(r.Context(), f, func(o orders.Order) error {
		if rows == 0 {
			start()
		}
		rows++
		if head {
			return errHeadAnswered // the store answered: that is all HEAD needs
		}
		_ = cw.Write(csvRecord(record, &items, o)) // an error stays in cw: see flush
		if rows%csvFlushEvery == 0 {
			if writeErr = flush(); writeErr != nil {
				return writeErr
			}
		}
		return nil
	})
	switch {
	case err == nil || errors.Is(err, errHeadAnswered):
		if rows == 0 {
			start() // no order matches: the header row alone
		}
		if writeErr = flush(); writeErr == nil {
			return
		}
	case rows == 0 && errors.Is(err, orders.ErrRule):
		s.fail(w, r, http.StatusBadRequest, "That filter is not valid.", err)
		return
	case rows == 0:
		s.fail(w, r, http.StatusServiceUnavailable, "The orders could not be exported; try again.", err)
		return
	}
	attrs := []slog.Attr{slog.String("request_id", middleware.GetReqID(r.Context())), slog.Int("rows_sent", rows)}
	if writeErr != nil || r.Context().Err() != nil {
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "order export stopped: the client went away", attrs...)
	} else {
		s.log.LogAttrs(r.Context(), slog.LevelError, "order export failed midway: connection aborted so the file cannot pass for complete",
			append(attrs, slog.Any("error", err))...)
	}
	panic(http.ErrAbortHandler)
}

// csvRecord fills record with o's cells, every one spreadsheet-safe; items
// is scratch space for the items cell.
func csvRecord(record []string, items *strings.Builder, o orders.Order) []string {
	items.Reset()
	for i, it := range o.Items {
		if i > 0 {
			items.WriteString("; ")
		}
		items.WriteString(strconv.FormatInt(it.Quantity, 10))
		items.WriteString(" × ")
		items.WriteString(it.Name)
	}
	cells := [...]string{
		o.ID, csvTime(&o.CreatedAt), string(o.Status), o.Email, o.Currency,
		strconv.FormatInt(o.AmountTotal, 10), money.Decimal(o.AmountTotal, o.Currency),
		strconv.FormatInt(o.AmountRefunded, 10), money.Decimal(o.AmountRefunded, o.Currency),
		items.String(), o.SessionID, o.PaymentIntentID, csvTime(o.PaidAt), csvTime(o.FulfilledAt),
	}
	for i, c := range cells {
		record[i] = spreadsheetSafe(c)
	}
	return record
}

// csvTime is a time as the export writes it, RFC 3339 in UTC; "" for none.
func csvTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// spreadsheetSafe keeps a spreadsheet from reading a cell as a formula (CSV
// injection): a cell starting with =, +, -, @, a tab or a carriage return
// gets a ' in front, which spreadsheets show as text. Shoppers choose their
// email, and product names are the catalogue's; no cell is exempt.
func spreadsheetSafe(cell string) string {
	if cell != "" && strings.IndexByte("=+-@\t\r", cell[0]) >= 0 {
		return "'" + cell
	}
	return cell
}
