package ledger

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// MandateRequest is a billing request asking an ERP customer for a
// mandate (mandate_setup billing_request): whose it is, under which
// idempotency key it is created, the link the payer must open and until
// when, whether GoCardless emailed it, and what became of it. Its JSON
// names are snake_case, as mlcctl --json and the console speak.
type MandateRequest struct {
	ID               int64               `json:"id"`
	Key              CustomerKey         `json:"customer"`
	GCConnectionID   int64               `json:"gc_connection_id"`
	GCCustomerID     string              `json:"gc_customer_id"`
	Attempt          int                 `json:"attempt"`
	IdempotencyKey   string              `json:"idempotency_key"`
	Currency         string              `json:"currency"`
	State            MandateRequestState `json:"state"`
	BillingRequestID string              `json:"billing_request_id"`
	FlowID           string              `json:"flow_id"`
	AuthorisationURL string              `json:"authorisation_url"`
	FlowExpiresAt    time.Time           `json:"flow_expires_at"`
	Notified         string              `json:"notified"`
	MandateID        string              `json:"mandate_id"`
	CreatedAt        time.Time           `json:"created_at"`
	// ResentAt is when AR last resent the link (zero if never); the
	// customer's invoices wait mandate_wait from WaitingSince.
	ResentAt time.Time `json:"resent_at,omitzero"`
	// Reparked is set on the answer of a resend only: the invoices it
	// parked again (ReparkInvoices).
	Reparked *Reparked `json:"reparked,omitempty"`
}

// WaitingSince is when the customer's invoices started their mandate_wait:
// the latest resend of the link, else the request's creation.
func (m MandateRequest) WaitingSince() time.Time {
	if m.ResentAt.After(m.CreatedAt) {
		return m.ResentAt
	}
	return m.CreatedAt
}

// MandateRequestKey is the idempotency key of a customer's attempt-th
// billing request: each attempt (the first, and each resend after
// GoCardless closed the previous one) is one billing request.
func MandateRequestKey(k CustomerKey, attempt int) string {
	return fmt.Sprintf("mlc:%s:%d:%s:%s:mandate-request:%d", k.ERP, k.ConnectionID, k.Company, k.CustomerID, attempt)
}

// MandateRequestLease is how long work on a customer's mandate request
// (its billing request, flow and notification) keeps other work on it
// waiting; past it, after a crash, other work takes it over. It outlasts
// the client's retries of three calls.
const MandateRequestLease = 2 * time.Minute

// mandateRequestLease is the lease type of mandate requests; a customer
// has at most one open request, so the lease is the customer's.
const mandateRequestLease = "mandate_request"

const mandateRequestColumns = `id, erp, connection_id, company, erp_customer_id, gc_connection_id, gc_customer_id, attempt,
	idempotency_key, currency, state, coalesce(billing_request_id, ''), coalesce(flow_id, ''), coalesce(authorisation_url, ''),
	coalesce(flow_expires_at, '0001-01-01'::timestamptz), coalesce(notified, ''), coalesce(mandate_id, ''), created_at,
	coalesce(resent_at, '0001-01-01'::timestamptz)`

func scanMandateRequest(row pgx.Row) (MandateRequest, error) {
	var m MandateRequest
	err := row.Scan(&m.ID, &m.Key.ERP, &m.Key.ConnectionID, &m.Key.Company, &m.Key.CustomerID, &m.GCConnectionID,
		&m.GCCustomerID, &m.Attempt, &m.IdempotencyKey, &m.Currency, &m.State, &m.BillingRequestID, &m.FlowID,
		&m.AuthorisationURL, &m.FlowExpiresAt, &m.Notified, &m.MandateID, &m.CreatedAt, &m.ResentAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return m, ErrNotFound
	}
	return m, err
}

type queryRower interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}

func openMandateRequest(ctx context.Context, q queryRower, k CustomerKey, lock string) (MandateRequest, error) {
	return scanMandateRequest(q.QueryRow(ctx, `SELECT `+mandateRequestColumns+` FROM mandate_requests
		WHERE connection_id = $1 AND company = $2 AND erp_customer_id = $3 AND state IN ('requesting', 'awaiting_payer') `+lock,
		k.ConnectionID, k.Company, k.CustomerID))
}

