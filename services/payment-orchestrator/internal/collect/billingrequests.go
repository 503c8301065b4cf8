package collect

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/connectors/gocardless/scheme"
	"github.com/ml-connector/ml-connector/platform/connections"
	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/accounts"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/ledger"
)

// Mandates through billing requests (mandate_setup billing_request, the
// default). An ordinary GoCardless account cannot create bank accounts and
// mandates from ERP bank details; the payer authorises a billing request
// flow instead (docs/gocardless.md). For an ERP customer without a usable
// mandate the orchestrator:
//
//  1. records its intent in mandate_requests (state requesting, with the
//     billing request's idempotency key) and commits;
//  2. creates the billing request with that key and records its id;
//  3. creates a flow (GoCardless does not make that call idempotent; a
//     second flow after a lost answer is harmless) and records its
//     authorisation_url and expiry (state awaiting_payer);
//  4. when the connection says notify_payer, asks GoCardless to email it
//     and records the answer, a refusal included.
//
// No transaction is open during a GoCardless call, and every step re-reads
// what is recorded, so a crash or a second worker at any point resumes
// the same request rather than making another. Invoices of the customer
// wait (visibly: mlcctl mandates) until the billing_requests "fulfilled"
// event links the mandate, and become exceptions after the connection's
// mandate_wait.

// MandateRequest is a row of mandate_requests.
// Its JSON names are snake_case, as mlcctl --json and the console speak.
type MandateRequest struct {
	ID               int64              `json:"id"`
	Key              ledger.CustomerKey `json:"customer"`
	GCConnectionID   int64              `json:"gc_connection_id"`
	GCCustomerID     string             `json:"gc_customer_id"`
	Attempt          int                `json:"attempt"`
	IdempotencyKey   string             `json:"idempotency_key"`
	Currency         string             `json:"currency"`
	State            string             `json:"state"`
	BillingRequestID string             `json:"billing_request_id"`
	FlowID           string             `json:"flow_id"`
	AuthorisationURL string             `json:"authorisation_url"`
	FlowExpiresAt    time.Time          `json:"flow_expires_at"`
	Notified         string             `json:"notified"`
	MandateID        string             `json:"mandate_id"`
	CreatedAt        time.Time          `json:"created_at"`
	// ResentAt is when AR last resent the link (zero if never); the
	// customer's invoices wait mandate_wait from WaitingSince.
	ResentAt time.Time `json:"resent_at,omitzero"`
	// Reparked is set on the answer of a resend only: the invoices it
	// parked again (Repark).
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
		return m, ledger.ErrNotFound
	}
	return m, err
}

// MandateRequestByID returns request id.
func MandateRequestByID(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, id int64) (MandateRequest, error) {
	return scanMandateRequest(q.QueryRow(ctx, `SELECT `+mandateRequestColumns+` FROM mandate_requests WHERE id = $1`, id))
}

// OpenMandateRequest returns the customer's request that is still
// requesting or awaiting the payer.
func OpenMandateRequest(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, k ledger.CustomerKey) (MandateRequest, error) {
	return scanMandateRequest(q.QueryRow(ctx, `SELECT `+mandateRequestColumns+` FROM mandate_requests
		WHERE connection_id = $1 AND company = $2 AND erp_customer_id = $3 AND state IN ('requesting', 'awaiting_payer')`,
		k.ConnectionID, k.Company, k.CustomerID))
}

// requestCurrency is the currency of the mandate asked for: the ERP bank
// details' currency, else that of the scheme of the customer's country.
func requestCurrency(m *mlcv1.CustomerChanged) (string, error) {
	if c := m.GetBankDetails().GetCurrency(); c != "" {
		if _, err := scheme.ForCurrency(c); err != nil {
			return "", err
		}
		return c, nil
	}
	s, err := scheme.ForCountry(m.GetCountryCode())
	if err != nil {
		return "", fmt.Errorf("customer %s: %w", m.GetCustomerId(), err)
	}
	return s.Currency, nil
}

