package web

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/shopcheckout/shop/internal/money"
	"github.com/shopcheckout/shop/internal/orders"
)

// overviewDays is the overview's longer period: that many calendar days of
// the shop's time zone, today included.
const overviewDays = 30

// overviewTime is how the overview writes the start of a period.
const overviewTime = "Mon 2 Jan 2006, 15:04"

// overviewAlarmLimit caps the alarms counted for the overview; at it, the
// count reads "or more".
const overviewAlarmLimit = 1000

// adminOverviewPage is the view model of admin_overview.html.
type adminOverviewPage struct {
	Page
	Zone          string
	Today, Recent salesPeriodView
	// OpenAlarms is the count of open alarms, as text ("1000 or more" at
	// the cap); Alarming is whether there are any.
	OpenAlarms    string
	Alarming      bool
	Pending, Dead int
}

// salesPeriodView is one period of the overview: its heading, an id for
// its table, when it started and a row per currency.
type salesPeriodView struct {
	ID, Heading, Since string
	Rows               []salesRow
}

type salesRow struct {
	Currency, Paid, Refunded, Net string
	Orders                        int
}

// overviewBody is the overview as JSON: amounts in minor units, as in the
// rest of the admin's JSON.
type overviewBody struct {
	TimeZone   string       `json:"timeZone"`
	Today      salesPeriod  `json:"today"`
	Last30Days salesPeriod  `json:"last30Days"`
	OpenAlarms int          `json:"openAlarms"`
	Outbox     outboxCounts `json:"outbox"`
}

// salesPeriod is what was paid from Since (local midnight, with its
// offset) until now, per currency.
type salesPeriod struct {
	Since time.Time      `json:"since"`
	Sales []salesFigures `json:"sales"`
}

type salesFigures struct {
	orders.Sales
	Net int64 `json:"net"`
}

type outboxCounts struct {
	Pending int `json:"pending"`
	Dead    int `json:"dead"`
}

// overviewSince is where the overview's periods start at now: today's
// local midnight, and the midnight overviewDays-1 days before it.
func overviewSince(now time.Time, loc *time.Location) (today, recent time.Time) {
	y, m, d := now.In(loc).Date()
	today = time.Date(y, m, d, 0, 0, 0, 0, loc)
	return today, time.Date(y, m, d-(overviewDays-1), 0, 0, 0, 0, loc)
}

// handleAdminOverview is the back office's first page: what sold today and
// in the last 30 days, per currency, what needs a person, and links to the
// rest.
func (s *Server) handleAdminOverview(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	ctx := r.Context()
	loc := s.cfg.Location
	todaySince, recentSince := overviewSince(s.now(), loc)
	today, err := s.orders.Sales(ctx, todaySince)
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "The overview could not be loaded.", err)
		return
	}
	recent, err := s.orders.Sales(ctx, recentSince)
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "The overview could not be loaded.", err)
		return
	}
	alarms, err := s.orders.Alarms(ctx, orders.AlarmFilter{Open: true, Limit: overviewAlarmLimit})
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "The overview could not be loaded.", err)
		return
	}
	outbox, err := s.orders.OutboxStats(ctx)
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "The overview could not be loaded.", err)
		return
	}
	if wantsJSON(r) {
		s.writeJSON(w, r, http.StatusOK, overviewBody{
			TimeZone:   loc.String(),
			Today:      salesPeriod{Since: todaySince, Sales: salesFiguresOf(today)},
			Last30Days: salesPeriod{Since: recentSince, Sales: salesFiguresOf(recent)},
			OpenAlarms: len(alarms),
			Outbox:     outboxCounts{Pending: outbox.Pending, Dead: outbox.Dead},
		})
		return
	}
	v := adminOverviewPage{
		Page: s.page("Overview"), Zone: loc.String(),
		Today: salesPeriodView{ID: "today", Heading: "Today",
			Since: "since " + todaySince.Format(overviewTime), Rows: salesRows(today)},
		Recent: salesPeriodView{ID: "last-30-days", Heading: "Last 30 days",
			Since: "the last 30 calendar days, today included: since " + recentSince.Format(overviewTime), Rows: salesRows(recent)},
		OpenAlarms: strconv.Itoa(len(alarms)), Alarming: len(alarms) > 0,
		Pending: outbox.Pending, Dead: outbox.Dead,
	}
	if len(alarms) >= overviewAlarmLimit {
		v.OpenAlarms = strconv.Itoa(overviewAlarmLimit) + " or more"
	}
	s.render(w, r, http.StatusOK, "admin_overview", v)
}

// salesFiguresOf adds each currency's net; none is [] rather than null.
func salesFiguresOf(list []orders.Sales) []salesFigures {
	out := make([]salesFigures, 0, len(list))
	for _, sl := range list {
		out = append(out, salesFigures{Sales: sl, Net: sl.Net()})
	}
	return out
}

// salesRows formats each currency's sales for the page.
func salesRows(list []orders.Sales) []salesRow {
	var out []salesRow
	for _, sl := range list {
		out = append(out, salesRow{
			Currency: strings.ToUpper(sl.Currency), Orders: sl.Orders,
			Paid: money.Format(sl.Paid, sl.Currency), Refunded: money.Format(sl.Refunded, sl.Currency), Net: money.Format(sl.Net(), sl.Currency),
		})
	}
	return out
}
