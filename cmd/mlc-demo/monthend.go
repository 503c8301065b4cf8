package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/ml-connector/ml-connector/services/payment-orchestrator/settlement"
)

// monthEndPeriod is the period the reconciliation's month-end totals
// cover: from the demo's first day (nothing was collected before it) to
// GoCardless's clock now or the last arrival date of a paid payout,
// whichever is later, so that every payout is counted and the money in
// flight is what is still in flight at the end.
func (s *simulators) monthEndPeriod() (from, to time.Time) {
	from = s.today
	to = s.gc.Now().UTC().Truncate(24 * time.Hour)
	for _, po := range s.gc.Payouts() {
		if d, err := time.Parse(time.DateOnly, po.ArrivalDate); err == nil && po.Status == "paid" && d.After(to) {
			to = d
		}
	}
	return from, to
}

// printMonthEnd prints the month-end report's totals per currency over
// monthEndPeriod, as mlcctl report month-end would give them: collected,
// fees, refunds, charge-backs, other adjustments, paid out (with the
// payouts counted) and in flight, and the payouts whose items do not add
// up. A report that cannot be made is said, not hidden.
func (s *simulators) printMonthEnd(ctx context.Context, out io.Writer) {
	if s.db == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	from, to := s.monthEndPeriod()
	if days := int(to.Sub(from).Hours()/24) + 1; days > settlement.MaxReportDays {
		from = to.AddDate(0, 0, 1-settlement.MaxReportDays)
	}
	rep, err := settlement.New(s.db).MonthEnd(ctx, settlement.ReportQuery{From: from, To: to})
	if err != nil {
		fmt.Fprintf(out, "month-end: no report: %v\n", err)
		return
	}
	fmt.Fprintf(out, "month-end %s to %s (every payout and what is in flight):\n", rep.From, rep.To)
	if len(rep.Totals) == 0 {
		fmt.Fprintln(out, "  nothing paid out or in flight")
	}
	totals := rep.Totals
	sort.Slice(totals, func(i, j int) bool { return totals[i].Currency < totals[j].Currency })
	for _, t := range totals {
		fmt.Fprintln(out, monthEndTotal(t))
	}
	for _, u := range rep.Unbalanced {
		fmt.Fprintln(out, "  payout that does not add up:", u)
	}
}

// monthEndTotal is the reconciliation's line of one currency's totals.
func monthEndTotal(t settlement.Line) string {
	return fmt.Sprintf("  %s: collected %s, fees %s, refunds %s, charge-backs %s, other %s, paid out %s in %d payout(s), in flight %s",
		t.Currency, t.Collected, t.Fees, t.Refunds, t.ChargeBacks, t.Other, t.PaidOut, t.Payouts, t.InFlight)
}
