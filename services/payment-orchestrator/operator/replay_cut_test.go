package operator_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/connectors/gocardless/gcsim"
	"github.com/ml-connector/ml-connector/platform/retry"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/rig"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/operator"
)

// TestReplayCutShortConvergesToOnePayment: a replay that dies between
// committing its intent and recording GoCardless's answer (before the
// call reached GoCardless, or after GoCardless made the payment and the
// answer was lost) leaves the collection in creating under the new
// attempt's key; the next replay, by another process, resumes that intent
// and GoCardless ends with exactly one new payment for the invoice.
func TestReplayCutShortConvergesToOnePayment(t *testing.T) {
	r := rig.New(t, rig.Options{GC: rig.Direct})
	r.Consumers("a", 2)
	ctx := context.Background()
	r.Publish(rig.Customer("C1"))
	r.Eventually(20*time.Second, "mandate", func() bool {
		return r.Count(`SELECT count(*) FROM customer_links WHERE gc_mandate_id IS NOT NULL`) == 1
	})
	payments := func(invoice string) []gcsim.Payment {
		var out []gcsim.Payment
		for _, p := range r.Sim.Payments() {
			if p.Metadata["invoice_id"] == invoice {
				out = append(out, p)
			}
		}
		return out
	}
	_, client, err := r.Dir.GoCardless(ctx, rig.GCConnection)
	if err != nil {
		t.Fatal(err)
	}
	for _, cut := range []struct {
		invoice     string
		afterCommit bool // GoCardless made the payment; the answer never arrived
	}{{"CUT-BEFORE", false}, {"CUT-AFTER", true}} {
		r.Publish(rig.Invoice(cut.invoice, "C1", "25.00"))
		r.Eventually(20*time.Second, "payment of "+cut.invoice, func() bool { return len(payments(cut.invoice)) == 1 })
		first := payments(cut.invoice)[0]
		if _, err := client.CancelPayment(ctx, "cancel-"+cut.invoice, first.ID, gocardless.ActionParams{}); err != nil {
			t.Fatal(err)
		}
		r.Advance(time.Hour)
		r.Eventually(10*time.Second, cut.invoice+" cancelled", func() bool { return state(t, r, cut.invoice) == "cancelled" })

		// The dying replay: one attempt per call (no retry in the client,
		// as a process killed at that moment makes none), and the next
		// GoCardless request fails with a 500, before or after it took effect.
		dying := operator.NewDesk(r.DB, r.Registry, func(string) []gocardless.Option {
			return []gocardless.Option{gocardless.WithBackoff(retry.Backoff{Base: time.Millisecond, Max: time.Millisecond, Attempts: 1})}
		})
		if err := r.Sim.SetFaults(gcsim.Faults{ServerErrorNext: 1, ServerErrorAfterCommit: cut.afterCommit}); err != nil {
			t.Fatal(err)
		}
		if res, err := dying.Replay(ctx, rig.ERPConnection, "10", cut.invoice, "ops:alice"); err == nil {
			t.Fatalf("%s: the cut replay succeeded: %+v", cut.invoice, res)
		}
		if s := state(t, r, cut.invoice); s != "creating" {
			t.Fatalf("%s: state %s after the cut replay, want its intent (creating)", cut.invoice, s)
		}
		wantAtGC := 1
		if cut.afterCommit {
			wantAtGC = 2 // the new payment exists, unrecorded
		}
		if n := len(payments(cut.invoice)); n != wantAtGC {
			t.Fatalf("%s: %d payments at GoCardless after the cut, want %d", cut.invoice, n, wantAtGC)
		}

		// The next replay, by another process, resumes the intent.
		desk := operator.NewDesk(r.DB, r.Registry, nil)
		res, err := desk.Replay(ctx, rig.ERPConnection, "10", cut.invoice, "ops:bob")
		if err != nil || res.How != "new payment" || res.Attempt != 2 {
			t.Fatalf("%s: replay after the cut: %+v, %v", cut.invoice, res, err)
		}
		got := payments(cut.invoice)
		if len(got) != 2 {
			t.Fatalf("%s: %d payments at GoCardless, want 2 (the cancelled one and exactly one new)", cut.invoice, len(got))
		}
		newest := got[0]
		if newest.ID == first.ID {
			newest = got[1]
		}
		if res.PaymentID != newest.ID {
			t.Errorf("%s: replay recorded payment %s, GoCardless has %s", cut.invoice, res.PaymentID, newest.ID)
		}
		if _, err := desk.Replay(ctx, rig.ERPConnection, "10", cut.invoice, "ops:bob"); !errors.Is(err, operator.ErrNotReplayable) {
			t.Errorf("%s: a third replay of a payment in flight: %v, want ErrNotReplayable", cut.invoice, err)
		}
		if n := len(payments(cut.invoice)); n != 2 {
			t.Errorf("%s: %d payments at GoCardless after the third replay, want 2", cut.invoice, n)
		}
	}
}
