// Package fleet keeps one worker per registry connection of a kind (the
// ERP pollers' connections): it lists the registry every Relist, starts a
// worker for a new connection, restarts it when the connection's settings
// or secrets change and stops it when the connection is removed. A worker
// runs only while it holds the connection's advisory lock
// (database.RunExclusive), so of all replicas exactly one works on a
// connection at a time; the others stand by in the lock queue and take
// over when it stops or its database session dies. That lock is what keeps
// two replicas from publishing the same ERP rows under different
// watermarks.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/platform/database"
	"github.com/ml-connector/ml-connector/platform/retry"
)

// Registry is the part of the connection registry a fleet lists.
type Registry interface {
	ListKind(ctx context.Context, kind connections.Kind) ([]connections.Connection, error)
}

// Config configures a Fleet.
type Config struct {
	Kind     connections.Kind
	Registry Registry
	DB       *pgxpool.Pool
	// LockPrefix names the advisory locks: LockPrefix + connection name.
	LockPrefix string
	// Relist is how often the registry is listed again.
	Relist time.Duration
	// LockRetry is how often a standing-by replica tries to take over.
	LockRetry time.Duration
	// Backoff is the pause after Work failed before it is tried again.
	Backoff time.Duration
	// Work runs while the connection's lock is held, until ctx ends (the
	// lock lost, the connection changed or removed, shutdown) or it fails.
	Work func(ctx context.Context, w *Worker) error
	// Forget, when set, is called for a connection that was removed.
	Forget func(name string)
	Log    *slog.Logger
}

// Fleet supervises the workers.
type Fleet struct {
	cfg Config

	mu      sync.Mutex
	workers map[string]*Worker
	listErr error
}

// New returns a fleet; Run starts it.
func New(cfg Config) (*Fleet, error) {
	if cfg.Relist <= 0 || cfg.LockRetry <= 0 || cfg.Backoff <= 0 || cfg.Work == nil || cfg.Registry == nil || cfg.LockPrefix == "" {
		return nil, fmt.Errorf("fleet %s: Relist, LockRetry, Backoff, Work, Registry and LockPrefix are required", cfg.Kind)
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Fleet{cfg: cfg, workers: map[string]*Worker{}}, nil
}

// Worker is the state of one connection's worker, reported by Work.
type Worker struct {
	Conn   connections.Connection
	cancel context.CancelFunc
	done   chan struct{}

	mu          sync.Mutex
	activeSince time.Time // holds the lock since; zero while standing by
	lastSuccess time.Time
	lastErr     error
}

// Succeeded records a good cycle.
func (w *Worker) Succeeded(now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lastSuccess, w.lastErr = now, nil
}

// Failed records a failed cycle.
func (w *Worker) Failed(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lastErr = err
}

func (w *Worker) activate(now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.activeSince = now
}

func (w *Worker) deactivate(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.activeSince, w.lastErr = time.Time{}, err
}

// Status is what a worker last reported.
type Status struct {
	Name        string
	Active      bool      // holds the lock
	ActiveSince time.Time // zero while standing by
	LastSuccess time.Time
	LastErr     error // of the last cycle, or of the last setup that failed
}

func (w *Worker) status() Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	return Status{Name: w.Conn.Name, Active: !w.activeSince.IsZero(), ActiveSince: w.activeSince, LastSuccess: w.lastSuccess, LastErr: w.lastErr}
}

// fingerprint changes when a connection's settings or secrets change, so
// its worker is restarted with them.
func fingerprint(c connections.Connection) string {
	return fmt.Sprint(c.ID, c.UpdatedAt.UnixNano(), c.Secrets)
}

// Run keeps the workers in line with the registry until ctx ends, then
// stops them, waits for them and returns nil.
func (f *Fleet) Run(ctx context.Context) error {
	defer f.stopAll()
	for {
		f.sync(ctx)
		if err := retry.Sleep(ctx, f.cfg.Relist); err != nil {
			return nil
		}
	}
}

// sync starts, restarts and stops workers to match the registry. A failed
// listing keeps the workers as they are.
func (f *Fleet) sync(ctx context.Context) {
	conns, err := f.cfg.Registry.ListKind(ctx, f.cfg.Kind)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listErr = err
	if err != nil {
		if ctx.Err() == nil {
			f.cfg.Log.ErrorContext(ctx, "list connections", "kind", f.cfg.Kind, "error", err)
		}
		return
	}
	want := map[string]connections.Connection{}
	for _, c := range conns {
		want[c.Name] = c
	}
	for name, w := range f.workers {
		c, ok := want[name]
		if ok && fingerprint(c) == fingerprint(w.Conn) {
			continue
		}
		f.cfg.Log.InfoContext(ctx, "connection removed or changed: stopping its worker", "kind", f.cfg.Kind, "connection", name)
		w.stop()
		delete(f.workers, name)
		if !ok && f.cfg.Forget != nil {
			f.cfg.Forget(name)
		}
	}
	for name, c := range want {
		if _, ok := f.workers[name]; !ok {
			f.workers[name] = f.start(ctx, c)
		}
	}
}

func (w *Worker) stop() {
	w.cancel()
	<-w.done
}

func (f *Fleet) stopAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for name, w := range f.workers {
		w.stop()
		delete(f.workers, name)
	}
}

// start runs a worker for c: it waits for c's lock, works while holding
// it, and queues again when the lock is lost or Work fails.
func (f *Fleet) start(ctx context.Context, c connections.Connection) *Worker {
	wctx, cancel := context.WithCancel(ctx)
	w := &Worker{Conn: c, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for wctx.Err() == nil {
			err := database.RunExclusive(wctx, f.cfg.DB, f.cfg.LockPrefix+c.Name, f.cfg.LockRetry, func(ctx context.Context) error {
				w.activate(time.Now())
				return f.cfg.Work(ctx, w)
			})
			if wctx.Err() != nil {
				w.deactivate(nil)
				return
			}
			w.deactivate(err)
			if errors.Is(err, database.ErrLockLost) {
				f.cfg.Log.WarnContext(wctx, "worker lost its lock; another replica may take over", "kind", f.cfg.Kind, "connection", c.Name)
				continue
			}
			f.cfg.Log.ErrorContext(wctx, "worker stopped, will start again", "kind", f.cfg.Kind, "connection", c.Name, "error", err)
			_ = retry.Sleep(wctx, f.cfg.Backoff)
		}
	}()
	return w
}

// Statuses are the workers' states, by connection name.
func (f *Fleet) Statuses() []Status {
	f.mu.Lock()
	ws := make([]*Worker, 0, len(f.workers))
	for _, w := range f.workers {
		ws = append(ws, w)
	}
	f.mu.Unlock()
	out := make([]Status, 0, len(ws))
	for _, w := range ws {
		out = append(out, w.status())
	}
	slices.SortFunc(out, func(a, b Status) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// ListErr is the error of the last registry listing, nil if it succeeded.
func (f *Fleet) ListErr() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.listErr
}
