package gocardless_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/connectors/gocardless/gcsim"
	"github.com/ml-connector/ml-connector/platform/secrets"
)

// inMemory hands requests straight to a handler, so a benchmark measures
// the client (and the simulator's handler) without the loopback network.
type inMemory struct{ h http.Handler }

func (m inMemory) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	m.h.ServeHTTP(rec, r)
	resp := rec.Result()
	resp.Request = r
	return resp, nil
}

// BenchmarkCreatePayment measures one CreatePayment call (a fresh
// idempotency key each time) against the in-process simulator: through
// the loopback network, and handed straight to the simulator's handler.
// The second is the client's own overhead plus the simulator's handling.
func BenchmarkCreatePayment(b *testing.B) {
	b.Run("loopback", func(b *testing.B) {
		e := setup(b, gcsim.Options{RateLimit: 1 << 30})
		benchCreate(b, e)
	})
	b.Run("in-memory", func(b *testing.B) {
		sim := gcsim.New(gcsim.Options{Tokens: []string{token}, Seed: 7, RateLimit: 1 << 30,
			Creditors: []gcsim.Creditor{gcsim.ApprovedCreditor()}})
		b.Cleanup(sim.Close)
		gc, err := gocardless.New("http://gcsim.invalid", secrets.NewValue(token), gocardless.WithTransport(inMemory{sim}))
		if err != nil {
			b.Fatal(err)
		}
		benchCreate(b, &env{gc: gc})
	})
}

func benchCreate(b *testing.B, e *env) {
	ctx := context.Background()
	_, _, md := e.customer(b, 1)
	p := paymentParams(md, 1_000)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if _, _, err := e.gc.CreatePayment(ctx, fmt.Sprint("bench-", i), p); err != nil {
			b.Fatal(err)
		}
	}
}
