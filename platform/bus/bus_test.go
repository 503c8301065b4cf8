package bus_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/ml-connector/ml-connector/platform/bus"
	"github.com/ml-connector/ml-connector/platform/telemetry"
	"github.com/ml-connector/ml-connector/platform/testsupport"
)

func newBus(t *testing.T) (*bus.Bus, *testsupport.JetStream) { return newBusB(t) }

func newBusB(t testing.TB) (*bus.Bus, *testsupport.JetStream) {
	t.Helper()
	srv := testsupport.StartJetStream(t)
	b, err := bus.New(srv.Connect(), bus.DefaultConfig(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	return b, srv
}

// consume runs b.Consume in the background until the test ends.
func consume(t *testing.T, b *bus.Bus, spec bus.ConsumerSpec, h bus.Handler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Consume(ctx, spec, h) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("consume: %v", err)
		}
	})
}

// next reads the next message of stream from sequence seq on, waiting up to 10s.
func next(t *testing.T, b *bus.Bus, stream string, seq uint64) *jetstream.RawStreamMsg {
	t.Helper()
	s, err := b.JetStream().Stream(t.Context(), stream)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		m, err := s.GetMsg(t.Context(), seq)
		if err == nil {
			return m
		}
		if !errors.Is(err, jetstream.ErrMsgNotFound) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no message %d in %s within 10s", seq, stream)
	return nil
}

