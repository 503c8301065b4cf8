package supervise_test

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ml-connector/ml-connector/connectors/jde"
	"github.com/ml-connector/ml-connector/connectors/jde/jdesim"
	"github.com/ml-connector/ml-connector/platform/breaker"
	"github.com/ml-connector/ml-connector/platform/bus"
	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/platform/retry"
	"github.com/ml-connector/ml-connector/platform/secrets"
	"github.com/ml-connector/ml-connector/platform/testsupport"
	"github.com/ml-connector/ml-connector/platform/testsupport/await"
	"github.com/ml-connector/ml-connector/services/jde-poller/internal/supervise"
)

type world struct {
	t     *testing.T
	sim   *jdesim.Server
	url   string
	pool  *pgxpool.Pool
	bus   *bus.Bus
	store *connections.Store
}

func newWorld(t *testing.T) *world {
	t.Helper()
	sim := jdesim.New(jdesim.Options{Password: "pw-" + t.Name()})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	js := testsupport.StartJetStream(t)
	b, err := bus.New(js.Connect(), bus.DefaultConfig(), quiet())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	key := make([]byte, secrets.KeySize)
	_, _ = rand.Read(key)
	keys, err := secrets.NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	pool := testsupport.Pool(t)
	for _, co := range []string{"00001", "00002"} {
		sim.PutAddressBook(jdesim.AddressBook{AN8: 4001, ALPH: "Acme", AT1: "C"})
		sim.PutCustomerMaster(jdesim.CustomerMaster{AN8: 4001, CO: co, CRCA: "GBP"})
		sim.AddInvoices(jdesim.Invoice{DOC: 1, DCT: "RI", KCO: co, SFX: "001", AN8: 4001, AG: 100, AAP: 100, CRCD: "GBP"})
	}
	return &world{t: t, sim: sim, url: srv.URL, pool: pool, bus: b, store: connections.NewStore(pool, keys)}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func (w *world) addConnection(name string, companies ...any) {
	w.t.Helper()
	_, err := w.store.Add(context.Background(), connections.New{
		Name: name, Kind: connections.KindJDE, Actor: "test",
		Settings: map[string]any{"base_url": w.url, "username": "JDE", "company_codes": companies},
		Secrets:  map[string]secrets.Value{"password": secrets.NewValue("pw-" + w.t.Name())},
	})
	if err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) supervisor() *supervise.Supervisor {
	return supervise.New(supervise.Config{
		Registry: w.store, DB: w.pool, Publisher: w.bus, Log: quiet(),
		Interval: 50 * time.Millisecond, Relist: 50 * time.Millisecond, LockRetry: 50 * time.Millisecond,
		TuneClient: func(c *jde.Config) {
			c.Backoff = retry.Backoff{Base: time.Millisecond, Max: time.Millisecond, Attempts: 2}
			c.Breaker = breaker.Options{OpenFor: 50 * time.Millisecond}
		},
	})
}

// run runs s until the returned stop is called (or the test ends).
func run(t *testing.T, s *supervise.Supervisor) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
	t.Cleanup(stop)
	return stop
}

// subjects counts the messages in MLC_ERP by subject.
func (w *world) subjects() map[string]int {
	w.t.Helper()
	ctx := context.Background()
	s, err := w.bus.JetStream().Stream(ctx, bus.StreamERP)
	if err != nil {
		w.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	out := map[string]int{}
	for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			w.t.Fatal(err)
		}
		out[m.Subject]++
	}
	return out
}

func TestSupervisorFollowsTheRegistry(t *testing.T) {
	w := newWorld(t)
	w.addConnection("jde-a", "00001")
	s := w.supervisor()
	run(t, s)
	await.Until(t, 10*time.Second, "company 00001 is published", func() bool { return w.subjects()["mlc.erp.jde.00001.invoice"] == 1 })
	if err := s.Check(context.Background()); err != nil {
		t.Fatalf("Check = %v", err)
	}
	if got := w.subjects(); got["mlc.erp.jde.00002.invoice"] != 0 {
		t.Fatalf("company 00002 is not configured: %v", got)
	}

	// A settings change restarts the poller with the new settings.
	if _, err := w.pool.Exec(context.Background(),
		`UPDATE connections SET settings = jsonb_set(settings, '{company_codes}', '["00001","00002"]') WHERE name = 'jde-a'`); err != nil {
		t.Fatal(err)
	}
	await.Until(t, 10*time.Second, "company 00002 is published", func() bool { return w.subjects()["mlc.erp.jde.00002.invoice"] == 1 })

	// AIS failing makes the connection not ready, and ready again after.
	w.sim.SetFaults(jdesim.Faults{FailNext: 1 << 30})
	w.sim.Restart()
	await.Until(t, 10*time.Second, "readiness fails", func() bool {
		err := s.Check(context.Background())
		return err != nil && strings.Contains(err.Error(), "jde connection jde-a")
	})
	w.sim.SetFaults(jdesim.Faults{})
	await.Until(t, 10*time.Second, "readiness recovers", func() bool { return s.Check(context.Background()) == nil })

	// A removed connection stops being polled, and its session is logged out.
	if err := w.store.Remove(context.Background(), "jde-a", "test"); err != nil {
		t.Fatal(err)
	}
	await.Until(t, 10*time.Second, "the poller stops", func() bool { return len(s.Active()) == 0 && w.sim.Stats().ActiveSessions == 0 })
	if got := w.subjects(); got["mlc.erp.jde.00001.invoice"] != 1 || got["mlc.erp.jde.00002.invoice"] != 1 {
		t.Fatalf("subjects = %v: each invoice once", got)
	}
}

func TestOneActivePollerPerConnection(t *testing.T) {
	w := newWorld(t)
	w.addConnection("jde-a", "00001")
	a, b := w.supervisor(), w.supervisor()
	stopA := run(t, a)
	stopB := run(t, b)
	await.Until(t, 10*time.Second, "one replica polls", func() bool { return len(a.Active())+len(b.Active()) == 1 })
	for range 10 {
		if n := len(a.Active()) + len(b.Active()); n > 1 {
			t.Fatalf("%d replicas poll the same connection", n)
		}
		if n := w.sim.Stats().ActiveSessions; n > 1 {
			t.Fatalf("%d AIS sessions", n)
		}
		time.Sleep(30 * time.Millisecond)
	}
	standby := b
	if len(a.Active()) == 1 {
		stopA()
	} else {
		stopB()
		standby = a
	}
	await.Until(t, 10*time.Second, "the standby takes over", func() bool { return len(standby.Active()) == 1 })
	if got := w.subjects(); got["mlc.erp.jde.00001.invoice"] != 1 {
		t.Fatalf("subjects = %v", got)
	}
}

func TestBadSettingsAreReported(t *testing.T) {
	w := newWorld(t)
	w.addConnection("jde-bad", "00.1")
	s := w.supervisor()
	run(t, s)
	await.Until(t, 10*time.Second, "readiness names the problem", func() bool {
		err := s.Check(context.Background())
		return err != nil && strings.Contains(err.Error(), "jde-bad") && strings.Contains(err.Error(), "subject token")
	})
	if err := s.Check(context.Background()); strings.Contains(err.Error(), "pw-") {
		t.Fatalf("readiness error shows the password: %v", err)
	}
}
