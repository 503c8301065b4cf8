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
	s := settings{
		addr:          env.Addr("CONSOLE_ADDR", ":8090", "Listener for the console's pages and JSON API (put TLS in front: its cookies are Secure)."),
		sessionTTL:    env.Duration("CONSOLE_SESSION_TTL", 8*time.Hour, "How long a sign-in lasts (5m to 24h)."),
		loginAttempts: env.Int("CONSOLE_LOGIN_ATTEMPTS", 10, "Failed sign-ins allowed per user name and per client address in CONSOLE_LOGIN_WINDOW (1 to 1000)."),
		loginWindow:   env.Duration("CONSOLE_LOGIN_WINDOW", 15*time.Minute, "Window of CONSOLE_LOGIN_ATTEMPTS (1m to 24h)."),
		refresh:       env.Duration("CONSOLE_OVERVIEW_REFRESH", 15*time.Second, "How often the overview's figures are recounted (1s to 10m)."),
	}
	checkDuration(env, "CONSOLE_SESSION_TTL", s.sessionTTL, 5*time.Minute, 24*time.Hour)
	checkDuration(env, "CONSOLE_LOGIN_WINDOW", s.loginWindow, time.Minute, 24*time.Hour)
	checkDuration(env, "CONSOLE_OVERVIEW_REFRESH", s.refresh, time.Second, 10*time.Minute)
	if s.loginAttempts < 1 || s.loginAttempts > 1000 {
		env.Errorf("CONSOLE_LOGIN_ATTEMPTS", "%d is out of range (1 to 1000)", s.loginAttempts)
	}
	return s
}

func checkDuration(env *config.Env, name string, d, lo, hi time.Duration) {
	if d < lo || d > hi {
		env.Errorf(name, "%s is out of range (%s to %s)", d, lo, hi)
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
