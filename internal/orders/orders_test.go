package orders_test

import (
	"fmt"
	"regexp"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shopcheckout/shop/internal/orders"
)

const (
	completed = orders.EventSessionCompleted
	succeeded = orders.EventAsyncPaymentSucceeded
	failed    = orders.EventAsyncPaymentFailed
	expired   = orders.EventSessionExpired
	read      = "" // a direct read of the session
	other     = "customer.created"
)

func TestOutcome(t *testing.T) {
	// The specification, first matching row wins; "*" matches anything.
	rules := []struct {
		eventType, status, payment string
		want                       orders.Status
	}{
		{succeeded, "*", "*", orders.StatusPaid},
		{failed, "*", "*", orders.StatusFailed},
		{expired, "*", "*", orders.StatusExpired},
		{other, "*", "*", ""},
		{completed, "expired", "*", orders.StatusExpired},
		{completed, "*", "paid", orders.StatusPaid},
		{completed, "*", "no_payment_required", orders.StatusPaid},
		{completed, "*", "unpaid", orders.StatusProcessing},
		{read, "expired", "*", orders.StatusExpired},
		{read, "open", "*", ""},
		{read, "complete", "paid", orders.StatusPaid},
		{read, "complete", "no_payment_required", orders.StatusPaid},
		{read, "complete", "unpaid", orders.StatusProcessing},
	}
	match := func(pattern, v string) bool { return pattern == "*" || pattern == v }
	for _, typ := range []string{completed, succeeded, failed, expired, read, other} {
		for _, status := range []string{"open", "complete", "expired"} {
			for _, payment := range []string{"paid", "unpaid", "no_payment_required"} {
				s := orders.Session{Status: status, PaymentStatus: payment}
				var want orders.Status = "?"
				for _, r := range rules {
					if r.eventType == typ && match(r.status, status) && match(r.payment, payment) {
						want = r.want
						break
					}
				}
				if got := orders.Outcome(typ, s); got != want {
					t.Errorf("Outcome(%q, %s/%s) = %q, want %q", typ, status, payment, got, want)
				}
			}
		}
	}
}

// observation is one thing Stripe can tell the shop about a session.
type observation struct {
	name      string
	eventType string
	session   orders.Session
}

// observations returns, with figures matching an order of 4000 usd, every
// kind of observation, in the column order of TestNextStatus.
func observations() []observation {
	s := func(status, payment string) orders.Session {
		amount := int64(4000)
		return orders.Session{ID: "cs_1", OrderID: "ord_1", Status: status, PaymentStatus: payment,
			AmountTotal: &amount, Currency: "usd"}
	}
	return []observation{
		{"completed/paid", completed, s("complete", "paid")},
		{"completed/no_payment_required", completed, s("complete", "no_payment_required")},
		{"completed/unpaid", completed, s("complete", "unpaid")},
		{"async succeeded", succeeded, s("complete", "paid")},
		{"async failed", failed, s("complete", "unpaid")},
		{"expired", expired, s("expired", "unpaid")},
		{"read open", read, s("open", "unpaid")},
		{"read complete/paid", read, s("complete", "paid")},
		{"read complete/no_payment_required", read, s("complete", "no_payment_required")},
		{"read complete/unpaid", read, s("complete", "unpaid")},
		{"read expired", read, s("expired", "unpaid")},
		{"unhandled", other, s("complete", "paid")},
	}
}

func order(status orders.Status) orders.Order {
	return orders.Order{ID: "ord_1", Status: status, AmountTotal: 4000, Currency: "usd", SessionID: "cs_1", Email: "a@example.com"}
}

