// Command erp-poster implements the mlc.v1.ErpPoster gRPC service: it writes
// payment, refund and mandate outcomes into IFS Cloud or JD Edwards, once
// per outcome.
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
		fmt.Fprintf(os.Stderr, "erp-poster: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	env := config.FromOS()
	cfg := service.LoadConfig(env, "erp-poster")
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
