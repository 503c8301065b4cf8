package reconcile

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/accounts"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/ledger"
)

// paymentStates maps payment event actions to the collection state they
// leave the payment in, and the outcome the ERP is told of, if any.
var paymentStates = map[string]struct {
	state   ledger.CollectionState
	outcome mlcv1.PaymentOutcomeKind
}{
	"created":                  {ledger.CollectionPendingSubmission, mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_UNSPECIFIED},
	"resubmission_requested":   {ledger.CollectionPendingSubmission, mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_UNSPECIFIED},
	"submitted":                {ledger.CollectionSubmitted, mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_UNSPECIFIED},
	"confirmed":                {ledger.CollectionConfirmed, mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_CONFIRMED},
	"paid_out":                 {ledger.CollectionPaidOut, mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_PAID_OUT},
	"failed":                   {ledger.CollectionFailed, mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_FAILED},
	"charged_back":             {ledger.CollectionChargedBack, mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_CHARGED_BACK},
	"cancelled":                {ledger.CollectionCancelled, mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_CANCELLED},
	"customer_approval_denied": {ledger.CollectionCancelled, mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_CANCELLED},
	// The charge-back is undone: GoCardless gives the event the cause
	// payment_confirmed (developer.gocardless.com/api-reference, event
	// types, payments), and the ERP books the receipt again.
	"chargeback_cancelled": {ledger.CollectionConfirmed, mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_CHARGEBACK_CANCELLED},
}

// paymentFacts fetches, before the event's transaction, what only
// GoCardless can say about its payment: when the payment is not recorded
// here and the event alone cannot place it (a subscription's payment says
// so only in its first event), the payment itself.
func (r *Reconciler) paymentFacts(ctx context.Context, ev event) (facts, error) {
	paymentID, meta := ev.GetLinks()["payment"], ev.GetResourceMetadata()
	if paymentID == "" || ev.GetLinks()["subscription"] != "" || (meta["erp_connection"] != "" && meta["invoice_id"] != "") {
		return facts{}, nil
	}
	if _, err := r.ledger.CollectionByPayment(ctx, paymentID); !errors.Is(err, ledger.ErrNotFound) {
		return facts{}, err // known here (or the read failed)
	}
	client, err := r.clientFor(ctx, ev.GetConnection())
	if err != nil {
		return facts{}, err
	}
	p, err := client.GetPayment(ctx, paymentID)
	if gocardless.IsNotFound(err) {
		return facts{notOurs: true}, nil
	}
	if err != nil {
		return facts{}, fmt.Errorf("fetch payment %s: %w", paymentID, err)
	}
	return facts{payment: p}, nil
}