// requestMandate makes sure the customer has an open billing request
// with a flow, resuming whatever an earlier attempt left undone.
func (c *Collector) requestMandate(ctx context.Context, route accounts.Route, key ledger.CustomerKey, m *mlcv1.CustomerChanged) error {
	link, err := c.ledger.Customer(ctx, key)
	if err != nil {
		return err
	}
	if link.MandateUsable() || link.GCCustomerID == "" {
		return nil
	}
	currency, err := requestCurrency(m)
	if err != nil {
		return invalidf("mandate_refused", "no mandate can be requested: %v", err)
	}
	// 1. Intent.
	var mr MandateRequest
	err = c.ledger.Tx(ctx, func(tx pgx.Tx) error {
		var err error
		mr, _, err = openMandateRequest(ctx, tx, key, route.GoCardless.ID, link.GCCustomerID, currency, c.Now())
		return err
	})
	if err != nil {
		return err
	}
	return c.resumeMandateRequest(ctx, route, mr, m)
}

// openMandateRequest records, in tx, the intent to ask customer key for a
// mandate in currency (state requesting, with the billing request's
// idempotency key), unless the customer has an open request, which it
// returns instead (opened false).
func openMandateRequest(ctx context.Context, tx pgx.Tx, key ledger.CustomerKey, gcConnectionID int64, gcCustomerID, currency string, now time.Time) (mr MandateRequest, opened bool, err error) {
	mr, err = OpenMandateRequest(ctx, tx, key)
	if !errors.Is(err, ledger.ErrNotFound) {
		return mr, false, err
	}
	var attempt int
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(attempt), 0) + 1 FROM mandate_requests
		WHERE connection_id = $1 AND company = $2 AND erp_customer_id = $3`, key.ConnectionID, key.Company, key.CustomerID).Scan(&attempt); err != nil {
		return mr, false, fmt.Errorf("next mandate request attempt: %w", err)
	}
	idem := fmt.Sprintf("mlc:%s:%d:%s:%s:mandate-request:%d", key.ERP, key.ConnectionID, key.Company, key.CustomerID, attempt)
	mr, err = scanMandateRequest(tx.QueryRow(ctx, `
		INSERT INTO mandate_requests (erp, connection_id, company, erp_customer_id, gc_connection_id, gc_customer_id,
			attempt, idempotency_key, currency, state, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'requesting', $10)
		ON CONFLICT DO NOTHING RETURNING `+mandateRequestColumns,
		key.ERP, key.ConnectionID, key.Company, key.CustomerID, gcConnectionID, gcCustomerID, attempt, idem, currency, now))
	if errors.Is(err, ledger.ErrNotFound) {
		mr, err = OpenMandateRequest(ctx, tx, key) // another worker's intent won
		return mr, false, err
	}
	return mr, err == nil, err
}

// AskAgain, in billing-request mode, records in tx (the transaction that
// records the end of the customer's mandate) the intent to ask the
// customer of link for a new mandate, in the currency of the mandate that
// ended: the customer's invoices are parked from then on, and the sweep
// makes the GoCardless calls (ResumeRequested), so nobody waits for the
// customer's next change in the ERP. It returns the customer's open
// request, and whether it was opened now.
func AskAgain(ctx context.Context, tx pgx.Tx, link ledger.CustomerLink, now time.Time) (MandateRequest, bool, error) {
	currency := ""
	if s, err := scheme.ByName(link.MandateScheme); err == nil {
		currency = s.Currency
	} else if s, err := scheme.ForCountry(link.Country); err == nil {
		currency = s.Currency
	} else {
		return MandateRequest{}, false, fmt.Errorf("customer %s: no currency for a new mandate request (scheme %q, country %q)",
			link.Key.CustomerID, link.MandateScheme, link.Country)
	}
	return openMandateRequest(ctx, tx, link.Key, link.GCConnectionID, link.GCCustomerID, currency, now)
}

// resumeBatch bounds the open intents one sweep resumes.
const resumeBatch = 100

// ResumeRequested makes the GoCardless calls of mandate requests whose
// intent is recorded and whose calls are not (opened by AskAgain, or left
// by a crash), prefilling the flow from the GoCardless customer. A second
// worker resuming the same request at once gets the same billing request
// (same idempotency key) and at worst a second flow, which GoCardless
// allows (docs/gocardless.md). It returns how many it resumed.
func (c *Collector) ResumeRequested(ctx context.Context) (int, error) {
	rows, err := c.ledger.DB().Query(ctx, `SELECT id FROM mandate_requests WHERE state = 'requesting' ORDER BY id LIMIT $1`, resumeBatch)
	if err != nil {
		return 0, fmt.Errorf("mandate requests to resume: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return 0, fmt.Errorf("mandate requests to resume: %w", err)
	}
	done := 0
	for _, id := range ids {
		if err := c.resumeRequest(ctx, id); err != nil {
			c.log.WarnContext(ctx, "mandate request not resumed", "mandate_request", id, "error", err)
			continue
		}
		done++
	}
	return done, nil
}

func (c *Collector) resumeRequest(ctx context.Context, id int64) error {
	mr, err := MandateRequestByID(ctx, c.ledger.DB(), id)
	if err != nil {
		return err
	}
	erpConn, err := c.dir.ByID(ctx, connections.Kind(mr.Key.ERP), mr.Key.ConnectionID)
	if err != nil {
		return err
	}
	route, err := c.dir.Route(ctx, erpConn.Name, mr.Key.Company)
	if err != nil {
		return err
	}
	cu, err := route.Client.GetCustomer(ctx, mr.GCCustomerID)
	if err != nil {
		return fmt.Errorf("read customer %s: %w", mr.GCCustomerID, err)
	}
	m := &mlcv1.CustomerChanged{CustomerId: mr.Key.CustomerID, Email: cu.Email, GivenName: cu.GivenName, FamilyName: cu.FamilyName,
		CompanyName: cu.CompanyName, AddressLine1: cu.AddressLine1, AddressLine2: cu.AddressLine2, AddressLine3: cu.AddressLine3,
		City: cu.City, Region: cu.Region, PostalCode: cu.PostalCode, CountryCode: cu.CountryCode, Language: cu.Language}
	return c.resumeMandateRequest(ctx, route, mr, m)
}

// resumeMandateRequest does the GoCardless calls mr still needs, each
// followed by recording its answer.
func (c *Collector) resumeMandateRequest(ctx context.Context, route accounts.Route, mr MandateRequest, m *mlcv1.CustomerChanged) error {
	meta := map[string]string{"erp_customer": mr.Key.CustomerID, "company": mr.Key.Company}
	if mr.BillingRequestID == "" {
		p := gocardless.BillingRequestParams{Metadata: meta,
			MandateRequest: gocardless.MandateRequestParams{Currency: mr.Currency, Metadata: meta}}
		p.Links.Customer, p.Links.Creditor = mr.GCCustomerID, route.Creditor
		br, _, err := route.Client.CreateBillingRequest(ctx, mr.IdempotencyKey, p)
		if err != nil {
			return classify("create billing request", err)
		}
		if err := c.recordMandateRequest(ctx, mr.ID, `billing_request_id = $2`, br.ID); err != nil {
			return err
		}
		mr.BillingRequestID = br.ID
	}
	if mr.FlowID == "" {
		fp := gocardless.BillingRequestFlowParams{LockCurrency: true, Language: m.GetLanguage(),
			PrefilledCustomer: &gocardless.PrefilledCustomer{
				Email: m.GetEmail(), GivenName: m.GetGivenName(), FamilyName: m.GetFamilyName(), CompanyName: m.GetCompanyName(),
				AddressLine1: m.GetAddressLine1(), AddressLine2: m.GetAddressLine2(), AddressLine3: m.GetAddressLine3(),
				City: m.GetCity(), Region: m.GetRegion(), PostalCode: m.GetPostalCode(), CountryCode: m.GetCountryCode(),
				SwedishIdentityNumber: m.GetSwedishIdentityNumber(), DanishIdentityNumber: m.GetDanishIdentityNumber(),
			}}
		if fp.PrefilledCustomer.CompanyName == "" && fp.PrefilledCustomer.GivenName == "" {
			fp.PrefilledCustomer.CompanyName = m.GetName()
		}
		if t := m.GetBankDetails().GetAccountType(); t != "" {
			fp.PrefilledBankAccount = &struct {
				AccountType string `json:"account_type,omitempty"`
			}{t}
		}
		fp.Links.BillingRequest = mr.BillingRequestID
		flow, err := route.Client.CreateBillingRequestFlow(ctx, fp)
		if err != nil {
			return classify("create billing request flow", err)
		}
		if err := c.recordMandateRequest(ctx, mr.ID, `flow_id = $2, authorisation_url = $3, flow_expires_at = $4, state = 'awaiting_payer'`,
			flow.ID, flow.AuthorisationURL, flow.ExpiresAt); err != nil {
			return err
		}
	}
	if route.GC.NotifyPayer && mr.Notified == "" {
		note := "sent"
		if _, err := route.Client.NotifyBillingRequest(ctx, mr.IdempotencyKey+":notify", mr.BillingRequestID, gocardless.NotifyParams{}); err != nil {
			if classified := classify("notify payer", err); !isInvalid(classified) {
				return classified
			}
			// GoCardless documents notify for Pay by Bank requests only: a
			// refusal leaves AR to send the link, which mlcctl shows.
			note = "refused: " + err.Error()
		}
		if err := c.recordMandateRequest(ctx, mr.ID, `notified = $2`, truncate(note, 500)); err != nil {
			return err
		}
	}
	return nil
}

func isInvalid(err error) bool {
	var inv *invalid
	return errors.As(err, &inv)
}

func truncate(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n])
	}
	return s
}

// recordMandateRequest sets columns of request id in a transaction of its
// own, after the GoCardless call whose answer they hold.
func (c *Collector) recordMandateRequest(ctx context.Context, id int64, set string, args ...any) error {
	return c.ledger.Tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE mandate_requests SET `+set+`, updated_at = now() WHERE id = $1`,
			append([]any{id}, args...)...); err != nil {
			return fmt.Errorf("record mandate request %d: %w", id, err)
		}
		return nil
	})
}

