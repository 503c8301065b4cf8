package ledger

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// A PendingOutcome is an outcome for the ERP, queued in the transaction
// that applied the GoCardless event it reports and deleted once erp-poster
// has written it (or refused it for good). erp-poster is called with no
// transaction open; its idempotency by OutcomeID makes a repeat harmless.
type PendingOutcome struct {
	ID            int64
	AggregateType string
	AggregateID   string
	EventID       string
	OutcomeID     string
	Kind          string // payment, refund, mandate or payout
	Outcome       []byte // the marshalled mlc.v1 outcome message
}

// QueueOutcome queues o in tx; an outcome id queued before is left as it is.
func QueueOutcome(ctx context.Context, tx pgx.Tx, o PendingOutcome) error {
	_, err := tx.Exec(ctx, `
		INSERT INTO pending_outcomes (aggregate_type, aggregate_id, event_id, outcome_id, kind, outcome)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (outcome_id) DO NOTHING`,
		o.AggregateType, o.AggregateID, o.EventID, o.OutcomeID, o.Kind, o.Outcome)
	if err != nil {
		return fmt.Errorf("queue outcome %s: %w", o.OutcomeID, err)
	}
	return nil
}

// EventOutcomes returns, for each aggregate with an outcome of an event
// still pending, every pending outcome of that aggregate (those queued
// before the event's too), grouped by aggregate and in the order queued
// within each: what a flush of the event posts, read in one round trip.
func (l *Ledger) EventOutcomes(ctx context.Context, eventID string) ([]PendingOutcome, error) {
	rows, err := l.db.Query(ctx, `SELECT id, aggregate_type, aggregate_id, event_id, outcome_id, kind, outcome
		FROM pending_outcomes WHERE (aggregate_type, aggregate_id) IN (
			SELECT aggregate_type, aggregate_id FROM pending_outcomes WHERE event_id = $1)
		ORDER BY aggregate_type, aggregate_id, id`, eventID)
	if err != nil {
		return nil, fmt.Errorf("pending outcomes of event %s: %w", eventID, err)
	}
	return pgx.CollectRows(rows, scanPendingOutcome)
}

// PendingOutcomes returns an aggregate's pending outcomes in the order
// they were queued, which is the order the ERP must hear of them.
func (l *Ledger) PendingOutcomes(ctx context.Context, aggType, aggID string) ([]PendingOutcome, error) {
	rows, err := l.db.Query(ctx, `SELECT id, aggregate_type, aggregate_id, event_id, outcome_id, kind, outcome
		FROM pending_outcomes WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY id`, aggType, aggID)
	if err != nil {
		return nil, fmt.Errorf("pending outcomes of %s %s: %w", aggType, aggID, err)
	}
	return pgx.CollectRows(rows, scanPendingOutcome)
}

func scanPendingOutcome(r pgx.CollectableRow) (PendingOutcome, error) {
	var o PendingOutcome
	err := r.Scan(&o.ID, &o.AggregateType, &o.AggregateID, &o.EventID, &o.OutcomeID, &o.Kind, &o.Outcome)
	return o, err
}

// OutcomePosted records that erp-poster wrote o (with the ERP's
// reference), or, with refusal set, that the ERP refused it for good: the
// refusal becomes an exception. Either way o is no longer pending.
func (l *Ledger) OutcomePosted(ctx context.Context, o PendingOutcome, erpReference string, refusal *Exception) error {
	return l.Tx(ctx, func(tx pgx.Tx) error {
		_, err := outcomePosted(ctx, tx, o, erpReference, refusal)
		return err
	})
}

// outcomePosted is OutcomePosted in tx; it reports false, changing
// nothing, when o was no longer pending (another worker recorded it).
func outcomePosted(ctx context.Context, tx pgx.Tx, o PendingOutcome, erpReference string, refusal *Exception) (bool, error) {
	tag, err := tx.Exec(ctx, `DELETE FROM pending_outcomes WHERE id = $1`, o.ID)
	if err != nil {
		return false, fmt.Errorf("outcome %s posted: %w", o.OutcomeID, err)
	}
	if tag.RowsAffected() == 0 {
		return false, nil // another worker recorded it first
	}
	if refusal != nil {
		_, err := RaiseException(ctx, tx, *refusal)
		return true, err
	}
	return true, record(ctx, tx, o.AggregateType, o.AggregateID, "erp.posted",
		Change{After: map[string]any{"outcome_id": o.OutcomeID, "kind": o.Kind, "erp_reference": erpReference},
			Cause: "gocardless event " + o.EventID})
}

// PendingAggregates returns up to limit ids of aggregates of aggType with
// outcomes still pending, those queued longest first.
func (l *Ledger) PendingAggregates(ctx context.Context, aggType string, limit int) ([]string, error) {
	rows, err := l.db.Query(ctx, `SELECT aggregate_id FROM pending_outcomes WHERE aggregate_type = $1
		GROUP BY aggregate_id ORDER BY min(id) LIMIT $2`, aggType, limit)
	if err != nil {
		return nil, fmt.Errorf("pending %s outcomes: %w", aggType, err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}
