package ifscloud

import (
	"bytes"
	"cmp"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/ml-connector/ml-connector/platform/payoutline"
)

// Payouts. A GoCardless payout is one bank deposit: the payments it paid
// out, less refunds, charge-backs and late failures, less GoCardless's
// fees. Standard IFS records such a deposit as one customer Mixed Payment
// (docs.ifs.com ifsclouddocs CustomerPayments/ProcessMainCustPaym) whose
// lump sums are the parts of the payment per customer
// (CustomerPayments/ActivityAnalyzeLumpSumsperCustPaym) and whose direct
// cash transactions post the bank's charges to a GL account
// (MixedPayment/ProcessExtMixedPaymentOnFile: "direct cash payments are
// automatically completed with a manual posting"; the mixed payment
// posting types include PP4 payment fee, GeneralIFSApplications/
// ActivityEnterMixedPaymPostControlInfo). Or, with writeback camt054, one
// camt.054 file with an entry per line and per fee.
//
// What the payout books depends on receipt_on. With "confirmed" (the
// default) every collected payment was booked by its own outcome, so the
// payout posts only its fees: booking its lines again would pay each
// invoice twice. With "payout" the payout is the receipt: its lines are
// matched to the invoices, its negative lines (refunds, charge-backs, late
// failures) book money going back, and payment and refund outcomes book
// nothing (see PostPayment).

// Payout is one GoCardless payout's share that belongs to one company.
// Amounts are decimal strings in Currency, signed as their effect on the
// deposit; Amount = sum(Lines) + Fees.
type Payout struct {
	// PayoutID (PO…) is the idempotency key and the mixed payment's
	// reference.
	PayoutID  string
	Reference string // the bank reference of the deposit
	Company   string
	Date      string // arrival date, YYYY-MM-DD: the voucher date
	Currency  string
	Amount    string
	Lines     []PayoutLine
	// Fees is the sum of the fee items (negative when deducted); FeeTax
	// the tax included in it. Each fee's tax has its fee's sign
	// (erp-poster checks it), but fees GoCardless refunded (a charge-back,
	// a late failure) are credits, so the sums may differ in sign; the
	// fees less the tax go to the fee account, the tax to the tax account.
	Fees   string
	FeeTax string
	// Text is a remark for AR (payout reference, FX).
	Text string
}

// PayoutLine is one receivable item of a payout.
type PayoutLine struct {
	Kind       payoutline.Kind
	InvoiceID  string // "" for an item that is not one of ours: on account
	CustomerID string
	PaymentID  string
	RefundID   string
	// RefundDoc is the ERP's refund document; a refund line is matched to
	// it when IFS has it as an open credit note of the customer.
	RefundDoc string
	Amount    string
}

// PayoutPosting identifies what IFS recorded for a payout.
type PayoutPosting struct {
	Posting
	// FeeReference names the entry that booked the fees (the same mixed
	// payment, or the camt.054 file); empty without fees.
	FeeReference string
}

