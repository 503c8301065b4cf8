// Command ifssim serves the IFS Cloud simulator (package ifssim) over HTTP
// for the demo and manual testing: the IAM token endpoint, the OData
// projections ml-connector uses, and the control API under /_sim/.
//
// Its settings are environment variables; run it with --help to list them.
package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/ml-connector/ml-connector/platform/command"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/ml-connector/ml-connector/connectors/ifscloud/ifssim"
	"github.com/ml-connector/ml-connector/platform/config"
)

func main() { command.Main("ifssim", run) }

func run(ctx context.Context, args []string) error {
	env := config.FromOS()
	addr := env.Addr("IFSSIM_ADDR", "127.0.0.1:8091", "Listen address of the simulator.")
	secret := env.Secret("IFSSIM_CLIENT_SECRET", `Client secret the token endpoint accepts (default "secret").`)
	cfg := ifssim.Config{
		Realm:        env.String("IFSSIM_REALM", "ifs", "IAM realm of the token endpoint."),
		ClientID:     env.String("IFSSIM_CLIENT_ID", "mlc", "Client id the token endpoint accepts."),
		ClientSecret: secret.Reveal(),
		TokenTTL:     env.DurationRange("IFSSIM_TOKEN_TTL", time.Hour, time.Second, 24*time.Hour, "Lifetime (expires_in) of issued access tokens."),
		PageSize:     env.IntRange("IFSSIM_PAGE_SIZE", 5000, 1, 100_000, "Server page size: rows per answer before a $skiptoken next link."),
		Budget:       env.IntRange("IFSSIM_BUDGET", 1000, -1, 10_000_000, "API requests served per budget window before 429 (-1: unlimited)."),
		BudgetWindow: env.DurationRange("IFSSIM_BUDGET_WINDOW", time.Minute, time.Second, 24*time.Hour, "Length of the request budget window."),
		RefuseObjstateFilter: env.Bool("IFSSIM_REFUSE_OBJSTATE_FILTER", false,
			"Answer 400 to a $filter on Objstate, as some IFS releases do."),
		NextLinkBase: env.String("IFSSIM_NEXTLINK_BASE", "",
			"Scheme, host and path root @odata.nextLink names instead of the request's (an internal host behind a proxy)."),
	}
	seed := ifssim.Seed{
		Companies: env.List("IFSSIM_SEED_COMPANIES", "10,20,30", "Companies to generate data for (empty: none)."),
		Customers: env.IntRange("IFSSIM_SEED_CUSTOMERS", 20, 0, 100_000, "Customers generated per company."),
		Invoices:  env.IntRange("IFSSIM_SEED_INVOICES", 100, 0, 1_000_000, "Invoices generated per company."),
	}
	if config.HelpRequested(args) {
		env.Usage(os.Stdout)
		return nil
	}
	if err := env.Err(); err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}

	sim := ifssim.New(cfg)
	if len(seed.Companies) > 0 {
		if err := sim.Seed(seed); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	slog.Info("ifssim listening", "addr", ln.Addr().String(), "realm", sim.Config().Realm,
		"companies", seed.Companies, "invoices_per_company", seed.Invoices)

	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
