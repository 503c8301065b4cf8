// Command payment-orchestrator turns ERP events into GoCardless customers,
// mandates, payments, subscriptions and refunds, applies GoCardless events
// to the collections they concern, and has erp-poster write every outcome
// the ERP must know. It also reads GoCardless's GET /events as catch-up for
// webhooks that never arrived, and turns dead letters into exceptions.
//
// Its settings are environment variables; run it with --help to list them.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/platform/breaker"
	"github.com/ml-connector/ml-connector/platform/bus"
	"github.com/ml-connector/ml-connector/platform/command"
	"github.com/ml-connector/ml-connector/platform/config"
	"github.com/ml-connector/ml-connector/platform/service"
	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/accounts"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/collect"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/deadletter"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/ledger"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/reconcile"
)

func main() { command.Main("payment-orchestrator", run) }

func run(ctx context.Context, args []string) error {
	env := config.FromOS()
	cfg := service.LoadConfig(env, "payment-orchestrator")
	posterAddr := env.Addr(config.VarERPPosterAddr, config.DefaultERPPosterAddr, "Where erp-poster's gRPC service listens.")
	erpWorkers := env.IntRange("ERP_WORKERS", collect.DefaultWorkers, 1, 512, "ERP events handled concurrently by this replica.")
	gcWorkers := env.IntRange("GC_WORKERS", 16, 1, 512, "GoCardless events handled concurrently by this replica.")
	maxDeliver := env.IntRange("MAX_DELIVER", 20, 2, 100, "Deliveries of a message before it is dead-lettered as an exception.")
	catchUp := env.DurationRange("CATCHUP_INTERVAL", time.Minute, time.Second, 24*time.Hour, "How often GoCardless GET /events is read for events whose webhook was lost.")
	overlap := env.DurationRange("CATCHUP_OVERLAP", 5*time.Minute, 0, 24*time.Hour, "How far before its cursor each catch-up pass re-reads.")
	lookback := env.DurationRange("CATCHUP_LOOKBACK", 24*time.Hour, time.Minute, 90*24*time.Hour, "How far back catch-up starts for a GoCardless connection without a cursor.")
	customerWait := env.DurationRange("CUSTOMER_WAIT", 30*time.Second, time.Second, 10*time.Minute, "How long an invoice that arrived before its customer's mandate first waits before it is tried again; each further wait doubles, up to 10 min.")
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

	// erp-poster runs several replicas behind a headless Service: resolve
	// them all and spread postings across them.
	conn, err := grpc.NewClient(posterAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingPolicy":"round_robin"}`))
	if err != nil {
		return fmt.Errorf("erp-poster client: %w", err)
	}
	defer conn.Close()

	led := ledger.New(svc.DB)
	dir := accounts.New(svc.Connections, 30*time.Second, func(name string) []gocardless.Option {
		return []gocardless.Option{gocardless.WithLogger(svc.Log), gocardless.WithBreaker("gocardless/"+name, breaker.Options{})}
	})
	collector := collect.New(led, dir, svc.Log)
	collector.CustomerWait = customerWait
	reconciler := reconcile.New(led, dir, mlcv1.NewErpPosterClient(conn), svc.Log)
	backoff := []time.Duration{5 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute}
	consume := func(name string, spec bus.ConsumerSpec, h bus.Handler) service.Worker {
		spec.MaxDeliver, spec.BackOff = maxDeliver, backoff
		return service.Worker{Name: name, Run: func(ctx context.Context) error { return svc.Bus.Consume(ctx, spec, h) }}
	}
	return svc.Run(ctx,
		consume("erp-events", bus.ConsumerSpec{Stream: bus.StreamERP, Durable: "payment-orchestrator-erp", Workers: erpWorkers}, collector.Handle),
		consume("gocardless-events", bus.ConsumerSpec{Stream: bus.StreamGC, Durable: "payment-orchestrator-gc", Workers: gcWorkers}, reconciler.Handle),
		consume("dead-letters", bus.ConsumerSpec{Stream: bus.StreamDLQ, Durable: "payment-orchestrator-dlq"}, deadletter.Handler{Ledger: led}.Handle),
		service.Worker{Name: "events-catch-up", Run: (&reconcile.CatchUp{
			DB: svc.DB, Dir: dir, Bus: svc.Bus, Log: svc.Log, Interval: catchUp, Overlap: overlap, Lookback: lookback,
		}).Run},
	)
}
