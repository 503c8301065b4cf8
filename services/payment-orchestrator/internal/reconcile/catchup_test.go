package reconcile_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/platform/bus"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/ledger"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/rig"
)

const catchUpLease = "events-catch-up"

// A replica killed in mid-pass leaves its connection's catch-up lease
// behind. The other replicas skip the connection only until that lease
// expires, LeaseTime after its last renewal, and then fill in the
// webhooks lost meanwhile; a lease that outlived its replica by minutes
// stopped the catch-up for as long.
func TestCatchUpTakesOverFromAReplicaKilledMidPass(t *testing.T) {
	r := rig.New(t, rig.Options{GC: rig.Direct})
	r.Consumers("a", 2)
	collected(t, r, map[string]string{"A": "10.00"})
	r.Sim.Advance(14 * 24 * time.Hour) // paid out; no webhook delivered
	ctx := context.Background()
	r.CatchUp.LeaseTime = 2 * time.Second
	if _, _, err := r.Ledger.Claim(ctx, catchUpLease, rig.GCConnection, "killed-replica", nil, r.CatchUp.LeaseTime, ""); err != nil {
		t.Fatal(err)
	}
	if err := r.CatchUp.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	r.Drain()
	if s := states(t, r)["A"]; s == "paid_out" {
		t.Fatal("a pass read the connection under another replica's lease")
	}
	r.Eventually(15*time.Second, "caught up once the killed replica's lease expired", func() bool {
		if err := r.CatchUp.Pass(ctx); err != nil {
			t.Fatal(err)
		}
		r.Drain()
		return states(t, r)["A"] == "paid_out"
	})
}

type publishFunc func(ctx context.Context, msgs []bus.Msg) ([]bus.Ack, error)

func (f publishFunc) PublishBatch(ctx context.Context, msgs []bus.Msg) ([]bus.Ack, error) {
	return f(ctx, msgs)
}

// A pass slower than its lease renews it: no other replica takes the
// connection over while it runs, the lease never runs more than LeaseTime
// ahead (a killed replica's lease expires that soon), and none is left
// once the pass has stored its cursor.
func TestCatchUpPassRenewsItsLease(t *testing.T) {
	r := rig.New(t, rig.Options{GC: rig.Direct})
	r.Consumers("a", 2)
	collected(t, r, map[string]string{"A": "10.00"})
	r.Sim.Advance(14 * 24 * time.Hour)
	ctx := context.Background()
	const lease = 3 * time.Second
	var (
		mu       sync.Mutex
		problems []string
		checked  int
	)
	problem := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		problems = append(problems, fmt.Sprintf(format, args...))
	}
	// Publishing takes three lease times, as a slow NATS or a long
	// backlog would; meanwhile the lease is checked as another replica
	// would find it.
	slow := publishFunc(func(pctx context.Context, msgs []bus.Msg) ([]bus.Ack, error) {
		for end := time.Now().Add(3 * lease); time.Now().Before(end); time.Sleep(lease / 6) {
			var left time.Duration
			err := r.DB.QueryRow(ctx, `SELECT expires_at - now() FROM leases WHERE aggregate_type = $1 AND aggregate_id = $2`,
				catchUpLease, rig.GCConnection).Scan(&left)
			if err != nil {
				problem("lease while the pass runs: %v", err)
			} else if left > lease+time.Second {
				problem("lease runs %s ahead, more than LeaseTime %s", left, lease)
			}
			_, _, err = r.Ledger.Claim(ctx, catchUpLease, rig.GCConnection, "other-replica", nil, lease, "")
			if !errors.As(err, new(*ledger.BusyError)) {
				problem("another replica's claim while the pass runs: %v, want busy", err)
			}
			checked++
		}
		return r.Bus.PublishBatch(pctx, msgs)
	})
	c := *r.CatchUp
	c.Bus, c.LeaseTime = slow, lease
	if err := c.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
	if checked < 10 {
		t.Errorf("lease checked %d times during the pass", checked)
	}
	if n := r.Count(`SELECT count(*) FROM leases WHERE aggregate_type = $1`, catchUpLease); n != 0 {
		t.Errorf("%d catch-up leases after the pass, want none", n)
	}
	if n := r.Count(`SELECT count(*) FROM event_cursors`); n != 1 {
		t.Errorf("%d cursors stored, want 1", n)
	}
	r.Eventually(20*time.Second, "paid out", func() bool { return states(t, r)["A"] == "paid_out" })
}
