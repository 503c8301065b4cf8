package ifscloud_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/connectors/ifscloud"
	"github.com/ml-connector/ml-connector/connectors/ifscloud/ifssim"
)

// writerEnv has one open invoice 10/7 of 100.10 EUR and customer C10.
func writerEnv(t *testing.T) (*env, *ifscloud.Writer) {
	t.Helper()
	e := startSim(t, ifssim.Config{})
	if err := e.sim.PutInvoices(inv("10", 7, ifssim.StatePostedAuth, base), inv("10", 8, ifssim.StatePreliminary, base)); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.PutCustomers(ifssim.Customer{CustomerID: "C10", Company: "10", Name: "Acme"},
		ifssim.Customer{CustomerID: "C20", Company: "20", Name: "Other"}); err != nil {
		t.Fatal(err)
	}
	c := e.client(t, map[string]any{"company_codes": []any{"10", "20"}}, ifscloud.Options{})
	return e, ifscloud.NewWriter(c)
}

func paid(outcome, payment, amount string) ifscloud.PaymentOutcome {
	return ifscloud.PaymentOutcome{OutcomeID: outcome, Company: "10", InvoiceID: "7", Status: ifscloud.PaymentPaid,
		PaymentID: payment, Amount: amount, Currency: "EUR", Date: "2026-03-05"}
}

func failed(outcome, payment string, status ifscloud.PaymentStatus) ifscloud.PaymentOutcome {
	return ifscloud.PaymentOutcome{OutcomeID: outcome, Company: "10", InvoiceID: "7", Status: status,
		PaymentID: payment, Cause: "insufficient_funds", ReasonCode: "AM04", Date: "2026-03-08"}
}

// approved returns the simulator's mixed payments in state.
func inState(e *env, state string) []ifssim.MixedPayment {
	var out []ifssim.MixedPayment
	for _, mp := range e.sim.MixedPayments() {
		if mp.State == state {
			out = append(out, mp)
		}
	}
	return out
}

