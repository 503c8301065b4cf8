// Package fleet runs a poll loop for every IFS Cloud connection in the
// registry, re-reading the registry periodically so that added, changed and
// removed connections are picked up without a restart. Each loop runs under
// the connection's advisory lock (database.RunExclusive), so of all
// replicas only one polls a connection at a time; the others stand by in
// the lock queue and take over when it stops or its database session dies.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/ml-connector/ml-connector/connectors/ifscloud"
	"github.com/ml-connector/ml-connector/platform/config"
	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/platform/database"
	"github.com/ml-connector/ml-connector/platform/logging"
	"github.com/ml-connector/ml-connector/platform/retry"
	"github.com/ml-connector/ml-connector/platform/secrets"
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

	mu      sync.Mutex
	runners map[string]*runner
	listErr error
}

// New returns a fleet; Run starts it.
func New(cfg Config, deps Deps) (*Fleet, error) {
	if cfg.Interval <= 0 || cfg.Relist <= 0 || cfg.LockRetry <= 0 || cfg.StaleAfter <= 0 || cfg.Jitter < 0 {
		return nil, fmt.Errorf("ifs fleet: intervals must be positive: %+v", cfg)
	}
	m, err := poll.NewMetrics(deps.Meter)
	if err != nil {
		return nil, err
	}
	f := &Fleet{cfg: cfg, deps: deps, metrics: m, runners: map[string]*runner{}}
	_, err = deps.Meter.Float64ObservableGauge("mlc_ifs_poll_lag_seconds",
		metric.WithDescription("seconds since the last successful poll cycle of each IFS connection this replica polls"),
		metric.WithUnit("s"),
		metric.WithFloat64Callback(f.observeLag))
	if err != nil {
		return nil, fmt.Errorf("ifs fleet metrics: %w", err)
	}
	return f, nil
}

// runner is the loop of one connection.
type runner struct {
	conn   connections.Connection
	cancel context.CancelFunc
	done   chan struct{}

	mu          sync.Mutex
	activeSince time.Time // holds the lock since; zero while standing by
	lastSuccess time.Time
	lastErr     error
	client      *ifscloud.Client
}

// fingerprint changes when a connection's settings or secrets change, so
// its loop is restarted with them.
func fingerprint(c connections.Connection) string {
	return fmt.Sprint(c.ID, c.UpdatedAt.UnixNano(), c.Secrets)
}

// Run keeps the loops in line with the registry until ctx ends, then stops
// them and waits for them.
func (f *Fleet) Run(ctx context.Context) error {
	defer f.stopAll()
	for {
		f.sync(ctx)
		if err := retry.Sleep(ctx, f.cfg.Relist); err != nil {
			return nil
		}
	}
}

func (f *Fleet) sync(ctx context.Context) {
	conns, err := f.deps.Registry.ListKind(ctx, connections.KindIFS)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listErr = err
	if err != nil {
		if ctx.Err() == nil {
			f.deps.Log.ErrorContext(ctx, "list ifs connections", "error", err)
		}
		return
	}
	want := map[string]connections.Connection{}
	for _, c := range conns {
		want[c.Name] = c
	}
	for name, r := range f.runners {
		if c, ok := want[name]; !ok || fingerprint(c) != fingerprint(r.conn) {
			f.deps.Log.InfoContext(ctx, "ifs connection removed or changed: stopping its poll loop", "connection", name)
			r.stop()
			delete(f.runners, name)
		}
	}
	for name, c := range want {
		if _, ok := f.runners[name]; ok {
			continue
		}
		rctx, cancel := context.WithCancel(ctx)
		r := &runner{conn: c, cancel: cancel, done: make(chan struct{})}
		f.runners[name] = r
		go f.run(rctx, r)
	}
}

func (r *runner) stop() {
	r.cancel()
	<-r.done
}

func (f *Fleet) stopAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for name, r := range f.runners {
		r.stop()
		delete(f.runners, name)
	}
}

// LockName is the advisory lock a connection is polled under.
func LockName(connection string) string { return "ifs-poller/" + connection }

// run waits for the connection's lock and polls while holding it; after a
// lost lock it queues again.
func (f *Fleet) run(ctx context.Context, r *runner) {
	defer close(r.done)
	for {
		err := database.RunExclusive(ctx, f.deps.DB, LockName(r.conn.Name), f.cfg.LockRetry, func(ctx context.Context) error {
			r.activate(time.Now())
			defer r.deactivate()
			f.deps.Log.InfoContext(ctx, "polling ifs connection", "connection", r.conn.Name)
			f.loop(ctx, r)
			return nil
		})
		if ctx.Err() != nil {
			return
		}
		f.deps.Log.WarnContext(ctx, "ifs poll loop lost its lock; queueing again", "connection", r.conn.Name, "error", err)
		if retry.Sleep(ctx, f.cfg.LockRetry) != nil {
			return
		}
	}
}

