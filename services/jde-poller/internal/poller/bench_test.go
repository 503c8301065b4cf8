package poller_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/connectors/jde/jdesim"
	"github.com/ml-connector/ml-connector/services/jde-poller/internal/poller"
)

// BenchmarkPoll100kInvoices measures one poll cycle in which 100,000 open
// invoices (of 100 customers) changed: the simulated AIS over HTTP on
// loopback, real embedded JetStream (file storage), real Postgres for the
// watermarks. Each iteration touches every invoice first, so every cycle
// reads and publishes all of them under new versions.
//
//	go test -run '^$' -bench Poll100k -benchtime 3x ./internal/poller/
func BenchmarkPoll100kInvoices(b *testing.B) {
	for _, pageSize := range []int{500, 2000} {
		b.Run(fmt.Sprintf("page=%d", pageSize), func(b *testing.B) {
			const n = 100_000
			h := newHarness(b, jdesim.Options{}, map[string]any{"page_size": pageSize})
			for an8 := int64(1); an8 <= 100; an8++ {
				customer(h.sim, 4000+an8, fmt.Sprintf("C%d", an8), "GBP", "00001")
			}
			invs := invoices("00001", 4001, 1, n)
			for i := range invs {
				invs[i].AN8 = 4001 + int64(i%100)
			}
			h.sim.AddInvoices(invs...)
			p := h.poller(func(c *poller.Config) { c.BatchSize = 1000 })
			h.cycle(p) // initial load, outside the measurement
			requests := 0
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				h.clock.Advance(time.Second)
				h.sim.UpdateInvoices(func(*jdesim.Invoice) bool { return true })
				h.sim.ResetStats()
				b.StartTimer()
				res := h.cycle(p)
				b.StopTimer()
				if res.Invoices != n {
					b.Fatalf("published %d invoices, want %d", res.Invoices, n)
				}
				requests += h.sim.Stats().Requests
				b.StartTimer()
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "invoices/s")
			b.ReportMetric(float64(requests)/float64(b.N), "requests/cycle")
		})
	}
}
