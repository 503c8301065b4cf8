package reconcile

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/accounts"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/ledger"
)

// billingRequestActions that only report the payer's progress, with the
// reason they change nothing here (developer.gocardless.com
// "Responding to Billing Request events").
var billingRequestProgress = map[string]string{
	"created":                       "the billing request was created (by the orchestrator, which recorded it)",
	"flow_visited":                  "the payer opened the link; the request stays open",
	"flow_exited":                   "the payer left the page without authorising; the request stays open until its link expires",
	"collect_customer_details":      "the payer's details were collected; the mandate follows on fulfilment",
	"collect_bank_account":          "the payer's bank account was collected; the mandate follows on fulfilment",
	"payer_details_confirmed":       "the payer confirmed their details; the mandate follows on fulfilment",
	"bank_authorisation_visited":    "open-banking progress; the mandate follows on fulfilment",
	"bank_authorisation_authorised": "open-banking progress; the mandate follows on fulfilment",
}

// billingRequest applies a billing_requests event: fulfilled links the
// new mandate to the ERP customer (so the customer's invoices are
// collected), cancelled and failed close the request and raise an
// exception AR can resend from. The mandate is read from GoCardless before
// the transaction opens, never inside it.
func (r *Reconciler) billingRequest(ctx context.Context, ev event) error {
	var md *gocardless.Mandate
	if ev.GetAction() == "fulfilled" {
		if id := ev.GetLinks()["mandate_request_mandate"]; id != "" {
			client, err := r.clientFor(ctx, ev.GetConnection())
			if err != nil {
				return err
			}
			if md, err = client.GetMandate(ctx, id); err != nil {
				return fmt.Errorf("fetch mandate %s of billing request %s: %w", id, ev.GetLinks()["billing_request"], err)
			}
		}
	}
	// The registry, read before the transaction (see Handle).
	reg, err := r.dir.Snapshot(ctx)
	if err != nil {
		return err
	}
	err = r.ledger.Tx(ctx, func(tx pgx.Tx) error {
		fresh, err := ledger.MarkProcessed(ctx, tx, "gocardless", ev.GetEventId())
		if err != nil || !fresh {
			return err
		}
		brID := ev.GetLinks()["billing_request"]
		mr, err := ledger.LockMandateRequestByBillingRequest(ctx, tx, brID)
		if errors.Is(err, ledger.ErrNotFound) {
			if ev.GetResourceMetadata()["erp_customer"] != "" && (ev.GetAction() == "fulfilled" || ev.GetAction() == "flow_created") {
				// Ours, but the billing request's id is not recorded yet.
				return fmt.Errorf("billing request %s: %w", brID, errNotRecordedYet)
			}
			return r.ignore(ctx, tx, ev, brID, "not a billing request ml-connector created")
		}
		if err != nil {
			return fmt.Errorf("mandate request of billing request %s: %w", brID, err)
		}
		switch ev.GetAction() {
		case "fulfilled":
			return r.fulfilled(ctx, tx, ev, mr, md)
		case "flow_created":
			return r.flowCreated(ctx, tx, ev, reg, mr)
		case "cancelled", "failed":
			if !mr.State.Open() {
				return r.ignore(ctx, tx, ev, brID, fmt.Sprintf("mandate request %d is %s already", mr.ID, mr.State))
			}
			after := mr
			after.State = ledger.MandateRequestCancelled
			if err := ledger.SaveMandateRequest(ctx, tx, mr, after, ledger.Actor, "mandate_request.cancelled",
				"gocardless event "+ev.GetEventId()); err != nil {
				return err
			}
			_, err := ledger.RaiseException(ctx, tx, ledger.Exception{Kind: "mandate_request_" + ev.GetAction(), AggregateType: "customer",
				AggregateID: mr.Key.String(),
				Reason: fmt.Sprintf("billing request %s was %s (%s); resend it with mlcctl mandates resend %d",
					brID, ev.GetAction(), ev.GetDetails().GetCause(), mr.ID),
				DedupKey: "mandate-request:" + brID + ":" + ev.GetAction()})
			return err
		}
		reason, known := billingRequestProgress[ev.GetAction()]
		if !known {
			reason = "billing request action " + ev.GetAction() + " changes nothing a mandate request follows"
		}
		return r.ignore(ctx, tx, ev, brID, reason)
	})
	if err != nil {
		return err
	}
	return r.flush(ctx, ev.GetEventId())
}

