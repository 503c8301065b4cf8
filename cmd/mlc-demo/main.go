// Command mlc-demo runs ml-connector on one machine: an embedded NATS
// JetStream server, a database of its own on the local Postgres, the
// GoCardless, IFS Cloud and JD Edwards simulators seeded with a book of
// customers and invoices, and the five services as separate processes wired
// by their documented settings. It moves GoCardless's clock on so that
// collections complete, shows progress per ERP and company, and ends with a
// reconciliation of the book against what the pipeline did.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/ml-connector/ml-connector/platform/command"
	"github.com/ml-connector/ml-connector/platform/config"
)

func main() { command.Main("mlc-demo", run) }

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("mlc-demo", flag.ContinueOnError)
	exe, _ := os.Executable()
	opts := options{out: os.Stdout}
	fs.StringVar(&opts.binDir, "bin", filepath.Dir(exe), "directory holding the service binaries (make build puts them in bin/)")
	fs.StringVar(&opts.adminURL, "admin-database-url", envOr("MLC_DEMO_ADMIN_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"),
		"Postgres URL used to create the demo's own database")
	fs.StringVar(&opts.database, "database", "mlc_demo", "name of this run's database: dropped and created anew unless another mlc-demo run holds it, in which case this one refuses to start")
	fs.BoolVar(&opts.check, "check", false, "start, wait until every service is ready, stop gracefully and exit: 0 only if all of it worked")
	fs.StringVar(&opts.mandateSetup, "mandate-setup", "billing_request",
		"how customers get mandates: billing_request (the simulator plays the payers: most authorise at once, some late, those without bank details never) or direct")
	fs.IntVar(&opts.invoices, "invoices", 200, "invoices in the seeded book, spread over IFS companies 10 (GBP), 20 (EUR), 30 (SEK) and JDE company 00001 (USD), business units M30 (USD), M40 (CAD), M50 (EUR)")
	fs.BoolVar(&opts.serve, "serve", false, "after the run, keep the stack up (and the console reachable) until interrupted")
	fs.StringVar(&opts.consoleAddr, "console-addr", "", "where the console listens, a loopback address:port (default: a free port on 127.0.0.1); fix it to register the console at an OpenID provider:\n"+
		"the services inherit mlc-demo's environment, so CONSOLE_OIDC_* set there (console --help) reach the console, with\n"+
		"CONSOLE_OIDC_REDIRECT_URL=http://<console-addr>/auth/oidc/callback")
	fs.BoolVar(&opts.untilSettled, "until-settled", false, "run until every invoice reached its expected end state, then stop; exit 0 only if it did, with nothing lost or duplicated")
	fs.DurationVar(&opts.timeout, "timeout", 15*time.Minute, "with --until-settled, give up after this long")
	fs.DurationVar(&opts.day, "day", time.Second, "wall-clock time per simulated GoCardless day (smaller runs the book faster)")
	fs.DurationVar(&opts.readyTimeout, "ready-timeout", 60*time.Second, "how long services may take to become ready")
	fs.Float64Var(&opts.rate, "rate", 0, "raise the book's invoices in the ERPs at this many a second while the pipeline runs (0: all before it starts)")
	var chaos chaosFlag
	fs.Var(&chaos, "chaos", "break things while the book runs (--chaos[=SEED]): SIGKILL every service, restart NATS, cut Postgres off, GoCardless 5xx/429 bursts, webhooks dropped, duplicated and reordered, IFS ETag races, JD Edwards restarts; a bare --chaos picks a seed and prints it")
	fs.IntVar(&opts.chaosWindow, "chaos-window", 0, "with --chaos, ticks (a quarter day each) during which faults happen; 0 scales it with --invoices")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil // the usage was asked for and printed
		}
		return err
	}
	if opts.mandateSetup != "billing_request" && opts.mandateSetup != "direct" {
		return fmt.Errorf("--mandate-setup %q: want billing_request or direct", opts.mandateSetup)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags start with --)", fs.Arg(0))
	}
	if !databaseName.MatchString(opts.database) {
		return fmt.Errorf("--database %q: want 1 to 63 lower-case letters, digits and underscores, starting with a letter or underscore", opts.database)
	}
	if opts.invoices < 0 || opts.invoices > 1_000_000 {
		return fmt.Errorf("--invoices %d: want 0 to 1000000", opts.invoices)
	}
	if opts.rate < 0 || opts.rate > 10_000 {
		return fmt.Errorf("--rate %g: want 0 to 10000 invoices a second", opts.rate)
	}
	if opts.consoleAddr != "" {
		// The demo's console serves its password sign-in over plain http,
		// which is safe only on this machine (in production TLS ends at
		// the ingress in front of it).
		host, port, err := net.SplitHostPort(opts.consoleAddr)
		if err != nil || !config.IsLoopbackHost(host) || port == "" {
			return fmt.Errorf("--console-addr %q: want a loopback address and port, such as 127.0.0.1:8090", opts.consoleAddr)
		}
	}
	if opts.chaosWindow < 0 {
		return fmt.Errorf("--chaos-window %d: want 0 or more", opts.chaosWindow)
	}
	if chaos.on {
		window := opts.chaosWindow
		if window == 0 {
			window = max(40, opts.invoices/25)
		}
		fmt.Fprintf(opts.out, "chaos: seed %d (replay with --chaos=%d), faults during the first %d ticks\n", chaos.seed, chaos.seed, window)
		opts.chaos = chaosFunc(chaosSchedule(chaos.seed, window))
	}
	opts.keyFile = filepath.Join(os.TempDir(), "mlc-demo-"+opts.database+".key")
	return demo(ctx, opts)
}

// databaseName is what --database accepts: a plain Postgres identifier,
// as it also names the run's key file.
var databaseName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
