package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/ml-connector/ml-connector/platform/database"
	"github.com/ml-connector/ml-connector/platform/secrets"
	"github.com/ml-connector/ml-connector/services/console/users"
)

// services are started in this order and stopped in reverse.
var services = []string{"erp-poster", "payment-orchestrator", "gc-webhook", "ifs-poller", "jde-poller", "console"}

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
	// serve keeps the stack up after the run until interrupted, so a
	// person can click through the console.
	serve bool
	// extraEnv adds settings to every service (tests use it).
	extraEnv []string
	// consoleAddr is where the console listens (--console-addr); empty:
	// a free loopback port. An OpenID provider needs it known before the
	// run, to have the console's callback registered.
	consoleAddr string
	// consoleEnv adds settings to the console only (the end-to-end test's
	// CONSOLE_OIDC_*; a person sets them in mlc-demo's own environment,
	// which every service inherits).
	consoleEnv []string
	// mandateSetup is the GoCardless connection's mandate_setup:
	// billing_request (payers authorise flows, played by the simulator)
	// or direct; empty means billing_request.
	mandateSetup string
	// rate, when above 0, adds the book's invoices to the ERPs at this many
	// a second while it runs instead of all before it starts (--rate).
	rate float64
	// observe, when set, is called after every move of GoCardless's clock
	// (the end-to-end benchmark measures latencies with it).
	observe func(tick int, s *simulators)
	// keyFile, when set, is where the run's master key is written (0600).
	keyFile string
	// chaosWindow is --chaos-window.
	chaosWindow int
	// chaos, when set, is called on every tick of the run, to inject
	// faults (the end-to-end tests use it).
	chaos func(tick int, c *chaosControls) error
	// settled, when set, is called with the final state of a settled run
	// before the stack stops (the end-to-end tests check more with it).
	settled func(ctx context.Context, s *simulators) error
}

// chaosControls is what a chaos function may break.
type chaosControls struct {
	sims     *simulators
	procs    []*process
	nats     *natsServer
	postgres *postgresOutage
	out      io.Writer
}

// kill ends a service with SIGKILL, as a crashed node would; its
// supervisor starts it again.
func (c *chaosControls) kill(name string) error {
	for _, p := range c.procs {
		if p.name == name {
			return p.kill()
		}
	}
	return fmt.Errorf("no service %s", name)
}

// crashLooping reports a service its supervisor gave up on.
func (c *chaosControls) crashLooping() error {
	for _, p := range c.procs {
		if err := p.failed(); err != nil {
			return err
		}
	}
	return nil
}

