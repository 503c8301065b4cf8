package ledger

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// PayoutState is where a stored GoCardless payout is (payouts.state).
type PayoutState string

// Payout states. A payout is stored as fetched and, in the same
// transaction, checked: its items not adding up to its amount leave it a
// mismatch; items it cannot post (amounts finer than the minor unit the
// ERP books) leave it fetched, with an exception saying why; otherwise
// its deposits are queued (posting), or there is nothing of ours in it
// (nothing_to_post). Posting ends posted, or refused when an ERP refused
// a deposit for good.
const (
	PayoutFetched       PayoutState = "fetched"
	PayoutMismatch      PayoutState = "mismatch"
	PayoutPosting       PayoutState = "posting"
	PayoutPosted        PayoutState = "posted"
	PayoutRefused       PayoutState = "refused"
	PayoutNothingToPost PayoutState = "nothing_to_post"
)

// CheckPayout is the payout state machine.
func CheckPayout(from, to PayoutState) error {
	ok := false
	switch from {
	case "":
		ok = to == PayoutFetched
	case PayoutFetched:
		ok = to == PayoutMismatch || to == PayoutPosting || to == PayoutNothingToPost
	case PayoutPosting:
		ok = to == PayoutPosted || to == PayoutRefused
	case PayoutRefused:
		ok = to == PayoutPosting // re-posted by an operator (RepostPayout)
	}
	if !ok && from != to {
		return fmt.Errorf("payout %s -> %s: %w", from, to, ErrIllegalTransition)
	}
	return nil
}

// Payout is a GoCardless payout as stored. Amounts are GoCardless's:
// *Minor integer minor units of Currency (FXAmountMinor of FXCurrency),
// *Tenths integer tenths of a minor unit (what payout items are given in).
type Payout struct {
	ID                  int64
	GCConnectionID      int64
	GCPayoutID          string
	CreditorID          string
	CreditorBankAccount string
	PayoutType          string
	Currency            string
	AmountMinor         int64
	DeductedFeesMinor   int64
	Reference           string
	ArrivalDate         time.Time // zero when GoCardless gave none
	GCStatus            string
	GCCreatedAt         time.Time
	FXCurrency          string
	FXAmountMinor       *int64
	// FXExchangeRate and FXEstimatedExchangeRate are decimal text as
	// GoCardless sent it ("" for null).
	FXExchangeRate          string
	FXEstimatedExchangeRate string
	TaxCurrency             string
	Metadata                map[string]string
	State                   PayoutState
	ItemsCount              int
	ItemsTotalTenths        int64
	FeesTotalTenths         int64
	UnmatchedCount          int
	EventID                 string
}

// PayoutItem is one payout item as stored, with what it was tied to.
type PayoutItem struct {
	Seq          int
	Type         string
	AmountTenths int64
	PaymentID    string
	MandateID    string
	RefundID     string          // GoCardless refund id
	Taxes        json.RawMessage // as GoCardless gave them; a JSON array
	// Tied to a collection (and so an ERP invoice), and to a refund of it
	// for refund items; unmatched items have neither.
	Matched         bool
	CollectionID    int64
	RefundRowID     int64
	ERP             string
	ERPConnectionID int64
	Company         string
	InvoiceID       string
	// Duplicate marks a payment_paid_out item whose payment an item
	// stored before it pays out already (payout_items.duplicate): at most
	// one item per payment is not a duplicate (the database's index
	// payout_items_paid_out_once; see IsPaidOutTwice).
	Duplicate bool
}

// PayoutDeposit is one deposit of a payout into one ERP connection and
// company (a payout_postings row), posted through the outbox under
// OutcomeID.
type PayoutDeposit struct {
	ERP             string
	ERPConnectionID int64
	Company         string
	OutcomeID       string
	LinesTenths     int64
	FeesTenths      int64
	LineCount       int
	// Request is the marshalled erp-poster request, kept for a re-post.
	Request []byte
}

// PayoutAggregate is the audit and outbox aggregate type of a payout,
// whose aggregate id is the GoCardless payout id.
const PayoutAggregate = "payout"

