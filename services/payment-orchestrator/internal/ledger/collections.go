package ledger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/ml-connector/ml-connector/platform/audit"
)

// InvoiceKey identifies an ERP invoice.
type InvoiceKey struct {
	ERP          string
	ConnectionID int64
	Company      string
	InvoiceID    string
}

func (k InvoiceKey) aggregateID() string {
	return fmt.Sprintf("%s:%d:%s:%s", k.ERP, k.ConnectionID, k.Company, k.InvoiceID)
}

// Collection is one ERP invoice being collected.
type Collection struct {
	ID             int64
	Key            InvoiceKey
	InvoiceNo      string
	DocType        string
	Suffix         string
	CustomerID     string
	BusinessUnit   string
	Kind           string // payment or subscription
	AmountMinor    int64
	Currency       string
	DueDate        time.Time
	ChargeDate     time.Time
	Reference      string
	State          CollectionState
	GCConnectionID int64
	GCPaymentID    string
	GCSubscription string
	GCMandateID    string
	// IdempotencyKey is derived from the invoice and the attempt, so any
	// retry of the same attempt, after any crash, asks GoCardless for the
	// same payment.
	IdempotencyKey     string
	Attempts           int
	FailureCause       string
	FailureReasonCode  string
	FailureDescription string
	ERPVersion         string
	LastEventAt        time.Time
	// PostedOutcomes are the outcome kinds of the current attempt already
	// sent to the ERP.
	PostedOutcomes []string
	// TraceParent is the W3C traceparent of the span that started the
	// collection: GoCardless's events about it arrive in traces of their
	// own, whose spans link back to it (see Origin).
	TraceParent string
}

// PaymentKey is the idempotency key of attempt n of collecting invoice k.
func PaymentKey(k InvoiceKey, attempt int) string {
	return fmt.Sprintf("mlc:%s:%d:%s:%s:payment:%d", k.ERP, k.ConnectionID, k.Company, k.InvoiceID, attempt)
}

const collectionColumns = `id, erp, connection_id, company, invoice_id, invoice_no, doc_type, suffix, customer_id,
	coalesce(business_unit, ''), kind, amount_minor, currency, coalesce(due_date, '0001-01-01'::date),
	coalesce(charge_date, '0001-01-01'::date), coalesce(reference, ''), state, coalesce(gc_connection_id, 0),
	coalesce(gc_payment_id, ''), coalesce(gc_subscription_id, ''), coalesce(gc_mandate_id, ''), idempotency_key,
	attempts, coalesce(failure_cause, ''), coalesce(failure_reason_code, ''), coalesce(failure_description, ''),
	coalesce(erp_version, ''), coalesce(last_event_at, '0001-01-01'::timestamptz), posted_outcomes,
	coalesce(trace_parent, '')`

func scanCollection(row pgx.Row) (Collection, error) {
	var c Collection
	err := row.Scan(&c.ID, &c.Key.ERP, &c.Key.ConnectionID, &c.Key.Company, &c.Key.InvoiceID, &c.InvoiceNo, &c.DocType,
		&c.Suffix, &c.CustomerID, &c.BusinessUnit, &c.Kind, &c.AmountMinor, &c.Currency, &c.DueDate, &c.ChargeDate,
		&c.Reference, &c.State, &c.GCConnectionID, &c.GCPaymentID, &c.GCSubscription, &c.GCMandateID, &c.IdempotencyKey,
		&c.Attempts, &c.FailureCause, &c.FailureReasonCode, &c.FailureDescription, &c.ERPVersion, &c.LastEventAt, &c.PostedOutcomes, &c.TraceParent)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, ErrNotFound
	}
	return c, err
}

func dateOrNil(t time.Time) *time.Time {
	if t.Year() <= 1 {
		return nil
	}
	return &t
}

// StartCollection records c in state creating, with its idempotency key
// and the trace of ctx, before anything is asked of GoCardless. If the
// invoice already has a collection, that one is returned instead, as last
// committed, and started is false.
func StartCollection(ctx context.Context, tx pgx.Tx, c Collection) (_ Collection, started bool, err error) {
	res, err := startCollections(ctx, tx, []collectionStart{{ctx: ctx, c: c}})
	if err != nil {
		return c, false, err
	}
	return res[0].c, res[0].started, nil
}

