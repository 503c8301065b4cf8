// Command ifs-poller reads IFS Cloud customers and invoices ready for collection
// over OData and publishes them on mlc.erp.ifs.<company>.<kind>.
//
// Every IFS connection in the registry is polled by exactly one replica at a
// time; the others stand by. Per-connection settings (projections, field
// names, the "ready for collection" filter, page size, request budget) live
// in the connection's settings, see package ifscloud.
//
// Its settings are environment variables; run it with --help to list them.
package main

import (
	"context"

	"go.opentelemetry.io/otel"

	"github.com/ml-connector/ml-connector/platform/command"
	"github.com/ml-connector/ml-connector/platform/config"
	"github.com/ml-connector/ml-connector/platform/service"
	"github.com/ml-connector/ml-connector/services/ifs-poller/internal/fleet"
)

func main() { command.Main("ifs-poller", run) }

func run(ctx context.Context, args []string) error {
	env := config.FromOS()
	cfg := service.LoadConfig(env, "ifs-poller")
	fc := fleet.LoadConfig(env)
	svc, err := service.Open(ctx, env, cfg, args)
	if err != nil {
		return err
	}
	f, err := fleet.New(fc, fleet.Deps{
		Registry:  svc.Connections,
		DB:        svc.DB,
		Publisher: svc.Bus,
		Log:       svc.Log,
		Meter:     otel.Meter("github.com/ml-connector/ml-connector/services/ifs-poller"),
	})
	if err != nil {
		return err
	}
	svc.Health.Add("ifs", f.Check)
	return svc.Run(ctx, service.Worker{Name: "ifs-fleet", Run: f.Run})
}
