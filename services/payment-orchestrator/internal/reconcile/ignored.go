package reconcile

import (
	"context"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/ledger"
)

// maxIgnoreReason bounds a recorded reason.
const maxIgnoreReason = 500

// ignore records that ev was received and deliberately not applied, and
// why, in the transaction that marks it processed: every GoCardless event
// is either applied or recorded here (gc_ignored_events), none dropped
// without a trace.
func (r *Reconciler) ignore(ctx context.Context, tx pgx.Tx, ev event, resourceID, reason string) error {
	if utf8.RuneCountInString(reason) > maxIgnoreReason {
		reason = string([]rune(reason)[:maxIgnoreReason])
	}
	if err := ledger.IgnoreEvent(ctx, tx, ev.GetEventId(), nonEmpty(ev.GetResourceType()), nonEmpty(ev.GetAction()), resourceID, reason); err != nil {
		return err
	}
	r.log.DebugContext(ctx, "gocardless event ignored", "event", ev.GetEventId(), "resource_type", ev.GetResourceType(),
		"action", ev.GetAction(), "reason", reason)
	return nil
}

func nonEmpty(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// Documented event actions that change nothing the ledger keeps or the
// ERP is told, with the reason recorded for each (actions as documented
// at developer.gocardless.com/api-reference/#event-types; their meanings
// in docs/gocardless.md).
var ignoredPaymentActions = map[string]string{
	"customer_approval_granted": "the payer approved the payment; it proceeds as created",
	"chargeback_settled":        "the charge-back was debited from a payout; the ERP already heard of the charge-back, and the deduction reaches it with that payout",
	"late_failure_settled":      "the late failure was debited from a payout; the ERP already heard of the failure, and the deduction reaches it with that payout",
	"surcharge_fee_debited":     "a GoCardless fee for a failure or charge-back, not a change to the invoice",
}

var ignoredMandateActions = map[string]string{
	"customer_approval_skipped": "the mandate needed no payer approval; its status events follow",
	"resubmission_requested":    "the mandate is being resubmitted; its status events follow",
}
