package reconcile_test

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/ml-connector/ml-connector/services/payment-orchestrator/operator"
)

// A payout the ERP refused is re-posted by an operator: its deposit is
// queued again under its own outcome id and posted by the orchestrator's
// payout flush, the payout ends posted, the operator is audited; asking twice
// queues it once, and a posted payout has nothing to re-post.
func TestPayoutRepostedAfterTheERPRefusedIt(t *testing.T) {
	r := refusedPayout(t)
	r.Drain()
	poID := paidPayouts(r)[0].ID
	var outcomeID string
	ctx := context.Background()
	if err := r.DB.QueryRow(ctx, `SELECT outcome_id FROM payout_postings`).Scan(&outcomeID); err != nil {
		t.Fatal(err)
	}
	if n := len(r.Poster.Payouts()); n != 0 {
		t.Fatalf("%d deposits posted while refused", n)
	}

	r.Poster.RefusePayouts(codes.OK) // the ERP's period is open again
	desk := operator.NewDesk(r.DB, r.Registry, nil)
	for range 2 {
		n, err := desk.RepostPayout(ctx, poID, "ann", "period reopened")
		if err != nil || n != 1 {
			t.Fatalf("repost: %d deposits, %v", n, err)
		}
	}
	if n := r.Count(`SELECT count(*) FROM pending_outcomes WHERE outcome_id = $1`, outcomeID); n != 1 {
		t.Fatalf("deposit queued %d times", n)
	}
	if n := r.Count(`SELECT count(*) FROM payouts WHERE state = 'posting'`); n != 1 {
		t.Errorf("payout not posting again")
	}
	if left, err := r.Reconciler.FlushPayouts(ctx); err != nil || left != 0 {
		t.Fatalf("payout flush: %d payouts left, %v", left, err)
	}
	if n := r.Count(`SELECT count(*) FROM payouts WHERE state = 'posted'`); n != 1 {
		t.Errorf("payout not posted after the re-post")
	}
	if n := r.Count(`SELECT count(*) FROM payout_postings WHERE outcome_id = $1 AND state = 'posted' AND erp_reference = $2`,
		outcomeID, "DEP-"+poID); n != 1 {
		t.Errorf("deposit %s not recorded posted under its own id", outcomeID)
	}
	if deps := r.Poster.Payouts(); len(deps) != 1 || deps[0].GetPayoutId() != poID {
		t.Errorf("deposits posted: %v", deps)
	}
	if n := r.Count(`SELECT count(*) FROM pending_outcomes`); n != 0 {
		t.Errorf("%d outcomes left queued", n)
	}
	if n := r.Count(`SELECT count(*) FROM audit_log WHERE action = 'payout.repost' AND actor = 'ann' AND aggregate_id = $1`, poID); n != 2 {
		t.Errorf("%d re-posts audited under ann, want 2", n)
	}
	// Nothing left to post: no second deposit.
	if _, err := desk.RepostPayout(ctx, poID, "ann", ""); !errors.Is(err, operator.ErrNotRepostable) {
		t.Errorf("re-post of a posted payout: %v", err)
	}
	if left, err := r.Reconciler.FlushPayouts(ctx); err != nil || left != 0 {
		t.Errorf("payout flush after: %d left, %v", left, err)
	}
	if n := len(r.Poster.Payouts()); n != 1 {
		t.Errorf("%d deposits posted", n)
	}
}
