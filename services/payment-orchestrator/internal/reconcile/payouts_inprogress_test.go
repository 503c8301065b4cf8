package reconcile_test

import (
	"context"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/rig"
)

// A deposit erp-poster is still writing (a payout of thousands of lines
// takes many minutes, and every other call meanwhile is ABORTED) is in
// progress, not failing: the event is done with, the deposit stays
// queued, and the payout flush posts it once erp-poster has finished,
// however many more calls than the consumer's MaxDeliver (10) that takes.
// No delivery is used up and no exception raised on the way.
func TestPayoutInProgressIsPostedByTheFlush(t *testing.T) {
	r := rig.New(t, rig.Options{GC: rig.Direct})
	r.Consumers("a", 2)
	collected(t, r, map[string]string{"A": "100.00"})
	const busy = 25
	r.Poster.BusyPayouts(busy)
	settle(r, 14)
	r.Eventually(20*time.Second, "payout stored, its deposit tried", func() bool {
		return len(paidPayouts(r)) == 1 && r.Count(`SELECT count(*) FROM payouts WHERE state = 'posting'`) == 1 && r.Poster.Calls() > 0
	})
	r.Drain() // the payout's event is acknowledged, not waiting for a redelivery
	if n := r.Count(`SELECT count(*) FROM pending_outcomes WHERE kind = 'payout'`); n != 1 {
		t.Fatalf("%d deposits queued while erp-poster writes the payout, want 1", n)
	}
	if n := r.Count(`SELECT count(*) FROM exceptions`); n != 0 {
		t.Fatalf("%d exceptions for a payout still being posted", n)
	}
	ctx := context.Background()
	r.Eventually(20*time.Second, "deposit posted by the flush", func() bool {
		left, err := r.Reconciler.FlushPayouts(ctx)
		if err != nil {
			t.Fatalf("flush: %v", err)
		}
		return left == 0
	})
	if n := r.Count(`SELECT count(*) FROM payouts WHERE state = 'posted'`); n != 1 {
		t.Errorf("%d payouts posted, want 1", n)
	}
	if n := len(r.Poster.Payouts()); n != 1 {
		t.Errorf("%d deposits posted, want 1", n)
	}
	if n := r.Count(`SELECT count(*) FROM exceptions`); n != 0 {
		t.Errorf("%d exceptions after the deposit was posted", n)
	}
	if calls := r.Poster.Calls(); calls <= busy {
		t.Errorf("erp-poster called %d times, fewer than the %d answered ABORTED and the one posting", calls, busy)
	}
}
