package poster_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/stats"

	"github.com/ml-connector/ml-connector/services/erp-poster/internal/poster"
)

// connCounter counts the client connections a server accepts.
type connCounter struct{ n atomic.Int64 }

func (c *connCounter) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context   { return ctx }
func (c *connCounter) HandleRPC(context.Context, stats.RPCStats)                         {}
func (c *connCounter) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (c *connCounter) HandleConn(_ context.Context, s stats.ConnStats) {
	if _, ok := s.(*stats.ConnBegin); ok {
		c.n.Add(1)
	}
}

// Issue #19: the server set no MaxConnectionAge, so an orchestrator kept
// its first connections forever and erp-poster pods added later got no
// calls. With Rebalance a long-lived client is made to reconnect (and so
// re-resolve) every MaxAge, and no call fails on the way.
func TestMaxConnectionAgeMakesClientsReconnect(t *testing.T) {
	counter := &connCounter{}
	r := poster.Rebalance{MaxAge: 300 * time.Millisecond, Grace: time.Second}
	srv := grpc.NewServer(append(r.ServerOptions(), grpc.StatsHandler(counter))...)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)

	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(20 * time.Second)
	calls := 0
	for counter.n.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections after %d calls; the client was never made to reconnect", counter.n.Load(), calls)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		_, err := client.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
		cancel()
		if err != nil {
			t.Fatalf("call %d failed across a reconnect: %v", calls, err)
		}
		calls++
		time.Sleep(20 * time.Millisecond) // pace the calls; the ages are what is measured
	}
}
