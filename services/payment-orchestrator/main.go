// Command payment-orchestrator turns ERP events into GoCardless customers,
// mandates, payments, subscriptions and refunds, applies GoCardless events
// to the collections they concern, and has erp-poster write every outcome
// the ERP must know. It also reads GoCardless's GET /events as catch-up for
// webhooks that never arrived, and turns dead letters into exceptions.
//
// # Exactly once
//
// Every effect outside this process (a GoCardless customer, bank account,
// mandate, payment, subscription, refund or payment retry; an outcome
// written into the ERP) is made in three steps. First the intent is
// committed: the ledger records what will be asked, under which
// idempotency key (a collection or refund row in state creating; a lease
// on the aggregate holding the plan, for customers, refunds and operator
// retries; a pending_outcomes row, committed with the state change it
// reports, for the ERP). Then the call is made with no transaction, row
// lock or pooled connection held. Then the result is recorded by a
// transaction that changes anything only if the intent is still current
// (the row still creating, the lease still held by the same holder). The
// keys are functions of the ERP identity and of what step one committed
// alone (mlc:ERP:CONNECTION-ID:COMPANY:INVOICE:payment:ATTEMPT, ...:refund,
// ...:customer, ...:bank:FINGERPRINT, ...:mandate:BANK-ACCOUNT:after:MANDATE;
// GoCardless event ids for outcomes), so a crash anywhere, a redelivery,
// or two replicas with the same message make the same call again, and
// GoCardless (by idempotency key) or erp-poster (by outcome id) answers
// with what it already made. The message is acknowledged only after step
// three commits, so the redelivery after a crash resumes the recorded
// intent rather than deciding afresh. Leases also serialize what must not
// run side by side on one aggregate (two versions of one customer; two
// refunds of one payment, whose running total GoCardless checks) and
// expire, so that a dead holder's work is taken over. To check it against
// the code: every GoCardless create, retry or ErpPoster call is preceded by
// a committed ledger StartCollection, StartRefund, Claim and Intend, or
// QueueOutcome, and none is inside a function given to Ledger.Tx. One
// limit: GoCardless keeps idempotency keys for a bounded time, so an intent
// must be resumed within days, not months; a message is dead-lettered
// (and becomes an exception) long before that.
//
// Its settings are environment variables; run it with --help to list them.
package main

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/platform/audit"
	"github.com/ml-connector/ml-connector/platform/audit/auditkv"
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
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/ratebudget"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/reconcile"
)

func main() { command.Main("payment-orchestrator", run) }

// minMaxDeliver is the fewest deliveries MAX_DELIVER may allow. A message
// that meets a lease whose holder died needs ledger.LeaseDeliveries of
// them to reach the lease's end (5 min at most), and one more lets the
// work it then takes over fail once (a GoCardless 5xx) before the message
// is dead-lettered. With the back-off below (5 s, 30 s, 1 min, 2 min, then
// 5 min) that is 18.5 min of retries for a GoCardless event: one that
// waits for another (a mandate's events for their billing request's
// fulfilled event) outwaits that event's own retries and, at the default
// CATCHUP_INTERVAL, its arrival through the catch-up after a lost webhook.
// An invoice that came before its customer waits 35 min (CUSTOMER_WAIT
// 30 s, doubling). Fewer (the old minimum was 2) dead-letter sound
// messages whenever a replica dies holding a lease.
const minMaxDeliver = ledger.LeaseDeliveries + 1

