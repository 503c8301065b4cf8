package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats-server/v2/server"
)

// services are started in this order and stopped in reverse.
var services = []string{"erp-poster", "payment-orchestrator", "gc-webhook", "ifs-poller", "jde-poller"}

type options struct {
	binDir       string
	adminURL     string
	database     string
	check        bool
	readyTimeout time.Duration
	out          io.Writer
	invoices     int
	untilSettled bool
	timeout      time.Duration
	day          time.Duration
	// extraEnv adds settings to every service (tests use it).
	extraEnv []string
	// mandateSetup is the GoCardless connection's mandate_setup:
	// billing_request (payers authorise flows, played by the simulator)
	// or direct; empty means billing_request.
	mandateSetup string
	// chaos, when set, is called on every tick of the run, to inject
	// faults (the end-to-end tests use it).
	chaos func(tick int, c *chaosControls) error
	// settled, when set, is called with the final state of a settled run
	// before the stack stops (the end-to-end tests check more with it).
	settled func(ctx context.Context, s *simulators) error
}

// chaosControls is what a chaos function may break.
type chaosControls struct {
	sims  *simulators
	procs []*process
	nats  *natsServer
}

// kill ends a service with SIGKILL, as a crashed node would, and starts it
// again with the same settings.
func (c *chaosControls) kill(name string) error {
	for _, p := range c.procs {
		if p.name == name {
			return p.restart()
		}
	}
	return fmt.Errorf("no service %s", name)
}

type process struct {
	name     string
	httpAddr string
	cmd      *exec.Cmd
	logPath  string
	exited   chan error
	env      []string
	binDir   string
}

func demo(ctx context.Context, opts options) error {
	workDir, err := os.MkdirTemp("", "mlc-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(workDir)

	ns, err := startNATS(filepath.Join(workDir, "jetstream"))
	if err != nil {
		return err
	}
	defer ns.shutdown()
	fmt.Fprintf(opts.out, "NATS JetStream (embedded)  %s\n", ns.url)

	dbURL, err := freshDatabase(ctx, opts.adminURL, opts.database)
	if err != nil {
		return err
	}
	fmt.Fprintf(opts.out, "Postgres database          %s\n", opts.database)

	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	var sims *simulators
	if !opts.check {
		if sims, err = startSimulators(ctx, dbURL, key, opts); err != nil {
			return err
		}
		defer sims.close()
	}
	env := append(os.Environ(),
		"NATS_URL="+ns.url,
		"DATABASE_URL="+dbURL,
		"MLC_MASTER_KEY="+base64.StdEncoding.EncodeToString(key),
		"LOG_LEVEL=warn",
		// Fast loops, so that the demo moves at a watchable pace.
		"IFS_POLL_INTERVAL=1s", "IFS_POLL_JITTER=200ms", "IFS_RELIST_INTERVAL=2s", "IFS_LOCK_RETRY=500ms",
		"JDE_POLL_INTERVAL=1s", "JDE_RELIST_INTERVAL=2s", "JDE_LOCK_RETRY=500ms",
		"CATCHUP_INTERVAL=3s", "CATCHUP_LOOKBACK=720h", "CATCHUP_OVERLAP=1m", "MAX_DELIVER=5", "CUSTOMER_WAIT=3s",
	)
	env = append(env, opts.extraEnv...)
	grpcAddr, err := freeAddr()
	if err != nil {
		return err
	}
	serviceEnv := map[string][]string{
		"erp-poster":           {"GRPC_ADDR=" + grpcAddr},
		"payment-orchestrator": {"ERP_POSTER_ADDR=" + grpcAddr, "AWAITING_SWEEP_INTERVAL=5s"},
	}
	if sims != nil {
		serviceEnv["gc-webhook"] = []string{"WEBHOOK_ADDR=" + sims.webhookAddr}
	} else {
		// Without the simulators no connection holds a webhook secret, and
		// gc-webhook is not ready until it could verify a webhook.
		serviceEnv["gc-webhook"] = []string{"GC_WEBHOOK_SECRET=" + rand.Text()}
	}

	var procs []*process
	defer func() { stopAll(procs) }()
	for _, name := range services {
		p, err := startService(opts.binDir, workDir, name, slices.Concat(env, serviceEnv[name]))
		if err != nil {
			return err
		}
		procs = append(procs, p)
	}
	if err := waitReady(ctx, opts, procs); err != nil {
		return err
	}
	if opts.check {
		return stopGracefully(opts, procs)
	}
	runErr := sims.run(ctx, opts, &chaosControls{sims: sims, procs: procs, nats: ns})
	if err := stopGracefully(opts, procs); err != nil {
		return errors.Join(runErr, err)
	}
	return runErr
}

// natsServer is the embedded JetStream server; restart keeps its port and
// storage, as restarting a NATS node does.
type natsServer struct {
	storeDir string
	port     int
	url      string
	srv      *server.Server
}

func startNATS(storeDir string) (*natsServer, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	_, portText, _ := net.SplitHostPort(addr)
	n := &natsServer{storeDir: storeDir}
	fmt.Sscan(portText, &n.port)
	n.url = "nats://" + addr
	return n, n.start()
}

func (n *natsServer) start() error {
	ns, err := server.NewServer(&server.Options{
		ServerName: "mlc-demo", Host: "127.0.0.1", Port: n.port,
		JetStream: true, StoreDir: n.storeDir, NoLog: true, NoSigs: true,
	})
	if err != nil {
		return fmt.Errorf("embedded nats: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		return errors.New("embedded nats did not start")
	}
	n.srv = ns
	return nil
}

func (n *natsServer) shutdown() {
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
		n.srv = nil
	}
}

func (n *natsServer) restart() error {
	n.shutdown()
	return n.start()
}

// freshDatabase drops and creates the demo database and returns its URL.
func freshDatabase(ctx context.Context, adminURL, name string) (string, error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", fmt.Errorf("connect to postgres (is it running? set MLC_DEMO_ADMIN_DATABASE_URL): %w", err)
	}
	defer conn.Close(ctx)
	ident := pgx.Identifier{name}.Sanitize()
	for _, stmt := range []string{"DROP DATABASE IF EXISTS " + ident + " WITH (FORCE)", "CREATE DATABASE " + ident} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return "", fmt.Errorf("prepare demo database: %w", err)
		}
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	return u.String(), nil
}

