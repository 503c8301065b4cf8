package gcsim_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/connectors/gocardless/gcsim"
)

func benchSim(b *testing.B) (*gcsim.Server, *api, fixture) {
	srv := start(b, func(o *gcsim.Options) { o.RateLimit = 1 << 30 })
	a := newAPI(b, srv)
	return srv, a, activeGB(b, srv, a, "bench@example.com", "Bench")
}

// BenchmarkCreatePayment is one POST /payments over loopback HTTP, with an
// idempotency key, as a client makes it.
func BenchmarkCreatePayment(b *testing.B) {
	_, a, f := benchSim(b)
	body := fmt.Sprintf(`{"payments": {"amount": 1000, "currency": "GBP", "links": {"mandate": %q}}}`, f.mandate)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if r := a.do("POST", "/payments", body, idem(fmt.Sprint("k", i))); r.status != 201 {
			b.Fatal(r.status)
		}
	}
}

// BenchmarkCreatePaymentHandler is the same request served in-process,
// without the network: the simulator's own cost.
func BenchmarkCreatePaymentHandler(b *testing.B) {
	srv, _, f := benchSim(b)
	body := fmt.Sprintf(`{"payments": {"amount": 1000, "currency": "GBP", "links": {"mandate": %q}}}`, f.mandate)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		req := httptest.NewRequest("POST", "/payments", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("GoCardless-Version", "2015-07-06")
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", fmt.Sprint("k", i))
		w := httptest.NewRecorder()
		srv.Sim.ServeHTTP(w, req)
		if w.Code != http.StatusCreated {
			b.Fatal(w.Code, w.Body.String())
		}
	}
}

// BenchmarkGetPayment is one GET /payments/{id} over loopback HTTP.
func BenchmarkGetPayment(b *testing.B) {
	_, a, f := benchSim(b)
	id := str(a.do("POST", "/payments", payment(1000, f.mandate, nil)).must(b, 201, "payments"), "id")
	b.ResetTimer()
	for b.Loop() {
		if r := a.do("GET", "/payments/"+id, nil); r.status != 200 {
			b.Fatal(r.status)
		}
	}
}

// BenchmarkListEvents500 is one page of 500 events out of about 10,000.
func BenchmarkListEvents500(b *testing.B) {
	srv, a, f := benchSim(b)
	for range 2000 {
		a.do("POST", "/payments", payment(1000, f.mandate, nil))
	}
	srv.Advance(10 * 24 * time.Hour)
	b.ResetTimer()
	for b.Loop() {
		if r := a.do("GET", "/events?limit=500", nil); r.status != 200 {
			b.Fatal(r.status)
		}
	}
}

// BenchmarkLifecycleDay advances the clock through the full lifecycle of
// 1,000 payments (submission to payout): the cost per payment.
func BenchmarkLifecycleDay(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		srv, a, f := benchSim(b)
		for range 1000 {
			a.do("POST", "/payments", payment(1000, f.mandate, nil))
		}
		b.StartTimer()
		srv.Advance(10 * 24 * time.Hour)
		b.StopTimer()
		srv.Close()
		b.StartTimer()
	}
}
