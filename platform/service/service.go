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
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"

	"github.com/ml-connector/ml-connector/platform/bus"
	"github.com/ml-connector/ml-connector/platform/config"
	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/platform/database"
	"github.com/ml-connector/ml-connector/platform/health"
	"github.com/ml-connector/ml-connector/platform/logging"
	"github.com/ml-connector/ml-connector/platform/secrets"
	"github.com/ml-connector/ml-connector/platform/telemetry"
)

// Config is what Start needs; LoadConfig reads it from the environment.
type Config struct {
	Name    string
	Common  config.Common
	Keys    *secrets.Keyring
	Streams bus.Config
	// DrainTimeout bounds how long shutdown waits for work in flight.
	DrainTimeout time.Duration
}

// LoadConfig registers and reads the settings every service has.
func LoadConfig(env *config.Env, name string) Config {
	defaults := bus.DefaultConfig()
	return Config{
		Name:   name,
		Common: config.LoadCommon(env),
		Keys:   config.LoadKeyring(env),
		Streams: bus.Config{
			Replicas: env.Int("NATS_STREAM_REPLICAS", defaults.Replicas,
				"Replicas of every JetStream stream (1 in development, 3 in production)."),
			MaxAge: env.Duration("NATS_STREAM_MAX_AGE", defaults.MaxAge,
				"How long streams keep messages."),
			DuplicateWindow: env.Duration("NATS_DUPLICATE_WINDOW", defaults.DuplicateWindow,
				"Window in which JetStream drops a repeated Nats-Msg-Id."),
		},
		DrainTimeout: env.Duration("SHUTDOWN_TIMEOUT", 25*time.Second,
			"How long SIGTERM waits for work in flight before closing."),
	}
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
	s := &Service{Name: cfg.Name, Log: log, Keys: cfg.Keys, cfg: cfg, Health: health.New(2 * time.Second)}
	defer func() {
		if err != nil {
			s.close(context.WithoutCancel(ctx))
		}
	}()

	if s.telemetry, err = telemetry.Setup(ctx, cfg.Name, telemetry.Options{}); err != nil {
		return nil, err
	}
	if s.DB, err = database.Open(ctx, cfg.Common.DatabaseURL.Reveal()); err != nil {
		return nil, err
	}
	if err = database.Migrate(ctx, s.DB); err != nil {
		return nil, err
	}
	if s.nc, err = bus.Connect(ctx, cfg.Common.NATSURL, cfg.Name, log); err != nil {
		return nil, err
	}
	if s.Bus, err = bus.New(s.nc, cfg.Streams, log); err != nil {
		return nil, err
	}
	if err = s.Bus.Ensure(ctx); err != nil {
		return nil, err
	}
	if cfg.Keys != nil {
		s.Connections = connections.NewStore(s.DB, cfg.Keys)
	}
	if s.listener, err = net.Listen("tcp", cfg.Common.HTTPAddr); err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.Common.HTTPAddr, err)
	}
	s.Health.Add("nats", s.Bus.Healthy)
	s.Health.Add("postgres", s.DB.Ping)
	return s, nil
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

// Run serves the internal endpoints and runs the workers (and the shared
// dead-letter mover) until ctx ends or a worker fails, then drains and
// closes. It returns the first worker error, or nil after a clean stop.
func (s *Service) Run(ctx context.Context, workers ...Worker) error {
	srv := &http.Server{Handler: s.Health.Handler(s.telemetry.MetricsHandler()), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(s.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.Log.ErrorContext(ctx, "internal http server stopped", "error", err)
		}
	}()
	workers = append(workers, Worker{Name: "dead-letter-mover", Run: s.Bus.MoveDeadLetters})

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
	s.Log.InfoContext(ctx, "service started", "http_addr", s.HTTPAddr(), "workers", len(workers))

	var runErr error
	select {
	case <-ctx.Done():
		s.Log.InfoContext(ctx, "draining")
	case runErr = <-failed:
		s.Log.ErrorContext(ctx, "worker failed, stopping", "error", runErr)
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
		s.DB.Close()
	}
	if s.telemetry != nil {
		if err := s.telemetry.Shutdown(ctx); err != nil {
			s.Log.WarnContext(ctx, "telemetry shutdown", "error", err)
		}
	}
}