// awaitingMandate decides what an invoice of a customer without a usable
// mandate (none yet, or one that ended) does in billing-request mode:
// wait (errNoMandateYet) while the
// customer's request is open and younger than the connection's
// mandate_wait and its flow has not expired, else become an exception
// that says why.
func (c *Collector) awaitingMandate(ctx context.Context, route accounts.Route, link ledger.CustomerLink) error {
	key := link.Key
	mr, err := OpenMandateRequest(ctx, c.ledger.DB(), key)
	switch {
	case errors.Is(err, ledger.ErrNotFound) && link.GCMandateID != "":
		// Its mandate ended and no new one is being asked for (the
		// request was cancelled, or the mandate ended before requests
		// were opened at once): AR must act.
		return invalidf("mandate_unusable", "mandate %s of customer %s is %s and no new mandate is requested",
			link.GCMandateID, key.CustomerID, link.MandateStatus)
	case errors.Is(err, ledger.ErrNotFound):
		return fmt.Errorf("customer %s: %w", key.CustomerID, errNoMandateYet)
	case err != nil:
		return err
	}
	now := c.Now() // GoCardless's clock: flows expire by it
	switch {
	case mr.State == "awaiting_payer" && !mr.FlowExpiresAt.IsZero() && now.After(mr.FlowExpiresAt):
		return invalidf("mandate_request_expired", "customer %s did not authorise billing request %s before its link expired at %s; resend it (mlcctl mandates resend %d)",
			key.CustomerID, mr.BillingRequestID, mr.FlowExpiresAt.UTC().Format(time.RFC3339), mr.ID)
	case now.Sub(mr.WaitingSince()) > route.GC.MandateWait:
		return invalidf("mandate_not_authorised", "customer %s has not authorised billing request %s in %s (link %s)",
			key.CustomerID, mr.BillingRequestID, route.GC.MandateWait, mr.AuthorisationURL)
	}
	return fmt.Errorf("customer %s awaits authorisation of %s: %w", key.CustomerID, mr.BillingRequestID, errAwaitingPayer)
}