func TestNextStatus(t *testing.T) {
	const (
		pe = orders.StatusPending
		pr = orders.StatusProcessing
		pd = orders.StatusPaid
		fa = orders.StatusFailed
		ex = orders.StatusExpired
		nr = orders.StatusNeedsReview
	)
	// want[from] lists the status after each observation, in observations() order.
	want := map[orders.Status][]orders.Status{
		pe: {pd, pd, pr, pd, fa, ex, pe, pd, pd, pr, ex, pe},
		pr: {pd, pd, pr, pd, fa, ex, pr, pd, pd, pr, ex, pr},
		pd: {pd, pd, pd, pd, pd, pd, pd, pd, pd, pd, pd, pd},
		fa: {pd, pd, fa, pd, fa, fa, fa, pd, pd, fa, fa, fa},
		ex: {pd, pd, ex, pd, fa, ex, ex, pd, pd, ex, ex, ex},
		nr: {nr, nr, nr, nr, nr, nr, nr, nr, nr, nr, nr, nr},
	}
	obs := observations()
	for _, from := range []orders.Status{orders.StatusPending, orders.StatusProcessing, orders.StatusPaid, orders.StatusFailed, orders.StatusExpired, orders.StatusNeedsReview} {
		for i, ob := range obs {
			o := order(from)
			c := orders.Next(o, ob.eventType, ob.session)
			w := orders.Change{Status: want[from][i], Email: o.Email, Changed: want[from][i] != from}
			if diff := cmp.Diff(w, c); diff != "" {
				t.Errorf("Next(%s, %s) mismatch (-want +got):\n%s", from, ob.name, diff)
			}
		}
	}
}

func TestNext(t *testing.T) {
	paid := observations()[0]
	withSession := func(ob observation, f func(*orders.Session)) observation {
		amount := *ob.session.AmountTotal
		ob.session.AmountTotal = &amount
		f(&ob.session)
		return ob
	}
	wrongAmount := withSession(paid, func(s *orders.Session) { *s.AmountTotal = 3999 })
	wrongCurrency := withSession(paid, func(s *orders.Session) { s.Currency = "eur" })
	const amountReview, currencyReview = "amount differs from the order", "currency differs from the order"

	tests := []struct {
		name  string
		order orders.Order
		ob    observation
		want  orders.Change
	}{
		{"email recorded", orders.Order{Status: orders.StatusPending, AmountTotal: 4000, Currency: "usd"},
			withSession(paid, func(s *orders.Session) { s.Email = "b@example.com" }),
			orders.Change{Status: orders.StatusPaid, Email: "b@example.com", Changed: true}},
		{"email alone is a change", orders.Order{Status: orders.StatusPending, AmountTotal: 4000, Currency: "usd"},
			withSession(observations()[6], func(s *orders.Session) { s.Email = "b@example.com" }),
			orders.Change{Status: orders.StatusPending, Email: "b@example.com", Changed: true}},
		{"email kept", order(orders.StatusPending),
			withSession(paid, func(s *orders.Session) { s.Email = "b@example.com" }),
			orders.Change{Status: orders.StatusPaid, Email: "a@example.com", Changed: true}},
		{"no change", order(orders.StatusPaid), paid,
			orders.Change{Status: orders.StatusPaid, Email: "a@example.com"}},
		{"wrong amount", order(orders.StatusPending), wrongAmount,
			orders.Change{Status: orders.StatusNeedsReview, Email: "a@example.com", Review: amountReview, Changed: true}},
		{"wrong currency", order(orders.StatusProcessing), wrongCurrency,
			orders.Change{Status: orders.StatusNeedsReview, Email: "a@example.com", Review: currencyReview, Changed: true}},
		{"currency case ignored", order(orders.StatusPending), withSession(paid, func(s *orders.Session) { s.Currency = "USD" }),
			orders.Change{Status: orders.StatusPaid, Email: "a@example.com", Changed: true}},
		{"figures not given", order(orders.StatusPending), withSession(paid, func(s *orders.Session) { s.AmountTotal, s.Currency = nil, "" }),
			orders.Change{Status: orders.StatusPaid, Email: "a@example.com", Changed: true}},
		{"wrong amount on a failed order", order(orders.StatusFailed), withSession(observations()[3], func(s *orders.Session) { *s.AmountTotal = 1 }),
			orders.Change{Status: orders.StatusNeedsReview, Email: "a@example.com", Review: amountReview, Changed: true}},
		{"wrong amount after paid", order(orders.StatusPaid), wrongAmount,
			orders.Change{Status: orders.StatusPaid, Email: "a@example.com"}},
		{"wrong amount of an open session", order(orders.StatusPending), withSession(observations()[6], func(s *orders.Session) { *s.AmountTotal = 1 }),
			orders.Change{Status: orders.StatusPending, Email: "a@example.com"}},
		{"first review kept", func() orders.Order {
			o := order(orders.StatusNeedsReview)
			o.Review = currencyReview
			return o
		}(), wrongAmount,
			orders.Change{Status: orders.StatusNeedsReview, Email: "a@example.com", Review: currencyReview}},
	}
	for _, tt := range tests {
		got := orders.Next(tt.order, tt.ob.eventType, tt.ob.session)
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s: Next mismatch (-want +got):\n%s", tt.name, diff)
		}
	}
}