// PayoutByGC reads a stored payout by its GoCardless id.
func (l *Ledger) PayoutByGC(ctx context.Context, gcPayoutID string) (Payout, error) {
	var p Payout
	var arrival *time.Time
	var fxRate, fxEst *string
	err := l.db.QueryRow(ctx, `
		SELECT id, gc_connection_id, gc_payout_id, gc_creditor_id, coalesce(gc_creditor_bank_account_id, ''), payout_type,
			currency, amount_minor, deducted_fees_minor, reference, arrival_date, gc_status, gc_created_at,
			coalesce(fx_currency, ''), fx_amount_minor, fx_exchange_rate::text, fx_estimated_exchange_rate::text,
			coalesce(tax_currency, ''), metadata, state, items_count, items_total_tenths, fees_total_tenths, unmatched_count, event_id
		FROM payouts WHERE gc_payout_id = $1`, gcPayoutID).Scan(&p.ID, &p.GCConnectionID, &p.GCPayoutID, &p.CreditorID,
		&p.CreditorBankAccount, &p.PayoutType, &p.Currency, &p.AmountMinor, &p.DeductedFeesMinor, &p.Reference, &arrival,
		&p.GCStatus, &p.GCCreatedAt, &p.FXCurrency, &p.FXAmountMinor, &fxRate, &fxEst, &p.TaxCurrency, &p.Metadata,
		&p.State, &p.ItemsCount, &p.ItemsTotalTenths, &p.FeesTotalTenths, &p.UnmatchedCount, &p.EventID)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, ErrNotFound
	}
	if err != nil {
		return p, fmt.Errorf("payout %s: %w", gcPayoutID, err)
	}
	if arrival != nil {
		p.ArrivalDate = *arrival
	}
	if fxRate != nil {
		p.FXExchangeRate = *fxRate
	}
	if fxEst != nil {
		p.FXEstimatedExchangeRate = *fxEst
	}
	return p, nil
}

// InsertPayout stores a payout in state fetched with all its items, and
// audits it. It reports false, storing nothing, when the payout is stored
// already (another event or replica got there first).
func InsertPayout(ctx context.Context, tx pgx.Tx, p Payout, items []PayoutItem) (Payout, bool, error) {
	p.State = PayoutFetched
	if p.Metadata == nil {
		p.Metadata = map[string]string{}
	}
	err := tx.QueryRow(ctx, `
		INSERT INTO payouts (gc_connection_id, gc_payout_id, gc_creditor_id, gc_creditor_bank_account_id, payout_type, currency,
			amount_minor, deducted_fees_minor, reference, arrival_date, gc_status, gc_created_at, fx_currency, fx_amount_minor,
			fx_exchange_rate, fx_estimated_exchange_rate, tax_currency, metadata, state, items_count, items_total_tenths,
			fees_total_tenths, unmatched_count, event_id)
		VALUES ($1, $2, $3, nullif($4, ''), $5, $6, $7, $8, $9, $10, $11, $12, nullif($13, ''), $14,
			nullif($15, '')::numeric, nullif($16, '')::numeric, nullif($17, ''), $18, $19, $20, $21, $22, $23, $24)
		ON CONFLICT (gc_payout_id) DO NOTHING
		RETURNING id`,
		p.GCConnectionID, p.GCPayoutID, p.CreditorID, p.CreditorBankAccount, p.PayoutType, p.Currency, p.AmountMinor,
		p.DeductedFeesMinor, p.Reference, dateOrNil(p.ArrivalDate), p.GCStatus, p.GCCreatedAt, p.FXCurrency, p.FXAmountMinor,
		p.FXExchangeRate, p.FXEstimatedExchangeRate, p.TaxCurrency, p.Metadata, p.State, p.ItemsCount, p.ItemsTotalTenths,
		p.FeesTotalTenths, p.UnmatchedCount, p.EventID).Scan(&p.ID)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, false, nil
	}
	if err != nil {
		return p, false, fmt.Errorf("store payout %s: %w", p.GCPayoutID, err)
	}
	rows := make([][]any, len(items))
	for i, it := range items {
		taxes := it.Taxes
		if len(taxes) == 0 {
			taxes = json.RawMessage(`[]`)
		}
		match := "unmatched"
		if it.Matched {
			match = "matched"
		}
		rows[i] = []any{p.ID, it.Seq, it.Type, it.AmountTenths, nilIfEmpty(it.PaymentID), nilIfEmpty(it.MandateID),
			nilIfEmpty(it.RefundID), taxes, match, nilIfZero(it.CollectionID), nilIfZero(it.RefundRowID),
			nilIfEmpty(it.ERP), nilIfZero(it.ERPConnectionID), nilIfEmpty(it.Company), nilIfEmpty(it.InvoiceID), it.Duplicate}
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"payout_items"}, []string{"payout_id", "seq", "type", "amount_tenths",
		"gc_payment_id", "gc_mandate_id", "gc_refund_id", "taxes", "match", "collection_id", "refund_id", "erp",
		"erp_connection_id", "company", "invoice_id", "duplicate"}, pgx.CopyFromRows(rows)); err != nil {
		return p, false, fmt.Errorf("store %d items of payout %s: %w", len(items), p.GCPayoutID, err)
	}
	return p, true, record(ctx, tx, PayoutAggregate, p.GCPayoutID, "payout.fetched",
		Change{After: payoutView(p), Cause: "gocardless event " + p.EventID + ": payout and its items fetched"})
}

