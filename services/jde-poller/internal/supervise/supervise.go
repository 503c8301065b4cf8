// Package supervise runs one poller per JD Edwards connection of the
// registry: it lists the connections periodically, starts a worker for each
// new one, restarts it when its settings change and stops it when the
// connection is removed. Each worker polls only while it holds the
// connection's advisory lock, so of all replicas exactly one polls a
// connection at a time.
package supervise

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ml-connector/ml-connector/connectors/jde"
	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/platform/database"
	"github.com/ml-connector/ml-connector/platform/logging"
	"github.com/ml-connector/ml-connector/platform/retry"
	"github.com/ml-connector/ml-connector/platform/secrets"
	"github.com/ml-connector/ml-connector/services/jde-poller/internal/poller"
)

// Registry is the part of the connection registry the supervisor reads.
type Registry interface {
	ListKind(ctx context.Context, kind connections.Kind) ([]connections.Connection, error)
	Secrets(ctx context.Context, name string) (map[string]secrets.Value, error)
}

// Config configures a Supervisor.
type Config struct {
	Registry  Registry
	DB        *pgxpool.Pool
	Publisher poller.Publisher
	// Interval is the pause between two poll cycles of a connection
	// (default 1m).
	Interval time.Duration
	// Relist is how often the registry is listed for new, changed and
	// removed connections (default 30s).
	Relist time.Duration
	// LockRetry is how often a standby replica tries to take over a
	// connection's lock (default 5s).
	LockRetry time.Duration
	BatchSize int
	Log       *slog.Logger
	Metrics   *poller.Metrics
	// TuneClient, when set, adjusts each AIS client's configuration
	// (tests shorten backoff and breaker timings).
	TuneClient func(*jde.Config)
}

// Supervisor runs the workers.
type Supervisor struct {
	cfg Config

	mu      sync.Mutex
	workers map[string]*worker
}

// worker polls one connection.
type worker struct {
	conn   connections.Connection
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	active bool  // holds the lock and polls
	err    error // of the last setup or cycle; nil after a good cycle
}

func (w *worker) set(active bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.active, w.err = active, err
}

// New returns a supervisor.
func New(cfg Config) *Supervisor {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Minute
	}
	if cfg.Relist <= 0 {
		cfg.Relist = 30 * time.Second
	}
	if cfg.LockRetry <= 0 {
		cfg.LockRetry = 5 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Supervisor{cfg: cfg, workers: map[string]*worker{}}
}

// Run keeps a worker per JDE connection until ctx ends, then stops them
// (each logs out of AIS) and returns nil.
func (s *Supervisor) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Relist)
	defer t.Stop()
	for {
		s.sync(ctx)
		select {
		case <-ctx.Done():
			s.stopAll()
			return nil
		case <-t.C:
		}
	}
}

// sync starts, restarts and stops workers to match the registry. A failed
// listing keeps the workers as they are.
func (s *Supervisor) sync(ctx context.Context) {
	conns, err := s.cfg.Registry.ListKind(ctx, connections.KindJDE)
	if err != nil {
		if ctx.Err() == nil {
			s.cfg.Log.ErrorContext(ctx, "list jde connections", "error", err)
		}
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	for _, c := range conns {
		seen[c.Name] = true
		if w, ok := s.workers[c.Name]; ok {
			if w.conn.UpdatedAt.Equal(c.UpdatedAt) && w.conn.ID == c.ID {
				continue
			}
			s.cfg.Log.InfoContext(ctx, "jde connection changed, restarting its poller", "connection", c.Name)
			w.stop()
		}
		s.workers[c.Name] = s.start(ctx, c)
	}
	for name, w := range s.workers {
		if !seen[name] {
			s.cfg.Log.InfoContext(ctx, "jde connection removed, stopping its poller", "connection", name)
			w.stop()
			delete(s.workers, name)
			s.cfg.Metrics.Forget(name)
		}
	}
}

func (w *worker) stop() {
	w.cancel()
	<-w.done
}

func (s *Supervisor) stopAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, w := range s.workers {
		w.stop()
		delete(s.workers, name)
	}
}

