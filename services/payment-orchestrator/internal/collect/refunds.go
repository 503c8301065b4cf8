package collect

import (
	"context"
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
	aggID := m.GetErp().GetConnection() + ":" + m.GetErp().GetCompany() + ":" + m.GetRefundId()
	route, erp, err := c.route(ctx, m.GetErp())
	if err == nil {
		err = c.refund(ctx, route, erp, m)
	}
	return c.settle(ctx, err, "refund", aggID, "refund:"+aggID+":"+m.GetVersion(),
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
	case col.State == "failed" || col.State == "cancelled" || col.State == "charged_back" || col.State == "exception":
		return invalidf("invalid_refund", "invoice %s's payment is %s: nothing to refund", col.Key.InvoiceID, col.State)
	case col.State != "confirmed" && col.State != "paid_out":
		return bus.RetryAfter(time.Minute, fmt.Errorf("payment of invoice %s is %s, not yet collected", col.Key.InvoiceID, col.State))
	}

	key := ledger.RefundKey{ERP: erp, ConnectionID: route.ERP.ID, Company: route.Company, RefundID: m.GetRefundId()}
	// The payment's collection stays locked from computing the refunded
	// total to recording the refund: GoCardless checks that total, so two
	// refunds of one payment must not be computed side by side. Should the
	// process die after GoCardless answered, the redelivery asks again with
	// the same key and is given the refund already made.
	var refusal error
	release, err := c.hold(ctx)
	if err != nil {
		return err
	}
	defer release()
	err = c.ledger.Tx(ctx, func(tx pgx.Tx) error {
		if _, err := ledger.LockCollection(ctx, tx, col.Key); err != nil {
			return err
		}
		rf, _, err := ledger.StartRefund(ctx, tx, ledger.Refund{Key: key, CollectionID: col.ID, AmountMinor: amount,
			Currency: m.GetCurrency(), GCPaymentID: col.GCPaymentID, ERPVersion: m.GetVersion()})
		if err != nil || rf.State != "creating" {
			return err
		}
		before, err := ledger.RefundedBefore(ctx, tx, col.ID, rf.ID)
		if err != nil {
			return err
		}
		total := before + rf.AmountMinor
		after := rf
		if total > col.AmountMinor {
			refusal = invalidf("invalid_refund", "refunds would total %d of a %d payment", total, col.AmountMinor)
		} else {
			p := gocardless.RefundParams{Amount: rf.AmountMinor, TotalAmountConfirmation: total,
				Metadata: map[string]string{"erp_connection": route.ERP.Name, "company": route.Company, "erp_refund_id": m.GetRefundId()}}
			p.Links.Payment = col.GCPaymentID
			gr, _, err := route.Client.CreateRefund(ctx, rf.IdempotencyKey, p)
			if err != nil {
				if err = classify("create refund", err); !errors.As(err, new(*invalid)) {
					return err
				}
				refusal = err
			} else {
				after.GCRefundID, after.State = gr.ID, gr.Status
				if ledger.RefundRank(after.State) == 0 {
					after.State = "created"
				}
				return ledger.SaveRefund(ctx, tx, rf, after, "refund.created", "created at GoCardless")
			}
		}
		after.State, after.FailureDescription = "exception", refusal.Error()
		return ledger.SaveRefund(ctx, tx, rf, after, "refund.refused", refusal.Error())
	})
	if err != nil {
		return err
	}
	return refusal
}
