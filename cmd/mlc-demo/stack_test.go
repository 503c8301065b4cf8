package main

import (
	"bytes"
	"context"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/platform/testsupport"
)

// TestStackStartsAndStopsGracefully builds the five service binaries and
// runs them as separate processes, as make demo does: each must become
// ready against the embedded NATS and the demo database, then exit 0 on
// SIGTERM.
// buildServices builds the five service binaries into a temporary directory.
func buildServices(t *testing.T) string {
	t.Helper()
	binDir := t.TempDir()
	args := []string{"build", "-o", binDir + "/"}
	for _, s := range services {
		args = append(args, "github.com/ml-connector/ml-connector/services/"+s)
	}
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return binDir
}

func TestStackStartsAndStopsGracefully(t *testing.T) {
	binDir := buildServices(t)
	// The demo (re)creates its database by name; a name from test support
	// keeps parallel runs apart and is dropped when the test ends.
	dbURL, err := url.Parse(testsupport.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	err = demo(ctx, options{
		binDir: binDir, adminURL: testsupport.PostgresAdminURL(), database: strings.TrimPrefix(dbURL.Path, "/"),
		check: true, readyTimeout: 60 * time.Second, out: &out,
	})
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	for _, s := range services {
		if !strings.Contains(out.String(), s+" stopped cleanly") {
			t.Errorf("%s did not stop cleanly:\n%s", s, out.String())
		}
	}
	if got := strings.Count(out.String(), "  ready ("); got != len(services) {
		t.Errorf("%d services ready, want %d:\n%s", got, len(services), out.String())
	}
}

// The demo's ports are below the kernel's ephemeral range, so a service
// restarted on its port does not find it taken by some outgoing
// connection's local end (make chaos SEED=863944), and never twice the
// same.
func TestFreeAddrIsBelowTheEphemeralRange(t *testing.T) {
	low := ephemeralLow()
	seen := map[string]bool{}
	for range 20 {
		addr, err := freeAddr()
		if err != nil {
			t.Fatal(err)
		}
		_, portText, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		port, err := strconv.Atoi(portText)
		if err != nil {
			t.Fatal(err)
		}
		if port < minListenPort || port >= low {
			t.Errorf("port %d, want %d to %d", port, minListenPort, low-1)
		}
		if seen[addr] {
			t.Errorf("%s handed out twice", addr)
		}
		seen[addr] = true
	}
}

// The services run within a 64 MiB pod's budget unless mlc-demo's own
// environment sets GOMEMLIMIT, which they then inherit (docs/benchmarks.md
// measures the orchestrator with and without it).
func TestServicesGetTheMemoryBudgetUnlessSet(t *testing.T) {
	unset := func(string) (string, bool) { return "", false }
	if got := memoryBudget(unset); len(got) != 1 || got[0] != "GOMEMLIMIT=32MiB" {
		t.Errorf("without GOMEMLIMIT: %q, want GOMEMLIMIT=32MiB", got)
	}
	set := func(k string) (string, bool) { return "1GiB", k == "GOMEMLIMIT" }
	if got := memoryBudget(set); len(got) != 0 {
		t.Errorf("with GOMEMLIMIT set: %q, want nothing added", got)
	}
}

// The demo's CPU line, which tells one machine's benchmark figures from
// another's, reads what a process used from /proc.
func TestCPUTimeGrowsWithWork(t *testing.T) {
	start, _, ok := cpuTime(os.Getpid())
	if !ok {
		t.Fatal("no CPU time for this process")
	}
	deadline := time.Now().Add(20 * time.Second)
	x := 0
	for time.Now().Before(deadline) {
		for i := range 1_000_000 {
			x ^= i
		}
		if now, _, _ := cpuTime(os.Getpid()); now-start >= 50*time.Millisecond {
			return
		}
	}
	t.Errorf("CPU time did not grow by 50 ms in 20 s of spinning (%d)", x)
}

func TestCPUTimeOfNoProcess(t *testing.T) {
	if d, _, ok := cpuTime(-1); ok {
		t.Errorf("cpuTime(-1) = %v, true; want false", d)
	}
}
