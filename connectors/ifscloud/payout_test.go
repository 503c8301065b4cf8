package ifscloud_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ml-connector/ml-connector/connectors/ifscloud"
	"github.com/ml-connector/ml-connector/connectors/ifscloud/ifssim"
	"github.com/ml-connector/ml-connector/platform/payoutline"
)

// payout10 pays invoices 10/7 and 10/9 (100.10 each) less 1.50 fees.
func payout10() ifscloud.Payout {
	return ifscloud.Payout{PayoutID: "PO1", Reference: "REF1", Company: "10", Date: "2026-03-09", Currency: "EUR",
		Amount: "198.70", Fees: "-1.50", Lines: []ifscloud.PayoutLine{
			{Kind: payoutline.PaidOut, InvoiceID: "7", CustomerID: "C10", PaymentID: "PM7", Amount: "100.10"},
			{Kind: payoutline.PaidOut, InvoiceID: "9", CustomerID: "C10", PaymentID: "PM9", Amount: "100.10"},
		}}
}

// payout10Sim is a simulator holding what payout10 pays: invoices 10/7
// and 10/9 of customer C10.
func payout10Sim(t *testing.T, middleware ...func(http.Handler) http.Handler) *env {
	t.Helper()
	e := startSim(t, ifssim.Config{}, middleware...)
	if err := e.sim.PutInvoices(inv("10", 7, ifssim.StatePostedAuth, base), inv("10", 9, ifssim.StatePostedAuth, base)); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.PutCustomers(ifssim.Customer{CustomerID: "C10", Company: "10", Name: "Acme"}); err != nil {
		t.Fatal(err)
	}
	return e
}

var payoutSettings = map[string]any{"receipt_on": "payout", "payout_fee_accounts": map[string]any{"10": "6570"}}