// loop polls until ctx ends. Failures do not give up the lock: another
// replica would meet the same IFS, and the next cycle retries.
func (f *Fleet) loop(ctx context.Context, r *runner) {
	var p *poll.Poller
	for {
		var err error
		if p == nil {
			p, err = f.poller(ctx, r)
		}
		if p != nil {
			began := time.Now()
			var st poll.Stats
			st, err = p.Cycle(ctx)
			f.metrics.Cycle(ctx, r.conn.Name, time.Since(began), err)
			if ctx.Err() != nil {
				return
			}
			if err == nil && (st.Published > 0 || st.Duplicates > 0 || st.Rejected > 0) {
				f.deps.Log.InfoContext(ctx, "ifs poll cycle", "connection", r.conn.Name, "published", st.Published,
					"duplicates", st.Duplicates, "rejected", st.Rejected, "pages", st.Pages, "took", time.Since(began).String())
			}
			if errors.Is(err, ifscloud.ErrUnauthorized) {
				p = nil // read the secret again: an operator may have replaced it
			}
		}
		if err != nil {
			f.deps.Log.WarnContext(ctx, "ifs poll cycle failed", "connection", r.conn.Name, "error", err)
			r.fail(err)
		} else {
			r.succeed(time.Now())
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
func (f *Fleet) poller(ctx context.Context, r *runner) (*poll.Poller, error) {
	s, err := ifscloud.ParseSettings(r.conn.Settings)
	if err != nil {
		return nil, err
	}
	secs, err := f.deps.Registry.Secrets(ctx, r.conn.Name)
	if err != nil {
		return nil, err
	}
	secret := secs["client_secret"]
	logging.Register(secret.Reveal())
	client, err := ifscloud.New(r.conn.Name, s, secret, f.deps.Client)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.client = client
	r.mu.Unlock()
	return &poll.Poller{
		ConnectionID: r.conn.ID,
		Connection:   r.conn.Name,
		Companies:    s.CompanyCodes,
		Source:       client,
		Publisher:    f.deps.Publisher,
		Watermarks:   &poll.PollState{DB: f.deps.DB},
		Metrics:      f.metrics,
		Log:          f.deps.Log,
		BatchSize:    f.cfg.BatchSize,
	}, nil
}

func (r *runner) activate(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.activeSince = now
}

func (r *runner) deactivate() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.activeSince = time.Time{}
}

func (r *runner) succeed(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lastSuccess, r.lastErr = now, nil
}

func (r *runner) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lastErr = err
}

// lag is the time since the last successful cycle (or since polling
// began); ok is false while standing by.
func (r *runner) lag(now time.Time) (lag time.Duration, breakerOpen bool, lastErr error, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.activeSince.IsZero() {
		return 0, false, nil, false
	}
	since := r.activeSince
	if r.lastSuccess.After(since) {
		since = r.lastSuccess
	}
	return now.Sub(since), r.client != nil && r.client.BreakerOpen(), r.lastErr, true
}

func (f *Fleet) sorted() []*runner {
	f.mu.Lock()
	defer f.mu.Unlock()
	rs := make([]*runner, 0, len(f.runners))
	for _, r := range f.runners {
		rs = append(rs, r)
	}
	slices.SortFunc(rs, func(a, b *runner) int { return strings.Compare(a.conn.Name, b.conn.Name) })
	return rs
}

// Check is the "ifs" readiness check: the registry could be read, and
// every connection this replica polls has had a successful cycle within
// StaleAfter and its circuit breaker is not open. Connections it stands by
// for are another replica's business.
func (f *Fleet) Check(context.Context) error {
	f.mu.Lock()
	listErr := f.listErr
	f.mu.Unlock()
	var errs []error
	if listErr != nil {
		errs = append(errs, fmt.Errorf("list ifs connections: %w", listErr))
	}
	now := time.Now()
	for _, r := range f.sorted() {
		lag, open, lastErr, ok := r.lag(now)
		switch {
		case !ok:
		case open:
			errs = append(errs, fmt.Errorf("%s: circuit breaker open (last error: %v)", r.conn.Name, lastErr))
		case lag > f.cfg.StaleAfter:
			errs = append(errs, fmt.Errorf("%s: no successful poll for %s (last error: %v)", r.conn.Name, lag.Round(time.Second), lastErr))
		}
	}
	return errors.Join(errs...)
}

func (f *Fleet) observeLag(_ context.Context, o metric.Float64Observer) error {
	now := time.Now()
	for _, r := range f.sorted() {
		if lag, _, _, ok := r.lag(now); ok {
			o.Observe(lag.Seconds(), metric.WithAttributes(attribute.String("connection", r.conn.Name)))
		}
	}
	return nil
}
