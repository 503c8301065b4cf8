// Command gcsim serves a simulated GoCardless API (package gcsim) for the
// demo and for manual testing: real endpoints, validation, idempotency,
// rate limits, lifecycles on a clock that can run fast or be advanced,
// signed webhooks and fault injection, with a control API under /_sim/.
//
// Its settings are environment variables; run it with --help to list them.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ml-connector/ml-connector/connectors/gocardless/gcsim"
	"github.com/ml-connector/ml-connector/platform/config"
	"github.com/ml-connector/ml-connector/platform/logging"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], config.FromOS(), os.Stdout, nil); err != nil {
		fmt.Fprintf(os.Stderr, "gcsim: %v\n", err)
		os.Exit(1)
	}
}

// run serves until ctx ends. listening, if set, is told the bound address.
func run(ctx context.Context, args []string, env *config.Env, stdout io.Writer, listening func(net.Addr)) error {
	cfg := loadConfig(env)
	if config.HelpRequested(args) {
		fmt.Fprintln(stdout, "gcsim serves a simulated GoCardless API; see the gcsim package documentation.")
		env.Usage(stdout)
		return nil
	}
	if err := env.Err(); err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	for _, s := range env.Secrets() {
		logging.Register(s.Reveal())
	}
	log := logging.New(os.Stderr, cfg.logLevel, "gcsim")
	opts, seed, err := cfg.build(log)
	if err != nil {
		return err
	}
	if err := opts.Validate(); err != nil {
		return err
	}
	sim := gcsim.New(opts)
	defer sim.Close()
	if err := sim.Seed(seed); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("gcsim listening", "addr", ln.Addr().String(), "clock", cfg.clock)
	if listening != nil {
		listening(ln.Addr())
	}
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