func streamMsgs(t *testing.T, b *bus.Bus, stream string) uint64 {
	t.Helper()
	s, err := b.JetStream().Stream(t.Context(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestEnsureIsIdempotent(t *testing.T) {
	b, _ := newBus(t)
	spec := bus.ConsumerSpec{Stream: bus.StreamERP, Durable: "orchestrator-erp", Subjects: []string{"mlc.erp.>"}, MaxDeliver: 5}
	first, err := b.EnsureConsumer(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	before := map[string]jetstream.StreamConfig{}
	for _, name := range []string{bus.StreamERP, bus.StreamGC, bus.StreamDLQ, bus.StreamAdvisories} {
		s, err := b.JetStream().Stream(t.Context(), name)
		if err != nil {
			t.Fatalf("stream %s not created: %v", name, err)
		}
		before[name] = s.CachedInfo().Config
	}

	if err := b.Ensure(t.Context()); err != nil {
		t.Fatalf("second ensure: %v", err)
	}
	second, err := b.EnsureConsumer(t.Context(), spec)
	if err != nil {
		t.Fatalf("second ensure consumer: %v", err)
	}
	for name, cfg := range before {
		s, err := b.JetStream().Stream(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		got := s.CachedInfo().Config
		if got.Storage != jetstream.FileStorage || got.Retention != jetstream.LimitsPolicy || got.MaxAge == 0 {
			t.Errorf("%s: storage %v retention %v max age %v, want file, limits, bounded", name, got.Storage, got.Retention, got.MaxAge)
		}
		if strings.Join(got.Subjects, ",") != strings.Join(cfg.Subjects, ",") || got.MaxAge != cfg.MaxAge || got.Replicas != cfg.Replicas || got.Duplicates != cfg.Duplicates {
			t.Errorf("%s changed on second ensure: %+v -> %+v", name, cfg, got)
		}
	}
	c1, c2 := first.CachedInfo(), second.CachedInfo()
	if c1.Created != c2.Created || c2.Config.AckPolicy != jetstream.AckExplicitPolicy || c2.Config.MaxDeliver != 5 || c2.Config.AckWait != 30*time.Second {
		t.Errorf("consumer not stable or not explicit-ack with max deliver and ack wait: %+v", c2.Config)
	}
	names := b.JetStream().StreamNames(t.Context())
	var n int
	for range names.Name() {
		n++
	}
	if n != 4 {
		t.Errorf("got %d streams, want 4", n)
	}
}

func TestPublishDeduplicatesByMsgID(t *testing.T) {
	b, _ := newBus(t)
	msg := bus.Msg{Subject: "mlc.erp.ifs.10.invoice", ID: "ifs:10:invoice:INV-1:v1", Data: []byte("x")}
	first, err := b.Publish(t.Context(), msg)
	if err != nil {
		t.Fatal(err)
	}
	second, err := b.Publish(t.Context(), msg)
	if err != nil {
		t.Fatal(err)
	}
	if first.Duplicate || !second.Duplicate || first.Sequence != second.Sequence {
		t.Errorf("acks %+v then %+v, want the second to be a duplicate of the first", first, second)
	}
	if got := streamMsgs(t, b, bus.StreamERP); got != 1 {
		t.Errorf("stream holds %d messages, want 1", got)
	}
	if _, err := b.Publish(t.Context(), bus.Msg{Subject: "mlc.erp.ifs.10.invoice", Data: []byte("x")}); !errors.Is(err, bus.ErrNoMsgID) {
		t.Errorf("publish without id: %v, want ErrNoMsgID", err)
	}
}

func TestPublishBatch(t *testing.T) {
	b, _ := newBus(t)
	var msgs []bus.Msg
	for _, id := range []string{"EV1", "EV2", "EV3", "EV2"} {
		msgs = append(msgs, bus.Msg{Subject: "mlc.gc.payments.confirmed", ID: id, Data: []byte(id)})
	}
	acks, err := b.PublishBatch(t.Context(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	if len(acks) != 4 || !acks[3].Duplicate || acks[3].Sequence != acks[1].Sequence {
		t.Errorf("acks %+v: want 4 with the repeated EV2 a duplicate", acks)
	}
	if got := streamMsgs(t, b, bus.StreamGC); got != 3 {
		t.Errorf("stream holds %d messages, want 3", got)
	}
}

func TestHandlerOutcomes(t *testing.T) {
	tests := []struct {
		name       string
		handler    func(d *bus.Delivery) error
		wantDLQ    string // substring of the dead-letter reason, "" for none
		wantCalls  int
		minSpacing time.Duration // least time between the first two deliveries
	}{
		{
			name:      "ack on first delivery",
			handler:   func(*bus.Delivery) error { return nil },
			wantCalls: 1,
		},
		{
			name: "retry after delay, repeatedly, then ack",
			handler: func(d *bus.Delivery) error {
				if d.Deliveries < 3 {
					return bus.RetryAfter(300*time.Millisecond, errors.New("erp busy"))
				}
				return nil
			},
			wantCalls:  3,
			minSpacing: 300 * time.Millisecond,
		},
		{
			name:      "poison goes to the dead-letter stream at once",
			handler:   func(*bus.Delivery) error { return bus.Poison(errors.New("unknown schema version 9")) },
			wantDLQ:   "poison: unknown schema version 9",
			wantCalls: 1,
		},
		{
			name:      "exhausted deliveries go to the dead-letter stream",
			handler:   func(*bus.Delivery) error { return errors.New("gocardless unavailable") },
			wantDLQ:   "exhausted 3 deliveries: gocardless unavailable",
			wantCalls: 3,
		},
		{
			name:      "a panicking handler is retried, then dead-lettered",
			handler:   func(*bus.Delivery) error { panic("nil map") },
			wantDLQ:   "handler panic: nil map",
			wantCalls: 3,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := newBus(t)
			var mu sync.Mutex
			var calls []time.Time
			done := make(chan struct{}, 10)
			consume(t, b, bus.ConsumerSpec{
				Stream: bus.StreamERP, Durable: "test", AckWait: 5 * time.Second,
				MaxDeliver: 3, BackOff: []time.Duration{50 * time.Millisecond},
			}, func(_ context.Context, d *bus.Delivery) error {
				mu.Lock()
				calls = append(calls, time.Now())
				mu.Unlock()
				defer func() { done <- struct{}{} }()
				return tc.handler(d)
			})
			if _, err := b.Publish(t.Context(), bus.Msg{Subject: "mlc.erp.jde.00001.invoice", ID: "jde:00001:invoice:1:1", Data: []byte("payload")}); err != nil {
				t.Fatal(err)
			}
			for range tc.wantCalls {
				select {
				case <-done:
				case <-time.After(10 * time.Second):
					t.Fatalf("handler called %d times, want %d", len(calls), tc.wantCalls)
				}
			}
			if tc.wantDLQ != "" {
				dl := next(t, b, bus.StreamDLQ, 1)
				if got := dl.Header.Get(bus.HeaderDLQReason); !strings.Contains(got, tc.wantDLQ) {
					t.Errorf("dead-letter reason %q, want it to contain %q", got, tc.wantDLQ)
				}
				if dl.Subject != bus.DeadLetterSubject(bus.StreamERP, "test") || string(dl.Data) != "payload" ||
					dl.Header.Get(bus.HeaderDLQSubject) != "mlc.erp.jde.00001.invoice" || dl.Header.Get(bus.HeaderDLQOriginalID) != "jde:00001:invoice:1:1" {
					t.Errorf("dead letter lost the original: subject %s data %q headers %v", dl.Subject, dl.Data, dl.Header)
				}
			}
			// Nothing more arrives: the message was settled.
			select {
			case <-done:
				t.Errorf("handler called again after the message was settled")
			case <-time.After(300 * time.Millisecond):
			}
			if tc.wantDLQ == "" {
				if got := streamMsgs(t, b, bus.StreamDLQ); got != 0 {
					t.Errorf("%d dead letters, want none", got)
				}
			}
			if tc.minSpacing > 0 {
				mu.Lock()
				defer mu.Unlock()
				for i := 1; i < len(calls); i++ {
					if gap := calls[i].Sub(calls[i-1]); gap < tc.minSpacing {
						t.Errorf("delivery %d came %v after the one before, want at least %v", i+1, gap, tc.minSpacing)
					}
				}
			}
		})
	}
}

// A delivery nobody acknowledges (the consumer crashed on its last attempt)
// must still end up in MLC_DLQ, moved there from the server's advisory.
func TestUnacknowledgedMessageIsMovedToDeadLetters(t *testing.T) {
	b, _ := newBus(t)
	cons, err := b.EnsureConsumer(t.Context(), bus.ConsumerSpec{
		Stream: bus.StreamGC, Durable: "crashy", AckWait: 200 * time.Millisecond, MaxDeliver: 2,
		BackOff: []time.Duration{200 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(t.Context(), bus.Msg{Subject: "mlc.gc.mandates.cancelled", ID: "EV123", Data: []byte(`{"id":"EV123"}`)}); err != nil {
		t.Fatal(err)
	}
	// Take both deliveries and answer neither, as a crashing process would.
	for i := 0; i < 2; i++ {
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(3*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var got int
		for range batch.Messages() {
			got++
		}
		if got != 1 {
			t.Fatalf("fetch %d got %d messages", i+1, got)
		}
	}
	// The server notices the exhaustion when the consumer next pulls, as a
	// live consume loop always does.
	if batch, err := cons.Fetch(1, jetstream.FetchMaxWait(time.Second)); err == nil {
		for m := range batch.Messages() {
			t.Fatalf("delivered beyond MaxDeliver: %s", m.Subject())
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = b.MoveDeadLetters(ctx) }()

	dl := next(t, b, bus.StreamDLQ, 1)
	if reason := dl.Header.Get(bus.HeaderDLQReason); !strings.Contains(reason, "without acknowledgement") {
		t.Errorf("reason %q", reason)
	}
	if string(dl.Data) != `{"id":"EV123"}` || dl.Header.Get(bus.HeaderDLQConsumer) != "crashy" || dl.Subject != bus.DeadLetterSubject(bus.StreamGC, "crashy") {
		t.Errorf("dead letter %s %q %v does not carry the original", dl.Subject, dl.Data, dl.Header)
	}
}

func TestTraceContextSurvivesPublishConsume(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(telemetry.Propagator())
	b, _ := newBus(t)

	ctx, root := tp.Tracer("test").Start(t.Context(), "poll")
	if _, err := b.Publish(ctx, bus.Msg{Subject: "mlc.erp.ifs.10.customer", ID: "c1", Data: []byte("c")}); err != nil {
		t.Fatal(err)
	}
	root.End()

	got := make(chan trace.SpanContext, 1)
	var header nats.Header
	consume(t, b, bus.ConsumerSpec{Stream: bus.StreamERP, Durable: "tracer"}, func(ctx context.Context, d *bus.Delivery) error {
		header = d.Header
		got <- trace.SpanContextFromContext(ctx)
		return nil
	})
	select {
	case sc := <-got:
		if sc.TraceID() != root.SpanContext().TraceID() {
			t.Fatalf("handler trace %s, want the publisher's %s (headers %v)", sc.TraceID(), root.SpanContext().TraceID(), header)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("message not consumed")
	}
	if header.Get("traceparent") == "" {
		t.Errorf("no traceparent header in %v", header)
	}
	var publish, process sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		switch s.Name() {
		case "publish mlc.erp.ifs.10.customer":
			publish = s
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for process == nil && time.Now().Before(deadline) {
		for _, s := range rec.Ended() {
			if s.Name() == "process mlc.erp.ifs.10.customer" {
				process = s
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if publish == nil || process == nil {
		t.Fatalf("spans missing: publish %v process %v", publish != nil, process != nil)
	}
	if process.Parent().SpanID() != publish.SpanContext().SpanID() {
		t.Errorf("process span's parent %s, want publish span %s", process.Parent().SpanID(), publish.SpanContext().SpanID())
	}
}

// A service starting while NATS restarts waits for it instead of exiting;
// a declaration JetStream refuses still fails at once.
func TestEnsureWaitsOutANATSRestart(t *testing.T) {
	srv := testsupport.StartJetStream(t)
	b, err := bus.New(srv.Connect(), bus.DefaultConfig(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv.Shutdown()
	done := make(chan error, 1)
	go func() { done <- b.Ensure(t.Context()) }()
	time.Sleep(6 * time.Second) // longer than a JetStream request's 5 s timeout
	srv.Resume()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Ensure across a restart: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Ensure did not return after NATS came back")
	}
	if _, err := b.JetStream().Stream(t.Context(), bus.StreamERP); err != nil {
		t.Errorf("stream not created: %v", err)
	}

	// Three replicas on a single server: refused, not retried.
	cfg := bus.DefaultConfig()
	cfg.Replicas = 3
	other, err := bus.New(srv.Connect(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := other.Ensure(t.Context()); err == nil {
		t.Fatal("Ensure of three-replica streams on one server succeeded")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a refused declaration took %v: it was retried", d)
	}
}

// publishOnceBack publishes an invoice message with id as soon as NATS,
// restarting, takes it again (within 15 s).
func publishOnceBack(t *testing.T, b *bus.Bus, id string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := b.Publish(t.Context(), bus.Msg{Subject: "mlc.erp.ifs.10.invoice", ID: id, Data: []byte(id)})
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("publish after restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestConsumeSurvivesNATSRestart(t *testing.T) {
	b, srv := newBus(t)
	seen := make(chan string, 10)
	consume(t, b, bus.ConsumerSpec{Stream: bus.StreamERP, Durable: "survivor"}, func(_ context.Context, d *bus.Delivery) error {
		seen <- d.ID
		return nil
	})
	if _, err := b.Publish(t.Context(), bus.Msg{Subject: "mlc.erp.ifs.10.invoice", ID: "before", Data: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	if id := <-seen; id != "before" {
		t.Fatalf("got %s", id)
	}
	srv.Restart()
	publishOnceBack(t, b, "after")
	select {
	case id := <-seen:
		if id != "after" {
			t.Errorf("got %s after restart", id)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("consumer did not resume after NATS restart")
	}
}

// A consumer started while NATS restarts (a service restarted by its
// supervisor a moment before, as in make chaos) waits for JetStream
// instead of failing its worker, which stopped the whole process with exit
// status 1 (make chaos SEED=542581, payment-orchestrator); so does a
// key-value bucket declared through Declare, as the orchestrator's are.
func TestConsumeStartedDuringNATSRestartWaits(t *testing.T) {
	b, srv := newBus(t)
	srv.Shutdown()
	bucket := make(chan error, 1)
	go func() {
		bucket <- b.Declare(t.Context(), "bucket LATE", func(ctx context.Context) error {
			_, err := b.JetStream().CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "LATE"})
			return err
		})
	}()
	seen := make(chan string, 1)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- b.Consume(ctx, bus.ConsumerSpec{Stream: bus.StreamERP, Durable: "late-starter"}, func(_ context.Context, d *bus.Delivery) error {
			seen <- d.ID
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("consume: %v", err)
		}
	})
	time.Sleep(6 * time.Second) // the outage: longer than a JetStream request's 5 s timeout
	srv.Resume()
	publishOnceBack(t, b, "after")
	select {
	case id := <-seen:
		if id != "after" {
			t.Errorf("got %s", id)
		}
	case err := <-done:
		done <- err // for the cleanup
		t.Fatalf("consume returned %v instead of waiting for NATS", err)
	case <-time.After(30 * time.Second):
		t.Fatal("consumer started during the outage never received")
	}
	select {
	case err := <-bucket:
		if err != nil {
			t.Errorf("bucket declared during the outage: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("bucket declared during the outage: no answer")
	}
}
