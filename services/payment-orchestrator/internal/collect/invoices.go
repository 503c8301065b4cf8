package collect

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/connectors/gocardless/scheme"
	"github.com/ml-connector/ml-connector/platform/money"
	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/accounts"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/ledger"
)

// Invoice collects an invoice ready for collection: validated, recorded
// with its idempotency key, created at GoCardless, and completed.
func (c *Collector) Invoice(ctx context.Context, m *mlcv1.InvoiceReady) error {
	trace.SpanFromContext(ctx).SetAttributes(attribute.String("mlc.company", m.GetErp().GetCompany()),
		attribute.String("mlc.invoice_id", invoiceID(m.GetInvoice())))
	route, erp, err := c.route(ctx, m.GetErp())
	if err == nil {
		err = c.collect(ctx, route, erp, m)
	}
	key := func(erp string, connID int64) fmt.Stringer {
		return ledger.InvoiceKey{ERP: erp, ConnectionID: connID, Company: m.GetErp().GetCompany(), InvoiceID: invoiceID(m.GetInvoice())}
	}
	return c.settle(ctx, err, "collection", key, m.GetErp(), m.GetVersion(),
		map[string]any{"version": m.GetVersion(), "amount": m.GetAmount(), "currency": m.GetCurrency(), "customer": m.GetCustomerId()},
		keepUnauthorised(ctx, m))
}

func (c *Collector) collect(ctx context.Context, route accounts.Route, erp string, m *mlcv1.InvoiceReady) error {
	inv := m.GetInvoice()
	if inv.GetInvoiceId() == "" || m.GetCustomerId() == "" {
		return invalidf("invalid_invoice", "invoice event without invoice or customer id")
	}
	amount, err := money.ToMinor(m.GetAmount(), m.GetCurrency())
	if err != nil {
		return invalidf("invalid_invoice", "amount: %v", err)
	}
	key := ledger.InvoiceKey{ERP: erp, ConnectionID: route.ERP.ID, Company: route.Company, InvoiceID: invoiceID(inv)}
	var want ledger.Collection
	if amount > 0 {
		want, err = c.prepare(ctx, route, m, key, amount)
	}
	if amount == 0 || err != nil {
		// ERPs publish an invoice again whenever it changes, including when
		// our own posting reduced its open amount or closed it: judge such
		// an invoice against its collection, if it has one, before calling
		// it nothing to do or invalid. (New work skips this lookup.)
		existing, lerr := c.ledger.Collection(ctx, key)
		if lerr == nil && existing.State == ledger.CollectionCreating {
			// Another delivery is creating its payment (or a crash left
			// it): finish that creation, then judge this version against
			// it, or a credit to zero in that window would be dropped
			// under the payment the other delivery makes.
			if err := c.create(ctx, route, existing, m.GetRecurrence()); err != nil {
				return err
			}
			existing, lerr = c.ledger.Collection(ctx, key)
		}
		if lerr == nil {
			return c.repolled(existing, amount, m)
		} else if !errors.Is(lerr, ledger.ErrNotFound) {
			return lerr
		}
		return err // nil when nothing is open: paid or credited in the ERP before we collected
	}

	// The creating row needs no flush of its own. Should Postgres lose it
	// in a crash, the invoice's message is still unacknowledged (the ack
	// waits for the completion below, which is committed durably and
	// flushes this row's WAL with it), so its redelivery writes the row
	// again under the same deterministic idempotency key, and GoCardless
	// answers with the payment it may already have made.
	existing, started, err := c.ledger.StartCollection(ctx, want)
	if err != nil {
		return err
	}
	if !started && existing.State != ledger.CollectionCreating {
		return c.repolled(existing, amount, m) // a concurrent delivery got there first
	}
	// A collection left in creating (by a crash, or a redelivery racing
	// the first delivery) is resumed with its stored key: GoCardless
	// answers with the payment it already made, if it made one.
	if err := c.create(ctx, route, existing, m.GetRecurrence()); err != nil || started {
		return err
	}
	// The row was another delivery's, with that delivery's amount: this
	// message may be a later version of the invoice (changed while the
	// first was being collected), and it is judged like any re-poll, or
	// the change would be lost under the payment the resumption finished.
	resumed, err := c.ledger.Collection(ctx, key)
	if err != nil {
		return err
	}
	return c.repolled(resumed, amount, m)
}