func demo(ctx context.Context, opts options) error {
	opts.out = &syncWriter{w: opts.out}
	workDir, err := os.MkdirTemp("", "mlc-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(workDir)

	// The lock comes first: nothing of another run's is touched before it
	// is held.
	db, err := claimDatabase(ctx, opts.adminURL, opts.database)
	if err != nil {
		return err
	}
	defer db.release()

	ns, err := startNATS(filepath.Join(workDir, "jetstream"))
	if err != nil {
		return err
	}
	defer ns.shutdown()
	fmt.Fprintf(opts.out, "NATS JetStream (embedded)  %s\n", ns.url)

	dbURL, err := db.recreate(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(opts.out, "Postgres database          %s (this run's own; another mlc-demo on it is refused)\n", opts.database)

	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	if opts.keyFile != "" {
		// Readable by this user only, and never printed: mlcctl audit verify
		// and the console need it, as the audit log is keyed by it.
		if err := os.WriteFile(opts.keyFile, []byte(base64.StdEncoding.EncodeToString(key)), 0o600); err != nil {
			return fmt.Errorf("master key file: %w", err)
		}
	}
	var sims *simulators
	if !opts.check {
		if sims, err = startSimulators(ctx, dbURL, key, opts); err != nil {
			return err
		}
		defer sims.close()
		sims.natsURL = ns.url
	}
	env := append(os.Environ(),
		"NATS_URL="+ns.url,
		"DATABASE_URL="+dbURL,
		"MLC_MASTER_KEY="+base64.StdEncoding.EncodeToString(key),
		"LOG_LEVEL=warn",
		// Fast loops, so that the demo moves at a watchable pace.
		"IFS_POLL_INTERVAL=1s", "IFS_POLL_JITTER=200ms", "IFS_RELIST_INTERVAL=2s", "IFS_LOCK_RETRY=500ms",
		"JDE_POLL_INTERVAL=1s", "JDE_RELIST_INTERVAL=2s", "JDE_LOCK_RETRY=500ms",
		"CATCHUP_INTERVAL=3s", "CATCHUP_LOOKBACK=720h", "CATCHUP_OVERLAP=1m", "CUSTOMER_WAIT=3s",
		// Ten deliveries, not the default 20, and not fewer. Fewer dead-letter
		// work that only waits: a message whose customer, refund or mandate
		// request is busy with other work waits 250 ms, doubling, until the
		// other work's lease (2 min) can be taken over, which takes nine
		// waits (127.75 s); with 5, a customer version waiting 3.75 s on
		// another's alignment was dead-lettered in make bench-e2e's latency
		// run, with no fault at all. On the orchestrator's back-off (5 s,
		// 30 s, 1 min, 2 min, then 5 min) a message that cannot succeed is
		// an exception after about 29 minutes rather than 80; until then
		// the demo's stall report names what it waits for.
		"MAX_DELIVER=10",
	)
	env = append(env, memoryBudget(os.LookupEnv)...)
	env = append(env, opts.extraEnv...)
	grpcAddr, err := freeAddr()
	if err != nil {
		return err
	}
	consoleAddr := opts.consoleAddr
	if consoleAddr == "" {
		if consoleAddr, err = freeAddr(); err != nil {
			return err
		}
	}
	serviceEnv := map[string][]string{
		"console":              append([]string{"CONSOLE_ADDR=" + consoleAddr}, opts.consoleEnv...),
		"erp-poster":           {"GRPC_ADDR=" + grpcAddr},
		"payment-orchestrator": {"ERP_POSTER_ADDR=" + grpcAddr, "AWAITING_SWEEP_INTERVAL=5s", "PAYOUT_FLUSH_INTERVAL=5s"}, // a demo payout is not left a minute in progress
	}
	if sims != nil {
		serviceEnv["gc-webhook"] = []string{"WEBHOOK_ADDR=" + sims.webhookAddr}
	} else {
		// Without the simulators no connection holds a webhook secret, and
		// gc-webhook is not ready until it could verify a webhook.
		serviceEnv["gc-webhook"] = []string{"GC_WEBHOOK_SECRET=" + rand.Text()}
	}

	var procs []*process
	defer func() {
		for _, p := range procs {
			p.forceStop()
		}
	}()
	for _, name := range services {
		p, err := startService(opts.binDir, workDir, name, slices.Concat(env, serviceEnv[name]), opts.out)
		if err != nil {
			return err
		}
		procs = append(procs, p)
	}
	if err := waitReady(ctx, opts, procs); err != nil {
		return err
	}
	password, err := consoleLogin(ctx, opts.out, dbURL, consoleAddr)
	if err != nil {
		return err
	}
	if sims != nil {
		sims.console = consoleSignIn{url: "http://" + consoleAddr, name: "demo", password: password}
	}
	if opts.check {
		return stopGracefully(opts, procs)
	}
	printHowToLook(opts.out, dbURL, opts.keyFile)
	chaos := &chaosControls{sims: sims, procs: procs, nats: ns, out: opts.out,
		postgres: &postgresOutage{adminURL: opts.adminURL, database: opts.database}}
	runErr := sims.run(ctx, opts, chaos)
	if err := chaos.postgres.wait(); err != nil {
		runErr = errors.Join(runErr, err)
	}
	if opts.serve && ctx.Err() == nil {
		fmt.Fprintf(opts.out, "\nThe stack stays up for the console at http://%s; Ctrl-C stops it.\n", consoleAddr)
		<-ctx.Done()
	}
	if err := stopGracefully(opts, procs); err != nil {
		return errors.Join(runErr, err)
	}
	printHowToLook(opts.out, dbURL, opts.keyFile)
	return runErr
}

// printHowToLook tells the operator how to point mlcctl (and the console,
// which reads the same settings) at this run's ledger. The master key is
// not printed, only the file holding it.
func printHowToLook(w io.Writer, dbURL, keyFile string) {
	key := "(this run's master key was kept in no file)"
	if keyFile != "" {
		key = fmt.Sprintf(`export MLC_MASTER_KEY="$(cat %s)"`, keyFile)
	}
	fmt.Fprintf(w, `
Look at this run's ledger (it stays until the next run on the same database):
  export DATABASE_URL='%s'
  %s
  bin/mlcctl exceptions list --status all
  bin/mlcctl collections show ifs-demo 10 100000
  bin/mlcctl audit verify
  The console reads the same DATABASE_URL and MLC_MASTER_KEY.
`, dbURL, key)
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

// demoDatabase is the demo's database, claimed with a session advisory
// lock on the admin database: two runs on one name would destroy each
// other's ledger (issue #17 item 6), so the second refuses to start.
type demoDatabase struct {
	admin    *pgx.Conn
	adminURL string
	name     string
}

// claimDatabase takes the run's lock on name, or fails naming the holder.
func claimDatabase(ctx context.Context, adminURL, name string) (*demoDatabase, error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres (is it running? set MLC_DEMO_ADMIN_DATABASE_URL): %w", err)
	}
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended('mlc-demo:' || $1, 0))`, name).Scan(&got); err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("lock demo database: %w", err)
	}
	if !got {
		conn.Close(ctx)
		return nil, fmt.Errorf("database %s is in use by another mlc-demo run; pass --database with another name", name)
	}
	return &demoDatabase{admin: conn, adminURL: adminURL, name: name}, nil
}

// recreate drops the previous run's database of this name (held by no run:
// the lock says so) and creates it anew; it returns its URL.
func (d *demoDatabase) recreate(ctx context.Context) (string, error) {
	ident := pgx.Identifier{d.name}.Sanitize()
	for _, stmt := range []string{"DROP DATABASE IF EXISTS " + ident + " WITH (FORCE)", "CREATE DATABASE " + ident} {
		if _, err := d.admin.Exec(ctx, stmt); err != nil {
			return "", fmt.Errorf("prepare demo database: %w", err)
		}
	}
	u, err := url.Parse(d.adminURL)
	if err != nil {
		return "", err
	}
	u.Path = "/" + d.name
	return u.String(), nil
}

func (d *demoDatabase) release() { d.admin.Close(context.Background()) }

// freeAddr finds a free loopback port below the kernel's ephemeral range.
// A service listens on its port again each time it restarts, and a port of
// that range may by then be the local end of any outgoing connection on
// the machine: in make chaos SEED=863944 the console, restarted after its
// SIGKILL, failed three times on "address already in use". Ports handed
// out once are not handed out again: two services told the same address
// would fight over it.
func freeAddr() (string, error) {
	usedPorts.Lock()
	defer usedPorts.Unlock()
	low := ephemeralLow()
	for range 200 {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(minListenPort+mrand.IntN(low-minListenPort)))
		if usedPorts.m[addr] {
			continue
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue // taken
		}
		l.Close()
		usedPorts.m[addr] = true
		return addr, nil
	}
	return "", errors.New("no free port")
}

// minListenPort is the lowest port freeAddr hands out, above the ports
// well-known servers use.
const minListenPort = 10000

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's
// ip_local_port_range), 32768 where it cannot be read or leaves no room.
func ephemeralLow() int {
	var low, high int
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if n, _ := fmt.Sscan(string(b), &low, &high); n == 2 && low > minListenPort+1000 {
			return low
		}
	}
	return 32768
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
			if err := p.failed(); err != nil {
				return fmt.Errorf("during start-up: %w", err)
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
			var logs []string
			for _, p := range procs {
				if !strings.HasPrefix(status[p.name], "ready") {
					logs = append(logs, p.name+":\n"+tail(p.logPath, 15))
				}
			}
			return fmt.Errorf("services not ready after %v: %v\n%s", opts.readyTimeout, status, strings.Join(logs, "\n"))
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

// stopGracefully sends SIGTERM to every service, newest first, and fails
// unless each one drains and exits with status 0.
func stopGracefully(opts options, procs []*process) error {
	var peaks, cpu []string
	for _, p := range procs {
		if kb := peakRSS(p.pid()); kb > 0 {
			peaks = append(peaks, fmt.Sprintf("%s %.0f MiB", p.name, float64(kb)/1024))
		}
		if d, _, ok := cpuTime(p.pid()); ok {
			cpu = append(cpu, fmt.Sprintf("%s %.1f s", p.name, d.Seconds()))
		}
	}
	if len(peaks) > 0 {
		// The limit the services ran under, since RSS depends on it.
		limit := serviceMemoryBudget
		if l, set := os.LookupEnv("GOMEMLIMIT"); set {
			limit = l
		}
		fmt.Fprintf(opts.out, "peak RSS: %s (GOMEMLIMIT %s)\n", strings.Join(peaks, ", "), limit)
	}
	if len(cpu) > 0 {
		// What the run cost, which tells one machine's figures from
		// another's: the same book on a slower or busier machine takes
		// more CPU time, and its latencies follow.
		fmt.Fprintf(opts.out, "CPU time (each service since its last start): %s\n", strings.Join(cpu, ", "))
	}
	var errs []error
	for i := len(procs) - 1; i >= 0; i-- {
		p := procs[i]
		if err := p.stop(30 * time.Second); err != nil {
			errs = append(errs, fmt.Errorf("%s: %v:\n%s", p.name, err, tail(p.logPath, 15)))
			continue
		}
		fmt.Fprintf(opts.out, "%s stopped cleanly\n", p.name)
	}
	return errors.Join(errs...)
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
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

// cpuTime reads the CPU time (user and system) a process has used, and
// that of its children it has reaped, from /proc/PID/stat; false where
// that is not available. Linux counts it in USER_HZ ticks, 100 a second
// on every architecture (proc(5)).
func cpuTime(pid int) (own, reaped time.Duration, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	// The command name may hold spaces and parentheses: the fields
	// counted from the last ')' are unambiguous (utime, stime, cutime,
	// cstime are the 14th to 17th).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return 0, 0, false
	}
	var ticks [4]int64
	for j := range ticks {
		if ticks[j], err = strconv.ParseInt(f[11+j], 10, 64); err != nil {
			return 0, 0, false
		}
	}
	const tick = 10 * time.Millisecond
	return time.Duration(ticks[0]+ticks[1]) * tick, time.Duration(ticks[2]+ticks[3]) * tick, true
}

// consoleLogin creates the demo's console account (an admin, with a
// random password), prints where to sign in with it and returns the
// password.
func consoleLogin(ctx context.Context, out io.Writer, dbURL, addr string) (string, error) {
	db, err := database.Open(ctx, dbURL)
	if err != nil {
		return "", err
	}
	defer db.Close()
	password := rand.Text()
	if _, err := users.NewStore(db).Add(ctx, users.New{Name: "demo", Role: users.Admin, Password: secrets.NewValue(password), Actor: "mlc-demo"}); err != nil {
		return "", fmt.Errorf("console account: %w", err)
	}
	fmt.Fprintf(out, "Console                    http://%s  (sign in as demo / %s)\n", addr, password)
	return password, nil
}

// serviceMemoryBudget is the Go runtime's soft memory limit for every
// service the demo runs: what a service may use beside its binary's
// mapped pages (about 27 MiB for the orchestrator's 41 MB binary, which
// GOMEMLIMIT does not count) to stay within a 64 MiB pod. Without it the
// collector lets the heap grow to twice the live data before collecting,
// and the orchestrator reached 66-70 MiB in the payment-creation burst of
// a 10,000-invoice book with 14 MiB live; with it the collector runs more
// often in that burst instead (docs/benchmarks.md has both).
const serviceMemoryBudget = "32MiB"

// memoryBudget is the environment that gives the services
// serviceMemoryBudget, unless mlc-demo's own environment sets GOMEMLIMIT
// (lookup is os.LookupEnv): then they inherit that.
func memoryBudget(lookup func(string) (string, bool)) []string {
	if _, set := lookup("GOMEMLIMIT"); set {
		return nil
	}
	return []string{"GOMEMLIMIT=" + serviceMemoryBudget}
}
