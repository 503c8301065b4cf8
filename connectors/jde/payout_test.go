package jde_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/ml-connector/ml-connector/connectors/jde"
	"github.com/ml-connector/ml-connector/connectors/jde/jdesim"
	"github.com/ml-connector/ml-connector/platform/payoutline"
)

var payoutAccounts = map[string]jde.PayoutAccounts{"00001": {Fee: "HQ.6570", FeeTax: "HQ.2640", Bank: "HQ.1110.GC"}}

// TestPayoutFeesOfAForeignPayout: the fees of a EUR payout of the USD
// company are one journal entry in foreign mode: amounts in EUR (ACR),
// converted to USD at the F0015 rate (AA), balanced in both.
func TestPayoutFeesOfAForeignPayout(t *testing.T) {
	e, w := writerEnv(t, jde.WriterConfig{PayoutAccounts: payoutAccounts})
	ctx := context.Background()
	r, err := w.PostPayout(ctx, jde.Payout{PayoutID: "PO1", Reference: "REF", Company: "00001", ArrivalDate: paidAt,
		Currency: "EUR", AmountMinor: -250, FeesMinor: -250, FeeTaxMinor: -42})
	if err != nil || r.FeeReference == "" || r.Reference != r.FeeReference || r.AlreadyPosted {
		t.Fatalf("payout: %+v, %v", r, err)
	}
	lines := e.sim.JournalInputs()
	if len(lines) != 3 {
		t.Fatalf("journal lines %+v, want fee, tax and bank", lines)
	}
	var acr int64
	for _, l := range lines {
		if l.VNCRCD != "EUR" || l.VNCRRM != jde.ModeForeign || l.VNDCT != "JE" {
			t.Errorf("line %+v, want a EUR entry in foreign mode", l)
		}
		acr += l.VNACR
	}
	if lines[0].VNANI != "HQ.6570" || lines[0].VNACR != 208 || lines[1].VNANI != "HQ.2640" || lines[1].VNACR != 42 ||
		lines[2].VNANI != "HQ.1110.GC" || lines[2].VNACR != -250 || acr != 0 {
		t.Errorf("lines %+v, want 2.08 fees and 0.42 tax debited, 2.50 credited to the bank", lines)
	}
	if lines[0].VNAA == lines[0].VNACR {
		t.Errorf("domestic amount %d not converted from %d EUR", lines[0].VNAA, lines[0].VNACR)
	}
	again, err := w.PostPayout(ctx, jde.Payout{PayoutID: "PO1", Reference: "REF", Company: "00001", ArrivalDate: paidAt,
		Currency: "EUR", AmountMinor: -250, FeesMinor: -250, FeeTaxMinor: -42})
	if err != nil || !again.AlreadyPosted || again.FeeReference != r.FeeReference || len(e.sim.JournalInputs()) != 3 {
		t.Errorf("repeat: %+v, %v", again, err)
	}
}

// TestPayoutFeesNettedWithRefundedFees: a payout whose refunded fees (a
// charge-back refunds its payment's fee) nearly cancel its fees can carry
// a net tax of the other sign: 0.02 of fees and a 0.04 tax refund. The
// entry books the fees less the tax and the tax, balanced; it was refused
// as "fee tax is not part of the fees" (make chaos, seed 7072).
func TestPayoutFeesNettedWithRefundedFees(t *testing.T) {
	e, w := writerEnv(t, jde.WriterConfig{PayoutAccounts: payoutAccounts})
	r, err := w.PostPayout(context.Background(), jde.Payout{PayoutID: "PO3", Reference: "REF", Company: "00001", ArrivalDate: paidAt,
		Currency: "USD", AmountMinor: -2, FeesMinor: -2, FeeTaxMinor: 4})
	if err != nil || r.FeeReference == "" {
		t.Fatalf("payout: %+v, %v", r, err)
	}
	lines := e.sim.JournalInputs()
	if len(lines) != 3 || lines[0].VNANI != "HQ.6570" || lines[0].VNAA != 6 || lines[1].VNANI != "HQ.2640" || lines[1].VNAA != -4 ||
		lines[2].VNANI != "HQ.1110.GC" || lines[2].VNAA != -2 {
		t.Errorf("lines %+v, want 0.06 of fees debited, 0.04 of tax and 0.02 to the bank credited", lines)
	}
}

// TestPayoutFeesNettingToZeroKeepTheirTax: fees that net to zero with tax
// left over (each fee's tax is rounded on its own) are an entry that moves
// the tax out of the fee account, with nothing to the bank; skipping it
// left the tax in the fees.
func TestPayoutFeesNettingToZeroKeepTheirTax(t *testing.T) {
	e, w := writerEnv(t, jde.WriterConfig{PayoutAccounts: payoutAccounts})
	r, err := w.PostPayout(context.Background(), jde.Payout{PayoutID: "PO4", Reference: "REF", Company: "00001", ArrivalDate: paidAt,
		Currency: "USD", AmountMinor: 0, FeesMinor: 0, FeeTaxMinor: -4})
	if err != nil || r.FeeReference == "" {
		t.Fatalf("payout: %+v, %v", r, err)
	}
	lines := e.sim.JournalInputs()
	if len(lines) != 2 || lines[0].VNANI != "HQ.6570" || lines[0].VNAA != -4 || lines[1].VNANI != "HQ.2640" || lines[1].VNAA != 4 {
		t.Errorf("lines %+v, want 0.04 moved from the fee account to the tax account", lines)
	}
}