func (w *Writer) checkPayout(p Payout) error {
	switch {
	case p.PayoutID == "" || len(p.PayoutID) > 50:
		return fmt.Errorf("%w: payout id %q is empty or longer than 50 characters", ErrInvalid, p.PayoutID)
	case !currencyCode.MatchString(p.Currency):
		return fmt.Errorf("%w: currency %q is not an ISO 4217 code", ErrInvalid, p.Currency)
	case len(p.Lines) > MaxPayoutLines:
		return fmt.Errorf("%w: %d lines; at most %d per payout", ErrInvalid, len(p.Lines), MaxPayoutLines)
	}
	sum := new(big.Rat)
	paidOut := make(map[string]bool)
	for i, l := range p.Lines {
		// A payment settles its invoice once: refused as erp-poster and the
		// JDE writer refuse it (its transaction and camt.054 entry carry
		// the payment id as their reference).
		if l.Kind == payoutline.PaidOut {
			if paidOut[l.PaymentID] {
				return fmt.Errorf("%w: line %d pays out payment %s a second time in this payout", ErrInvalid, i, l.PaymentID)
			}
			paidOut[l.PaymentID] = true
		}
		a, ok := new(big.Rat).SetString(l.Amount)
		if !ok || a.Sign() == 0 {
			return fmt.Errorf("%w: line %d amount %q is not a non-zero decimal", ErrInvalid, i, l.Amount)
		}
		if l.CustomerID == "" || len(l.CustomerID) > 20 || len(l.PaymentID) > 50 || len(l.RefundID) > 50 {
			return fmt.Errorf("%w: line %d (%s %s) has no customer, or an id too long", ErrInvalid, i, l.Kind, l.PaymentID)
		}
		if l.InvoiceID != "" && w.c.s.Invoices.KeyNumeric && !numericKey.MatchString(l.InvoiceID) {
			return fmt.Errorf("%w: line %d invoice id %q is not an IFS invoice id", ErrInvalid, i, l.InvoiceID)
		}
		if (a.Sign() > 0) != l.Kind.Credit() {
			return fmt.Errorf("%w: line %d: a %s of %s has the wrong sign", ErrInvalid, i, l.Kind, l.Amount)
		}
		sum.Add(sum, a)
	}
	fees, ok := new(big.Rat).SetString(cmp.Or(p.Fees, "0"))
	_, okTax := new(big.Rat).SetString(cmp.Or(p.FeeTax, "0"))
	total, okTotal := new(big.Rat).SetString(p.Amount)
	switch {
	case !ok || !okTax || !okTotal:
		return fmt.Errorf("%w: amount %q, fees %q or fee tax %q is not a decimal", ErrInvalid, p.Amount, p.Fees, p.FeeTax)
	case fees.Sign() == 0 && isNonZero(p.FeeTax) && w.c.s.PayoutFees[p.Company].TaxAccount != "":
		// Each fee's tax is rounded on its own, so fees that net to zero
		// can carry tax; a mixed payment has no lump sum of zero to book it on.
		return fmt.Errorf("%w: the fees net to zero but carry %s of tax, which a mixed payment cannot book (no lump sum of zero); "+
			"book the tax out of the fee account by hand", ErrInvalid, p.FeeTax)
	case new(big.Rat).Add(sum, fees).Cmp(total) != 0:
		return fmt.Errorf("%w: lines (%s) and fees (%s) do not add up to the amount %s", ErrInvalid, sum.FloatString(2), p.Fees, p.Amount)
	}
	if _, err := time.Parse(time.DateOnly, p.Date); err != nil {
		return fmt.Errorf("%w: arrival date %q is not YYYY-MM-DD", ErrInvalid, p.Date)
	}
	return w.checkCompany(p.Company)
}

// MaxPayoutLines bounds one payout's lines (GoCardless may split a large
// payout; this is far above a day's payments of one creditor).
const MaxPayoutLines = 20000

