package collect

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
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
//  1. commits its intent: the customer's mandate-request lease, and the
//     request in mandate_requests (state requesting, with the billing
//     request's idempotency key) (ledger.ClaimMandateRequest);
//  2. creates the billing request with that key and records its id;
//  3. creates a flow (GoCardless does not make that call idempotent; a
//     second flow after a lost answer is harmless) and records its
//     authorisation_url and expiry (state awaiting_payer);
//  4. when the connection says notify_payer, asks GoCardless to email it
//     and records the answer, a refusal included, releasing the lease.
//
// No transaction is open during a GoCardless call, each answer is
// recorded under the lease before the next call, and work that claims the
// lease again resumes from what is recorded, so a crash at any point
// resumes the same request rather than making another, and a second
// worker waits for the lease instead of calling alongside. Invoices of the customer
// wait (visibly: mlcctl mandates) until the billing_requests "fulfilled"
// event links the mandate, and become exceptions after the connection's
// mandate_wait.

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
// with a flow, resuming whatever an earlier attempt left undone; holder
// is the customer version's alignment.
func (c *Collector) requestMandate(ctx context.Context, route accounts.Route, key ledger.CustomerKey, m *mlcv1.CustomerChanged, holder string) error {
	link, err := c.ledger.Customer(ctx, key)
	if err != nil {
		return err
	}
	if link.MandateUsable() || link.GCCustomerID == "" {
		return nil
	}
	switch open, err := c.ledger.OpenMandateRequest(ctx, key); {
	case err == nil && open.FlowID != "" && (open.Notified != "" || !route.GC.NotifyPayer):
		return nil // asked already: nothing to call, nothing to claim
	case err != nil && !errors.Is(err, ledger.ErrNotFound):
		return err
	}
	currency, err := requestCurrency(m)
	if err != nil {
		return invalidf("mandate_refused", "no mandate can be requested: %v", err)
	}
	mr, err := c.ledger.ClaimMandateRequest(ctx, ledger.MandateRequest{Key: key, GCConnectionID: route.GoCardless.ID,
		GCCustomerID: link.GCCustomerID, Currency: currency}, holder, ledger.Actor, 0, c.Now())
	if err != nil {
		return err
	}
	return c.ResumeMandateRequest(ctx, route, mr, holder, ledger.Actor, flowParams(m), nil)
}

// flowParams are the flow's settings for customer m: its details
// prefilled, so the payer only confirms them.
func flowParams(m *mlcv1.CustomerChanged) gocardless.BillingRequestFlowParams {
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
	return fp
}