func run(ctx context.Context, args []string) error {
	env := config.FromOS()
	cfg := service.LoadConfig(env, "payment-orchestrator")
	posterAddr := env.Addr(config.VarERPPosterAddr, config.DefaultERPPosterAddr, "Where erp-poster's gRPC service listens.")
	erpWorkers := env.IntRange("ERP_WORKERS", collect.DefaultWorkers, 1, 512, "ERP events handled concurrently by this replica.")
	gcWorkers := env.IntRange("GC_WORKERS", 16, 1, 512, "GoCardless events handled concurrently by this replica.")
	maxDeliver := env.IntRange("MAX_DELIVER", 20, minMaxDeliver, 100, "Deliveries of a message before it is dead-lettered as an exception.")
	catchUp := env.DurationRange("CATCHUP_INTERVAL", time.Minute, time.Second, 24*time.Hour, "How often GoCardless GET /events is read for events whose webhook was lost.")
	overlap := env.DurationRange("CATCHUP_OVERLAP", 5*time.Minute, 0, 24*time.Hour, "How far before its cursor each catch-up pass re-reads.")
	lookback := env.DurationRange("CATCHUP_LOOKBACK", 24*time.Hour, time.Minute, 90*24*time.Hour, "How far back catch-up starts for a GoCardless connection without a cursor.")
	sweepEvery := env.DurationRange("AWAITING_SWEEP_INTERVAL", time.Minute, 5*time.Second, time.Hour, "How often invoices parked for their customer's mandate authorisation are tried again.")
	customerWait := env.DurationRange("CUSTOMER_WAIT", 30*time.Second, time.Second, 10*time.Minute, "How long an invoice that arrived before its customer's mandate first waits before it is tried again; each further wait doubles, up to 10 min.")
	checkpointEvery := env.DurationRange("AUDIT_CHECKPOINT_INTERVAL", 5*time.Minute, 10*time.Second, 24*time.Hour,
		"How often a signed checkpoint of every audit chain's head is stored in JetStream (manifest in "+auditkv.Bucket+", heads in "+auditkv.ObjectBucket+", each kept 3 times this, at least 30 min), for mlcctl audit verify.")
	payoutItems := env.IntRange("PAYOUT_MAX_ITEMS", reconcile.DefaultMaxPayoutItems, 100, reconcile.DefaultMaxPayoutItems,
		"Items read for one GoCardless payout; a payout with more is not stored but raised as an exception (payout_too_large), as is one with a deposit of more lines or fees than erp-poster takes (20,000 each).")
	payoutFlush := env.DurationRange("PAYOUT_FLUSH_INTERVAL", time.Minute, 5*time.Second, time.Hour,
		"How often payout deposits still queued (erp-poster was still writing them when their event was handled) are posted again.")
	// The max-deliveries advisories are of this service's consumers.
	cfg.MoveDeadLetters = true
	svc, err := service.Open(ctx, env, cfg, args)
	if err != nil {
		return err
	}
	if err := ledger.CheckPool(int(svc.DB.Config().MaxConns), erpWorkers, gcWorkers); err != nil {
		return fmt.Errorf("configuration: %w", err) // the process exits, closing what Start opened
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

	// Like the streams, the buckets are declared through Declare: NATS may
	// be restarting while this process starts.
	var checkpoints *auditkv.Store
	if err := svc.Bus.Declare(ctx, "audit checkpoints "+auditkv.Bucket+" and "+auditkv.ObjectBucket, func(ctx context.Context) (err error) {
		checkpoints, err = auditkv.Open(ctx, svc.Bus.JetStream(), cfg.Streams.Replicas)
		return err
	}); err != nil {
		return err
	}

	// Replicas collecting with one GoCardless token share its rate limit.
	var budgets *ratebudget.Store
	if err := svc.Bus.Declare(ctx, "bucket "+ratebudget.Bucket, func(ctx context.Context) (err error) {
		budgets, err = ratebudget.Open(ctx, svc.Bus.JetStream(), cfg.Streams.Replicas)
		return err
	}); err != nil {
		return err
	}

	led := ledger.New(svc.DB)
	dir := accounts.New(svc.Connections, 30*time.Second, func(name string) []gocardless.Option {
		return []gocardless.Option{gocardless.WithLogger(svc.Log), gocardless.WithBreaker("gocardless/"+name, breaker.Options{}),
			gocardless.WithSharedBudget(budgets.Window)}
	})
	collector := collect.New(led, dir, svc.Log)
	collector.CustomerWait = customerWait
	collector.SweepLease = max(3*sweepEvery, 15*time.Second) // outlasts the pause between one replica's sweeps; a dead sweeper is replaced this soon
	reconciler := reconcile.New(led, dir, mlcv1.NewErpPosterClient(conn), svc.Log)
	reconciler.MaxPayoutItems = payoutItems
	backoff := []time.Duration{5 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute}
	consume := func(name string, spec bus.ConsumerSpec, h bus.Handler) service.Worker {
		spec.MaxDeliver, spec.BackOff = maxDeliver, backoff
		return service.Worker{Name: name, Run: func(ctx context.Context) error { return svc.Bus.Consume(ctx, spec, h) }}
	}
	return svc.Run(ctx,
		consume("erp-events", bus.ConsumerSpec{Stream: bus.StreamERP, Durable: "payment-orchestrator-erp", Workers: erpWorkers}, collector.Handle),
		consume("gocardless-events", bus.ConsumerSpec{Stream: bus.StreamGC, Durable: "payment-orchestrator-gc", Workers: gcWorkers}, reconciler.Handle),
		consume("dead-letters", bus.ConsumerSpec{Stream: bus.StreamDLQ, Durable: "payment-orchestrator-dlq"}, deadletter.Handler{Ledger: led}.Handle),
		service.Worker{Name: "payout-flush", Run: func(ctx context.Context) error { return reconciler.RunPayoutFlush(ctx, payoutFlush) }},
		service.Worker{Name: "awaiting-invoices", Run: func(ctx context.Context) error { return collector.RunSweeps(ctx, sweepEvery) }},
		service.Worker{Name: "audit-checkpoints", Run: func(ctx context.Context) error {
			return auditkv.Run(ctx, svc.DB, audit.KeysFrom(svc.Keys), checkpoints, checkpointEvery, svc.Log)
		}},
		service.Worker{Name: "events-catch-up", Run: (&reconcile.CatchUp{
			Ledger: led, Dir: dir, Bus: svc.Bus, Log: svc.Log, Interval: catchUp, Overlap: overlap, Lookback: lookback,
		}).Run},
	)
}
