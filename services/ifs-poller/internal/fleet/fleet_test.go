package fleet_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"

	"github.com/ml-connector/ml-connector/connectors/ifscloud"
	"github.com/ml-connector/ml-connector/connectors/ifscloud/ifssim"
	"github.com/ml-connector/ml-connector/platform/breaker"
	"github.com/ml-connector/ml-connector/platform/bus"
	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/platform/retry"
	"github.com/ml-connector/ml-connector/platform/secrets"
	"github.com/ml-connector/ml-connector/platform/testsupport"
	"github.com/ml-connector/ml-connector/services/ifs-poller/internal/fleet"
)

type fixture struct {
	t     *testing.T
	sim   *ifssim.Sim
	srv   *httptest.Server
	bus   *bus.Bus
	pool  *pgxpool.Pool
	store *connections.Store
}

func setup(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, sim: ifssim.New(ifssim.Config{Budget: -1})}
	f.srv = httptest.NewServer(f.sim)
	t.Cleanup(f.srv.Close)
	nc := testsupport.StartJetStream(t).Connect()
	b, err := bus.New(nc, bus.DefaultConfig(), quiet())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.bus = b
	f.pool = testsupport.Pool(t)
	keys, err := secrets.NewKeyring([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	f.store = connections.NewStore(f.pool, keys)
	return f
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func (f *fixture) addConnection(name string, companies ...any) {
	f.t.Helper()
	_, err := f.store.Add(context.Background(), connections.New{
		Name: name, Kind: connections.KindIFS, Actor: "test",
		Settings: map[string]any{"base_url": f.srv.URL, "client_id": "mlc", "company_codes": companies,
			"requests_per_minute": float64(600000)},
		Secrets: map[string]secrets.Value{"client_secret": secrets.NewValue("secret")},
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

// userAgent marks a replica's requests so the simulator's log tells them apart.
type userAgent string

func (ua userAgent) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("User-Agent", string(ua))
	return http.DefaultTransport.RoundTrip(r)
}

// replica is one ifs-poller process's fleet.
type replica struct {
	fleet *fleet.Fleet
	stop  context.CancelFunc
	done  chan struct{}
}

var testConfig = fleet.Config{
	Interval: 30 * time.Millisecond, Jitter: 10 * time.Millisecond, Relist: 100 * time.Millisecond,
	LockRetry: 50 * time.Millisecond, StaleAfter: 400 * time.Millisecond, BatchSize: 100,
}

func (f *fixture) start(name string) *replica {
	f.t.Helper()
	fl, err := fleet.New(testConfig, fleet.Deps{
		Registry: f.store, DB: f.pool, Publisher: f.bus, Log: quiet(), Meter: otel.Meter("test"),
		Client: ifscloud.Options{
			HTTPClient: &http.Client{Transport: userAgent(name)},
			Backoff:    retry.Backoff{Base: time.Millisecond, Max: 5 * time.Millisecond, Attempts: 2},
			Breaker:    breaker.Options{Failures: 3, OpenFor: 200 * time.Millisecond},
		},
	})
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{fleet: fl, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		_ = fl.Run(ctx)
	}()
	f.t.Cleanup(r.halt)
	return r
}

func (r *replica) halt() {
	r.stop()
	<-r.done
}

func (f *fixture) count(subject string) uint64 {
	f.t.Helper()
	st, err := f.bus.JetStream().Stream(context.Background(), bus.StreamERP)
	if err != nil {
		f.t.Fatal(err)
	}
	info, err := st.Info(context.Background(), jetstream.WithSubjectFilter(subject))
	if err != nil {
		f.t.Fatal(err)
	}
	return info.State.Subjects[subject]
}

func (f *fixture) waitFor(what string, cond func() bool) {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			f.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (f *fixture) putInvoices(company string, from, to int64) {
	f.t.Helper()
	for id := from; id <= to; id++ {
		err := f.sim.PutInvoices(ifssim.Invoice{Company: company, InvoiceID: id, CustomerID: "C1", Currency: "EUR",
			State: ifssim.StatePostedAuth, GrossAmount: "10.00", OpenAmount: "10.00"})
		if err != nil {
			f.t.Fatal(err)
		}
	}
}

// TestOnePollerPerConnection runs two replicas on one connection: only the
// one holding the lock polls; when it stops, the other takes over, and
// their polling never overlaps.
func TestOnePollerPerConnection(t *testing.T) {
	f := setup(t)
	f.addConnection("ifs-a", "10")
	f.putInvoices("10", 1, 20)

	a := f.start("replica-a")
	f.waitFor("replica a to publish", func() bool { return f.count("mlc.erp.ifs.10.invoice") == 20 })
	b := f.start("replica-b")
	time.Sleep(300 * time.Millisecond) // several intervals, lock retries and relists
	f.putInvoices("10", 21, 25)
	f.waitFor("new invoices", func() bool { return f.count("mlc.erp.ifs.10.invoice") == 25 })
	for _, r := range f.sim.Requests() {
		if r.UserAgent != "replica-a" {
			t.Fatalf("%s polled while replica-a held the connection: %+v", r.UserAgent, r)
		}
	}
	if err := a.fleet.Check(context.Background()); err != nil {
		t.Errorf("active replica not ready: %v", err)
	}
	if err := b.fleet.Check(context.Background()); err != nil {
		t.Errorf("standing-by replica not ready: %v", err)
	}

	a.halt()
	var lastA time.Time
	for _, r := range f.sim.Requests() {
		lastA = r.At
	}
	f.putInvoices("10", 26, 30)
	f.waitFor("replica b to take over", func() bool { return f.count("mlc.erp.ifs.10.invoice") == 30 })
	sawB := false
	for _, r := range f.sim.Requests() {
		switch {
		case r.UserAgent == "replica-b":
			sawB = true
			if r.At.Before(lastA) {
				t.Errorf("replica-b polled at %s, before replica-a's last request at %s", r.At, lastA)
			}
		case r.At.After(lastA):
			t.Errorf("replica-a polled after it stopped: %+v", r)
		}
	}
	if !sawB {
		t.Error("replica-b never polled")
	}
	if got := f.count("mlc.erp.ifs.10.invoice"); got != 30 {
		t.Errorf("stream holds %d invoices, want 30", got)
	}
}

// TestRegistryChangesArePickedUp: a connection added while running is
// polled, and a removed one no longer is.
func TestRegistryChangesArePickedUp(t *testing.T) {
	f := setup(t)
	f.addConnection("ifs-a", "10")
	f.putInvoices("10", 1, 3)
	f.putInvoices("20", 1, 4)
	f.start("replica")
	f.waitFor("company 10", func() bool { return f.count("mlc.erp.ifs.10.invoice") == 3 })

	f.addConnection("ifs-b", "20")
	f.waitFor("the added connection", func() bool { return f.count("mlc.erp.ifs.20.invoice") == 4 })

	if err := f.store.Remove(context.Background(), "ifs-a", "test"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * testConfig.Relist)
	asked := func() int {
		n := 0
		for _, r := range f.sim.Requests() {
			q, _ := url.ParseQuery(r.Query)
			if strings.HasPrefix(q.Get("$filter"), "Company eq '10'") {
				n++
			}
		}
		return n
	}
	before := asked()
	f.putInvoices("10", 4, 4)
	time.Sleep(5 * testConfig.Interval)
	if after := asked(); after != before || f.count("mlc.erp.ifs.10.invoice") != 3 {
		t.Errorf("removed connection still polled: %d → %d queries, %d invoices", before, after, f.count("mlc.erp.ifs.10.invoice"))
	}
}

// TestReadiness: a connection whose polls keep failing makes the replica
// polling it not ready, and it recovers once IFS answers again.
func TestReadiness(t *testing.T) {
	f := setup(t)
	f.addConnection("ifs-a", "10")
	r := f.start("replica")
	f.waitFor("first successful poll", func() bool { return f.sim.Stats().Queries >= 2 })
	if err := r.fleet.Check(context.Background()); err != nil {
		t.Fatalf("not ready while polling fine: %v", err)
	}
	f.sim.FailNext(1<<30, 503)
	f.waitFor("readiness to fail", func() bool {
		err := r.fleet.Check(context.Background())
		return err != nil && strings.Contains(err.Error(), "ifs-a")
	})
	f.sim.FailNext(0, 503)
	f.waitFor("readiness to recover", func() bool { return r.fleet.Check(context.Background()) == nil })
}