// ResumeMandateRequest makes the GoCardless calls request mr still needs
// (its billing request, a flow when mr has none, the notification when
// the connection asks for it), under holder's lease claimed with
// ledger.ClaimMandateRequest: each call is followed by recording its
// answer, the last record releasing the lease. A temporary failure keeps
// the lease, so that the holder's retry resumes; a refusal releases it.
// The records are audited under actor. resend, when set (an operator's
// resend), runs in the transaction that records the new flow, which is
// then audited as mandate_request.resent.
func (c *Collector) ResumeMandateRequest(ctx context.Context, route accounts.Route, mr ledger.MandateRequest, holder, actor string, fp gocardless.BillingRequestFlowParams, resend func(pgx.Tx, *ledger.MandateRequest) error) (err error) {
	defer func() {
		if isInvalid(err) {
			err = errors.Join(err, c.ledger.ReleaseMandateRequest(ctx, mr.Key, holder))
		}
	}()
	notify := route.GC.NotifyPayer && mr.Notified == ""
	record := func(last bool, action string, apply func(pgx.Tx, *ledger.MandateRequest) error) (err error) {
		mr, err = c.ledger.RecordMandateRequest(ctx, mr.ID, holder, actor, last, action, "", apply)
		return err
	}
	meta := map[string]string{"erp_customer": mr.Key.CustomerID, "company": mr.Key.Company}
	if mr.BillingRequestID == "" {
		p := gocardless.BillingRequestParams{Metadata: meta,
			MandateRequest: gocardless.MandateRequestParams{Currency: mr.Currency, Metadata: meta}}
		p.Links.Customer, p.Links.Creditor = mr.GCCustomerID, route.Creditor
		br, _, err := route.Client.CreateBillingRequest(ctx, mr.IdempotencyKey, p)
		if err != nil {
			return classify("create billing request", err)
		}
		if err := record(false, "mandate_request.billing_request_created", func(_ pgx.Tx, now *ledger.MandateRequest) error {
			now.BillingRequestID = br.ID
			return nil
		}); err != nil {
			return err
		}
	}
	flowRecorded := false
	if mr.FlowID == "" {
		// GoCardless does not make flow creation idempotent; a second flow
		// after a lost answer is harmless: the payer gets the recorded one.
		fp.Links.BillingRequest = mr.BillingRequestID
		flow, err := route.Client.CreateBillingRequestFlow(ctx, fp)
		if err != nil {
			// The payer may have authorised through that lost flow
			// already: GoCardless then refuses a new flow, the request
			// being no longer pending (make chaos SEED=950216). Nothing is
			// left to ask; the fulfilled event records the mandate.
			if gocardless.IsInvalidState(err) {
				if br, gerr := route.Client.GetBillingRequest(ctx, mr.BillingRequestID); gerr == nil && br.Status == "fulfilled" {
					return c.ledger.ReleaseMandateRequest(ctx, mr.Key, holder)
				}
			}
			return classify("create billing request flow", err)
		}
		action := "mandate_request.flow_created"
		if resend != nil {
			action = "mandate_request.resent"
		}
		if err := record(!notify, action, func(tx pgx.Tx, now *ledger.MandateRequest) error {
			now.FlowID, now.AuthorisationURL, now.FlowExpiresAt = flow.ID, flow.AuthorisationURL, flow.ExpiresAt
			if now.State == ledger.MandateRequestRequesting {
				now.State = ledger.MandateRequestAwaitingPayer
			}
			if resend != nil {
				return resend(tx, now)
			}
			return nil
		}); err != nil {
			return err
		}
		flowRecorded = true
	}
	switch {
	case !notify && flowRecorded:
		return nil // the flow's record released the lease
	case !notify:
		return c.ledger.ReleaseMandateRequest(ctx, mr.Key, holder)
	}
	note := "sent"
	if _, err := route.Client.NotifyBillingRequest(ctx, mr.IdempotencyKey+":notify", mr.BillingRequestID, gocardless.NotifyParams{}); err != nil {
		if classified := classify("notify payer", err); !isInvalid(classified) {
			return classified
		}
		// GoCardless documents notify for Pay by Bank requests only: a
		// refusal leaves AR to send the link, which mlcctl shows.
		note = "refused: " + err.Error()
	}
	return record(true, "mandate_request.notified", func(_ pgx.Tx, now *ledger.MandateRequest) error {
		now.Notified = truncate(note, 500)
		return nil
	})
}

// AskAgain, in billing-request mode, records in tx (the transaction that
// records the end of the customer's mandate) the intent to ask the
// customer of link for a new mandate, in the currency of the mandate that
// ended: the customer's invoices are parked from then on, and the sweep
// makes the GoCardless calls (ResumeRequested), so nobody waits for the
// customer's next change in the ERP. It returns the customer's open
// request, and whether it was opened now.
func AskAgain(ctx context.Context, tx pgx.Tx, link ledger.CustomerLink, now time.Time) (ledger.MandateRequest, bool, error) {
	currency := ""
	if s, err := scheme.ByName(link.MandateScheme); err == nil {
		currency = s.Currency
	} else if s, err := scheme.ForCountry(link.Country); err == nil {
		currency = s.Currency
	} else {
		return ledger.MandateRequest{}, false, fmt.Errorf("customer %s: no currency for a new mandate request (scheme %q, country %q)",
			link.Key.CustomerID, link.MandateScheme, link.Country)
	}
	return ledger.OpenMandateRequestIn(ctx, tx, ledger.MandateRequest{Key: link.Key, GCConnectionID: link.GCConnectionID,
		GCCustomerID: link.GCCustomerID, Currency: currency}, now)
}

