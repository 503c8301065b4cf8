package settlement

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// MaxPayouts bounds one listing; a busy creditor gets one payout per
// currency a working day, so this is years of them.
const MaxPayouts = 1000

// MaxItems bounds the items shown with one payout. GoCardless may put
// thousands of payments in one payout; the totals are always of all
// items, and ItemsShown says when the list was cut.
const MaxItems = 5000

// PayoutQuery filters ListPayouts.
type PayoutQuery struct {
	// From and To bound the arrival date (inclusive); zero for open.
	From, To time.Time
	// Connection is a GoCardless connection, or an ERP connection whose
	// invoices the payouts settled; "" for all.
	Connection string
	// State is the payout's state in ml-connector (fetched, mismatch,
	// posting, posted, refused, nothing_to_post), "" for all.
	State string
	// Limit is at most MaxPayouts; 0 means 100.
	Limit int
}

// Payout is one GoCardless payout: one line on the bank statement.
type Payout struct {
	ID            string `json:"gc_payout_id"`
	GCConnection  string `json:"gc_connection"`
	BankReference string `json:"bank_reference"`
	ArrivalDate   string `json:"arrival_date"`
	Currency      string `json:"currency"`
	// Amount is what reached the bank account.
	Amount Money `json:"amount"`
	// Fees are what GoCardless says it deducted (deducted_fees).
	Fees Money `json:"fees"`
	// State is ml-connector's: fetched, mismatch (the items do not add
	// up to the amount), posting, posted, refused (an ERP refused the
	// deposit), nothing_to_post (no item is ours). GCStatus is
	// GoCardless's (pending, paid, bounced).
	State    string `json:"state"`
	GCStatus string `json:"gc_status"`
	Items    int    `json:"items"`
	// Unmatched counts the items tied to no invoice or refund of ours.
	Unmatched int `json:"unmatched_items"`
	// Difference is what the items add up to beyond Amount: zero unless
	// State is mismatch.
	Difference string `json:"difference"`
	Invoices   int    `json:"invoices"`
	CreatedAt  string `json:"gc_created_at"`
}

// SettledInvoice is an invoice a payout paid (or refunded), with the net
// of its items in that payout.
type SettledInvoice struct {
	Connection string `json:"connection"`
	Company    string `json:"company"`
	InvoiceID  string `json:"invoice_id"`
	InvoiceNo  string `json:"invoice_no"`
	CustomerID string `json:"customer_id"`
	// Net is the invoice's items in this payout: the payment less its
	// fees, refunds and charge-backs, exactly.
	Net string `json:"net"`
	// Posting is the state of the deposit carrying it into the ERP
	// (queued, posted, refused), "" when there is none.
	Posting string `json:"posting"`
}

// Item is one credit or debit of a payout, as GoCardless listed it.
type Item struct {
	Seq  int    `json:"seq"`
	Type string `json:"type"`
	// Amount is exact: GoCardless gives items to a tenth of the minor
	// unit, so a fee may carry one more decimal than the currency.
	Amount  string            `json:"amount"`
	Links   map[string]string `json:"links"`
	Matched bool              `json:"matched"`
	// Connection, Company and InvoiceID say which invoice a matched item
	// is for; empty for an unmatched one.
	Connection string `json:"connection,omitempty"`
	Company    string `json:"company,omitempty"`
	InvoiceID  string `json:"invoice_id,omitempty"`
}

// PayoutDetail is a payout with the invoices it settled and its items.
type PayoutDetail struct {
	Payout
	SettledInvoices []SettledInvoice `json:"settled_invoices"`
	ItemList        []Item           `json:"item_list"`
	// ItemsShown is len(ItemList); less than Items when cut at MaxItems.
	ItemsShown int `json:"items_shown"`
}

// Check validates q.
func (q PayoutQuery) Check() error {
	if !q.From.IsZero() && !q.To.IsZero() && dateOnly(q.To).Before(dateOnly(q.From)) {
		return fmt.Errorf("%w: the last arrival date is before the first", ErrInput)
	}
	if q.Limit < 0 || q.Limit > MaxPayouts {
		return fmt.Errorf("%w: limit %d is not between 1 and %d", ErrInput, q.Limit, MaxPayouts)
	}
	if len(q.Connection) > 200 || len(q.State) > 40 {
		return fmt.Errorf("%w: connection or state too long", ErrInput)
	}
	return nil
}

// payoutColumns are read by scanPayout, from payouts p joined with the
// GoCardless connection g.
const payoutColumns = `p.gc_payout_id, g.name, p.reference, coalesce(p.arrival_date::text, ''), p.currency,
	p.amount_minor, p.deducted_fees_minor, p.state, p.gc_status, p.items_count, p.unmatched_count,
	p.difference_tenths, p.gc_created_at,
	(SELECT count(DISTINCT i.collection_id) FROM payout_items i WHERE i.payout_id = p.id AND i.collection_id IS NOT NULL)`

// scanPayout scans payoutColumns, then extra columns into extra.
func scanPayout(row pgx.Row, extra ...any) (Payout, error) {
	var p Payout
	var amount, fees, diff int64
	var created time.Time
	err := row.Scan(append([]any{&p.ID, &p.GCConnection, &p.BankReference, &p.ArrivalDate, &p.Currency, &amount, &fees, &p.State,
		&p.GCStatus, &p.Items, &p.Unmatched, &diff, &created, &p.Invoices}, extra...)...)
	if err != nil {
		return p, err
	}
	p.Amount, p.Fees = NewMoney(amount, p.Currency), NewMoney(fees, p.Currency)
	p.Difference = decimalTenths(diff, p.Currency)
	p.CreatedAt = created.UTC().Format(time.RFC3339)
	return p, nil
}

