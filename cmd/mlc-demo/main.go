// Command mlc-demo runs ml-connector on one machine: an embedded NATS
// JetStream server, a database of its own on the local Postgres, and the
// five services as separate processes wired by their documented settings.
//
// Today it brings the stack up, shows each service's readiness, and stops it
// gracefully; the simulators and the collection pipeline join it as their
// issues land.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "mlc-demo: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("mlc-demo", flag.ContinueOnError)
	exe, _ := os.Executable()
	opts := options{out: os.Stdout}
	fs.StringVar(&opts.binDir, "bin", filepath.Dir(exe), "directory holding the service binaries (make build puts them in bin/)")
	fs.StringVar(&opts.adminURL, "admin-database-url", envOr("MLC_DEMO_ADMIN_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"),
		"Postgres URL used to create the demo's own database")
	fs.StringVar(&opts.database, "database", "mlc_demo", "name of the demo database (dropped and created anew)")
	fs.BoolVar(&opts.check, "check", false, "start, wait until every service is ready, stop gracefully and exit: 0 only if all of it worked")
	fs.DurationVar(&opts.readyTimeout, "ready-timeout", 60*time.Second, "how long services may take to become ready")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return demo(ctx, opts)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
