// Package ledger is the payment orchestrator's record in Postgres: which
// GoCardless customer, bank account and mandate each ERP customer has, one
// collection per ERP invoice and one refund per ERP refund request, the
// payouts GoCardless paid with their items and deposits, the events
// already applied, the exceptions waiting for an operator, and the
// intents of outside calls in progress (leases, pending ERP outcomes).
// Every change is written together with its audit entry in one
// transaction, so the audit trail is never behind the state it explains,
// and no transaction here is ever held open across a network call: the
// orchestrator's package doc says how intents make each call once.
//
// Rows that other rows refer to (collections, refunds, payouts) are locked
// FOR NO KEY UPDATE, never FOR UPDATE: nothing here deletes one, and the
// weaker lock lets the foreign-key checks of a row that refers to them (a
// payout's items, a refund, a deposit) pass instead of queueing behind it.
// FOR UPDATE made a payout storing its items and a refund event (refund
// row, then its collection) wait on each other in opposite order: a
// deadlock, and the payout's event retried 5 s later. One change takes the
// stronger lock by itself: an operator's replay gives the collection a new
// idempotency_key, a column with a unique index, so its UPDATE waits for
// such checks to finish; the replay holds nothing a payout waits for.
package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/trace"

	"github.com/ml-connector/ml-connector/platform/audit"
	"github.com/ml-connector/ml-connector/platform/database"
)

// Actor is who the orchestrator's audit entries name.
const Actor = "payment-orchestrator"

// Ledger reads and writes the orchestrator's tables.
type Ledger struct {
	db        *pgxpool.Pool
	starts    *group[collectionStart, collectionStarted]
	completes *group[collectionSave, bool]
	customers *group[CustomerKey, CustomerLink]
}

// Batches of the hot path: up to batchSize calls share a transaction, and
// up to batchesInFlight such transactions run at once, per kind. Fewer
// lanes make bigger batches (each lane's round trips serve more calls);
// two keep one batch waiting on a row lock from holding up all the rest.
const (
	batchSize       = 64
	batchesInFlight = 2
)

// New returns a ledger over db.
func New(db *pgxpool.Pool) *Ledger {
	l := &Ledger{db: db}
	l.starts = &group[collectionStart, collectionStarted]{name: "start_collections", max: batchesInFlight, size: batchSize,
		run: func(ctx context.Context, starts []collectionStart) (res []collectionStarted, err error) {
			err = l.TxUnflushed(ctx, func(tx pgx.Tx) error {
				res, err = startCollections(ctx, tx, starts)
				return err
			})
			return res, err
		}}
	l.completes = &group[collectionSave, bool]{name: "complete_collections", max: batchesInFlight, size: batchSize,
		run: func(ctx context.Context, saves []collectionSave) (res []bool, err error) {
			err = l.Tx(ctx, func(tx pgx.Tx) error {
				res, err = saveCollections(ctx, tx, saves, true)
				return err
			})
			return res, err
		}}
	l.customers = &group[CustomerKey, CustomerLink]{name: "read_customers", max: batchesInFlight, size: batchSize,
		run: func(ctx context.Context, keys []CustomerKey) ([]CustomerLink, error) {
			return readCustomers(ctx, db, keys)
		}}
	return l
}

// DB is the pool, for callers composing their own transactions.
func (l *Ledger) DB() *pgxpool.Pool { return l.db }

// Tx runs fn in a transaction.
func (l *Ledger) Tx(ctx context.Context, fn func(pgx.Tx) error) error {
	return database.WithTx(ctx, l.db, fn)
}

// TxUnflushed runs fn in a transaction whose commit does not wait for
// its WAL to reach disk (synchronous_commit off), set in the same round
// trip as BEGIN. Only for writes that a crash may lose because a later,
// durable write repeats or covers them.
func (l *Ledger) TxUnflushed(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, l.db, pgx.TxOptions{BeginQuery: "BEGIN; SET LOCAL synchronous_commit = off"}, fn)
}

// ErrNotFound is returned when a looked-up row does not exist.
var ErrNotFound = errors.New("not found")

