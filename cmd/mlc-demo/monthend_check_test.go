package main

import (
	"strings"
	"testing"

	"github.com/ml-connector/ml-connector/services/payment-orchestrator/settlement"
)

// The month-end check compares figures per currency: a currency with only
// money in flight (CI, 6 Dec: CAD paid out nothing yet, 168.28 in flight)
// is right, one with anything paid out that GoCardless did not pay, or a
// GoCardless currency missing or different, is not.
func TestMonthEndCheckComparesPerCurrency(t *testing.T) {
	want := map[string]*monthEndFigures{"EUR": {paidOut: 20265, fees: 271, collected: 20535, payouts: 1}}
	eur := settlement.Line{Currency: "EUR", Collected: "205.35", Fees: "2.71", Other: "-0.01", PaidOut: "202.65", InFlight: "57.07", Payouts: 1}
	cad := settlement.Line{Currency: "CAD", Collected: "0.00", Fees: "0.00", Other: "0.00", PaidOut: "0.00", InFlight: "168.28"}
	for _, c := range []struct {
		name   string
		totals []settlement.Line
		bad    string // "" when the check must pass
	}{
		{"in flight only", []settlement.Line{cad, eur}, ""},
		{"paid out where GoCardless paid nothing", []settlement.Line{with(cad, func(l *settlement.Line) { l.PaidOut = "1.00" }), eur}, "CAD paid out"},
		{"fees where GoCardless paid nothing", []settlement.Line{with(cad, func(l *settlement.Line) { l.Fees = "0.01" }), eur}, "CAD fees"},
		{"collected where GoCardless paid nothing", []settlement.Line{with(cad, func(l *settlement.Line) { l.Collected = "0.01" }), eur}, "CAD collected"},
		{"a payout GoCardless did not pay", []settlement.Line{with(cad, func(l *settlement.Line) { l.Payouts = 1 }), eur}, "CAD: 1 payouts"},
		{"a GoCardless currency missing", []settlement.Line{cad}, "no total in EUR"},
		{"a figure off", []settlement.Line{cad, with(eur, func(l *settlement.Line) { l.Fees = "2.70" })}, "EUR fees"},
		{"a currency twice", []settlement.Line{cad, eur, cad}, "two totals in CAD"},
	} {
		err := compareTotals(want, c.totals)
		if c.bad == "" && err != nil || c.bad != "" && (err == nil || !strings.Contains(err.Error(), c.bad)) {
			t.Errorf("totals, %s: %v, want %q", c.name, err, c.bad)
		}
		var out strings.Builder
		out.WriteString("payouts: ...\nmonth-end 2026-12-06 to 2026-12-18 (every payout and what is in flight):\n")
		for _, l := range c.totals {
			out.WriteString(monthEndTotal(l) + "\n")
		}
		out.WriteString("reconciled: 10 invoices\n")
		err = comparePrinted(want, out.String())
		if c.bad == "" && err != nil || c.bad != "" && err == nil {
			t.Errorf("printed, %s: %v, want an error: %v", c.name, err, c.bad != "")
		}
	}
}

func with(l settlement.Line, change func(*settlement.Line)) settlement.Line {
	change(&l)
	return l
}