// TestPayoutNeedsItsAccounts: fees without a fee account, receipts without
// a bank account are refused with ErrNoPayoutAccount; a payout whose lines
// and fees do not make its amount is ErrInvalid. Nothing is written.
func TestPayoutNeedsItsAccounts(t *testing.T) {
	e, w := writerEnv(t, jde.WriterConfig{})
	ctx := context.Background()
	fees := jde.Payout{PayoutID: "PO2", Reference: "REF", Company: "00001", ArrivalDate: paidAt, Currency: "USD", AmountMinor: -100, FeesMinor: -100}
	if _, err := w.PostPayout(ctx, fees); !errors.Is(err, jde.ErrNoPayoutAccount) {
		t.Errorf("fees without accounts: %v", err)
	}
	_, payoutMode := writerEnv(t, jde.WriterConfig{ReceiptOn: jde.ReceiptOnPayout})
	e.sim.AddInvoices(jdesim.Invoice{DOC: 1001, DCT: "RI", KCO: "00001", SFX: "001", AN8: 4242, CO: "00001", AG: 5000, AAP: 5000, CRCD: "USD", MCU: "M30", PST: "A"})
	receipt := jde.Payout{PayoutID: "PO3", Reference: "REF", Company: "00001", ArrivalDate: paidAt, Currency: "USD", AmountMinor: 5000,
		Lines: []jde.PayoutLine{{Kind: payoutline.PaidOut, Invoice: invoiceKey("1001"), Customer: "4242", PaymentID: "PM1", AmountMinor: 5000}}}
	if _, err := payoutMode.PostPayout(ctx, receipt); !errors.Is(err, jde.ErrNoPayoutAccount) {
		t.Errorf("receipts without a bank account: %v", err)
	}
	receipt.AmountMinor = 4999
	if _, err := w.PostPayout(ctx, receipt); !errors.Is(err, jde.ErrInvalid) {
		t.Errorf("amount off by one: %v", err)
	}
	// A receipt is keyed by payout and payment: a payment paid out twice
	// in one payout would be booked once, so the payout is refused.
	twice := receipt
	twice.AmountMinor = 10000
	twice.Lines = append(slices.Clone(receipt.Lines), receipt.Lines[0])
	if _, err := w.PostPayout(ctx, twice); !errors.Is(err, jde.ErrInvalid) {
		t.Errorf("a payment paid out twice: %v", err)
	}
	if len(e.sim.JournalInputs()) != 0 || len(e.sim.Receipts()) != 0 {
		t.Errorf("refusals wrote: %d journal lines, %d receipts", len(e.sim.JournalInputs()), len(e.sim.Receipts()))
	}
}

// TestPayoutFeesOfEachCompany: a payout that settled invoices of two
// companies of one connection is two deposits (erp-poster posts one per
// connection and company), each with its own fees. Each company's fees are
// their own journal entry: the second is not taken for a repeat of the
// first (the entry's key names the company), and a repeat of either
// writes nothing.
func TestPayoutFeesOfEachCompany(t *testing.T) {
	accounts := map[string]jde.PayoutAccounts{
		"00001": {Fee: "HQ.6570", Bank: "HQ.1110.GC"},
		"00002": {Fee: "EU.6570", Bank: "EU.1110.GC"},
	}
	e, w := writerEnv(t, jde.WriterConfig{PayoutAccounts: accounts})
	ctx := context.Background()
	deposit := func(company string, fees int64) jde.Payout {
		return jde.Payout{PayoutID: "PO7", Reference: "REF", Company: company, ArrivalDate: paidAt,
			Currency: "USD", AmountMinor: fees, FeesMinor: fees}
	}
	first, err := w.PostPayout(ctx, deposit("00001", -120))
	if err != nil || first.AlreadyPosted {
		t.Fatalf("company 00001: %+v, %v", first, err)
	}
	second, err := w.PostPayout(ctx, deposit("00002", -80))
	if err != nil || second.AlreadyPosted || second.FeeReference == first.FeeReference {
		t.Fatalf("company 00002: %+v, %v; want its own entry, not %q", second, err, first.FeeReference)
	}
	booked := map[string]int64{}
	for _, l := range e.sim.JournalInputs() {
		booked[l.VNANI] += l.VNAA
	}
	want := map[string]int64{"HQ.6570": 120, "HQ.1110.GC": -120, "EU.6570": 80, "EU.1110.GC": -80}
	for acct, aa := range want {
		if booked[acct] != aa {
			t.Errorf("account %s booked %d, want %d (all: %v)", acct, booked[acct], aa, booked)
		}
	}
	again, err := w.PostPayout(ctx, deposit("00002", -80))
	if err != nil || !again.AlreadyPosted || again.FeeReference != second.FeeReference || len(e.sim.JournalInputs()) != 4 {
		t.Errorf("repeat of 00002: %+v, %v, %d journal lines", again, err, len(e.sim.JournalInputs()))
	}
}
