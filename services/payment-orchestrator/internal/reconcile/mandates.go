package reconcile

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/accounts"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/collect"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/ledger"
)

var mandateStates = map[string]struct {
	status  ledger.MandateStatus
	outcome mlcv1.MandateStatus
}{
	"created":                   {ledger.MandatePendingSubmission, mlcv1.MandateStatus_MANDATE_STATUS_PENDING},
	"customer_approval_granted": {ledger.MandatePendingSubmission, mlcv1.MandateStatus_MANDATE_STATUS_PENDING},
	"submitted":                 {ledger.MandateSubmitted, mlcv1.MandateStatus_MANDATE_STATUS_PENDING},
	"active":                    {ledger.MandateActive, mlcv1.MandateStatus_MANDATE_STATUS_ACTIVE},
	"reinstated":                {ledger.MandateActive, mlcv1.MandateStatus_MANDATE_STATUS_ACTIVE},
	"transferred":               {ledger.MandateActive, mlcv1.MandateStatus_MANDATE_STATUS_ACTIVE},
	"suspended_by_payer":        {ledger.MandateSuspendedByPayer, mlcv1.MandateStatus_MANDATE_STATUS_SUSPENDED_BY_PAYER},
	"failed":                    {ledger.MandateFailed, mlcv1.MandateStatus_MANDATE_STATUS_FAILED},
	"cancelled":                 {ledger.MandateCancelled, mlcv1.MandateStatus_MANDATE_STATUS_CANCELLED},
	"expired":                   {ledger.MandateExpired, mlcv1.MandateStatus_MANDATE_STATUS_EXPIRED},
	"consumed":                  {ledger.MandateConsumed, mlcv1.MandateStatus_MANDATE_STATUS_CONSUMED},
	"blocked":                   {ledger.MandateBlocked, mlcv1.MandateStatus_MANDATE_STATUS_BLOCKED},
}

// mandateFacts asks GoCardless, before the event's transaction, for the
// next possible charge date of a mandate that became usable; without an
// answer the stored date stays (payments then let GoCardless choose).
func (r *Reconciler) mandateFacts(ctx context.Context, ev event) (facts, error) {
	mandateID := ev.GetLinks()["mandate"]
	change, known := mandateStates[ev.GetAction()]
	if mandateID == "" || !known || (change.status != ledger.MandateActive && change.status != ledger.MandateSubmitted) {
		return facts{}, nil
	}
	links, err := r.ledger.CustomersByMandate(ctx, mandateID)
	if err != nil || len(links) == 0 {
		return facts{}, err
	}
	return facts{nextChargeDate: r.nextChargeDate(ctx, links[0].GCConnectionID, mandateID)}, nil
}

func (r *Reconciler) mandate(ctx context.Context, tx pgx.Tx, ev event, f facts) error {
	mandateID := ev.GetLinks()["mandate"]
	if mandateID == "" {
		return r.ignore(ctx, tx, ev, "", "mandate event without links.mandate")
	}
	links, err := ledger.LockCustomersByMandate(ctx, tx, mandateID)
	if err != nil {
		return err
	}
	if len(links) == 0 {
		// Our mandates carry the ERP customer in their metadata: one of
		// ours that is not recorded yet is being created by a transaction
		// that has not committed, or arrives with its billing request's
		// fulfilled event, so the event is retried. Others are not ours.
		if ev.GetResourceMetadata()["erp_customer"] != "" {
			return fmt.Errorf("mandate %s: %w", mandateID, errNotRecordedYet)
		}
		return r.ignore(ctx, tx, ev, mandateID, "not a mandate of a customer ml-connector links")
	}
	if ev.GetAction() == "replaced" {
		return r.replaceMandate(ctx, tx, ev, links)
	}
	change, known := mandateStates[ev.GetAction()]
	if !known {
		reason, documented := ignoredMandateActions[ev.GetAction()]
		if !documented {
			reason = "mandate action " + ev.GetAction() + " is not one the orchestrator knows"
		}
		return r.ignore(ctx, tx, ev, mandateID, reason)
	}
	next := f.nextChargeDate
	applied := 0
	for _, link := range links {
		if !newer(ev.at, change.status.Rank(), link.MandateEventAt, link.MandateStatus.Rank()) {
			continue
		}
		applied++
		ref, err := erpRef(f.reg, link.Key.ERP, link.Key.ConnectionID, link.Key.Company)
		if err != nil {
			return err
		}
		out := &mlcv1.MandateOutcome{
			SchemaVersion: 1, OutcomeId: ev.GetEventId() + ":" + link.Key.Company + ":" + link.Key.CustomerID, Erp: ref,
			CustomerId: link.Key.CustomerID, MandateId: mandateID, Status: change.outcome, OccurredAt: ts(ev.at),
			Cause: ev.GetDetails().GetCause(), ReasonCode: ev.GetDetails().GetReasonCode(),
			Description: ev.GetDetails().GetDescription(), Scheme: link.MandateScheme,
		}
		if err := queue(ctx, tx, ev, "customer", link.AggregateID(), "mandate", out.GetOutcomeId(), out); err != nil {
			return err
		}
		after := link
		after.MandateStatus, after.MandateEventAt = change.status, ev.at
		if !next.IsZero() {
			after.NextChargeDate = next
		}
		if err := ledger.SaveCustomer(ctx, tx, link, after, "mandate."+string(change.status), "gocardless event "+ev.GetEventId()); err != nil {
			return err
		}
		if ended[change.status] {
			if err := r.mandateEnded(ctx, tx, ev, f.reg, after); err != nil {
				return err
			}
		}
	}
	if applied == 0 {
		return r.ignore(ctx, tx, ev, mandateID, "older than the mandate event already applied")
	}
	return nil
}