// collectionStart is one StartCollection of a batch; ctx carries its trace.
type collectionStart struct {
	ctx context.Context
	c   Collection
}

type collectionStarted struct {
	c       Collection
	started bool
}

// startCollections is StartCollection for several invoices, in the round
// trips of one. New rows are locked in the order of their aggregate ids,
// as the audit heads are, so that overlapping batches queue instead of
// deadlocking.
func startCollections(ctx context.Context, tx pgx.Tx, starts []collectionStart) ([]collectionStarted, error) {
	res := make([]collectionStarted, len(starts))
	order := byAggregate(len(starts), func(i int) string { return starts[i].c.Key.aggregateID() })
	inserts := &pgx.Batch{}
	for _, i := range order {
		c := &starts[i].c
		c.State, c.Attempts = CollectionCreating, 1
		c.IdempotencyKey = PaymentKey(c.Key, c.Attempts)
		c.TraceParent = traceParent(starts[i].ctx)
		// A new row comes back from the insert itself; only an existing
		// one needs reading after. Any unique index is an arbiter, not
		// only the invoice's: the idempotency key, a function of the
		// invoice, is unique too, and a start racing another for the same
		// invoice could meet the other's row there first, where an
		// ON CONFLICT naming only the invoice's index raises a
		// unique violation instead of doing nothing (PostgreSQL, INSERT:
		// only the conflict target's index is checked for arbitration).
		inserts.Queue(`
			INSERT INTO collections (erp, connection_id, company, invoice_id, invoice_no, doc_type, suffix, customer_id,
				business_unit, kind, amount_minor, currency, due_date, charge_date, reference, state, state_rank,
				gc_connection_id, gc_mandate_id, idempotency_key, attempts, erp_version, trace_parent)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, nullif($9, ''), $10, $11, $12, $13, $14, nullif($15, ''), 'creating', 0,
				nullif($16, 0), nullif($17, ''), $18, $19, nullif($20, ''), nullif($21, ''))
			ON CONFLICT DO NOTHING
			RETURNING `+collectionColumns,
			c.Key.ERP, c.Key.ConnectionID, c.Key.Company, c.Key.InvoiceID, c.InvoiceNo, c.DocType, c.Suffix, c.CustomerID,
			c.BusinessUnit, c.Kind, c.AmountMinor, c.Currency, dateOrNil(c.DueDate), dateOrNil(c.ChargeDate), c.Reference,
			c.GCConnectionID, c.GCMandateID, c.IdempotencyKey, c.Attempts, c.ERPVersion, c.TraceParent,
		).QueryRow(func(row pgx.Row) error {
			locked, err := scanCollection(row)
			res[i] = collectionStarted{c: locked, started: err == nil}
			if errors.Is(err, ErrNotFound) {
				return nil
			}
			return err
		})
	}
	if err := tx.SendBatch(ctx, inserts).Close(); err != nil {
		return nil, fmt.Errorf("start collections: %w", err)
	}

	existing := &pgx.Batch{}
	var entries []audit.Entry
	for _, i := range order {
		c := starts[i].c
		if res[i].started {
			entries = append(entries, entry(starts[i].ctx, "collection", c.Key.aggregateID(), "collection.creating",
				Change{After: collectionView(res[i].c), Cause: "invoice ready for collection"}))
			continue
		}
		// Read, not locked: the caller decides from the last committed
		// state, and a lock would stall the whole batch behind a
		// reconciliation that holds the row while it posts to the ERP.
		existing.Queue(`SELECT `+collectionColumns+` FROM collections
			WHERE connection_id = $1 AND company = $2 AND invoice_id = $3`,
			c.Key.ConnectionID, c.Key.Company, c.Key.InvoiceID).QueryRow(func(row pgx.Row) error {
			var err error
			res[i].c, err = scanCollection(row)
			return err
		})
	}
	if existing.Len() > 0 {
		if err := tx.SendBatch(ctx, existing).Close(); err != nil {
			return nil, fmt.Errorf("read existing collections: %w", err)
		}
	}
	if _, err := audit.AppendAll(ctx, tx, entries); err != nil {
		return nil, err
	}
	return res, nil
}

// byAggregate returns the indexes 0..n-1 ordered by the aggregate id of
// each: the order in which a batch takes its row locks.
func byAggregate(n int, id func(int) string) []int {
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(id(a), id(b)) })
	return order
}