// prepare validates an invoice as new work and describes its collection;
// an invoice that can never be collected is an invalid error.
func (c *Collector) prepare(ctx context.Context, route accounts.Route, m *mlcv1.InvoiceReady, key ledger.InvoiceKey, amount int64) (ledger.Collection, error) {
	inv := m.GetInvoice()
	sch, err := scheme.ForCurrency(m.GetCurrency())
	if err != nil {
		return ledger.Collection{}, invalidf("invalid_invoice", "currency: %v", err)
	}
	due := c.Now().UTC().Truncate(24 * time.Hour)
	if m.GetDueDate() != "" {
		if due, err = time.Parse(time.DateOnly, m.GetDueDate()); err != nil {
			return ledger.Collection{}, invalidf("invalid_invoice", "due date %q is not YYYY-MM-DD", m.GetDueDate())
		}
	}
	customer, err := c.ledger.Customer(ctx, ledger.CustomerKey{ERP: key.ERP, ConnectionID: route.ERP.ID, Company: route.Company, CustomerID: m.GetCustomerId()})
	switch {
	case err == nil && !customer.MandateUsable() && route.GC.MandateSetup == accounts.SetupBillingRequest:
		// The customer has yet to authorise a billing request (its first,
		// or one asked when its mandate ended).
		return ledger.Collection{}, c.awaitingMandate(ctx, route, customer)
	case err == nil && customer.GCMandateID == "" && customer.ERPVersion != "" && customer.BankFingerprint == "" && route.GC.MandateSetup == accounts.SetupDirect:
		// The customer is aligned and no mandate came of it: its ERP record
		// had no bank details (or GoCardless refused them, an exception of
		// the customer's own). Only a change to the customer in the ERP can
		// make one, so waiting for it would only end, MAX_DELIVER waits
		// later, in a dead letter that says less than this.
		return ledger.Collection{}, invalidf("no_bank_details", "customer %s has no mandate: its ERP record has no usable bank details (mandate_setup direct); add them in the ERP, then have the invoice sent again", m.GetCustomerId())
	case errors.Is(err, ledger.ErrNotFound) || (err == nil && customer.GCMandateID == ""):
		// The customer (or its mandate) may simply not have arrived yet.
		return ledger.Collection{}, fmt.Errorf("customer %s: %w", m.GetCustomerId(), errNoMandateYet)
	case err != nil:
		return ledger.Collection{}, err
	case !customer.MandateUsable():
		return ledger.Collection{}, invalidf("mandate_unusable", "mandate %s of customer %s is %s", customer.GCMandateID, m.GetCustomerId(), customer.MandateStatus)
	case customer.MandateScheme != "" && customer.MandateScheme != sch.Name:
		return ledger.Collection{}, invalidf("invalid_invoice", "%s cannot be collected on customer %s's %s mandate", m.GetCurrency(), m.GetCustomerId(), customer.MandateScheme)
	}
	// The invoice number is the reference when the scheme's banks can
	// carry it; otherwise GoCardless assigns one and the ERP identity
	// travels in the metadata alone.
	reference := inv.GetInvoiceNo()
	if sch.NoReference || (sch.MaxReference > 0 && len(reference) > sch.MaxReference) ||
		(sch.Name == "bacs" && !route.GC.OwnBacsReferences) {
		reference = ""
	}
	if err := sch.Check(amount, customer.Country, reference); err != nil {
		return ledger.Collection{}, invalidf("invalid_invoice", "%v", err)
	}

	want := ledger.Collection{
		Key: key, InvoiceNo: inv.GetInvoiceNo(), DocType: inv.GetDocType(), Suffix: inv.GetSuffix(),
		CustomerID: m.GetCustomerId(), BusinessUnit: m.GetBusinessUnit(), Kind: "payment", AmountMinor: amount,
		Currency: m.GetCurrency(), DueDate: due, Reference: reference, GCConnectionID: route.GoCardless.ID,
		GCMandateID: customer.GCMandateID, ERPVersion: m.GetVersion(),
	}
	if r := m.GetRecurrence(); r != nil && r.GetIntervalUnit() != mlcv1.IntervalUnit_INTERVAL_UNIT_UNSPECIFIED {
		want.Kind = "subscription"
	}
	// Dated on the due date, unless the mandate cannot be charged that
	// early: then GoCardless's earliest possible date.
	if due.After(customer.NextChargeDate) && due.After(c.Now()) {
		want.ChargeDate = due
	}

	return want, nil
}

// repolled decides about an invoice published again after its collection
// started. The same amount is a redelivery or a re-poll. A smaller amount
// once the payment is collected is the ERP showing our own posting (IFS and
// JD Edwards reduce the open amount). Anything else changed the invoice
// under a collection in flight or finished: an operator must look.
//
// A charged-back collection was collected first, and our receipt stays in
// the ERP until the charge-back's posting reverses it: a poll that read the
// invoice in between (a JDE row's UPMJ/UPMT moves with each of our writes)
// is often handled after the charge-back, since ERP and GoCardless events
// travel on different streams. Our receipt was of the whole amount, so the
// invoice read then is open for exactly zero; only that is ours. Any other
// lower amount under a charge-back is someone else settling or crediting
// the invoice, and if GoCardless later cancels the charge-back our receipt
// is booked again over it: an operator must see that. A failed collection
// is replayable, so a smaller amount after a late failure is still raised:
// a replay must not collect an invoice settled otherwise.
func (c *Collector) repolled(existing ledger.Collection, amount int64, m *mlcv1.InvoiceReady) error {
	collected := existing.State.Collected()
	switch {
	case existing.Currency == m.GetCurrency() && amount == existing.AmountMinor:
		return nil
	case existing.Currency == m.GetCurrency() && collected && amount < existing.AmountMinor:
		return nil
	case existing.Currency == m.GetCurrency() && existing.State == ledger.CollectionChargedBack && amount == 0:
		return nil // exactly what our receipt of the whole amount left, not yet reversed
	}
	return invalidf("invoice_changed", "invoice changed to %s %s after collection of %d minor units started (state %s)",
		m.GetAmount(), m.GetCurrency(), existing.AmountMinor, existing.State)
}

