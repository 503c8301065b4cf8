package views

import (
	"fmt"
	"strings"
)

// explain says in plain words what happened to an item and what to do
// about it. cause is GoCardless's failure cause for a payment, if any.
func explain(it Item, cause string) (what, todo string) {
	doc := it.Document
	if doc == "" {
		doc = it.Subject
	}
	amount := ""
	if it.Amount != nil {
		amount = " of " + it.Amount.String()
	}
	switch it.Kind {
	case "payment_failed":
		what = fmt.Sprintf("The payment%s for invoice %s failed at the customer's bank", amount, doc)
		if it.Reason != "" {
			what += " (" + it.Reason + ")"
		}
		what += "."
		switch cause {
		case "insufficient_funds", "refer_to_payer", "bank_account_transferred", "":
			todo = "Replay it: GoCardless tries the payment again (or a new payment is made). Escalate if it failed before."
		case "mandate_cancelled", "mandate_expired", "mandate_suspended_by_payer", "authorisation_disputed", "invalid_bank_details", "bank_account_closed":
			todo = "The customer's mandate cannot be used any more: contact the customer for a new one, then replay. Resolve with a note if paid another way."
		default:
			todo = "Check the reason with the customer, then replay or resolve with a note."
		}
	case "payment_cancelled":
		what = fmt.Sprintf("The payment%s for invoice %s was cancelled before it was collected.", amount, doc)
		todo = "Replay it to collect again under a new payment, or resolve with a note if the invoice was settled another way."
	case "payment_charged_back":
		what = fmt.Sprintf("The customer disputed the payment%s for invoice %s with their bank, and the money was returned (chargeback).", amount, doc)
		todo = "Contact the customer before anything else; do not collect again without their agreement. Resolve with a note once settled."
	case "payment_exception":
		what = fmt.Sprintf("The payment%s for invoice %s could not be created.", amount, doc)
		todo = "Read the reason, fix it, then replay."
	case "invalid_invoice", "invalid_event":
		what = fmt.Sprintf("Invoice %s from %s could not be collected as sent: %s.", doc, it.Connection, it.Reason)
		todo = "Correct the invoice in the ERP; the corrected version is picked up and collected by itself. Resolve this once done."
	case "unroutable":
		what = fmt.Sprintf("Nothing collects for company %s of %s: %s.", it.Company, it.Connection, it.Reason)
		todo = "An administrator maps the company to a GoCardless creditor in the connection's settings; then replay or resolve."
	case "gocardless_refused":
		what = fmt.Sprintf("GoCardless refused to act on %s: %s.", doc, it.Reason)
		todo = "Check the customer's mandate and the amount; fix the cause, then replay. Escalate if unclear."
	case "mandate_refused":
		what = fmt.Sprintf("GoCardless refused the bank details or mandate of customer %s: %s.", doc, it.Reason)
		todo = "Ask the customer for correct bank details and update them in the ERP; a new mandate is set up by itself."
	case "erp_posting_refused":
		what = fmt.Sprintf("The ERP refused to record the outcome for %s: %s.", doc, it.Reason)
		todo = "Fix the document in the ERP (closed period, locked invoice, ...) and record the payment there, then resolve with a note."
		if strings.HasPrefix(it.Subject, "payout ") {
			what = fmt.Sprintf("The ERP refused the deposit of GoCardless payout %s: %s.", payoutOf(it), it.Reason)
			todo = "Fix the cause in the ERP (closed period, missing account, ...), then press Post again on the payout's page (or mlcctl payouts repost): the same deposit is sent, never a second one. Resolve with a note once posted."
		}
	case "mandate_ended":
		what = fmt.Sprintf("The customer's Direct Debit mandate ended (cancelled, expired or its bank account closed) and took the payment%s for invoice %s with it: %s.", amount, doc, it.Reason)
		todo = "Contact the customer for a new mandate; once they have authorised it, replay the invoice. Resolve with a note if it was paid another way."
	case "mandate_request_expired", "mandate_not_authorised":
		what = fmt.Sprintf("The customer did not authorise the Direct Debit mandate in time, so invoice %s was not collected: %s.", doc, it.Reason)
		todo = "Contact the customer, then resend the link (Mandates page, or mlcctl mandates resend): the waiting invoices are collected once they authorise. Resolve with a note if paid another way."
	case "mandate_request_cancelled", "mandate_request_failed":
		what = fmt.Sprintf("GoCardless closed the mandate request of customer %s before it was authorised: %s.", doc, it.Reason)
		todo = "Speak to the customer, then resend the link (Mandates page, or mlcctl mandates resend). Resolve with a note if they pay another way."
	case "mandate_unusable":
		what = fmt.Sprintf("Invoice %s cannot be collected: the customer's mandate cannot be used and no new one is requested (%s).", doc, it.Reason)
		todo = "Ask the customer for a new mandate (or switch the connection to billing requests), then replay; resolve with a note if paid another way."
	case "no_bank_details":
		what = fmt.Sprintf("Invoice %s cannot be collected: its customer has no mandate, because the ERP holds no usable bank details for it (%s).", doc, it.Reason)
		todo = "Add the customer's bank details in the ERP (or switch the connection to billing requests so the customer is asked); the invoice is collected when the ERP sends it again. Resolve with a note if paid another way."
	case "payout_mismatch":
		what = fmt.Sprintf("GoCardless payout %s: its items do not add up to the amount paid into the bank (%s).", payoutOf(it), it.Reason)
		todo = "Nothing was posted to the ERP. Compare the payout page with the payout in the GoCardless dashboard and ask GoCardless about the difference; book the deposit by hand, then resolve with a note."
	case "payout_duplicate_payment":
		what = fmt.Sprintf("GoCardless payout %s pays out a payment an earlier payout already paid out (%s).", payoutOf(it), it.Reason)
		todo = "It was posted as GoCardless paid it, so the invoice has two receipts in the ERP. Ask GoCardless whether the money was paid twice; reverse the extra receipt in the ERP (or have GoCardless recover it), then resolve with a note."
	case "payout_unmatched_items":
		what = fmt.Sprintf("GoCardless payout %s holds items that belong to no invoice or refund ml-connector collected (%s).", payoutOf(it), it.Reason)
		todo = "Only the items of ours were posted. These are usually payments taken outside ml-connector (the GoCardless dashboard, another integration): book them in the ERP by hand, then resolve with a note."
	case "payout_fractional_amount":
		what = fmt.Sprintf("GoCardless payout %s has lines of ours finer than a whole minor unit (cent, penny), which no ERP books (%s).", payoutOf(it), it.Reason)
		todo = "Nothing was posted; the payout stays fetched. Ask GoCardless about the amounts; book the deposit by hand, then resolve with a note."
	case "payout_too_large":
		what = fmt.Sprintf("GoCardless payout %s has more items than one payout may have here (PAYOUT_MAX_ITEMS); it was not stored (%s).", payoutOf(it), it.Reason)
		todo = "Escalate to the engineers: the limit can be raised and the payout read again. Until then book the deposit by hand."
	case "payout_unreadable":
		what = fmt.Sprintf("GoCardless gave payout %s in a form that could not be read; it was not stored (%s).", payoutOf(it), it.Reason)
		todo = "Escalate to the engineers with this item's id; nothing of the payout was stored or posted."
	case "erp_record_invalid":
		what = fmt.Sprintf("A record read from %s could not be published: %s.", it.Connection, it.Reason)
		todo = "Correct the record in the ERP; the corrected version is read by itself. Resolve this once done."
	case "dead_letter":
		what = fmt.Sprintf("A message could not be processed after several attempts: %s.", it.Reason)
		todo = "Escalate to the engineers with this item's id; nothing was applied from this message."
	case "operator_escalation", "operator_resolution":
		what = fmt.Sprintf("An operator raised this about %s: %s.", doc, it.Reason)
		todo = "Read the notes; resolve with a note once handled."
	default:
		what = fmt.Sprintf("%s: %s.", it.Kind, it.Reason)
		todo = "Read the reason; escalate if unclear."
	}
	switch it.Status {
	case "escalated":
		todo = "Escalated: waiting for whoever it was handed to (see the notes). " + todo
	case "resolved", "replayed":
		todo = "Nothing: it was " + it.Status + "."
	}
	return what, todo
}

// payoutOf is the GoCardless payout an exception about a payout is
// about (its aggregate id), or its subject as it is.
func payoutOf(it Item) string {
	if id, ok := strings.CutPrefix(it.Subject, "payout "); ok {
		return id
	}
	return it.Subject
}
