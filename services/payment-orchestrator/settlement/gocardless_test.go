package settlement_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/connectors/gocardless/gcsim"
	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/rig"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/settlement"
)

// gcFigures are GoCardless's own figures for a period, in minor units:
// what the payouts that arrived in it paid and deducted, what their items
// say was collected, refunded and charged back, and the payments on their
// way at its end.
type gcFigures struct {
	paidOut, fees, collected, refunds, chargeBacks, inFlight int64
	payouts                                                  int
}

// fromGoCardless reads the figures of [from, to] from the simulator, the
// reference: its payouts, their items, and its payments.
func fromGoCardless(t *testing.T, sim *gcsim.Server, from, to string) gcFigures {
	t.Helper()
	var f gcFigures
	arrived := map[string]string{}
	for _, po := range sim.Payouts() {
		if po.Status != "paid" {
			continue
		}
		arrived[po.ID] = po.ArrivalDate
		if po.ArrivalDate < from || po.ArrivalDate > to {
			continue
		}
		f.payouts++
		f.paidOut += po.Amount
		f.fees += po.DeductedFees
		for _, it := range sim.PayoutItems(po.ID) {
			tenths, err := gocardless.ParseTenths(it.Amount)
			if err != nil {
				t.Fatal(err)
			}
			switch it.Type {
			case "payment_paid_out":
				f.collected += tenths / 10
			case "payment_refunded", "refund", "refund_funds_returned":
				f.refunds -= tenths / 10
			case "payment_charged_back", "payment_failed":
				f.chargeBacks -= tenths / 10
			}
		}
	}
	for _, p := range sim.Payments() {
		if p.ChargeDate > to || !slices.Contains([]string{"pending_submission", "submitted", "confirmed", "paid_out"}, p.Status) {
			continue
		}
		if a, ok := arrived[p.Links.Payout]; ok && a <= to {
			continue
		}
		f.inFlight += p.Amount
	}
	return f
}

// The report's totals are GoCardless's: payments collected, a refund, a
// charge-back and a late failure, paid out over several days with
// GoCardless's fees (a tenth of a penny, VAT on top), checked for the
// whole run and for the day of the first payout alone.
func TestMonthEndEqualsGoCardless(t *testing.T) {
	r := rig.New(t, rig.Options{GC: rig.Direct, Sim: gcsim.Options{Scenarios: []gcsim.Rule{
		{Resource: "payments", Reference: "D", Outcome: "charged_back"},
		{Resource: "payments", Reference: "E", Outcome: "late_failure"},
		{Resource: "payments", Reference: "F", Outcome: "failed", Cause: "insufficient_funds"},
	}}})
	r.Consumers("a", 2)
	r.Publish(rig.Customer("C1"))
	r.Eventually(20*time.Second, "mandate", func() bool {
		return r.Count(`SELECT count(*) FROM customer_links WHERE gc_mandate_id IS NOT NULL`) == 1
	})
	sent := 0
	batch := func(invoices map[string]string, days int) {
		t.Helper()
		for id, amount := range invoices {
			r.Publish(rig.Invoice(id, "C1", amount))
		}
		sent += len(invoices)
		r.Eventually(20*time.Second, "payments", func() bool { return len(r.Sim.Payments()) == sent })
		for range days {
			r.Advance(24 * time.Hour)
		}
	}
	// Batches a few days apart, so that several payouts are paid: D is
	// charged back after it is paid out, E fails after it is confirmed,
	// F fails; A is partly refunded; J is collected but not yet paid out
	// at the end.
	batch(map[string]string{"A": "100.00", "B": "250.55", "C": "12.34", "D": "80.04"}, 4)
	batch(map[string]string{"E": "30.03", "F": "20.01", "I": "60.00"}, 9)
	r.Publish(&mlcv1.RefundRequested{SchemaVersion: 1, Erp: rig.ERP("10"), RefundId: "RF1", Invoice: &mlcv1.InvoiceKey{InvoiceId: "A"},
		CustomerId: "C1", Version: "v1", Amount: "30.00", Currency: "GBP"})
	r.Eventually(20*time.Second, "refund", func() bool { return len(r.Sim.Refunds()) == 1 })
	for range 5 {
		r.Advance(24 * time.Hour)
	}
	batch(map[string]string{"G": "450.00", "H": "55.50"}, 8)
	batch(map[string]string{"J": "45.00"}, 4)
	paid := 0
	for _, po := range r.Sim.Payouts() {
		if po.Status == "paid" {
			paid++
		}
	}
	if paid < 2 {
		t.Fatalf("GoCardless paid %d payouts; the test needs several", paid)
	}
	r.Eventually(30*time.Second, "every payout stored", func() bool {
		return r.Count(`SELECT count(*) FROM payouts`) == paid
	})
	// The ledger agrees with GoCardless on every payment before the
	// figures are compared.
	r.Eventually(30*time.Second, "states applied", func() bool {
		for _, p := range r.Sim.Payments() {
			if r.Count(`SELECT count(*) FROM collections WHERE gc_payment_id = $1 AND state = $2`, p.ID, p.Status) != 1 {
				return false
			}
		}
		return true
	})

	var first string
	for _, po := range r.Sim.Payouts() {
		if po.Status == "paid" && (first == "" || po.ArrivalDate < first) {
			first = po.ArrivalDate
		}
	}
	end := r.Sim.Now().Format(time.DateOnly)
	reader := settlement.New(r.DB)
	for _, period := range [][2]string{{gcsim.DefaultStart.Format(time.DateOnly), end}, {first, first}} {
		want := fromGoCardless(t, r.Sim, period[0], period[1])
		from, _ := time.Parse(time.DateOnly, period[0])
		to, _ := time.Parse(time.DateOnly, period[1])
		rep, err := reader.MonthEnd(context.Background(), settlement.ReportQuery{From: from, To: to})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Totals) != 1 || rep.Totals[0].Currency != "GBP" {
			t.Fatalf("%v: totals %+v", period, rep.Totals)
		}
		got := rep.Totals[0]
		for _, c := range []struct {
			name string
			got  string
			want int64
		}{
			{"paid out", got.PaidOut, want.paidOut}, {"fees", got.Fees, want.fees}, {"collected", got.Collected, want.collected},
			{"refunds", got.Refunds, want.refunds}, {"charge-backs", got.ChargeBacks, want.chargeBacks}, {"in flight", got.InFlight, want.inFlight},
		} {
			if w := settlement.Decimal(c.want, "GBP"); c.got != w {
				t.Errorf("%v %s: report %s, GoCardless %s", period, c.name, c.got, w)
			}
		}
		if got.Payouts != want.payouts || len(rep.Unbalanced) != 0 {
			t.Errorf("%v: %d payouts (GoCardless %d), unbalanced %q", period, got.Payouts, want.payouts, rep.Unbalanced)
		}
		if period[0] != period[1] && (want.refunds == 0 || want.chargeBacks == 0 || want.inFlight == 0) {
			t.Errorf("the run lacks a refund, a charge-back or money in flight: %+v", want)
		}
	}
}
