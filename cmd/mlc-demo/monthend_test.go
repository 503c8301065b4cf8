package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/settlement"
)

// checkMonthEnd runs the month-end report over the demo's period (the
// arrival dates of the payouts GoCardless paid) and checks its totals per
// currency against GoCardless's own: the payouts' amounts and deducted
// fees, the payments their items paid out, and their number. The bank
// statement can only be ticked off with the report if these agree.
func checkMonthEnd(ctx context.Context, s *simulators) error {
	want, from, to, err := gcPaidOut(s)
	if err != nil {
		return err
	}
	first, _ := time.Parse(time.DateOnly, from)
	last, _ := time.Parse(time.DateOnly, to)
	rep, err := settlement.New(s.db).MonthEnd(ctx, settlement.ReportQuery{From: first, To: last})
	if err != nil {
		return fmt.Errorf("month-end: %w", err)
	}
	if len(rep.Unbalanced) != 0 {
		return fmt.Errorf("month-end %s to %s: payouts that do not add up: %q", from, to, rep.Unbalanced)
	}
	if len(rep.Totals) != len(want) {
		return fmt.Errorf("month-end %s to %s: totals in %d currencies, GoCardless paid out in %d", from, to, len(rep.Totals), len(want))
	}
	for _, got := range rep.Totals {
		w, ok := want[got.Currency]
		if !ok {
			return fmt.Errorf("month-end %s to %s: a total in %s, which GoCardless paid nothing in", from, to, got.Currency)
		}
		for _, c := range []struct {
			name string
			got  string
			want int64
		}{{"paid out", got.PaidOut, w.paidOut}, {"fees", got.Fees, w.fees}, {"collected", got.Collected, w.collected}} {
			if d := settlement.Decimal(c.want, got.Currency); c.got != d {
				return fmt.Errorf("month-end %s to %s, %s %s: the report says %s, GoCardless %s", from, to, got.Currency, c.name, c.got, d)
			}
		}
		if got.Payouts != w.payouts {
			return fmt.Errorf("month-end %s to %s, %s: %d payouts, GoCardless paid %d", from, to, got.Currency, got.Payouts, w.payouts)
		}
	}
	return nil
}

// monthEndFigures are GoCardless's own totals of one currency's paid
// payouts: their amounts, deducted fees, the payments they paid out, and
// their number.
type monthEndFigures struct {
	paidOut, fees, collected int64
	payouts                  int
}

// gcPaidOut sums every payout GoCardless paid in the demo by currency,
// with the first and last arrival dates.
func gcPaidOut(s *simulators) (map[string]*monthEndFigures, string, string, error) {
	want := map[string]*monthEndFigures{}
	var from, to string
	for _, po := range s.gc.Payouts() {
		if po.Status != "paid" {
			continue
		}
		if from == "" || po.ArrivalDate < from {
			from = po.ArrivalDate
		}
		if po.ArrivalDate > to {
			to = po.ArrivalDate
		}
		f, ok := want[po.Currency]
		if !ok {
			f = &monthEndFigures{}
			want[po.Currency] = f
		}
		f.payouts++
		f.paidOut += po.Amount
		f.fees += po.DeductedFees
		for _, it := range s.gc.PayoutItems(po.ID) {
			if it.Type != gocardless.PayoutItemPaymentPaidOut {
				continue
			}
			t, err := gocardless.ParseTenths(it.Amount)
			if err != nil {
				return nil, "", "", fmt.Errorf("month-end: payout %s: %w", po.ID, err)
			}
			f.collected += t / 10 // a payment is whole minor units
		}
	}
	if len(want) == 0 {
		return nil, "", "", fmt.Errorf("month-end: GoCardless paid no payout in the demo")
	}
	return want, from, to, nil
}

// checkMonthEndPrinted checks the reconciliation's month-end totals: one
// line per currency GoCardless paid out in, whose paid out, fees,
// collected and number of payouts are GoCardless's for every payout of the
// run, with the money in flight at its end.
func checkMonthEndPrinted(out string, s *simulators) error {
	want, _, _, err := gcPaidOut(s)
	if err != nil {
		return err
	}
	i := strings.LastIndex(out, "month-end ")
	if i < 0 {
		return fmt.Errorf("the reconciliation printed no month-end totals")
	}
	printed := out[i:]
	if j := strings.Index(printed, "reconciled:"); j >= 0 {
		printed = printed[:j]
	}
	lines := strings.Split(strings.TrimSpace(printed), "\n")
	if len(lines)-1 != len(want) {
		return fmt.Errorf("month-end totals in %d currencies, GoCardless paid out in %d:\n%s", len(lines)-1, len(want), printed)
	}
	for cur, w := range want {
		prefix := fmt.Sprintf("  %s: collected %s, fees %s, ", cur, settlement.Decimal(w.collected, cur), settlement.Decimal(w.fees, cur))
		middle := fmt.Sprintf(", paid out %s in %d payout(s), in flight ", settlement.Decimal(w.paidOut, cur), w.payouts)
		found := false
		for _, l := range lines[1:] {
			found = found || (strings.HasPrefix(l, prefix) && strings.Contains(l, middle))
		}
		if !found {
			return fmt.Errorf("no month-end total %q...%q among:\n%s", prefix, middle, printed)
		}
	}
	return nil
}
