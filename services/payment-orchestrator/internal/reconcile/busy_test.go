package reconcile_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/ml-connector/ml-connector/platform/bus"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/rig"
)

// redeliveries is how many more deliveries the GoCardless-event consumer
// has made than messages it was given: each one is a retry.
func redeliveries(t *testing.T, r *rig.Rig) uint64 {
	t.Helper()
	r.Drain()
	c, err := r.Bus.JetStream().Consumer(context.Background(), bus.StreamGC, "payment-orchestrator-gc")
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.Delivered.Consumer - info.Delivered.Stream
}

// confirmAfter moves GoCardless's clock a day at a time until A's
// confirmation is posted, erp-poster first giving the answers refuse
// queues, and returns the redeliveries that took.
func confirmAfter(t *testing.T, r *rig.Rig, refuse func()) uint64 {
	t.Helper()
	collected(t, r, map[string]string{"A": "10.00"})
	before := redeliveries(t, r)
	refuse()
	for day := 0; len(outcomeKinds(r)["A"]) == 0; day++ {
		if day == 12 {
			t.Fatal("no confirmation posted in 12 days")
		}
		r.Advance(24 * time.Hour)
	}
	after := redeliveries(t, r)
	if kinds := outcomeKinds(r)["A"]; len(kinds) != 1 || kinds[0] != "confirmed" {
		t.Errorf("A's outcomes %v, want the confirmation once", kinds)
	}
	return after - before
}

// An outcome erp-poster answers ABORTED for (another call is posting it:
// typically the previous event of the same payment) is posted again
// within the same delivery once that call is through, instead of waiting
// out the consumer's back-off: the event is delivered once.
func TestBusyOutcomeIsWaitedForWithinTheDelivery(t *testing.T) {
	r := rig.New(t, rig.Options{GC: rig.Direct})
	r.Consumers("a", 2)
	if n := confirmAfter(t, r, func() { r.Poster.BusyNext(3) }); n != 0 {
		t.Errorf("%d redeliveries; the busy answers should have been waited out within the delivery", n)
	}
}

// The wait is bounded: past BusyWait the event is left to the consumer's
// back-off like any failure, and still posted once.
func TestBusyOutcomeBeyondTheWaitIsRetried(t *testing.T) {
	r := rig.New(t, rig.Options{GC: rig.Direct})
	r.Reconciler.BusyWait = 0
	r.Consumers("a", 2)
	if n := confirmAfter(t, r, func() { r.Poster.BusyNext(1) }); n == 0 {
		t.Error("no redelivery: an event whose outcome is busy beyond BusyWait must be retried by the consumer")
	}
}

// A plain ABORTED is an ERP race erp-poster lost (IFS 412), not another
// call finishing: it is left to the consumer's back-off rather than
// posted again at once, and still posted once.
func TestLostRaceIsRetriedByTheConsumer(t *testing.T) {
	r := rig.New(t, rig.Options{GC: rig.Direct})
	r.Consumers("a", 2)
	if n := confirmAfter(t, r, func() { r.Poster.FailNext(codes.Aborted) }); n == 0 {
		t.Error("no redelivery: a lost race must wait for the consumer's back-off, not be posted again within the delivery")
	}
}
