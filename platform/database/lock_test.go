package database_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ml-connector/ml-connector/platform/database"
	"github.com/ml-connector/ml-connector/platform/testsupport"
)

func TestLockKey(t *testing.T) {
	tests := []struct {
		name string
		want uint64
	}{
		// FNV-1a 64 reference values.
		{"", 0xcbf29ce484222325},
		{"a", 0xaf63dc4c8601ec8c},
		{"foobar", 0x85944171f73967e8},
	}
	for _, tt := range tests {
		if got := database.LockKey(tt.name); uint64(got) != tt.want {
			t.Errorf("LockKey(%q) = %#x, want %#x", tt.name, uint64(got), tt.want)
		}
	}
}

// replicas opens n pools on one database, standing in for n replicas.
func replicas(t *testing.T, n int) []*pgxpool.Pool {
	t.Helper()
	url := testsupport.PostgresURL(t)
	pools := make([]*pgxpool.Pool, n)
	for i := range pools {
		p, err := database.Open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		pools[i] = p
	}
	return pools
}

// holderPID returns the backend holding the advisory lock for name, or 0.
func holderPID(t *testing.T, pool *pgxpool.Pool, name string) int {
	t.Helper()
	key := uint64(database.LockKey(name))
	var pids []int
	rows, err := pool.Query(context.Background(), `
		SELECT pid FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND classid = $1 AND objid = $2`,
		uint32(key>>32), uint32(key))
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var pid int
		if err := rows.Scan(&pid); err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(pids) > 1 {
		t.Fatalf("lock %q held by %d backends %v", name, len(pids), pids)
	}
	if len(pids) == 0 {
		return 0
	}
	return pids[0]
}

func terminate(t *testing.T, pool *pgxpool.Pool, pid int) {
	t.Helper()
	var ok bool
	if err := pool.QueryRow(context.Background(), `SELECT pg_terminate_backend($1)`, pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("pg_terminate_backend(%d) = %v, %v", pid, ok, err)
	}
}

func TestTryLockExcludesOthersUntilRelease(t *testing.T) {
	ctx := context.Background()
	p := replicas(t, 2)

	a, ok, err := database.TryLock(ctx, p[0], "poller/ifs-prod")
	if err != nil || !ok {
		t.Fatalf("first TryLock = %v, %v; want held", ok, err)
	}
	// Neither another replica nor another connection of the same pool may
	// take it: the lock belongs to a session, not to a process.
	for i, pool := range p {
		if b, ok, err := database.TryLock(ctx, pool, "poller/ifs-prod"); err != nil || ok {
			if ok {
				b.Release(ctx)
			}
			t.Fatalf("replica %d TryLock while held = %v, %v; want not held", i, ok, err)
		}
	}
	// Another name is independent.
	other, ok, err := database.TryLock(ctx, p[1], "poller/jde-prod")
	if err != nil || !ok {
		t.Fatalf("TryLock other name = %v, %v; want held", ok, err)
	}
	defer other.Release(ctx)

	if err := a.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if err := a.Release(ctx); err != nil {
		t.Fatalf("second Release: %v", err)
	}
	// Release unlocks before returning: the lock is free at once, not
	// whenever the server gets round to ending the session.
	b, ok, err := database.TryLock(ctx, p[1], "poller/ifs-prod")
	if err != nil || !ok {
		t.Fatalf("TryLock after release = %v, %v; want held", ok, err)
	}
	defer b.Release(ctx)
	select {
	case <-a.Lost():
		t.Error("Lost closed by Release")
	default:
	}
}

