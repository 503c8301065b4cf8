package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ml-connector/ml-connector/platform/audit"
)

// A lease is held by one holder at a time, resumed by the same holder
// with the intent it recorded, taken over once expired, and a holder that
// lost it cannot record its result.
func TestLeases(t *testing.T) {
	l, _ := newLedger(t)
	ctx := context.Background()
	type plan struct{ Key string }
	claim := func(holder string, d time.Duration, p plan) (plan, bool, error) {
		rec, resumed, err := l.Claim(ctx, "customer", "ifs:1:10:C1", holder, p, d, "customer.aligning")
		var got plan
		if err == nil && resumed {
			err = json.Unmarshal(rec, &got)
		}
		return got, resumed, err
	}
	if _, resumed, err := claim("v1", time.Minute, plan{"k1"}); err != nil || resumed {
		t.Fatalf("first claim: resumed %v, %v", resumed, err)
	}
	var busy *BusyError
	if _, _, err := claim("v2", time.Minute, plan{"k2"}); !errors.As(err, &busy) || busy.Holder != "v1" {
		t.Fatalf("claim by another holder: %v, want busy with v1", err)
	}
	got, resumed, err := claim("v1", time.Minute, plan{"other"})
	if err != nil || !resumed || got.Key != "k1" {
		t.Fatalf("claim again by its holder: %+v resumed %v, %v; want the recorded intent k1", got, resumed, err)
	}
	// Expired: taken over, with the new holder's own intent.
	if _, err := l.DB().Exec(ctx, `UPDATE leases SET expires_at = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	if _, resumed, err := claim("v2", time.Minute, plan{"k2"}); err != nil || resumed {
		t.Fatalf("claim of an expired lease: resumed %v, %v", resumed, err)
	}
	if err := l.Release(ctx, "customer", "ifs:1:10:C1", "v1"); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("release by the holder that lost it: %v, want ErrLeaseLost", err)
	}
	err = l.Tx(ctx, func(tx pgx.Tx) error { return Release(ctx, tx, "customer", "ifs:1:10:C1", "v2") })
	if err != nil {
		t.Errorf("release: %v", err)
	}
	if _, resumed, err := claim("v3", time.Minute, plan{"k3"}); err != nil || resumed {
		t.Errorf("claim after release: resumed %v, %v", resumed, err)
	}
	recs, err := audit.List(ctx, l.DB(), "customer", "ifs:1:10:C1")
	if err != nil || len(recs) != 3 {
		t.Fatalf("%d audit entries, %v; want one per intent recorded (v1, v2, v3)", len(recs), err)
	}
	if string(recs[1].Payload) == "" || !json.Valid(recs[1].Payload) {
		t.Errorf("intent entry %s", recs[1].Payload)
	}
}

// Renew extends only its holder's lease, and never brings back a lease
// that was released or taken over.
func TestRenew(t *testing.T) {
	l, _ := newLedger(t)
	ctx := context.Background()
	expires := func() time.Time {
		var at time.Time
		if err := l.DB().QueryRow(ctx, `SELECT expires_at FROM leases WHERE aggregate_type = 'pass' AND aggregate_id = 'gc-1'`).Scan(&at); err != nil {
			t.Fatal(err)
		}
		return at
	}
	if _, _, err := l.Claim(ctx, "pass", "gc-1", "r1", nil, time.Second, ""); err != nil {
		t.Fatal(err)
	}
	before := expires()
	if err := l.Renew(ctx, "pass", "gc-1", "r1", time.Hour); err != nil {
		t.Fatalf("renew by its holder: %v", err)
	}
	if after := expires(); after.Sub(before) < 59*time.Minute {
		t.Errorf("renewed to %s, was %s; want an hour on", after, before)
	}
	if err := l.Renew(ctx, "pass", "gc-1", "r2", time.Hour); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("renew by another holder: %v, want ErrLeaseLost", err)
	}
	if err := l.Release(ctx, "pass", "gc-1", "r1"); err != nil {
		t.Fatal(err)
	}
	if err := l.Renew(ctx, "pass", "gc-1", "r1", time.Hour); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("renew after release: %v, want ErrLeaseLost", err)
	}
	var n int
	if err := l.DB().QueryRow(ctx, `SELECT count(*) FROM leases`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d leases after a renewal of a released one (%v), want 0", n, err)
	}
}

// A message that finds an aggregate busy with a holder that died reaches
// the end of its lease within LeaseDeliveries deliveries for every lease
// a message can meet (up to 5 min), however long the lease still had to
// run when the message first met it, and never waits past its end by more
// than the second Wait allows.
func TestBusyWaitOutlastsADeadHoldersLease(t *testing.T) {
	for _, lease := range []time.Duration{time.Second, 30 * time.Second, 2 * time.Minute, 5 * time.Minute} {
		for _, left := range []time.Duration{lease, lease / 2, lease / 10} {
			var waited time.Duration
			n := uint64(1)
			for ; waited < left; n++ {
				w := busyWait(n, left-waited)
				if w <= 0 || waited+w > left+time.Second {
					t.Fatalf("lease %v, %v left: wait %v after delivery %d, %v waited", lease, left, w, n, waited)
				}
				waited += w
			}
			if n > LeaseDeliveries {
				t.Errorf("lease %v with %v left: taken over at delivery %d, want at most %d", lease, left, n, LeaseDeliveries)
			}
		}
	}
	// A holder that is alive usually records its result within a second:
	// its waiters retry soon, not after minutes.
	for n, want := range map[uint64]time.Duration{1: 250 * time.Millisecond, 2: 500 * time.Millisecond, 5: 4 * time.Second} {
		if w := busyWait(n, 5*time.Minute); w != want {
			t.Errorf("wait after delivery %d: %v, want %v", n, w, want)
		}
	}
}