// ListPayouts lists payouts, newest arrival first.
func (r *Reader) ListPayouts(ctx context.Context, q PayoutQuery) ([]Payout, error) {
	if err := q.Check(); err != nil {
		return nil, err
	}
	limit := q.Limit
	if limit == 0 {
		limit = 100
	}
	var from, to *time.Time
	if !q.From.IsZero() {
		d := dateOnly(q.From)
		from = &d
	}
	if !q.To.IsZero() {
		d := dateOnly(q.To)
		to = &d
	}
	rows, err := r.db.Query(ctx, `
		SELECT `+payoutColumns+`
		FROM payouts p JOIN connections g ON g.id = p.gc_connection_id
		WHERE ($1::date IS NULL OR p.arrival_date >= $1)
		  AND ($2::date IS NULL OR p.arrival_date <= $2)
		  AND ($3 = '' OR p.state = $3)
		  AND ($4 = '' OR g.name = $4 OR EXISTS (
		        SELECT 1 FROM payout_items i JOIN connections e ON e.id = i.erp_connection_id
		        WHERE i.payout_id = p.id AND e.name = $4))
		ORDER BY p.arrival_date DESC NULLS FIRST, p.gc_created_at DESC, p.id DESC
		LIMIT $5`, from, to, q.State, q.Connection, limit)
	if err != nil {
		return nil, fmt.Errorf("list payouts: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Payout, error) { return scanPayout(row) })
	if err != nil {
		return nil, fmt.Errorf("list payouts: %w", err)
	}
	return out, nil
}

// ShowPayout returns one payout (by its GoCardless id or its bank
// reference) with the invoices it settled and its items.
func (r *Reader) ShowPayout(ctx context.Context, idOrReference string) (PayoutDetail, error) {
	if idOrReference == "" || len(idOrReference) > 200 {
		return PayoutDetail{}, fmt.Errorf("%w: a payout id or bank reference of at most 200 characters", ErrInput)
	}
	var d PayoutDetail
	var id int64
	p, err := scanPayout(r.db.QueryRow(ctx, `
		SELECT `+payoutColumns+`, p.id
		FROM payouts p JOIN connections g ON g.id = p.gc_connection_id
		WHERE p.gc_payout_id = $1 OR p.reference = $1
		ORDER BY (p.gc_payout_id = $1) DESC, p.id DESC LIMIT 1`, idOrReference), &id)
	if errors.Is(err, pgx.ErrNoRows) {
		return d, fmt.Errorf("payout %s: %w", idOrReference, ErrNotFound)
	}
	if err != nil {
		return d, fmt.Errorf("payout %s: %w", idOrReference, err)
	}
	d.Payout = p

	rows, err := r.db.Query(ctx, `
		SELECT e.name, i.company, i.invoice_id, c.invoice_no, c.customer_id, sum(i.amount_tenths)::bigint,
		       coalesce((SELECT pp.state FROM payout_postings pp
		                 WHERE pp.payout_id = i.payout_id AND pp.erp_connection_id = i.erp_connection_id AND pp.company = i.company), '')
		FROM payout_items i
		JOIN connections e ON e.id = i.erp_connection_id
		JOIN collections c ON c.id = i.collection_id
		WHERE i.payout_id = $1 AND i.collection_id IS NOT NULL
		GROUP BY e.name, i.company, i.invoice_id, c.invoice_no, c.customer_id, i.payout_id, i.erp_connection_id
		ORDER BY e.name, i.company, i.invoice_id
		LIMIT $2`, id, MaxItems)
	if err != nil {
		return d, fmt.Errorf("payout %s invoices: %w", p.ID, err)
	}
	d.SettledInvoices, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (SettledInvoice, error) {
		var s SettledInvoice
		var net int64
		err := row.Scan(&s.Connection, &s.Company, &s.InvoiceID, &s.InvoiceNo, &s.CustomerID, &net, &s.Posting)
		s.Net = decimalTenths(net, p.Currency)
		return s, err
	})
	if err != nil {
		return d, fmt.Errorf("payout %s invoices: %w", p.ID, err)
	}

	rows, err = r.db.Query(ctx, `
		SELECT i.seq, i.type, i.amount_tenths, coalesce(i.gc_payment_id, ''), coalesce(i.gc_mandate_id, ''),
		       coalesce(i.gc_refund_id, ''), i.match = 'matched', coalesce(e.name, ''), coalesce(i.company, ''),
		       coalesce(i.invoice_id, '')
		FROM payout_items i LEFT JOIN connections e ON e.id = i.erp_connection_id
		WHERE i.payout_id = $1
		ORDER BY i.seq
		LIMIT $2`, id, MaxItems)
	if err != nil {
		return d, fmt.Errorf("payout %s items: %w", p.ID, err)
	}
	d.ItemList, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Item, error) {
		var it Item
		var tenths int64
		var payment, mandate, refund string
		err := row.Scan(&it.Seq, &it.Type, &tenths, &payment, &mandate, &refund, &it.Matched, &it.Connection, &it.Company, &it.InvoiceID)
		it.Amount = decimalTenths(tenths, p.Currency)
		it.Links = map[string]string{}
		for k, v := range map[string]string{"payment": payment, "mandate": mandate, "refund": refund} {
			if v != "" {
				it.Links[k] = v
			}
		}
		return it, err
	})
	if err != nil {
		return d, fmt.Errorf("payout %s items: %w", p.ID, err)
	}
	d.ItemsShown = len(d.ItemList)
	return d, nil
}