// resumeBatch bounds the open intents one sweep resumes.
const resumeBatch = 100

// ResumeRequested makes the GoCardless calls of mandate requests whose
// intent is recorded and whose calls are not (opened by AskAgain, or left
// by a crash), prefilling the flow from the GoCardless customer, under the
// customer's mandate-request lease like every request: one busy with other
// work is left for the next sweep. It returns how many it resumed.
func (c *Collector) ResumeRequested(ctx context.Context) (int, error) {
	list, err := c.ledger.MandateRequests(ctx, ledger.MandateRequestRequesting, resumeBatch)
	if err != nil {
		return 0, err
	}
	done := 0
	for _, mr := range list {
		err := c.resumeRequest(ctx, mr)
		if busy := (*ledger.BusyError)(nil); errors.As(err, &busy) || errors.Is(err, ledger.ErrMandateRequestClosed) {
			continue // other work has it, or it is done with
		}
		if err != nil {
			c.log.WarnContext(ctx, "mandate request not resumed", "mandate_request", mr.ID, "error", err)
			continue
		}
		done++
	}
	return done, c.closeUnneeded(ctx)
}

// closeUnneeded cancels, at GoCardless and then here, the requests
// awaiting the payer of customers whose mandate is usable again: asked for
// a new mandate when theirs ended (AskAgain), they kept the old one after
// all (the bank or AR reinstated it). Left open, the payer could still
// authorise a second mandate nobody would use. Each is closed under the
// customer's mandate-request lease; the billing request's cancelled event
// then finds it closed and raises no exception.
func (c *Collector) closeUnneeded(ctx context.Context) error {
	list, err := c.ledger.UnneededMandateRequests(ctx, resumeBatch)
	if err != nil {
		return err
	}
	for _, mr := range list {
		err := c.closeRequest(ctx, mr)
		if busy := (*ledger.BusyError)(nil); errors.As(err, &busy) || errors.Is(err, ledger.ErrMandateRequestClosed) {
			continue
		}
		if err != nil {
			c.log.WarnContext(ctx, "mandate request not closed", "mandate_request", mr.ID, "error", err)
		}
	}
	return nil
}

func (c *Collector) closeRequest(ctx context.Context, mr ledger.MandateRequest) error {
	conn, err := c.dir.ByID(ctx, connections.KindGoCardless, mr.GCConnectionID)
	if err != nil {
		return err
	}
	_, client, err := c.dir.GoCardless(ctx, conn.Name)
	if err != nil {
		return err
	}
	holder := fmt.Sprintf("close:%d", mr.ID)
	if _, err := c.ledger.ClaimMandateRequest(ctx, mr, holder, ledger.Actor, 0, c.Now()); err != nil {
		return err
	}
	if _, err := client.CancelBillingRequest(ctx, mr.IdempotencyKey+":cancel", mr.BillingRequestID,
		gocardless.ActionParams{Metadata: map[string]string{"reason": "mandate usable again"}}); err != nil && !gocardless.IsInvalidState(err) {
		return fmt.Errorf("cancel billing request %s: %w", mr.BillingRequestID, err)
	}
	_, err = c.ledger.RecordMandateRequest(ctx, mr.ID, holder, ledger.Actor, true, "mandate_request.cancelled",
		"the customer's mandate is usable again", func(_ pgx.Tx, now *ledger.MandateRequest) error {
			if now.State.Open() {
				now.State = ledger.MandateRequestCancelled
			}
			return nil
		})
	return err
}