func TestPostPaymentAsMixedPayment(t *testing.T) {
	e, w := writerEnv(t)
	ctx := context.Background()

	p, err := w.PostPayment(ctx, paid("EV1", "PM1", "40.05"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Reference != "MP 10/1" || p.AlreadyPosted || p.NothingToPost || p.PostedAt.IsZero() {
		t.Errorf("posting %+v", p)
	}
	mps := e.sim.MixedPayments()
	if len(mps) != 1 {
		t.Fatalf("mixed payments %+v", mps)
	}
	mp := mps[0]
	if mp.State != ifssim.MixedApproved || mp.Description != "EV1" || mp.InstituteID != "GOCARDLESS" || mp.VoucherDate != "2026-03-05" ||
		len(mp.LumpSums) != 1 || mp.LumpSums[0].Amount != "40.05" || len(mp.LumpSums[0].Transactions) != 1 {
		t.Fatalf("mixed payment %+v", mp)
	}
	if tr := mp.LumpSums[0].Transactions[0]; tr.Identity != "C10" || tr.InvoiceID != 7 || tr.Amount != "40.05" ||
		tr.PaymentReference != "PM1" || tr.TransactionType != ifssim.TransactionCustomerPayment {
		t.Errorf("customer payment line %+v", tr)
	}
	after, _ := e.sim.Invoice("10", 7)
	if after.OpenAmount != "60.05" || after.State != ifssim.StatePartlyPaidPosted {
		t.Errorf("invoice after partial payment: %+v", after)
	}

	again, err := w.PostPayment(ctx, paid("EV1", "PM1", "40.05"))
	if err != nil || !again.AlreadyPosted || again.Reference != p.Reference {
		t.Errorf("re-post: %+v, %v", again, err)
	}
	// The same GoCardless payment reported again (confirmed, then paid
	// out) under another outcome id books nothing more.
	paidOut := paid("EV2", "PM1", "40.05")
	paidOut.PayoutID = "PO1"
	if got, err := w.PostPayment(ctx, paidOut); err != nil || !got.AlreadyPosted || got.Reference != p.Reference {
		t.Errorf("paid out after confirmed: %+v, %v", got, err)
	}
	if n := len(e.sim.MixedPayments()); n != 1 {
		t.Fatalf("%d mixed payments, want 1", n)
	}
	if now, _ := e.sim.Invoice("10", 7); now.ETag != after.ETag {
		t.Errorf("re-posts changed the invoice: %+v", now)
	}

	rest, err := w.PostPayment(ctx, paid("EV3", "PM2", "60.05"))
	if err != nil || rest.AlreadyPosted || rest.Reference != "MP 10/2" {
		t.Fatalf("second payment: %+v, %v", rest, err)
	}
	if closed, _ := e.sim.Invoice("10", 7); closed.OpenAmount != "0.00" || closed.State != ifssim.StatePaidPosted {
		t.Errorf("invoice not closed: %+v", closed)
	}
}

// TestFailuresCancelTheMixedPayment: a failure or charge-back after
// collection cancels the mixed payment, which unpays the invoice; one
// before collection has nothing to post.
func TestFailuresCancelTheMixedPayment(t *testing.T) {
	e, w := writerEnv(t)
	ctx := context.Background()
	if p, err := w.PostPayment(ctx, failed("EV0", "PM0", ifscloud.PaymentFailed)); err != nil || !p.NothingToPost {
		t.Fatalf("failure of a payment never booked: %+v, %v", p, err)
	}
	if n := e.sim.Stats().Writes; n != 0 {
		t.Errorf("%d writes for a failure with nothing booked", n)
	}
	booked, err := w.PostPayment(ctx, paid("EV1", "PM1", "100.10"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := w.PostPayment(ctx, failed("EV2", "PM1", ifscloud.PaymentChargedBack))
	if err != nil || p.AlreadyPosted || p.Reference != booked.Reference {
		t.Fatalf("charge-back: %+v, %v", p, err)
	}
	reopened, _ := e.sim.Invoice("10", 7)
	if reopened.OpenAmount != "100.10" || reopened.State != ifssim.StatePostedAuth {
		t.Errorf("invoice after the charge-back: %+v", reopened)
	}
	if c := inState(e, ifssim.MixedCancelled); len(c) != 1 {
		t.Errorf("cancelled mixed payments %+v", e.sim.MixedPayments())
	}
	if again, err := w.PostPayment(ctx, failed("EV2", "PM1", ifscloud.PaymentChargedBack)); err != nil || !again.AlreadyPosted {
		t.Errorf("re-post of the charge-back: %+v, %v", again, err)
	}
	// The confirmation redelivered after the reversal books nothing again.
	if again, err := w.PostPayment(ctx, paid("EV1", "PM1", "100.10")); err != nil || !again.AlreadyPosted {
		t.Errorf("confirmation after its reversal: %+v, %v", again, err)
	}
	// A new payment for the invoice is booked after the reversal.
	if p, err := w.PostPayment(ctx, paid("EV3", "PM3", "100.10")); err != nil || p.AlreadyPosted {
		t.Errorf("retry payment: %+v, %v", p, err)
	}
	if a, c := inState(e, ifssim.MixedApproved), inState(e, ifssim.MixedCancelled); len(a) != 1 || len(c) != 1 {
		t.Errorf("mixed payments %+v", e.sim.MixedPayments())
	}
}

// TestPaymentBeyondOpenGoesOnAccount: a collection larger than what is
// still open (the customer also paid part by other means) is matched up to
// the open amount and the rest is a payment on account; a charge-back
// takes back both.
func TestPaymentBeyondOpenGoesOnAccount(t *testing.T) {
	e, w := writerEnv(t)
	ctx := context.Background()
	if _, err := w.PostPayment(ctx, paid("EV1", "PM1", "40")); err != nil {
		t.Fatal(err)
	}
	if _, err := w.PostPayment(ctx, paid("EV2", "PM2", "100.10")); err != nil {
		t.Fatalf("payment beyond the open amount: %v", err)
	}
	mp := e.sim.MixedPayments()
	lines := mp[len(mp)-1].LumpSums[0].Transactions
	if len(lines) != 2 || lines[0].InvoiceID != 7 || lines[0].Amount != "60.10" || lines[1].InvoiceID != 0 || lines[1].Amount != "40.00" {
		t.Fatalf("lines %+v, want 60.10 on the invoice and 40.00 on account", lines)
	}
	if got, _ := e.sim.Invoice("10", 7); got.State != ifssim.StatePaidPosted {
		t.Errorf("invoice %+v", got)
	}
	if _, err := w.PostPayment(ctx, failed("EV3", "PM2", ifscloud.PaymentChargedBack)); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.sim.Invoice("10", 7); got.OpenAmount != "60.10" || got.State != ifssim.StatePartlyPaidPosted {
		t.Errorf("after the charge-back: %+v", got)
	}
	// Paid out after its confirmation: found by the payment, on account or not.
	if p, err := w.PostPayment(ctx, paid("EV4", "PM1", "40")); err != nil || !p.AlreadyPosted {
		t.Errorf("payout of PM1: %+v, %v", p, err)
	}
}

// TestLostAnswerOfACreate: IFS creates the payment line but its answer is
// lost; the create is not repeated blindly, and the next attempt finds the
// line and approves: one payment.
func TestLostAnswerOfACreate(t *testing.T) {
	var lost atomic.Bool
	lost.Store(true)
	loseAnswer := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/MixedPaymentTransactionSet") && lost.CompareAndSwap(true, false) {
				next.ServeHTTP(httptest.NewRecorder(), r) // IFS acts on it
				http.Error(w, "upstream connect error", http.StatusBadGateway)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	e := startSim(t, ifssim.Config{}, loseAnswer)
	if err := e.sim.PutInvoices(inv("10", 7, ifssim.StatePostedAuth, base)); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.PutCustomers(ifssim.Customer{CustomerID: "C10", Company: "10", Name: "Acme"}); err != nil {
		t.Fatal(err)
	}
	w := ifscloud.NewWriter(e.client(t, nil, ifscloud.Options{}))
	if _, err := w.PostPayment(context.Background(), paid("EV1", "PM1", "100.10")); !errors.Is(err, ifscloud.ErrUnavailable) {
		t.Fatalf("lost answer: %v, want ErrUnavailable", err)
	}
	if mp := e.sim.MixedPayments(); len(mp) != 1 || mp[0].State != ifssim.MixedNotApproved || len(mp[0].LumpSums[0].Transactions) != 1 {
		t.Fatalf("after the lost answer: %+v", mp)
	}
	p, err := w.PostPayment(context.Background(), paid("EV1", "PM1", "100.10"))
	if err != nil || p.AlreadyPosted {
		t.Fatalf("retry: %+v, %v", p, err)
	}
	mp := e.sim.MixedPayments()
	if len(mp) != 1 || mp[0].State != ifssim.MixedApproved || len(mp[0].LumpSums) != 1 || len(mp[0].LumpSums[0].Transactions) != 1 {
		t.Errorf("after the retry: %+v", mp)
	}
	if got, _ := e.sim.Invoice("10", 7); got.OpenAmount != "0.00" {
		t.Errorf("open amount %s", got.OpenAmount)
	}
}

// TestETagRace: the mixed payment changes between the writer's read and
// its approval; it re-reads and approves once.
func TestETagRace(t *testing.T) {
	e, w := writerEnv(t)
	e.sim.RaceNextWrites(2)
	p, err := w.PostPayment(context.Background(), paid("EV1", "PM1", "100.10"))
	if err != nil || p.AlreadyPosted {
		t.Fatalf("post: %+v, %v", p, err)
	}
	if a, st := inState(e, ifssim.MixedApproved), e.sim.Stats(); len(a) != 1 || st.PreconditionFailed != 2 {
		t.Errorf("approved %d, stats %+v", len(a), st)
	}
	if got, _ := e.sim.Invoice("10", 7); got.OpenAmount != "0.00" {
		t.Errorf("open amount %s", got.OpenAmount)
	}

	if err := e.sim.PutInvoices(inv("10", 9, ifssim.StatePostedAuth, base)); err != nil {
		t.Fatal(err)
	}
	o := paid("EV2", "PM2", "1")
	o.InvoiceID = "9"
	e.sim.RaceNextWrites(100)
	if _, err = w.PostPayment(context.Background(), o); !errors.Is(err, ifscloud.ErrConflict) {
		t.Fatalf("error %v, want ErrConflict after the attempts", err)
	}
	if st := e.sim.Stats(); st.PreconditionFailed != 2+5 {
		t.Errorf("%d 412s; want 5 more", st.PreconditionFailed)
	}
	e.sim.RaceNextWrites(0)
	if p, err := w.PostPayment(context.Background(), o); err != nil || p.AlreadyPosted {
		t.Fatalf("after the race: %+v, %v", p, err)
	}
	if n := len(e.sim.MixedPayments()); n != 2 {
		t.Errorf("%d mixed payments, want 2: the retry resumed the first attempt's", n)
	}
}

// TestConcurrentWriters post the confirmation and the payout of one
// payment from many goroutines: one payment.
func TestConcurrentWriters(t *testing.T) {
	e, w := writerEnv(t)
	var wg sync.WaitGroup
	results := make([]ifscloud.Posting, 8)
	errs := make([]error, 8)
	for i := range results {
		wg.Go(func() {
			results[i], errs[i] = w.PostPayment(context.Background(), paid(fmt.Sprint("EV", i%2), "PM1", "50"))
		})
	}
	wg.Wait()
	fresh := 0
	for i := range results {
		if errs[i] != nil {
			t.Fatalf("writer %d: %v", i, errs[i])
		}
		if !results[i].AlreadyPosted {
			fresh++
		}
	}
	if n := len(e.sim.MixedPayments()); n != 1 || fresh != 1 {
		t.Errorf("%d mixed payments, %d writers posted; want 1 and 1", n, fresh)
	}
	if got, _ := e.sim.Invoice("10", 7); got.OpenAmount != "50.10" {
		t.Errorf("open amount %s, want 50.10", got.OpenAmount)
	}
}

func TestWriterErrors(t *testing.T) {
	e, w := writerEnv(t)
	tests := []struct {
		name    string
		outcome ifscloud.PaymentOutcome
		inject  func()
		want    error
		text    string
		calls   bool // whether IFS is asked at all
	}{
		{"unknown invoice", func() ifscloud.PaymentOutcome { o := paid("E1", "P", "1"); o.InvoiceID = "99"; return o }(),
			nil, ifscloud.ErrNotFound, "ODP_NOT_FOUND", true},
		{"company not configured", func() ifscloud.PaymentOutcome { o := paid("E2", "P", "1"); o.Company = "30"; return o }(),
			nil, ifscloud.ErrNotFound, `company "30"`, false},
		{"empty outcome id", paid("", "P", "1"), nil, ifscloud.ErrInvalid, "outcome id is empty", false},
		{"non-numeric invoice id", func() ifscloud.PaymentOutcome { o := paid("E3", "P", "1"); o.InvoiceID = "7'x"; return o }(),
			nil, ifscloud.ErrInvalid, "not an IFS invoice id", false},
		{"float-looking amount", paid("E4", "P", "1e2"), nil, ifscloud.ErrInvalid, "not a positive decimal", false},
		{"zero amount", paid("E5", "P", "0.00"), nil, ifscloud.ErrInvalid, "not a positive decimal", false},
		{"unknown status", func() ifscloud.PaymentOutcome { o := paid("E6", "P", "1"); o.Status = "Paidish"; return o }(),
			nil, ifscloud.ErrInvalid, "unknown payment status", false},
		{"bad date", func() ifscloud.PaymentOutcome { o := paid("E7", "P", "1"); o.Date = "05/03/2026"; return o }(),
			nil, ifscloud.ErrInvalid, "not YYYY-MM-DD", false},
		{"other currency", func() ifscloud.PaymentOutcome { o := paid("E9", "P", "1"); o.Currency = "GBP"; return o }(),
			nil, ifscloud.ErrInvalid, "payment in GBP of an invoice in EUR", true},
		{"other customer", func() ifscloud.PaymentOutcome { o := paid("E12", "P", "1"); o.CustomerID = "C20"; return o }(),
			nil, ifscloud.ErrInvalid, "belongs to customer C10", true},
		{"invoice not open", func() ifscloud.PaymentOutcome { o := paid("E10", "P", "1"); o.InvoiceID = "8"; return o }(),
			nil, ifscloud.ErrInvalid, "NOT_OPEN", true},
		{"IFS down", paid("E11", "P", "1"), func() { e.sim.FailNext(100, 503) }, ifscloud.ErrUnavailable, "giving up", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.sim.FailNext(0, 0)
			if tc.inject != nil {
				tc.inject()
			}
			before := e.sim.Stats().APIRequests
			_, err := w.PostPayment(context.Background(), tc.outcome)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("error %v, want %v mentioning %q", err, tc.want, tc.text)
			}
			if asked := e.sim.Stats().APIRequests > before; asked != tc.calls {
				t.Errorf("IFS asked: %v, want %v", asked, tc.calls)
			}
		})
	}
	if a := inState(e, ifssim.MixedApproved); len(a) != 0 {
		t.Errorf("approved mixed payments after errors only: %+v", a)
	}
	if got, _ := e.sim.Invoice("10", 7); got.OpenAmount != "100.10" {
		t.Errorf("invoice changed by refused outcomes: %+v", got)
	}
}

func TestPostMandateStatus(t *testing.T) {
	e, standard := writerEnv(t)
	ctx := context.Background()
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	mandate := func(outcome string, status ifscloud.MandateStatus, occurred time.Time) ifscloud.MandateOutcome {
		return ifscloud.MandateOutcome{OutcomeID: outcome, Company: "10", CustomerID: "C10", MandateID: "MD1",
			Status: status, Scheme: "sepa_core", OccurredAt: occurred}
	}
	// Standard IFS has no place for a GoCardless mandate status.
	if p, err := standard.PostMandateStatus(ctx, mandate("EV1", ifscloud.MandateActive, at)); err != nil || !p.NothingToPost {
		t.Fatalf("standard preset: %+v, %v", p, err)
	}
	if n := e.sim.Stats().APIRequests; n != 0 {
		t.Errorf("%d requests under mandate_writeback none", n)
	}
	// The legacy preset writes ml-connector's own mandate log.
	w := ifscloud.NewWriter(e.client(t, map[string]any{"company_codes": []any{"10", "20"}, "mandate_writeback": "legacy_mandate_log"}, ifscloud.Options{}))
	if p, err := w.PostMandateStatus(ctx, mandate("EV1", ifscloud.MandateActive, at)); err != nil || p.AlreadyPosted || p.Reference != "1" {
		t.Fatalf("active: %+v, %v", p, err)
	}
	if cu, _ := e.sim.Customer("C10"); cu.MandateStatus != "active" || cu.MandateID != "MD1" {
		t.Errorf("customer %+v", cu)
	}
	if p, err := w.PostMandateStatus(ctx, mandate("EV1", ifscloud.MandateActive, at)); err != nil || !p.AlreadyPosted {
		t.Errorf("re-post: %+v, %v", p, err)
	}
	// An older status arriving late is logged but does not win.
	if _, err := w.PostMandateStatus(ctx, mandate("EV0", ifscloud.MandatePending, at.Add(-time.Hour))); err != nil {
		t.Fatal(err)
	}
	if cu, _ := e.sim.Customer("C10"); cu.MandateStatus != "active" {
		t.Errorf("late pending overwrote active: %+v", cu)
	}
	if log := e.sim.MandateLog(); len(log) != 2 || log[1].Applied {
		t.Errorf("log %+v", log)
	}

	errCases := []struct {
		name string
		o    ifscloud.MandateOutcome
		want error
		text string
	}{
		{"unknown customer", func() ifscloud.MandateOutcome {
			o := mandate("EV5", ifscloud.MandateActive, at)
			o.CustomerID = "C99"
			return o
		}(),
			ifscloud.ErrNotFound, "ODP_NOT_FOUND"},
		{"customer of another company", func() ifscloud.MandateOutcome {
			o := mandate("EV6", ifscloud.MandateActive, at)
			o.CustomerID = "C20"
			return o
		}(),
			ifscloud.ErrInvalid, "ORA-20120"},
		{"unknown status", mandate("EV7", "revoked", at), ifscloud.ErrInvalid, "unknown mandate status"},
		{"no time", mandate("EV8", ifscloud.MandateActive, time.Time{}), ifscloud.ErrInvalid, "occurred-at"},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := w.PostMandateStatus(ctx, tc.o)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Errorf("error %v, want %v mentioning %q", err, tc.want, tc.text)
			}
		})
	}
}

