package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/platform/config"
	"github.com/ml-connector/ml-connector/platform/health"
	"github.com/ml-connector/ml-connector/platform/service"
	"github.com/ml-connector/ml-connector/platform/testsupport"
)

func testConfig(t *testing.T, natsURL, dbURL string, extra ...string) service.Config {
	t.Helper()
	vars := map[string]string{
		"NATS_URL":       natsURL,
		"DATABASE_URL":   dbURL,
		"HTTP_ADDR":      "127.0.0.1:0",
		"MLC_MASTER_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
		"LOG_LEVEL":      "warn",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		vars[extra[i]] = extra[i+1]
	}
	env := config.FromMap(vars)
	cfg := service.LoadConfig(env, "test-service")
	if err := env.Err(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func readyz(t *testing.T, addr string) (int, health.Report) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r health.Report
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, r
}

func TestStartServeAndDrain(t *testing.T) {
	js := testsupport.StartJetStream(t)
	cfg := testConfig(t, js.URL(), testsupport.PostgresURL(t))
	ctx, cancel := context.WithCancel(t.Context())
	svc, err := service.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var version int64
	if err := svc.DB.QueryRow(ctx, `SELECT max(version_id) FROM goose_db_version`).Scan(&version); err != nil || version < 1 {
		t.Errorf("migrations not applied: version %d, %v", version, err)
	}

	started := make(chan struct{})
	finished := make(chan struct{})
	worker := service.Worker{Name: "slow", Run: func(wctx context.Context) error {
		close(started)
		<-wctx.Done()
		time.Sleep(200 * time.Millisecond) // the item in hand
		close(finished)
		return nil
	}}
	result := make(chan error, 1)
	go func() { result <- svc.Run(ctx, worker) }()
	<-started

	code, report := readyz(t, svc.HTTPAddr())
	if code != 200 || report.Checks["nats"] != "ok" || report.Checks["postgres"] != "ok" {
		t.Errorf("readyz %d %+v, want 200 with nats and postgres ok", code, report)
	}
	resp, err := http.Get("http://" + svc.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "go_goroutines") {
		t.Errorf("/metrics lacks runtime metrics")
	}

	js.Shutdown()
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, report = readyz(t, svc.HTTPAddr())
		if code == http.StatusServiceUnavailable && report.Checks["nats"] != "ok" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz still %d %+v with NATS down", code, report)
		}
		time.Sleep(50 * time.Millisecond)
	}

	cancel() // SIGTERM
	select {
	case err := <-result:
		if err != nil {
			t.Errorf("run after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	select {
	case <-finished:
	default:
		t.Error("run returned before the worker finished its item")
	}
}

func TestWorkerFailureStopsService(t *testing.T) {
	js := testsupport.StartJetStream(t)
	svc, err := service.Start(t.Context(), testConfig(t, js.URL(), testsupport.PostgresURL(t)))
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("poll loop broke")
	err = svc.Run(t.Context(), service.Worker{Name: "poller", Run: func(context.Context) error { return boom }})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "worker poller") {
		t.Errorf("run: %v, want the worker's error named", err)
	}
}

func TestStartFailsCleanly(t *testing.T) {
	tests := []struct {
		name    string
		nats    string
		db      string
		wantErr string
	}{
		{"postgres unreachable", "", "postgres://mlc:s3cret-pw@127.0.0.1:1/mlc?sslmode=disable&connect_timeout=2", "127.0.0.1"},
		{"nats unreachable", "nats://127.0.0.1:1", "", "connect nats"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.db == "" {
				// Migrated beforehand: the start-up timeout must be spent
				// waiting for NATS, not applying migrations on a busy
				// machine (CI at load 30 ran out of it in the migrations).
				tc.db = testsupport.Pool(t).Config().ConnString()
			}
			if tc.nats == "" {
				tc.nats = testsupport.StartJetStream(t).URL()
			}
			_, err := service.Start(t.Context(), testConfig(t, tc.nats, tc.db, "STARTUP_TIMEOUT", "2s"))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("start: %v, want an error mentioning %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "s3cret-pw") {
				t.Errorf("error leaks the database password: %v", err)
			}
		})
	}
}
