package collect_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/connectors/gocardless/gcsim"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/collect"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/rig"
)

// benchInvoices publishes n invoices for 50 aligned customers and reports
// how fast they were collected and how many GoCardless calls it took.
func benchInvoices(b *testing.B, r *rig.Rig, n int) (elapsed time.Duration) {
	customers := make([]string, 50)
	for i := range customers {
		customers[i] = fmt.Sprintf("C%02d", i)
		r.Publish(rig.Customer(customers[i]))
	}
	r.Eventually(60*time.Second, "customers aligned", func() bool {
		return r.Count(`SELECT count(*) FROM customer_links WHERE gc_mandate_id IS NOT NULL`) == len(customers)
	})
	r.GCRequests.Reset()
	b.ResetTimer()
	start := time.Now()
	for i := range n {
		r.Publish(rig.Invoice(fmt.Sprintf("B%06d", i), customers[i%len(customers)], fmt.Sprintf("%d.%02d", 10+i%900, i%100)))
	}
	// Polled every 100 ms, not the rig's 20 ms: counting thousands of rows
	// fifty times a second would take from Postgres the CPU being measured.
	for r.Count(`SELECT count(*) FROM collections WHERE gc_payment_id IS NOT NULL`) != n {
		if time.Since(start) > 10*time.Minute {
			b.Fatal("invoices not collected in 10 minutes")
		}
		time.Sleep(100 * time.Millisecond)
	}
	elapsed = time.Since(start)
	b.StopTimer()
	if x := r.Count(`SELECT count(*) FROM exceptions`); x != 0 {
		b.Fatalf("%d exceptions", x)
	}
	if len(r.Sim.Payments()) != n {
		b.Fatalf("%d payments for %d invoices", len(r.Sim.Payments()), n)
	}
	b.ReportMetric(float64(n)/elapsed.Seconds(), "invoices/s")
	b.ReportMetric(float64(r.GCRequests.Total())/float64(n), "gc-calls/invoice")
	return elapsed
}

// BenchmarkCollect: invoices for customers with active mandates, from
// JetStream to a recorded GoCardless payment, against the unthrottled
// simulator, with the service's default number of workers; b.N is the
// number of invoices (run with -benchtime=5000x).
func BenchmarkCollect(b *testing.B) {
	r := rig.New(b, rig.Options{GC: rig.Direct, Sim: gcsim.Options{RateLimit: 1 << 30}})
	r.Consumers("a", collect.DefaultWorkers)
	benchInvoices(b, r, b.N)
}

// BenchmarkCollectSharedBudget is BenchmarkCollect with the GoCardless
// client pacing by the shared budget in JetStream, as the service does:
// what the budget costs when the limit is far away.
func BenchmarkCollectSharedBudget(b *testing.B) {
	r := rig.New(b, rig.Options{GC: rig.Direct, Sim: gcsim.Options{RateLimit: 1 << 30}, SharedRateBudget: true})
	r.Consumers("a", collect.DefaultWorkers)
	benchInvoices(b, r, b.N)
}

// BenchmarkCollectAtRateLimit: the same against GoCardless's rate limit,
// scaled down to 600 requests per 20 s (RateLimit-Reset is an HTTP date, so
// whole seconds: a shorter window would measure the rounding), so that the client's pacing is what
// bounds the rate; reports the request rate as a share of the limit and the
// 429s met. Run a whole number of windows' budgets (-benchtime=1800x): a run
// that ends inside a window would count the unused rest of it, or not at all.
func BenchmarkCollectAtRateLimit(b *testing.B) {
	const limit, window = 600, 20 * time.Second
	r := rig.New(b, rig.Options{GC: rig.Direct, Sim: gcsim.Options{RateLimit: limit, RateWindow: window}})
	r.Consumers("a", 32)
	elapsed := benchInvoices(b, r, b.N)
	rate := float64(r.GCRequests.Total()) / elapsed.Seconds()
	b.ReportMetric(100*rate/(limit/window.Seconds()), "%-of-limit")
	b.ReportMetric(float64(r.GCRequests.Status(429)), "429s")
}

// BenchmarkCollectThreeReplicasAtRateLimit: three orchestrator replicas,
// each with its own GoCardless client, share one token and its rate limit
// (scaled down as in BenchmarkCollectAtRateLimit) through the shared
// budget in JetStream, as the service runs; reports the request rate as a
// share of the limit, the 429s met, and GoCardless calls per invoice. Run
// whole windows' budgets (-benchtime=1800x).
func BenchmarkCollectThreeReplicasAtRateLimit(b *testing.B) {
	const limit, window = 600, 20 * time.Second
	r := rig.New(b, rig.Options{GC: rig.Direct, Sim: gcsim.Options{RateLimit: limit, RateWindow: window}, SharedRateBudget: true})
	r.Consumers("a", 32)
	r.SeparateReplica("b", 32)
	r.SeparateReplica("c", 32)
	elapsed := benchInvoices(b, r, b.N)
	rate := float64(r.GCRequests.Total()) / elapsed.Seconds()
	b.ReportMetric(100*rate/(limit/window.Seconds()), "%-of-limit")
	b.ReportMetric(float64(r.GCRequests.Status(429)), "429s")
}
