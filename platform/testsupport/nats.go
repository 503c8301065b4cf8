package testsupport

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// JetStream is an embedded NATS server with JetStream enabled, storing its
// streams on disk in a per-test temporary directory.
type JetStream struct {
	t        testing.TB
	storeDir string
	port     int
	srv      *server.Server
}

// StartJetStream starts an embedded JetStream server on a free loopback port
// and shuts it down when the test ends.
func StartJetStream(t testing.TB) *JetStream {
	t.Helper()
	js := &JetStream{t: t, storeDir: t.TempDir(), port: freePort(t)}
	js.start()
	t.Cleanup(js.Shutdown)
	return js
}

// URL is the client URL of the server; it stays the same across Restart.
func (j *JetStream) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", j.port) }

// Connect opens a client connection that is closed when the test ends.
func (j *JetStream) Connect() *nats.Conn {
	j.t.Helper()
	nc, err := nats.Connect(j.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		j.t.Fatalf("testsupport: connect to embedded nats: %v", err)
	}
	j.t.Cleanup(nc.Close)
	return nc
}

// Shutdown stops the server. It is safe to call more than once.
func (j *JetStream) Shutdown() {
	if j.srv == nil {
		return
	}
	j.srv.Shutdown()
	j.srv.WaitForShutdown()
	j.srv = nil
}

// Resume starts a server stopped by Shutdown again, on the same port and
// storage: an outage of the length the test chooses.
func (j *JetStream) Resume() {
	j.t.Helper()
	j.start()
}

// Restart stops the server and starts it again on the same port and storage,
// as an operator restarting NATS would: persisted streams survive and clients
// with reconnect enabled find it again.
func (j *JetStream) Restart() {
	j.t.Helper()
	j.Shutdown()
	j.start()
}

func (j *JetStream) start() {
	j.t.Helper()
	opts := &server.Options{
		ServerName: "mlc-test",
		Host:       "127.0.0.1",
		Port:       j.port,
		JetStream:  true,
		StoreDir:   j.storeDir,
		NoLog:      true,
		NoSigs:     true,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		j.t.Fatalf("testsupport: new nats server: %v", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		j.t.Fatalf("testsupport: embedded nats not ready on port %d", j.port)
	}
	j.srv = srv
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testsupport: find free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
