package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/platform/command"
	"github.com/ml-connector/ml-connector/platform/testsupport"
	"github.com/ml-connector/ml-connector/platform/testsupport/await"
)

// fakeService writes a service binary that runs until SIGTERM, then exits
// 0. Once its SIGTERM trap is set it creates a file named for its PID in
// the directory $READY_DIR: before that, SIGTERM's default action kills it
// ("signal: terminated"), as it would a Go service that has not yet called
// signal.Notify, so a test that stops it waits for that file first.
func fakeService(t *testing.T, name string) string {
	t.Helper()
	dir := t.TempDir()
	script := "#!/bin/sh\ntrap 'exit 0' TERM\n: > \"$READY_DIR/$$\"\nwhile :; do sleep 0.05; done\n"
	if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A service that dies is started again, as Kubernetes would, and the demo
// says so; it stops for good only when asked (issue #17 item 6: a killed
// service stayed dead, then "did not stop within 30s").
func TestSupervisorRestartsAKilledService(t *testing.T) {
	var out bytes.Buffer
	w := &syncWriter{w: &out}
	ready := t.TempDir()
	p, err := startService(fakeService(t, "svc"), t.TempDir(), "svc", append(os.Environ(), "READY_DIR="+ready), w)
	if err != nil {
		t.Fatal(err)
	}
	defer p.forceStop()
	first := p.pid()
	if err := p.kill(); err != nil {
		t.Fatal(err)
	}
	var second int
	await.Until(t, 10*time.Second, "the killed service to be started again", func() bool {
		second = p.pid()
		return second != first && second != 0
	})
	// Stopping it before its trap is set would kill it by the signal, not
	// stop it cleanly; a stop that is clean must come after.
	await.Until(t, 10*time.Second, "the restarted service to handle SIGTERM", func() bool {
		_, err := os.Stat(filepath.Join(ready, strconv.Itoa(second)))
		return err == nil
	})
	w.mu.Lock()
	said := out.String()
	w.mu.Unlock()
	if !strings.Contains(said, "supervisor: svc exited (signal: killed); restarting it") || !strings.Contains(said, "(restart 1)") {
		t.Errorf("the restart was not announced:\n%s", said)
	}
	if err := p.stop(10 * time.Second); err != nil {
		t.Fatalf("stop after restart: %v", err)
	}
	if err := p.failed(); err != nil {
		t.Errorf("failed after a clean stop: %v", err)
	}
}

// A service that dies on every start is given up on, with its log, rather
// than restarted for ever.
func TestSupervisorGivesUpOnACrashLoop(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bad"), []byte("#!/bin/sh\necho cannot start >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	w := &syncWriter{w: &out}
	p, err := startService(dir, t.TempDir(), "bad", os.Environ(), w)
	if err != nil {
		t.Fatal(err)
	}
	defer p.forceStop()
	deadline := time.Now().Add(60 * time.Second)
	for p.failed() == nil {
		if time.Now().After(deadline) {
			t.Fatal("still restarting a service that cannot start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := p.failed(); !strings.Contains(err.Error(), "cannot start") || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("give-up error does not show the log and exit: %v", err)
	}
	// Each restart of a service that stopped by itself says why, in its
	// own last log lines, not only its exit status.
	w.mu.Lock()
	said := out.String()
	w.mu.Unlock()
	if !strings.Contains(said, "supervisor: bad exited (exit status 3); restarting it in 200ms (restart 1)\n  cannot start\n") {
		t.Errorf("the restart does not show the service's last words:\n%s", said)
	}
}

// Two runs on one database: the second refuses to start and leaves the
// first's database alone (issue #17 item 6: the second dropped it WITH
// (FORCE) under the first).
func TestSecondRunOnADatabaseIsRefused(t *testing.T) {
	ctx := context.Background()
	first := testsupport.Pool(t)
	name := first.Config().ConnConfig.Database
	held, err := claimDatabase(ctx, testsupport.PostgresAdminURL(), name)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = demo(ctx, options{binDir: t.TempDir(), adminURL: testsupport.PostgresAdminURL(), database: name, out: &out, check: true, readyTimeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), "in use by another mlc-demo run") {
		t.Fatalf("second run on %s: %v, want refused", name, err)
	}
	var tables int
	if err := first.QueryRow(ctx, `SELECT count(*) FROM collections`).Scan(&tables); err != nil {
		t.Fatalf("the first run's database was harmed: %v", err)
	}
	// Once the first run ends, the name is free again.
	held.release()
	again, err := claimDatabase(ctx, testsupport.PostgresAdminURL(), name)
	if err != nil {
		t.Fatalf("after the first run ended: %v", err)
	}
	again.release()
}

func TestHelpExitsZero(t *testing.T) {
	var stderr bytes.Buffer
	if got := command.Run("mlc-demo", []string{"--help"}, &stderr, run); got != 0 {
		t.Errorf("--help: exit %d, stderr %q", got, stderr.String())
	}
	if err := run(context.Background(), []string{"--database", "../etc/x"}); err == nil || !strings.Contains(err.Error(), "--database") {
		t.Errorf("--database ../etc/x: %v", err)
	}
	if err := run(context.Background(), []string{"--invoices", "-1"}); err == nil {
		t.Error("--invoices -1 accepted")
	}
	if err := run(context.Background(), []string{"--chaos=x"}); err == nil || errors.Is(err, flag.ErrHelp) {
		t.Errorf("--chaos=x: %v", err)
	}
	// The console's password sign-in over plain http stays on this machine.
	for _, addr := range []string{":8090", "0.0.0.0:8090", "192.168.1.5:8090", "localhost.evil.com:8090", "127.0.0.1"} {
		if err := run(context.Background(), []string{"--console-addr", addr}); err == nil || !strings.Contains(err.Error(), "--console-addr") {
			t.Errorf("--console-addr %s: %v", addr, err)
		}
	}
}

func TestChaosFlag(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	var c chaosFlag
	fs.Var(&c, "chaos", "")
	if err := fs.Parse([]string{"--chaos=42"}); err != nil || !c.on || c.seed != 42 {
		t.Errorf("--chaos=42: %v %+v", err, c)
	}
	c = chaosFlag{}
	if err := fs.Parse([]string{"--chaos"}); err != nil || !c.on {
		t.Errorf("--chaos: %v %+v", err, c)
	}
}

// The chaos schedule breaks everything the issue lists, inside its window,
// and the same seed gives the same schedule.
func TestChaosScheduleCoversEveryFault(t *testing.T) {
	const window = 40
	faults := chaosSchedule(7, window)
	var all []string
	for i, f := range faults {
		if f.tick < 1 || f.tick > window {
			t.Errorf("%s at tick %d, outside 1..%d", f.what, f.tick, window)
		}
		if i > 0 && f.tick < faults[i-1].tick {
			t.Errorf("not in tick order at %s", f.what)
		}
		all = append(all, f.what)
	}
	text := strings.Join(all, "\n")
	want := []string{"NATS restart", "Postgres outage", "GoCardless 5xx burst", "GoCardless 429 burst", "dropped", "duplicated", "reordered",
		"IFS ETag races", "JD Edwards AIS restart", "faults end"}
	for _, s := range services {
		want = append(want, "SIGKILL "+s)
	}
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("schedule has no %q:\n%s", w, text)
		}
	}
	again := chaosSchedule(7, window)
	for i := range faults {
		if faults[i].tick != again[i].tick || faults[i].what != again[i].what {
			t.Fatalf("seed 7 gave two schedules: %s@%d vs %s@%d", faults[i].what, faults[i].tick, again[i].what, again[i].tick)
		}
	}
}
