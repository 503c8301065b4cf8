package reconcile

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/ledger"
)

var refundStates = map[string]struct {
	state   ledger.RefundState
	outcome mlcv1.RefundOutcomeKind
}{
	"created":        {ledger.RefundCreated, mlcv1.RefundOutcomeKind_REFUND_OUTCOME_KIND_UNSPECIFIED},
	"paid":           {ledger.RefundPaid, mlcv1.RefundOutcomeKind_REFUND_OUTCOME_KIND_PAID},
	"failed":         {ledger.RefundFailed, mlcv1.RefundOutcomeKind_REFUND_OUTCOME_KIND_FAILED},
	"bounced":        {ledger.RefundBounced, mlcv1.RefundOutcomeKind_REFUND_OUTCOME_KIND_FAILED},
	"funds_returned": {ledger.RefundFundsReturned, mlcv1.RefundOutcomeKind_REFUND_OUTCOME_KIND_FAILED},
	"cancelled":      {ledger.RefundCancelled, mlcv1.RefundOutcomeKind_REFUND_OUTCOME_KIND_CANCELLED},
}

func (r *Reconciler) refund(ctx context.Context, tx pgx.Tx, ev event, f facts) error {
	gcID := ev.GetLinks()["refund"]
	change, known := refundStates[ev.GetAction()]
	if gcID == "" || !known {
		return nil
	}
	rf, err := ledger.LockRefundByGC(ctx, tx, gcID)
	if errors.Is(err, ledger.ErrNotFound) {
		rf, err = r.placeRefund(ctx, tx, ev, gcID, f)
	}
	if errors.Is(err, errNotOurs) {
		return nil
	}
	if err != nil {
		return err
	}
	col, err := ledger.LockCollectionByID(ctx, tx, rf.CollectionID)
	if err != nil {
		return fmt.Errorf("collection of refund %s: %w", rf.AggregateID(), err)
	}
	linkCollection(ctx, col) // a refund's events continue the story of its payment's collection
	if !newer(ev.at, change.state.Rank(), rf.LastEventAt, rf.State.Rank()) {
		return nil
	}
	if err := ledger.CheckRefund(rf.State, change.state); err != nil {
		return r.ignore(ctx, tx, ev, gcID, err.Error())
	}
	if change.outcome != mlcv1.RefundOutcomeKind_REFUND_OUTCOME_KIND_UNSPECIFIED {
		ref, err := erpRef(f.reg, rf.Key.ERP, rf.Key.ConnectionID, rf.Key.Company)
		if err != nil {
			return err
		}
		out := &mlcv1.RefundOutcome{
			SchemaVersion: 1, OutcomeId: ev.GetEventId(), Erp: ref, RefundId: rf.Key.RefundID,
			Invoice: &mlcv1.InvoiceKey{InvoiceId: col.Key.InvoiceID, InvoiceNo: col.InvoiceNo, DocType: col.DocType, Suffix: col.Suffix},
			Kind:    change.outcome, GocardlessRefundId: gcID, PaymentId: rf.GCPaymentID, AmountMinor: rf.AmountMinor,
			Currency: rf.Currency, OccurredAt: ts(ev.at), Cause: ev.GetDetails().GetCause(),
			ReasonCode: ev.GetDetails().GetReasonCode(), Description: ev.GetDetails().GetDescription(), CustomerId: col.CustomerID,
		}
		if err := queue(ctx, tx, ev, "refund", rf.AggregateID(), "refund", ev.GetEventId(), out); err != nil {
			return err
		}
	}
	after := rf
	after.State, after.LastEventAt = change.state, ev.at
	if change.outcome == mlcv1.RefundOutcomeKind_REFUND_OUTCOME_KIND_FAILED {
		after.FailureCause, after.FailureReasonCode = ev.GetDetails().GetCause(), ev.GetDetails().GetReasonCode()
		after.FailureDescription = ev.GetDetails().GetDescription()
	}
	return ledger.SaveRefund(ctx, tx, rf, after, "refund."+string(change.state), "gocardless event "+ev.GetEventId())
}

// placeRefund finds a refund whose id is not recorded yet by the ERP
// identity in its metadata, and records the id.
func (r *Reconciler) placeRefund(ctx context.Context, tx pgx.Tx, ev event, gcID string, f facts) (ledger.Refund, error) {
	meta := ev.GetResourceMetadata()
	if meta["erp_connection"] == "" || meta["erp_refund_id"] == "" {
		return ledger.Refund{}, errNotOurs
	}
	conn, ok := f.reg.ByName(meta["erp_connection"])
	if !ok {
		return ledger.Refund{}, errNotOurs // no such connection here
	}
	connID := conn.ID
	rf, err := ledger.LockRefund(ctx, tx, ledger.RefundKey{ConnectionID: connID, Company: meta["company"], RefundID: meta["erp_refund_id"]})
	if errors.Is(err, ledger.ErrNotFound) || (err == nil && rf.GCRefundID != "" && rf.GCRefundID != gcID) {
		return rf, errNotOurs
	}
	if err != nil || rf.GCRefundID == gcID {
		return rf, err
	}
	after := rf
	after.GCRefundID = gcID
	if after.State == ledger.RefundCreating {
		after.State = ledger.RefundCreated
	}
	return after, ledger.SaveRefund(ctx, tx, rf, after, "refund.created", "refund known from GoCardless event "+ev.GetEventId())
}
