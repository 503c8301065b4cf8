package main

import (
	"context"
	"fmt"
	"regexp"
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
	if err := compareTotals(want, rep.Totals); err != nil {
		return fmt.Errorf("month-end %s to %s: %w", from, to, err)
	}
	return nil
}

// compareTotals compares the report's totals per currency with
// GoCardless's figures.
func compareTotals(want map[string]*monthEndFigures, totals []settlement.Line) error {
	// The report lists every currency with money paid out or in flight:
	// a currency whose payments GoCardless has not paid out yet is there
	// with its money in flight only, so the check is per currency, not a
	// count of them. Every currency's paid out, fees, collected and
	// payouts are GoCardless's, zero where GoCardless paid nothing in it.
	seen := map[string]bool{}
	for _, got := range totals {
		if seen[got.Currency] {
			return fmt.Errorf("two totals in %s", got.Currency)
		}
		seen[got.Currency] = true
		w := want[got.Currency]
		if w == nil {
			w = &monthEndFigures{}
		}
		for _, c := range []struct {
			name string
			got  string
			want int64
		}{{"paid out", got.PaidOut, w.paidOut}, {"fees", got.Fees, w.fees}, {"collected", got.Collected, w.collected}} {
			if d := settlement.Decimal(c.want, got.Currency); c.got != d {
				return fmt.Errorf("%s %s: the report says %s, GoCardless %s", got.Currency, c.name, c.got, d)
			}
		}
		if got.Payouts != w.payouts {
			return fmt.Errorf("%s: %d payouts, GoCardless paid %d", got.Currency, got.Payouts, w.payouts)
		}
	}
	for cur := range want {
		if !seen[cur] {
			return fmt.Errorf("no total in %s, which GoCardless paid out in", cur)
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
// line per currency paid out or in flight, each of a currency GoCardless
// paid out in with GoCardless's paid out, fees, collected and number of
// payouts for every payout of the run, each of any other currency (its
// money only in flight) with none paid out, and nothing else.
func checkMonthEndPrinted(out string, s *simulators) error {
	want, _, _, err := gcPaidOut(s)
	if err != nil {
		return err
	}
	return comparePrinted(want, out)
}

// comparePrinted compares the last month-end totals printed in out with
// GoCardless's figures per currency.
func comparePrinted(want map[string]*monthEndFigures, out string) error {
	i := strings.LastIndex(out, "month-end ")
	if i < 0 {
		return fmt.Errorf("the reconciliation printed no month-end totals")
	}
	printed := out[i:]
	if j := strings.Index(printed, "reconciled:"); j >= 0 {
		printed = printed[:j]
	}
	lines := strings.Split(strings.TrimSpace(printed), "\n")
	byCurrency := map[string]string{}
	for _, l := range lines[1:] {
		m := printedTotal.FindStringSubmatch(l)
		if m == nil {
			return fmt.Errorf("month-end line %q is not a currency's total:\n%s", l, printed)
		}
		if _, dup := byCurrency[m[1]]; dup {
			return fmt.Errorf("two month-end totals in %s:\n%s", m[1], printed)
		}
		byCurrency[m[1]] = l
	}
	for cur := range want {
		if _, ok := byCurrency[cur]; !ok {
			return fmt.Errorf("no month-end total in %s, which GoCardless paid out in:\n%s", cur, printed)
		}
	}
	for cur, l := range byCurrency {
		w := want[cur]
		if w == nil {
			w = &monthEndFigures{}
		}
		prefix := fmt.Sprintf("  %s: collected %s, fees %s, ", cur, settlement.Decimal(w.collected, cur), settlement.Decimal(w.fees, cur))
		middle := fmt.Sprintf(", paid out %s in %d payout(s), in flight ", settlement.Decimal(w.paidOut, cur), w.payouts)
		if !strings.HasPrefix(l, prefix) || !strings.Contains(l, middle) {
			return fmt.Errorf("month-end total %q, want %q...%q:\n%s", l, prefix, middle, printed)
		}
	}
	return nil
}

// printedTotal is a currency's line of the printed month-end totals.
var printedTotal = regexp.MustCompile(`^  ([A-Z]{3}): collected `)