// TestPayoutResumesAfterLostAnswers: creates whose answers are lost (IFS
// acted, the caller never heard) fail the attempt as unavailable; the
// next attempts resume from what IFS has, and the payout ends as one
// mixed payment with each lump sum and transaction once.
func TestPayoutResumesAfterLostAnswers(t *testing.T) {
	var creates atomic.Int64
	loseSome := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Creates go header, lump sum, its transaction, lump sum...:
			// the 3rd and 5th (the first two transactions) reach IFS,
			// their answers do not.
			if r.Method == http.MethodPost && !strings.Contains(r.URL.Path, "IfsApp.") && !strings.Contains(r.URL.Path, "/auth/") {
				if n := creates.Add(1); n == 3 || n == 5 {
					next.ServeHTTP(httptest.NewRecorder(), r)
					http.Error(w, "upstream connect error", http.StatusBadGateway)
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}
	e := payout10Sim(t, loseSome)
	w := ifscloud.NewWriter(e.client(t, payoutSettings, ifscloud.Options{}))
	ctx := context.Background()
	var p ifscloud.PayoutPosting
	var err error
	attempt := 1
	for ; attempt <= 5; attempt++ {
		if p, err = w.PostPayout(ctx, payout10()); err == nil {
			break
		}
		if !errors.Is(err, ifscloud.ErrUnavailable) {
			t.Fatalf("attempt %d: %v, want ErrUnavailable", attempt, err)
		}
	}
	if err != nil || attempt != 3 || p.Reference != "MP 10/1" || p.FeeReference != "MP 10/1" {
		t.Fatalf("payout at attempt %d: %+v, %v; want posted at the third", attempt, p, err)
	}
	mp := e.sim.MixedPayments()
	if len(mp) != 1 || mp[0].State != ifssim.MixedApproved || len(mp[0].LumpSums) != 3 {
		t.Fatalf("mixed payments %+v, want one approved with 3 lump sums", mp)
	}
	for i, l := range mp[0].LumpSums {
		if len(l.Transactions) != 1 {
			t.Errorf("lump sum %d has %d transactions, want 1: %+v", i+1, len(l.Transactions), l)
		}
	}
	for _, id := range []int64{7, 9} {
		if got, _ := e.sim.Invoice("10", id); got.OpenAmount != "0.00" {
			t.Errorf("invoice %d open %s, want paid once", id, got.OpenAmount)
		}
	}
	again, err := w.PostPayout(ctx, payout10())
	if err != nil || !again.AlreadyPosted || again.Reference != p.Reference {
		t.Errorf("repeat: %+v, %v", again, err)
	}
}

// TestPayoutFeesNettedWithRefundedFees: fees that refunded fees nearly
// cancel (-0.02) with a net tax refund of the other sign (0.04) are booked
// as fees less tax to the fee account and the tax to the tax account, in
// one lump sum of the fees; they were refused as "fee tax is not part of
// the fees" (make chaos, seed 7072, for JD Edwards; IFS had the same rule).
func TestPayoutFeesNettedWithRefundedFees(t *testing.T) {
	e := payout10Sim(t)
	settings := map[string]any{"receipt_on": "payout", "payout_fee_accounts": map[string]any{"10": "6570"},
		"payout_fee_tax_accounts": map[string]any{"10": "2640"}}
	w := ifscloud.NewWriter(e.client(t, settings, ifscloud.Options{}))
	p := payout10()
	p.Amount, p.Fees, p.FeeTax = "200.18", "-0.02", "0.04"
	if _, err := w.PostPayout(context.Background(), p); err != nil {
		t.Fatalf("payout: %v", err)
	}
	mp := e.sim.MixedPayments()
	if len(mp) != 1 || mp[0].State != ifssim.MixedApproved || len(mp[0].LumpSums) != 3 {
		t.Fatalf("mixed payments %+v, want one approved with 3 lump sums", mp)
	}
	fees := mp[0].LumpSums[2]
	got := map[string]string{}
	for _, tr := range fees.Transactions {
		got[tr.Account] = tr.Amount
	}
	if fees.Amount != "-0.02" || len(got) != 2 || got["6570"] != "-0.06" || got["2640"] != "0.04" {
		t.Errorf("fee lump sum %s with %v, want -0.02: -0.06 to 6570 and 0.04 to 2640", fees.Amount, got)
	}
}

// TestPayoutFeesNettingToZeroWithTax: fees that net to zero with tax left
// over (each fee's tax rounded on its own) cannot be booked on a mixed
// payment, which has no lump sum of zero: with a tax account the payout is
// refused, naming why, before anything is written; without one the tax
// stays in the fees and there is nothing to book for them.
func TestPayoutFeesNettingToZeroWithTax(t *testing.T) {
	e := payout10Sim(t)
	p := payout10()
	p.Amount, p.Fees, p.FeeTax = "200.20", "0.00", "-0.04"
	withTax := map[string]any{"receipt_on": "payout", "payout_fee_accounts": map[string]any{"10": "6570"},
		"payout_fee_tax_accounts": map[string]any{"10": "2640"}}
	_, err := ifscloud.NewWriter(e.client(t, withTax, ifscloud.Options{})).PostPayout(context.Background(), p)
	if !errors.Is(err, ifscloud.ErrInvalid) || !strings.Contains(err.Error(), "net to zero") {
		t.Fatalf("with a tax account: %v, want ErrInvalid naming the zero fees", err)
	}
	if mp := e.sim.MixedPayments(); len(mp) != 0 {
		t.Fatalf("refused payout wrote %+v", mp)
	}
	if _, err := ifscloud.NewWriter(e.client(t, payoutSettings, ifscloud.Options{})).PostPayout(context.Background(), p); err != nil {
		t.Fatalf("without a tax account: %v", err)
	}
	if mp := e.sim.MixedPayments(); len(mp) != 1 || len(mp[0].LumpSums) != 2 {
		t.Errorf("mixed payments %+v, want one with the two receipts only", mp)
	}
}

// TestPayoutRefusesToPayTwice: a payment its own outcome booked (before
// receipt_on became payout) is not booked again by the payout: the payout
// stays Not Approved and the error names the booking. A payout paying one
// payment out by two lines is refused before anything is written.
func TestPayoutRefusesToPayTwice(t *testing.T) {
	e := payout10Sim(t)
	ctx := context.Background()
	before := ifscloud.NewWriter(e.client(t, nil, ifscloud.Options{}))
	if _, err := before.PostPayment(ctx, ifscloud.PaymentOutcome{OutcomeID: "EV1", Company: "10", InvoiceID: "9", Status: ifscloud.PaymentPaid,
		PaymentID: "PM9", Amount: "50.00", Currency: "EUR", Date: "2026-03-05"}); err != nil {
		t.Fatal(err)
	}
	w := ifscloud.NewWriter(e.client(t, payoutSettings, ifscloud.Options{}))
	_, err := w.PostPayout(ctx, payout10())
	if !errors.Is(err, ifscloud.ErrInvalid) || !strings.Contains(err.Error(), "PM9 is already booked by MP 10/1") {
		t.Fatalf("payout of a booked payment: %v", err)
	}
	twice := payout10()
	twice.Lines[1].PaymentID = "PM7"
	if _, err := w.PostPayout(ctx, twice); !errors.Is(err, ifscloud.ErrInvalid) || !strings.Contains(err.Error(), "PM7 a second time") {
		t.Errorf("payout paying PM7 out twice: %v", err)
	}
	if approved := inState(e, ifssim.MixedApproved); len(approved) != 1 || approved[0].MixedPaymentID != 1 {
		t.Errorf("approved mixed payments %+v, want the payment's own only", approved)
	}
	if got, _ := e.sim.Invoice("10", 7); got.OpenAmount != "100.10" {
		t.Errorf("invoice 7 open %s: the refused payout paid it", got.OpenAmount)
	}
}