// SetPayoutState moves a payout (stored in tx) to state and audits why.
func SetPayoutState(ctx context.Context, tx pgx.Tx, p Payout, to PayoutState, cause string) (Payout, error) {
	if err := CheckPayout(p.State, to); err != nil {
		return p, fmt.Errorf("payout %s: %w", p.GCPayoutID, err)
	}
	if _, err := tx.Exec(ctx, `UPDATE payouts SET state = $2, posted_at = CASE WHEN $2 = 'posted' THEN now() END WHERE id = $1`,
		p.ID, to); err != nil {
		return p, fmt.Errorf("payout %s -> %s: %w", p.GCPayoutID, to, err)
	}
	before := p
	p.State = to
	return p, record(ctx, tx, PayoutAggregate, p.GCPayoutID, "payout."+string(to),
		Change{Before: map[string]any{"state": before.State}, After: map[string]any{"state": to}, Cause: cause})
}

// QueuePayoutPosting records one deposit of a payout in tx; the caller
// queues its outcome (QueueOutcome, kind payout) in the same transaction.
// sent is what the request carries beyond the row (the whole minor units
// it was rounded to), for the audit entry.
func QueuePayoutPosting(ctx context.Context, tx pgx.Tx, p Payout, d PayoutDeposit, sent map[string]any) error {
	if _, err := tx.Exec(ctx, `
		INSERT INTO payout_postings (payout_id, erp, erp_connection_id, company, outcome_id, lines_tenths, fees_tenths, line_count, state, request)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'queued', $9)`,
		p.ID, d.ERP, d.ERPConnectionID, d.Company, d.OutcomeID, d.LinesTenths, d.FeesTenths, d.LineCount, d.Request); err != nil {
		return fmt.Errorf("queue deposit %s: %w", d.OutcomeID, err)
	}
	after := map[string]any{
		"outcome_id": d.OutcomeID, "erp": d.ERP, "connection_id": d.ERPConnectionID, "company": d.Company,
		"lines_tenths": d.LinesTenths, "fees_tenths": d.FeesTenths, "lines": d.LineCount,
	}
	maps.Copy(after, sent)
	return record(ctx, tx, PayoutAggregate, p.GCPayoutID, "payout.deposit_queued", Change{After: after, Cause: "deposit for erp-poster"})
}

