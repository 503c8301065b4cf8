// Package fleet runs a poll loop for every IFS Cloud connection in the
// registry through platform/fleet, which re-reads the registry so that
// added, changed and removed connections are picked up without a restart
// and runs each loop under the connection's advisory lock, so of all
// replicas only one polls a connection at a time; the others stand by in
// the lock queue and take over when it stops or its database session dies.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/ml-connector/ml-connector/connectors/ifscloud"
	"github.com/ml-connector/ml-connector/platform/config"
	"github.com/ml-connector/ml-connector/platform/connections"
	supervisor "github.com/ml-connector/ml-connector/platform/fleet"
	"github.com/ml-connector/ml-connector/platform/logging"
	"github.com/ml-connector/ml-connector/platform/retry"
	"github.com/ml-connector/ml-connector/platform/secrets"
	"github.com/ml-connector/ml-connector/platform/watermark"
	"github.com/ml-connector/ml-connector/services/ifs-poller/internal/poll"
)

// Config tunes the fleet.
type Config struct {
	// Interval is the pause between two cycles of a connection, plus a
	// random Jitter so that connections (and tenants) do not fall in step.
	Interval time.Duration
	Jitter   time.Duration
	// Relist is how often the registry is read again.
	Relist time.Duration
	// LockRetry is how often a standing-by replica tries to take over.
	LockRetry time.Duration
	// StaleAfter makes readiness fail when a connection this replica polls
	// has not completed a cycle successfully for that long.
	StaleAfter time.Duration
	// BatchSize bounds the messages in flight to JetStream.
	BatchSize int
	// Overlap is how far before its watermark each entity is read again,
	// for rows that appear late with an earlier modified time (0 means 1m;
	// at most watermark.MaxOverlap).
	Overlap time.Duration
}

// LoadConfig registers the fleet's settings with env and reads them;
// problems are recorded in env.
func LoadConfig(env *config.Env) Config {
	c := Config{
		Interval:   env.DurationRange("IFS_POLL_INTERVAL", time.Minute, 10*time.Millisecond, 24*time.Hour, "Pause between two poll cycles of a connection."),
		Jitter:     env.DurationRange("IFS_POLL_JITTER", 10*time.Second, 0, time.Hour, "Random extra pause, up to this, added to each interval."),
		Relist:     env.DurationRange("IFS_RELIST_INTERVAL", time.Minute, 10*time.Millisecond, 24*time.Hour, "How often the connection registry is read again for added, changed or removed IFS connections."),
		LockRetry:  env.DurationRange("IFS_LOCK_RETRY", 5*time.Second, 10*time.Millisecond, 10*time.Minute, "How often a standing-by replica tries to take over a connection."),
		StaleAfter: env.DurationRange("IFS_STALE_AFTER", 10*time.Minute, time.Minute, 7*24*time.Hour, "Readiness fails when a connection this replica polls has had no successful cycle for this long."),
		BatchSize:  env.IntRange("IFS_PUBLISH_BATCH", 1000, 1, 10000, "Messages in flight to JetStream at once."),
		// The maximum is watermark.MaxOverlap.
		Overlap: env.DurationRange("IFS_POLL_OVERLAP", time.Minute, time.Second, time.Hour, "How far before its watermark each IFS entity set is read again, for rows that appear late with an earlier modified time; re-read rows are published only when their ETag changed."),
	}
	return c
}

// Registry is the part of the connection registry the fleet reads.
type Registry interface {
	ListKind(ctx context.Context, kind connections.Kind) ([]connections.Connection, error)
	Secrets(ctx context.Context, name string) (map[string]secrets.Value, error)
}

// Deps are what the fleet works with.
type Deps struct {
	Registry  Registry
	DB        *pgxpool.Pool
	Publisher poll.Publisher
	Log       *slog.Logger
	Meter     metric.Meter
	// Client tunes every IFS client (tests pass an HTTP client).
	Client ifscloud.Options
}

// Fleet supervises the poll loops.
type Fleet struct {
	cfg     Config
	deps    Deps
	metrics *poll.Metrics
	marks   *poll.PollState
	loops   *supervisor.Fleet
	// clients are the connections' current IFS clients, whose circuit
	// breakers readiness reports.
	clients sync.Map
}

// New returns a fleet; Run starts it.
func New(cfg Config, deps Deps) (*Fleet, error) {
	if cfg.Interval <= 0 || cfg.Relist <= 0 || cfg.LockRetry <= 0 || cfg.StaleAfter <= 0 || cfg.Jitter < 0 {
		return nil, fmt.Errorf("ifs fleet: intervals must be positive: %+v", cfg)
	}
	if cfg.Overlap == 0 {
		cfg.Overlap = time.Minute
	}
	marks, err := watermark.New(deps.DB, cfg.Overlap)
	if err != nil {
		return nil, fmt.Errorf("ifs fleet: %w", err)
	}
	m, err := poll.NewMetrics(deps.Meter)
	if err != nil {
		return nil, err
	}
	f := &Fleet{cfg: cfg, deps: deps, metrics: m, marks: &poll.PollState{Marks: marks}}
	var registry supervisor.Registry
	if deps.Registry != nil {
		registry = deps.Registry
	}
	f.loops, err = supervisor.New(supervisor.Config{
		Kind: connections.KindIFS, Registry: registry, DB: deps.DB, LockPrefix: lockPrefix,
		Relist: cfg.Relist, LockRetry: cfg.LockRetry, Backoff: cfg.LockRetry,
		Work: func(ctx context.Context, w *supervisor.Worker) error {
			f.clients.Delete(w.Conn.Name)
			f.deps.Log.InfoContext(ctx, "polling ifs connection", "connection", w.Conn.Name)
			f.loop(ctx, w)
			return nil
		},
		Forget: func(name string) { f.clients.Delete(name) },
		Log:    deps.Log,
	})
	if err != nil {
		return nil, err
	}
	_, err = deps.Meter.Float64ObservableGauge("mlc_ifs_poll_lag_seconds",
		metric.WithDescription("seconds since the last successful poll cycle of each IFS connection this replica polls"),
		metric.WithUnit("s"),
		metric.WithFloat64Callback(f.observeLag))
	if err != nil {
		return nil, fmt.Errorf("ifs fleet metrics: %w", err)
	}
	return f, nil
}

