package orders

import "slices"

// After the sale: refunds and disputes. Stripe's events about them arrive
// in any order, twice, or late; these rules make the result depend only on
// what Stripe said and when it said it (the events' own times, in seconds),
// never on arrival order, and an older view never undoes a newer one.

// The refunded amount comes from two kinds of view. A charge.refunded
// event shows the charge's amount_refunded as of its time: every refund
// made by then that had not failed. A refund seen by id (charge.refund.updated,
// or the answer to the admin's refund) shows one refund. A refund only ever
// stops counting (it fails or is canceled; the money returns), never starts
// again, so the amount is the latest charge view, less the refunds that
// view counted and that failed after it, plus the refunds made after it that
// have not failed: the same whatever order the views arrive in.

// observeCharge keeps a charge's view of its refunds, as of asOf (the
// event's creation time), if it is the latest (on a tie, the larger
// amount). It reports whether o changed.
func observeCharge(o *Order, c Charge, asOf int64) bool {
	changed := false
	if o.AmountPaid == 0 && c.Amount > 0 {
		o.AmountPaid, changed = c.Amount, true
	}
	if asOf > o.RefundsAsOf || (asOf == o.RefundsAsOf && c.AmountRefunded > o.ChargeRefunded) {
		o.RefundsAsOf, o.ChargeRefunded, changed = asOf, c.AmountRefunded, true
	}
	if changed {
		o.AmountRefunded = refundedAmount(*o)
	}
	return changed
}

// observeRefund keeps one refund, as Stripe described it as of asOf (an
// event's creation time, or the refund's own creation for the answer to
// creating it): its latest status, and when it was first seen to stop
// counting.
func observeRefund(o *Order, r RefundInfo, asOf int64) bool {
	i := slices.IndexFunc(o.Refunds, func(x Refund) bool { return x.ID == r.ID })
	rec := Refund{ID: r.ID, Amount: r.Amount, Status: r.Status, Reason: r.Reason, CreatedAt: r.Created}
	if i >= 0 {
		rec = o.Refunds[i]
	}
	before := rec
	if i < 0 || asOf >= rec.AsOf {
		rec.Amount, rec.Status, rec.AsOf = r.Amount, r.Status, asOf
		if r.Reason != "" {
			rec.Reason = r.Reason
		}
	}
	if !refundCounts(r.Status) && (rec.FailedAt == 0 || asOf < rec.FailedAt) {
		rec.FailedAt = asOf
	}
	if i >= 0 && rec == before {
		return false
	}
	if i >= 0 {
		o.Refunds[i] = rec
	} else {
		o.Refunds = append(o.Refunds, rec)
	}
	o.AmountRefunded = refundedAmount(*o)
	return true
}

// refundedAmount is what the views say was refunded and not failed.
func refundedAmount(o Order) int64 {
	total := o.ChargeRefunded
	for _, r := range o.Refunds {
		made := r.CreatedAt.Unix()
		inView := o.RefundsAsOf > 0 && made <= o.RefundsAsOf && (r.FailedAt == 0 || r.FailedAt > o.RefundsAsOf)
		counts := r.FailedAt == 0
		switch {
		case inView && !counts:
			total -= r.Amount // the view counted it; it failed since
		case !inView && counts:
			total += r.Amount // made after the view (or there is none)
		}
	}
	return clampRefunded(o, total)
}

func clampRefunded(o Order, amount int64) int64 {
	paid := o.AmountPaid
	if paid <= 0 {
		paid = o.AmountTotal
	}
	return min(max(amount, 0), max(paid, 0))
}

// disputeRank orders a dispute's statuses: closed ones above open ones, so
// on a tie in time the decision wins.
func disputeRank(status string) int {
	switch status {
	case "warning_needs_response", "needs_response":
		return 1
	case "warning_under_review", "under_review":
		return 2
	case "warning_closed", "won", "lost":
		return 3
	}
	return 0
}

// observeDispute applies a dispute, as Stripe described it as of asOf: the
// latest view wins, and on a tie in time the further status.
func observeDispute(o *Order, d DisputeInfo, asOf int64) bool {
	if cur := o.Dispute; cur != nil {
		if asOf < cur.AsOf || (asOf == cur.AsOf && disputeRank(d.Status) <= disputeRank(cur.Status)) {
			return false
		}
	}
	o.Dispute = &Dispute{ID: d.ID, Status: d.Status, Reason: d.Reason, Amount: d.Amount, EvidenceDueBy: d.EvidenceDueBy, AsOf: asOf}
	return true
}