// PayoutOutcomePosted is OutcomePosted for a payout's deposit: in the same
// transaction the deposit is marked posted (or refused), and the payout
// posted once none of its deposits is queued any more (refused if one
// was refused). A crash can therefore never leave the outbox emptied and
// the payout still posting.
func (l *Ledger) PayoutOutcomePosted(ctx context.Context, o PendingOutcome, erpReference string, refusal *Exception) error {
	return l.Tx(ctx, func(tx pgx.Tx) error {
		pending, err := outcomePosted(ctx, tx, o, erpReference, refusal)
		if err != nil || !pending {
			return err
		}
		state := "posted"
		if refusal != nil {
			state = "refused"
		}
		if _, err := tx.Exec(ctx, `UPDATE payout_postings SET state = $2, erp_reference = nullif($3, ''),
			posted_at = CASE WHEN $2 = 'posted' THEN now() END WHERE outcome_id = $1 AND state = 'queued'`,
			o.OutcomeID, state, erpReference); err != nil {
			return fmt.Errorf("deposit %s %s: %w", o.OutcomeID, state, err)
		}
		var p Payout
		var queued, refused int
		err = tx.QueryRow(ctx, `SELECT p.id, p.gc_payout_id, p.state, p.event_id FROM payouts p
			WHERE p.id = (SELECT payout_id FROM payout_postings WHERE outcome_id = $1) FOR NO KEY UPDATE`, o.OutcomeID).Scan(&p.ID, &p.GCPayoutID, &p.State, &p.EventID)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("deposit %s: no such payout posting", o.OutcomeID)
		}
		if err == nil {
			err = tx.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 'queued'), count(*) FILTER (WHERE state = 'refused')
				FROM payout_postings WHERE payout_id = $1`, p.ID).Scan(&queued, &refused)
		}
		if err != nil {
			return fmt.Errorf("payout of deposit %s: %w", o.OutcomeID, err)
		}
		if queued > 0 || p.State != PayoutPosting {
			return nil
		}
		if refused > 0 {
			_, err = SetPayoutState(ctx, tx, p, PayoutRefused, fmt.Sprintf("%d deposit(s) refused by the ERP", refused))
			return err
		}
		_, err = SetPayoutState(ctx, tx, p, PayoutPosted, "every deposit written by erp-poster")
		return err
	})
}

// ErrNotRepostable: the payout has no deposit an operator may post again.
var ErrNotRepostable = errors.New("payout cannot be re-posted")

// RepostPayout queues the deposits of a payout an ERP refused, or whose
// posting stopped (its retries ran out), for erp-poster again (the
// orchestrator's payout flush posts them), under
// their own outcome ids: erp-poster's idempotency key, so a deposit the
// ERP has is answered from its record and never made twice. A refused
// payout is posting again. actor is audited. It returns the number of
// deposits queued; a payout in any other state is ErrNotRepostable,
// saying why.
func (l *Ledger) RepostPayout(ctx context.Context, gcPayoutID, actor, note string) (int, error) {
	var n int
	err := l.Tx(ctx, func(tx pgx.Tx) error {
		n = 0
		var p Payout
		err := tx.QueryRow(ctx, `SELECT id, gc_payout_id, state, event_id FROM payouts WHERE gc_payout_id = $1 FOR NO KEY UPDATE`,
			gcPayoutID).Scan(&p.ID, &p.GCPayoutID, &p.State, &p.EventID)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("payout %s: %w", gcPayoutID, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("payout %s: %w", gcPayoutID, err)
		}
		switch p.State {
		case PayoutRefused, PayoutPosting:
		case PayoutFetched:
			// No deposit was made, and none can be: GoCardless never
			// changes a payout's items (a correction comes as items of a
			// later payout, stored and posted as that payout), so what
			// kept this one back holds for good.
			return fmt.Errorf("payout %s is fetched: stored, not posted, for the reason its exception gives (payout_fractional_amount, payout_too_large or payout_duplicate_payment); "+
				"GoCardless never changes a payout's items, so no deposit can be made of it: book it in the ERP by hand, then resolve the exception: %w", gcPayoutID, ErrNotRepostable)
		case PayoutMismatch:
			return fmt.Errorf("payout %s does not add up (payout_mismatch): nothing was posted: %w", gcPayoutID, ErrNotRepostable)
		default:
			return fmt.Errorf("payout %s is %s: nothing to post again: %w", gcPayoutID, p.State, ErrNotRepostable)
		}
		rows, err := tx.Query(ctx, `SELECT outcome_id, state, request FROM payout_postings
			WHERE payout_id = $1 AND state <> 'posted' ORDER BY erp_connection_id, company`, p.ID)
		if err != nil {
			return fmt.Errorf("deposits of payout %s: %w", gcPayoutID, err)
		}
		type posting struct {
			outcomeID, state string
			request          []byte
		}
		postings, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (posting, error) {
			var d posting
			return d, r.Scan(&d.outcomeID, &d.state, &d.request)
		})
		if err != nil {
			return fmt.Errorf("deposits of payout %s: %w", gcPayoutID, err)
		}
		if len(postings) == 0 {
			return fmt.Errorf("payout %s has no deposit left to post: %w", gcPayoutID, ErrNotRepostable)
		}
		var ids []string
		for _, d := range postings {
			if d.request == nil {
				return fmt.Errorf("deposit %s was queued before its request was kept (migration 00016); post it by hand: %w", d.outcomeID, ErrNotRepostable)
			}
			// A deposit still queued keeps its place in the outbox.
			if err := QueueOutcome(ctx, tx, PendingOutcome{AggregateType: PayoutAggregate, AggregateID: gcPayoutID,
				EventID: p.EventID, OutcomeID: d.outcomeID, Kind: "payout", Outcome: d.request}); err != nil {
				return err
			}
			ids = append(ids, d.outcomeID)
		}
		if _, err := tx.Exec(ctx, `UPDATE payout_postings SET state = 'queued' WHERE payout_id = $1 AND state = 'refused'`, p.ID); err != nil {
			return fmt.Errorf("deposits of payout %s queued again: %w", gcPayoutID, err)
		}
		if p.State == PayoutRefused {
			if err := CheckPayout(p.State, PayoutPosting); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE payouts SET state = 'posting', posted_at = NULL WHERE id = $1`, p.ID); err != nil {
				return fmt.Errorf("payout %s posting again: %w", gcPayoutID, err)
			}
		}
		n = len(ids)
		return recordBy(ctx, tx, actor, PayoutAggregate, gcPayoutID, "payout.repost",
			Change{Before: map[string]any{"state": p.State}, After: map[string]any{"state": PayoutPosting, "deposits": ids},
				Cause: cmp.Or(note, "re-posted by "+actor)})
	})
	return n, err
}

