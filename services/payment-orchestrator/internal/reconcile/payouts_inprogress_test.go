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

// A slow ERP: the deposit's first call outlives the orchestrator's
// PostTimeout (erp-poster keeps writing), later ones are ABORTED while it
// writes. The payout stays posting with its deposit queued and nothing
// raised; once the write is done the flush records it posted, once.
func TestPayoutPostedByASlowERP(t *testing.T) {
	r := rig.New(t, rig.Options{GC: rig.Direct})
	r.Reconciler.PostTimeout = 200 * time.Millisecond
	release := r.Poster.SlowPayouts()
	t.Cleanup(release)
	r.Consumers("a", 2)
	collected(t, r, map[string]string{"A": "100.00", "B": "20.00"})
	settle(r, 14)
	r.Eventually(20*time.Second, "payout stored, its deposit being written", func() bool {
		return len(paidPayouts(r)) == 1 && r.Count(`SELECT count(*) FROM payouts WHERE state = 'posting'`) == 1
	})
	r.Drain() // the event is acknowledged while the ERP still writes
	ctx := context.Background()
	for range 12 { // more than the consumer's MaxDeliver (10)
		if left, err := r.Reconciler.FlushPayouts(ctx); err != nil || left != 1 {
			t.Fatalf("flush while the ERP writes: %d payouts left, %v; want 1, nil", left, err)
		}
	}
	if n := r.Count(`SELECT count(*) FROM exceptions`); n != 0 {
		t.Fatalf("%d exceptions while the ERP writes", n)
	}
	release()
	r.Eventually(20*time.Second, "deposit posted", func() bool {
		left, err := r.Reconciler.FlushPayouts(ctx)
		return err == nil && left == 0
	})
	if n := r.Count(`SELECT count(*) FROM payouts WHERE state = 'posted'`); n != 1 {
		t.Errorf("%d payouts posted, want 1", n)
	}
	if n := len(r.Poster.Payouts()); n != 1 {
		t.Errorf("%d deposits written, want 1", n)
	}
}