// PostPayout books a payout (see the comment at the top of this file).
func (w *Writer) PostPayout(ctx context.Context, p Payout) (PayoutPosting, error) {
	if err := w.checkPayout(p); err != nil {
		return PayoutPosting{}, fmt.Errorf("ifs post payout %q: %w", p.PayoutID, err)
	}
	if w.c.s.ReceiptOn != ReceiptOnPayout {
		p.Lines = nil // booked by their own outcomes
	}
	fees := isNonZero(p.Fees)
	if len(p.Lines) == 0 && !fees {
		return PayoutPosting{Posting: Posting{NothingToPost: true}}, nil
	}
	var acct FeeAccounts
	if fees {
		var ok bool
		if acct, ok = w.c.s.PayoutFees[p.Company]; !ok {
			return PayoutPosting{}, fmt.Errorf("ifs post payout %q: %w: company %s has no fee account in the connection's payout_fee_accounts",
				p.PayoutID, ErrNoFeeAccount, p.Company)
		}
	}
	// Lines in one order whatever order the caller sent them in, so a
	// resumed attempt finds the lump sums an earlier one made in place.
	slices.SortStableFunc(p.Lines, func(a, b PayoutLine) int {
		return cmp.Or(cmp.Compare(a.PaymentID, b.PaymentID), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.RefundID, b.RefundID), cmp.Compare(a.Amount, b.Amount))
	})
	var (
		pp  PayoutPosting
		err error
	)
	func() {
		defer w.lock(p.Company, p.PayoutID)()
		if w.c.s.Writeback == WritebackCamt054 {
			pp, err = w.camtPayout(ctx, p, acct)
		} else {
			pp, err = w.mixedPayout(ctx, p, acct)
		}
	}()
	if err != nil {
		return PayoutPosting{}, fmt.Errorf("ifs post payout %q in company %s: %w", p.PayoutID, p.Company, err)
	}
	if fees {
		pp.FeeReference = pp.Reference
	}
	return pp, nil
}

// ErrNoFeeAccount: the payout has fees and the connection names no GL
// account for them in the company. A setting to fix, then retry.
var ErrNoFeeAccount = errors.New("no fee account")

func isNonZero(d string) bool {
	r, ok := new(big.Rat).SetString(cmp.Or(d, "0"))
	return ok && r.Sign() != 0
}

// lumpPlan is one lump sum of the payout's mixed payment and the
// transactions matching it.
type lumpPlan struct {
	amount string
	trans  []map[string]any
}

// plan turns the payout into lump sums: one per line (a line never nets
// to zero, a lump sum must not), matched to its invoice as far as the
// invoice is open and on the customer's account beyond, and one for the
// fees as direct cash transactions.
func (w *Writer) plan(ctx context.Context, p Payout, acct FeeAccounts) ([]lumpPlan, error) {
	var plans []lumpPlan
	// What is still open per invoice, as lines of the same invoice use it.
	open := map[string]string{}
	for _, l := range p.Lines {
		text := "GoCardless payout " + p.PayoutID + " " + string(l.Kind) + " " + l.PaymentID
		ref := l.PaymentID
		if l.Kind == payoutline.Refund || l.Kind == payoutline.RefundReturned {
			ref = cmp.Or(l.RefundID, l.PaymentID)
		}
		match := l.InvoiceID
		if (l.Kind == payoutline.Refund || l.Kind == payoutline.RefundReturned) && l.RefundDoc != "" {
			// A refund settles the credit note it was made for, when IFS
			// has one open for the customer; otherwise on account.
			match = ""
			if !w.c.s.Invoices.KeyNumeric || numericKey.MatchString(l.RefundDoc) {
				match = l.RefundDoc
			}
		}
		var lines []payLine
		if match == "" {
			lines = []payLine{{amount: l.Amount}}
		} else {
			inv, err := w.invoice(ctx, p.Company, match)
			switch {
			case errors.Is(err, ErrNotFound) && match != l.InvoiceID:
				lines = []payLine{{amount: l.Amount}}
			case err != nil:
				return nil, fmt.Errorf("line %s %s: %w", l.Kind, l.PaymentID, err)
			case inv.customer != l.CustomerID && match == l.InvoiceID:
				return nil, fmt.Errorf("%w: invoice %s belongs to customer %s, the payout line names %s", ErrInvalid, match, inv.customer, l.CustomerID)
			case inv.currency != p.Currency && match == l.InvoiceID:
				return nil, fmt.Errorf("%w: payout in %s of an invoice in %s", ErrInvalid, p.Currency, inv.currency)
			case inv.customer != l.CustomerID || inv.currency != p.Currency:
				lines = []payLine{{amount: l.Amount}}
			default:
				if _, seen := open[match]; !seen {
					open[match] = inv.open
				}
				lines = split(match, l.Amount, open[match])
				for _, pl := range lines {
					if pl.invoiceID != "" {
						left, _ := new(big.Rat).SetString(open[match])
						a, _ := new(big.Rat).SetString(pl.amount)
						open[match] = left.Sub(left, a).FloatString(max(scale(open[match]), scale(pl.amount)))
					}
				}
			}
		}
		lp := lumpPlan{amount: l.Amount}
		for _, pl := range lines {
			t := map[string]any{"TransactionType": "CustomerPayment", "PartyType": "Customer", "Identity": l.CustomerID,
				"CurrAmount": pl.amount, "PaymentReference": ref, "Text": truncate(text, 200)}
			if pl.invoiceID != "" {
				t["InvoiceId"] = jsonInt(pl.invoiceID)
			}
			lp.trans = append(lp.trans, t)
		}
		plans = append(plans, lp)
	}
	if isNonZero(p.Fees) {
		// The fees to the fee account; the tax in them to the tax account
		// when the company has one.
		lp := lumpPlan{amount: p.Fees}
		net, tax := p.Fees, ""
		if acct.TaxAccount != "" && isNonZero(p.FeeTax) {
			f, _ := new(big.Rat).SetString(p.Fees)
			t, _ := new(big.Rat).SetString(p.FeeTax)
			net, tax = f.Sub(f, t).FloatString(max(scale(p.Fees), scale(p.FeeTax))), p.FeeTax
		}
		if isNonZero(net) {
			lp.trans = append(lp.trans, map[string]any{"TransactionType": "DirectCashPayment", "Account": acct.Account,
				"CurrAmount": net, "PaymentReference": p.PayoutID, "Text": truncate("GoCardless fees of payout "+p.PayoutID+" "+p.Text, 200)})
		}
		if tax != "" {
			lp.trans = append(lp.trans, map[string]any{"TransactionType": "DirectCashPayment", "Account": acct.TaxAccount,
				"CurrAmount": tax, "PaymentReference": p.PayoutID, "Text": truncate("Tax on GoCardless fees of payout "+p.PayoutID, 200)})
		}
		plans = append(plans, lp)
	}
	return plans, nil
}

