package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// CustomerKey identifies an ERP customer.
type CustomerKey struct {
	ERP          string `json:"erp"` // ifs or jde
	ConnectionID int64  `json:"connection_id"`
	Company      string `json:"company"`
	CustomerID   string `json:"customer_id"`
}

// String is the customer's identity, as in the audit log and exceptions.
func (k CustomerKey) String() string { return k.aggregateID() }

func (k CustomerKey) aggregateID() string {
	return fmt.Sprintf("%s:%d:%s:%s", k.ERP, k.ConnectionID, k.Company, k.CustomerID)
}

// CustomerLink is an ERP customer's GoCardless side.
type CustomerLink struct {
	ID  int64
	Key CustomerKey

	GCConnectionID  int64
	GCCustomerID    string
	GCBankAccountID string
	GCMandateID     string
	CreditorID      string
	MandateStatus   MandateStatus
	MandateScheme   string
	BankFingerprint string
	// NextChargeDate is the mandate's next_possible_charge_date as last seen.
	NextChargeDate time.Time
	// MandateEventAt is the created_at of the newest mandate event applied.
	MandateEventAt time.Time
	Country        string
	Language       string
	ERPVersion     string
	// ERPUpdatedAt is the ERP's updated_at of the snapshot ERPVersion
	// names, to the microsecond Postgres keeps; zero when that snapshot
	// had none or was applied before it was recorded.
	ERPUpdatedAt time.Time
	// ERPPublishedAt is when that snapshot's message was published on
	// MLC_ERP (its JetStream timestamp, to the microsecond); zero when it
	// was applied before this was recorded.
	ERPPublishedAt time.Time
}

// MandateUsable reports whether payments can be created on the mandate:
// GoCardless accepts them from submission onwards, before activation.
func (c CustomerLink) MandateUsable() bool {
	return c.GCMandateID != "" && c.MandateStatus.Usable()
}

const customerColumns = `id, erp, connection_id, company, erp_customer_id, coalesce(gc_connection_id, 0),
	coalesce(gc_customer_id, ''), coalesce(gc_bank_account_id, ''), coalesce(gc_mandate_id, ''), coalesce(gc_creditor_id, ''),
	coalesce(mandate_status, ''), coalesce(mandate_scheme, ''), coalesce(bank_fingerprint, ''),
	coalesce(mandate_next_charge_date, '0001-01-01'::date), coalesce(mandate_event_at, '0001-01-01'::timestamptz),
	coalesce(customer_country, ''), coalesce(customer_language, ''), coalesce(erp_version, ''),
	coalesce(erp_updated_at, '0001-01-01'::timestamptz), coalesce(erp_published_at, '0001-01-01'::timestamptz)`

func scanCustomer(row pgx.Row) (CustomerLink, error) {
	var c CustomerLink
	err := row.Scan(&c.ID, &c.Key.ERP, &c.Key.ConnectionID, &c.Key.Company, &c.Key.CustomerID, &c.GCConnectionID,
		&c.GCCustomerID, &c.GCBankAccountID, &c.GCMandateID, &c.CreditorID, &c.MandateStatus, &c.MandateScheme,
		&c.BankFingerprint, &c.NextChargeDate, &c.MandateEventAt, &c.Country, &c.Language, &c.ERPVersion, &c.ERPUpdatedAt,
		&c.ERPPublishedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, ErrNotFound
	}
	return c, err
}

// LockCustomer returns the customer's link, creating an empty one if it is
// new, locked until tx ends so that changes to one customer serialize.
func LockCustomer(ctx context.Context, tx pgx.Tx, k CustomerKey) (CustomerLink, error) {
	if _, err := tx.Exec(ctx, `
		INSERT INTO customer_links (erp, connection_id, company, erp_customer_id) VALUES ($1, $2, $3, $4)
		ON CONFLICT (connection_id, company, erp_customer_id) DO NOTHING`, k.ERP, k.ConnectionID, k.Company, k.CustomerID); err != nil {
		return CustomerLink{}, fmt.Errorf("lock customer %s: %w", k.aggregateID(), err)
	}
	c, err := scanCustomer(tx.QueryRow(ctx, `SELECT `+customerColumns+` FROM customer_links
		WHERE connection_id = $1 AND company = $2 AND erp_customer_id = $3 FOR UPDATE`, k.ConnectionID, k.Company, k.CustomerID))
	if err != nil {
		return c, fmt.Errorf("lock customer %s: %w", k.aggregateID(), err)
	}
	return c, nil
}

