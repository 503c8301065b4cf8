package operator

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/platform/audit"
	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/collect"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/ledger"
)

// MandateRequest is a billing request asking an ERP customer for a
// mandate, as AR sees it: whose it is, the link the payer must open and
// until when, whether GoCardless emailed it, and what became of it.
type MandateRequest = collect.MandateRequest

// MandateRequests lists the mandate requests in state (awaiting_payer,
// requesting, fulfilled, cancelled, expired; "" for all), oldest first.
func (d *Desk) MandateRequests(ctx context.Context, state string) ([]MandateRequest, error) {
	rows, err := d.db.Query(ctx, `SELECT id FROM mandate_requests WHERE $1 = '' OR state = $1 ORDER BY created_at, id LIMIT 10000`, state)
	if err != nil {
		return nil, fmt.Errorf("list mandate requests: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("list mandate requests: %w", err)
	}
	out := make([]MandateRequest, 0, len(ids))
	for _, id := range ids {
		mr, err := collect.MandateRequestByID(ctx, d.db, id)
		if err != nil {
			return nil, err
		}
		out = append(out, mr)
	}
	return out, nil
}

// ResendMandateRequest gives the payer of request id a new link: a new
// flow for the same billing request while GoCardless still holds it
// pending (a flow lasts 7 days; the request does not expire), else a new
// billing request. Like every GoCardless call here, it is made outside any
// transaction and its answer recorded after; the action is audited.
//
// The customer's invoices wait mandate_wait again from the resend, and
// those that had already become exceptions for want of the mandate
// (mandate_request_expired, mandate_not_authorised) are parked again, in
// the transaction that records the new link, their exceptions resolved
// with a note: each once, however often the link is resent (the answer's
// Reparked says which). mlcctl and the console both resend through here.
func (d *Desk) ResendMandateRequest(ctx context.Context, id int64, actor string) (MandateRequest, error) {
	mr, err := collect.MandateRequestByID(ctx, d.db, id)
	if errors.Is(err, ledger.ErrNotFound) {
		return mr, fmt.Errorf("mandate request %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return mr, err
	}
	if mr.State == "fulfilled" || mr.State == "requesting" {
		return mr, fmt.Errorf("mandate request %d is %s; nothing to resend", id, mr.State)
	}
	erpConn, err := d.dir.ByID(ctx, connections.Kind(mr.Key.ERP), mr.Key.ConnectionID)
	if err != nil {
		return mr, err
	}
	conn, err := d.dir.ByID(ctx, "gocardless", mr.GCConnectionID)
	if err != nil {
		return mr, err
	}
	_, client, err := d.dir.GoCardless(ctx, conn.Name)
	if err != nil {
		return mr, err
	}
	cu, err := client.GetCustomer(ctx, mr.GCCustomerID)
	if err != nil {
		return mr, fmt.Errorf("read customer %s: %w", mr.GCCustomerID, err)
	}
	prefill := &gocardless.PrefilledCustomer{Email: cu.Email, GivenName: cu.GivenName, FamilyName: cu.FamilyName,
		CompanyName: cu.CompanyName, AddressLine1: cu.AddressLine1, City: cu.City, PostalCode: cu.PostalCode, CountryCode: cu.CountryCode}
	if mr.State == "awaiting_payer" {
		br, err := client.GetBillingRequest(ctx, mr.BillingRequestID)
		if err != nil {
			return mr, fmt.Errorf("read billing request %s: %w", mr.BillingRequestID, err)
		}
		if br.Status == gocardless.BillingRequestPending || br.Status == gocardless.BillingRequestReadyToFulfil {
			return d.newFlow(ctx, client, mr, prefill, erpConn.Name, actor)
		}
	}
	// The billing request is gone: ask again with the next attempt.
	key := mr.Key
	next := mr
	err = d.ledger.Tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE mandate_requests SET state = 'expired', updated_at = now()
			WHERE id = $1 AND state = 'awaiting_payer'`, mr.ID); err != nil {
			return err
		}
		next.Attempt = mr.Attempt + 1
		next.IdempotencyKey = fmt.Sprintf("mlc:%s:%d:%s:%s:mandate-request:%d", key.ERP, key.ConnectionID, key.Company, key.CustomerID, next.Attempt)
		return tx.QueryRow(ctx, `INSERT INTO mandate_requests (erp, connection_id, company, erp_customer_id, gc_connection_id,
				gc_customer_id, attempt, idempotency_key, currency, state, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'requesting', $10) RETURNING id`,
			key.ERP, key.ConnectionID, key.Company, key.CustomerID, mr.GCConnectionID, mr.GCCustomerID, next.Attempt,
			next.IdempotencyKey, mr.Currency, d.Now()).Scan(&next.ID)
	})
	if err != nil {
		return mr, fmt.Errorf("open the next mandate request of customer %s: %w", key.CustomerID, err)
	}
	meta := map[string]string{"erp_customer": key.CustomerID, "company": key.Company}
	p := gocardless.BillingRequestParams{Metadata: meta, MandateRequest: gocardless.MandateRequestParams{Currency: mr.Currency, Metadata: meta}}
	p.Links.Customer = mr.GCCustomerID
	br, _, err := client.CreateBillingRequest(ctx, next.IdempotencyKey, p)
	if err != nil {
		return next, fmt.Errorf("create billing request: %w", err)
	}
	if _, err := d.db.Exec(ctx, `UPDATE mandate_requests SET billing_request_id = $2, updated_at = now() WHERE id = $1`, next.ID, br.ID); err != nil {
		return next, fmt.Errorf("record billing request %s: %w", br.ID, err)
	}
	next.BillingRequestID = br.ID
	return d.newFlow(ctx, client, next, prefill, erpConn.Name, actor)
}

// newFlow creates a flow for mr's billing request and records its link,
// parking the customer's unauthorised invoices again in the same
// transaction.
func (d *Desk) newFlow(ctx context.Context, client *gocardless.Client, mr MandateRequest, prefill *gocardless.PrefilledCustomer, erpConnection, actor string) (MandateRequest, error) {
	fp := gocardless.BillingRequestFlowParams{LockCurrency: true, PrefilledCustomer: prefill}
	fp.Links.BillingRequest = mr.BillingRequestID
	flow, err := client.CreateBillingRequestFlow(ctx, fp)
	if err != nil {
		return mr, fmt.Errorf("create billing request flow: %w", err)
	}
	var reparked collect.Reparked
	err = d.ledger.Tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE mandate_requests SET flow_id = $2, authorisation_url = $3, flow_expires_at = $4,
				state = 'awaiting_payer', resent_at = $5, updated_at = now() WHERE id = $1`,
			mr.ID, flow.ID, flow.AuthorisationURL, flow.ExpiresAt, d.Now()); err != nil {
			return err
		}
		note := fmt.Sprintf("mandate link resent (mandate request %d, billing request %s): the invoice waits for the payer again",
			mr.ID, mr.BillingRequestID)
		var err error
		if reparked, err = collect.Repark(ctx, tx, mr.Key, erpConnection, actor, note); err != nil {
			return err
		}
		_, err = audit.Append(ctx, tx, audit.Entry{AggregateType: "mandate_request", AggregateID: fmt.Sprint(mr.ID),
			Actor: actor, Action: "mandate_request.resent",
			Payload: map[string]any{"billing_request": mr.BillingRequestID, "flow": flow.ID, "expires_at": flow.ExpiresAt,
				"reparked": reparked.Invoices, "left_open": reparked.Left}})
		return err
	})
	if err != nil {
		return mr, fmt.Errorf("record flow %s: %w", flow.ID, err)
	}
	out, err := collect.MandateRequestByID(ctx, d.db, mr.ID)
	out.Reparked = &reparked
	return out, err
}