func truncate(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return s[:n]
	}
	return s
}

// mixedPayout creates, completes and approves the payout's mixed
// payment, resuming whatever an earlier attempt left: the header is found
// by its reference (the payout id), lump sums and transactions by their
// position in the plan.
func (w *Writer) mixedPayout(ctx context.Context, p Payout, acct FeeAccounts) (PayoutPosting, error) {
	mp := w.c.s.MixedPayment
	header, err := w.c.query(ctx, mp.Projection, mp.EntitySet,
		"Company eq "+stringLit(p.Company)+" and "+mp.ReferenceField+" eq "+stringLit(p.PayoutID), "MixedPaymentId,Objstate")
	if err != nil {
		return PayoutPosting{}, err
	}
	var id string
	if len(header) > 0 {
		state := ""
		if id, err = header[0].text("MixedPaymentId"); err == nil {
			state, err = header[0].text("Objstate")
		}
		if err != nil {
			return PayoutPosting{}, fmt.Errorf("mixed payment of payout %s: %w", p.PayoutID, err)
		}
		if state != mixedNotApproved {
			return PayoutPosting{Posting: Posting{Reference: mixedRef(p.Company, id), AlreadyPosted: true}}, nil
		}
	}
	plans, err := w.plan(ctx, p, acct)
	if err != nil {
		return PayoutPosting{}, err
	}
	if id == "" {
		created, err := w.c.create(ctx, mp.Projection, mp.EntitySet, map[string]any{
			"Company": p.Company, "InstituteId": mp.Institute, "ShortName": mp.CashAccount,
			"VoucherDate": p.Date, mp.ReferenceField: p.PayoutID,
		})
		if err != nil {
			return PayoutPosting{}, err
		}
		if id, err = created.text("MixedPaymentId"); err != nil || id == "" {
			return PayoutPosting{}, fmt.Errorf("created mixed payment has no MixedPaymentId: %w", errors.Join(err, ErrInvalid))
		}
	}
	if !numericKey.MatchString(id) {
		return PayoutPosting{}, fmt.Errorf("mixed payment id %q is not a number: %w", id, ErrInvalid)
	}
	of := "Company eq " + stringLit(p.Company) + " and MixedPaymentId eq " + id
	lumps, err := w.c.query(ctx, mp.Projection, mp.LumpSumSet, of, "LumpSumId")
	if err != nil {
		return PayoutPosting{}, err
	}
	lumpIDs := make([]string, 0, len(plans))
	for _, r := range lumps {
		l, err := r.text("LumpSumId")
		if err != nil || !numericKey.MatchString(l) {
			return PayoutPosting{}, fmt.Errorf("lump sum id %q is not a number: %w", l, errors.Join(err, ErrInvalid))
		}
		lumpIDs = append(lumpIDs, l)
	}
	slices.SortFunc(lumpIDs, numericCompare)
	if len(lumpIDs) > len(plans) {
		return PayoutPosting{}, fmt.Errorf("%w: mixed payment %s has %d lump sums, the payout %d: changed by hand?", ErrInvalid, id, len(lumpIDs), len(plans))
	}
	for i, lp := range plans {
		if i >= len(lumpIDs) {
			created, err := w.c.create(ctx, mp.Projection, mp.LumpSumSet, map[string]any{
				"Company": p.Company, "MixedPaymentId": jsonInt(id), "LumpSumAmount": lp.amount, "Currency": p.Currency,
			})
			if err != nil {
				return PayoutPosting{}, err
			}
			l, err := created.text("LumpSumId")
			if err != nil || !numericKey.MatchString(l) {
				return PayoutPosting{}, fmt.Errorf("lump sum id %q is not a number: %w", l, errors.Join(err, ErrInvalid))
			}
			lumpIDs = append(lumpIDs, l)
		}
		existing, err := w.c.query(ctx, mp.Projection, mp.TransactionSet, of+" and LumpSumId eq "+lumpIDs[i], "TransactionId")
		if err != nil {
			return PayoutPosting{}, err
		}
		for _, t := range lp.trans[min(len(existing), len(lp.trans)):] {
			line := map[string]any{"Company": p.Company, "MixedPaymentId": jsonInt(id), "LumpSumId": jsonInt(lumpIDs[i]), "Currency": p.Currency}
			for k, v := range t {
				line[k] = v
			}
			if _, err := w.c.create(ctx, mp.Projection, mp.TransactionSet, line); err != nil {
				return PayoutPosting{}, err
			}
		}
	}
	// A payment booked by a mixed payment of its own (its outcome, before
	// receipt_on became payout) would be paid twice: the payout stays Not
	// Approved, paying nothing, for AR to resolve.
	if err := w.bookedElsewhere(ctx, p, id); err != nil {
		return PayoutPosting{}, err
	}
	pred := "(Company=" + stringLit(p.Company) + ",MixedPaymentId=" + id + ")"
	already, err := w.act(ctx, pred, mp.ApproveAction, mixedApproved)
	if err != nil {
		return PayoutPosting{}, err
	}
	return PayoutPosting{Posting: Posting{Reference: mixedRef(p.Company, id), AlreadyPosted: already, PostedAt: w.c.now().UTC()}}, nil
}

