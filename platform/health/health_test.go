package health_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/platform/health"
)

func TestReadyz(t *testing.T) {
	ok := func(context.Context) error { return nil }
	down := func(context.Context) error { return errors.New("connection refused") }
	slow := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	tests := []struct {
		name       string
		checks     map[string]health.Check
		drain      bool
		wantCode   int
		wantStatus string
		wantChecks map[string]string
	}{
		{"all pass", map[string]health.Check{"nats": ok, "postgres": ok}, false, 200, "ready", map[string]string{"nats": "ok", "postgres": "ok"}},
		{"one fails", map[string]health.Check{"nats": ok, "postgres": down}, false, 503, "not_ready", map[string]string{"nats": "ok", "postgres": "connection refused"}},
		{"slow check times out", map[string]health.Check{"ifs": slow}, false, 503, "not_ready", map[string]string{"ifs": context.DeadlineExceeded.Error()}},
		{"draining", map[string]health.Check{"nats": ok}, true, 503, "draining", map[string]string{"nats": "ok"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := health.New(50 * time.Millisecond)
			for name, check := range tc.checks {
				c.Add(name, check)
			}
			if tc.drain {
				c.Drain()
			}
			rec := httptest.NewRecorder()
			c.Handler(nil).ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
			if rec.Code != tc.wantCode {
				t.Errorf("code %d, want %d", rec.Code, tc.wantCode)
			}
			var got health.Report
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if got.Status != tc.wantStatus || len(got.Checks) != len(tc.wantChecks) {
				t.Errorf("report %+v, want status %s checks %v", got, tc.wantStatus, tc.wantChecks)
			}
			for k, v := range tc.wantChecks {
				if got.Checks[k] != v {
					t.Errorf("check %s = %q, want %q", k, got.Checks[k], v)
				}
			}
		})
	}
}

func TestHealthzAndMetrics(t *testing.T) {
	c := health.New(time.Second)
	c.Add("broken", func(context.Context) error { return errors.New("down") })
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("mlc_up 1\n")) })
	h := c.Handler(metrics)
	for path, want := range map[string]string{"/healthz": "ok\n", "/metrics": "mlc_up 1\n"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != 200 || rec.Body.String() != want {
			t.Errorf("%s: %d %q, want 200 %q (liveness must not depend on dependencies)", path, rec.Code, rec.Body.String(), want)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/healthz", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz: %d", rec.Code)
	}
}

func TestHealthzFailsOnLivenessCheck(t *testing.T) {
	c := health.New(time.Second)
	var dead error
	c.AddLiveness("nats", func(context.Context) error { return dead })
	c.Add("postgres", func(context.Context) error { return errors.New("down") }) // readiness only
	get := func() (int, string) {
		rec := httptest.NewRecorder()
		c.Handler(nil).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := get(); code != 200 || body != "ok\n" {
		t.Errorf("healthz with a readiness failure only: %d %q, want 200", code, body)
	}
	dead = errors.New("nats connection closed")
	if code, body := get(); code != 503 || body != "nats: nats connection closed\n" {
		t.Errorf("healthz with a failed liveness check: %d %q, want 503 naming it", code, body)
	}
}
