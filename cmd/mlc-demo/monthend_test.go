package main

import (
	"context"
	"fmt"
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
	type figures struct {
		paidOut, fees, collected int64
		payouts                  int
	}
	want := map[string]*figures{}
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
			f = &figures{}
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
				return fmt.Errorf("month-end: payout %s: %w", po.ID, err)
			}
			f.collected += t / 10 // a payment is whole minor units
		}
	}
	if len(want) == 0 {
		return fmt.Errorf("month-end: GoCardless paid no payout in the demo")
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
