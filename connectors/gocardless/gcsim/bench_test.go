package gcsim_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/connectors/gocardless/gcsim"
)

// The benchmarks measure the simulator, not a client: responses are read
// but not decoded.

func benchSim(b *testing.B) (*gcsim.Server, fixture) {
	srv := start(b, func(o *gcsim.Options) { o.RateLimit = 1 << 30 })
	return srv, activeGB(b, srv, newAPI(b, srv), "bench@example.com", "Bench")
}

func newRequest(method, target, body, key string) *http.Request {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	req.RequestURI = ""
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("GoCardless-Version", "2015-07-06")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	return req
}

// over sends req over loopback HTTP and checks the status.
func over(b *testing.B, req *http.Request, want int) {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != want {
		b.Fatal(resp.StatusCode)
	}
}

// in serves req in-process and checks the status.
func in(b *testing.B, srv *gcsim.Server, req *http.Request, want int) {
	w := httptest.NewRecorder()
	srv.Sim.ServeHTTP(w, req)
	if w.Code != want {
		b.Fatal(w.Code, w.Body.String())
	}
}

func paymentBody(mandate string) string {
	return fmt.Sprintf(`{"payments": {"amount": 1000, "currency": "GBP", "links": {"mandate": %q}}}`, mandate)
}

// BenchmarkCreatePayment: POST /payments with an idempotency key over
// loopback HTTP.
func BenchmarkCreatePayment(b *testing.B) {
	srv, f := benchSim(b)
	body := paymentBody(f.mandate)
	for i := 0; b.Loop(); i++ {
		over(b, newRequest("POST", srv.URL+"/payments", body, fmt.Sprint("k", i)), 201)
	}
}

// BenchmarkCreatePaymentInProcess: the same request without the network.
func BenchmarkCreatePaymentInProcess(b *testing.B) {
	srv, f := benchSim(b)
	body := paymentBody(f.mandate)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		in(b, srv, newRequest("POST", "/payments", body, fmt.Sprint("k", i)), 201)
	}
}

// BenchmarkGetPayment: GET /payments/{id} over loopback HTTP.
func BenchmarkGetPayment(b *testing.B) {
	srv, f := benchSim(b)
	in(b, srv, newRequest("POST", "/payments", paymentBody(f.mandate), ""), 201)
	p := srv.Payments()
	for b.Loop() {
		over(b, newRequest("GET", srv.URL+"/payments/"+p[0].ID, "", ""), 200)
	}
}

// BenchmarkListEvents500InProcess: one page of 500 of about 10,000 events.
func BenchmarkListEvents500InProcess(b *testing.B) {
	srv, f := benchSim(b)
	for range 2000 {
		in(b, srv, newRequest("POST", "/payments", paymentBody(f.mandate), ""), 201)
	}
	srv.Advance(10 * 24 * time.Hour)
	b.ReportAllocs()
	for b.Loop() {
		in(b, srv, newRequest("GET", "/events?limit=500&resource_type=payments", "", ""), 200)
	}
}

// BenchmarkLifecycle1000Payments: advancing the clock through the whole
// lifecycle (submission to payout, about 5,000 events) of 1,000 payments.
func BenchmarkLifecycle1000Payments(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		srv, f := benchSim(b)
		for range 1000 {
			in(b, srv, newRequest("POST", "/payments", paymentBody(f.mandate), ""), 201)
		}
		b.StartTimer()
		srv.Advance(10 * 24 * time.Hour)
		b.StopTimer()
		srv.Close()
		b.StartTimer()
	}
}