// ended are the statuses after which a mandate never takes a payment
// again (developer.gocardless.com/api-reference/#mandates-mandate-status:
// failed, cancelled, expired, consumed and blocked are final).
var ended = map[ledger.MandateStatus]bool{
	ledger.MandateFailed: true, ledger.MandateCancelled: true, ledger.MandateExpired: true,
	ledger.MandateConsumed: true, ledger.MandateBlocked: true,
}

// mandateEnded acts, in the event's transaction, on a customer whose
// mandate ended, without waiting for the customer's next change in the
// ERP. In billing-request mode a new mandate is asked for at once
// (collect.AskAgain: the customer's new invoices are parked from this
// commit on, and the sweep sends the link). Collections still in flight on
// it (not yet submitted) become exceptions: a cancelled mandate takes "all
// associated cancellable payments" with it (gocardless-pro-java
// MandateService.cancel, gocardless-pro-go MandateService.Cancel), and
// gcsim's endMandate does the same for expired and failed ones (its
// sources in gcsim/mandates.go), so each must be replayed once a mandate
// exists again; their cancelled or failed payments are posted as usual.
// Submitted payments go on.
func (r *Reconciler) mandateEnded(ctx context.Context, tx pgx.Tx, ev event, reg *accounts.Snapshot, link ledger.CustomerLink) error {
	next := "update the customer's bank details in the ERP (a new mandate is set up from them)"
	if gc, ok := reg.ByID(link.GCConnectionID); ok {
		settings, err := accounts.ParseGCSettings(gc.Settings)
		if err != nil {
			return fmt.Errorf("gocardless connection %s: %w", gc.Name, err)
		}
		if settings.MandateSetup == accounts.SetupBillingRequest {
			mr, _, err := collect.AskAgain(ctx, tx, link, ev.at)
			if err != nil {
				return err
			}
			next = fmt.Sprintf("the customer is asked for a new mandate (mlcctl mandates list: request %d)", mr.ID)
		}
	}
	rows, err := tx.Query(ctx, `SELECT erp, connection_id, company, invoice_id, coalesce(gc_payment_id, '') FROM collections
		WHERE connection_id = $1 AND company = $2 AND customer_id = $3 AND state IN ('creating', 'created', 'pending_submission')
		ORDER BY id`, link.Key.ConnectionID, link.Key.Company, link.Key.CustomerID)
	if err != nil {
		return fmt.Errorf("collections of customer %s in flight: %w", link.Key.CustomerID, err)
	}
	type inFlight struct {
		key     ledger.InvoiceKey
		payment string
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (inFlight, error) {
		var f inFlight
		return f, r.Scan(&f.key.ERP, &f.key.ConnectionID, &f.key.Company, &f.key.InvoiceID, &f.payment)
	})
	if err != nil {
		return fmt.Errorf("collections of customer %s in flight: %w", link.Key.CustomerID, err)
	}
	for _, f := range list {
		reason := fmt.Sprintf("mandate %s of customer %s %s (%s) before this payment was submitted, so GoCardless does not collect it; %s, then replay it",
			link.GCMandateID, link.Key.CustomerID, link.MandateStatus, nonEmpty(ev.GetDetails().GetCause()), next)
		if err := raiseMandateEnded(ctx, tx, ev, f.key, f.payment, link.Key.CustomerID, reason); err != nil {
			return err
		}
	}
	return nil
}

