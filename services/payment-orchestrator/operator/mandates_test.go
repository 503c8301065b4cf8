package operator_test

import (
	"context"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/connectors/gocardless/gcsim"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/rig"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/operator"
)

// TestResendMandateRequest: AR sees the customer's link; when it expired
// a resend gives a new flow for the same billing request, and when the
// billing request was cancelled, a new billing request.
func TestResendMandateRequest(t *testing.T) {
	r := rig.New(t, rig.Options{Sim: gcsim.Options{Creditors: []gcsim.Creditor{{ID: gcsim.DefaultCreditorID}}},
		GC: map[string]any{"mandate_setup": "billing_request"}})
	r.Consumers("a", 2)
	r.Publish(rig.Customer("C1"))
	r.Eventually(20*time.Second, "awaiting payer", func() bool {
		return r.Count(`SELECT count(*) FROM mandate_requests WHERE state = 'awaiting_payer'`) == 1
	})
	desk := operator.NewDesk(r.DB, r.Registry, nil)
	ctx := context.Background()
	list, err := desk.MandateRequests(ctx, "awaiting_payer")
	if err != nil || len(list) != 1 || list[0].AuthorisationURL == "" || list[0].Key.CustomerID != "C1" {
		t.Fatalf("awaiting: %+v, %v", list, err)
	}
	first := list[0]
	if err := r.Sim.ExpireFlow(first.FlowID); err != nil {
		t.Fatal(err)
	}
	again, err := desk.ResendMandateRequest(ctx, first.ID, "test")
	if err != nil || again.FlowID == first.FlowID || again.BillingRequestID != first.BillingRequestID || again.State != "awaiting_payer" {
		t.Fatalf("resend of an expired link: %+v, %v", again, err)
	}
	if _, err := r.Sim.CompleteFlow(again.FlowID, gcsim.Payer{}); err != nil {
		t.Fatalf("the new link does not work: %v", err)
	}

	// A cancelled billing request gets a new one.
	r.Publish(rig.Customer("C2"))
	r.Eventually(20*time.Second, "C2 awaiting payer", func() bool {
		return r.Count(`SELECT count(*) FROM mandate_requests WHERE erp_customer_id = 'C2' AND state = 'awaiting_payer'`) == 1
	})
	list, err = desk.MandateRequests(ctx, "awaiting_payer")
	if err != nil {
		t.Fatal(err)
	}
	var c2 operator.MandateRequest
	for _, mr := range list {
		if mr.Key.CustomerID == "C2" {
			c2 = mr
		}
	}
	_, client, err := r.Dir.GoCardless(ctx, rig.GCConnection)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.CancelBillingRequest(ctx, "cancel-c2", c2.BillingRequestID, gocardless.ActionParams{}); err != nil {
		t.Fatal(err)
	}
	r.Advance(time.Hour)
	r.Eventually(20*time.Second, "cancelled", func() bool {
		return r.Count(`SELECT count(*) FROM mandate_requests WHERE id = $1 AND state = 'cancelled'`, c2.ID) == 1
	})
	next, err := desk.ResendMandateRequest(ctx, c2.ID, "test")
	if err != nil || next.Attempt != 2 || next.BillingRequestID == c2.BillingRequestID || next.State != "awaiting_payer" {
		t.Fatalf("resend of a cancelled request: %+v, %v", next, err)
	}
	if _, err := desk.ResendMandateRequest(ctx, c2.ID+1000, "test"); err == nil {
		t.Fatal("an unknown request was resent")
	}
}

