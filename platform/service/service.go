// Package service is the life cycle every ml-connector binary shares: read
// the common settings, set up logging and telemetry, connect to NATS (with
// the streams ensured) and Postgres (with migrations applied), serve
// /healthz, /readyz and /metrics, run the service's workers, and on SIGTERM
// drain: stop taking work, let handlers in flight finish, then close.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"

	"github.com/ml-connector/ml-connector/platform/audit"
	"github.com/ml-connector/ml-connector/platform/bus"
	"github.com/ml-connector/ml-connector/platform/config"
	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/platform/database"
	"github.com/ml-connector/ml-connector/platform/health"
	"github.com/ml-connector/ml-connector/platform/logging"
	"github.com/ml-connector/ml-connector/platform/retry"
	"github.com/ml-connector/ml-connector/platform/secrets"
	"github.com/ml-connector/ml-connector/platform/telemetry"
)

// Config is what Start needs; LoadConfig reads it from the environment.
type Config struct {
	Name    string
	Common  config.Common
	Keys    *secrets.Keyring
	Streams bus.Config
	// Database tunes the Postgres pool (DATABASE_POOL_SIZE, DATABASE_EXEC_MODE).
	Database database.Options
	// DrainTimeout bounds how long shutdown waits for work in flight.
	DrainTimeout time.Duration
	// StartupTimeout bounds how long Start waits for Postgres and NATS
	// to answer before giving up (and the process exits to be restarted).
	StartupTimeout time.Duration
	// MoveDeadLetters runs the dead-letter mover (bus.MoveDeadLetters)
	// beside the workers. Only a service that consumes MLC_ERP or MLC_GC
	// sets it: the advisories are of its consumers, and copying a dead
	// message reads those streams, which no other service's NATS user may
	// (deploy/k8s/base/accounts.conf).
	MoveDeadLetters bool
	// PprofAddr serves Go's profiles on a loopback address when set
	// (DEBUG_PPROF_ADDR); empty, the default, serves none.
	PprofAddr string
}

// Bounds of the settings every service has. A pool below 4 starves the
// advisory-lock holders (each holds a connection of its own); 1,000 is far
// above any max_connections budget.
const (
	MinPoolSize = 4
	MaxPoolSize = 1000
)

// LoadConfig registers and reads the settings every service has, each
// range-checked.
func LoadConfig(env *config.Env, name string) Config {
	defaults := bus.DefaultConfig()
	cfg := Config{
		Name:   name,
		Common: config.LoadCommon(env),
		Keys:   config.LoadKeyring(env),
		Streams: bus.Config{
			// JetStream allows at most 5 replicas.
			Replicas: env.IntRange("NATS_STREAM_REPLICAS", defaults.Replicas, 1, 5,
				"Replicas of every JetStream stream (1 in development, 3 in production)."),
			MaxAge: env.DurationRange("NATS_STREAM_MAX_AGE", defaults.MaxAge, time.Hour, 10*365*24*time.Hour,
				"How long streams keep messages."),
			DuplicateWindow: env.DurationRange("NATS_DUPLICATE_WINDOW", defaults.DuplicateWindow, time.Second, 7*24*time.Hour,
				"Window in which JetStream drops a repeated Nats-Msg-Id (at most NATS_STREAM_MAX_AGE)."),
		},
		Database: database.Options{
			MaxConns: int32(env.IntRange("DATABASE_POOL_SIZE", database.DefaultMaxConns, MinPoolSize, MaxPoolSize,
				"Most Postgres connections this process opens. Replicas x pool size, summed over services,\n"+
					"must stay below the server's max_connections (deploy/README.md, connection budget).")),
		},
		DrainTimeout: env.DurationRange("SHUTDOWN_TIMEOUT", 25*time.Second, time.Second, 10*time.Minute,
			"How long SIGTERM waits for work in flight before closing."),
		StartupTimeout: env.DurationRange("STARTUP_TIMEOUT", 5*time.Minute, time.Second, time.Hour,
			"How long start-up waits, retrying with backoff, for Postgres and NATS to answer before exiting."),
	}
	cfg.PprofAddr = loadPprofAddr(env)
	cfg.Database.SessionURL = env.PostgresURL("DATABASE_SESSION_URL", "",
		"Where advisory locks and migrations connect when DATABASE_URL points at PgBouncer in transaction\n"+
			"mode: Postgres itself, or a session-mode pool. Unset: DATABASE_URL's pool is used.")
	cfg.Database.SessionMaxConns = int32(env.IntRange("DATABASE_SESSION_POOL_SIZE", 4, 1, MaxPoolSize,
		"Pooled connections to DATABASE_SESSION_URL (each advisory lock held takes one of its own)."))
	mode := env.OneOf("DATABASE_EXEC_MODE", "cache_statement",
		"How queries are sent to Postgres. Behind PgBouncer in transaction mode without prepared-statement\n"+
			"support (before 1.21, or max_prepared_statements = 0) use exec.", database.ExecModes...)
	if mode != "" {
		m, err := database.ParseExecMode(mode)
		if err != nil {
			env.Errorf("DATABASE_EXEC_MODE", "%v", err)
		}
		cfg.Database.ExecMode = m
	}
	if cfg.Streams.DuplicateWindow > cfg.Streams.MaxAge {
		env.Errorf("NATS_DUPLICATE_WINDOW", "%s is longer than NATS_STREAM_MAX_AGE %s", cfg.Streams.DuplicateWindow, cfg.Streams.MaxAge)
	}
	return cfg
}

