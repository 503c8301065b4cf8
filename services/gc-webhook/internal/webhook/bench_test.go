package webhook_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/services/gc-webhook/internal/webhook"
)

// BenchmarkHandler250 measures one signed 250-event webhook through the
// handler (verify, parse, publish to an embedded file-storage JetStream,
// await every ack), without the network in between.
func BenchmarkHandler250(b *testing.B) {
	s := newStack(b, webhook.Config{})
	h := s.srv.Config.Handler
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		events := make([]string, 250)
		for i := range events {
			n++
			events[i] = event(fmt.Sprintf("EV%012d", n), "payments", "paid_out")
		}
		body := body(events...)
		req := httptest.NewRequest(http.MethodPost, "/webhooks/gocardless", strings.NewReader(string(body)))
		req.Header.Set(gocardless.SignatureHeader, gocardless.Sign(secret, body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusNoContent {
			b.Fatalf("status %d", rec.Code)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}
