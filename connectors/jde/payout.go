package jde

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ml-connector/ml-connector/platform/money"
	"github.com/ml-connector/ml-connector/platform/payoutline"
)

// Payouts. A GoCardless payout is one bank deposit: the payments it paid
// out, less refunds, charge-backs and late failures, less GoCardless's
// fees. In JD Edwards:
//
//   - Its fees are one journal entry, the standard batch way: F0911Z1
//     (Journal Entry Transactions - Batch File) lines processed by the
//     Journal Entries Batch Processor R09110Z (Oracle, "Required Fields"
//     of F0911Z1, https://docs.oracle.com/en/applications/jd-edwards/financials/9.2/eoaga/required-fields-1.html,
//     and "Multicurrency Fields Required in the F0911Z1 Table",
//     https://docs.oracle.com/en/applications/jd-edwards/financials/9.2/eoamp/multicurrency-fields-required-in-the-f0911z1-table-1.html),
//     through the shipped MLC_JournalEntry orchestration: the fee account
//     debited, the tax account for the tax in the fees when the company has
//     one, the payout bank account credited.
//   - With receipt_on "payout" its collected payments are one receipts
//     batch: F03B13Z1 rows (EDBT = the payout id, every row's remark the
//     payout's bank reference) on the payout bank account, processed by
//     R03B551 as the per-payment receipts are (with write_preset
//     "orchestrations", one receipt orchestration call per payment, its
//     remark naming the payout). Oracle's F03B13Z1 field
//     list has no deposit-number column; the batch is the deposit. Lines
//     that take money back (refunds, charge-backs, late failures) and
//     refunds coming back are booked by their own outcomes, whose
//     orchestrations reverse a receipt or record the refund; they are not
//     receipts. With "confirmed" or "paid_out" the receipts were booked by
//     the payment outcomes, and the payout books its fees only.

// Payout is one GoCardless payout's share that belongs to one company.
// Amounts are minor units of Currency, signed as their effect on the
// deposit: AmountMinor = sum(Lines) + FeesMinor.
type Payout struct {
	PayoutID    string // PO…: the batch and the idempotency key
	Reference   string // the bank reference of the deposit
	Company     string
	ArrivalDate time.Time // G/L date of the fee entry and the receipts
	Currency    string
	AmountMinor int64
	Lines       []PayoutLine
	FeesMinor   int64 // negative when deducted
	// FeeTaxMinor is the tax in FeesMinor. Each fee's tax has its fee's
	// sign (erp-poster checks it), but GoCardless refunds a charged-back
	// or late-failed payment's fee as a credit in a later payout, so the
	// sums may differ in sign: fees of -0.02 and tax of +0.04 are fees
	// that nearly cancel out and refunded tax that outweighs the tax
	// charged. The fee entry books FeesMinor less the tax to the fee
	// account and the tax to the tax account, whatever their signs.
	FeeTaxMinor int64
}

// PayoutLine is one receivable item of a payout.
type PayoutLine struct {
	Kind         payoutline.Kind
	Invoice      DocumentKey // zero when the payment is not one of ours
	Customer     string
	BusinessUnit string
	PaymentID    string
	RefundID     string
	AmountMinor  int64
}

// PayoutResult identifies what JDE recorded for a payout.
type PayoutResult struct {
	Result
	// FeeReference names the fee journal entry; empty without fees.
	FeeReference string
}

// ErrNoPayoutAccount: the payout needs a GL account the connection does
// not name for the company. A setting to fix, then retry.
var ErrNoPayoutAccount = errors.New("no payout account")

// MaxPayoutLines bounds one payout's lines.
const MaxPayoutLines = 20000