func refund(outcome string, status ifscloud.RefundStatus, doc string) ifscloud.RefundOutcome {
	return ifscloud.RefundOutcome{OutcomeID: outcome, Company: "10", InvoiceID: "7", RefundDoc: doc, Status: status,
		RefundID: "RF1", PaymentID: "PM1", Amount: "30.00", Currency: "EUR", Date: "2026-03-10"}
}

// TestPostRefund: a paid refund is a repayment (a negative customer
// payment line) matched to the credit note when IFS has it, else on
// account; a refund that came back cancels it.
func TestPostRefund(t *testing.T) {
	e, w := writerEnv(t)
	ctx := context.Background()
	credit := inv("10", 70, ifssim.StatePostedAuth, base)
	credit.GrossAmount, credit.OpenAmount, credit.CustomerID = "-30.00", "-30.00", "C10"
	if err := e.sim.PutInvoices(credit); err != nil {
		t.Fatal(err)
	}
	if p, err := w.PostRefund(ctx, refund("EVR0", ifscloud.RefundFailed, "70")); err != nil || !p.NothingToPost {
		t.Fatalf("failure of a refund never paid: %+v, %v", p, err)
	}
	p, err := w.PostRefund(ctx, refund("EVR1", ifscloud.RefundPaid, "70"))
	if err != nil || p.AlreadyPosted || p.NothingToPost {
		t.Fatalf("paid refund: %+v, %v", p, err)
	}
	mp := e.sim.MixedPayments()
	if len(mp) != 1 || mp[0].State != ifssim.MixedApproved || mp[0].LumpSums[0].Amount != "-30.00" {
		t.Fatalf("mixed payments %+v", mp)
	}
	if tr := mp[0].LumpSums[0].Transactions[0]; tr.InvoiceID != 70 || tr.Amount != "-30.00" || tr.PaymentReference != "RF1" || tr.Identity != "C10" {
		t.Errorf("repayment line %+v", tr)
	}
	if cn, _ := e.sim.Invoice("10", 70); cn.OpenAmount != "0.00" || cn.State != ifssim.StatePaidPosted {
		t.Errorf("credit note after the repayment: %+v", cn)
	}
	if again, err := w.PostRefund(ctx, refund("EVR1", ifscloud.RefundPaid, "70")); err != nil || !again.AlreadyPosted || again.Reference != p.Reference {
		t.Errorf("re-post: %+v, %v", again, err)
	}
	back, err := w.PostRefund(ctx, refund("EVR2", ifscloud.RefundFailed, "70"))
	if err != nil || back.Reference != p.Reference {
		t.Fatalf("refund came back: %+v, %v", back, err)
	}
	if cn, _ := e.sim.Invoice("10", 70); cn.OpenAmount != "-30.00" {
		t.Errorf("credit note after the reversal: %+v", cn)
	}

	// A refund document IFS does not have as an invoice: on account.
	other := refund("EVR3", ifscloud.RefundPaid, "REF-9")
	other.RefundID = "RF2"
	if _, err := w.PostRefund(ctx, other); err != nil {
		t.Fatal(err)
	}
	mp = e.sim.MixedPayments()
	if tr := mp[len(mp)-1].LumpSums[0].Transactions[0]; len(mp) != 2 || tr.InvoiceID != 0 || tr.Amount != "-30.00" {
		t.Errorf("on-account repayment %+v", mp)
	}
	if _, err := w.PostRefund(ctx, refund("", ifscloud.RefundPaid, "70")); !errors.Is(err, ifscloud.ErrInvalid) {
		t.Errorf("refund without outcome id: %v", err)
	}
}

