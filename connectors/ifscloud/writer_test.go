package ifscloud_test

import (
	"context"
	"errors"
	"strings"
	"sync"
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

func TestPostPayment(t *testing.T) {
	e, w := writerEnv(t)
	ctx := context.Background()
	before, _ := e.sim.Invoice("10", 7)

	p, err := w.PostPayment(ctx, paid("EV1", "PM1", "40.05"))
	if err != nil {
		t.Fatal(err)
	}
	after, _ := e.sim.Invoice("10", 7)
	if p.Reference != "1" || p.AlreadyPosted || p.PostedAt.IsZero() {
		t.Errorf("posting %+v", p)
	}
	if after.OpenAmount != "60.05" || after.State != ifssim.StatePartlyPaidPosted || after.ETag == before.ETag {
		t.Errorf("invoice after partial payment: %+v", after)
	}

	again, err := w.PostPayment(ctx, paid("EV1", "PM1", "40.05"))
	if err != nil || !again.AlreadyPosted || again.Reference != p.Reference || !again.PostedAt.Equal(p.PostedAt) {
		t.Errorf("re-post: %+v, %v", again, err)
	}
	// The same GoCardless payment reported again (confirmed, then paid
	// out) under another outcome id books nothing more.
	paidOut, err := w.PostPayment(ctx, paid("EV2", "PM1", "40.05"))
	if err != nil || !paidOut.AlreadyPosted || paidOut.Reference != p.Reference {
		t.Errorf("paid out after confirmed: %+v, %v", paidOut, err)
	}
	if n := len(e.sim.Postings()); n != 1 {
		t.Fatalf("%d postings, want 1", n)
	}
	if now, _ := e.sim.Invoice("10", 7); now.ETag != after.ETag || now.OpenAmount != "60.05" {
		t.Errorf("re-posts changed the invoice: %+v", now)
	}

	rest, err := w.PostPayment(ctx, paid("EV3", "PM2", "60.05"))
	if err != nil || rest.AlreadyPosted {
		t.Fatalf("second payment: %+v, %v", rest, err)
	}
	if closed, _ := e.sim.Invoice("10", 7); closed.OpenAmount != "0.00" || closed.State != ifssim.StatePaidPosted {
		t.Errorf("invoice not closed: %+v", closed)
	}
}

func TestPostFailure(t *testing.T) {
	e, w := writerEnv(t)
	ctx := context.Background()
	if _, err := w.PostPayment(ctx, paid("EV1", "PM1", "100.10")); err != nil {
		t.Fatal(err)
	}
	failed := ifscloud.PaymentOutcome{OutcomeID: "EV2", Company: "10", InvoiceID: "7", Status: ifscloud.PaymentFailed,
		PaymentID: "PM1", Cause: "insufficient_funds", ReasonCode: "AM04", Description: "The payer had insufficient funds", Date: "2026-03-08"}
	p, err := w.PostPayment(ctx, failed)
	if err != nil || p.AlreadyPosted {
		t.Fatalf("failure: %+v, %v", p, err)
	}
	reopened, _ := e.sim.Invoice("10", 7)
	if reopened.OpenAmount != "100.10" || reopened.State != ifssim.StatePostedAuth ||
		reopened.DirectDebitStatus != "Failed" || reopened.DirectDebitReason != "AM04" {
		t.Errorf("invoice after late failure: %+v", reopened)
	}
	postings := e.sim.Postings()
	if len(postings) != 2 || !postings[0].Reversed || postings[1].PostingType != "Failed" || postings[1].Cause != "insufficient_funds" {
		t.Errorf("postings %+v", postings)
	}
	if again, err := w.PostPayment(ctx, failed); err != nil || !again.AlreadyPosted {
		t.Errorf("re-post of the failure: %+v, %v", again, err)
	}
	// A new payment for the invoice can be booked after the reversal.
	if p, err := w.PostPayment(ctx, paid("EV3", "PM3", "100.10")); err != nil || p.AlreadyPosted {
		t.Errorf("retry payment: %+v, %v", p, err)
	}
	if n := len(e.sim.Postings()); n != 3 {
		t.Errorf("%d postings, want 3", n)
	}
}

// TestETagRace: the invoice changes between the writer's read and its
// write; it re-reads and re-applies, and the payment is booked once.
func TestETagRace(t *testing.T) {
	e, w := writerEnv(t)
	e.sim.RaceNextWrites(2)
	p, err := w.PostPayment(context.Background(), paid("EV1", "PM1", "100.10"))
	if err != nil || p.AlreadyPosted {
		t.Fatalf("post: %+v, %v", p, err)
	}
	if n, st := len(e.sim.Postings()), e.sim.Stats(); n != 1 || st.PreconditionFailed != 2 || st.Writes != 1 {
		t.Errorf("%d postings, stats %+v", n, st)
	}
	if got, _ := e.sim.Invoice("10", 7); got.OpenAmount != "0.00" {
		t.Errorf("open amount %s", got.OpenAmount)
	}

	e.sim.RaceNextWrites(100)
	_, err = w.PostPayment(context.Background(), paid("EV2", "PM2", "1"))
	if !errors.Is(err, ifscloud.ErrConflict) {
		t.Fatalf("error %v, want ErrConflict after the attempts", err)
	}
	if n, st := len(e.sim.Postings()), e.sim.Stats(); n != 1 || st.PreconditionFailed != 2+5 {
		t.Errorf("%d postings, %d 412s; want 1 posting and 5 more 412s", n, st.PreconditionFailed)
	}
}

// TestConcurrentWriters post the same outcome from many goroutines (as
// redelivered messages on several erp-poster replicas would): one posting.
func TestConcurrentWriters(t *testing.T) {
	e, w := writerEnv(t)
	var wg sync.WaitGroup
	results := make([]ifscloud.Posting, 8)
	errs := make([]error, 8)
	for i := range results {
		wg.Go(func() { results[i], errs[i] = w.PostPayment(context.Background(), paid("EV1", "PM1", "50")) })
	}
	wg.Wait()
	fresh := 0
	for i := range results {
		if errs[i] != nil && !errors.Is(errs[i], ifscloud.ErrConflict) {
			t.Fatalf("writer %d: %v", i, errs[i])
		}
		if errs[i] == nil && !results[i].AlreadyPosted {
			fresh++
		}
	}
	if n := len(e.sim.Postings()); n != 1 || fresh != 1 {
		t.Errorf("%d postings, %d writers posted; want 1 and 1", n, fresh)
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
		{"more than open", paid("E8", "P", "100.11"), nil, ifscloud.ErrInvalid, "EXCEEDS_OPEN", true},
		{"other currency", func() ifscloud.PaymentOutcome { o := paid("E9", "P", "1"); o.Currency = "GBP"; return o }(),
			nil, ifscloud.ErrInvalid, "CURRENCY", true},
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
	if n := len(e.sim.Postings()); n != 0 {
		t.Errorf("%d postings after errors only", n)
	}
}

func TestPostMandateStatus(t *testing.T) {
	e, w := writerEnv(t)
	ctx := context.Background()
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	mandate := func(outcome string, status ifscloud.MandateStatus, occurred time.Time) ifscloud.MandateOutcome {
		return ifscloud.MandateOutcome{OutcomeID: outcome, Company: "10", CustomerID: "C10", MandateID: "MD1",
			Status: status, Scheme: "sepa_core", OccurredAt: occurred}
	}
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
