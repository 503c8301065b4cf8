package k8stest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/ml-connector/ml-connector/platform/bus"
	"github.com/ml-connector/ml-connector/platform/testsupport"
)

// envSmoke turns on TestRenderedManifestsRun (make k8s-check sets it): it
// builds and runs every service, which is too slow for every make test.
const envSmoke = "MLC_SMOKE"

// natsNode is one node of the smoke test's NATS cluster.
type natsNode struct {
	opts *server.Options
	srv  *server.Server
}

func (n *natsNode) start(t *testing.T) {
	t.Helper()
	srv, err := server.NewServer(n.opts.Clone())
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		t.Fatalf("nats %s did not start", n.opts.ServerName)
	}
	n.srv = srv
}

// TestRenderedManifestsRun runs what the prod overlay renders: a 3-node
// NATS cluster from its nats.conf and accounts.conf (TLS, users, routes),
// and the five services with the environment of their Deployments, values
// from the rendered ConfigMaps and test values for the Secrets. Only
// addresses change: Kubernetes names and fixed ports become loopback
// ports, the NATS Service becomes the three nodes' URLs, and lame duck
// mode is shortened. It checks health, readiness, the gRPC health service,
// R3 streams, and that every service stays ready while a NATS node goes
// through lame duck mode and comes back.
func TestRenderedManifestsRun(t *testing.T) {
	if os.Getenv(envSmoke) == "" {
		t.Skipf("set %s=1 (make k8s-check does) to build and run every service", envSmoke)
	}
	w := realWorld(t, "overlays/prod")
	wl, ctr, err := w.c.nats()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	base, err := w.c.natsOptionsIn(wl, ctr, dir, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	var ca string
	for _, v := range wl.Template.Spec.Volumes {
		if v.Secret != nil {
			ca = filepath.Join(dir, v.Name, "ca.crt")
		}
	}

	// Build the services while NATS starts.
	bin := t.TempDir()
	built := make(chan error, 1)
	go func() {
		args := []string{"build", "-o", bin + "/"}
		for _, svc := range w.services {
			args = append(args, "./services/"+svc)
		}
		cmd := exec.Command("go", args...)
		cmd.Dir = repoRoot
		out, err := cmd.CombinedOutput()
		if err != nil {
			err = fmt.Errorf("go build: %v\n%s", err, out)
		}
		built <- err
	}()

	const nodes = 3
	nodesList := make([]*natsNode, nodes)
	clientPorts, clusterPorts := make([]int, nodes), make([]int, nodes)
	for i := range nodes {
		clientPorts[i], clusterPorts[i] = freeLoopbackPort(t), freeLoopbackPort(t)
	}
	var routes []*url.URL
	for i := range nodes {
		routes = append(routes, &url.URL{Scheme: "nats-route", Host: fmt.Sprintf("127.0.0.1:%d", clusterPorts[i])})
	}
	for i := range nodes {
		o := base.Clone()
		o.ServerName = fmt.Sprintf("nats-%d", i)
		o.Host, o.Port, o.ClientAdvertise = "127.0.0.1", clientPorts[i], ""
		o.HTTPPort = 0
		o.Cluster.Host, o.Cluster.Port = "127.0.0.1", clusterPorts[i]
		o.Cluster.Advertise = fmt.Sprintf("127.0.0.1:%d", clusterPorts[i])
		o.Routes = routes
		o.StoreDir, o.PidFile = filepath.Join(dir, o.ServerName), ""
		o.LameDuckDuration, o.LameDuckGracePeriod = 3*time.Second, time.Second
		o.NoLog, o.NoSigs = true, true
		nodesList[i] = &natsNode{opts: o}
	}
	var wg sync.WaitGroup
	for _, n := range nodesList {
		wg.Go(func() { n.start(t) })
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, n := range nodesList {
			n.srv.Shutdown()
		}
	})
	var natsURLs []string
	for _, p := range clientPorts {
		natsURLs = append(natsURLs, fmt.Sprintf("tls://127.0.0.1:%d", p))
	}
	natsURL := strings.Join(natsURLs, ",")

	if err := <-built; err != nil {
		t.Fatal(err)
	}

	// Every listener on a free loopback port.
	type proc struct {
		svc  string
		http string
		grpc string
	}
	procs := map[string]*proc{}
	for _, svc := range w.services {
		procs[svc] = &proc{svc: svc, http: fmt.Sprintf("127.0.0.1:%d", freeLoopbackPort(t))}
	}
	procs["erp-poster"].grpc = fmt.Sprintf("127.0.0.1:%d", freeLoopbackPort(t))
	dbURL := testsupport.PostgresURL(t)
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	masterKey := base64.StdEncoding.EncodeToString(key)

	for _, svc := range w.services {
		_, sctr, err := w.svc(svc)
		if err != nil {
			t.Fatal(err)
		}
		env, probs := w.c.containerEnv(sctr)
		for _, p := range probs {
			t.Error(p)
		}
		// Every listen address the service reads moves to a free loopback
		// port (HTTP_ADDR and GRPC_ADDR to the ones chosen above).
		listen, _ := w.listeners(svc)
		var vars []string
		for name, v := range env {
			val := v.Value
			switch {
			case v.Secret != nil:
				switch name {
				case "DATABASE_URL":
					val = dbURL
				case "MLC_MASTER_KEY":
					val = masterKey
				case "NATS_PASSWORD":
					val = testPassword(v.Secret)
				case "GC_WEBHOOK_SECRET":
					val = "smoke-webhook-secret"
				default:
					if v.Secret.Optional == nil || !*v.Secret.Optional {
						t.Fatalf("%s: no test value for Secret %s key %s (%s); add one here", svc, v.Secret.Name, v.Secret.Key, name)
					}
					continue // optional, unset
				}
			case v.From == "fieldRef":
				lim := sctr.Resources.Limits[corev1.ResourceMemory]
				val = strconv.FormatInt(lim.Value(), 10)
			case !v.Known:
				t.Fatalf("%s: %s has no value here (%s)", svc, name, v.From)
			}
			switch name {
			case "NATS_URL":
				val = natsURL
			case "NATS_CA_FILE":
				val = ca
			case "HTTP_ADDR":
				val = procs[svc].http
			case "GRPC_ADDR":
				val = procs[svc].grpc
			case "ERP_POSTER_ADDR":
				val = procs["erp-poster"].grpc
			case "OTEL_EXPORTER_OTLP_ENDPOINT":
				val = fmt.Sprintf("http://127.0.0.1:%d", freeLoopbackPort(t)) // no collector: exports fail quietly
			default:
				if _, ok := listen[name]; ok {
					val = fmt.Sprintf("127.0.0.1:%d", freeLoopbackPort(t))
				}
			}
			vars = append(vars, name+"="+val)
		}
		// No collector runs here: keep the logs to what the service says.
		vars = append(vars, "OTEL_SDK_DISABLED=true")
		if procs[svc].http == "" || (svc == "erp-poster" && !strings.Contains(strings.Join(vars, "\n"), "GRPC_ADDR=")) {
			t.Fatalf("%s: listeners not set from the manifest", svc)
		}
		logf, err := os.Create(filepath.Join(t.TempDir(), svc+".log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(filepath.Join(bin, svc))
		cmd.Env, cmd.Stdout, cmd.Stderr = vars, logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Signal(os.Interrupt)
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(40 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
			if t.Failed() {
				b, _ := os.ReadFile(logf.Name())
				if len(b) > 6000 {
					b = b[len(b)-6000:]
				}
				t.Logf("%s log (tail):\n%s", svc, b)
			}
		})
	}

	httpc := &http.Client{Timeout: 3 * time.Second}
	get := func(addr, path string) (int, error) {
		resp, err := httpc.Get("http://" + addr + path)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	deadline := time.Now().Add(3 * time.Minute)
	for _, p := range procs {
		for _, path := range []string{"/healthz", "/readyz"} {
			for {
				code, err := get(p.http, path)
				if code == 200 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s %s: %d %v", p.svc, path, code, err)
				}
				time.Sleep(500 * time.Millisecond)
			}
		}
	}

	// erp-poster's gRPC health service, as the kubelet's gRPC probe asks.
	conn, err := grpc.NewClient(procs["erp-poster"].grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hctx, hcancel := context.WithTimeout(t.Context(), 10*time.Second)
	hr, err := healthpb.NewHealthClient(conn).Check(hctx, &healthpb.HealthCheckRequest{})
	hcancel()
	if err != nil || hr.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("erp-poster gRPC health: %v %v", hr.GetStatus(), err)
	}

	// The streams the services declared have three current replicas.
	user, pw, err := w.natsUserOf("payment-orchestrator")
	if err != nil {
		t.Fatal(err)
	}
	js, _ := natsJetStreamAs(t, natsURL, ca, user, testPassword(pw))
	replicated := func() error {
		for _, name := range []string{bus.StreamERP, bus.StreamGC, bus.StreamDLQ, bus.StreamAdvisories} {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			s, err := js.Stream(ctx, name)
			if err != nil {
				cancel()
				return fmt.Errorf("stream %s: %w", name, err)
			}
			info, err := s.Info(ctx)
			cancel()
			if err != nil {
				return fmt.Errorf("stream %s: %w", name, err)
			}
			if info.Config.Replicas != 3 || info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2 {
				return fmt.Errorf("stream %s: %d replicas, cluster %+v", name, info.Config.Replicas, info.Cluster)
			}
			for _, r := range info.Cluster.Replicas {
				if !r.Current || r.Offline {
					return fmt.Errorf("stream %s: replica %s not current", name, r.Name)
				}
			}
		}
		return nil
	}
	waitFor := func(what string, d time.Duration, f func() error) {
		t.Helper()
		end := time.Now().Add(d)
		for {
			err := f()
			if err == nil {
				return
			}
			if time.Now().After(end) {
				t.Fatalf("%s: %v", what, err)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	waitFor("R3 streams", time.Minute, replicated)

	// Lame duck: the node with the most services connected hands its
	// clients to the others and stops, then comes back on its own store.
	// Every service stays ready throughout.
	n := nodesList[0]
	for _, c := range nodesList {
		if c.srv.NumClients() > n.srv.NumClients() {
			n = c
		}
	}
	if n.srv.NumClients() == 0 {
		t.Fatal("no service is connected to any NATS node")
	}
	t.Logf("lame duck on %s with %d clients", n.opts.ServerName, n.srv.NumClients())
	stop := make(chan struct{})
	notReady := make(chan string, 100)
	var polls sync.Map
	var pollers sync.WaitGroup
	for _, p := range procs {
		pollers.Go(func() {
			k := 0
			defer func() { polls.Store(p.svc, k) }()
			for {
				select {
				case <-stop:
					return
				case <-time.After(250 * time.Millisecond):
				}
				k++
				if code, err := get(p.http, "/readyz"); code != 200 {
					select {
					case notReady <- fmt.Sprintf("%s /readyz %d %v at %s", p.svc, code, err, time.Now().Format(time.StampMilli)):
					default:
					}
				}
			}
		})
	}
	n.srv.LameDuckShutdown()
	n.srv.WaitForShutdown()
	n.start(t)
	waitFor("R3 streams after the restart", 2*time.Minute, replicated)
	close(stop)
	pollers.Wait()
	close(notReady)
	for m := range notReady {
		t.Errorf("not ready while a NATS node restarted: %s", m)
	}
	polls.Range(func(svc, k any) bool {
		if k.(int) < 4 {
			t.Errorf("%s: readiness asked only %d times during the restart", svc, k)
		}
		return true
	})
}