// Run keeps the loops in line with the registry until ctx ends, then stops
// them and waits for them.
func (f *Fleet) Run(ctx context.Context) error { return f.loops.Run(ctx) }

const lockPrefix = "ifs-poller/"

// LockName is the advisory lock a connection is polled under.
func LockName(connection string) string { return lockPrefix + connection }

// loop polls until ctx ends. Failures do not give up the lock: another
// replica would meet the same IFS, and the next cycle retries.
func (f *Fleet) loop(ctx context.Context, w *supervisor.Worker) {
	var p *poll.Poller
	for {
		var err error
		if p == nil {
			p, err = f.poller(ctx, w.Conn)
		}
		if p != nil {
			began := time.Now()
			var st poll.Stats
			st, err = p.Cycle(ctx)
			f.metrics.Cycle(ctx, w.Conn.Name, time.Since(began), err)
			if ctx.Err() != nil {
				return
			}
			if err == nil && (st.Published > 0 || st.Duplicates > 0 || st.Rejected > 0) {
				f.deps.Log.InfoContext(ctx, "ifs poll cycle", "connection", w.Conn.Name, "published", st.Published,
					"duplicates", st.Duplicates, "rejected", st.Rejected, "pages", st.Pages, "took", time.Since(began).String())
			}
			if errors.Is(err, ifscloud.ErrUnauthorized) {
				p = nil // read the secret again: an operator may have replaced it
			}
		}
		if err != nil {
			f.deps.Log.WarnContext(ctx, "ifs poll cycle failed", "connection", w.Conn.Name, "error", err)
			w.Failed(err)
		} else {
			w.Succeeded(time.Now())
		}
		wait := f.cfg.Interval
		if f.cfg.Jitter > 0 {
			wait += rand.N(f.cfg.Jitter)
		}
		if retry.Sleep(ctx, wait) != nil {
			return
		}
	}
}

// poller builds the poller of a connection with its decrypted secret.
func (f *Fleet) poller(ctx context.Context, conn connections.Connection) (*poll.Poller, error) {
	s, err := ifscloud.ParseSettings(conn.Settings)
	if err != nil {
		return nil, err
	}
	secs, err := f.deps.Registry.Secrets(ctx, conn.Name)
	if err != nil {
		return nil, err
	}
	secret := secs["client_secret"]
	logging.Register(secret.Reveal())
	client, err := ifscloud.New(conn.Name, s, secret, f.deps.Client)
	if err != nil {
		return nil, err
	}
	f.clients.Store(conn.Name, client)
	return &poll.Poller{
		ConnectionID: conn.ID,
		Connection:   conn.Name,
		Companies:    s.CompanyCodes,
		Source:       client,
		Publisher:    f.deps.Publisher,
		Watermarks:   f.marks,
		Metrics:      f.metrics,
		Log:          f.deps.Log,
		BatchSize:    f.cfg.BatchSize,
	}, nil
}

// lag is the time since the last successful cycle (or since polling
// began); ok is false while standing by.
func lag(st supervisor.Status, now time.Time) (time.Duration, bool) {
	if !st.Active {
		return 0, false
	}
	since := st.ActiveSince
	if st.LastSuccess.After(since) {
		since = st.LastSuccess
	}
	return now.Sub(since), true
}

func (f *Fleet) breakerOpen(name string) bool {
	c, ok := f.clients.Load(name)
	return ok && c.(*ifscloud.Client).BreakerOpen()
}

// Check is the "ifs" readiness check: the registry could be read, and
// every connection this replica polls has had a successful cycle within
// StaleAfter and its circuit breaker is not open. Connections it stands by
// for are another replica's business.
func (f *Fleet) Check(context.Context) error {
	var errs []error
	if err := f.loops.ListErr(); err != nil {
		errs = append(errs, fmt.Errorf("list ifs connections: %w", err))
	}
	now := time.Now()
	for _, st := range f.loops.Statuses() {
		l, ok := lag(st, now)
		switch {
		case !ok:
		case f.breakerOpen(st.Name):
			errs = append(errs, fmt.Errorf("%s: circuit breaker open (last error: %v)", st.Name, st.LastErr))
		case l > f.cfg.StaleAfter:
			errs = append(errs, fmt.Errorf("%s: no successful poll for %s (last error: %v)", st.Name, l.Round(time.Second), st.LastErr))
		}
	}
	return errors.Join(errs...)
}

func (f *Fleet) observeLag(_ context.Context, o metric.Float64Observer) error {
	now := time.Now()
	for _, st := range f.loops.Statuses() {
		if l, ok := lag(st, now); ok {
			o.Observe(l.Seconds(), metric.WithAttributes(attribute.String("connection", st.Name)))
		}
	}
	return nil
}
