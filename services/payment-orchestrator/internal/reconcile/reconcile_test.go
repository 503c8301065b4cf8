package reconcile_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/connectors/gocardless/gcmsg"
	"github.com/ml-connector/ml-connector/connectors/gocardless/gcsim"
	"github.com/ml-connector/ml-connector/platform/audit"
	"github.com/ml-connector/ml-connector/platform/bus"
	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/rig"
)

// Amounts whose minor units end in 01 fail, in 02 are charged back.
var scenarios = []gcsim.Rule{
	{Resource: "payments", AmountSuffix: "01", Outcome: "failed", Cause: "insufficient_funds"},
	{Resource: "payments", AmountSuffix: "02", Outcome: "charged_back"},
}

// collected sets up customers and invoices and waits until every invoice
// has its payment.
func collected(t *testing.T, r *rig.Rig, invoices map[string]string) {
	t.Helper()
	r.Publish(rig.Customer("C1"))
	r.Eventually(20*time.Second, "mandate", func() bool {
		return r.Count(`SELECT count(*) FROM customer_links WHERE gc_mandate_id IS NOT NULL`) == 1
	})
	for id, amount := range invoices {
		r.Publish(rig.Invoice(id, "C1", amount))
	}
	r.Eventually(20*time.Second, "payments", func() bool {
		return r.Count(`SELECT count(*) FROM collections WHERE gc_payment_id IS NOT NULL`) == len(invoices)
	})
}

// subscribed sets up customer C1 and invoice SUB1 of 25.00 a month for
// count months, and waits until GoCardless has the subscription.
func subscribed(r *rig.Rig, count int32) {
	r.Publish(rig.Customer("C1"))
	r.Eventually(20*time.Second, "mandate", func() bool {
		return r.Count(`SELECT count(*) FROM customer_links WHERE gc_mandate_id IS NOT NULL`) == 1
	})
	inv := rig.Invoice("SUB1", "C1", "25.00")
	inv.Recurrence = &mlcv1.Recurrence{IntervalUnit: mlcv1.IntervalUnit_INTERVAL_UNIT_MONTHLY, Interval: 1, Count: count}
	r.Publish(inv)
	r.Eventually(10*time.Second, "subscription", func() bool { return len(r.Sim.Subscriptions()) == 1 })
}

// settle moves GoCardless's clock a day at a time, catching up each day.
func settle(r *rig.Rig, days int) {
	for range days {
		r.Advance(24 * time.Hour)
	}
}