// lockMandateRequest reads request id locked until tx ends.
func lockMandateRequest(ctx context.Context, tx pgx.Tx, id int64) (MandateRequest, error) {
	return scanMandateRequest(tx.QueryRow(ctx, `SELECT `+mandateRequestColumns+` FROM mandate_requests WHERE id = $1 FOR UPDATE`, id))
}

// MandateRequest reads request id.
func (l *Ledger) MandateRequest(ctx context.Context, id int64) (MandateRequest, error) {
	return scanMandateRequest(l.db.QueryRow(ctx, `SELECT `+mandateRequestColumns+` FROM mandate_requests WHERE id = $1`, id))
}

// OpenMandateRequest reads the customer's request that is still
// requesting or awaiting the payer; ErrNotFound when there is none.
func (l *Ledger) OpenMandateRequest(ctx context.Context, k CustomerKey) (MandateRequest, error) {
	return openMandateRequest(ctx, l.db, k, "")
}

// MandateRequests lists up to limit requests in state ("" for all),
// oldest first.
func (l *Ledger) MandateRequests(ctx context.Context, state MandateRequestState, limit int) ([]MandateRequest, error) {
	rows, err := l.db.Query(ctx, `SELECT `+mandateRequestColumns+` FROM mandate_requests
		WHERE $1 = '' OR state = $1 ORDER BY created_at, id LIMIT $2`, state, limit)
	if err != nil {
		return nil, fmt.Errorf("list mandate requests: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (MandateRequest, error) { return scanMandateRequest(r) })
	if err != nil {
		return nil, fmt.Errorf("list mandate requests: %w", err)
	}
	return list, nil
}

// UnneededMandateRequests lists up to limit requests awaiting the payer
// of customers whose mandate is usable again (an ended mandate was
// reinstated after a new one was asked for), oldest first.
func (l *Ledger) UnneededMandateRequests(ctx context.Context, limit int) ([]MandateRequest, error) {
	var usable []string
	for s := range mandateRanks {
		if s.Usable() {
			usable = append(usable, string(s))
		}
	}
	rows, err := l.db.Query(ctx, `SELECT `+mandateRequestColumns+` FROM mandate_requests r WHERE state = $1 AND EXISTS (
			SELECT 1 FROM customer_links c WHERE c.connection_id = r.connection_id AND c.company = r.company
			  AND c.erp_customer_id = r.erp_customer_id AND c.gc_mandate_id IS NOT NULL AND c.mandate_status = ANY($2))
		ORDER BY created_at, id LIMIT $3`, MandateRequestAwaitingPayer, usable, limit)
	if err != nil {
		return nil, fmt.Errorf("mandate requests no longer needed: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (MandateRequest, error) { return scanMandateRequest(r) })
	if err != nil {
		return nil, fmt.Errorf("mandate requests no longer needed: %w", err)
	}
	return list, nil
}

// LockMandateRequestByBillingRequest locks the request a GoCardless
// billing request was created for.
func LockMandateRequestByBillingRequest(ctx context.Context, tx pgx.Tx, billingRequestID string) (MandateRequest, error) {
	return scanMandateRequest(tx.QueryRow(ctx, `SELECT `+mandateRequestColumns+` FROM mandate_requests
		WHERE billing_request_id = $1 FOR UPDATE`, billingRequestID))
}

// SaveMandateRequest writes mr (locked in tx) and audits the change from
// before under actor, with action and cause.
func SaveMandateRequest(ctx context.Context, tx pgx.Tx, before, mr MandateRequest, actor, action, cause string) error {
	if err := CheckMandateRequest(before.State, mr.State); err != nil {
		return fmt.Errorf("save mandate request %d: %w", mr.ID, err)
	}
	_, err := tx.Exec(ctx, `UPDATE mandate_requests SET state = $2, billing_request_id = nullif($3, ''),
			flow_id = nullif($4, ''), authorisation_url = nullif($5, ''), flow_expires_at = $6, notified = nullif($7, ''),
			mandate_id = nullif($8, ''), resent_at = $9, updated_at = now()
		WHERE id = $1`, mr.ID, mr.State, mr.BillingRequestID, mr.FlowID, mr.AuthorisationURL, timeOrNil(mr.FlowExpiresAt),
		mr.Notified, mr.MandateID, timeOrNil(mr.ResentAt))
	if err != nil {
		return fmt.Errorf("save mandate request %d: %w", mr.ID, err)
	}
	return recordBy(ctx, tx, actor, mandateRequestLease, mr.Key.String(), action,
		Change{Before: mandateRequestView(before), After: mandateRequestView(mr), Cause: cause})
}

// mandateRequestView is what the audit log keeps of a request.
func mandateRequestView(mr MandateRequest) map[string]any {
	return map[string]any{"request": mr.ID, "attempt": mr.Attempt, "state": mr.State, "billing_request": mr.BillingRequestID,
		"flow": mr.FlowID, "flow_expires_at": mr.FlowExpiresAt, "notified": mr.Notified, "mandate": mr.MandateID,
		"resent_at": timeOrNil(mr.ResentAt)}
}

// timeOrNil is t, or NULL for the zero time (and the '0001-01-01' the
// columns are read back as when NULL).
func timeOrNil(t time.Time) *time.Time {
	if t.Year() <= 1 {
		return nil
	}
	return &t
}

// ErrMandateRequestClosed: the request was fulfilled, cancelled or
// expired meanwhile; there is nothing to call GoCardless for.
var ErrMandateRequestClosed = errors.New("mandate request closed")

// MandateRequestIntent is what work on a customer's mandate request
// commits to before calling GoCardless: the request (and so the billing
// request's idempotency key) it works on.
type MandateRequestIntent struct {
	Request int64  `json:"request"`
	Attempt int    `json:"attempt"`
	Key     string `json:"idempotency_key"`
	Actor   string `json:"actor"`
}

// ClaimMandateRequest commits the intent of work on the mandate request
// of want.Key, for holder, in one transaction: it takes the customer's
// mandate-request lease, closes request replaces (an operator's resend of
// a request whose billing request GoCardless no longer holds) if it is
// still awaiting the payer, and returns the customer's open request,
// opening the next attempt from want (its GoCardless connection,
// customer and currency) when there is none. With want.ID set and no
// replaces, it is that request or nothing: ErrMandateRequestClosed when
// it is no longer open. The calls that follow are
// recorded with RecordMandateRequest, the last of them releasing the
// lease. A holder that claims again after a crash resumes its lease; the
// request's columns say which calls are still to be made. The intent is
// audited under actor.
func (l *Ledger) ClaimMandateRequest(ctx context.Context, want MandateRequest, holder, actor string, replaces int64, createdAt time.Time) (MandateRequest, error) {
	var mr MandateRequest
	err := l.Tx(ctx, func(tx pgx.Tx) error {
		aggID := want.Key.String()
		_, resumed, err := Claim(ctx, tx, mandateRequestLease, aggID, holder, MandateRequestLease)
		if err != nil {
			return err
		}
		if replaces != 0 {
			old, err := lockMandateRequest(ctx, tx, replaces)
			if err != nil {
				return fmt.Errorf("mandate request %d: %w", replaces, err)
			}
			if old.State == MandateRequestAwaitingPayer {
				after := old
				after.State = MandateRequestExpired
				if err := SaveMandateRequest(ctx, tx, old, after, actor, "mandate_request.expired", "its billing request is no longer open at GoCardless"); err != nil {
					return err
				}
			}
		}
		if want.ID != 0 && replaces == 0 {
			// This request, not the customer's next.
			mr, err = lockMandateRequest(ctx, tx, want.ID)
			if err == nil && !mr.State.Open() {
				err = fmt.Errorf("mandate request %d is %s: %w", mr.ID, mr.State, ErrMandateRequestClosed)
			}
		} else {
			mr, _, err = OpenMandateRequestIn(ctx, tx, want, createdAt)
		}
		if err != nil || resumed {
			return err
		}
		return intend(ctx, tx, mandateRequestLease, aggID, holder, actor, "mandate_request.intent",
			MandateRequestIntent{Request: mr.ID, Attempt: mr.Attempt, Key: mr.IdempotencyKey, Actor: actor})
	})
	return mr, err
}

// OpenMandateRequestIn returns, locked in tx, the open request of
// customer want.Key, or records the intent of its next attempt (state
// requesting, with the billing request's idempotency key, from want's
// GoCardless connection, customer and currency) and returns that, opened.
// The calls are made later, under the customer's lease
// (ClaimMandateRequest).
func OpenMandateRequestIn(ctx context.Context, tx pgx.Tx, want MandateRequest, createdAt time.Time) (_ MandateRequest, opened bool, err error) {
	mr, err := openMandateRequest(ctx, tx, want.Key, "FOR UPDATE")
	if !errors.Is(err, ErrNotFound) {
		return mr, false, err
	}
	mr, err = openNextMandateRequest(ctx, tx, want, createdAt)
	if errors.Is(err, ErrNotFound) {
		// Another transaction's intent won (one open request per customer).
		mr, err = openMandateRequest(ctx, tx, want.Key, "FOR UPDATE")
		return mr, false, err
	}
	return mr, err == nil, err
}

// openNextMandateRequest inserts the customer's next attempt, in state
// requesting with its idempotency key.
func openNextMandateRequest(ctx context.Context, tx pgx.Tx, want MandateRequest, createdAt time.Time) (MandateRequest, error) {
	k := want.Key
	var attempt int
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(attempt), 0) + 1 FROM mandate_requests
		WHERE connection_id = $1 AND company = $2 AND erp_customer_id = $3`, k.ConnectionID, k.Company, k.CustomerID).Scan(&attempt); err != nil {
		return MandateRequest{}, fmt.Errorf("next mandate request of customer %s: %w", k, err)
	}
	mr, err := scanMandateRequest(tx.QueryRow(ctx, `
		INSERT INTO mandate_requests (erp, connection_id, company, erp_customer_id, gc_connection_id, gc_customer_id,
			attempt, idempotency_key, currency, state, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT DO NOTHING RETURNING `+mandateRequestColumns,
		k.ERP, k.ConnectionID, k.Company, k.CustomerID, want.GCConnectionID, want.GCCustomerID, attempt,
		MandateRequestKey(k, attempt), want.Currency, MandateRequestRequesting, createdAt))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return mr, fmt.Errorf("open mandate request of customer %s: %w", k, err)
	}
	return mr, err
}

// RecordMandateRequest records, under holder's lease, the answer of a
// GoCardless call made for request id: apply changes the request as
// locked now (an event may have moved it on meanwhile), and may write what
// belongs with it in the same transaction; with done, the
// lease is released in the same transaction. ErrLeaseLost when holder no
// longer has the lease: then nothing is recorded.
func (l *Ledger) RecordMandateRequest(ctx context.Context, id int64, holder, actor string, done bool, action, cause string, apply func(pgx.Tx, *MandateRequest) error) (MandateRequest, error) {
	var mr MandateRequest
	err := l.Tx(ctx, func(tx pgx.Tx) error {
		now, err := lockMandateRequest(ctx, tx, id)
		if err != nil {
			return fmt.Errorf("mandate request %d: %w", id, err)
		}
		if done {
			err = Release(ctx, tx, mandateRequestLease, now.Key.String(), holder)
		} else {
			err = holds(ctx, tx, mandateRequestLease, now.Key.String(), holder)
		}
		if err != nil {
			return err
		}
		mr = now
		if err := apply(tx, &mr); err != nil {
			return err
		}
		return SaveMandateRequest(ctx, tx, now, mr, actor, action, cause)
	})
	return mr, err
}

// ReleaseMandateRequest gives up holder's lease on a customer's mandate
// request with nothing to record (the customer needs no request after
// all).
func (l *Ledger) ReleaseMandateRequest(ctx context.Context, k CustomerKey, holder string) error {
	return l.Release(ctx, mandateRequestLease, k.String(), holder)
}

// ParkedInvoice is an ERP invoice message waiting for its customer's
// mandate (awaiting_invoices).
type ParkedInvoice struct {
	ID          int64
	AggregateID string // the invoice's; its versions share it
	Message     []byte
}

// ParkInvoice keeps an invoice message of invoice k, version, until its
// customer has a mandate; the same version parked again is kept once.
func (l *Ledger) ParkInvoice(ctx context.Context, k InvoiceKey, version string, message []byte) error {
	_, err := l.db.Exec(ctx, `INSERT INTO awaiting_invoices (aggregate_id, version, message) VALUES ($1, $2, $3)
		ON CONFLICT (aggregate_id, version) DO NOTHING`, k.String(), version, message)
	if err != nil {
		return fmt.Errorf("park invoice %s: %w", k, err)
	}
	return nil
}

// ParkedInvoices returns up to limit invoices still parked, after id
// after, in the order they were parked.
func (l *Ledger) ParkedInvoices(ctx context.Context, after int64, limit int) ([]ParkedInvoice, error) {
	rows, err := l.db.Query(ctx, `SELECT id, aggregate_id, message FROM awaiting_invoices
		WHERE released_at IS NULL AND id > $1 ORDER BY id LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read parked invoices: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ParkedInvoice, error) {
		var p ParkedInvoice
		return p, r.Scan(&p.ID, &p.AggregateID, &p.Message)
	})
	if err != nil {
		return nil, fmt.Errorf("read parked invoices: %w", err)
	}
	return list, nil
}

// KeepReleasedInvoice, in tx (that of the invoice's exception), keeps
// the message of invoice aggregateID, version, released: a resend of its
// customer's link can park it again (ReparkInvoices) without the ERP
// publishing it again.
func KeepReleasedInvoice(ctx context.Context, tx pgx.Tx, aggregateID, version string, message []byte) error {
	if _, err := tx.Exec(ctx, `INSERT INTO awaiting_invoices (aggregate_id, version, message, released_at)
		VALUES ($1, $2, $3, now())
		ON CONFLICT (aggregate_id, version) DO UPDATE SET released_at = coalesce(awaiting_invoices.released_at, now())`,
		aggregateID, version, message); err != nil {
		return fmt.Errorf("keep invoice %s: %w", aggregateID, err)
	}
	return nil
}

// Reparked says what a resend did with the invoices of its customer that
// had become exceptions for want of a mandate.
type Reparked struct {
	// Invoices parked again, their exceptions resolved.
	Invoices []string `json:"invoices"`
	// Left are exceptions without a kept message (raised before messages
	// were kept), left open: the ERP must publish those invoices again.
	Left []int64 `json:"left_open,omitempty"`
}

// ReparkInvoices, in tx, parks again the invoices of customer key whose
// open collection exceptions are of one of kinds, and resolves those
// exceptions with note, audited as actor. Only open exceptions are taken
// (locked), so each invoice is parked again once however often or
// concurrently it runs. An invoice is parked under its collection's
// identity, which its exception names too.
func ReparkInvoices(ctx context.Context, tx pgx.Tx, key CustomerKey, kinds []string, actor, note string) (Reparked, error) {
	var out Reparked
	prefix := InvoiceKey{ERP: key.ERP, ConnectionID: key.ConnectionID, Company: key.Company}.String()
	rows, err := tx.Query(ctx, `SELECT id, aggregate_id, coalesce(detail->>'version', '') FROM exceptions
		WHERE status = 'open' AND aggregate_type = 'collection' AND kind = ANY($1)
		  AND starts_with(aggregate_id, $2) AND detail->>'customer' = $3
		ORDER BY id FOR UPDATE`, kinds, prefix, key.CustomerID)
	if err != nil {
		return out, fmt.Errorf("exceptions of customer %s: %w", key.CustomerID, err)
	}
	type exc struct {
		id             int64
		aggID, version string
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (exc, error) {
		var e exc
		return e, r.Scan(&e.id, &e.aggID, &e.version)
	})
	if err != nil {
		return out, fmt.Errorf("exceptions of customer %s: %w", key.CustomerID, err)
	}
	for _, e := range list {
		tag, err := tx.Exec(ctx, `UPDATE awaiting_invoices SET released_at = NULL
			WHERE aggregate_id = $1 AND version = $2 AND released_at IS NOT NULL`, e.aggID, e.version)
		if err != nil {
			return out, fmt.Errorf("park invoice %s again: %w", e.aggID, err)
		}
		if tag.RowsAffected() == 0 {
			out.Left = append(out.Left, e.id)
			continue
		}
		if err := SetExceptionStatus(ctx, tx, e.id, "resolved", actor, note); err != nil {
			return out, err
		}
		// The invoice may wait in vain again: its next exception must not
		// be taken for this one.
		if _, err := tx.Exec(ctx, `UPDATE exceptions SET dedup_key = dedup_key || ':resolved:' || id
			WHERE id = $1 AND dedup_key IS NOT NULL`, e.id); err != nil {
			return out, fmt.Errorf("exception %d: %w", e.id, err)
		}
		out.Invoices = append(out.Invoices, strings.TrimPrefix(e.aggID, prefix))
	}
	return out, nil
}

// ReleaseParkedInvoice records that parked invoice id was collected or
// became an exception.
func (l *Ledger) ReleaseParkedInvoice(ctx context.Context, id int64) error {
	if _, err := l.db.Exec(ctx, `UPDATE awaiting_invoices SET released_at = now() WHERE id = $1`, id); err != nil {
		return fmt.Errorf("release parked invoice %d: %w", id, err)
	}
	return nil
}
