// Package payoutline names the kinds of receivable line a GoCardless
// payout carries (its payout items' types, GoCardless API reference
// "Payout Items": payment_paid_out, payment_failed, payment_charged_back,
// refund, refund_funds_returned). erp-poster translates the contract's
// mlc.v1.PayoutLineKind into these, and the IFS Cloud and JD Edwards
// connectors book a payout's lines by them; one definition keeps the two
// ERPs reading a line the same way.
package payoutline

// Kind is what a receivable line of a payout is; its value is
// GoCardless's payout item type.
type Kind string

// The receivable lines of a payout.
const (
	PaidOut        Kind = "payment_paid_out"
	Failed         Kind = "payment_failed"
	ChargedBack    Kind = "payment_charged_back"
	Refund         Kind = "refund"
	RefundReturned Kind = "refund_funds_returned"
)

// Credit says whether a line of this kind adds to the deposit (money in:
// a payment paid out, a refund that came back) rather than takes from it;
// its amount is positive exactly when it does.
func (k Kind) Credit() bool { return k == PaidOut || k == RefundReturned }
