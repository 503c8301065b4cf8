package collect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/platform/bus"
	"github.com/ml-connector/ml-connector/platform/money"
	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/accounts"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/ledger"
)

// Refund turns an ERP refund request into a GoCardless refund of the
// invoice's collected payment, confirming the total refunded so far as
// GoCardless requires.
func (c *Collector) Refund(ctx context.Context, m *mlcv1.RefundRequested) error {
	route, erp, err := c.route(ctx, m.GetErp())
	if err == nil {
		err = c.refund(ctx, route, erp, m)
	}
	key := func(erp string, connID int64) fmt.Stringer {
		return ledger.RefundKey{ERP: erp, ConnectionID: connID, Company: m.GetErp().GetCompany(), RefundID: m.GetRefundId()}
	}
	return c.settle(ctx, err, "refund", key, m.GetErp(), m.GetVersion(),
		map[string]any{"invoice": m.GetInvoice().GetInvoiceId(), "amount": m.GetAmount(), "currency": m.GetCurrency()})
}

func (c *Collector) refund(ctx context.Context, route accounts.Route, erp string, m *mlcv1.RefundRequested) error {
	if m.GetRefundId() == "" || m.GetInvoice().GetInvoiceId() == "" {
		return invalidf("invalid_refund", "refund event without refund or invoice id")
	}
	amount, err := money.ToMinor(m.GetAmount(), m.GetCurrency())
	if err != nil || amount == 0 {
		return invalidf("invalid_refund", "amount %q %s: %v", m.GetAmount(), m.GetCurrency(), err)
	}
	col, err := c.ledger.Collection(ctx, ledger.InvoiceKey{ERP: erp, ConnectionID: route.ERP.ID, Company: route.Company, InvoiceID: invoiceID(m.GetInvoice())})
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return invalidf("invalid_refund", "invoice %s was never collected through GoCardless", m.GetInvoice().GetInvoiceId())
	case err != nil:
		return err
	case col.Currency != m.GetCurrency():
		return invalidf("invalid_refund", "refund in %s of a payment in %s", m.GetCurrency(), col.Currency)
	case col.State == ledger.CollectionFailed || col.State == ledger.CollectionCancelled || col.State == ledger.CollectionChargedBack || col.State == ledger.CollectionException:
		return invalidf("invalid_refund", "invoice %s's payment is %s: nothing to refund", col.Key.InvoiceID, col.State)
	case !col.State.Collected():
		return bus.RetryAfter(time.Minute, fmt.Errorf("payment of invoice %s is %s, not yet collected", col.Key.InvoiceID, col.State))
	}

	key := ledger.RefundKey{ERP: erp, ConnectionID: route.ERP.ID, Company: route.Company, RefundID: m.GetRefundId()}
	// The intent: the refund row in state creating with its idempotency
	// key, and a lease on the payment's refunds holding the total refunded
	// so far, which GoCardless checks: two refunds of one payment are never
	// computed side by side. Then the call, with nothing held; then the
	// result, recorded with the lease's release. Should the process die
	// after GoCardless answered, the redelivery resumes the lease and asks
	// again with the same key and total, and is given the refund already
	// made.
	var rf ledger.Refund
	var intent refundIntent
	holder := "refund:" + key.String()
	err = c.ledger.Tx(ctx, func(tx pgx.Tx) error {
		var err error
		rf, _, err = ledger.StartRefund(ctx, tx, ledger.Refund{Key: key, CollectionID: col.ID, AmountMinor: amount,
			Currency: m.GetCurrency(), GCPaymentID: col.GCPaymentID, ERPVersion: m.GetVersion()})
		if err != nil || rf.State != ledger.RefundCreating {
			return err
		}
		recorded, resumed, err := ledger.Claim(ctx, tx, "refunds", col.AggregateID(), holder, RefundLease)
		if err != nil {
			return err
		}
		if resumed {
			return json.Unmarshal(recorded, &intent)
		}
		// Read after the claim: the previous holder's refund, recorded with
		// its release, is counted.
		before, err := ledger.RefundedBefore(ctx, tx, col.ID, rf.ID)
		if err != nil {
			return err
		}
		intent = refundIntent{Total: before + rf.AmountMinor}
		return ledger.Intend(ctx, tx, "refunds", col.AggregateID(), holder, intent, "refunds.intent")
	})
	if err != nil || rf.State != ledger.RefundCreating {
		return err
	}

	after := rf
	var refusal error
	if intent.Total > col.AmountMinor {
		refusal = invalidf("invalid_refund", "refunds would total %d of a %d payment", intent.Total, col.AmountMinor)
	} else {
		p := gocardless.RefundParams{Amount: rf.AmountMinor, TotalAmountConfirmation: intent.Total,
			Metadata: map[string]string{"erp_connection": route.ERP.Name, "company": route.Company, "erp_refund_id": m.GetRefundId()}}
		p.Links.Payment = col.GCPaymentID
		gr, _, err := route.Client.CreateRefund(ctx, rf.IdempotencyKey, p)
		switch {
		case err == nil:
			after.GCRefundID, after.State = gr.ID, ledger.RefundState(gr.Status)
			if after.State.Rank() == 0 {
				after.State = ledger.RefundCreated
			}
		case errors.As(classify("create refund", err), new(*invalid)):
			refusal = classify("create refund", err)
		default:
			return classify("create refund", err) // the lease stays: the redelivery resumes it
		}
	}
	action, cause := "refund.created", "created at GoCardless"
	if refusal != nil {
		after.State, after.FailureDescription = ledger.RefundException, refusal.Error()
		action, cause = "refund.refused", refusal.Error()
	}
	err = c.ledger.Tx(ctx, func(tx pgx.Tx) error {
		if err := ledger.Release(ctx, tx, "refunds", col.AggregateID(), holder); err != nil {
			return err
		}
		now, err := ledger.LockRefund(ctx, tx, key)
		if err != nil || now.State != ledger.RefundCreating {
			return err // its first event recorded it first
		}
		return ledger.SaveRefund(ctx, tx, now, after, action, cause)
	})
	if err != nil {
		return err
	}
	return refusal
}

// RefundLease is how long a refund keeps the other refunds of its payment
// waiting; past it, after a crash, another refund takes over.
const RefundLease = 2 * time.Minute

// refundIntent is what a refund commits to before calling out.
type refundIntent struct {
	// Total is the total_amount_confirmation: this refund with those of
	// the payment before it.
	Total int64 `json:"total_amount_confirmation"`
}