// TestCamt054Preset writes each outcome as a camt.054 notification file:
// the collection a credit, its charge-back a reversal of exactly what was
// booked, a refund a debit; repeats rewrite nothing.
func TestCamt054Preset(t *testing.T) {
	e := startSim(t, ifssim.Config{})
	if err := e.sim.PutInvoices(inv("10", 7, ifssim.StatePostedAuth, base)); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := e.client(t, map[string]any{"writeback": "camt054", "camt054_dir": dir, "camt054_account_iban": "DE89370400440532013000"}, ifscloud.Options{})
	w := ifscloud.NewWriter(c)
	ctx := context.Background()

	if p, err := w.PostPayment(ctx, failed("EV0", "PM1", ifscloud.PaymentFailed)); err != nil || !p.NothingToPost {
		t.Fatalf("failure before collection: %+v, %v", p, err)
	}
	p, err := w.PostPayment(ctx, paid("EV1", "PM1", "100.10"))
	if err != nil || p.AlreadyPosted || p.Reference != "mlc-10-PM1-CRDT.xml" {
		t.Fatalf("collection: %+v, %v", p, err)
	}
	if again, err := w.PostPayment(ctx, paid("EV2", "PM1", "100.10")); err != nil || !again.AlreadyPosted {
		t.Errorf("payout of the same payment: %+v, %v", again, err)
	}
	doc := readCamt(t, filepath.Join(dir, p.Reference))
	if !strings.Contains(doc, `<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.02">`) ||
		!strings.Contains(doc, `<MsgId>10-PM1-CRDT</MsgId>`) || !strings.Contains(doc, `<IBAN>DE89370400440532013000</IBAN>`) ||
		!strings.Contains(doc, `<Amt Ccy="EUR">100.10</Amt>`) || !strings.Contains(doc, `<CdtDbtInd>CRDT</CdtDbtInd>`) ||
		!strings.Contains(doc, `<Nb>CI-10-7</Nb>`) || !strings.Contains(doc, `<EndToEndId>PM1</EndToEndId>`) ||
		!strings.Contains(doc, `<SubFmlyCd>ESDD</SubFmlyCd>`) {
		t.Errorf("credit file:\n%s", doc)
	}

	back := failed("EV3", "PM1", ifscloud.PaymentChargedBack)
	r, err := w.PostPayment(ctx, back)
	if err != nil || r.Reference != "mlc-10-PM1-RVSL.xml" {
		t.Fatalf("charge-back: %+v, %v", r, err)
	}
	rev := readCamt(t, filepath.Join(dir, r.Reference))
	if !strings.Contains(rev, `<CdtDbtInd>DBIT</CdtDbtInd>`) || !strings.Contains(rev, `<RvslInd>true</RvslInd>`) ||
		!strings.Contains(rev, `<Amt Ccy="EUR">100.10</Amt>`) || !strings.Contains(rev, `<Cd>AM04</Cd>`) {
		t.Errorf("reversal file:\n%s", rev)
	}
	if again, err := w.PostPayment(ctx, back); err != nil || !again.AlreadyPosted {
		t.Errorf("repeat of the charge-back: %+v, %v", again, err)
	}

	rf, err := w.PostRefund(ctx, refund("EVR1", ifscloud.RefundPaid, ""))
	if err != nil || rf.Reference != "mlc-10-RF1-DBIT.xml" {
		t.Fatalf("refund: %+v, %v", rf, err)
	}
	if d := readCamt(t, filepath.Join(dir, rf.Reference)); !strings.Contains(d, `<CdtDbtInd>DBIT</CdtDbtInd>`) ||
		!strings.Contains(d, `<Cdtr><Id><OrgId><Othr><Id>C10</Id>`) {
		t.Errorf("refund file:\n%s", d)
	}
	files, _ := os.ReadDir(dir)
	var names []string
	for _, f := range files {
		if !f.IsDir() {
			names = append(names, f.Name())
		}
	}
	if len(names) != 3 {
		t.Errorf("files for IFS: %v, want 3", names)
	}
	if e.sim.Stats().Writes != 0 {
		t.Errorf("the camt054 preset wrote through the API")
	}
}

func readCamt(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for line := range strings.Lines(string(data)) {
		b.WriteString(strings.TrimSpace(line))
	}
	return b.String()
}
