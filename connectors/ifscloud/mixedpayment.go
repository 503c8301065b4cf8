package ifscloud

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"

	"github.com/ml-connector/ml-connector/platform/retry"
)

// The mixed_payment write-back preset. Standard IFS records a payment
// received from a customer as a Mixed Payment: a header on a payment
// institute's cash account (created Not Approved), lump sums, and customer
// payment transactions matching a lump sum to invoices; approving it pays
// the invoices, cancelling it (only as a whole) unpays them. Sources:
// docs.ifs.com ifsclouddocs CustomerPayments/ProcessMainCustPaym,
// MixedPayment/ActivityEnterCashAccInfoMixedPayment,
// GeneralIFSApplications/ActivityCancelMixedPayment; the OData names are
// settings (see MixedPaymentSettings and docs/ifs.md).

// Mixed payment states as IFS names them in Objstate.
const (
	mixedNotApproved = "NotApproved"
	mixedApproved    = "Approved"
	mixedCancelled   = "Cancelled"
)

// mixedRef is the Posting reference of a mixed payment.
func mixedRef(company, id string) string { return "MP " + company + "/" + id }

// invoiceFacts reads what a payment line needs from the invoice: its
// customer and currency. An unknown invoice is ErrNotFound.
func (w *Writer) invoiceFacts(ctx context.Context, company, invoiceID string) (customer, currency string, err error) {
	f, err := w.invoice(ctx, company, invoiceID)
	return f.customer, f.currency, err
}

type invoiceInfo struct{ customer, currency, number, open string }

func (w *Writer) invoice(ctx context.Context, company, invoiceID string) (invoiceInfo, error) {
	inv := w.c.s.Invoices
	pred := "(" + inv.Fields[FieldCompany] + "=" + stringLit(company) + "," + inv.Fields[FieldKey] + "=" + keyLit(invoiceID, inv.KeyNumeric) + ")"
	sel := inv.Fields[FieldCustomer] + "," + inv.Fields[FieldCurrency] + "," + inv.Fields[FieldOpenAmount]
	if inv.Fields[FieldNumber] != "" {
		sel += "," + inv.Fields[FieldNumber]
	}
	r, err := w.c.entity(ctx, inv.Projection, inv.EntitySet, pred, sel)
	if err != nil {
		return invoiceInfo{}, err
	}
	fr := &fieldReader{r: r, f: inv.Fields}
	f := invoiceInfo{customer: fr.required(FieldCustomer), currency: fr.required(FieldCurrency), number: fr.text(FieldNumber),
		open: fr.decimal(FieldOpenAmount, true)}
	if f.number == "" {
		f.number = invoiceID
	}
	return f, fr.err
}

// mixedLine is the mixed payment we write for one outcome: one lump sum
// of amount, matched by one or two customer payment lines.
type mixedLine struct {
	outcomeID string
	company   string
	date      string
	identity  string
	amount    string // the lump sum; negative for a repayment
	currency  string
	reference string // the GoCardless payment or refund id
	text      string
	lines     []payLine
}

// payLine is one customer payment transaction.
type payLine struct {
	invoiceID string // "" for a payment on account
	amount    string
}

// split matches amount to an invoice with open still open: what exceeds
// it (a payment the ERP meanwhile partly received otherwise) becomes a
// payment on account rather than a refusal, as IFS itself does with an
// unmatched remainder; the collected money is never left unrecorded.
// Amounts of opposite sign to open (a credit note for a payment) are
// wholly on account.
func split(invoiceID, amount, open string) []payLine {
	a, okA := new(big.Rat).SetString(amount)
	o, okO := new(big.Rat).SetString(open)
	if !okA || !okO || a.Sign()*o.Sign() <= 0 {
		return []payLine{{amount: amount}}
	}
	if new(big.Rat).Abs(a).Cmp(new(big.Rat).Abs(o)) <= 0 {
		return []payLine{{invoiceID: invoiceID, amount: amount}}
	}
	places := max(scale(amount), scale(open))
	return []payLine{{invoiceID: invoiceID, amount: o.FloatString(places)}, {amount: new(big.Rat).Sub(a, o).FloatString(places)}}
}

