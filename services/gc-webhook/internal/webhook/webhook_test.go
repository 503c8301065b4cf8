package webhook_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/protobuf/proto"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/platform/bus"
	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/platform/secrets"
	"github.com/ml-connector/ml-connector/platform/telemetry"
	"github.com/ml-connector/ml-connector/platform/testsupport"
	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
	"github.com/ml-connector/ml-connector/services/gc-webhook/internal/webhook"
)

var (
	secret    = []byte("whsec-current-0123456789")
	oldSecret = []byte("whsec-previous-987654321")
)

// stack is a webhook handler on a real embedded JetStream.
type stack struct {
	srv *httptest.Server
	js  *testsupport.JetStream
	bus *bus.Bus
}

func newStack(t testing.TB, cfg webhook.Config) *stack {
	t.Helper()
	otel.SetTracerProvider(sdktrace.NewTracerProvider())
	otel.SetTextMapPropagator(telemetry.Propagator())
	js := testsupport.StartJetStream(t)
	b, err := bus.New(js.Connect(), bus.DefaultConfig(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	if cfg.Secrets == nil {
		cfg.Secrets = [][]byte{secret, oldSecret}
	}
	if cfg.PublishTimeout == 0 {
		cfg.PublishTimeout = time.Second
	}
	h, err := webhook.New(cfg, b, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &stack{srv: srv, js: js, bus: b}
}

func event(id, resource, action string) string {
	return fmt.Sprintf(`{"id":%q,"created_at":"2026-11-21T10:00:00.000Z","resource_type":%q,"action":%q,`+
		`"links":{"payment":"PM%s"},"details":{"origin":"bank","cause":"payment_confirmed"},"metadata":{}}`, id, resource, action, id)
}

func body(events ...string) []byte {
	return []byte(`{"events":[` + strings.Join(events, ",") + `],"meta":{"webhook_id":"WB123"}}`)
}

func (s *stack) post(t testing.TB, path string, body []byte, signature string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.srv.URL+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if signature != "" {
		req.Header.Set(gocardless.SignatureHeader, signature)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (s *stack) stored(t testing.TB) []*jetstream.RawStreamMsg {
	t.Helper()
	st, err := s.bus.JetStream().Stream(context.Background(), bus.StreamGC)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(context.Background(), seq)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

func TestStatuses(t *testing.T) {
	valid := body(event("EV1", "payments", "confirmed"), event("EV2", "mandates", "active"))
	big := body(event("EV9", "payments", "confirmed") + "," + strings.Repeat(" ", 5000) + event("EV10", "payments", "paid_out"))
	tests := []struct {
		name       string
		method     string
		path       string
		body       []byte
		signature  string
		want       int
		wantStored int
	}{
		{name: "accepted", path: "/webhooks/gocardless", body: valid, signature: gocardless.Sign(secret, valid), want: 204, wantStored: 2},
		{name: "previous secret during rotation", path: "/webhooks/gocardless", body: valid, signature: gocardless.Sign(oldSecret, valid), want: 204, wantStored: 2},
		{name: "bad signature", path: "/webhooks/gocardless", body: valid, signature: gocardless.Sign([]byte("guess"), valid), want: 498},
		{name: "missing signature", path: "/webhooks/gocardless", body: valid, want: 498},
		{name: "signature of another body", path: "/webhooks/gocardless", body: valid, signature: gocardless.Sign(secret, append(valid, '\n')), want: 498},
		{name: "malformed json", path: "/webhooks/gocardless", body: []byte(`{"events":[`), signature: gocardless.Sign(secret, []byte(`{"events":[`)), want: 400},
		{name: "no events array", path: "/webhooks/gocardless", body: []byte(`{"meta":{}}`), signature: gocardless.Sign(secret, []byte(`{"meta":{}}`)), want: 400},
		{name: "events not an array", path: "/webhooks/gocardless", body: []byte(`{"events":{}}`), signature: gocardless.Sign(secret, []byte(`{"events":{}}`)), want: 400},
		{name: "too large", path: "/webhooks/gocardless", body: big, signature: gocardless.Sign(secret, big), want: 413},
		{name: "wrong method", method: http.MethodGet, path: "/webhooks/gocardless", want: 405},
		{name: "unknown connection", path: "/webhooks/gocardless/nobody", body: valid, signature: gocardless.Sign(secret, valid), want: 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStack(t, webhook.Config{MaxBody: 4096})
			var got int
			if tc.method != "" {
				resp, err := http.Get(s.srv.URL + tc.path)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				got = resp.StatusCode
				if resp.Header.Get("Allow") != http.MethodPost {
					t.Errorf("405 without Allow: POST")
				}
			} else {
				got = s.post(t, tc.path, tc.body, tc.signature)
			}
			if got != tc.want {
				t.Errorf("status %d, want %d", got, tc.want)
			}
			if n := len(s.stored(t)); n != tc.wantStored {
				t.Errorf("%d messages stored, want %d", n, tc.wantStored)
			}
		})
	}
}

func TestEventsPublishedInFullAndOnce(t *testing.T) {
	s := newStack(t, webhook.Config{Connection: "gc-main"})
	events := []string{
		event("EV1", "payments", "confirmed"),
		event("EV2", "payments", "failed"),
		event("EV3", "widgets", "frobbed"), // unknown to us: kept, not dropped
		event("EV1", "payments", "confirmed"),
	}
	b := body(events...)
	for range 2 { // GoCardless re-sends the same batch
		if got := s.post(t, "/webhooks/gocardless", b, gocardless.Sign(secret, b)); got != 204 {
			t.Fatalf("status %d", got)
		}
	}
	msgs := s.stored(t)
	wantSubjects := []string{"mlc.gc.payments.confirmed", "mlc.gc.payments.failed", "mlc.gc.widgets.frobbed"}
	if len(msgs) != len(wantSubjects) {
		t.Fatalf("%d messages stored, want %d (one per distinct event)", len(msgs), len(wantSubjects))
	}
	for i, m := range msgs {
		var e mlcv1.GoCardlessEvent
		if err := proto.Unmarshal(m.Data, &e); err != nil {
			t.Fatal(err)
		}
		if m.Subject != wantSubjects[i] || m.Header.Get(bus.HeaderMsgID) != e.GetEventId() || string(e.GetRawJson()) != events[i] ||
			e.GetConnection() != "gc-main" || e.GetWebhookId() != "WB123" || e.GetSource() != mlcv1.GoCardlessEvent_SOURCE_WEBHOOK {
			t.Errorf("message %d: subject %s id %s event %v", i, m.Subject, m.Header.Get(bus.HeaderMsgID), &e)
		}
		if m.Header.Get("traceparent") == "" {
			t.Errorf("message %d carries no trace context", i)
		}
	}
}

func TestConnectionSecretsFromRegistry(t *testing.T) {
	db := testsupport.Pool(t)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	keys, err := secrets.NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	store := connections.NewStore(db, keys)
	if _, err := store.Add(context.Background(), connections.New{
		Name: "gc-eu", Kind: connections.KindGoCardless, Settings: map[string]any{"base_url": "https://api-sandbox.gocardless.com"},
		Secrets: map[string]secrets.Value{"access_token": secrets.NewValue("sandbox_token_xyz"), "webhook_secret": secrets.NewValue("eu-webhook-secret")},
		Actor:   "test",
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Add(context.Background(), connections.New{
		Name: "ifs-acme", Kind: connections.KindIFS, Settings: map[string]any{"base_url": "https://x", "client_id": "c", "company_codes": []any{"10"}},
		Secrets: map[string]secrets.Value{"client_secret": secrets.NewValue("eu-webhook-secret")},
		Actor:   "test",
	}); err != nil {
		t.Fatal(err)
	}
	s := newStack(t, webhook.Config{Registry: webhook.NewRegistrySecrets(store, time.Minute)})
	b := body(event("EV7", "refunds", "paid"))
	euSig := gocardless.Sign([]byte("eu-webhook-secret"), b)
	tests := []struct {
		path, sig string
		want      int
	}{
		{"/webhooks/gocardless/gc-eu", euSig, 204},
		{"/webhooks/gocardless/gc-eu", gocardless.Sign(secret, b), 498}, // the env secret is not this account's
		{"/webhooks/gocardless/ifs-acme", euSig, 404},                   // not a GoCardless connection
		{"/webhooks/gocardless/gc-missing", euSig, 404},
	}
	for _, tc := range tests {
		if got := s.post(t, tc.path, b, tc.sig); got != tc.want {
			t.Errorf("POST %s: %d, want %d", tc.path, got, tc.want)
		}
	}
	msgs := s.stored(t)
	var e mlcv1.GoCardlessEvent
	if len(msgs) != 1 || proto.Unmarshal(msgs[0].Data, &e) != nil || e.GetConnection() != "gc-eu" {
		t.Errorf("stored %d messages, connection %q; want 1 from gc-eu", len(msgs), e.GetConnection())
	}
}

// With NATS down nothing can be made durable: the answer must be 503 so
// GoCardless retries, and the retry after NATS is back is stored in full.
func TestNATSDownAnswers503ThenRedeliveryIsStored(t *testing.T) {
	s := newStack(t, webhook.Config{PublishTimeout: 500 * time.Millisecond})
	var events []string
	for i := range 250 {
		events = append(events, event(fmt.Sprintf("EV%03d", i), "payments", "paid_out"))
	}
	b := body(events...)
	sig := gocardless.Sign(secret, b)

	s.js.Shutdown()
	if got := s.post(t, "/webhooks/gocardless", b, sig); got != http.StatusServiceUnavailable {
		t.Fatalf("with NATS down: %d, want 503", got)
	}
	s.js.Restart()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := s.post(t, "/webhooks/gocardless", b, sig)
		if got == 204 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("redelivery after NATS restart: %d", got)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := len(s.stored(t)); n != 250 {
		t.Errorf("%d events stored after redelivery, want all 250", n)
	}
}