// raiseMandateEnded raises the exception of a collection whose payment a
// mandate took with it when it ended, once per payment: from the mandate's
// event (collections still in flight) or from the payment's own
// cancellation, whichever is applied first, since GoCardless emits both
// at once and they may be applied in either order.
func raiseMandateEnded(ctx context.Context, tx pgx.Tx, ev event, k ledger.InvoiceKey, payment, customer, reason string) error {
	dedup := "mandate-ended:" + k.String() + ":" + payment
	_, err := ledger.RaiseException(ctx, tx, ledger.Exception{Kind: "mandate_ended", AggregateType: "collection",
		AggregateID: k.String(), Reason: reason, DedupKey: dedup,
		Detail: map[string]any{"payment": payment, "event": ev.GetEventId(), "customer": customer}})
	return err
}

// nextChargeDate asks GoCardless for a mandate's next possible charge
// date; without an answer the stored one stays (payments then simply let
// GoCardless choose the date).
func (r *Reconciler) nextChargeDate(ctx context.Context, gcConnectionID int64, mandateID string) time.Time {
	client, err := r.client(ctx, gcConnectionID)
	if err != nil {
		return time.Time{}
	}
	md, err := client.GetMandate(ctx, mandateID)
	if err != nil {
		r.log.WarnContext(ctx, "next charge date unknown", "mandate", mandateID, "error", err)
		return time.Time{}
	}
	d, _ := time.Parse(time.DateOnly, md.NextPossibleChargeDate)
	return d
}

func (r *Reconciler) client(ctx context.Context, gcConnectionID int64) (*gocardless.Client, error) {
	conn, err := r.dir.ByID(ctx, "gocardless", gcConnectionID)
	if err != nil {
		return nil, err
	}
	_, client, err := r.dir.GoCardless(ctx, conn.Name)
	return client, err
}

// clientFor is the client of the GoCardless connection an event came
// from; events received without one (single-account webhooks) belong to
// the only GoCardless connection.
func (r *Reconciler) clientFor(ctx context.Context, name string) (*gocardless.Client, error) {
	_, client, err := r.gcAccount(ctx, name)
	return client, err
}

// replaceMandate follows a mandate GoCardless replaced (for instance
// after a creditor's scheme identifier changed) to its successor.
func (r *Reconciler) replaceMandate(ctx context.Context, tx pgx.Tx, ev event, links []ledger.CustomerLink) error {
	next := ev.GetLinks()["new_mandate"]
	if next == "" {
		return r.ignore(ctx, tx, ev, ev.GetLinks()["mandate"], "replaced event without links.new_mandate")
	}
	for _, link := range links {
		after := link
		after.GCMandateID, after.MandateEventAt = next, ev.at
		if err := ledger.SaveCustomer(ctx, tx, link, after, "mandate.replaced", "gocardless event "+ev.GetEventId()); err != nil {
			return err
		}
	}
	return nil
}

// subscription applies subscription events to the subscription's
// collection; its payments are handled as payments.
func (r *Reconciler) subscription(ctx context.Context, tx pgx.Tx, ev event) error {
	sub := ev.GetLinks()["subscription"]
	if sub == "" {
		return nil
	}
	col, err := ledger.LockCollectionBySubscription(ctx, tx, sub)
	if err != nil {
		return nil // not ours, or not recorded yet: its payments carry the outcomes
	}
	// Only a cancellation changes the collection: a finished subscription
	// has told the ERP everything through its payments.
	if ev.GetAction() != "cancelled" {
		return nil
	}
	const state = ledger.CollectionCancelled
	if !newer(ev.at, state.Rank(), col.LastEventAt, col.State.Rank()) || ledger.CheckCollection(col.State, state) != nil {
		return nil
	}
	after := col
	after.State, after.LastEventAt = state, ev.at
	return ledger.SaveCollection(ctx, tx, col, after, "subscription."+ev.GetAction(), "gocardless event "+ev.GetEventId())
}