func startService(binDir, workDir, name string, env []string) (*process, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	p := &process{name: name, httpAddr: addr, logPath: filepath.Join(workDir, name+".log"), exited: make(chan error, 1)}
	logFile, err := os.Create(p.logPath)
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(filepath.Join(binDir, name))
	// A fresh slice: appending to env could write into a backing array
	// shared with another service's settings.
	p.cmd.Env = slices.Concat(env, []string{"HTTP_ADDR=" + addr})
	p.env = p.cmd.Env
	p.binDir = binDir
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	if err := p.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s (run make build first): %w", name, err)
	}
	go func() {
		p.exited <- p.cmd.Wait()
		logFile.Close()
	}()
	return p, nil
}

// restart kills the process with SIGKILL and starts it again with the same
// settings, appending to the same log.
func (p *process) restart() error {
	_ = p.cmd.Process.Kill()
	<-p.exited
	logFile, err := os.OpenFile(p.logPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.cmd.Path)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("restart %s: %w", p.name, err)
	}
	p.cmd, p.exited = cmd, make(chan error, 1)
	go func() {
		p.exited <- cmd.Wait()
		logFile.Close()
	}()
	return nil
}

// freeAddr finds a free loopback port. Ports handed out once are not
// handed out again: the kernel may offer a just-closed port twice, and two
// services told the same address would fight over it.
func freeAddr() (string, error) {
	usedPorts.Lock()
	defer usedPorts.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := l.Addr().String()
		l.Close()
		if !usedPorts.m[addr] {
			usedPorts.m[addr] = true
			return addr, nil
		}
	}
	return "", errors.New("no free port")
}

var usedPorts = struct {
	sync.Mutex
	m map[string]bool
}{m: map[string]bool{}}

// waitReady polls every service's /readyz and prints the table once all
// answer ready, or fails with the log tail of the one that did not.
func waitReady(ctx context.Context, opts options, procs []*process) error {
	deadline := time.Now().Add(opts.readyTimeout)
	status := map[string]string{}
	for {
		ready := 0
		for _, p := range procs {
			select {
			case err := <-p.exited:
				return fmt.Errorf("%s exited during start-up (%v):\n%s", p.name, err, tail(p.logPath))
			default:
			}
			status[p.name] = readiness(ctx, p.httpAddr)
			if strings.HasPrefix(status[p.name], "ready") {
				ready++
			}
		}
		if ready == len(procs) {
			w := tabwriter.NewWriter(opts.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "\nSERVICE\tHTTP\tREADINESS")
			for _, p := range procs {
				fmt.Fprintf(w, "%s\t%s\t%s\n", p.name, p.httpAddr, status[p.name])
			}
			return w.Flush()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("services not ready after %v: %v", opts.readyTimeout, status)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func readiness(ctx context.Context, addr string) string {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "starting"
	}
	defer resp.Body.Close()
	var report struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&report); err != nil {
		return "unreadable /readyz"
	}
	checks := make([]string, 0, len(report.Checks))
	for name, result := range report.Checks {
		checks = append(checks, name+"="+result)
	}
	sort.Strings(checks)
	return fmt.Sprintf("%s (%s)", report.Status, strings.Join(checks, " "))
}

func anyExited(procs []*process) error {
	for _, p := range procs {
		select {
		case err := <-p.exited:
			return fmt.Errorf("%s exited (%v):\n%s", p.name, err, tail(p.logPath))
		default:
		}
	}
	return nil
}

// stopGracefully sends SIGTERM to every service, newest first, and fails
// unless each one drains and exits with status 0.
func stopGracefully(opts options, procs []*process) error {
	var peaks []string
	for _, p := range procs {
		if kb := peakRSS(p.cmd.Process.Pid); kb > 0 {
			peaks = append(peaks, fmt.Sprintf("%s %.0f MiB", p.name, float64(kb)/1024))
		}
	}
	if len(peaks) > 0 {
		fmt.Fprintf(opts.out, "peak RSS: %s\n", strings.Join(peaks, ", "))
	}
	var errs []error
	for i := len(procs) - 1; i >= 0; i-- {
		p := procs[i]
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-p.exited:
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %v:\n%s", p.name, err, tail(p.logPath)))
				continue
			}
			fmt.Fprintf(opts.out, "%s stopped cleanly\n", p.name)
		case <-time.After(30 * time.Second):
			errs = append(errs, fmt.Errorf("%s did not stop within 30s of SIGTERM", p.name))
		}
		p.cmd = nil
	}
	return errors.Join(errs...)
}

func stopAll(procs []*process) {
	for _, p := range procs {
		if p.cmd != nil && p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
		}
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}

// peakRSS reads a process's peak resident set (VmHWM, in KiB) from /proc;
// 0 where that is not available.
func peakRSS(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return kb
		}
	}
	return 0
}
