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