// Service holds the shared dependencies of a running service.
type Service struct {
	Name        string
	Log         *slog.Logger
	Bus         *bus.Bus
	DB          *pgxpool.Pool
	Keys        *secrets.Keyring
	Connections *connections.Store
	Health      *health.Checker

	cfg       Config
	telemetry *telemetry.Telemetry
	nc        *nats.Conn
	listener  net.Listener
	closing   atomic.Bool // set when we close the connections ourselves
	natsDown  sync.Once
	natsDead  chan struct{} // closed when the NATS connection closed by itself
}

// Start connects everything a service needs. The values in redact (usually
// env.Secrets()) are scrubbed from every log line from now on. On error,
// whatever was opened is closed again.
func Start(ctx context.Context, cfg Config, redact ...secrets.Value) (_ *Service, err error) {
	for _, s := range redact {
		logging.Register(s.Reveal())
	}
	log := logging.New(os.Stdout, cfg.Common.LogLevel, cfg.Name)
	slog.SetDefault(log)
	s := &Service{Name: cfg.Name, Log: log, Keys: cfg.Keys, cfg: cfg, Health: health.New(2 * time.Second), natsDead: make(chan struct{})}
	defer func() {
		if err != nil {
			s.close(context.WithoutCancel(ctx))
		}
	}()

	if s.telemetry, err = telemetry.Setup(ctx, cfg.Name, telemetry.Options{}); err != nil {
		return nil, err
	}
	// A first deploy starts everything at once: Postgres and NATS may not
	// answer yet (nor JetStream have the quorum for R3 streams), so each is
	// waited for with backoff rather than exiting into a crash loop.
	startCtx, cancelStart := context.WithTimeout(ctx, cfg.StartupTimeout)
	defer cancelStart()
	if err = waitFor(startCtx, log, "postgres", func(ctx context.Context) error {
		var err error
		s.DB, err = database.OpenWith(ctx, cfg.Common.DatabaseURL.Reveal(), cfg.Database)
		return permanentIfRefused(err)
	}); err != nil {
		return nil, err
	}
	if err = waitFor(startCtx, log, "postgres migrations", func(ctx context.Context) error {
		return database.Migrate(ctx, s.DB)
	}); err != nil {
		return nil, err
	}
	if off, err := database.Unvacuumed(startCtx, s.DB); err != nil {
		log.WarnContext(ctx, "could not read postgres autovacuum settings", "error", err)
	} else if off != "" {
		log.WarnContext(ctx, "postgres never vacuums or analyzes these tables: dead rows of every state change accumulate and the planner has no statistics; "+
			"turn autovacuum on, or run VACUUM ANALYZE on a schedule", "autovacuum", off)
	}
	if err = waitFor(startCtx, log, "nats", func(ctx context.Context) error {
		var err error
		s.nc, err = bus.Connect(ctx, cfg.Common.NATSURL, cfg.Name, log, natsOptions(cfg.Common, s.natsClosed)...)
		return err
	}); err != nil {
		return nil, err
	}
	if s.Bus, err = bus.New(s.nc, cfg.Streams, log); err != nil {
		return nil, err
	}
	if err = waitFor(startCtx, log, "jetstream streams", s.Bus.Ensure); err != nil {
		return nil, err
	}
	if cfg.Keys != nil {
		s.Connections = connections.NewStore(s.DB, cfg.Keys)
		// Audit entries are signed under a key derived from the master
		// key, which the database never holds (see platform/audit).
		audit.SignWith(audit.KeysFrom(cfg.Keys))
	}
	if s.listener, err = net.Listen("tcp", cfg.Common.HTTPAddr); err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.Common.HTTPAddr, err)
	}
	s.Health.Add("nats", s.Bus.Healthy)
	s.Health.Add("postgres", s.DB.Ping)
	// A closed NATS connection never comes back by itself (nats.go closes
	// it for good on some protocol errors, such as a control line too
	// long): liveness fails, and Run stops, so the process is restarted
	// rather than staying alive but useless.
	s.Health.AddLiveness("nats", s.natsAlive)
	return s, nil
}

