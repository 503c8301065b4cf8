package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ml-connector/ml-connector/connectors/ifscloud/ifssim"
	"github.com/ml-connector/ml-connector/platform/bus"
	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/platform/database"
	"github.com/ml-connector/ml-connector/platform/secrets"
	"github.com/ml-connector/ml-connector/platform/testsupport"
)

// TestRun starts the service as its binary would, against a simulator,
// real JetStream and Postgres: it publishes the connection's invoices,
// reports the "ifs" readiness check, and stops cleanly.
func TestRun(t *testing.T) {
	sim := ifssim.New(ifssim.Config{})
	if err := sim.Seed(ifssim.Seed{Companies: []string{"10"}, Customers: 2, Invoices: 8}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	defer srv.Close()
	js := testsupport.StartJetStream(t)
	dbURL := testsupport.PostgresURL(t)
	key := []byte("0123456789abcdef0123456789abcdef")

	ctx := context.Background()
	pool, err := database.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := database.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	keys, err := secrets.NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := connections.NewStore(pool, keys).Add(ctx, connections.New{
		Name: "ifs-acme", Kind: connections.KindIFS, Actor: "test",
		Settings: map[string]any{"base_url": srv.URL, "client_id": "mlc", "company_codes": []any{"10"}},
		Secrets:  map[string]secrets.Value{"client_secret": secrets.NewValue("secret")},
	}); err != nil {
		t.Fatal(err)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	t.Setenv("NATS_URL", js.URL())
	t.Setenv("DATABASE_URL", dbURL)
	t.Setenv("MLC_MASTER_KEY", base64.StdEncoding.EncodeToString(key))
	t.Setenv("HTTP_ADDR", addr)
	t.Setenv("LOG_LEVEL", "error")
	t.Setenv("IFS_POLL_INTERVAL", "50ms")
	t.Setenv("IFS_POLL_JITTER", "0s")

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- run(runCtx, nil) }()

	nc := js.Connect()
	jsc, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	var ready map[string]any
	for {
		if time.Now().After(deadline) {
			t.Fatalf("service did not publish and become ready; last readiness %v", ready)
		}
		time.Sleep(50 * time.Millisecond)
		st, err := jsc.Stream(ctx, bus.StreamERP)
		if err != nil {
			continue
		}
		info, err := st.Info(ctx, jetstream.WithSubjectFilter("mlc.erp.ifs.>"))
		if err != nil || info.State.Subjects["mlc.erp.ifs.10.invoice"] != 6 || info.State.Subjects["mlc.erp.ifs.10.customer"] != 2 {
			continue
		}
		res, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			continue
		}
		ready = nil
		_ = json.NewDecoder(res.Body).Decode(&ready)
		res.Body.Close()
		if checks, _ := ready["checks"].(map[string]any); res.StatusCode == 200 && checks["ifs"] == "ok" {
			break
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("service did not stop")
	}
}

func TestRunRefusesBadSettings(t *testing.T) {
	t.Setenv("MLC_MASTER_KEY", base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")))
	t.Setenv("IFS_POLL_INTERVAL", "0s")
	t.Setenv("IFS_PUBLISH_BATCH", "0")
	err := run(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "IFS_POLL_INTERVAL: 0s is out of range") || !strings.Contains(err.Error(), "IFS_PUBLISH_BATCH") {
		t.Errorf("error %v", err)
	}
}
