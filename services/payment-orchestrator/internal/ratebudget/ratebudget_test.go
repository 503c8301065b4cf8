package ratebudget_test

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/connectors/gocardless/gcsim"
	"github.com/ml-connector/ml-connector/platform/secrets"
	"github.com/ml-connector/ml-connector/platform/testsupport"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/ratebudget"
)

func open(t *testing.T) *ratebudget.Store {
	t.Helper()
	js, err := jetstream.New(testsupport.StartJetStream(t).Connect())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ratebudget.Open(context.Background(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestWindowIsCompareAndSwap: a store at a stale revision is refused
// without error (the client reads again), whoever stored first wins.
func TestWindowIsCompareAndSwap(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	a, b := s.Window("f1"), s.Window("f1")
	if v, rev, err := a.Load(ctx); v != nil || rev != 0 || err != nil {
		t.Fatalf("empty window: %q %d %v", v, rev, err)
	}
	rev1, ok, err := a.Store(ctx, []byte("one"), 0)
	if !ok || err != nil {
		t.Fatalf("create: %v %v", ok, err)
	}
	if _, ok, err := b.Store(ctx, []byte("two"), 0); ok || err != nil {
		t.Fatalf("a second create: stored %v, %v; want refused without error", ok, err)
	}
	if _, ok, err := b.Store(ctx, []byte("two"), rev1+7); ok || err != nil {
		t.Fatalf("store at a wrong revision: stored %v, %v", ok, err)
	}
	rev2, ok, err := b.Store(ctx, []byte("two"), rev1)
	if !ok || err != nil || rev2 <= rev1 {
		t.Fatalf("store at the current revision: %v %v rev %d", ok, err, rev2)
	}
	if v, rev, err := a.Load(ctx); string(v) != "two" || rev != rev2 || err != nil {
		t.Fatalf("load: %q %d %v", v, rev, err)
	}
	if v, _, _ := s.Window("f2").Load(ctx); v != nil {
		t.Fatalf("another token's window shares the value %q", v)
	}
}

// TestReplicasShareTheTokenThroughJetStream: three clients of one token,
// each with the window from its own connection to JetStream (as three
// replicas), meet no 429 at GoCardless's limit.
func TestReplicasShareTheTokenThroughJetStream(t *testing.T) {
	const token, limit, calls = "live_rate_budget_test_token", 20, 60
	sim := gcsim.NewServer(t, gcsim.Options{Tokens: []string{token}, Seed: 7, RateLimit: limit, RateWindow: 2 * time.Second,
		Creditors: []gcsim.Creditor{gcsim.ApprovedCreditor()}})
	jsrv := testsupport.StartJetStream(t)
	var mu sync.Mutex
	statuses := map[int]int{}
	count := roundTrip(func(r *http.Request) (*http.Response, error) {
		resp, err := http.DefaultTransport.RoundTrip(r)
		if err == nil {
			mu.Lock()
			statuses[resp.StatusCode]++
			mu.Unlock()
		}
		return resp, err
	})
	ctx := context.Background()
	var wg sync.WaitGroup
	work := make(chan int)
	for range 3 {
		js, err := jetstream.New(jsrv.Connect())
		if err != nil {
			t.Fatal(err)
		}
		store, err := ratebudget.Open(ctx, js, 1)
		if err != nil {
			t.Fatal(err)
		}
		gc, err := gocardless.New(sim.URL, secrets.NewValue(token), gocardless.WithTransport(count),
			gocardless.WithLogger(slog.New(slog.DiscardHandler)), gocardless.WithSharedBudget(store.Window))
		if err != nil {
			t.Fatal(err)
		}
		for range 4 {
			wg.Go(func() {
				for range work {
					if _, err := gc.ListCreditors(ctx, gocardless.ListParams{}); err != nil {
						t.Error(err)
					}
				}
			})
		}
	}
	for i := range calls {
		work <- i
	}
	close(work)
	wg.Wait()
	if statuses[http.StatusTooManyRequests] != 0 || statuses[http.StatusOK] != calls {
		t.Errorf("answers %v: want %d 200s and no 429", statuses, calls)
	}
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