func (p Payout) check() error {
	switch {
	case p.PayoutID == "" || len(p.PayoutID) > 15:
		return fmt.Errorf("%w: payout id %q must be 1-15 characters (F03B13Z1/F0911Z1 EDBT)", ErrInvalid, p.PayoutID)
	case p.Company == "" || p.ArrivalDate.IsZero():
		return fmt.Errorf("%w: payout needs its company and arrival date", ErrInvalid)
	case len(p.Lines) > MaxPayoutLines:
		return fmt.Errorf("%w: %d lines; at most %d per payout", ErrInvalid, len(p.Lines), MaxPayoutLines)
	}
	if _, err := money.FromMinor(0, p.Currency); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	sum := p.FeesMinor
	receipts := make(map[string]bool)
	for i, l := range p.Lines {
		// A receipt is keyed by payout and payment (payoutReceipt): a
		// payment paid out by two lines would be booked once.
		if l.Kind == payoutline.PaidOut {
			if receipts[l.PaymentID] {
				return fmt.Errorf("%w: line %d pays out payment %s a second time in this payout", ErrInvalid, i, l.PaymentID)
			}
			receipts[l.PaymentID] = true
		}
		if l.AmountMinor == 0 || (l.AmountMinor > 0) != l.Kind.Credit() {
			return fmt.Errorf("%w: line %d: a %s of %d minor units has the wrong sign", ErrInvalid, i, l.Kind, l.AmountMinor)
		}
		sum += l.AmountMinor
	}
	if sum != p.AmountMinor {
		return fmt.Errorf("%w: lines and fees add up to %d, the amount is %d", ErrInvalid, sum, p.AmountMinor)
	}
	return nil
}

// PostPayout books a payout (see the comment at the top of this file).
// Every row it writes is keyed by the payout id (and payment id), so a
// repeat writes nothing and answers AlreadyPosted.
func (w *Writer) PostPayout(ctx context.Context, p Payout) (PayoutResult, error) {
	if err := p.check(); err != nil {
		return PayoutResult{}, fmt.Errorf("jde post payout %q: %w", p.PayoutID, err)
	}
	accts := w.cfg.PayoutAccounts[p.Company]
	receipts := w.cfg.ReceiptOn == ReceiptOnPayout
	var out PayoutResult
	posted, already := 0, true
	if receipts {
		if accts.Bank == "" {
			return PayoutResult{}, fmt.Errorf("jde post payout %q: %w: company %s has no payout_bank_accounts entry", p.PayoutID, ErrNoPayoutAccount, p.Company)
		}
		for _, l := range p.Lines {
			if l.Kind != payoutline.PaidOut || l.Invoice.Document == "" {
				continue // booked by its own outcome, or not one of ours
			}
			r, err := w.payoutReceipt(ctx, p, l, accts.Bank)
			if err != nil {
				return PayoutResult{}, fmt.Errorf("jde post payout %q, payment %s: %w", p.PayoutID, l.PaymentID, err)
			}
			posted++
			already = already && r.AlreadyPosted
			out.PostedAt = r.PostedAt
		}
		if posted > 0 {
			out.Reference = fmt.Sprintf("F03B13Z1 %s/%s (%d receipts)", w.cfg.ReceiptsUser, p.PayoutID, posted)
			if w.cfg.Preset == PresetOrchestrations {
				out.Reference = fmt.Sprintf("%d receipts of payout %s", posted, p.PayoutID)
			}
		}
	}
	// Fees that net to zero can still carry tax (each fee's tax is rounded
	// on its own): with a tax account, the entry moves it out of the fee
	// account, and no money moves.
	if p.FeesMinor != 0 || (p.FeeTaxMinor != 0 && accts.FeeTax != "") {
		if accts.Fee == "" || accts.Bank == "" {
			return PayoutResult{}, fmt.Errorf("jde post payout %q: %w: company %s has no payout_fee_accounts and payout_bank_accounts entry",
				p.PayoutID, ErrNoPayoutAccount, p.Company)
		}
		r, err := w.feeEntry(ctx, p, accts)
		if err != nil {
			return PayoutResult{}, fmt.Errorf("jde post payout %q fees: %w", p.PayoutID, err)
		}
		out.FeeReference = r.Reference
		already = already && r.AlreadyPosted
		out.PostedAt = r.PostedAt
		if out.Reference == "" {
			out.Reference = r.Reference
		}
	}
	if out.Reference == "" {
		return PayoutResult{Result: Result{NothingToPost: true}}, nil
	}
	out.AlreadyPosted = already
	return out, nil
}

