package webhook

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/platform/bus"
)

// ackingPublisher acknowledges every message at once, so the test measures
// the handler's own memory, not the broker's.
type ackingPublisher struct{ events atomic.Int64 }

func (p *ackingPublisher) PublishBatch(_ context.Context, msgs []bus.Msg) ([]bus.Ack, error) {
	p.events.Add(int64(len(msgs)))
	return make([]bus.Ack, len(msgs)), nil
}

// floodBody is a signed body of n events of about size bytes each.
func floodBody(n, size int) []byte {
	var b strings.Builder
	b.WriteString(`{"events":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":"EV%012d","created_at":"2026-11-21T10:00:00.000Z","resource_type":"payments","action":"confirmed",`+
			`"links":{"payment":"PM%012d"},"details":{"origin":"bank","cause":"payment_confirmed","description":"%s"},"metadata":{}}`,
			i, i, strings.Repeat("d", max(size-220, 0)))
	}
	b.WriteString(`],"meta":{"webhook_id":"WB1"}}`)
	return []byte(b.String())
}

// floodCeilingPerSlot is the documented bound on the heap gc-webhook's
// handler takes under a flood, per request slot (WEBHOOK_MAX_CONCURRENT) at
// the default 2 MiB body and 1,000 events, garbage not yet collected
// included; docs/benchmarks.md records what this test measured (about
// 18 MiB per slot).
const floodCeilingPerSlot = 24 << 20

// Issue #17: one 1.6 MB body of 100,000 tiny events took 208 MB; eight at
// once peaked at 1.28 GB, never returned. Now a request holds at most
// MaxEvents events and MaxConcurrent requests are in hand at once: 32
// senders of maximal bodies keep the heap under MaxConcurrent x
// floodCeilingPerSlot, and it falls back once they stop.
func TestFloodMemoryIsBoundedAndReturned(t *testing.T) {
	if testing.Short() {
		t.Skip("flood")
	}
	pub := &ackingPublisher{}
	h, err := New(Config{Secrets: [][]byte{[]byte("flood-secret-0123")}, QueueWait: 30 * time.Second}, pub,
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	maximal := floodBody(DefaultMaxEvents, DefaultMaxBody/DefaultMaxEvents-40)
	if len(maximal) > DefaultMaxBody {
		t.Fatalf("flood body %d bytes over the limit", len(maximal))
	}
	tiny := floodBody(DefaultMaxEvents+1, 0) // over MaxEvents: 413 before any event is decoded
	sig := gocardless.Sign([]byte("flood-secret-0123"), maximal)
	tinySig := gocardless.Sign([]byte("flood-secret-0123"), tiny)

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	baseline := ms.HeapInuse

	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
		}
	}()

	const senders, rounds = 32, 2
	var wg sync.WaitGroup
	var bad atomic.Int64
	for i := range senders {
		wg.Go(func() {
			for range rounds {
				b, s, want := maximal, sig, http.StatusNoContent
				if i%4 == 3 {
					b, s, want = tiny, tinySig, http.StatusRequestEntityTooLarge
				}
				req, _ := http.NewRequest(http.MethodPost, srv.URL+"/webhooks/gocardless", bytes.NewReader(b))
				req.Header.Set(gocardless.SignatureHeader, s)
				resp, err := http.DefaultClient.Do(req)
				if err != nil || resp.StatusCode != want {
					bad.Add(1)
				}
				if resp != nil {
					resp.Body.Close()
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	<-sampled
	if bad.Load() > 0 {
		t.Fatalf("%d requests not answered as expected", bad.Load())
	}
	if want := int64(senders/4*3*rounds) * DefaultMaxEvents; pub.events.Load() != want {
		t.Errorf("%d events published, want %d", pub.events.Load(), want)
	}
	grew := peak.Load() - baseline
	ceiling := uint64(DefaultMaxConcurrent) * floodCeilingPerSlot
	t.Logf("flood: %d senders x %d rounds of %d-byte bodies; heap in use peaked %.1f MiB above baseline (ceiling %.0f MiB)",
		senders, rounds, len(maximal), float64(grew)/(1<<20), float64(ceiling)/(1<<20))
	if grew > ceiling {
		t.Errorf("heap grew %.1f MiB under the flood, over the %.0f MiB ceiling", float64(grew)/(1<<20), float64(ceiling)/(1<<20))
	}

	srv.CloseClientConnections()
	http.DefaultClient.CloseIdleConnections()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	if after := int64(ms.HeapInuse) - int64(baseline); after > 8<<20 {
		t.Errorf("heap still %.1f MiB above baseline after the flood", float64(after)/(1<<20))
	} else {
		t.Logf("after the flood: heap in use %.1f MiB above baseline", float64(after)/(1<<20))
	}
}