// startBackoff paces start-up retries: quick at first, then every 10 s.
var startBackoff = retry.Backoff{Base: 250 * time.Millisecond, Max: 10 * time.Second}

// errPermanent marks a start-up failure that waiting cannot cure.
var errPermanent = errors.New("will not retry")

// permanentIfRefused marks Postgres's refusals that no wait cures: the
// credentials (SQLSTATE class 28) or the database name (3D000) are wrong.
func permanentIfRefused(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (strings.HasPrefix(pgErr.Code, "28") || pgErr.Code == "3D000") {
		return fmt.Errorf("%w (%w)", err, errPermanent)
	}
	return err
}

// waitFor calls try until it succeeds, fails with errPermanent, or ctx
// ends, logging each failure, and returns the last error if it gave up.
func waitFor(ctx context.Context, log *slog.Logger, what string, try func(context.Context) error) error {
	for n := 0; ; n++ {
		err := try(ctx)
		if err == nil {
			if n > 0 {
				log.InfoContext(ctx, "dependency ready", "dependency", what, "attempts", n+1)
			}
			return nil
		}
		if errors.Is(err, errPermanent) {
			return fmt.Errorf("%s at start-up: %w", what, err)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s not ready at start-up: %w", what, err)
		}
		delay := startBackoff.Delay(n)
		log.WarnContext(ctx, "dependency not ready, retrying", "dependency", what, "attempt", n+1, "retry_in", delay.String(), "error", err)
		if serr := retry.Sleep(ctx, delay); serr != nil {
			return fmt.Errorf("%s not ready at start-up: %w", what, err)
		}
	}
}

// natsClosed is called by the NATS client when the connection is closed
// for good.
func (s *Service) natsClosed() {
	if s.closing.Load() {
		return
	}
	s.Log.Error("nats connection closed and will not reconnect; the process must restart")
	s.natsDown.Do(func() { close(s.natsDead) })
}

func (s *Service) natsAlive(context.Context) error {
	select {
	case <-s.natsDead:
		return errors.New("nats connection closed")
	default:
		return nil
	}
}

// HTTPAddr is the address /healthz, /readyz and /metrics are served on.
func (s *Service) HTTPAddr() string { return s.listener.Addr().String() }

// Worker is a long-running part of a service, such as a consume loop or a
// poll loop. It runs until its context ends and must then return promptly,
// after finishing the item in hand.
type Worker struct {
	Name string
	Run  func(ctx context.Context) error
}