func scale(d string) int {
	if _, frac, ok := strings.Cut(d, "."); ok {
		return len(frac)
	}
	return 0
}

func (w *Writer) mixedPayment(ctx context.Context, o PaymentOutcome) (Posting, error) {
	if !o.Status.books() {
		return w.reverseMixed(ctx, o.Company, o.PaymentID)
	}
	inv, err := w.invoice(ctx, o.Company, o.InvoiceID)
	if err != nil {
		return Posting{}, err
	}
	if o.CustomerID != "" && o.CustomerID != inv.customer {
		return Posting{}, fmt.Errorf("%w: invoice %s belongs to customer %s, the outcome names %s", ErrInvalid, o.InvoiceID, inv.customer, o.CustomerID)
	}
	if inv.currency != o.Currency {
		return Posting{}, fmt.Errorf("%w: payment in %s of an invoice in %s", ErrInvalid, o.Currency, inv.currency)
	}
	// The same GoCardless payment reported again under another outcome id
	// (confirmed, then paid out) is booked already; after a charge-back
	// cancelled the booking, a reinstatement books it again.
	if p, found, err := w.bookedFor(ctx, o.Company, o.PaymentID); err != nil || found {
		return p, err
	}
	text := "GoCardless " + o.PaymentID
	if o.PayoutID != "" {
		text += " payout " + o.PayoutID
	}
	return w.postMixed(ctx, mixedLine{outcomeID: o.OutcomeID, company: o.Company, date: o.Date, identity: inv.customer,
		amount: o.Amount, currency: o.Currency, reference: o.PaymentID, text: text, lines: split(o.InvoiceID, o.Amount, inv.open)})
}

func (w *Writer) mixedRefund(ctx context.Context, o RefundOutcome) (Posting, error) {
	if o.Status != RefundPaid {
		return w.reverseMixed(ctx, o.Company, o.RefundID)
	}
	customer, _, err := w.invoiceFacts(ctx, o.Company, o.InvoiceID)
	if err != nil {
		return Posting{}, err
	}
	if p, found, err := w.bookedFor(ctx, o.Company, o.RefundID); err != nil || found {
		return p, err
	}
	// The repayment is matched to the refund document when IFS has it as
	// an invoice (a credit note) of the customer with that much still
	// open; otherwise it stays on the customer's account for AR to match.
	amount := "-" + o.Amount
	lines := []payLine{{amount: amount}}
	if o.RefundDoc != "" && (!w.c.s.Invoices.KeyNumeric || numericKey.MatchString(o.RefundDoc)) {
		doc, err := w.invoice(ctx, o.Company, o.RefundDoc)
		switch {
		case err == nil && doc.customer == customer && doc.currency == o.Currency:
			lines = split(o.RefundDoc, amount, doc.open)
		case err != nil && !errors.Is(err, ErrNotFound):
			return Posting{}, err
		}
	}
	return w.postMixed(ctx, mixedLine{outcomeID: o.OutcomeID, company: o.Company, date: o.Date, identity: customer,
		amount: amount, currency: o.Currency, reference: o.RefundID,
		text: "GoCardless refund " + o.RefundID + " of " + o.PaymentID, lines: lines})
}