// CollectionsByPayments reads, without locking, the collections that
// recorded these GoCardless payment ids, by payment id.
func CollectionsByPayments(ctx context.Context, tx pgx.Tx, paymentIDs []string) (map[string]Collection, error) {
	return collectionsBy(ctx, tx, "gc_payment_id", paymentIDs)
}

// CollectionsBySubscriptions reads, without locking, the collections of
// these GoCardless subscriptions, by subscription id.
func CollectionsBySubscriptions(ctx context.Context, tx pgx.Tx, subscriptionIDs []string) (map[string]Collection, error) {
	return collectionsBy(ctx, tx, "gc_subscription_id", subscriptionIDs)
}

func collectionsBy(ctx context.Context, tx pgx.Tx, column string, ids []string) (map[string]Collection, error) {
	out := map[string]Collection{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := tx.Query(ctx, `SELECT `+collectionColumns+` FROM collections WHERE `+column+` = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("collections by %s: %w", column, err)
	}
	cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Collection, error) { return scanCollection(r) })
	if err != nil {
		return nil, fmt.Errorf("collections by %s: %w", column, err)
	}
	for _, c := range cols {
		if column == "gc_payment_id" {
			out[c.GCPaymentID] = c
		} else {
			out[c.GCSubscription] = c
		}
	}
	return out, nil
}

// RefundsByGC reads, without locking, the refunds of these GoCardless
// refund ids, by refund id.
func RefundsByGC(ctx context.Context, tx pgx.Tx, gcRefundIDs []string) (map[string]Refund, error) {
	out := map[string]Refund{}
	if len(gcRefundIDs) == 0 {
		return out, nil
	}
	rows, err := tx.Query(ctx, `SELECT `+refundColumns+` FROM refunds WHERE gc_refund_id = ANY($1)`, gcRefundIDs)
	if err != nil {
		return nil, fmt.Errorf("refunds by gocardless id: %w", err)
	}
	refunds, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Refund, error) { return scanRefund(r) })
	if err != nil {
		return nil, fmt.Errorf("refunds by gocardless id: %w", err)
	}
	for _, r := range refunds {
		out[r.GCRefundID] = r
	}
	return out, nil
}

// CollectionsByIDs reads, without locking, collections by their ids.
func CollectionsByIDs(ctx context.Context, tx pgx.Tx, ids []int64) (map[int64]Collection, error) {
	out := map[int64]Collection{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := tx.Query(ctx, `SELECT `+collectionColumns+` FROM collections WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("collections by id: %w", err)
	}
	cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Collection, error) { return scanCollection(r) })
	if err != nil {
		return nil, fmt.Errorf("collections by id: %w", err)
	}
	for _, c := range cols {
		out[c.ID] = c
	}
	return out, nil
}