// Run serves the internal endpoints and runs the workers (and, with
// MoveDeadLetters, the shared dead-letter mover) until ctx ends or a
// worker fails, then drains and closes. It returns the first worker error, or nil after a clean stop.
func (s *Service) Run(ctx context.Context, workers ...Worker) error {
	if s.cfg.PprofAddr != "" {
		ln, err := net.Listen("tcp", s.cfg.PprofAddr)
		if err != nil {
			s.close(ctx)
			return fmt.Errorf("listen DEBUG_PPROF_ADDR %s: %w", s.cfg.PprofAddr, err)
		}
		if a, ok := ln.Addr().(*net.TCPAddr); !ok || !a.IP.IsLoopback() {
			// localhost is a name: the hosts file decides where it listens.
			_ = ln.Close()
			s.close(ctx)
			return fmt.Errorf("DEBUG_PPROF_ADDR %s listens on %v, not a loopback address", s.cfg.PprofAddr, ln.Addr())
		}
		workers = append(workers, pprofWorker(ln))
	}
	srv := &http.Server{Handler: s.Health.Handler(s.telemetry.MetricsHandler()), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(s.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.Log.ErrorContext(ctx, "internal http server stopped", "error", err)
		}
	}()
	if s.cfg.MoveDeadLetters {
		workers = append(workers, Worker{Name: "dead-letter-mover", Run: s.Bus.MoveDeadLetters})
	}

	wctx, stopWorkers := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWorkers()
	failed := make(chan error, len(workers))
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() {
			err := w.Run(wctx)
			if wctx.Err() == nil {
				if err == nil {
					err = errors.New("stopped")
				}
				failed <- fmt.Errorf("worker %s: %w", w.Name, err)
			}
		})
	}
	// The runtime reads GOMEMLIMIT itself (and refuses to start on a
	// malformed one); logging what it took shows whether the deployment
	// set it from the container's limit.
	memLimit := "none"
	if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
		memLimit = fmt.Sprintf("%d MiB", l>>20)
	}
	s.Log.InfoContext(ctx, "service started", "http_addr", s.HTTPAddr(), "workers", len(workers), "memory_limit", memLimit)

	var runErr error
	select {
	case <-ctx.Done():
		s.Log.InfoContext(ctx, "draining")
	case runErr = <-failed:
		// A worker that saw the connection close can report it before
		// the closed handler fires; name the root cause either way.
		if s.nc != nil && s.nc.IsClosed() {
			runErr = fmt.Errorf("nats connection closed: %w", runErr)
		}
		s.Log.ErrorContext(ctx, "worker failed, stopping", "error", runErr)
	case <-s.natsDead:
		runErr = errors.New("nats connection closed")
		s.Log.ErrorContext(ctx, "stopping: nats connection closed for good")
	}
	s.Health.Drain()
	stopWorkers()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(s.cfg.DrainTimeout):
		s.Log.WarnContext(ctx, "drain timed out; unacknowledged messages will be redelivered", "timeout", s.cfg.DrainTimeout.String())
	}

	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	s.close(shutdownCtx)
	s.Log.InfoContext(ctx, "service stopped")
	return runErr
}

// close releases what Start opened, in reverse order.
func (s *Service) close(ctx context.Context) {
	s.closing.Store(true)
	if s.listener != nil {
		_ = s.listener.Close()
	}
	if s.nc != nil {
		// Drain flushes pending publishes and acks before closing; it is
		// asynchronous, so wait for it within ctx.
		if err := s.nc.Drain(); err == nil {
			for !s.nc.IsClosed() && ctx.Err() == nil {
				time.Sleep(10 * time.Millisecond)
			}
		}
		s.nc.Close()
	}
	if s.DB != nil {
		database.Close(s.DB)
	}
	if s.telemetry != nil {
		if err := s.telemetry.Shutdown(ctx); err != nil {
			s.Log.WarnContext(ctx, "telemetry shutdown", "error", err)
		}
	}
}

// natsOptions are the connection options the settings ask for: credentials
// and the CA of the servers' TLS certificates.
func natsOptions(c config.Common, closed func()) []bus.ConnectOption {
	opts := []bus.ConnectOption{bus.OnClosed(closed)}
	if c.NATSUser != "" {
		opts = append(opts, bus.UserPassword(c.NATSUser, c.NATSPassword.Reveal()))
	}
	if c.NATSCAFile != "" {
		opts = append(opts, bus.RootCA(c.NATSCAFile))
	}
	return opts
}
