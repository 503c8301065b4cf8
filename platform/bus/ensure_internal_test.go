package bus

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/ml-connector/ml-connector/platform/retry"
)

// TestEnsureRetriesARequestNobodyAnswers: a stream declaration that gets
// no answer (a JetStream cluster without a meta leader drops it) is tried
// again after ensureRequestTimeout, not waited on until the caller's
// start-up deadline.
func TestEnsureRetriesARequestNobodyAnswers(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats did not start")
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// A responder that hears the JetStream API and never answers.
	var asked atomic.Int32
	sub, err := nc.Subscribe("$JS.API.>", func(*nats.Msg) { asked.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	oldTimeout, oldBackoff := ensureRequestTimeout, ensureBackoff
	ensureRequestTimeout, ensureBackoff = 100*time.Millisecond, retry.Backoff{Base: 10 * time.Millisecond, Max: 10 * time.Millisecond, Attempts: 3}
	t.Cleanup(func() { ensureRequestTimeout, ensureBackoff = oldTimeout, oldBackoff })

	b, err := New(nc, DefaultConfig(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	start := time.Now()
	err = b.Ensure(ctx)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ensure: %v, want the per-request deadline", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Ensure took %s: it waited on the caller's deadline", took)
	}
	if n := asked.Load(); n < 3 {
		t.Errorf("JetStream was asked %d times, want a retry per attempt (3)", n)
	}
}