// refsPerQuery bounds the PaymentReference conditions of one $filter, so
// the query stays well inside URL length limits.
const refsPerQuery = 25

// bookedElsewhere refuses the payout when one of its collected payments
// is on an approved mixed payment other than the payout's own (id).
func (w *Writer) bookedElsewhere(ctx context.Context, p Payout, id string) error {
	var refs []string
	for _, l := range p.Lines {
		if l.Kind == payoutline.PaidOut && l.PaymentID != "" {
			refs = append(refs, l.PaymentID)
		}
	}
	mp := w.c.s.MixedPayment
	for len(refs) > 0 {
		n := min(len(refs), refsPerQuery)
		conds := make([]string, n)
		for i, r := range refs[:n] {
			conds[i] = "PaymentReference eq " + stringLit(r)
		}
		refs = refs[n:]
		rows, err := w.c.query(ctx, mp.Projection, mp.TransactionSet,
			"Company eq "+stringLit(p.Company)+" and ("+strings.Join(conds, " or ")+")", "MixedPaymentId,PaymentReference")
		if err != nil {
			return err
		}
		seen := map[string]bool{id: true}
		for _, r := range rows {
			other, err := r.text("MixedPaymentId")
			if err != nil || !numericKey.MatchString(other) {
				return fmt.Errorf("transaction has no MixedPaymentId: %w", errors.Join(err, ErrInvalid))
			}
			if seen[other] {
				continue
			}
			seen[other] = true
			h, err := w.c.entity(ctx, mp.Projection, mp.EntitySet, "(Company="+stringLit(p.Company)+",MixedPaymentId="+other+")", "Objstate")
			if err != nil {
				return err
			}
			if state, err := h.text("Objstate"); err != nil || state == mixedApproved {
				ref, _ := r.text("PaymentReference")
				return fmt.Errorf("%w: payment %s is already booked by %s; booking the payout would pay it twice (was receipt_on changed with payments in flight?)",
					errors.Join(err, ErrInvalid), ref, mixedRef(p.Company, other))
			}
		}
	}
	return nil
}