func (r *Reconciler) payment(ctx context.Context, tx pgx.Tx, ev event, f facts) error {
	paymentID := ev.GetLinks()["payment"]
	if paymentID == "" {
		return r.ignore(ctx, tx, ev, "", "payment event without links.payment")
	}
	col, instalment, err := r.placePayment(ctx, tx, ev, paymentID, f)
	if errors.Is(err, errNotOurs) {
		return r.ignore(ctx, tx, ev, paymentID, "not a payment ml-connector created")
	}
	if err != nil {
		return err
	}
	linkCollection(ctx, col)
	change, known := paymentStates[ev.GetAction()]
	if !known {
		reason, documented := ignoredPaymentActions[ev.GetAction()]
		if !documented {
			reason = "payment action " + ev.GetAction() + " is not one the orchestrator knows"
		}
		return r.ignore(ctx, tx, ev, paymentID, reason)
	}
	// A subscription's payments are instalments of one invoice: each
	// outcome is posted, while the collection keeps the subscription's state.
	apply := instalment || newer(ev.at, change.state.Rank(), col.LastEventAt, col.State.Rank())
	if !apply {
		return r.ignore(ctx, tx, ev, paymentID, "older than the event already applied (payment is "+string(col.State)+")")
	}
	if err := ledger.CheckCollection(col.State, change.state); err != nil && !instalment {
		return r.ignore(ctx, tx, ev, paymentID, err.Error())
	}
	// Every milestone the new state implies is posted once per attempt: an
	// ERP that books on confirmation must hear of it even when paid_out
	// overtook confirmed on the way here.
	kinds := milestones[change.state]
	if instalment {
		kinds = nil
		if change.outcome != mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_UNSPECIFIED {
			kinds = []mlcv1.PaymentOutcomeKind{change.outcome}
		}
	}
	posted := col.PostedOutcomes
	switch {
	case change.state == ledger.CollectionPendingSubmission || change.state == ledger.CollectionSubmitted:
		posted = nil // a resubmission starts the ERP's story again
	case change.outcome == mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_CHARGEBACK_CANCELLED:
		// Only the reinstatement is news (the payment was confirmed
		// before its charge-back), and a later charge-back is news again.
		kinds = []mlcv1.PaymentOutcomeKind{change.outcome}
		posted = without(posted, mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_CHARGED_BACK)
	case change.state == ledger.CollectionChargedBack:
		// A charge-back after a cancelled one: a later cancellation is
		// news again.
		posted = without(posted, mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_CHARGEBACK_CANCELLED)
	}
	for _, kind := range kinds {
		name := kind.String()
		if slices.Contains(posted, name) {
			continue
		}
		outcomeID := ev.GetEventId()
		if kind != change.outcome {
			outcomeID += ":" + name
		}
		if err := r.queuePayment(ctx, tx, ev, f.reg, col, kind, paymentID, outcomeID); err != nil {
			return err
		}
		posted = append(posted, name)
	}
	if instalment {
		return nil
	}
	if cause := ev.GetDetails().GetCause(); change.state == ledger.CollectionCancelled && mandateEndedCauses[cause] {
		reason := fmt.Sprintf("GoCardless cancelled payment %s because its mandate ended (%s) before it was submitted; "+
			"replay it once the customer has a usable mandate again (mlcctl mandates list shows a request under way)", paymentID, cause)
		if err := raiseMandateEnded(ctx, tx, ev, col.Key, paymentID, col.CustomerID, reason); err != nil {
			return err
		}
	}
	after := col
	after.State, after.LastEventAt, after.PostedOutcomes = change.state, ev.at, posted
	if change.state == ledger.CollectionFailed || change.state == ledger.CollectionChargedBack || change.state == ledger.CollectionCancelled {
		after.FailureCause, after.FailureReasonCode = ev.GetDetails().GetCause(), ev.GetDetails().GetReasonCode()
		after.FailureDescription = ev.GetDetails().GetDescription()
	}
	return ledger.SaveCollection(ctx, tx, col, after, "collection."+string(change.state),
		fmt.Sprintf("gocardless event %s (%s)", ev.GetEventId(), ev.GetDetails().GetCause()))
}

// mandateEndedCauses are the causes of a payments cancelled event that
// say its mandate ended under it (the event types list, payment actions:
// cancelled; gocardless-nodejs's events fixture has one with cause
// mandate_cancelled and links.parent_event, the mandate's event; a closed
// bank account cancels the mandate too).
var mandateEndedCauses = map[string]bool{"mandate_cancelled": true, "mandate_expired": true, "bank_account_closed": true}

// without returns posted without the outcome kind k.
func without(posted []string, k mlcv1.PaymentOutcomeKind) []string {
	return slices.DeleteFunc(slices.Clone(posted), func(name string) bool { return name == k.String() })
}

// linkCollection names the collection on the span of ctx and links that
// span to the one the collection started in: a GoCardless event arrives in
// a trace of its own (the webhook's), and the link leads from it back to
// the ERP poll and the GoCardless call that made the payment.
func linkCollection(ctx context.Context, col ledger.Collection) {
	span := trace.SpanFromContext(ctx)
	span.SetAttributes(attribute.String("mlc.company", col.Key.Company), attribute.String("mlc.invoice_id", col.Key.InvoiceID))
	if origin := col.Origin(); origin.IsValid() {
		span.AddLink(trace.Link{SpanContext: origin, Attributes: []attribute.KeyValue{attribute.String("mlc.link", "collection created")}})
	}
}

// milestones are the outcomes the ERP must have heard of once a payment
// is in a state, in lifecycle order.
var milestones = map[ledger.CollectionState][]mlcv1.PaymentOutcomeKind{
	ledger.CollectionConfirmed:   {mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_CONFIRMED},
	ledger.CollectionPaidOut:     {mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_CONFIRMED, mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_PAID_OUT},
	ledger.CollectionChargedBack: {mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_CONFIRMED, mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_CHARGED_BACK},
	ledger.CollectionFailed:      {mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_FAILED},
	ledger.CollectionCancelled:   {mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_CANCELLED},
}