// PaymentsToPlace returns those of paymentIDs that no collection
// records and that may still be instalments of a subscription of ours:
// none when no collection is a subscription; otherwise those whose
// mandate (mandateOf; GoCardless links it on some item types only) is
// unknown or one of ours. Only GoCardless can name their subscription.
func (l *Ledger) PaymentsToPlace(ctx context.Context, paymentIDs []string, mandateOf map[string]string) ([]string, error) {
	if len(paymentIDs) == 0 {
		return nil, nil
	}
	mandates := make([]string, len(paymentIDs))
	for i, id := range paymentIDs {
		mandates[i] = mandateOf[id]
	}
	// "Any subscription?" reads the first entry of the subscription index:
	// as a plain EXISTS, a planner without statistics (autovacuum off)
	// guessed most rows have one and read every collection to find none.
	// Each mandate's check is a scalar subquery for the same reason: as an
	// EXISTS the planner may hash every customer link once per payout
	// (it drops a LIMIT there); a scalar subquery is a probe of the index.
	rows, err := l.db.Query(ctx, `
		SELECT p.id FROM unnest($1::text[], $2::text[]) AS p (id, mandate)
		WHERE (SELECT s.gc_subscription_id FROM collections s WHERE s.gc_subscription_id IS NOT NULL
		       ORDER BY s.gc_subscription_id LIMIT 1) IS NOT NULL
		  AND NOT EXISTS (SELECT 1 FROM collections c WHERE c.gc_payment_id = p.id)
		  AND (p.mandate = '' OR (SELECT l.id FROM customer_links l WHERE l.gc_mandate_id = p.mandate LIMIT 1) IS NOT NULL)`, paymentIDs, mandates)
	if err != nil {
		return nil, fmt.Errorf("payments to place: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// PaidOutBefore returns, of paymentIDs, those a stored payment_paid_out
// item already pays out, with the GoCardless id of the payout it is in.
// Two transactions may both find none for a payment; the second to store
// its item then fails on the database's index (IsPaidOutTwice), and
// storing again finds the first.
func PaidOutBefore(ctx context.Context, tx pgx.Tx, paymentIDs []string) (map[string]string, error) {
	out := map[string]string{}
	if len(paymentIDs) == 0 {
		return out, nil
	}
	rows, err := tx.Query(ctx, `
		SELECT i.gc_payment_id, p.gc_payout_id FROM payout_items i JOIN payouts p ON p.id = i.payout_id
		WHERE i.gc_payment_id = ANY($1) AND i.type = 'payment_paid_out' AND NOT i.duplicate`, paymentIDs)
	if err != nil {
		return nil, fmt.Errorf("payments paid out before: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var pm, po string
		if err := rows.Scan(&pm, &po); err != nil {
			return nil, err
		}
		out[pm] = po
	}
	return out, rows.Err()
}

// paidOutOnce is the unique index that lets one payment_paid_out item per
// payment not be a duplicate (migration 00016).
const paidOutOnce = "payout_items_paid_out_once"

// IsPaidOutTwice reports whether err is a payout's item failing on
// paidOutOnce: another transaction stored an item paying out the same
// payment after this one looked (PaidOutBefore).
func IsPaidOutTwice(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == paidOutOnce
}

func payoutView(p Payout) map[string]any {
	v := map[string]any{
		"state": p.State, "gc_payout": p.GCPayoutID, "amount_minor": p.AmountMinor, "currency": p.Currency,
		"deducted_fees_minor": p.DeductedFeesMinor, "reference": p.Reference, "items": p.ItemsCount,
		"items_total_tenths": p.ItemsTotalTenths, "fees_total_tenths": p.FeesTotalTenths, "unmatched": p.UnmatchedCount,
	}
	if p.ArrivalDate.Year() > 1 {
		v["arrival_date"] = p.ArrivalDate.Format(time.DateOnly)
	}
	if p.FXCurrency != "" {
		v["fx_currency"] = p.FXCurrency
	}
	return v
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nilIfZero(n int64) any {
	if n == 0 {
		return nil
	}
	return n
}
