// Command webhook-bench is the load harness behind make bench-webhook. It
// starts an embedded NATS JetStream server with file storage and the real
// gc-webhook binary, sends signed 250-event batches concurrently over
// loopback, and in the same run measures raw JetStream async publishing of
// messages of the same size, so the webhook's figure is read against what
// the broker alone does on this machine. Its last line is
//
//	webhook: <N> events/s, p50 <X> ms, p99 <Y> ms per batch, <R> of raw JetStream publish
//
// N is measured at full load; p50 and p99 at half of N, paced.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
)

type options struct {
	binary      string
	adminURL    string
	duration    time.Duration
	concurrency int
	batch       int
}

func main() {
	var o options
	flag.StringVar(&o.binary, "service", "bin/gc-webhook", "gc-webhook binary to start")
	flag.StringVar(&o.adminURL, "admin-database-url", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "Postgres where a scratch database is created")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of each measured phase")
	flag.IntVar(&o.concurrency, "concurrency", 8, "concurrent webhook senders at full load")
	flag.IntVar(&o.batch, "batch", 250, "events per webhook request")
	flag.Parse()
	if err := run(context.Background(), o); err != nil {
		fmt.Fprintf(os.Stderr, "webhook-bench: %v\n", err)
		os.Exit(1)
	}
}

var secret = []byte("bench-webhook-secret")

func run(ctx context.Context, o options) error {
	dir, err := os.MkdirTemp("", "webhook-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true,
		StoreDir: filepath.Join(dir, "js"), NoLog: true, NoSigs: true})
	if err != nil {
		return err
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		return errors.New("nats did not start")
	}
	defer ns.Shutdown()

	dbName := fmt.Sprintf("mlc_webhook_bench_%d", os.Getpid())
	dbURL, drop, err := scratchDatabase(ctx, o.adminURL, dbName)
	if err != nil {
		return err
	}
	defer drop()

	webhookAddr, httpAddr := freeAddr(), freeAddr()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	cmd := exec.Command(o.binary)
	cmd.Env = append(os.Environ(), "NATS_URL="+ns.ClientURL(), "DATABASE_URL="+dbURL,
		"MLC_MASTER_KEY="+base64.StdEncoding.EncodeToString(key), "GC_WEBHOOK_SECRET="+string(secret),
		"WEBHOOK_ADDR="+webhookAddr, "HTTP_ADDR="+httpAddr, "LOG_LEVEL=warn")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s (run make build): %w", o.binary, err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	if err := waitReady(httpAddr, 30*time.Second); err != nil {
		return fmt.Errorf("%w\n%s", err, logs.String())
	}

	gen := &generator{batch: o.batch}
	target := "http://" + webhookAddr + "/webhooks/gocardless"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.concurrency * 2}, Timeout: 15 * time.Second}

	// Warm up connections and the service's caches.
	if _, err := load(client, target, gen, o.concurrency, 2*time.Second, 0); err != nil {
		return err
	}
	// Enough batches for 60,000 events/s, three times the target.
	gen.prepare(int(60000 * o.duration.Seconds() / float64(o.batch)))
	full, err := load(client, target, gen, o.concurrency, o.duration, 0)
	if err != nil {
		return err
	}
	rate := float64(full.events) / full.elapsed.Seconds()
	fmt.Printf("full load:  %d batches, %d events in %.1fs: %.0f events/s (p50 %.1f ms, p99 %.1f ms)\n",
		len(full.latencies), full.events, full.elapsed.Seconds(), rate, full.percentile(50), full.percentile(99))

	gen.prepare(int(rate / 2 * o.duration.Seconds() / float64(o.batch) * 1.2))
	half, err := load(client, target, gen, o.concurrency, o.duration, rate/2/float64(o.batch))
	if err != nil {
		return err
	}
	fmt.Printf("half load:  %d batches at %.1f batches/s: p50 %.1f ms, p99 %.1f ms\n",
		len(half.latencies), rate/2/float64(o.batch), half.percentile(50), half.percentile(99))

	stored, err := storedEvents(ns.ClientURL())
	if err != nil {
		return err
	}
	if stored != gen.issued() {
		return fmt.Errorf("%d events acknowledged but %d stored: events lost or duplicated", gen.issued(), stored)
	}
	fmt.Printf("durable:    %d events acknowledged, %d stored in MLC_GC\n", gen.issued(), stored)

	raw, err := rawPublish(ns.ClientURL(), gen.eventSize(), o.duration)
	if err != nil {
		return err
	}
	fmt.Printf("raw:        JetStream async publish of %d-byte messages: %.0f msgs/s\n", gen.eventSize(), raw)
	fmt.Printf("webhook: %.0f events/s, p50 %.1f ms, p99 %.1f ms per batch, %.2f of raw JetStream publish\n",
		rate, half.percentile(50), half.percentile(99), rate/raw)
	return nil
}

// generator makes signed batches of events with ids never used before, so
// every event is new work for the service and de-duplication cannot help.
// Batches are made and signed before a phase starts (prepare): GoCardless
// builds its webhooks on its own machines, so building them here must not
// take CPU from the service while it is measured.
type generator struct {
	batch int
	next  atomic.Int64
	acked atomic.Int64

	mu       sync.Mutex
	prepared []signedBatch
}