// payoutKey derives an F03B13Z1 / F0911Z1 transaction number (EDTN,
// alpha 22) from what it records, so a repeat names the same row.
func payoutKey(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:11])
}

// payoutReceipt is one collected payment of the payout as an F03B13Z1 row
// of the payout's batch, matched to its invoice as the standard preset's
// receipts are (see postReceiptsInput).
func (w *Writer) payoutReceipt(ctx context.Context, p Payout, l PayoutLine, bank string) (Result, error) {
	if err := l.Invoice.validate(); err != nil {
		return Result{}, err
	}
	customer, bu := l.Customer, l.BusinessUnit
	doc, err := w.checkDocument(ctx, l.Invoice, p.Currency, &customer, &bu)
	if err != nil {
		return Result{}, err
	}
	amount, err := money.FromMinor(l.AmountMinor, p.Currency)
	if err != nil {
		return Result{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	txn := payoutKey("receipt", p.PayoutID, l.PaymentID)
	date := isoDate(p.ArrivalDate)
	remark := strings.TrimSpace("GoCardless payout " + p.PayoutID + " " + p.Reference)
	if w.cfg.Preset == PresetOrchestrations {
		// ml-connector's own receipt orchestration, keyed by its external
		// reference: the payout and payment, digested.
		return w.orchestrate(ctx, w.cfg.Orchestrations.Receipt, map[string]string{
			"ExternalReference": "PO-" + txn, "DocumentCompany": l.Invoice.Company, "DocumentNumber": l.Invoice.Document,
			"DocumentType": l.Invoice.DocType, "PayItem": l.Invoice.Suffix, "Customer": customer, "Amount": amount,
			"Currency": p.Currency, "CurrencyMode": doc.mode, "ReceiptDate": date, "GLBankAccount": bank, "BusinessUnit": bu,
			"PaymentReference": l.PaymentID, "Remark": remark,
		})
	}
	user := w.cfg.ReceiptsUser
	ref := l.PaymentID
	if len(ref) > 25 {
		ref = ref[:25]
	}
	in := map[string]string{
		"EDUS": user, "EDBT": p.PayoutID, "EDTN": txn, "EDLN": "1", "CKNU": txn, "ICUT": "9B",
		"DMTJ": date, "DGJ": date, "CKAM": amount, "AG": amount, "CRCD": p.Currency, "CRRM": doc.mode,
		"AN8": customer, "PYR": customer, "DOC": l.Invoice.Document, "DCT": l.Invoice.DocType, "KCO": l.Invoice.Company,
		"SFX": l.Invoice.Suffix, "GLBA": bank, "VR01": ref, "RMK": remark,
	}
	var out postingOutput
	if err := w.c.Orchestrate(ctx, w.cfg.Orchestrations.ReceiptsInput, in, &out); err != nil {
		return Result{}, err
	}
	op := "orchestrator " + w.cfg.Orchestrations.ReceiptsInput
	if out.Status == "ERROR" {
		return Result{}, fmt.Errorf("%w: jde: %s: %s", ErrInvalid, op, strings.TrimSpace(out.Message))
	}
	out.Reference = fmt.Sprintf("F03B13Z1 %s/%s/%s/1", user, p.PayoutID, txn)
	if _, err := time.Parse(time.RFC3339, out.PostedAt); err != nil {
		out.PostedAt = w.c.cfg.Now().UTC().Format(time.RFC3339)
	}
	return out.result(op)
}

// JournalEntryInput is the input of the JournalEntry orchestration: one
// journal entry of F0911Z1 lines (see docs/jde/orchestrations).
type JournalEntryInput struct {
	EDUS  string             `json:"EDUS"`
	EDBT  string             `json:"EDBT"`
	EDTN  string             `json:"EDTN"`
	EDSP  string             `json:"EDSP"` // "0": not yet processed
	EDTC  string             `json:"EDTC"` // "A": add
	EDTR  string             `json:"EDTR"` // "J": journal entry
	DCT   string             `json:"DCT"`  // "JE"
	KCO   string             `json:"KCO"`
	DGJ   string             `json:"DGJ"`
	CRCD  string             `json:"CRCD"`
	CRRM  string             `json:"CRRM"`
	EXA   string             `json:"EXA"`
	Lines []JournalEntryLine `json:"Lines"`
}

// JournalEntryLine is one F0911Z1 line: AA is positive for a debit.
type JournalEntryLine struct {
	EDLN string `json:"EDLN"`
	ANI  string `json:"ANI"`
	LT   string `json:"LT"` // "AA": the actual amounts ledger
	AA   string `json:"AA"`
	EXA  string `json:"EXA"`
}

// feeEntry books the payout's fees: the fee (and tax) accounts debited,
// the payout bank account credited, in one balanced journal entry.
func (w *Writer) feeEntry(ctx context.Context, p Payout, a PayoutAccounts) (Result, error) {
	mode, err := w.companyMode(ctx, p.Company, p.Currency)
	if err != nil {
		return Result{}, err
	}
	cost, tax := -p.FeesMinor, int64(0)
	if a.FeeTax != "" {
		cost, tax = -(p.FeesMinor - p.FeeTaxMinor), -p.FeeTaxMinor
	}
	dec := func(n int64) string { s, _ := money.FromMinor(n, p.Currency); return s }
	text := "GC fees " + p.PayoutID // F0911 EXA is alpha 30; the id is at most 15

	// The key names the company: a payout that settled invoices of two
	// companies of this connection is two deposits, each with its own
	// fees, and one key for both would take the second for a repeat of
	// the first and leave its fees unbooked.
	in := JournalEntryInput{
		EDUS: w.cfg.ReceiptsUser, EDBT: p.PayoutID, EDTN: payoutKey("fees", p.PayoutID, p.Company), EDSP: "0", EDTC: "A", EDTR: "J",
		DCT: "JE", KCO: p.Company, DGJ: isoDate(p.ArrivalDate), CRCD: p.Currency, CRRM: mode, EXA: text,
	}
	add := func(account string, aa int64) {
		if aa != 0 {
			in.Lines = append(in.Lines, JournalEntryLine{EDLN: fmt.Sprint(len(in.Lines) + 1), ANI: account, LT: "AA", AA: dec(aa), EXA: text})
		}
	}
	add(a.Fee, cost)
	add(a.FeeTax, tax)
	add(a.Bank, p.FeesMinor)
	var out struct {
		postingOutput
		Document string `json:"DocumentNumber"`
	}
	if err := w.c.Orchestrate(ctx, w.cfg.Orchestrations.JournalEntry, in, &out); err != nil {
		return Result{}, err
	}
	op := "orchestrator " + w.cfg.Orchestrations.JournalEntry
	if out.Status == "ERROR" {
		return Result{}, fmt.Errorf("%w: jde: %s: %s", ErrInvalid, op, strings.TrimSpace(out.Message))
	}
	out.Reference = fmt.Sprintf("F0911Z1 %s/%s/%s JE %s", in.EDUS, in.EDBT, in.EDTN, out.Document)
	if _, err := time.Parse(time.RFC3339, out.PostedAt); err != nil {
		out.PostedAt = w.c.cfg.Now().UTC().Format(time.RFC3339)
	}
	return out.result(op)
}

// companyMode is the currency mode of an entry in currency for company:
// D in the company's own currency (F0010 CRCD), F in any other.
func (w *Writer) companyMode(ctx context.Context, company, currency string) (string, error) {
	own := ""
	err := w.c.Browse(ctx, Query{
		Table:      "F0010",
		Columns:    []string{"CO", "CRCD"},
		Conditions: []Condition{{Column: "CO", Op: Equal, Value: company}},
		PageSize:   2,
	}, func(rows []Row) error {
		for _, r := range rows {
			own = r.Text("F0010", "CRCD")
		}
		return nil
	})
	switch {
	case err != nil:
		return "", err
	case own == "":
		return "", fmt.Errorf("%w: company %s has no F0010 row", ErrNotFound, company)
	case own == currency:
		return ModeDomestic, nil
	}
	return ModeForeign, nil
}