func (c *Collector) resumeRequest(ctx context.Context, mr ledger.MandateRequest) error {
	erpConn, err := c.dir.ByID(ctx, connections.Kind(mr.Key.ERP), mr.Key.ConnectionID)
	if err != nil {
		return err
	}
	route, err := c.dir.Route(ctx, erpConn.Name, mr.Key.Company)
	if err != nil {
		return err
	}
	cu, err := route.Client.GetCustomer(ctx, mr.GCCustomerID) // a read, before anything is claimed
	if err != nil {
		return fmt.Errorf("read customer %s: %w", mr.GCCustomerID, err)
	}
	holder := fmt.Sprintf("resume:%d", mr.ID)
	open, err := c.ledger.ClaimMandateRequest(ctx, mr, holder, ledger.Actor, 0, c.Now())
	if err != nil {
		return err
	}
	m := &mlcv1.CustomerChanged{CustomerId: mr.Key.CustomerID, Email: cu.Email, GivenName: cu.GivenName, FamilyName: cu.FamilyName,
		CompanyName: cu.CompanyName, AddressLine1: cu.AddressLine1, AddressLine2: cu.AddressLine2, AddressLine3: cu.AddressLine3,
		City: cu.City, Region: cu.Region, PostalCode: cu.PostalCode, CountryCode: cu.CountryCode, Language: cu.Language}
	return c.ResumeMandateRequest(ctx, route, open, holder, ledger.Actor, flowParams(m), nil)
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

// awaitingMandate decides what an invoice of a customer without a usable
// mandate (none yet, or one that ended) does in billing-request mode:
// wait (errNoMandateYet) while the
// customer's request is open and younger than the connection's
// mandate_wait and its flow has not expired, else become an exception
// that says why.
func (c *Collector) awaitingMandate(ctx context.Context, route accounts.Route, link ledger.CustomerLink) error {
	key := link.Key
	mr, err := c.ledger.OpenMandateRequest(ctx, key)
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
	case mr.State == ledger.MandateRequestAwaitingPayer && !mr.FlowExpiresAt.IsZero() && now.After(mr.FlowExpiresAt):
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
// the ledger's awaiting invoices; the message is then acknowledged.
func (c *Collector) park(ctx context.Context, m *mlcv1.InvoiceReady) error {
	data, err := proto.Marshal(m)
	if err != nil {
		return fmt.Errorf("park invoice: %w", err)
	}
	route, erp, err := c.route(ctx, m.GetErp())
	if err != nil {
		return err
	}
	key := ledger.InvoiceKey{ERP: erp, ConnectionID: route.ERP.ID, Company: route.Company, InvoiceID: invoiceID(m.GetInvoice())}
	return c.ledger.ParkInvoice(ctx, key, m.GetVersion(), data)
}

// unauthorisedKinds are the exceptions of an invoice whose customer has
// not authorised a mandate in time; a resend of the link parks such
// invoices again (Repark).
var unauthorisedKinds = []string{"mandate_request_expired", "mandate_not_authorised"}

// keepUnauthorised, in the transaction of an invoice's exception, keeps
// the invoice's message (released) when the exception says its customer
// did not authorise in time, parked or not before: a resend of the link
// can then collect it without the ERP publishing it again.
func keepUnauthorised(ctx context.Context, m *mlcv1.InvoiceReady) func(pgx.Tx, string, *invalid) error {
	return func(tx pgx.Tx, aggID string, inv *invalid) error {
		if !slices.Contains(unauthorisedKinds, inv.kind) {
			return nil
		}
		data, err := proto.Marshal(m)
		if err != nil {
			return fmt.Errorf("keep invoice: %w", err)
		}
		return ledger.KeepReleasedInvoice(ctx, tx, aggID, m.GetVersion(), data)
	}
}

// Repark, in tx, parks again the invoices of customer key that became
// exceptions because the customer did not authorise in time, and resolves
// those exceptions with note, audited as actor (ledger.ReparkInvoices). It
// runs in the transaction that records a resent link. The sweep then
// collects each once the payer authorises.
func Repark(ctx context.Context, tx pgx.Tx, key ledger.CustomerKey, actor, note string) (ledger.Reparked, error) {
	return ledger.ReparkInvoices(ctx, tx, key, unauthorisedKinds, actor, note)
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

// sweepWorkers is how many parked invoices a sweep collects at once. Each
// mostly waits, on GoCardless and the ledger; one at a time, a book whose
// invoices all came before their customers' mandates (every new customer
// asked by billing request) was collected at about 12 invoices a second,
// the orchestrator's CPU nearly idle, and a 10,000-invoice book spent
// most of its time here (#17).
const sweepWorkers = 16

// SweepAwaiting tries the parked invoices again: each is collected once
// its customer's mandate exists, or becomes an exception once the link
// expired or mandate_wait passed, and is then released; the others stay.
// One sweep looks at sweepBatch of them, after those the previous sweep
// looked at (wrapping around), so however many wait, each is tried in
// turn; up to sweepWorkers invoices at once, the versions of one invoice
// one after the other in the order they were parked. It returns how many
// were released. Run it periodically, on every replica: one of them at a
// time sweeps (sweepLease), the others return 0.
func (c *Collector) SweepAwaiting(ctx context.Context) (int, error) {
	if mine, err := c.claimSweep(ctx); !mine || err != nil {
		return 0, err
	}
	if _, err := c.ResumeRequested(ctx); err != nil {
		c.log.WarnContext(ctx, "mandate requests not resumed", "error", err)
	}
	renewed := time.Now()
	list, err := c.ledger.ParkedInvoices(ctx, c.sweptTo.Load(), sweepBatch)
	if err != nil {
		return 0, err
	}
	if len(list) < sweepBatch {
		c.sweptTo.Store(0) // the end: the next sweep starts again from the oldest
	} else {
		c.sweptTo.Store(list[len(list)-1].ID)
	}
	// The versions of each invoice, in the order they were parked.
	var order []string
	byInvoice := map[string][]ledger.ParkedInvoice{}
	for _, p := range list {
		if _, ok := byInvoice[p.AggregateID]; !ok {
			order = append(order, p.AggregateID)
		}
		byInvoice[p.AggregateID] = append(byInvoice[p.AggregateID], p)
	}
	var (
		mu       sync.Mutex
		released int
		failed   error
	)
	stopped := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return failed != nil
	}
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		failed = cmp.Or(failed, err)
	}
	slots := make(chan struct{}, sweepWorkers)
	var wg sync.WaitGroup
	for _, id := range order {
		if time.Since(renewed) > c.SweepLease/3 {
			// A long sweep keeps its lease, or stops once another replica
			// took it over.
			if err := c.ledger.Renew(ctx, sweepLease, sweepLease, c.holder, c.SweepLease); err != nil {
				fail(err)
				break
			}
			renewed = time.Now()
		}
		slots <- struct{}{}
		if stopped() || ctx.Err() != nil {
			<-slots
			break
		}
		wg.Go(func() {
			defer func() { <-slots }()
			for _, p := range byInvoice[id] {
				if stopped() || ctx.Err() != nil {
					return // the lease lost or a worker failed: the next sweep resumes here
				}
				ok, err := c.sweepOne(ctx, p)
				if err != nil {
					fail(err)
					return
				}
				if ok {
					mu.Lock()
					released++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return released, failed
}

// sweepOne tries one parked invoice again and releases it once collected
// (or raised). It reports whether it released it; an error stops the
// sweep.
func (c *Collector) sweepOne(ctx context.Context, p ledger.ParkedInvoice) (bool, error) {
	var m mlcv1.InvoiceReady
	if err := proto.Unmarshal(p.Message, &m); err != nil {
		return false, fmt.Errorf("parked invoice %d: %w", p.ID, err)
	}
	err := c.Invoice(ctx, &m)
	switch {
	case errors.Is(err, errAwaitingPayer):
		return false, nil
	case err != nil:
		c.log.WarnContext(ctx, "parked invoice not collected yet", "parked", p.ID, "error", err)
		return false, nil
	}
	if err := c.ledger.ReleaseParkedInvoice(ctx, p.ID); err != nil {
		return false, err
	}
	return true, nil
}