// LockCollection locks and returns the collection of an invoice.
func LockCollection(ctx context.Context, tx pgx.Tx, k InvoiceKey) (Collection, error) {
	c, err := scanCollection(tx.QueryRow(ctx, `SELECT `+collectionColumns+` FROM collections
		WHERE connection_id = $1 AND company = $2 AND invoice_id = $3 FOR NO KEY UPDATE`, k.ConnectionID, k.Company, k.InvoiceID))
	if err != nil && !errors.Is(err, ErrNotFound) {
		err = fmt.Errorf("lock collection %s: %w", k.aggregateID(), err)
	}
	return c, err
}

// LockCollectionByPayment locks the collection a GoCardless payment belongs to.
func LockCollectionByPayment(ctx context.Context, tx pgx.Tx, paymentID string) (Collection, error) {
	return scanCollection(tx.QueryRow(ctx, `SELECT `+collectionColumns+` FROM collections WHERE gc_payment_id = $1 FOR NO KEY UPDATE`, paymentID))
}

// LockCollectionBySubscription locks the collection of a GoCardless subscription.
func LockCollectionBySubscription(ctx context.Context, tx pgx.Tx, subscriptionID string) (Collection, error) {
	return scanCollection(tx.QueryRow(ctx, `SELECT `+collectionColumns+` FROM collections WHERE gc_subscription_id = $1 FOR NO KEY UPDATE`, subscriptionID))
}

// Collection reads a collection without locking it.
func (l *Ledger) Collection(ctx context.Context, k InvoiceKey) (Collection, error) {
	return scanCollection(l.db.QueryRow(ctx, `SELECT `+collectionColumns+` FROM collections
		WHERE connection_id = $1 AND company = $2 AND invoice_id = $3`, k.ConnectionID, k.Company, k.InvoiceID))
}

// CollectionByID reads a collection by its id.
func (l *Ledger) CollectionByID(ctx context.Context, id int64) (Collection, error) {
	return scanCollection(l.db.QueryRow(ctx, `SELECT `+collectionColumns+` FROM collections WHERE id = $1`, id))
}

// SaveCollection writes c (locked in tx) and audits the change.
func SaveCollection(ctx context.Context, tx pgx.Tx, before, c Collection, action, cause string) error {
	_, err := saveCollections(ctx, tx, []collectionSave{{ctx: ctx, before: before, after: c, action: action, cause: cause}}, false)
	return err
}

// StartCollection is StartCollection in a transaction of its own, whose
// commit need not be flushed (see TxUnflushed), or shared with concurrent
// calls.
func (l *Ledger) StartCollection(ctx context.Context, c Collection) (_ Collection, started bool, err error) {
	res, err := l.starts.do(ctx, collectionStart{ctx: ctx, c: c})
	return res.c, res.started, err
}

// CompleteCollection writes c over a collection still in state creating,
// and audits it, in a durable transaction of its own or shared with
// concurrent calls. The update takes the lock and re-checks the state
// itself, without a locking read first; it reports false, changing
// nothing, when another delivery completed the collection first.
func (l *Ledger) CompleteCollection(ctx context.Context, before, c Collection, action, cause string) (bool, error) {
	return l.completes.do(ctx, collectionSave{ctx: ctx, before: before, after: c, action: action, cause: cause})
}

// collectionSave is one change of a batch; ctx carries its trace.
type collectionSave struct {
	ctx           context.Context
	before, after Collection
	action, cause string
}

