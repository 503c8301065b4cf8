package views

import "fmt"

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