// Change is the audit payload of a state change: what it was, what it
// became, why, and the trace it happened in.
type Change struct {
	Before  any    `json:"before,omitempty"`
	After   any    `json:"after,omitempty"`
	Cause   string `json:"cause,omitempty"`
	TraceID string `json:"trace_id,omitempty"`
}

// record appends an audit entry for aggregate in tx.
func record(ctx context.Context, tx pgx.Tx, aggregateType, aggregateID, action string, c Change) error {
	return recordBy(ctx, tx, Actor, aggregateType, aggregateID, action, c)
}

// recordBy is record for a change actor (an operator) asked for.
func recordBy(ctx context.Context, tx pgx.Tx, actor, aggregateType, aggregateID, action string, c Change) error {
	e := entry(ctx, aggregateType, aggregateID, action, c)
	e.Actor = actor
	_, err := audit.Append(ctx, tx, e)
	return err
}

// entry is the audit entry of a change made in ctx's trace.
func entry(ctx context.Context, aggregateType, aggregateID, action string, c Change) audit.Entry {
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		c.TraceID = sc.TraceID().String()
	}
	return audit.Entry{AggregateType: aggregateType, AggregateID: aggregateID, Actor: Actor, Action: action, Payload: c}
}

// MarkProcessed records that an event was applied. It reports false when
// it had been already: the caller then changes nothing. Called inside the
// transaction of the effect, so a crash before commit leaves it unapplied.
func MarkProcessed(ctx context.Context, tx pgx.Tx, source, id string) (bool, error) {
	tag, err := tx.Exec(ctx, `INSERT INTO processed_events (source, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, source, id)
	if err != nil {
		return false, fmt.Errorf("mark %s event %s processed: %w", source, id, err)
	}
	return tag.RowsAffected() == 1, nil
}

// Exception is work for an operator.
type Exception struct {
	ID            int64          `json:"id"`
	Kind          string         `json:"kind"` // e.g. invalid_invoice, mandate_unusable, gocardless_refused, erp_posting_refused, dead_letter
	AggregateType string         `json:"aggregate_type"`
	AggregateID   string         `json:"aggregate_id"`
	Reason        string         `json:"reason"`
	Detail        map[string]any `json:"detail"`
	Status        string         `json:"status"`
	DedupKey      string         `json:"dedup_key,omitempty"`
	CreatedAt     time.Time      `json:"created_at"`
	UpdatedAt     time.Time      `json:"updated_at"`
}

// RaiseException opens an exception unless one with the same dedup key
// exists, and audits it: the one way an exception is opened. It returns
// the new exception's id, or 0 when one with the dedup key was open.
func RaiseException(ctx context.Context, tx pgx.Tx, e Exception) (int64, error) {
	if e.Detail == nil {
		e.Detail = map[string]any{}
	}
	var dedup *string
	if e.DedupKey != "" {
		dedup = &e.DedupKey
	}
	var id int64
	err := tx.QueryRow(ctx, `
		INSERT INTO exceptions (kind, aggregate_type, aggregate_id, reason, detail, dedup_key)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING
		RETURNING id`, e.Kind, e.AggregateType, e.AggregateID, e.Reason, e.Detail, dedup).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("raise exception: %w", err)
	}
	return id, record(ctx, tx, e.AggregateType, e.AggregateID, "exception.raised",
		Change{After: map[string]any{"exception": id, "kind": e.Kind, "reason": e.Reason}, Cause: e.Reason})
}

// ExceptionsOf lists the exceptions of one aggregate, newest first;
// status "" means all.
func (l *Ledger) ExceptionsOf(ctx context.Context, aggType, aggID, status string) ([]Exception, error) {
	return l.exceptions(ctx, `WHERE ($1 = '' OR status = $1) AND aggregate_type = $2 AND aggregate_id = $3`, status, aggType, aggID)
}

// Exceptions lists exceptions, newest first; status "" means all.
func (l *Ledger) Exceptions(ctx context.Context, status string) ([]Exception, error) {
	return l.exceptions(ctx, `WHERE $1 = '' OR status = $1`, status)
}

func (l *Ledger) exceptions(ctx context.Context, where string, args ...any) ([]Exception, error) {
	rows, err := l.db.Query(ctx, `
		SELECT id, kind, aggregate_type, aggregate_id, reason, detail, status, coalesce(dedup_key, ''), created_at, updated_at
		FROM exceptions `+where+` ORDER BY id DESC`, args...)
	if err != nil {
		return nil, fmt.Errorf("list exceptions: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Exception, error) {
		var e Exception
		err := r.Scan(&e.ID, &e.Kind, &e.AggregateType, &e.AggregateID, &e.Reason, &e.Detail, &e.Status, &e.DedupKey, &e.CreatedAt, &e.UpdatedAt)
		return e, err
	})
}

// SetExceptionStatus moves an exception to status (replayed, escalated,
// resolved) and audits who did it and why.
func SetExceptionStatus(ctx context.Context, tx pgx.Tx, id int64, status, actor, note string) error {
	var before, aggType, aggID string
	err := tx.QueryRow(ctx, `SELECT status, aggregate_type, aggregate_id FROM exceptions WHERE id = $1 FOR UPDATE`, id).Scan(&before, &aggType, &aggID)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("exception %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `UPDATE exceptions SET status = $2 WHERE id = $1`, id, status); err != nil {
		return err
	}
	// The exception's id is in the payload: an aggregate may have several
	// exceptions, and each one's notes are listed with it.
	_, err = audit.Append(ctx, tx, audit.Entry{AggregateType: aggType, AggregateID: aggID, Actor: actor, Action: "exception." + status,
		Payload: struct {
			Change
			Exception int64 `json:"exception"`
		}{Change{Before: before, After: status, Cause: note}, id}})
	return err
}

// IgnoreEvent records, in the transaction that marks it processed, that a
// GoCardless event was received and deliberately not applied, and why.
func IgnoreEvent(ctx context.Context, tx pgx.Tx, eventID, resourceType, action, resourceID, reason string) error {
	var id any
	if resourceID != "" {
		id = resourceID
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO gc_ignored_events (event_id, resource_type, action, resource_id, reason)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING`,
		eventID, resourceType, action, id, reason); err != nil {
		return fmt.Errorf("record ignored event %s: %w", eventID, err)
	}
	return nil
}