// flowLifetime is how long a billing request flow's link lasts ("currently
// lasts for 7 days", gocardless-nodejs Types.ts expires_at): a recorded
// flow was created flowLifetime before its expiry.
const flowLifetime = 7 * 24 * time.Hour

// flowCreated tells the ERP the link a customer must open to authorise
// its mandate (a MandateOutcome, status pending, with the flow's
// authorisation_url and expiry), so AR can send it from the ERP; posted
// with the customer's other mandate outcomes, in order. The orchestrator
// made the flow and records its link after GoCardless answered: an event
// that overtook the record is retried, one of a flow the request no
// longer uses (a resend made another) is recorded as ignored.
func (r *Reconciler) flowCreated(ctx context.Context, tx pgx.Tx, ev event, reg *accounts.Snapshot, mr ledger.MandateRequest) error {
	flow := ev.GetLinks()["billing_request_flow"]
	switch {
	case !mr.State.Open():
		return r.ignore(ctx, tx, ev, flow, fmt.Sprintf("mandate request %d is %s", mr.ID, mr.State))
	case mr.FlowID == "" || (mr.FlowID != flow && ev.at.After(mr.FlowExpiresAt.Add(-flowLifetime))):
		// No flow recorded yet, or one older than this event's: this
		// flow's record (a resend's) is on its way.
		return fmt.Errorf("flow %s of mandate request %d: %w", flow, mr.ID, errNotRecordedYet)
	case mr.FlowID != flow:
		return r.ignore(ctx, tx, ev, flow, "mandate request "+fmt.Sprint(mr.ID)+" uses the later flow "+mr.FlowID)
	}
	ref, err := erpRef(reg, mr.Key.ERP, mr.Key.ConnectionID, mr.Key.Company)
	if err != nil {
		return err
	}
	out := &mlcv1.MandateOutcome{
		SchemaVersion: 1, OutcomeId: ev.GetEventId() + ":" + mr.Key.Company + ":" + mr.Key.CustomerID, Erp: ref,
		CustomerId: mr.Key.CustomerID, MandateId: mr.BillingRequestID, Status: mlcv1.MandateStatus_MANDATE_STATUS_PENDING,
		OccurredAt: ts(ev.at), Description: "awaiting the payer's authorisation of the mandate",
		AuthorisationUrl: mr.AuthorisationURL, AuthorisationExpiresAt: ts(mr.FlowExpiresAt),
	}
	return queue(ctx, tx, ev, "customer", mr.Key.String(), "mandate", out.GetOutcomeId(), out)
}

// fulfilled links the billing request's mandate to the ERP customer.
func (r *Reconciler) fulfilled(ctx context.Context, tx pgx.Tx, ev event, mr ledger.MandateRequest, md *gocardless.Mandate) error {
	if md == nil {
		return r.ignore(ctx, tx, ev, ev.GetLinks()["billing_request"], "fulfilled without links.mandate_request_mandate")
	}
	if !mr.State.Open() && mr.State != ledger.MandateRequestFulfilled {
		return r.ignore(ctx, tx, ev, md.ID, fmt.Sprintf("mandate request %d is %s already", mr.ID, mr.State))
	}
	done := mr
	done.State, done.MandateID = ledger.MandateRequestFulfilled, md.ID
	if err := ledger.SaveMandateRequest(ctx, tx, mr, done, ledger.Actor, "mandate_request.fulfilled",
		"gocardless event "+ev.GetEventId()); err != nil {
		return err
	}
	key := mr.Key
	link, err := ledger.LockCustomer(ctx, tx, key)
	if err != nil {
		return err
	}
	if link.MandateUsable() && link.GCMandateID != md.ID {
		return r.ignore(ctx, tx, ev, md.ID, "the customer already has usable mandate "+link.GCMandateID)
	}
	after := link
	after.GCMandateID, after.GCBankAccountID, after.CreditorID = md.ID, md.Links.CustomerBankAccount, md.Links.Creditor
	after.MandateStatus, after.MandateScheme, after.MandateEventAt = ledger.MandateStatus(md.Status), md.Scheme, ev.at
	if d, err := time.Parse(time.DateOnly, md.NextPossibleChargeDate); err == nil {
		after.NextChargeDate = d
	}
	return ledger.SaveCustomer(ctx, tx, link, after, "mandate.authorised",
		"billing request "+ev.GetLinks()["billing_request"]+" fulfilled (gocardless event "+ev.GetEventId()+")")
}