func numericCompare(a, b string) int {
	return cmp.Or(cmp.Compare(len(a), len(b)), strings.Compare(a, b))
}

// camtPayout writes the payout as one camt.054 notification: an entry per
// receivable line (with receipt_on "payout") and one per fee account.
// Entries follow the per-outcome files (see camt054.go); a fee is a debit
// with the ISO bank transaction code ACMT / MDOP / CHRG (account
// management, miscellaneous debit operations, charges), the fee account in
// its additional entry information for the site's External Payment
// Parameters to post it on (a message code's posting rule, ifsclouddocs
// MixedPayment/ProcessExtMixedPaymentOnFile). The file's name and MsgId
// derive from the payout id, so a repeat writes the same file.
func (w *Writer) camtPayout(ctx context.Context, p Payout, acct FeeAccounts) (PayoutPosting, error) {
	box, err := w.outbox()
	if err != nil {
		return PayoutPosting{}, err
	}
	name := camtName(p.Company, p.PayoutID, "PAYOUT")
	if _, sent, err := box.Get(ctx, name); err != nil || sent {
		return PayoutPosting{Posting: Posting{Reference: name, AlreadyPosted: sent}}, err
	}
	var entries []camtNtry
	add := func(amount string, credit, reversal bool, domain, family, sub string, tx camtTx, info string) {
		abs := strings.TrimPrefix(amount, "-")
		ind := "DBIT"
		if credit {
			ind = "CRDT"
		}
		ref := fmt.Sprintf("%s-%s-%d", p.Company, p.PayoutID, len(entries)+1)
		tx.Amount = camtAmount{Currency: p.Currency, Value: abs}
		entries = append(entries, camtNtry{Amount: camtAmount{Currency: p.Currency, Value: abs}, CdtDbt: ind, Reversal: reversal,
			Status: "BOOK", BookingDate: p.Date, ValueDate: p.Date, ServicerRef: ref, Domain: domain, Family: family, SubFamily: sub,
			Tx: tx, Info: info})
	}
	for _, l := range p.Lines {
		number := l.RefundDoc
		if l.InvoiceID != "" && (number == "" || l.Kind == payoutline.PaidOut || l.Kind == payoutline.Failed || l.Kind == payoutline.ChargedBack) {
			inv, err := w.invoice(ctx, p.Company, l.InvoiceID)
			if err != nil {
				return PayoutPosting{}, fmt.Errorf("line %s %s: %w", l.Kind, l.PaymentID, err)
			}
			number = inv.number
		}
		party := &camtParty{ID: l.CustomerID}
		tx := camtTx{EndToEndID: l.PaymentID, Ustrd: cmp.Or(number, "GoCardless "+l.PaymentID), Document: cmp.Or(number, l.PaymentID)}
		switch l.Kind {
		case payoutline.PaidOut: // a collected direct debit: PMNT / IDDT / ESDD
			tx.Debtor = party
			add(l.Amount, true, false, "PMNT", "IDDT", "ESDD", tx, "")
		case payoutline.Failed, payoutline.ChargedBack: // its return: PMNT / IDDT / UPDD
			tx.Debtor = party
			add(l.Amount, false, true, "PMNT", "IDDT", "UPDD", tx, "")
		case payoutline.Refund: // a credit transfer to the payer: PMNT / ICDT / ESCT
			tx.EndToEndID, tx.Creditor = cmp.Or(l.RefundID, l.PaymentID), party
			add(l.Amount, false, false, "PMNT", "ICDT", "ESCT", tx, "")
		case payoutline.RefundReturned: // it came back: PMNT / ICDT / RRTN
			tx.EndToEndID, tx.Creditor = cmp.Or(l.RefundID, l.PaymentID), party
			add(l.Amount, true, true, "PMNT", "ICDT", "RRTN", tx, "")
		default:
			return PayoutPosting{}, fmt.Errorf("%w: payout line kind %q", ErrInvalid, l.Kind)
		}
	}
	if isNonZero(p.Fees) {
		net, tax := p.Fees, ""
		if acct.TaxAccount != "" && isNonZero(p.FeeTax) {
			f, _ := new(big.Rat).SetString(p.Fees)
			t, _ := new(big.Rat).SetString(p.FeeTax)
			net, tax = f.Sub(f, t).FloatString(max(scale(p.Fees), scale(p.FeeTax))), p.FeeTax
		}
		fee := func(amount, account, what string) {
			neg := strings.HasPrefix(amount, "-")
			add(amount, !neg, false, "ACMT", "MDOP", "CHRG",
				camtTx{EndToEndID: p.PayoutID, Ustrd: what + " " + p.PayoutID, Document: p.PayoutID}, "GL "+account)
		}
		if isNonZero(net) {
			fee(net, acct.Account, "GoCardless fees")
		}
		if tax != "" {
			fee(tax, acct.TaxAccount, "Tax on GoCardless fees")
		}
	}
	data, err := w.camtEntries(p.Company+"-"+p.PayoutID+"-PAYOUT", p.Currency, p.Date, entries)
	if err != nil {
		return PayoutPosting{}, err
	}
	fresh, err := box.Put(ctx, name, data)
	if err != nil {
		return PayoutPosting{}, err
	}
	return PayoutPosting{Posting: Posting{Reference: name, AlreadyPosted: !fresh, PostedAt: w.c.now().UTC()}}, nil
}

// camtEntries encodes a notification of several entries.
func (w *Writer) camtEntries(id, currency, date string, entries []camtNtry) ([]byte, error) {
	if _, err := time.Parse(time.DateOnly, date); err != nil {
		return nil, fmt.Errorf("%w: date %q", ErrInvalid, date)
	}
	cs := w.c.s.Camt054
	stamp := date + "T00:00:00Z"
	account := camtAccount{IBAN: cs.AccountIBAN, Currency: currency}
	if cs.AccountIBAN == "" {
		account.Other = &camtOther{ID: cs.AccountID}
	}
	doc := camtDocument{MsgID: id, Created: stamp, Notification: camtNotification{ID: id, Created: stamp, Account: account, Entries: entries}}
	var b bytes.Buffer
	b.WriteString(xml.Header)
	enc := xml.NewEncoder(&b)
	enc.Indent("", " ")
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("%w: encode camt.054: %w", ErrInvalid, err)
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}
