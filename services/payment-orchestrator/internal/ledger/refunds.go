package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// RefundKey identifies an ERP refund request.
type RefundKey struct {
	ERP          string
	ConnectionID int64
	Company      string
	RefundID     string
}

// String is the refund's identity, as in the audit log.
func (k RefundKey) String() string { return k.aggregateID() }

func (k RefundKey) aggregateID() string {
	return fmt.Sprintf("%s:%d:%s:%s", k.ERP, k.ConnectionID, k.Company, k.RefundID)
}

// Refund is one ERP refund request and its GoCardless refund.
type Refund struct {
	ID                 int64
	Key                RefundKey
	CollectionID       int64
	AmountMinor        int64
	Currency           string
	State              RefundState
	GCRefundID         string
	GCPaymentID        string
	IdempotencyKey     string
	FailureCause       string
	FailureReasonCode  string
	FailureDescription string
	ERPVersion         string
	LastEventAt        time.Time
}

// RefundKeyFor is the idempotency key of refund k.
func RefundKeyFor(k RefundKey) string {
	return fmt.Sprintf("mlc:%s:%d:%s:%s:refund", k.ERP, k.ConnectionID, k.Company, k.RefundID)
}

const refundColumns = `id, erp, connection_id, company, erp_refund_id, collection_id, amount_minor, currency, state,
	coalesce(gc_refund_id, ''), coalesce(gc_payment_id, ''), idempotency_key, coalesce(failure_cause, ''),
	coalesce(failure_reason_code, ''), coalesce(failure_description, ''), coalesce(erp_version, ''),
	coalesce(last_event_at, '0001-01-01'::timestamptz)`

func scanRefund(row pgx.Row) (Refund, error) {
	var r Refund
	err := row.Scan(&r.ID, &r.Key.ERP, &r.Key.ConnectionID, &r.Key.Company, &r.Key.RefundID, &r.CollectionID, &r.AmountMinor,
		&r.Currency, &r.State, &r.GCRefundID, &r.GCPaymentID, &r.IdempotencyKey, &r.FailureCause, &r.FailureReasonCode,
		&r.FailureDescription, &r.ERPVersion, &r.LastEventAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, ErrNotFound
	}
	return r, err
}

// StartRefund records r in state creating before GoCardless is asked, or
// returns the existing refund of the same request; the row is locked.
func StartRefund(ctx context.Context, tx pgx.Tx, r Refund) (_ Refund, started bool, err error) {
	r.State, r.IdempotencyKey = RefundCreating, RefundKeyFor(r.Key)
	tag, err := tx.Exec(ctx, `
		INSERT INTO refunds (collection_id, erp, connection_id, company, erp_refund_id, amount_minor, currency, state,
			gc_payment_id, idempotency_key, erp_version)
		VALUES ($1, $2, $3, $4, $5, $6, $7, 'creating', nullif($8, ''), $9, nullif($10, ''))
		ON CONFLICT DO NOTHING`, // any unique index, the idempotency key's too (see startCollections)
		r.CollectionID, r.Key.ERP, r.Key.ConnectionID, r.Key.Company, r.Key.RefundID, r.AmountMinor, r.Currency,
		r.GCPaymentID, r.IdempotencyKey, r.ERPVersion)
	if err != nil {
		return r, false, fmt.Errorf("start refund %s: %w", r.Key.aggregateID(), err)
	}
	started = tag.RowsAffected() == 1
	locked, err := scanRefund(tx.QueryRow(ctx, `SELECT `+refundColumns+` FROM refunds
		WHERE connection_id = $1 AND company = $2 AND erp_refund_id = $3 FOR NO KEY UPDATE`, r.Key.ConnectionID, r.Key.Company, r.Key.RefundID))
	if err != nil {
		return r, false, fmt.Errorf("lock refund %s: %w", r.Key.aggregateID(), err)
	}
	if started {
		err = record(ctx, tx, "refund", r.Key.aggregateID(), "refund.creating", Change{After: refundView(locked), Cause: "refund requested in the ERP"})
	}
	return locked, started, err
}

// RefundedBefore sums the refunds of a collection other than exclude that
// GoCardless has accepted and not failed: with this one's amount it is the
// total_amount_confirmation GoCardless asks for.
func RefundedBefore(ctx context.Context, tx pgx.Tx, collectionID, exclude int64) (int64, error) {
	var sum int64
	err := tx.QueryRow(ctx, `SELECT coalesce(sum(amount_minor), 0) FROM refunds
		WHERE collection_id = $1 AND id <> $2 AND gc_refund_id IS NOT NULL
		  AND state NOT IN ('failed', 'cancelled', 'bounced', 'funds_returned', 'exception')`, collectionID, exclude).Scan(&sum)
	return sum, err
}

// LockRefundByGC locks the refund of a GoCardless refund id.
func LockRefundByGC(ctx context.Context, tx pgx.Tx, gcRefundID string) (Refund, error) {
	return scanRefund(tx.QueryRow(ctx, `SELECT `+refundColumns+` FROM refunds WHERE gc_refund_id = $1 FOR NO KEY UPDATE`, gcRefundID))
}

// LockRefund locks a refund by its ERP key.
func LockRefund(ctx context.Context, tx pgx.Tx, k RefundKey) (Refund, error) {
	return scanRefund(tx.QueryRow(ctx, `SELECT `+refundColumns+` FROM refunds
		WHERE connection_id = $1 AND company = $2 AND erp_refund_id = $3 FOR NO KEY UPDATE`, k.ConnectionID, k.Company, k.RefundID))
}

// SaveRefund writes r (locked in tx) and audits the change.
func SaveRefund(ctx context.Context, tx pgx.Tx, before, r Refund, action, cause string) error {
	if err := CheckRefund(before.State, r.State); err != nil {
		return fmt.Errorf("save refund %s: %w", r.Key.aggregateID(), err)
	}
	var lastEvent *time.Time
	if r.LastEventAt.Year() > 1 {
		lastEvent = &r.LastEventAt
	}
	_, err := tx.Exec(ctx, `
		UPDATE refunds SET state = $2, state_rank = $3, gc_refund_id = nullif($4, ''), failure_cause = nullif($5, ''),
			failure_reason_code = nullif($6, ''), failure_description = nullif($7, ''), last_event_at = $8
		WHERE id = $1`, r.ID, r.State, r.State.Rank(), r.GCRefundID, r.FailureCause, r.FailureReasonCode,
		r.FailureDescription, lastEvent)
	if err != nil {
		return fmt.Errorf("save refund %s: %w", r.Key.aggregateID(), err)
	}
	return record(ctx, tx, "refund", r.Key.aggregateID(), action, Change{Before: refundView(before), After: refundView(r), Cause: cause})
}

// AggregateID is the audit-log id of a refund.
func (r Refund) AggregateID() string { return r.Key.aggregateID() }

func refundView(r Refund) map[string]any {
	v := map[string]any{"state": r.State, "amount_minor": r.AmountMinor, "currency": r.Currency, "idempotency_key": r.IdempotencyKey}
	if r.GCRefundID != "" {
		v["gc_refund"] = r.GCRefundID
	}
	if r.FailureCause != "" {
		v["failure_cause"] = r.FailureCause
	}
	return v
}