func TestTryLockDoesNotLeakLockIntoPool(t *testing.T) {
	ctx := context.Background()
	p := replicas(t, 2)
	l, ok, err := database.TryLock(ctx, p[0], "reaper")
	if err != nil || !ok {
		t.Fatalf("TryLock = %v, %v", ok, err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	// Whatever connection p[0] now hands out, none may hold the lock.
	if pid := holderPID(t, p[1], "reaper"); pid != 0 {
		t.Fatalf("lock still held by backend %d after Release", pid)
	}
	if s := p[0].Stat(); s.AcquiredConns() != 0 {
		t.Errorf("pool has %d acquired connections after Release", s.AcquiredConns())
	}
}

func TestLostFiresWhenBackendTerminated(t *testing.T) {
	ctx := context.Background()
	p := replicas(t, 2)
	l, ok, err := database.TryLock(ctx, p[0], "events-catchup")
	if err != nil || !ok {
		t.Fatalf("TryLock = %v, %v", ok, err)
	}
	defer l.Release(ctx)

	select {
	case <-l.Lost():
		t.Fatal("Lost closed while the lock is held")
	case <-time.After(1500 * time.Millisecond): // past at least one check
	}

	terminate(t, p[1], holderPID(t, p[1], "events-catchup"))
	select {
	case <-l.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("Lost not closed 10s after the holder's backend was terminated")
	}
	if err := l.Release(ctx); err != nil {
		t.Errorf("Release after loss = %v, want nil", err)
	}
	if b, ok, err := database.TryLock(ctx, p[1], "events-catchup"); err != nil || !ok {
		t.Fatalf("TryLock after loss = %v, %v; want held", ok, err)
	} else {
		b.Release(ctx)
	}
}

func TestRunExclusiveRunsOneAtATime(t *testing.T) {
	ctx := context.Background()
	p := replicas(t, 4)
	var active, maxActive, runs atomic.Int32
	var wg sync.WaitGroup
	errs := make([]error, len(p))
	for i, pool := range p {
		wg.Go(func() {
			errs[i] = database.RunExclusive(ctx, pool, "scheduler", 10*time.Millisecond, func(ctx context.Context) error {
				n := active.Add(1)
				defer active.Add(-1)
				for {
					m := maxActive.Load()
					if n <= m || maxActive.CompareAndSwap(m, n) {
						break
					}
				}
				runs.Add(1)
				time.Sleep(100 * time.Millisecond)
				return nil
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: %v", i, err)
		}
	}
	if runs.Load() != int32(len(p)) {
		t.Errorf("fn ran %d times, want %d", runs.Load(), len(p))
	}
	if maxActive.Load() != 1 {
		t.Errorf("up to %d replicas ran at once, want 1", maxActive.Load())
	}
}

func TestRunExclusivePassesOnFnError(t *testing.T) {
	ctx := context.Background()
	p := replicas(t, 1)
	errBoom := errors.New("boom")
	err := database.RunExclusive(ctx, p[0], "job", time.Millisecond, func(context.Context) error { return errBoom })
	if !errors.Is(err, errBoom) || errors.Is(err, database.ErrLockLost) {
		t.Fatalf("RunExclusive = %v, want %v only", err, errBoom)
	}
	// And the lock was released despite the error.
	if pid := holderPID(t, p[0], "job"); pid != 0 {
		t.Fatalf("lock still held by backend %d", pid)
	}
}

func TestRunExclusiveStopsWaitingWhenCancelled(t *testing.T) {
	p := replicas(t, 2)
	held, ok, err := database.TryLock(context.Background(), p[0], "job")
	if err != nil || !ok {
		t.Fatalf("TryLock = %v, %v", ok, err)
	}
	defer held.Release(context.Background())

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	ran := false
	err = database.RunExclusive(ctx, p[1], "job", 20*time.Millisecond, func(context.Context) error {
		ran = true
		return nil
	})
	if ran {
		t.Fatal("fn ran while another replica held the lock")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("RunExclusive = %v, want DeadlineExceeded", err)
	}
}

func TestRunExclusiveRejectsBadRetry(t *testing.T) {
	p := replicas(t, 1)
	err := database.RunExclusive(context.Background(), p[0], "job", 0, func(context.Context) error {
		t.Error("fn ran")
		return nil
	})
	if err == nil {
		t.Fatal("RunExclusive with retry 0 succeeded")
	}
}

// The scenario the lock exists for: the active replica's database session
// dies; it must notice and stop, and the standby must take over.
func TestRunExclusiveStandbyTakesOverWhenHolderLosesLock(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := replicas(t, 3) // active, standby, admin
	const name = "payment-orchestrator/catchup"

	activeRunning := make(chan struct{})
	activeCause := make(chan error, 1)
	activeDone := make(chan error, 1)
	go func() {
		activeDone <- database.RunExclusive(ctx, p[0], name, 10*time.Millisecond, func(ctx context.Context) error {
			close(activeRunning)
			<-ctx.Done()
			activeCause <- context.Cause(ctx)
			return ctx.Err()
		})
	}()
	select {
	case <-activeRunning:
	case <-ctx.Done():
		t.Fatal("active replica never got the lock")
	}

	standbyRunning := make(chan struct{})
	standbyDone := make(chan error, 1)
	go func() {
		standbyDone <- database.RunExclusive(ctx, p[1], name, 20*time.Millisecond, func(ctx context.Context) error {
			close(standbyRunning)
			return nil
		})
	}()
	select {
	case <-standbyRunning:
		t.Fatal("standby ran while the active replica held the lock")
	case <-time.After(500 * time.Millisecond):
	}

	terminate(t, p[2], holderPID(t, p[2], name))

	select {
	case cause := <-activeCause:
		if !errors.Is(cause, database.ErrLockLost) {
			t.Errorf("active fn context cause = %v, want ErrLockLost", cause)
		}
	case <-ctx.Done():
		t.Fatal("active replica was not told it lost the lock")
	}
	if err := <-activeDone; !errors.Is(err, database.ErrLockLost) || !errors.Is(err, context.Canceled) {
		t.Errorf("active RunExclusive = %v, want ErrLockLost joined with fn's context.Canceled", err)
	}
	select {
	case <-standbyRunning:
	case <-ctx.Done():
		t.Fatal("standby never took over")
	}
	if err := <-standbyDone; err != nil {
		t.Errorf("standby RunExclusive = %v", err)
	}
}
