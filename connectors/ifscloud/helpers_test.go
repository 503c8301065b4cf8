package ifscloud_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/connectors/ifscloud"
	"github.com/ml-connector/ml-connector/connectors/ifscloud/ifssim"
	"github.com/ml-connector/ml-connector/platform/retry"
	"github.com/ml-connector/ml-connector/platform/secrets"
	"github.com/ml-connector/ml-connector/platform/testsupport/fake"
)

// newClock is a clock at 2026-03-01 12:00 UTC.
func newClock() *fake.Clock { return fake.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)) }

// env is a simulator served over HTTP and a client of it.
type env struct {
	sim *ifssim.Sim
	srv *httptest.Server
}

// startSim serves a simulator, optionally behind middleware that alters
// what reaches it (a misbehaving server).
func startSim(t *testing.T, cfg ifssim.Config, middleware ...func(http.Handler) http.Handler) *env {
	t.Helper()
	sim := ifssim.New(cfg)
	var h http.Handler = sim
	for _, m := range middleware {
		h = m(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &env{sim: sim, srv: srv}
}

// fastRetries keeps retry waits short in tests; Retry-After still rules.
var fastRetries = retry.Backoff{Base: time.Millisecond, Max: 5 * time.Millisecond, Attempts: 4}

func settings(t *testing.T, baseURL string, extra map[string]any) ifscloud.Settings {
	t.Helper()
	raw := map[string]any{
		"base_url":            baseURL,
		"client_id":           "mlc",
		"company_codes":       []any{"10"},
		"requests_per_minute": float64(600000),
	}
	for k, v := range extra {
		raw[k] = v
	}
	s, err := ifscloud.ParseSettings(raw)
	if err != nil {
		t.Fatalf("settings: %v", err)
	}
	return s
}

func (e *env) client(t *testing.T, extra map[string]any, opts ifscloud.Options) *ifscloud.Client {
	t.Helper()
	return e.clientWithSecret(t, "secret", extra, opts)
}

func (e *env) clientWithSecret(t *testing.T, secret string, extra map[string]any, opts ifscloud.Options) *ifscloud.Client {
	t.Helper()
	if opts.Backoff.Attempts == 0 {
		opts.Backoff = fastRetries
	}
	c, err := ifscloud.New(t.Name(), settings(t, e.srv.URL, extra), secrets.NewValue(secret), opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func inv(company string, id int64, state string, modified time.Time) ifssim.Invoice {
	return ifssim.Invoice{
		Company: company, InvoiceID: id, InvoiceNo: fmt.Sprintf("CI-%s-%d", company, id),
		CustomerID: "C" + company, Currency: "EUR", State: state, GrossAmount: "100.10", OpenAmount: "100.10",
		InvoiceDate: "2026-03-01", DueDate: "2026-04-01", PayTermID: "30", Modified: modified,
	}
}
