package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/platform/bus"
	"github.com/ml-connector/ml-connector/platform/testsupport"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Issue #17, end to end through the binary's run: a signed event whose
// resource_type is 4,100 characters used to close gc-webhook's NATS
// connection for good (503 to every later webhook, /readyz "nats: CLOSED",
// /healthz 200). Now it is dead-lettered, the batch is accepted, and the
// service stays live, ready and able to store the next webhook.
func TestHostileEventDoesNotKillTheService(t *testing.T) {
	js := testsupport.StartJetStream(t)
	httpAddr, hookAddr := freeAddr(t), freeAddr(t)
	const secret = "whsec-main-0123456789"
	t.Setenv("NATS_URL", js.URL())
	t.Setenv("DATABASE_URL", testsupport.PostgresURL(t))
	t.Setenv("MLC_MASTER_KEY", base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")))
	t.Setenv("HTTP_ADDR", httpAddr)
	t.Setenv("WEBHOOK_ADDR", hookAddr)
	t.Setenv("GC_WEBHOOK_SECRET", secret)
	t.Setenv("LOG_LEVEL", "error")

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("service did not stop")
		}
	}()

	get := func(path string) int {
		resp, err := http.Get("http://" + httpAddr + path)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	deadline := time.Now().Add(30 * time.Second)
	for get("/readyz") != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("service never ready")
		}
		time.Sleep(50 * time.Millisecond)
	}
	post := func(body string) int {
		req, _ := http.NewRequest(http.MethodPost, "http://"+hookAddr+"/webhooks/gocardless", bytes.NewReader([]byte(body)))
		req.Header.Set(gocardless.SignatureHeader, gocardless.Sign([]byte(secret), []byte(body)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	hostile := `{"events":[{"id":"EV1","resource_type":"` + strings.Repeat("r", 4100) + `","action":"created"},` +
		`{"id":"EV2","resource_type":"payments","action":"confirmed"}],"meta":{"webhook_id":"WB1"}}`
	if got := post(hostile); got != http.StatusNoContent {
		t.Fatalf("hostile batch: %d, want 204", got)
	}
	if got := post(`{"events":[{"id":"EV3","resource_type":"payments","action":"paid_out"}],"meta":{"webhook_id":"WB2"}}`); got != http.StatusNoContent {
		t.Fatalf("next webhook: %d, want 204", got)
	}
	if h, r := get("/healthz"), get("/readyz"); h != http.StatusOK || r != http.StatusOK {
		t.Fatalf("healthz %d readyz %d after the hostile event", h, r)
	}

	jsc, err := jetstream.New(js.Connect())
	if err != nil {
		t.Fatal(err)
	}
	count := func(stream string) uint64 {
		st, err := jsc.Stream(t.Context(), stream)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}
	if gc, dlq := count(bus.StreamGC), count(bus.StreamDLQ); gc != 2 || dlq != 1 {
		t.Errorf("MLC_GC holds %d, MLC_DLQ %d; want the 2 good events and 1 dead letter", gc, dlq)
	}
}

// Readiness is false while no webhook could be verified.
func TestNotReadyWithoutAnyWebhookSecret(t *testing.T) {
	js := testsupport.StartJetStream(t)
	httpAddr := freeAddr(t)
	t.Setenv("NATS_URL", js.URL())
	t.Setenv("DATABASE_URL", testsupport.PostgresURL(t))
	t.Setenv("MLC_MASTER_KEY", base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")))
	t.Setenv("HTTP_ADDR", httpAddr)
	t.Setenv("WEBHOOK_ADDR", freeAddr(t))
	t.Setenv("GC_WEBHOOK_SECRET", "")
	t.Setenv("LOG_LEVEL", "error")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil) }()
	defer func() { cancel(); <-done }()

	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err == nil {
			var report struct {
				Checks map[string]string `json:"checks"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&report)
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(report.Checks["webhook_secrets"], "no webhook secret") {
				return
			}
			if resp.StatusCode == http.StatusOK {
				t.Fatal("ready without any webhook secret")
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("readyz never reported the missing secret")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRunRefusesOutOfRangeSettings(t *testing.T) {
	t.Setenv("MLC_MASTER_KEY", base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")))
	for name, value := range map[string]string{
		"WEBHOOK_MAX_EVENTS": "0", "WEBHOOK_MAX_CONCURRENT": "100000", "WEBHOOK_MAX_BODY_BYTES": "-1",
		"WEBHOOK_PUBLISH_TIMEOUT": "30s", "WEBHOOK_QUEUE_WAIT": "0s", "GC_WEBHOOK_CONNECTION": "gc main/x",
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv(name, value)
			if err := run(t.Context(), nil); err == nil || !strings.Contains(err.Error(), name+": ") {
				t.Errorf("run: %v, want an error naming %s", err, name)
			}
		})
	}
}
