package service_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ml-connector/ml-connector/platform/service"
	"github.com/ml-connector/ml-connector/platform/testsupport"
)

// A publish whose subject exceeds NATS's control-line limit makes the
// server answer -ERR, on which nats.go closes the connection for good
// (issue #17). The service must not stay alive but useless: liveness fails
// and Run stops with an error, so the process is restarted.
func TestClosedNATSConnectionFailsLivenessAndStops(t *testing.T) {
	js := testsupport.StartJetStream(t)
	svc, err := service.Start(t.Context(), testConfig(t, js.URL(), testsupport.PostgresURL(t)))
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	result := make(chan error, 1)
	go func() {
		result <- svc.Run(t.Context(), service.Worker{Name: "idle", Run: func(ctx context.Context) error {
			close(started)
			<-ctx.Done()
			return nil
		}})
	}()
	<-started
	if r := svc.Health.Live(t.Context()); r.Status != "ready" {
		t.Fatalf("liveness before: %+v", r)
	}

	// Bypass the bus's own bounds, as a dependency or a bug would.
	nc := svc.Bus.Conn()
	_ = nc.Publish("mlc.gc."+strings.Repeat("x", 5000)+".created", []byte("x"))
	_ = nc.Flush()

	select {
	case err := <-result:
		if err == nil || !strings.Contains(err.Error(), "nats connection closed") {
			t.Errorf("run: %v, want it to stop because the nats connection closed", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("run still going with the nats connection %s", nc.Status())
	}
	if !nc.IsClosed() {
		t.Fatalf("connection %s; the test no longer provokes a closed connection", nc.Status())
	}
}

// The liveness check alone, while Run is not watching: it fails naming the
// dead connection.
func TestLivenessFailsWhileNATSConnectionClosed(t *testing.T) {
	js := testsupport.StartJetStream(t)
	svc, err := service.Start(t.Context(), testConfig(t, js.URL(), testsupport.PostgresURL(t)))
	if err != nil {
		t.Fatal(err)
	}
	if r := svc.Health.Live(t.Context()); r.Status != "ready" {
		t.Fatalf("liveness before: %+v", r)
	}
	nc := svc.Bus.Conn()
	_ = nc.Publish(strings.Repeat("y", 5000), nil)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := svc.Health.Live(t.Context())
		if r.Status != "ready" && r.Checks["nats"] == "nats connection closed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("liveness %+v with the connection %s", r, nc.Status())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A first deploy starts services before NATS answers: Start waits with
// backoff instead of exiting.
func TestStartWaitsForNATS(t *testing.T) {
	js := testsupport.StartJetStream(t)
	js.Shutdown()
	db := testsupport.PostgresURL(t)
	type started struct {
		svc *service.Service
		err error
	}
	done := make(chan started, 1)
	go func() {
		svc, err := service.Start(t.Context(), testConfig(t, js.URL(), db, "STARTUP_TIMEOUT", "1m"))
		done <- started{svc, err}
	}()
	select {
	case r := <-done:
		t.Fatalf("start returned before NATS was up: %v", r.err)
	case <-time.After(1500 * time.Millisecond):
		// Start is still retrying; the backoff is what is being tested,
		// so this wait bounds nothing but the outage.
	}
	js.Resume()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("start: %v", r.err)
		}
		if err := r.svc.Bus.Healthy(t.Context()); err != nil {
			t.Errorf("bus after start: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("start did not finish after NATS came up")
	}
}

// Postgres terminating every backend of the pool (a failover, a restart)
// must not leave the service with a dead pool: the next queries succeed on
// new connections.
func TestPostgresPoolRecoversFromLostConnections(t *testing.T) {
	js := testsupport.StartJetStream(t)
	svc, err := service.Start(t.Context(), testConfig(t, js.URL(), testsupport.PostgresURL(t)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	// Hold a few connections so the pool has several to lose.
	for range 3 {
		c, err := svc.DB.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Release()
	}
	admin, err := pgx.Connect(ctx, testsupport.PostgresAdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.WithoutCancel(ctx))
	var killed int
	if err := admin.QueryRow(ctx, `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = $1`, svc.DB.Config().ConnConfig.Database).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed < 3 {
		t.Fatalf("terminated %d backends, want at least the 3 held", killed)
	}
	deadline := time.Now().Add(10 * time.Second)
	var lastErr error
	for time.Now().Before(deadline) {
		var one int
		if lastErr = svc.DB.QueryRow(ctx, `SELECT 1`).Scan(&one); lastErr == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if lastErr != nil {
		t.Fatalf("pool did not recover: %v", lastErr)
	}
	if err := svc.Health.Run(ctx).Checks["postgres"]; err != "ok" {
		t.Errorf("readiness postgres %q after recovery", err)
	}
}

// Waiting cures an unreachable server, not a wrong database name or
// password: those fail start-up at once, whatever STARTUP_TIMEOUT says.
func TestStartFailsAtOnceOnRefusal(t *testing.T) {
	js := testsupport.StartJetStream(t)
	db := testsupport.PostgresURL(t)
	u, err := url.Parse(db)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/no_such_database_" + strings.ReplaceAll(t.Name(), "/", "_")
	start := time.Now()
	_, err = service.Start(t.Context(), testConfig(t, js.URL(), u.String(), "STARTUP_TIMEOUT", "1m"))
	if err == nil || !strings.Contains(err.Error(), "will not retry") {
		t.Fatalf("start: %v, want a refusal not retried", err)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("start took %s to give up on a database that does not exist", took)
	}
}
