// Command console is the AR console: a web page for the people who run
// collections (exceptions to act on, what happened to an invoice, whether
// each connection works, connections to add) and the same routes as JSON
// for scripts. It reads the services' Postgres and acts through the
// orchestrator's operator package, as mlcctl does.
//
// Its settings are environment variables; run it with --help to list them.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/ml-connector/ml-connector/platform/command"
	"github.com/ml-connector/ml-connector/platform/config"
	"github.com/ml-connector/ml-connector/platform/service"
	"github.com/ml-connector/ml-connector/services/console/internal/session"
	"github.com/ml-connector/ml-connector/services/console/internal/views"
	"github.com/ml-connector/ml-connector/services/console/internal/web"
	"github.com/ml-connector/ml-connector/services/console/users"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/operator"
)

func main() { command.Main("console", run) }

// settings are the console's own variables, range-checked.
type settings struct {
	addr          string
	sessionTTL    time.Duration
	loginAttempts int
	loginWindow   time.Duration
	refresh       time.Duration
}

func loadSettings(env *config.Env) settings {
	return settings{
		addr:          env.Addr("CONSOLE_ADDR", ":8090", "Listener for the console's pages and JSON API (put TLS in front: its cookies are Secure)."),
		sessionTTL:    env.DurationRange("CONSOLE_SESSION_TTL", 8*time.Hour, 5*time.Minute, 24*time.Hour, "How long a sign-in lasts."),
		loginAttempts: env.IntRange("CONSOLE_LOGIN_ATTEMPTS", 10, 1, 1000, "Failed sign-ins allowed per user name and per client address in CONSOLE_LOGIN_WINDOW."),
		loginWindow:   env.DurationRange("CONSOLE_LOGIN_WINDOW", 15*time.Minute, time.Minute, 24*time.Hour, "Window of CONSOLE_LOGIN_ATTEMPTS."),
		refresh:       env.DurationRange("CONSOLE_OVERVIEW_REFRESH", 15*time.Second, time.Second, 10*time.Minute, "How often the overview's figures are recounted."),
	}
}

func run(ctx context.Context, args []string) error {
	env := config.FromOS()
	cfg := service.LoadConfig(env, "console")
	s := loadSettings(env)
	if config.HelpRequested(args) {
		env.Usage(os.Stdout)
		return nil
	}
	if err := env.Err(); err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	svc, err := service.Start(ctx, cfg, env.Secrets()...)
	if err != nil {
		return err
	}
	desk := operator.NewDesk(svc.DB, svc.Connections, nil)
	v := views.New(svc.DB, desk)
	overview := views.NewRefresher(v, s.refresh)
	sessions := session.NewStore(svc.DB, s.sessionTTL)
	srv, err := web.New(web.Config{LoginAttempts: s.loginAttempts, LoginWindow: s.loginWindow, Overview: overview},
		svc.Log, svc.DB, users.NewStore(svc.DB), sessions, desk, svc.Connections, v)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.addr, err)
	}
	svc.Log.InfoContext(ctx, "console listening", "addr", ln.Addr().String())
	return svc.Run(ctx,
		service.HTTPServer("console", ln, srv.Handler()),
		service.Worker{Name: "overview", Run: overview.Run},
		service.Worker{Name: "session-sweeper", Run: func(ctx context.Context) error { return sweep(ctx, sessions, svc.Log) }},
	)
}

// sweep deletes expired sessions now and then.
func sweep(ctx context.Context, sessions *session.Store, log *slog.Logger) error {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		if n, err := sessions.Sweep(ctx); err != nil && ctx.Err() == nil {
			log.WarnContext(ctx, "session sweep", "error", err)
		} else if n > 0 {
			log.InfoContext(ctx, "expired sessions deleted", "count", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