// Customer reads a customer's link without locking it, in one round trip
// with concurrent reads.
func (l *Ledger) Customer(ctx context.Context, k CustomerKey) (CustomerLink, error) {
	c, err := l.customers.do(ctx, k)
	if err == nil && c.ID == 0 {
		err = ErrNotFound
	}
	return c, err
}

// readCustomers reads links, pipelined; a link not found is returned with
// ID 0.
func readCustomers(ctx context.Context, db *pgxpool.Pool, keys []CustomerKey) ([]CustomerLink, error) {
	links := make([]CustomerLink, len(keys))
	reads := &pgx.Batch{}
	for i, k := range keys {
		reads.Queue(`SELECT `+customerColumns+` FROM customer_links
			WHERE connection_id = $1 AND company = $2 AND erp_customer_id = $3`, k.ConnectionID, k.Company, k.CustomerID,
		).QueryRow(func(row pgx.Row) error {
			var err error
			if links[i], err = scanCustomer(row); errors.Is(err, ErrNotFound) {
				return nil
			}
			return err
		})
	}
	if err := db.SendBatch(ctx, reads).Close(); err != nil {
		return nil, fmt.Errorf("read customers: %w", err)
	}
	return links, nil
}

// LockCustomersByMandate locks every link using a mandate (two companies
// mapped to one creditor may share one).
func LockCustomersByMandate(ctx context.Context, tx pgx.Tx, mandateID string) ([]CustomerLink, error) {
	rows, err := tx.Query(ctx, `SELECT `+customerColumns+` FROM customer_links WHERE gc_mandate_id = $1 ORDER BY id FOR UPDATE`, mandateID)
	if err != nil {
		return nil, fmt.Errorf("customers of mandate %s: %w", mandateID, err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (CustomerLink, error) { return scanCustomer(r) })
}

// SaveCustomer writes c (locked by LockCustomer in tx) and audits the
// change from before with action and cause.
func SaveCustomer(ctx context.Context, tx pgx.Tx, before, c CustomerLink, action, cause string) error {
	if before.GCMandateID == c.GCMandateID {
		if err := CheckMandate(before.MandateStatus, c.MandateStatus); err != nil {
			return fmt.Errorf("save customer %s: %w", c.Key.aggregateID(), err)
		}
	}
	var next *time.Time
	if !c.NextChargeDate.IsZero() && c.NextChargeDate.Year() > 1 {
		next = &c.NextChargeDate
	}
	var eventAt *time.Time
	if c.MandateEventAt.Year() > 1 {
		eventAt = &c.MandateEventAt
	}
	var erpAt *time.Time
	if c.ERPUpdatedAt.Year() > 1 {
		erpAt = &c.ERPUpdatedAt
	}
	var publishedAt *time.Time
	if c.ERPPublishedAt.Year() > 1 {
		publishedAt = &c.ERPPublishedAt
	}
	_, err := tx.Exec(ctx, `
		UPDATE customer_links SET gc_connection_id = nullif($2, 0), gc_customer_id = nullif($3, ''),
			gc_bank_account_id = nullif($4, ''), gc_mandate_id = nullif($5, ''), gc_creditor_id = nullif($6, ''),
			mandate_status = nullif($7, ''), mandate_scheme = nullif($8, ''), bank_fingerprint = nullif($9, ''),
			mandate_next_charge_date = $10, mandate_event_at = $11, customer_country = nullif($12, ''),
			customer_language = nullif($13, ''), erp_version = nullif($14, ''), erp_updated_at = $15,
			erp_published_at = $16
		WHERE id = $1`, c.ID, c.GCConnectionID, c.GCCustomerID, c.GCBankAccountID, c.GCMandateID, c.CreditorID,
		c.MandateStatus, c.MandateScheme, c.BankFingerprint, next, eventAt, c.Country, c.Language, c.ERPVersion, erpAt, publishedAt)
	if err != nil {
		return fmt.Errorf("save customer %s: %w", c.Key.aggregateID(), err)
	}
	return record(ctx, tx, "customer", c.Key.aggregateID(), action, Change{Before: customerView(before), After: customerView(c), Cause: cause})
}

// IgnoreStaleCustomer records, in tx, that a snapshot of the customer of
// c (locked by LockCustomer in tx), version updated at updatedAt in the
// ERP and published at published (zero when unknown), was received and
// deliberately not applied: it is older than the one c holds. The cause
// names what decided it: the publish times when both are known, else the
// ERP's updated_at (collect's stale). The link is left as it is.
func IgnoreStaleCustomer(ctx context.Context, tx pgx.Tx, c CustomerLink, version string, updatedAt, published time.Time) error {
	at := func(t time.Time) string {
		if t.Year() <= 1 {
			return "unknown"
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	var cause string
	if published.Year() > 1 && c.ERPPublishedAt.Year() > 1 {
		cause = fmt.Sprintf("ERP snapshot %s was published at %s, before the applied %s (published at %s); updated %s, the applied %s",
			version, at(published), c.ERPVersion, at(c.ERPPublishedAt), at(updatedAt), at(c.ERPUpdatedAt))
	} else {
		cause = fmt.Sprintf("ERP snapshot %s, updated %s, is older than the applied %s, updated %s (publish times unknown)",
			version, at(updatedAt), c.ERPVersion, at(c.ERPUpdatedAt))
	}
	return record(ctx, tx, "customer", c.Key.aggregateID(), "customer.stale_ignored", Change{After: customerView(c), Cause: cause})
}

// customerView is what the audit log keeps of a link: identifiers and
// statuses, never bank details.
func customerView(c CustomerLink) map[string]any {
	v := map[string]any{
		"gc_customer": c.GCCustomerID, "gc_bank_account": c.GCBankAccountID, "gc_mandate": c.GCMandateID,
		"mandate_status": c.MandateStatus, "scheme": c.MandateScheme, "creditor": c.CreditorID, "erp_version": c.ERPVersion,
	}
	if c.ERPUpdatedAt.Year() > 1 {
		v["erp_updated_at"] = c.ERPUpdatedAt.UTC().Format(time.RFC3339Nano)
	}
	if c.ERPPublishedAt.Year() > 1 {
		v["erp_published_at"] = c.ERPPublishedAt.UTC().Format(time.RFC3339Nano)
	}
	return v
}

// CustomersByMandate reads, without locking, the links using a mandate.
func (l *Ledger) CustomersByMandate(ctx context.Context, mandateID string) ([]CustomerLink, error) {
	rows, err := l.db.Query(ctx, `SELECT `+customerColumns+` FROM customer_links WHERE gc_mandate_id = $1 ORDER BY id`, mandateID)
	if err != nil {
		return nil, fmt.Errorf("customers of mandate %s: %w", mandateID, err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (CustomerLink, error) { return scanCustomer(r) })
}

// AggregateID is the audit-log id of a customer link.
func (c CustomerLink) AggregateID() string { return c.Key.aggregateID() }

// ReadCustomer reads a customer's link in tx without locking it.
func ReadCustomer(ctx context.Context, tx pgx.Tx, k CustomerKey) (CustomerLink, error) {
	return scanCustomer(tx.QueryRow(ctx, `SELECT `+customerColumns+` FROM customer_links
		WHERE connection_id = $1 AND company = $2 AND erp_customer_id = $3`, k.ConnectionID, k.Company, k.CustomerID))
}
