// Command jde-poller reads JD Edwards customers, open invoices and refunds
// through the AIS data service and publishes them on mlc.erp.jde.<company>.<kind>.
//
// Its settings are environment variables; run it with --help to list them.
package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ml-connector/ml-connector/platform/command"
	"github.com/ml-connector/ml-connector/platform/config"
	"github.com/ml-connector/ml-connector/platform/service"
	"github.com/ml-connector/ml-connector/services/jde-poller/internal/poller"
	"github.com/ml-connector/ml-connector/services/jde-poller/internal/supervise"
)

func main() { command.Main("jde-poller", run) }

func run(ctx context.Context, args []string) error {
	env := config.FromOS()
	cfg := service.LoadConfig(env, "jde-poller")
	interval := env.DurationRange("JDE_POLL_INTERVAL", time.Minute, 10*time.Millisecond, 24*time.Hour, "Pause between two poll cycles of a JDE connection.")
	relist := env.DurationRange("JDE_RELIST_INTERVAL", 30*time.Second, 10*time.Millisecond, 24*time.Hour, "How often JDE connections are listed for new, changed and removed ones.")
	lockRetry := env.DurationRange("JDE_LOCK_RETRY", 5*time.Second, 10*time.Millisecond, 10*time.Minute, "How often a standby replica tries to take over a connection.")
	batch := env.IntRange("JDE_PUBLISH_BATCH", 500, 1, 10000, "Messages published and acknowledged before a watermark moves.")
	// The maximum is watermark.MaxOverlap; the default poller.DefaultOverlap.
	overlap := env.DurationRange("JDE_POLL_OVERLAP", time.Minute, time.Second, time.Hour, "How far before its watermark each JDE table is read again, for rows that appear late with an earlier UPMJ/UPMT; re-read rows are published only when their version changed.")
	svc, err := service.Open(ctx, env, cfg, args)
	if err != nil {
		return err
	}
	if svc.Connections == nil {
		return errors.New("the connection registry needs MLC_MASTER_KEY")
	}
	metrics, err := poller.NewMetrics()
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	sup := supervise.New(supervise.Config{
		Registry:  svc.Connections,
		DB:        svc.DB,
		Publisher: svc.Bus,
		Interval:  interval,
		Relist:    relist,
		LockRetry: lockRetry,
		BatchSize: batch,
		Overlap:   overlap,
		Log:       svc.Log,
		Metrics:   metrics,
	})
	svc.Health.Add("jde", sup.Check)
	return svc.Run(ctx, service.Worker{Name: "jde-poller", Run: sup.Run})
}