// postMixed creates, completes and approves the mixed payment of one
// outcome, resuming whatever an earlier attempt left.
func (w *Writer) postMixed(ctx context.Context, l mixedLine) (Posting, error) {
	mp := w.c.s.MixedPayment
	header, err := w.c.query(ctx, mp.Projection, mp.EntitySet,
		"Company eq "+stringLit(l.company)+" and "+mp.ReferenceField+" eq "+stringLit(l.outcomeID), "MixedPaymentId,Objstate")
	if err != nil {
		return Posting{}, err
	}
	var id, state string
	if len(header) > 0 {
		if id, err = header[0].text("MixedPaymentId"); err == nil {
			state, err = header[0].text("Objstate")
		}
		if err != nil {
			return Posting{}, fmt.Errorf("mixed payment of outcome %s: %w", l.outcomeID, err)
		}
		if state != mixedNotApproved {
			// Approved, or approved and since cancelled by a reversal.
			return Posting{Reference: mixedRef(l.company, id), AlreadyPosted: true}, nil
		}
	} else {
		created, err := w.c.create(ctx, mp.Projection, mp.EntitySet, map[string]any{
			"Company": l.company, "InstituteId": mp.Institute, "ShortName": mp.CashAccount,
			"VoucherDate": l.date, mp.ReferenceField: l.outcomeID,
		})
		if err != nil {
			return Posting{}, err
		}
		if id, err = created.text("MixedPaymentId"); err != nil || id == "" {
			return Posting{}, fmt.Errorf("created mixed payment has no MixedPaymentId: %w", errors.Join(err, ErrInvalid))
		}
	}
	if !numericKey.MatchString(id) {
		return Posting{}, fmt.Errorf("mixed payment id %q is not a number: %w", id, ErrInvalid)
	}
	of := "Company eq " + stringLit(l.company) + " and MixedPaymentId eq " + id
	lumps, err := w.c.query(ctx, mp.Projection, mp.LumpSumSet, of, "LumpSumId")
	if err != nil {
		return Posting{}, err
	}
	var lump string
	if len(lumps) > 0 {
		lump, err = lumps[0].text("LumpSumId")
	} else {
		var created row
		created, err = w.c.create(ctx, mp.Projection, mp.LumpSumSet, map[string]any{
			"Company": l.company, "MixedPaymentId": jsonInt(id), "LumpSumAmount": l.amount, "Currency": l.currency,
		})
		if err == nil {
			lump, err = created.text("LumpSumId")
		}
	}
	if err != nil {
		return Posting{}, err
	}
	if !numericKey.MatchString(lump) {
		return Posting{}, fmt.Errorf("lump sum id %q is not a number: %w", lump, ErrInvalid)
	}
	existing, err := w.c.query(ctx, mp.Projection, mp.TransactionSet, of+" and LumpSumId eq "+lump, "TransactionId,InvoiceId")
	if err != nil {
		return Posting{}, err
	}
	have := map[string]bool{}
	for _, r := range existing {
		inv, _ := r.text("InvoiceId")
		have[inv] = true
	}
	for _, pl := range l.lines {
		if have[pl.invoiceID] {
			continue // made by an earlier attempt
		}
		line := map[string]any{
			"Company": l.company, "MixedPaymentId": jsonInt(id), "LumpSumId": jsonInt(lump),
			"TransactionType": "CustomerPayment", "PartyType": "Customer", "Identity": l.identity,
			"CurrAmount": pl.amount, "Currency": l.currency, "PaymentReference": l.reference, "Text": l.text,
		}
		if pl.invoiceID != "" {
			line["InvoiceId"] = jsonInt(pl.invoiceID)
		}
		if _, err := w.c.create(ctx, mp.Projection, mp.TransactionSet, line); err != nil {
			return Posting{}, err
		}
	}
	// Another outcome of the same GoCardless payment may have been booked
	// meanwhile by another erp-poster replica: approving this one too
	// would pay twice. It stays Not Approved, paying nothing.
	if p, found, err := w.bookedFor(ctx, l.company, l.reference); err != nil || found {
		return p, err
	}
	pred := "(Company=" + stringLit(l.company) + ",MixedPaymentId=" + id + ")"
	already, err := w.act(ctx, pred, mp.ApproveAction, mixedApproved)
	if err != nil {
		return Posting{}, err
	}
	return Posting{Reference: mixedRef(l.company, id), AlreadyPosted: already, PostedAt: w.c.now().UTC()}, nil
}

// jsonInt sends a numeric key as a JSON number; IFS keys are Edm.Int64 or
// integral Edm.Decimal, which IEEE754Compatible does not turn into strings.
type jsonInt string

func (j jsonInt) MarshalJSON() ([]byte, error) { return []byte(j), nil }

// bookedFor finds an approved mixed payment with a line of the given
// GoCardless reference (a payment or refund id, unique in the company).
func (w *Writer) bookedFor(ctx context.Context, company, reference string) (Posting, bool, error) {
	ids, err := w.mixedWith(ctx, company, reference)
	if err != nil {
		return Posting{}, false, err
	}
	for _, id := range sortedIDs(ids) {
		if ids[id] == mixedApproved {
			return Posting{Reference: mixedRef(company, id), AlreadyPosted: true}, true, nil
		}
	}
	return Posting{}, false, nil
}