// metadata carries the ERP identity on every GoCardless object, so an
// event about it can be placed even before its id is recorded here.
func metadata(route accounts.Route, invoiceID string) map[string]string {
	return map[string]string{"erp_connection": route.ERP.Name, "company": route.Company, "invoice_id": invoiceID}
}

// Resume creates the payment of a collection whose intent is recorded in
// state creating (by an invoice or by an operator's replay), under its
// stored idempotency key, and records it: the one way a payment is
// created, so that every path sends GoCardless the same parameters.
func (c *Collector) Resume(ctx context.Context, route accounts.Route, col ledger.Collection) error {
	if col.State != ledger.CollectionCreating || col.Kind != "payment" {
		return fmt.Errorf("collection %s is a %s in state %s: nothing to resume", col.AggregateID(), col.Kind, col.State)
	}
	return c.create(ctx, route, col, nil)
}

func (c *Collector) create(ctx context.Context, route accounts.Route, col ledger.Collection, rec *mlcv1.Recurrence) error {
	done := col
	if col.Kind == "subscription" {
		sp := gocardless.SubscriptionParams{
			Amount: col.AmountMinor, Currency: col.Currency, IntervalUnit: intervalUnit(rec.GetIntervalUnit()),
			Interval: int(rec.GetInterval()), DayOfMonth: int(rec.GetDayOfMonth()), Count: int(rec.GetCount()),
			Name: col.InvoiceNo, PaymentReference: col.Reference, Metadata: metadata(route, col.Key.InvoiceID),
		}
		if rec.GetMonth() > 0 {
			sp.Month = gocardless.MonthName(time.Month(rec.GetMonth())) // lowercase, as GoCardless requires
		}
		if col.ChargeDate.Year() > 1 {
			sp.StartDate = col.ChargeDate.Format(time.DateOnly)
		}
		sp.Links.Mandate = col.GCMandateID
		sub, _, err := route.Client.CreateSubscription(ctx, col.IdempotencyKey, sp)
		if err != nil {
			return c.refused(ctx, col, classify("create subscription", err))
		}
		done.GCSubscription, done.State = sub.ID, ledger.CollectionCreated
	} else {
		pp := gocardless.PaymentParams{
			Amount: col.AmountMinor, Currency: col.Currency, Reference: col.Reference,
			Description: "Invoice " + col.InvoiceNo, Metadata: metadata(route, col.Key.InvoiceID),
		}
		if col.ChargeDate.Year() > 1 {
			pp.ChargeDate = col.ChargeDate.Format(time.DateOnly)
		}
		pp.Links.Mandate = col.GCMandateID
		pm, _, err := route.Client.CreatePayment(ctx, col.IdempotencyKey, pp)
		if gocardless.IsValidation(err) && pp.ChargeDate != "" {
			// The mandate's earliest charge date moved past the due date:
			// let GoCardless date it, under the same key.
			pp.ChargeDate = ""
			pm, _, err = route.Client.CreatePayment(ctx, col.IdempotencyKey, pp)
		}
		if err != nil {
			return c.refused(ctx, col, classify("create payment", err))
		}
		done.GCPaymentID, done.State = pm.ID, ledger.CollectionState(pm.Status)
		if d, err := time.Parse(time.DateOnly, pm.ChargeDate); err == nil {
			done.ChargeDate = d
		}
		if done.State.Rank() == 0 {
			done.State = ledger.CollectionCreated
		}
	}
	// Completed only if still creating: another delivery, or the
	// payment's first event, may have completed it first.
	_, err := c.ledger.CompleteCollection(ctx, col, done, "collection.created", "created at GoCardless")
	return err
}

// refused marks a collection GoCardless refused as an exception (the
// invalid error then records the exception itself); other errors pass.
func (c *Collector) refused(ctx context.Context, col ledger.Collection, err error) error {
	var inv *invalid
	if !errors.As(err, &inv) {
		return err
	}
	if terr := c.ledger.Tx(ctx, func(tx pgx.Tx) error {
		now, err := ledger.LockCollection(ctx, tx, col.Key)
		if err != nil || now.State != ledger.CollectionCreating {
			return err
		}
		after := now
		after.State, after.FailureDescription = ledger.CollectionException, inv.reason
		return ledger.SaveCollection(ctx, tx, now, after, "collection.refused", inv.reason)
	}); terr != nil {
		return terr
	}
	return err
}

func intervalUnit(u mlcv1.IntervalUnit) string {
	switch u {
	case mlcv1.IntervalUnit_INTERVAL_UNIT_WEEKLY:
		return "weekly"
	case mlcv1.IntervalUnit_INTERVAL_UNIT_YEARLY:
		return "yearly"
	}
	return "monthly"
}