// TestResendCollectsInvoicesThatWaitedInVain: invoices that became
// exceptions because the customer did not authorise in time (one parked
// first, one refused on arrival) are parked again by a resend, their
// exceptions resolved with a note, once however often the link is resent;
// once the payer authorises the new link, each is collected once.
func TestResendCollectsInvoicesThatWaitedInVain(t *testing.T) {
	r := rig.New(t, rig.Options{Sim: gcsim.Options{Creditors: []gcsim.Creditor{{ID: gcsim.DefaultCreditorID, CustomPaymentReferences: true}}},
		GC: map[string]any{"mandate_setup": "billing_request", "mandate_wait": "48h"}})
	r.Consumers("a", 2)
	r.Publish(rig.Customer("C1"))
	r.Eventually(20*time.Second, "awaiting payer", func() bool {
		return r.Count(`SELECT count(*) FROM mandate_requests WHERE state = 'awaiting_payer'`) == 1
	})
	r.Publish(rig.Invoice("PARKED", "C1", "10.00"))
	r.Eventually(20*time.Second, "invoice parked", func() bool {
		return r.Count(`SELECT count(*) FROM awaiting_invoices WHERE released_at IS NULL`) == 1
	})
	r.Advance(72 * time.Hour) // past mandate_wait: the sweep turns it into an exception
	r.Publish(rig.Invoice("LATE", "C1", "20.00"))
	r.Eventually(20*time.Second, "both invoices exceptions", func() bool {
		return r.Count(`SELECT count(*) FROM exceptions WHERE kind = 'mandate_not_authorised' AND status = 'open'`) == 2
	})

	desk := operator.NewDesk(r.DB, r.Registry, nil)
	desk.Now = r.Sim.Now
	ctx := context.Background()
	list, err := desk.MandateRequests(ctx, "awaiting_payer")
	if err != nil || len(list) != 1 {
		t.Fatalf("awaiting: %+v, %v", list, err)
	}
	resent, err := desk.ResendMandateRequest(ctx, list[0].ID, "ann")
	if err != nil {
		t.Fatal(err)
	}
	if resent.Reparked == nil || len(resent.Reparked.Invoices) != 2 || len(resent.Reparked.Left) != 0 {
		t.Fatalf("resend reparked %+v, want both invoices", resent.Reparked)
	}
	if n := r.Count(`SELECT count(*) FROM exceptions WHERE kind = 'mandate_not_authorised' AND status = 'resolved'`); n != 2 {
		t.Fatalf("%d exceptions resolved, want 2", n)
	}
	if n := r.Count(`SELECT count(*) FROM audit_log WHERE action = 'exception.resolved' AND actor = 'ann'
		AND payload->>'cause' LIKE 'mandate link resent%'`); n != 2 {
		t.Fatalf("%d resolutions audited with the note, want 2", n)
	}
	// A second resend finds nothing more to park.
	again, err := desk.ResendMandateRequest(ctx, list[0].ID, "ann")
	if err != nil || again.Reparked == nil || len(again.Reparked.Invoices) != 0 {
		t.Fatalf("second resend: %+v, %v", again.Reparked, err)
	}
	// The wait starts again from the resend: a sweep now keeps them parked.
	r.Advance(time.Hour)
	if n := r.Count(`SELECT count(*) FROM awaiting_invoices WHERE released_at IS NULL`); n != 2 {
		t.Fatalf("%d invoices parked after the resend, want 2", n)
	}
	if n := r.Count(`SELECT count(*) FROM exceptions WHERE status = 'open'`); n != 0 {
		t.Fatalf("%d open exceptions right after the resend", n)
	}
	if _, err := r.Sim.CompleteFlow(again.FlowID, gcsim.Payer{}); err != nil {
		t.Fatal(err)
	}
	r.Advance(time.Hour)
	r.Eventually(30*time.Second, "both collected", func() bool {
		return r.Count(`SELECT count(*) FROM collections WHERE invoice_id IN ('PARKED', 'LATE') AND gc_payment_id IS NOT NULL`) == 2
	})
	r.Advance(time.Hour)
	if n := len(r.Sim.Payments()); n != 2 {
		t.Fatalf("%d payments, want 2", n)
	}
	if n := r.Count(`SELECT count(*) FROM awaiting_invoices WHERE released_at IS NULL`); n != 0 {
		t.Fatalf("%d invoices still parked", n)
	}
}