// start runs a worker for c: it waits for c's lock, polls while holding
// it, and starts over when the lock is lost or setup fails.
func (s *Supervisor) start(ctx context.Context, c connections.Connection) *worker {
	wctx, cancel := context.WithCancel(ctx)
	w := &worker{conn: c, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for wctx.Err() == nil {
			err := database.RunExclusive(wctx, s.cfg.DB, "jde-poller/"+c.Name, s.cfg.LockRetry, func(ctx context.Context) error {
				return s.poll(ctx, w)
			})
			if wctx.Err() != nil {
				return
			}
			w.set(false, err)
			if errors.Is(err, database.ErrLockLost) {
				s.cfg.Log.WarnContext(wctx, "jde poller lost its lock; another replica may take over", "connection", c.Name)
				continue
			}
			s.cfg.Log.ErrorContext(wctx, "jde poller stopped, will start again", "connection", c.Name, "error", err)
			_ = retry.Sleep(wctx, s.cfg.Interval)
		}
	}()
	return w
}

// poll sets up the AIS client and poller of w's connection and runs a
// cycle every Interval until ctx ends. The session is logged out on return.
func (s *Supervisor) poll(ctx context.Context, w *worker) error {
	c := w.conn
	settings, err := jde.ParseSettings(c.Settings)
	if err != nil {
		return fmt.Errorf("connection %s: %w", c.Name, err)
	}
	secretValues, err := s.cfg.Registry.Secrets(ctx, c.Name)
	if err != nil {
		return err
	}
	password := secretValues["password"]
	if password.Empty() {
		return fmt.Errorf("connection %s: secret password is missing", c.Name)
	}
	logging.Register(password.Reveal())
	ccfg := settings.ClientConfig(c.Name, password)
	ccfg.Log = s.cfg.Log
	if s.cfg.TuneClient != nil {
		s.cfg.TuneClient(&ccfg)
	}
	client, err := jde.New(ccfg)
	if err != nil {
		return err
	}
	defer client.Close(ctx)
	p, err := poller.New(poller.Config{
		ConnectionID:   c.ID,
		ConnectionName: c.Name,
		Settings:       settings,
		Source:         client,
		Publisher:      s.cfg.Publisher,
		DB:             s.cfg.DB,
		BatchSize:      s.cfg.BatchSize,
		Log:            s.cfg.Log,
		Metrics:        s.cfg.Metrics,
	})
	if err != nil {
		return err
	}
	s.cfg.Log.InfoContext(ctx, "jde poller active", "connection", c.Name, "companies", settings.Companies)
	for {
		res, err := p.Cycle(ctx)
		if ctx.Err() != nil {
			return nil
		}
		w.set(true, err)
		if err != nil {
			s.cfg.Log.ErrorContext(ctx, "jde poll cycle failed", "connection", c.Name, "error", err)
		} else if res != (poller.Result{}) {
			s.cfg.Log.InfoContext(ctx, "jde poll cycle", "connection", c.Name, "customers", res.Customers,
				"invoices", res.Invoices, "refunds", res.Refunds, "rejected", res.Rejected)
		}
		if retry.Sleep(ctx, s.cfg.Interval) != nil {
			return nil
		}
	}
}

// Check is the readiness check of the JDE connections: it fails while a
// connection this replica is responsible for cannot be polled (bad
// settings, AIS down or refusing the credentials). Connections another
// replica polls do not count.
func (s *Supervisor) Check(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.workers))
	for name := range s.workers {
		names = append(names, name)
	}
	sort.Strings(names)
	var errs []error
	for _, name := range names {
		w := s.workers[name]
		w.mu.Lock()
		if w.err != nil {
			errs = append(errs, fmt.Errorf("jde connection %s: %w", name, w.err))
		}
		w.mu.Unlock()
	}
	return errors.Join(errs...)
}

// Active returns the names of the connections this replica polls now.
func (s *Supervisor) Active() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for name, w := range s.workers {
		w.mu.Lock()
		if w.active {
			out = append(out, name)
		}
		w.mu.Unlock()
	}
	sort.Strings(out)
	return out
}
