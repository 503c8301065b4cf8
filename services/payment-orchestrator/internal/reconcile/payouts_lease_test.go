package reconcile_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/connectors/gocardless/gcmsg"
	"github.com/ml-connector/ml-connector/platform/bus"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/ledger"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/reconcile"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/rig"
)

// A payout whose fetch is held by an orchestrator that died, its 5 min
// lease still in force, is fetched by the event that waits for it rather
// than dead-lettered (issue #17: pauses capped at 10 s gave the event
// 190 s at MAX_DELIVER 20). The pauses its deliveries ask for add up to
// the whole lease within ledger.LeaseDeliveries deliveries, which the
// smallest MAX_DELIVER allowed leaves room for, and the next delivery,
// once the lease has run out, takes the fetch over and stores the payout.
// The deliveries are handed to the handler one by one, each with its
// delivery count, and the pauses are summed rather than slept: the lease's
// end is then brought forward in Postgres, as the pauses would have.
func TestPayoutEventOutwaitsADeadHoldersLease(t *testing.T) {
	r := rig.New(t, rig.Options{GC: rig.Direct})
	r.Consumers("a", 2)
	collected(t, r, map[string]string{"A": "100.00"})
	r.Sim.Advance(14 * 24 * time.Hour) // events recorded at GoCardless, none read yet
	po := paidPayouts(r)
	if len(po) != 1 {
		t.Fatalf("%d paid payouts, want 1", len(po))
	}
	var payoutEvent *gocardless.Event
	var rest []gocardless.Event
	for _, ev := range allEvents(t, r) {
		if ev.ResourceType == "payouts" && ev.Links["payout"] == po[0].ID && payoutEvent == nil {
			payoutEvent = &ev
			continue
		}
		if ev.ResourceType != "payouts" {
			rest = append(rest, ev)
		}
	}
	if payoutEvent == nil {
		t.Fatalf("no event of payout %s", po[0].ID)
	}
	publishEvents(t, r, rest) // the payments' lifecycles, through the consumer
	r.Drain()

	ctx := context.Background()
	if _, _, err := r.Ledger.Claim(ctx, ledger.PayoutAggregate, po[0].ID, "gocardless-event:EVDEAD",
		map[string]string{"fetch": "payout and payout items"}, reconcile.PayoutLease, "payout.fetching"); err != nil {
		t.Fatal(err)
	}
	m, err := gcmsg.BusMsg(*payoutEvent, gcmsg.Envelope{Connection: rig.GCConnection, Source: gcmsg.FromWebhook})
	if err != nil {
		t.Fatal(err)
	}
	delivery := func(n uint64) *bus.Delivery {
		return &bus.Delivery{Subject: m.Subject, ID: m.ID, Data: m.Data, Header: m.Header, Stream: bus.StreamGC, Deliveries: n}
	}
	var waited time.Duration
	for n := uint64(1); n < ledger.LeaseDeliveries; n++ {
		err := r.Reconciler.Handle(ctx, delivery(n))
		delay, retried := bus.RetryDelay(err)
		if !retried || !errors.As(err, new(*ledger.BusyError)) {
			t.Fatalf("delivery %d: %v, want a retry while the lease is in force", n, err)
		}
		waited += delay
	}
	if waited < reconcile.PayoutLease {
		t.Fatalf("%d deliveries wait %v in all, less than the dead holder's %v lease", ledger.LeaseDeliveries-1, waited, reconcile.PayoutLease)
	}
	if _, err := r.DB.Exec(ctx, `UPDATE leases SET expires_at = now() - interval '1 second' WHERE aggregate_type = $1 AND aggregate_id = $2`,
		ledger.PayoutAggregate, po[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := r.Reconciler.Handle(ctx, delivery(ledger.LeaseDeliveries)); err != nil {
		t.Fatalf("delivery %d, after the lease ran out: %v", ledger.LeaseDeliveries, err)
	}
	if n := r.Count(`SELECT count(*) FROM payouts WHERE gc_payout_id = $1`, po[0].ID); n != 1 {
		t.Errorf("%d payouts stored, want 1", n)
	}
	if n := r.Count(`SELECT count(*) FROM exceptions`); n != 0 {
		t.Errorf("%d exceptions", n)
	}
}
