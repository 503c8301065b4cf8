package operator

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/collect"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/ledger"
)

// MandateRequest is a billing request asking an ERP customer for a
// mandate, as AR sees it: whose it is, the link the payer must open and
// until when, whether GoCardless emailed it, and what became of it.
type MandateRequest = ledger.MandateRequest

// maxMandateRequests bounds what one listing returns.
const maxMandateRequests = 10000

// MandateRequests lists the mandate requests in state (awaiting_payer,
// requesting, fulfilled, cancelled, expired; "" for all), oldest first.
func (d *Desk) MandateRequests(ctx context.Context, state string) ([]MandateRequest, error) {
	return d.ledger.MandateRequests(ctx, ledger.MandateRequestState(state), maxMandateRequests)
}

// ResendMandateRequest gives the payer of request id a new link: a new
// flow for the same billing request while GoCardless still holds it
// pending (a flow lasts 7 days; the request does not expire), else a new
// billing request under the next attempt's key. It follows the
// orchestrator's pattern for outside calls, as the first request did
// (collect.ResumeMandateRequest): the intent is committed under the
// customer's mandate-request lease, GoCardless is called with nothing
// held, each answer is recorded, audited under actor. A resend cut short
// is finished by resending again, which resumes the lease.
//
// The customer's invoices wait mandate_wait again from the resend, and
// those that had already become exceptions for want of the mandate
// (mandate_request_expired, mandate_not_authorised) are parked again, in
// the transaction that records the new link, their exceptions resolved
// with a note: each once, however often the link is resent (the answer's
// Reparked says which). mlcctl and the console both resend through here.
func (d *Desk) ResendMandateRequest(ctx context.Context, id int64, actor string) (MandateRequest, error) {
	mr, err := d.ledger.MandateRequest(ctx, id)
	if errors.Is(err, ledger.ErrNotFound) {
		return mr, fmt.Errorf("mandate request %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return mr, err
	}
	if mr.State == ledger.MandateRequestFulfilled || mr.State == ledger.MandateRequestRequesting {
		return mr, fmt.Errorf("mandate request %d is %s; nothing to resend", id, mr.State)
	}
	erpConn, err := d.dir.ByID(ctx, connections.Kind(mr.Key.ERP), mr.Key.ConnectionID)
	if err != nil {
		return mr, err
	}
	route, err := d.dir.Route(ctx, erpConn.Name, mr.Key.Company)
	if err != nil {
		return mr, err
	}
	if route.GoCardless.ID != mr.GCConnectionID {
		return mr, fmt.Errorf("mandate request %d was made through GoCardless connection %d; %s/%s now collects through %q: resend it there by hand",
			id, mr.GCConnectionID, erpConn.Name, mr.Key.Company, route.GoCardless.Name)
	}
	// Reads only, before anything is claimed: what to prefill, and
	// whether GoCardless still holds the billing request open.
	cu, err := route.Client.GetCustomer(ctx, mr.GCCustomerID)
	if err != nil {
		return mr, fmt.Errorf("read customer %s: %w", mr.GCCustomerID, err)
	}
	fp := gocardless.BillingRequestFlowParams{LockCurrency: true, PrefilledCustomer: &gocardless.PrefilledCustomer{
		Email: cu.Email, GivenName: cu.GivenName, FamilyName: cu.FamilyName, CompanyName: cu.CompanyName,
		AddressLine1: cu.AddressLine1, City: cu.City, PostalCode: cu.PostalCode, CountryCode: cu.CountryCode}}
	replaces := mr.ID
	if mr.State == ledger.MandateRequestAwaitingPayer {
		br, err := route.Client.GetBillingRequest(ctx, mr.BillingRequestID)
		if err != nil {
			return mr, fmt.Errorf("read billing request %s: %w", mr.BillingRequestID, err)
		}
		if br.Status == gocardless.BillingRequestPending || br.Status == gocardless.BillingRequestReadyToFulfil {
			replaces = 0 // the same request, with a new flow
		}
	}
	holder := fmt.Sprintf("resend:%d", mr.ID)
	open, err := d.ledger.ClaimMandateRequest(ctx, mr, holder, actor, replaces, d.Now())
	if err != nil {
		return mr, err
	}
	if open.ID == mr.ID {
		open.FlowID = "" // ask for a new flow: the recorded one expired
	}
	var reparked ledger.Reparked
	resent := func(tx pgx.Tx, now *ledger.MandateRequest) (err error) {
		now.ResentAt = d.Now()
		note := fmt.Sprintf("mandate link resent (mandate request %d, billing request %s): the invoice waits for the payer again",
			now.ID, now.BillingRequestID)
		reparked, err = collect.Repark(ctx, tx, now.Key, actor, note)
		return err
	}
	if err := d.collector.ResumeMandateRequest(ctx, route, open, holder, actor, fp, resent); err != nil {
		return open, err
	}
	out, err := d.ledger.MandateRequest(ctx, open.ID)
	out.Reparked = &reparked
	return out, err
}
