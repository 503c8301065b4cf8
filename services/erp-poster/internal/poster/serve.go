package poster

import (
	"context"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	"github.com/ml-connector/ml-connector/platform/service"
	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
)

// GRPCWorker serves srv on ln until the context ends, reporting SERVING on
// the standard health service meanwhile; then it reports NOT_SERVING and
// stops gracefully, letting postings in flight finish (bounded, so a hung
// ERP call cannot hold the shutdown forever).
func GRPCWorker(srv *grpc.Server, hs *health.Server, ln net.Listener) service.Worker {
	return service.Worker{Name: "grpc", Run: func(ctx context.Context) error {
		hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
		hs.SetServingStatus(mlcv1.ErpPoster_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(ln) }()
		select {
		case err := <-errc:
			return err
		case <-ctx.Done():
		}
		hs.Shutdown()
		stopped := make(chan struct{})
		go func() { srv.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(20 * time.Second):
			srv.Stop()
		}
		return nil
	}}
}

// Rebalance is how long a client connection to erp-poster may live. The
// orchestrator resolves erp-poster's headless Service with gRPC's DNS
// resolver and spreads calls round-robin over the addresses it found, but
// it only resolves again when a connection ends: without an age limit, pods
// added by the autoscaler never receive calls. When MaxAge is reached the
// server sends GOAWAY, the client re-resolves and reconnects, and calls in
// flight get up to Grace to finish.
type Rebalance struct {
	MaxAge time.Duration
	Grace  time.Duration
}

// ServerOptions are the grpc.ServerOptions that enforce r.
func (r Rebalance) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.KeepaliveParams(keepalive.ServerParameters{
		MaxConnectionAge:      r.MaxAge,
		MaxConnectionAgeGrace: r.Grace,
	})}
}