// saveCollections writes several changes in the round trips of one, in
// the order of their aggregate ids (see startCollections); onlyCreating
// skips, and reports false for, collections no longer in state creating.
func saveCollections(ctx context.Context, tx pgx.Tx, saves []collectionSave, onlyCreating bool) ([]bool, error) {
	saved := make([]bool, len(saves))
	for _, s := range saves {
		if err := CheckCollection(s.before.State, s.after.State); err != nil {
			return nil, fmt.Errorf("save collection %s: %w", s.after.Key.aggregateID(), err)
		}
	}
	updates := &pgx.Batch{}
	order := byAggregate(len(saves), func(i int) string { return saves[i].after.Key.aggregateID() })
	for _, i := range order {
		c := saves[i].after
		var lastEvent *time.Time
		if c.LastEventAt.Year() > 1 {
			lastEvent = &c.LastEventAt
		}
		updates.Queue(`
			UPDATE collections SET state = $2, state_rank = $3, gc_payment_id = nullif($4, ''),
				gc_subscription_id = nullif($5, ''), gc_mandate_id = nullif($6, ''), charge_date = $7,
				idempotency_key = $8, attempts = $9, failure_cause = nullif($10, ''), failure_reason_code = nullif($11, ''),
				failure_description = nullif($12, ''), last_event_at = $13, reference = nullif($14, ''),
				gc_connection_id = nullif($15, 0), posted_outcomes = $16
			WHERE id = $1 AND (NOT $17 OR state = 'creating')`, c.ID, c.State, c.State.Rank(), c.GCPaymentID, c.GCSubscription, c.GCMandateID,
			dateOrNil(c.ChargeDate), c.IdempotencyKey, c.Attempts, c.FailureCause, c.FailureReasonCode,
			c.FailureDescription, lastEvent, c.Reference, c.GCConnectionID, nonNil(c.PostedOutcomes), onlyCreating,
		).Exec(func(tag pgconn.CommandTag) error {
			saved[i] = tag.RowsAffected() > 0
			return nil
		})
	}
	if err := tx.SendBatch(ctx, updates).Close(); err != nil {
		if len(saves) == 1 {
			return nil, fmt.Errorf("save collection %s: %w", saves[0].after.Key.aggregateID(), err)
		}
		return nil, fmt.Errorf("save %d collections: %w", len(saves), err)
	}
	var entries []audit.Entry
	for _, i := range order {
		if s := saves[i]; saved[i] {
			entries = append(entries, entry(s.ctx, "collection", s.after.Key.aggregateID(), s.action,
				Change{Before: collectionView(s.before), After: collectionView(s.after), Cause: s.cause}))
		}
	}
	if _, err := audit.AppendAll(ctx, tx, entries); err != nil {
		return nil, err
	}
	return saved, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// AggregateID is the audit-log id of a collection.
func (c Collection) AggregateID() string { return c.Key.aggregateID() }

// Origin is the span context of the span that started the collection;
// invalid when none was recorded.
func (c Collection) Origin() trace.SpanContext {
	if c.TraceParent == "" {
		return trace.SpanContext{}
	}
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": c.TraceParent})
	return trace.SpanContextFromContext(ctx)
}

// traceParent is the W3C traceparent of ctx's span, or "" without one.
func traceParent(ctx context.Context) string {
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	return carrier["traceparent"]
}

func collectionView(c Collection) map[string]any {
	v := map[string]any{
		"state": c.State, "amount_minor": c.AmountMinor, "currency": c.Currency, "attempts": c.Attempts,
		"idempotency_key": c.IdempotencyKey,
	}
	for k, s := range map[string]string{"gc_payment": c.GCPaymentID, "gc_subscription": c.GCSubscription,
		"failure_cause": c.FailureCause, "reason_code": c.FailureReasonCode} {
		if s != "" {
			v[k] = s
		}
	}
	if c.ChargeDate.Year() > 1 {
		v["charge_date"] = c.ChargeDate.Format(time.DateOnly)
	}
	if len(c.PostedOutcomes) > 0 {
		v["posted_outcomes"] = c.PostedOutcomes
	}
	return v
}

// LockCollectionByInvoice locks a collection by connection id, company
// and invoice id, as found in a GoCardless object's metadata.
func LockCollectionByInvoice(ctx context.Context, tx pgx.Tx, connectionID int64, company, invoiceID string) (Collection, error) {
	return LockCollection(ctx, tx, InvoiceKey{ConnectionID: connectionID, Company: company, InvoiceID: invoiceID})
}

// CollectionByPayment reads, without locking, the collection a GoCardless
// payment belongs to.
func (l *Ledger) CollectionByPayment(ctx context.Context, paymentID string) (Collection, error) {
	return scanCollection(l.db.QueryRow(ctx, `SELECT `+collectionColumns+` FROM collections WHERE gc_payment_id = $1`, paymentID))
}

// LockCollectionByID locks a collection by its id.
func LockCollectionByID(ctx context.Context, tx pgx.Tx, id int64) (Collection, error) {
	return scanCollection(tx.QueryRow(ctx, `SELECT `+collectionColumns+` FROM collections WHERE id = $1 FOR NO KEY UPDATE`, id))
}

// String is the invoice's identity, as in the audit log.
func (k InvoiceKey) String() string { return k.aggregateID() }
