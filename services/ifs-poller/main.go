// Command ifs-poller reads IFS Cloud customers and invoices ready for collection
// over OData and publishes them on mlc.erp.ifs.<company>.<kind>.
//
// Its settings are environment variables; run it with --help to list them.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/ml-connector/ml-connector/platform/config"
	"github.com/ml-connector/ml-connector/platform/service"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "ifs-poller: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	env := config.FromOS()
	cfg := service.LoadConfig(env, "ifs-poller")
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
	return svc.Run(ctx)
}
