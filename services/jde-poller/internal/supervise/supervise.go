// Package supervise runs one poller per JD Edwards connection of the
// registry, through platform/fleet: a worker per connection, restarted when
// its settings change, stopped when it is removed, polling only while it
// holds the connection's advisory lock, so of all replicas exactly one
// polls a connection at a time.
package supervise

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ml-connector/ml-connector/connectors/jde"
	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/platform/fleet"
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
	// Overlap is how far before its watermark each table is read again
	// (default poller.DefaultOverlap).
	Overlap time.Duration
	Log     *slog.Logger
	Metrics *poller.Metrics
	// TuneClient, when set, adjusts each AIS client's configuration
	// (tests shorten backoff and breaker timings).
	TuneClient func(*jde.Config)
}

// Supervisor runs the workers.
type Supervisor struct {
	cfg   Config
	fleet *fleet.Fleet
	err   error // of the fleet's configuration, returned by Run
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
	s := &Supervisor{cfg: cfg}
	var registry fleet.Registry
	if cfg.Registry != nil {
		registry = cfg.Registry
	}
	s.fleet, s.err = fleet.New(fleet.Config{
		Kind: connections.KindJDE, Registry: registry, DB: cfg.DB, LockPrefix: "jde-poller/",
		Relist: cfg.Relist, LockRetry: cfg.LockRetry, Backoff: cfg.Interval,
		Work: s.poll, Forget: cfg.Metrics.Forget, Log: cfg.Log,
	})
	return s
}

// Run keeps a worker per JDE connection until ctx ends, then stops them
// (each logs out of AIS) and returns nil.
func (s *Supervisor) Run(ctx context.Context) error {
	if s.err != nil {
		return s.err
	}
	return s.fleet.Run(ctx)
}

// poll sets up the AIS client and poller of w's connection and runs a
// cycle every Interval until ctx ends. The session is logged out on return.
func (s *Supervisor) poll(ctx context.Context, w *fleet.Worker) error {
	c := w.Conn
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
		Overlap:        s.cfg.Overlap,
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
		if err != nil {
			w.Failed(err)
			s.cfg.Log.ErrorContext(ctx, "jde poll cycle failed", "connection", c.Name, "error", err)
		} else {
			w.Succeeded(time.Now())
		}
		if err == nil && res != (poller.Result{}) {
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
	if s.err != nil {
		return s.err
	}
	var errs []error
	for _, st := range s.fleet.Statuses() {
		if st.LastErr != nil {
			errs = append(errs, fmt.Errorf("jde connection %s: %w", st.Name, st.LastErr))
		}
	}
	return errors.Join(errs...)
}

// Active returns the names of the connections this replica polls now.
func (s *Supervisor) Active() []string {
	if s.err != nil {
		return nil
	}
	var out []string
	for _, st := range s.fleet.Statuses() {
		if st.Active {
			out = append(out, st.Name)
		}
	}
	return out
}