// TestNextArrivalOrder checks that, for every multiset of up to four handled
// events about one session and every order in which they can arrive, folding
// Next ends in the same status, from every starting status.
func TestNextArrivalOrder(t *testing.T) {
	handled := observations()[:6]
	var wrong []observation // the same events with an amount that differs from the order's
	for _, ob := range handled {
		amount := int64(1)
		ob.session.AmountTotal = &amount
		wrong = append(wrong, ob)
	}
	for _, events := range [][]observation{handled, wrong} {
		for _, set := range multisets(len(events), 4) {
			for _, from := range []orders.Status{orders.StatusPending, orders.StatusProcessing, orders.StatusPaid, orders.StatusFailed, orders.StatusExpired, orders.StatusNeedsReview} {
				var first orders.Status
				for i, perm := range permutations(set) {
					o := order(from)
					for _, k := range perm {
						c := orders.Next(o, events[k].eventType, events[k].session)
						o.Status, o.Email, o.Review = c.Status, c.Email, c.Review
					}
					if i == 0 {
						first = o.Status
					} else if o.Status != first {
						t.Errorf("from %s, events %v: permutation %v ends %q, want %q like %v",
							from, names(events, set), names(events, perm), o.Status, first, names(events, set))
					}
				}
			}
		}
	}
}

func TestStatusValid(t *testing.T) {
	for _, s := range orders.Statuses() {
		if !s.Valid() {
			t.Errorf("%q.Valid() = false, want true", s)
		}
	}
	for _, s := range []orders.Status{"", "PAID", "shipped", "paid "} {
		if s.Valid() {
			t.Errorf("%q.Valid() = true, want false", s)
		}
	}
}

func TestHandled(t *testing.T) {
	for typ, want := range map[string]bool{
		completed: true, succeeded: true, failed: true, expired: true,
		"": false, other: false, "checkout.session.async_payment_succeeded.v2": false, "payment_intent.succeeded": false,
	} {
		if got := orders.Handled(typ); got != want {
			t.Errorf("Handled(%q) = %v, want %v", typ, got, want)
		}
	}
}

func TestNewID(t *testing.T) {
	format := regexp.MustCompile(`^ord_[a-z2-7]{24}$`)
	seen := map[string]bool{}
	for range 1000 {
		id := orders.NewID()
		if !format.MatchString(id) {
			t.Fatalf("NewID() = %q, want it to match %s", id, format)
		}
		if seen[id] {
			t.Fatalf("NewID() returned %q twice", id)
		}
		seen[id] = true
	}
}

// multisets returns every multiset of 1 to size elements drawn from 0..n-1,
// each as a non-decreasing slice.
func multisets(n, size int) [][]int {
	var out [][]int
	var grow func(prefix []int, from int)
	grow = func(prefix []int, from int) {
		if len(prefix) > 0 {
			out = append(out, append([]int(nil), prefix...))
		}
		if len(prefix) == size {
			return
		}
		for i := from; i < n; i++ {
			grow(append(prefix, i), i)
		}
	}
	grow(nil, 0)
	return out
}

// permutations returns every ordering of xs, xs itself first.
func permutations(xs []int) [][]int {
	if len(xs) <= 1 {
		return [][]int{append([]int(nil), xs...)}
	}
	var out [][]int
	for i := range xs {
		rest := append(append([]int(nil), xs[:i]...), xs[i+1:]...)
		for _, p := range permutations(rest) {
			out = append(out, append([]int{xs[i]}, p...))
		}
	}
	return out
}

func names(events []observation, idx []int) string {
	var s []string
	for _, i := range idx {
		s = append(s, events[i].name)
	}
	return fmt.Sprint(s)
}