// queuePayment queues one payment outcome for erp-poster.
func (r *Reconciler) queuePayment(ctx context.Context, tx pgx.Tx, ev event, reg *accounts.Snapshot, col ledger.Collection, kind mlcv1.PaymentOutcomeKind, paymentID, outcomeID string) error {
	ref, err := erpRef(reg, col.Key.ERP, col.Key.ConnectionID, col.Key.Company)
	if err != nil {
		return err
	}
	out := &mlcv1.PaymentOutcome{
		SchemaVersion: 1, OutcomeId: outcomeID, Erp: ref,
		Invoice: &mlcv1.InvoiceKey{InvoiceId: col.Key.InvoiceID, InvoiceNo: col.InvoiceNo, DocType: col.DocType, Suffix: col.Suffix},
		Kind:    kind, PaymentId: paymentID, PayoutId: ev.GetLinks()["payout"],
		AmountMinor: col.AmountMinor, Currency: col.Currency, OccurredAt: ts(ev.at),
		CustomerId: col.CustomerID, BusinessUnit: col.BusinessUnit,
	}
	if kind == mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_FAILED || kind == mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_CHARGED_BACK ||
		kind == mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_CANCELLED {
		out.Cause, out.ReasonCode, out.Description = ev.GetDetails().GetCause(), ev.GetDetails().GetReasonCode(), ev.GetDetails().GetDescription()
	}
	if col.ChargeDate.Year() > 1 {
		out.ChargeDate = col.ChargeDate.Format(time.DateOnly)
	}
	return queue(ctx, tx, ev, "collection", col.AggregateID(), "payment", outcomeID, out)
}

// placePayment finds the collection of a payment: by its id, or — when
// the event overtook the row that records the id — by the ERP identity in
// the payment's metadata, completing the row; a payment of a subscription
// belongs to the subscription's collection (instalment true).
func (r *Reconciler) placePayment(ctx context.Context, tx pgx.Tx, ev event, paymentID string, f facts) (col ledger.Collection, instalment bool, err error) {
	col, err = ledger.LockCollectionByPayment(ctx, tx, paymentID)
	if !errors.Is(err, ledger.ErrNotFound) {
		return col, false, err
	}
	sub, meta := ev.GetLinks()["subscription"], ev.GetResourceMetadata()
	switch {
	case f.notOurs:
		return col, false, errNotOurs
	case f.payment != nil:
		sub, meta = f.payment.Links.Subscription, f.payment.Metadata
	case sub == "" && (meta["erp_connection"] == "" || meta["invoice_id"] == ""):
		// Recorded between paymentFacts and now, and then found above; or
		// the facts could not be had: try again.
		return col, false, fmt.Errorf("payment %s cannot be placed yet", paymentID)
	}
	if sub != "" {
		col, err = ledger.LockCollectionBySubscription(ctx, tx, sub)
		if errors.Is(err, ledger.ErrNotFound) {
			return col, false, errNotOurs
		}
		return col, true, err
	}
	if meta["erp_connection"] == "" || meta["invoice_id"] == "" {
		return col, false, errNotOurs
	}
	conn, ok := f.reg.ByName(meta["erp_connection"])
	if !ok {
		return col, false, errNotOurs // no such connection here
	}
	connID := conn.ID
	col, err = ledger.LockCollectionByInvoice(ctx, tx, connID, meta["company"], meta["invoice_id"])
	if errors.Is(err, ledger.ErrNotFound) {
		return col, false, errNotOurs
	}
	if err != nil {
		return col, false, err
	}
	if col.GCPaymentID != "" && col.GCPaymentID != paymentID {
		return col, false, errNotOurs // an earlier attempt's payment
	}
	if col.State == ledger.CollectionCreating && col.Attempts > 1 {
		// An operator's replay is creating the next attempt's payment, and
		// this may be the failed attempt's: wait for the replay to record
		// its payment, after which this one is placed by its id or not ours.
		return col, false, fmt.Errorf("payment %s: collection %s is being replayed", paymentID, col.AggregateID())
	}
	if col.State == ledger.CollectionCreating {
		// The creator has not recorded the answer yet; it will find the row
		// already completed and leave it.
		after := col
		after.GCPaymentID, after.State = paymentID, ledger.CollectionCreated
		if err := ledger.SaveCollection(ctx, tx, col, after, "collection.created", "payment known from GoCardless event "+ev.GetEventId()); err != nil {
			return col, false, err
		}
		col = after
	}
	return col, false, nil
}
