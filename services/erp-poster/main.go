// Command erp-poster implements the mlc.v1.ErpPoster gRPC service: it writes
// payment, refund and mandate outcomes, and GoCardless payouts, into IFS
// Cloud or JD Edwards, once per outcome (payout) id.
//
// Its settings are environment variables; run it with --help to list them.
package main

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/ml-connector/ml-connector/platform/command"
	"github.com/ml-connector/ml-connector/platform/config"
	"github.com/ml-connector/ml-connector/platform/service"
	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
	"github.com/ml-connector/ml-connector/services/erp-poster/internal/poster"
)

func main() { command.Main("erp-poster", run) }

func run(ctx context.Context, args []string) error {
	env := config.FromOS()
	cfg := service.LoadConfig(env, "erp-poster")
	grpcAddr := env.Addr(config.VarGRPCAddr, config.DefaultGRPCAddr, "gRPC listener of mlc.v1.ErpPoster and grpc.health.v1.")
	refresh := env.DurationRange("CONNECTION_REFRESH", 30*time.Second, time.Second, time.Hour, "How often a connection's settings are re-read from the registry.")
	rebalance := poster.Rebalance{
		MaxAge: env.DurationRange("GRPC_MAX_CONNECTION_AGE", 5*time.Minute, 10*time.Second, 24*time.Hour,
			"How long a client connection lives before the server asks it to reconnect, so that clients\n"+
				"re-resolve the headless Service and spread calls onto pods added since."),
		Grace: env.DurationRange("GRPC_MAX_CONNECTION_AGE_GRACE", 30*time.Second, time.Second, 10*time.Minute,
			"How long calls in flight on a connection past GRPC_MAX_CONNECTION_AGE get to finish."),
	}
	filesDir := env.String("ERP_FILES_DIR", "", "Directory (a volume shared by every replica and read by the ERP, deploy/k8s/components/erp-files) that\n"+
		"IFS connections with writeback camt054 must keep their camt054_dir under; empty: any absolute directory.")
	if filesDir != "" && !filepath.IsAbs(filesDir) {
		env.Errorf("ERP_FILES_DIR", "%q is not an absolute directory", filesDir)
	}
	svc, err := service.Open(ctx, env, cfg, args)
	if err != nil {
		return err
	}
	// A connection with bad settings is reported, not fatal: the others
	// keep posting, its postings fail with FAILED_PRECONDITION until fixed.
	if err := poster.CheckSettings(ctx, svc.Connections); err != nil {
		svc.Log.ErrorContext(ctx, "ERP connection settings refused", "error", err)
	}
	writers := poster.NewWriters(svc.Connections, refresh)
	if filesDir != "" {
		writers.ConfineFiles(filesDir)
	}
	defer writers.Close()

	ln, err := net.Listen("tcp", grpcAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", grpcAddr, err)
	}
	srv := grpc.NewServer(append(rebalance.ServerOptions(), grpc.StatsHandler(otelgrpc.NewServerHandler()))...)
	mlcv1.RegisterErpPosterServer(srv, poster.New(svc.DB, writers, svc.Log))
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	return svc.Run(ctx, poster.GRPCWorker(srv, hs, ln))
}