// errAwaitingPayer: the invoice's customer has been asked for a mandate
// and has not authorised it yet. Payers take days, far longer than the
// bus should redeliver a message, so the invoice is parked.
var errAwaitingPayer = errors.New("awaiting the payer's authorisation")

// park keeps an invoice whose customer has yet to authorise a mandate in
// awaiting_invoices; the message is then acknowledged.
func (c *Collector) park(ctx context.Context, m *mlcv1.InvoiceReady) error {
	data, err := proto.Marshal(m)
	if err != nil {
		return fmt.Errorf("park invoice: %w", err)
	}
	aggID := parkedID(m.GetErp().GetConnection(), m.GetErp().GetCompany(), invoiceID(m.GetInvoice()))
	return c.ledger.Tx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO awaiting_invoices (aggregate_id, version, message) VALUES ($1, $2, $3)
			ON CONFLICT (aggregate_id, version) DO NOTHING`, aggID, m.GetVersion(), data)
		if err != nil {
			return fmt.Errorf("park invoice %s: %w", aggID, err)
		}
		return nil
	})
}

// parkedID is an invoice's id in awaiting_invoices: ERP connection name,
// company and invoice id.
func parkedID(erpConnection, company, invoiceID string) string {
	return erpConnection + ":" + company + ":" + invoiceID
}

// unauthorisedKinds are the exceptions of an invoice whose customer has
// not authorised a mandate in time; a resend of the link parks such
// invoices again (Repark).
var unauthorisedKinds = []string{"mandate_request_expired", "mandate_not_authorised"}

// keepUnauthorised, in the transaction of an invoice's exception, keeps
// the invoice's message (released) when the exception says its customer
// did not authorise in time, parked or not before: a resend of the link
// can then collect it without the ERP publishing it again.
func (c *Collector) keepUnauthorised(ctx context.Context, m *mlcv1.InvoiceReady) func(pgx.Tx, *invalid) error {
	return func(tx pgx.Tx, inv *invalid) error {
		if !slices.Contains(unauthorisedKinds, inv.kind) {
			return nil
		}
		data, err := proto.Marshal(m)
		if err != nil {
			return fmt.Errorf("keep invoice: %w", err)
		}
		aggID := parkedID(m.GetErp().GetConnection(), m.GetErp().GetCompany(), invoiceID(m.GetInvoice()))
		if _, err := tx.Exec(ctx, `INSERT INTO awaiting_invoices (aggregate_id, version, message, released_at)
			VALUES ($1, $2, $3, now())
			ON CONFLICT (aggregate_id, version) DO UPDATE SET released_at = coalesce(awaiting_invoices.released_at, now())`,
			aggID, m.GetVersion(), data); err != nil {
			return fmt.Errorf("keep invoice %s: %w", aggID, err)
		}
		return nil
	}
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

// Repark, in tx, parks again the invoices of customer key (of ERP
// connection erpConnection) that became exceptions because the customer
// did not authorise in time, and resolves those exceptions with note,
// audited as actor. It runs in the transaction that records a resent
// link, and only open exceptions are taken (locked), so each invoice is
// parked again once however often or concurrently the link is resent.
// The sweep then collects each once the payer authorises.
func Repark(ctx context.Context, tx pgx.Tx, key ledger.CustomerKey, erpConnection, actor, note string) (Reparked, error) {
	var out Reparked
	prefix := ledger.InvoiceKey{ERP: key.ERP, ConnectionID: key.ConnectionID, Company: key.Company}.String()
	rows, err := tx.Query(ctx, `SELECT id, aggregate_id, coalesce(detail->>'version', '') FROM exceptions
		WHERE status = 'open' AND aggregate_type = 'collection' AND kind = ANY($1)
		  AND starts_with(aggregate_id, $2) AND detail->>'customer' = $3
		ORDER BY id FOR UPDATE`, unauthorisedKinds, prefix, key.CustomerID)
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
		invoice := strings.TrimPrefix(e.aggID, prefix)
		tag, err := tx.Exec(ctx, `UPDATE awaiting_invoices SET released_at = NULL
			WHERE aggregate_id = $1 AND version = $2 AND released_at IS NOT NULL`,
			parkedID(erpConnection, key.Company, invoice), e.version)
		if err != nil {
			return out, fmt.Errorf("park invoice %s again: %w", invoice, err)
		}
		if tag.RowsAffected() == 0 {
			out.Left = append(out.Left, e.id)
			continue
		}
		if err := ledger.SetExceptionStatus(ctx, tx, e.id, "resolved", actor, note); err != nil {
			return out, err
		}
		// The invoice may wait in vain again: its next exception must not
		// be taken for this one.
		if _, err := tx.Exec(ctx, `UPDATE exceptions SET dedup_key = dedup_key || ':resolved:' || id
			WHERE id = $1 AND dedup_key IS NOT NULL`, e.id); err != nil {
			return out, fmt.Errorf("exception %d: %w", e.id, err)
		}
		out.Invoices = append(out.Invoices, invoice)
	}
	return out, nil
}

// RunSweeps runs SweepAwaiting every interval until ctx ends, then gives
// up the sweep's lease so another replica takes over at once.
func (c *Collector) RunSweeps(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := c.ledger.Release(context.WithoutCancel(ctx), sweepLease, sweepLease, c.holder); err != nil && !errors.Is(err, ledger.ErrLeaseLost) {
				c.log.WarnContext(ctx, "sweep lease not released", "error", err)
			}
			return nil
		case <-t.C:
			if n, err := c.SweepAwaiting(ctx); err != nil {
				c.log.WarnContext(ctx, "sweep of parked invoices", "error", err)
			} else if n > 0 {
				c.log.InfoContext(ctx, "parked invoices released", "count", n)
			}
		}
	}
}

// sweepLease is the lease (aggregate type and id) that makes one replica
// the sweeper: it keeps it from sweep to sweep, renewing it, so that its
// turns (sweptTo) go on where they stopped; another replica takes it over
// SweepLease after the sweeper died, or at once after it stopped.
const sweepLease = "awaiting-invoices-sweep"

// claimSweep takes or renews the sweep's lease; false when another
// replica holds it.
func (c *Collector) claimSweep(ctx context.Context) (bool, error) {
	_, _, err := c.ledger.Claim(ctx, sweepLease, sweepLease, c.holder, nil, c.SweepLease, "")
	if busy := (*ledger.BusyError)(nil); errors.As(err, &busy) {
		return false, nil
	}
	return err == nil, err
}

// sweepBatch bounds the parked invoices one sweep looks at (a variable
// only so that tests can make it small).
var sweepBatch = 500

// SweepAwaiting tries the parked invoices again: each is collected once
// its customer's mandate exists, or becomes an exception once the link
// expired or mandate_wait passed, and is then released; the others stay.
// One sweep looks at sweepBatch of them, after those the previous sweep
// looked at (wrapping around), so however many wait, each is tried in
// turn. It returns how many were released. Run it periodically, on every
// replica: one of them at a time sweeps (sweepLease), the others return 0.
func (c *Collector) SweepAwaiting(ctx context.Context) (int, error) {
	if mine, err := c.claimSweep(ctx); !mine || err != nil {
		return 0, err
	}
	if _, err := c.ResumeRequested(ctx); err != nil {
		c.log.WarnContext(ctx, "mandate requests not resumed", "error", err)
	}
	renewed := time.Now()
	from := c.sweptTo.Load()
	rows, err := c.ledger.DB().Query(ctx, `SELECT id, message FROM awaiting_invoices
		WHERE released_at IS NULL AND id > $2 ORDER BY id LIMIT $1`, sweepBatch, from)
	if err != nil {
		return 0, fmt.Errorf("read parked invoices: %w", err)
	}
	type parked struct {
		id   int64
		data []byte
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (parked, error) {
		var p parked
		return p, r.Scan(&p.id, &p.data)
	})
	if err != nil {
		return 0, fmt.Errorf("read parked invoices: %w", err)
	}
	if len(list) < sweepBatch {
		c.sweptTo.Store(0) // the end: the next sweep starts again from the oldest
	} else {
		c.sweptTo.Store(list[len(list)-1].id)
	}
	released := 0
	for _, p := range list {
		if time.Since(renewed) > c.SweepLease/3 {
			// A long sweep keeps its lease, or stops once another replica
			// took it over.
			if err := c.ledger.Renew(ctx, sweepLease, sweepLease, c.holder, c.SweepLease); err != nil {
				return released, err
			}
			renewed = time.Now()
		}
		var m mlcv1.InvoiceReady
		if err := proto.Unmarshal(p.data, &m); err != nil {
			return released, fmt.Errorf("parked invoice %d: %w", p.id, err)
		}
		err := c.Invoice(ctx, &m)
		switch {
		case errors.Is(err, errAwaitingPayer):
			continue
		case err != nil:
			c.log.WarnContext(ctx, "parked invoice not collected yet", "parked", p.id, "error", err)
			continue
		}
		if _, err := c.ledger.DB().Exec(ctx, `UPDATE awaiting_invoices SET released_at = now() WHERE id = $1`, p.id); err != nil {
			return released, fmt.Errorf("release parked invoice %d: %w", p.id, err)
		}
		released++
	}
	return released, nil
}