// ExceptionNote is what an operator wrote when changing an exception's
// status.
type ExceptionNote struct {
	Exception int64     `json:"exception_id"`
	Status    string    `json:"status"`
	Author    string    `json:"author"`
	Text      string    `json:"text"`
	At        time.Time `json:"at"`
}

// ExceptionNotes returns the notes on the given exceptions, oldest first,
// read from the audit log (where SetExceptionStatus records every status
// change with its note). Entries written before the exception id was
// recorded belong to every exception of their aggregate.
func (l *Ledger) ExceptionNotes(ctx context.Context, exceptionIDs []int64) (map[int64][]ExceptionNote, error) {
	out := map[int64][]ExceptionNote{}
	if len(exceptionIDs) == 0 {
		return out, nil
	}
	rows, err := l.db.Query(ctx, `
		SELECT e.id, substr(a.action, 11), a.actor, coalesce(a.payload->>'cause', ''), a.occurred_at
		FROM exceptions e
		JOIN audit_log a ON a.aggregate_type = e.aggregate_type AND a.aggregate_id = e.aggregate_id
		WHERE e.id = ANY($1) AND a.action IN ('exception.escalated', 'exception.resolved', 'exception.replayed')
		  AND coalesce(a.payload->>'exception', e.id::text) = e.id::text
		ORDER BY a.occurred_at, a.id`, exceptionIDs)
	if err != nil {
		return nil, fmt.Errorf("exception notes: %w", err)
	}
	notes, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ExceptionNote, error) {
		var n ExceptionNote
		return n, r.Scan(&n.Exception, &n.Status, &n.Author, &n.Text, &n.At)
	})
	if err != nil {
		return nil, fmt.Errorf("exception notes: %w", err)
	}
	for _, n := range notes {
		out[n.Exception] = append(out[n.Exception], n)
	}
	return out, nil
}
