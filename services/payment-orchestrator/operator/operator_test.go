package operator_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/connectors/gocardless/gcsim"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/rig"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/operator"
)

func state(t *testing.T, r *rig.Rig, invoice string) string {
	t.Helper()
	var s string
	if err := r.DB.QueryRow(context.Background(), `SELECT state FROM collections WHERE invoice_id = $1`, invoice).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestReplayAndEscalate(t *testing.T) {
	// RETRY fails on its first submission only; NEW fails every time at
	// GoCardless's retries, so a replay must make a new payment.
	r := rig.New(t, rig.Options{GC: rig.Direct, Sim: gcsim.Options{Scenarios: []gcsim.Rule{
		{Resource: "payments", Reference: "RETRY", Outcome: "failed", Cause: "insufficient_funds", Attempts: 1},
		{Resource: "payments", Reference: "NEW", Outcome: "failed", Cause: "insufficient_funds", Attempts: 4},
	}}})
	r.Consumers("a", 2)
	r.Publish(rig.Customer("C1"))
	r.Eventually(20*time.Second, "mandate", func() bool {
		return r.Count(`SELECT count(*) FROM customer_links WHERE gc_mandate_id IS NOT NULL`) == 1
	})
	r.Publish(rig.Invoice("RETRY", "C1", "40.00"))
	r.Publish(rig.Invoice("NEW", "C1", "41.00"))
	r.Eventually(10*time.Second, "payments", func() bool { return len(r.Sim.Payments()) == 2 })
	for range 10 {
		r.Advance(24 * time.Hour)
	}
	r.Eventually(10*time.Second, "both failed", func() bool { return state(t, r, "RETRY") == "failed" && state(t, r, "NEW") == "failed" })

	desk := operator.NewDesk(r.DB, r.Registry, func(string) []gocardless.Option { return nil })
	ctx := context.Background()
	if _, err := desk.Replay(ctx, rig.ERPConnection, "10", "OK-NOT-THERE", "ops:alice"); !errors.Is(err, operator.ErrNotFound) {
		t.Errorf("replay of an unknown invoice: %v", err)
	}
	res, err := desk.Replay(ctx, rig.ERPConnection, "10", "RETRY", "ops:alice")
	if err != nil || res.How != "retry" || res.Attempt != 2 {
		t.Fatalf("replay RETRY: %+v, %v", res, err)
	}
	if _, err := desk.Replay(ctx, rig.ERPConnection, "10", "RETRY", "ops:alice"); !errors.Is(err, operator.ErrNotReplayable) {
		t.Errorf("second replay of a collection in flight: %v, want ErrNotReplayable", err)
	}
	// Exhaust GoCardless's retries of NEW, then replay: a new payment.
	for i := range 3 {
		if _, err := desk.Replay(ctx, rig.ERPConnection, "10", "NEW", "ops:bob"); err != nil {
			t.Fatalf("retry %d of NEW: %v", i+1, err)
		}
		for range 10 {
			r.Advance(24 * time.Hour)
		}
		r.Eventually(10*time.Second, "NEW failed again", func() bool { return state(t, r, "NEW") == "failed" })
	}
	res, err = desk.Replay(ctx, rig.ERPConnection, "10", "NEW", "ops:bob")
	if err != nil || res.How != "new payment" || res.Attempt != 5 {
		t.Fatalf("replay NEW after retries ran out: %+v, %v", res, err)
	}
	if len(r.Sim.Payments()) != 3 {
		t.Errorf("%d payments at GoCardless, want 3 (RETRY, NEW, NEW's replacement)", len(r.Sim.Payments()))
	}
	for range 10 {
		r.Advance(24 * time.Hour)
	}
	r.Eventually(10*time.Second, "RETRY collected", func() bool { return state(t, r, "RETRY") == "paid_out" })

	shown, err := desk.Show(ctx, rig.ERPConnection, "10", "RETRY")
	if err != nil {
		t.Fatal(err)
	}
	var replayed bool
	for _, rec := range shown.AuditTrail {
		replayed = replayed || (rec.Action == "collection.replayed" && rec.Actor == "payment-orchestrator" && strings.Contains(string(rec.Payload), "ops:alice"))
	}
	if !replayed || !shown.AuditVerified || shown.Attempts != 2 {
		t.Errorf("show: replayed in trail %v, verified %v, attempts %d", replayed, shown.AuditVerified, shown.Attempts)
	}

	// Escalation of an exception, audited under the operator.
	bad := rig.Invoice("BAD", "C1", "1.001")
	r.Publish(bad)
	r.Eventually(10*time.Second, "exception", func() bool { return r.Count(`SELECT count(*) FROM exceptions`) == 1 })
	open, _ := desk.Exceptions(ctx, "open")
	if err := desk.Escalate(ctx, open[0].ID, "ops:carol", "amount has a tenth of a penny; asked AR"); err != nil {
		t.Fatal(err)
	}
	if escalated, _ := desk.Exceptions(ctx, "escalated"); len(escalated) != 1 {
		t.Errorf("%d escalated exceptions", len(escalated))
	}
	if n := r.Count(`SELECT count(*) FROM audit_log WHERE action = 'exception.escalated' AND actor = 'ops:carol'`); n != 1 {
		t.Errorf("escalation audited %d times", n)
	}
	if err := desk.Escalate(ctx, 999, "ops:carol", ""); !errors.Is(err, operator.ErrNotFound) {
		t.Errorf("escalate unknown: %v", err)
	}
}