type signedBatch struct {
	body      []byte
	signature string
	events    int
}

// prepare makes n signed batches for the next phase.
func (g *generator) prepare(n int) {
	batches := make([]signedBatch, n)
	for i := range batches {
		body, events := g.body()
		batches[i] = signedBatch{body: body, signature: gocardless.Sign(secret, body), events: events}
	}
	g.mu.Lock()
	g.prepared = batches
	g.mu.Unlock()
}

// take returns a prepared batch, or makes one if they ran out.
func (g *generator) take() signedBatch {
	g.mu.Lock()
	if n := len(g.prepared); n > 0 {
		b := g.prepared[n-1]
		g.prepared = g.prepared[:n-1]
		g.mu.Unlock()
		return b
	}
	g.mu.Unlock()
	body, events := g.body()
	return signedBatch{body: body, signature: gocardless.Sign(secret, body), events: events}
}

func (g *generator) event(n int64) string {
	return fmt.Sprintf(`{"id":"EV%014d","created_at":"2026-11-21T10:00:00.000Z","resource_type":"payments","action":"paid_out",`+
		`"links":{"payment":"PM%012d","payout":"PO000123456789"},"details":{"origin":"gocardless","cause":"payment_paid_out",`+
		`"description":"The payment has been paid out by GoCardless.","scheme":"bacs","reason_code":""},`+
		`"metadata":{},"resource_metadata":{"erp":"ifs","company":"10","invoice":"INV-%010d"}}`, n, n, n)
}

func (g *generator) body() ([]byte, int) {
	first := g.next.Add(int64(g.batch)) - int64(g.batch)
	events := make([]string, g.batch)
	for i := range events {
		events[i] = g.event(first + int64(i))
	}
	return []byte(`{"events":[` + strings.Join(events, ",") + `],"meta":{"webhook_id":"WB000000000001"}}`), g.batch
}

func (g *generator) issued() int64  { return g.acked.Load() }
func (g *generator) eventSize() int { return len(g.event(0)) + 120 } // event JSON plus the message's other fields

type result struct {
	events    int64
	elapsed   time.Duration
	latencies []time.Duration
}

func (r result) percentile(p int) float64 {
	if len(r.latencies) == 0 {
		return 0
	}
	s := slices.Clone(r.latencies)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	if i > 0 {
		i--
	}
	return float64(s[i].Microseconds()) / 1000
}

// load sends batches from concurrency workers for d; with perSecond > 0 the
// batches are paced to that rate instead of sent as fast as possible.
func load(client *http.Client, target string, gen *generator, concurrency int, d time.Duration, perSecond float64) (result, error) {
	var (
		mu    sync.Mutex
		res   result
		first error
	)
	var tick <-chan time.Time
	if perSecond > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / perSecond))
		defer t.Stop()
		tick = t.C
	}
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				if tick != nil {
					<-tick
				}
				b := gen.take()
				n := b.events
				req, _ := http.NewRequest(http.MethodPost, target, bytes.NewReader(b.body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set(gocardless.SignatureHeader, b.signature)
				t0 := time.Now()
				resp, err := client.Do(req)
				lat := time.Since(t0)
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode != http.StatusNoContent {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				mu.Lock()
				if err != nil && first == nil {
					first = err
				}
				if err == nil {
					res.events += int64(n)
					res.latencies = append(res.latencies, lat)
					gen.acked.Add(int64(n))
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res, first
}

func storedEvents(natsURL string) (int64, error) {
	nc, err := nats.Connect(natsURL)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	s, err := js.Stream(context.Background(), "MLC_GC")
	if err != nil {
		return 0, err
	}
	info, err := s.Info(context.Background())
	if err != nil {
		return 0, err
	}
	return int64(info.State.Msgs), nil
}

// rawPublish measures JetStream alone: asynchronous publishes with message
// ids of size bytes each, into a file-storage stream like MLC_GC.
func rawPublish(natsURL string, size int, d time.Duration) (float64, error) {
	nc, err := nats.Connect(natsURL)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return 0, err
	}
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "RAW_BENCH", Subjects: []string{"raw.bench"},
		Storage: jetstream.FileStorage, Duplicates: 10 * time.Minute}); err != nil {
		return 0, err
	}
	payload := make([]byte, size)
	start := time.Now()
	n := 0
	for time.Since(start) < d {
		if _, err := js.PublishAsync("raw.bench", payload, jetstream.WithMsgID(fmt.Sprint("R", n))); err != nil {
			return 0, err
		}
		n++
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		return 0, errors.New("raw publishes not acknowledged")
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

func scratchDatabase(ctx context.Context, adminURL, name string) (string, func(), error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", nil, fmt.Errorf("postgres: %w", err)
	}
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		conn.Close(ctx)
		return "", nil, err
	}
	u, _ := url.Parse(adminURL)
	u.Path = "/" + name
	return u.String(), func() {
		_, _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)")
		conn.Close(context.Background())
	}, nil
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitReady(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("gc-webhook not ready")
}