// mixedWith returns the mixed payments (id → Objstate) with a line of the
// given GoCardless reference.
func (w *Writer) mixedWith(ctx context.Context, company, reference string) (map[string]string, error) {
	mp := w.c.s.MixedPayment
	filter := "Company eq " + stringLit(company) + " and PaymentReference eq " + stringLit(reference)
	lines, err := w.c.query(ctx, mp.Projection, mp.TransactionSet, filter, "MixedPaymentId")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, l := range lines {
		id, err := l.text("MixedPaymentId")
		if err != nil || !numericKey.MatchString(id) {
			return nil, fmt.Errorf("transaction of %s has no MixedPaymentId: %w", reference, errors.Join(err, ErrInvalid))
		}
		if _, seen := out[id]; seen {
			continue
		}
		h, err := w.c.entity(ctx, mp.Projection, mp.EntitySet, "(Company="+stringLit(company)+",MixedPaymentId="+id+")", "Objstate")
		if err != nil {
			return nil, err
		}
		if out[id], err = h.text("Objstate"); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// reverseMixed cancels the approved mixed payments booked for a
// GoCardless payment or refund. With none booked there is nothing to post:
// the invoice is open as it was.
func (w *Writer) reverseMixed(ctx context.Context, company, reference string) (Posting, error) {
	if reference == "" {
		return Posting{NothingToPost: true}, nil
	}
	ids, err := w.mixedWith(ctx, company, reference)
	if err != nil {
		return Posting{}, err
	}
	var refs []string
	already := true
	for _, id := range sortedIDs(ids) {
		state := ids[id]
		if state == mixedNotApproved {
			// Never approved: it paid nothing, and a repeat of its own
			// outcome must not approve it after the reversal. IFS keeps it
			// for AR to remove.
			continue
		}
		refs = append(refs, mixedRef(company, id))
		if state == mixedApproved {
			done, err := w.act(ctx, "(Company="+stringLit(company)+",MixedPaymentId="+id+")", w.c.s.MixedPayment.CancelAction, mixedCancelled)
			if err != nil {
				return Posting{}, err
			}
			already = already && done
		}
	}
	if len(refs) == 0 {
		return Posting{NothingToPost: true}, nil
	}
	return Posting{Reference: strings.Join(refs, ","), AlreadyPosted: already, PostedAt: w.c.now().UTC()}, nil
}

// act runs a bound action on a mixed payment with If-Match until the
// payment is in state want; it reports whether it was already.
func (w *Writer) act(ctx context.Context, pred, action, want string) (already bool, err error) {
	mp := w.c.s.MixedPayment
	var lost error
	for attempt := 1; attempt <= w.c.s.WriteAttempts; attempt++ {
		h, err := w.c.entity(ctx, mp.Projection, mp.EntitySet, pred, "Objstate")
		if err != nil {
			return false, err
		}
		state, err := h.text("Objstate")
		if err != nil {
			return false, err
		}
		if state == want {
			return attempt == 1, nil
		}
		etag := h.etag()
		if etag == "" {
			return false, fmt.Errorf("%s%s has no ETag: %w", mp.EntitySet, pred, ErrInvalid)
		}
		_, err = w.c.invoke(ctx, mp.Projection, mp.EntitySet, pred, action, etag, struct{}{})
		switch {
		case err == nil:
			return false, nil
		case errors.Is(err, ErrConflict):
			lost = err
			if err := retry.Sleep(ctx, raceBackoff.Delay(attempt-1)); err != nil {
				return false, err
			}
		default:
			return false, err
		}
	}
	return false, fmt.Errorf("lost the ETag race %d times: %w", w.c.s.WriteAttempts, lost)
}

// sortedIDs orders mixed payment ids numerically, so references and
// choices do not depend on map order.
func sortedIDs(ids map[string]string) []string {
	out := make([]string, 0, len(ids))
	for id := range ids {
		out = append(out, id)
	}
	slices.SortFunc(out, func(a, b string) int {
		if len(a) != len(b) {
			return len(a) - len(b)
		}
		return strings.Compare(a, b)
	})
	return out
}