func states(t *testing.T, r *rig.Rig) map[string]string {
	t.Helper()
	rows, err := r.DB.Query(context.Background(), `SELECT invoice_id, state FROM collections`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for rows.Next() {
		var id, s string
		if err := rows.Scan(&id, &s); err != nil {
			t.Fatal(err)
		}
		out[id] = s
	}
	return out
}

func outcomeKinds(r *rig.Rig) map[string][]string {
	out := map[string][]string{}
	for _, o := range r.Poster.PaymentOutcomes() {
		kind := strings.ToLower(strings.TrimPrefix(o.GetKind().String(), "PAYMENT_OUTCOME_KIND_"))
		out[o.GetInvoice().GetInvoiceId()] = append(out[o.GetInvoice().GetInvoiceId()], kind)
	}
	return out
}

func TestLifecycleOutcomesPostedOnce(t *testing.T) {
	r := rig.New(t, rig.Options{GC: rig.Direct, Sim: gcsim.Options{Scenarios: scenarios}})
	r.Consumers("a", 4)
	collected(t, r, map[string]string{"OK": "100.00", "FAIL": "100.01", "BACK": "100.02"})
	settle(r, 14)
	want := map[string]string{"OK": "paid_out", "FAIL": "failed", "BACK": "charged_back"}
	r.Eventually(20*time.Second, "final states", func() bool { return fmt.Sprint(states(t, r)) == fmt.Sprint(want) })
	r.Eventually(10*time.Second, "outcomes", func() bool { return len(outcomeKinds(r)["BACK"]) == 3 })

	got := outcomeKinds(r)
	wantOutcomes := map[string]string{"OK": "confirmed,paid_out", "FAIL": "failed", "BACK": "confirmed,paid_out,charged_back"}
	for inv, kinds := range wantOutcomes {
		if strings.Join(got[inv], ",") != kinds {
			t.Errorf("%s: outcomes %v, want %s", inv, got[inv], kinds)
		}
	}
	for _, o := range r.Poster.PaymentOutcomes() {
		if o.GetErp().GetConnection() != rig.ERPConnection || o.GetErp().GetCompany() != "10" || o.GetAmountMinor() == 0 || o.GetPaymentId() == "" {
			t.Errorf("outcome lacks its ERP identity: %v", o)
		}
		if o.GetKind() == mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_FAILED && (o.GetCause() != "insufficient_funds" || o.GetReasonCode() == "") {
			t.Errorf("failure without cause or reason code: %v", o)
		}
	}
	var failure string
	if err := r.DB.QueryRow(context.Background(), `SELECT failure_cause || '/' || failure_reason_code FROM collections WHERE invoice_id = 'FAIL'`).Scan(&failure); err != nil || !strings.HasPrefix(failure, "insufficient_funds/") {
		t.Errorf("failed collection keeps %q (%v), want its cause and reason code", failure, err)
	}
	md := r.Poster.MandateOutcomes()
	if len(md) == 0 || md[len(md)-1].GetStatus() != mlcv1.MandateStatus_MANDATE_STATUS_ACTIVE {
		t.Errorf("mandate outcomes %v, want ending active", md)
	}
	// Every event again, under fresh message ids (as a catch-up pass past
	// JetStream's duplicate window would): nothing is posted twice.
	posted, calls := len(r.Poster.PaymentOutcomes()), r.Poster.Calls()
	publishEvents(t, r, allEvents(t, r))
	r.Drain()
	if r.Poster.Calls() != calls {
		t.Errorf("erp-poster called %d more times for events already applied", r.Poster.Calls()-calls)
	}
	if len(r.Poster.PaymentOutcomes()) != posted {
		t.Errorf("outcomes grew from %d to %d on a repeated catch-up", posted, len(r.Poster.PaymentOutcomes()))
	}
	if _, err := audit.VerifyAll(context.Background(), r.DB); err != nil {
		t.Error(err)
	}
}

// allEvents lists every event GoCardless recorded, oldest first.
func allEvents(t *testing.T, r *rig.Rig) []gocardless.Event {
	t.Helper()
	_, client, err := r.Dir.GoCardless(context.Background(), rig.GCConnection)
	if err != nil {
		t.Fatal(err)
	}
	var evs []gocardless.Event
	for ev, err := range client.Events(context.Background(), gocardless.EventListParams{ListParams: gocardless.ListParams{Limit: 500}}) {
		if err != nil {
			t.Fatal(err)
		}
		evs = append([]gocardless.Event{ev}, evs...)
	}
	return evs
}

func publishEvents(t *testing.T, r *rig.Rig, evs []gocardless.Event) {
	t.Helper()
	for _, ev := range evs {
		m, err := gcmsg.BusMsg(ev, gcmsg.Envelope{Connection: rig.GCConnection, Source: gcmsg.FromWebhook})
		if err != nil {
			t.Fatal(err)
		}
		// Republished beyond JetStream's window, as a late redelivery would
		// be: a fresh message id, the same event.
		m.ID = fmt.Sprintf("%s:%d", m.ID, rand.Int())
		if _, err := r.Bus.Publish(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
}

// Duplicated and reordered webhook events end in the same state as the
// clean run: GoCardless's own final statuses.
func TestDuplicatedAndReorderedEventsReachTheSameState(t *testing.T) {
	r := rig.New(t, rig.Options{GC: rig.Direct, Sim: gcsim.Options{Scenarios: scenarios}})
	r.Consumers("a", 4)
	invoices := map[string]string{}
	for i := range 12 {
		invoices[fmt.Sprintf("INV%02d", i)] = fmt.Sprintf("%d.%02d", 50+i, i%3) // cents 00, 01, 02
	}
	collected(t, r, invoices)
	r.Sim.Advance(14 * 24 * time.Hour) // everything happens; nothing delivered yet

	evs := allEvents(t, r)
	chaos := append([]gocardless.Event(nil), evs...)
	rand.Shuffle(len(chaos), func(i, j int) { chaos[i], chaos[j] = chaos[j], chaos[i] })
	chaos = append(chaos, chaos[:len(chaos)/2]...) // half of them twice
	publishEvents(t, r, chaos)

	want := map[string]string{}
	for _, p := range r.Sim.Payments() {
		want[p.Metadata["invoice_id"]] = p.Status
	}
	r.Eventually(30*time.Second, "GoCardless's final states", func() bool { return fmt.Sprint(states(t, r)) == fmt.Sprint(want) })
	r.Drain()
	seen := map[string]bool{}
	for _, o := range r.Poster.PaymentOutcomes() {
		if seen[o.GetOutcomeId()] {
			t.Errorf("outcome %s posted twice", o.GetOutcomeId())
		}
		seen[o.GetOutcomeId()] = true
	}
	var mandate string
	if err := r.DB.QueryRow(context.Background(), `SELECT mandate_status FROM customer_links`).Scan(&mandate); err != nil || mandate != r.Sim.Mandates()[0].Status {
		t.Errorf("mandate %s (%v), GoCardless says %s", mandate, err, r.Sim.Mandates()[0].Status)
	}
	// Every terminal outcome reached the ERP, whatever the order.
	for inv, kinds := range outcomeKinds(r) {
		final := want[inv]
		if final == "paid_out" || final == "failed" || final == "charged_back" {
			if kinds[len(kinds)-1] != final && !slices.Contains(kinds, final) {
				t.Errorf("%s ended %s but the ERP heard %v", inv, final, kinds)
			}
		}
	}
}

func TestErpPosterFailures(t *testing.T) {
	r := rig.New(t, rig.Options{GC: rig.Direct})
	r.Consumers("a", 2)
	collected(t, r, map[string]string{"A": "10.00"})
	calls := r.Poster.Calls()
	// erp-poster down for a while: retried, then posted once. The days are
	// stepped one at a time until the confirmation is through, so that the
	// payout comes after it.
	r.Poster.FailNext(codes.Unavailable, codes.Unavailable, codes.Aborted, codes.DeadlineExceeded)
	for day := 0; len(outcomeKinds(r)["A"]) == 0; day++ {
		if day == 12 {
			t.Fatal("no confirmation posted in 12 days")
		}
		r.Advance(24 * time.Hour)
	}
	if r.Poster.Calls()-calls < 5 {
		t.Errorf("only %d calls: the failures were not retried", r.Poster.Calls()-calls)
	}
	// The ERP refuses an outcome for good: an exception, and the state still moves on.
	r.Poster.FailNext(codes.InvalidArgument)
	settle(r, 4)
	r.Eventually(20*time.Second, "paid_out applied", func() bool { return states(t, r)["A"] == "paid_out" })
	r.Eventually(10*time.Second, "exception", func() bool {
		return r.Count(`SELECT count(*) FROM exceptions WHERE kind = 'erp_posting_refused'`) == 1
	})
	if n := len(outcomeKinds(r)["A"]); n != 1 {
		t.Errorf("%d outcomes recorded for A, want only the confirmation (paid_out was refused)", n)
	}
}

func TestCatchUpFillsDroppedWebhooks(t *testing.T) {
	r := rig.New(t, rig.Options{GC: rig.Direct})
	r.Consumers("a", 2)
	collected(t, r, map[string]string{"A": "10.00", "B": "20.00"})
	r.Sim.Advance(14 * 24 * time.Hour)
	evs := allEvents(t, r)
	// Webhooks delivered only every third event.
	var delivered []gocardless.Event
	for i, ev := range evs {
		if i%3 == 0 {
			delivered = append(delivered, ev)
		}
	}
	publishEvents(t, r, delivered)
	r.Drain()
	if err := r.CatchUp.Pass(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.Eventually(20*time.Second, "paid out", func() bool { return fmt.Sprint(states(t, r)) == "map[A:paid_out B:paid_out]" })
	r.Drain() // outcomes are posted after the state is committed, before the ack
	got := outcomeKinds(r)
	for _, inv := range []string{"A", "B"} {
		if strings.Join(got[inv], ",") != "confirmed,paid_out" && strings.Join(got[inv], ",") != "paid_out" {
			t.Errorf("%s outcomes %v", inv, got[inv])
		}
	}
}

func TestRefunds(t *testing.T) {
	r := rig.New(t, rig.Options{GC: rig.Direct})
	r.Consumers("a", 2)
	collected(t, r, map[string]string{"R": "100.00"})
	settle(r, 9)
	r.Eventually(10*time.Second, "confirmed", func() bool { s := states(t, r)["R"]; return s == "confirmed" || s == "paid_out" })
	refund := func(id, amount string) *mlcv1.RefundRequested {
		return &mlcv1.RefundRequested{SchemaVersion: 1, Erp: rig.ERP("10"), RefundId: id, Invoice: &mlcv1.InvoiceKey{InvoiceId: "R"},
			CustomerId: "C1", Version: "v1", Amount: amount, Currency: "GBP"}
	}
	r.Publish(refund("RF1", "30.00"))
	r.Eventually(10*time.Second, "first refund", func() bool { return len(r.Sim.Refunds()) == 1 })
	r.Publish(refund("RF2", "20.00"))
	r.Publish(refund("RF2", "20.00"))
	r.Publish(refund("RF3", "60.00")) // would exceed the payment
	r.Eventually(10*time.Second, "second refund and the refusal", func() bool {
		return len(r.Sim.Refunds()) == 2 && r.Count(`SELECT count(*) FROM exceptions WHERE kind = 'invalid_refund'`) == 1
	})
	settle(r, 6)
	r.Eventually(20*time.Second, "refunds paid", func() bool { return len(r.Poster.RefundOutcomes()) == 2 })
	for _, o := range r.Poster.RefundOutcomes() {
		if o.GetKind() != mlcv1.RefundOutcomeKind_REFUND_OUTCOME_KIND_PAID || o.GetInvoice().GetInvoiceId() != "R" {
			t.Errorf("refund outcome %v", o)
		}
	}
}

func TestSubscriptionPaymentsPostedPerInstalment(t *testing.T) {
	r := rig.New(t, rig.Options{GC: rig.Direct})
	r.Consumers("a", 2)
	subscribed(r, 3)
	settle(r, 100)
	r.Eventually(20*time.Second, "instalments paid out", func() bool {
		n := 0
		for _, k := range outcomeKinds(r)["SUB1"] {
			if k == "paid_out" {
				n++
			}
		}
		return n == 3
	})
	if n := len(r.Sim.Subscriptions()); n != 1 {
		t.Errorf("%d subscriptions", n)
	}
}

func TestPoisonEventBecomesException(t *testing.T) {
	r := rig.New(t, rig.Options{GC: rig.Direct})
	r.Consumers("a", 1)
	if _, err := r.Bus.Publish(context.Background(), bus.Msg{Subject: "mlc.gc.payments.confirmed", ID: "EVBAD", Data: []byte{0xff, 0x01}}); err != nil {
		t.Fatal(err)
	}
	r.Eventually(10*time.Second, "dead-letter exception", func() bool {
		return r.Count(`SELECT count(*) FROM exceptions WHERE kind = 'dead_letter' AND aggregate_id = 'EVBAD'`) == 1
	})
}
