package fleet_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/platform/fleet"
	"github.com/ml-connector/ml-connector/platform/testsupport"
	"github.com/ml-connector/ml-connector/platform/testsupport/await"
)

// registry is a connection list the test edits.
type registry struct {
	mu    sync.Mutex
	conns map[string]connections.Connection
}

func (r *registry) ListKind(_ context.Context, kind connections.Kind) ([]connections.Connection, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []connections.Connection
	for _, c := range r.conns {
		if c.Kind == kind {
			out = append(out, c)
		}
	}
	return out, nil
}

func (r *registry) put(c connections.Connection) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.conns[c.Name] = c
}

func (r *registry) remove(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.conns, name)
}

// workers counts the work running per connection across replicas.
type workers struct {
	mu       sync.Mutex
	running  map[string]int
	maxAtNow int
	starts   map[string]int
	forgot   []string
	fail     atomic.Bool
}

func (w *workers) work(ctx context.Context, wk *fleet.Worker) error {
	name := wk.Conn.Name
	w.mu.Lock()
	w.running[name]++
	w.starts[name]++
	w.maxAtNow = max(w.maxAtNow, w.running[name])
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.running[name]--
		w.mu.Unlock()
	}()
	if w.fail.Load() {
		return errors.New("setup failed")
	}
	wk.Succeeded(time.Now())
	<-ctx.Done()
	return nil
}

func (w *workers) get(f func() int) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return f()
}

// Two replicas on one database: exactly one works on a connection; a
// changed connection's worker is restarted, a removed one's stopped and
// forgotten; a failing Work is recorded and tried again.
func TestFleet(t *testing.T) {
	db := testsupport.Pool(t)
	reg := &registry{conns: map[string]connections.Connection{}}
	reg.put(connections.Connection{ID: 1, Name: "ifs-a", Kind: connections.KindIFS, UpdatedAt: time.Unix(1, 0)})
	reg.put(connections.Connection{ID: 2, Name: "jde-b", Kind: connections.KindJDE, UpdatedAt: time.Unix(1, 0)})
	ws := &workers{running: map[string]int{}, starts: map[string]int{}}
	newFleet := func() *fleet.Fleet {
		f, err := fleet.New(fleet.Config{Kind: connections.KindIFS, Registry: reg, DB: db, LockPrefix: "fleet-test/",
			Relist: 20 * time.Millisecond, LockRetry: 20 * time.Millisecond, Backoff: 20 * time.Millisecond,
			Work: ws.work, Forget: func(name string) { ws.mu.Lock(); ws.forgot = append(ws.forgot, name); ws.mu.Unlock() },
			Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	a, b := newFleet(), newFleet()
	for _, f := range []*fleet.Fleet{a, b} {
		wg.Go(func() { _ = f.Run(ctx) })
	}
	t.Cleanup(func() { cancel(); wg.Wait() })

	active := func() int {
		n := 0
		for _, f := range []*fleet.Fleet{a, b} {
			for _, st := range f.Statuses() {
				if st.Active {
					n++
				}
			}
		}
		return n
	}
	await.Until(t, 10*time.Second, "one replica works on ifs-a", func() bool { return ws.get(func() int { return ws.running["ifs-a"] }) == 1 && active() == 1 })
	if n := ws.get(func() int { return ws.starts["jde-b"] }); n != 0 {
		t.Errorf("a connection of another kind was worked on %d times", n)
	}

	reg.put(connections.Connection{ID: 1, Name: "ifs-a", Kind: connections.KindIFS, UpdatedAt: time.Unix(2, 0)})
	await.Until(t, 10*time.Second, "the changed connection's worker restarted", func() bool {
		return ws.get(func() int { return ws.starts["ifs-a"] }) >= 2 && ws.get(func() int { return ws.running["ifs-a"] }) == 1
	})

	ws.fail.Store(true)
	reg.put(connections.Connection{ID: 1, Name: "ifs-a", Kind: connections.KindIFS, UpdatedAt: time.Unix(3, 0)})
	await.Until(t, 10*time.Second, "the failure recorded and retried", func() bool {
		for _, f := range []*fleet.Fleet{a, b} {
			for _, st := range f.Statuses() {
				if st.LastErr != nil && st.LastErr.Error() == "setup failed" && ws.get(func() int { return ws.starts["ifs-a"] }) >= 5 {
					return true
				}
			}
		}
		return false
	})
	ws.fail.Store(false)

	reg.remove("ifs-a")
	await.Until(t, 10*time.Second, "the removed connection's worker stopped and forgotten", func() bool {
		return ws.get(func() int { return ws.running["ifs-a"] }) == 0 && ws.get(func() int { return len(ws.forgot) }) == 2 &&
			len(a.Statuses())+len(b.Statuses()) == 0
	})
	if m := ws.get(func() int { return ws.maxAtNow }); m != 1 {
		t.Errorf("%d workers ran on one connection at once", m)
	}
}
