package bus_test

import (
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/ml-connector/ml-connector/platform/bus"
	"github.com/ml-connector/ml-connector/platform/testsupport"
)

// TestConnectWithPasswordAndTLS: Connect authenticates with UserPassword
// and verifies the server against RootCA, as the services do against the
// NATS of deploy/k8s; a wrong password or an unknown CA is refused.
func TestConnectWithPasswordAndTLS(t *testing.T) {
	dir := t.TempDir()
	testsupport.TLSFiles(t, filepath.Join(dir, "server"), "127.0.0.1")
	testsupport.TLSFiles(t, filepath.Join(dir, "other"), "127.0.0.1")
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{
		CertFile: filepath.Join(dir, "server", "tls.crt"),
		KeyFile:  filepath.Join(dir, "server", "tls.key"),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		TLSConfig: tc, TLSTimeout: 2,
		Users: []*server.User{{Username: "ifs-poller", Password: "s3cret"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats did not start")
	}
	url := srv.ClientURL()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ca := filepath.Join(dir, "server", "ca.crt")

	nc, err := bus.Connect(t.Context(), url, "t", log, bus.UserPassword("ifs-poller", "s3cret"), bus.RootCA(ca))
	if err != nil {
		t.Fatalf("right password and CA: %v", err)
	}
	if _, err := nc.TLSConnectionState(); err != nil {
		t.Errorf("connection is not TLS: %v", err)
	}
	nc.Close()

	if nc, err := bus.Connect(t.Context(), url, "t", log, bus.UserPassword("ifs-poller", "wrong"), bus.RootCA(ca)); err == nil {
		nc.Close()
		t.Error("a wrong password was accepted")
	}
	if nc, err := bus.Connect(t.Context(), url, "t", log, bus.UserPassword("ifs-poller", "s3cret"), bus.RootCA(filepath.Join(dir, "other", "ca.crt"))); err == nil {
		nc.Close()
		t.Error("a server certificate from another CA was accepted")
	}
	if nc, err := bus.Connect(t.Context(), url, "t", log, bus.RootCA(ca)); err == nil {
		nc.Close()
		t.Error("no credentials were accepted")
	}
}
