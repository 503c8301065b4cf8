package poll_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/connectors/ifscloud"
	"github.com/ml-connector/ml-connector/connectors/ifscloud/ifssim"
)

// BenchmarkPoll100k polls 100,000 changed invoices of one company from the
// in-process simulator (server pages of 5000, $top 5000) into embedded
// JetStream, with watermarks in Postgres. Before each cycle every invoice
// is changed (new ETag and modified time), outside the timer. It reports
// invoices published per second, the process CPU time per 1000 invoices
// (poller, simulator and embedded NATS together: steadier than the rate on
// a busy machine), and the HTTP requests of a cycle (IFS pages, the
// customer page and token calls).
//
//	go test -run '^$' -bench Poll100k -benchtime 3x ./internal/poll/
func BenchmarkPoll100k(b *testing.B) {
	const n = 100000
	f := setup(b, ifssim.Config{PageSize: 5000, Budget: -1}, nil, ifscloud.Options{})
	invs := make([]ifssim.Invoice, n)
	for i := range invs {
		invs[i] = invoice("10", int64(i+1), ifssim.StatePostedAuth, base)
	}
	if err := f.sim.PutInvoices(invs...); err != nil {
		b.Fatal(err)
	}
	p := f.poller(nil)
	ctx := context.Background()
	var published, requests, tokens, pages int
	var cpu time.Duration
	cycles := 0
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		cycles++
		changed := base.Add(time.Duration(cycles) * time.Hour)
		for i := range n {
			if err := f.sim.UpdateInvoice("10", int64(i+1), func(inv *ifssim.Invoice) { inv.Modified = changed }); err != nil {
				b.Fatal(err)
			}
		}
		f.sim.ResetStats()
		cpuBefore := cpuTime(b)
		b.StartTimer()

		st, err := p.Cycle(ctx)

		b.StopTimer()
		cpu += cpuTime(b) - cpuBefore
		if err != nil {
			b.Fatal(err)
		}
		if st.Published != n {
			b.Fatalf("published %d, want %d", st.Published, n)
		}
		sim := f.sim.Stats()
		published += st.Published
		requests += sim.APIRequests + sim.TokensIssued + sim.TokensRefused
		tokens += sim.TokensIssued
		pages += st.Pages
		b.StartTimer()
	}
	b.ReportMetric(float64(published)/b.Elapsed().Seconds(), "invoices/s")
	b.ReportMetric(cpu.Seconds()*1000/float64(published)*1000, "cpu-ms/1k-invoices")
	b.ReportMetric(float64(requests)/float64(cycles), "requests/cycle")
	b.ReportMetric(float64(tokens)/float64(cycles), "tokens/cycle")
	b.ReportMetric(float64(pages)/float64(cycles), "pages/cycle")
}

// cpuTime is the user and system CPU time the process used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
