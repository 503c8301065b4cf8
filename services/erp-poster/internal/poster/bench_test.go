package poster_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/ml-connector/ml-connector/connectors/ifscloud/ifssim"
	"github.com/ml-connector/ml-connector/connectors/jde/jdesim"
	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
)

// BenchmarkPostIFS measures confirmed-payment postings over gRPC into the
// IFS simulator, one invoice each, from 8 concurrent callers: the
// erp_postings row, the audit entry, and the IFS Mixed Payment (invoice
// read, look-ups, three creates, the If-Match approval).
func BenchmarkPostIFS(b *testing.B) {
	e := start(b)
	for i := range b.N {
		if err := e.ifs.PutInvoices(ifssim.Invoice{Company: "10", InvoiceID: int64(1000 + i), InvoiceNo: fmt.Sprint("CI-", i),
			CustomerID: "C10", Currency: "EUR", State: ifssim.StatePostedAuth, GrossAmount: "100.10", OpenAmount: "100.10"}); err != nil {
			b.Fatal(err)
		}
	}
	post(b, func(i int) error {
		req := ifsPayment(fmt.Sprint("EV-B-", i), mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_CONFIRMED)
		req.Outcome.Invoice.InvoiceId = fmt.Sprint(1000 + i)
		req.Outcome.PaymentId = fmt.Sprint("PM-", i)
		_, err := e.client.PostPaymentOutcome(context.Background(), req)
		return err
	})
	if n := len(e.ifs.MixedPayments()); n != b.N {
		b.Fatalf("%d mixed payments for %d outcomes", n, b.N)
	}
}

// BenchmarkPostJDE measures cash receipts over gRPC into the JDE
// simulator, one invoice each, from 8 concurrent callers.
func BenchmarkPostJDE(b *testing.B) {
	e := start(b)
	for i := range b.N {
		e.jde.AddInvoices(jdesim.Invoice{DOC: int64(20000 + i), DCT: "RI", KCO: "00001", SFX: "001", AN8: 4242, CO: "00001",
			AG: 12550, AAP: 12550, CRCD: "USD", MCU: "M30", PST: "A"})
	}
	post(b, func(i int) error {
		_, err := e.client.PostPaymentOutcome(context.Background(),
			jdePayment(fmt.Sprint("EV-B-", i), fmt.Sprint(20000+i), mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_CONFIRMED))
		return err
	})
	if n := len(e.jde.Receipts()); n != b.N {
		b.Fatalf("%d receipts for %d outcomes", n, b.N)
	}
}

// post runs fn for 0..b.N-1 from 8 goroutines and reports postings/s.
func post(b *testing.B, fn func(i int) error) {
	b.ResetTimer()
	next := make(chan int)
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			for i := range next {
				if err := fn(i); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for i := range b.N {
		next <- i
	}
	close(next)
	for range 8 {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "postings/s")
}
