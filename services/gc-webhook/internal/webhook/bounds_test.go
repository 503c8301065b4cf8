package webhook_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/platform/bus"
	"github.com/ml-connector/ml-connector/services/gc-webhook/internal/webhook"
)

func (s *stack) streamMsgs(t testing.TB, stream string) []*jetstream.RawStreamMsg {
	t.Helper()
	st, err := s.bus.JetStream().Stream(context.Background(), stream)
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

// Issue #17: an event whose resource_type is 4,100 characters made a
// subject past NATS's control-line limit, NATS closed the connection and
// gc-webhook answered 503 for good; an event id over 64 KB made its batch
// 503 forever. Now each malformed event is kept as a dead letter with its
// raw bytes, the rest of the batch is stored, the answer is 204, and the
// connection stays up for the next request.
func TestOutOfBoundsEventsAreDeadLetteredAndTheBatchAccepted(t *testing.T) {
	s := newStack(t, webhook.Config{MaxBody: 4 << 20, Connection: "gc-main"})
	bad := []string{
		event("EV10", strings.Repeat("r", 4100), "created"),                      // subject too long
		event("EV"+strings.Repeat("1", 70<<10), "payments", "paid"),              // id over 64 KB
		event("EV11", "payments", "paid out"),                                    // not a subject token
		event("EV12", "payments.x", "created"),                                   // would add a subject token
		`{"resource_type":"payments","action":"paid"}`,                           // no id
		`{"id":"EV13","resource_type":"payments","action":"paid","links":"PM1"}`, // unreadable links
		`{"id":"EV14","resource_type":"payments","action":"paid","links":{"payment":"PM 1\r\n"}}`,
		`{"id":"EV15","resource_type":"payments","action":"paid","metadata":{"a":"1","b":"2","c":"3","d":"4"}}`,
		`"not an object"`,
	}
	good := []string{event("EV1", "payments", "confirmed"), event("EV2", "mandates", "active")}
	b := body(good[0], bad[0], bad[1], bad[2], bad[3], bad[4], bad[5], bad[6], bad[7], bad[8], good[1])
	for range 2 { // GoCardless re-sends the batch: still nothing twice
		if got := s.post(t, "/webhooks/gocardless", b, gocardless.Sign(secret, b)); got != http.StatusNoContent {
			t.Fatalf("status %d, want 204", got)
		}
	}
	if !s.bus.Conn().IsConnected() {
		t.Fatalf("nats connection %s", s.bus.Conn().Status())
	}
	if n := len(s.stored(t)); n != len(good) {
		t.Errorf("%d events stored, want the %d good ones", n, len(good))
	}
	dead := s.streamMsgs(t, bus.StreamDLQ)
	if len(dead) != len(bad) {
		t.Fatalf("%d dead letters, want %d", len(dead), len(bad))
	}
	raws := map[string]bool{}
	for _, d := range dead {
		raws[string(d.Data)] = true
		if d.Subject != bus.DeadLetterSubject(bus.StreamGC, "gc-webhook") || d.Header.Get(bus.HeaderDLQReason) == "" ||
			d.Header.Get(webhook.HeaderConnection) != "gc-main" || d.Header.Get(webhook.HeaderWebhookID) != "WB123" {
			t.Errorf("dead letter %s headers %v", d.Subject, d.Header)
		}
		if r := d.Header.Get(bus.HeaderDLQReason); strings.Contains(r, "rrrrrrrr") || strings.Contains(r, "11111111") {
			t.Errorf("reason quotes the refused value: %.120s", r)
		}
	}
	for i, raw := range bad {
		if !raws[raw] {
			t.Errorf("bad event %d not kept byte for byte", i)
		}
	}

	// The next request is served on the same connection.
	next := body(event("EV3", "payments", "paid_out"))
	if got := s.post(t, "/webhooks/gocardless", next, gocardless.Sign(secret, next)); got != http.StatusNoContent {
		t.Errorf("next request: %d", got)
	}
}

// An event that fits the body but not a NATS message (here a server with a
// 32 KiB max payload) is kept as a dead letter cut to fit, with its size and
// SHA-256, instead of failing its batch forever.
func TestEventTooLargeForNATSIsDeadLettered(t *testing.T) {
	s := newStack(t, webhook.Config{MaxPayload: 32 << 10})
	huge := `{"id":"EV9","resource_type":"payments","action":"paid","future_field":"` + strings.Repeat("z", 50<<10) + `"}`
	b := body(event("EV1", "payments", "confirmed"), huge)
	if got := s.post(t, "/webhooks/gocardless", b, gocardless.Sign(secret, b)); got != http.StatusNoContent {
		t.Fatalf("status %d", got)
	}
	if n := len(s.stored(t)); n != 1 {
		t.Errorf("%d events stored, want 1", n)
	}
	dead := s.streamMsgs(t, bus.StreamDLQ)
	if len(dead) != 1 || !strings.HasPrefix(huge, string(dead[0].Data)) || len(dead[0].Data) == 0 ||
		!strings.HasPrefix(dead[0].Header.Get(bus.HeaderDLQTruncated), fmt.Sprintf("%d bytes, sha256 ", len(huge))) {
		t.Fatalf("dead letters %d: %v", len(dead), dead)
	}
}

func TestTooManyEventsIs413(t *testing.T) {
	s := newStack(t, webhook.Config{MaxEvents: 250})
	var events []string
	for i := range 251 {
		events = append(events, event(fmt.Sprintf("EV%d", i), "payments", "paid_out"))
	}
	b := body(events...)
	if got := s.post(t, "/webhooks/gocardless", b, gocardless.Sign(secret, b)); got != http.StatusRequestEntityTooLarge {
		t.Errorf("251 events: %d, want 413", got)
	}
	b = body(events[:250]...)
	if got := s.post(t, "/webhooks/gocardless", b, gocardless.Sign(secret, b)); got != http.StatusNoContent {
		t.Errorf("250 events: %d, want 204", got)
	}
}

// blockingPublisher holds every publish until released.
type blockingPublisher struct {
	entered chan struct{}
	release chan struct{}
}

func (p *blockingPublisher) PublishBatch(ctx context.Context, msgs []bus.Msg) ([]bus.Ack, error) {
	p.entered <- struct{}{}
	select {
	case <-p.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return make([]bus.Ack, len(msgs)), nil
}

// Requests beyond MaxConcurrent wait for a slot without reading their body
// and, after QueueWait, are answered 503 with Retry-After.
func TestConcurrentRequestsAreBounded(t *testing.T) {
	pub := &blockingPublisher{entered: make(chan struct{}, 4), release: make(chan struct{})}
	h, err := webhook.New(webhook.Config{Secrets: [][]byte{secret}, MaxConcurrent: 2, QueueWait: 100 * time.Millisecond, PublishTimeout: 5 * time.Second},
		pub, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	st := &stack{srv: srv}
	b := body(event("EV1", "payments", "confirmed"))
	var wg sync.WaitGroup
	codes := make(chan int, 2)
	for range 2 {
		wg.Go(func() { codes <- st.post(t, "/webhooks/gocardless", b, gocardless.Sign(secret, b)) })
	}
	<-pub.entered
	<-pub.entered // both slots held

	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/webhooks/gocardless", strings.NewReader(string(b)))
	req.Header.Set(gocardless.SignatureHeader, gocardless.Sign(secret, b))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" {
		t.Errorf("third request: %d Retry-After %q, want 503 with Retry-After 1", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	close(pub.release)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != http.StatusNoContent {
			t.Errorf("held request: %d", c)
		}
	}
}
