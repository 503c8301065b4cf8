package loginlimit_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/platform/testsupport"
	"github.com/ml-connector/ml-connector/services/console/internal/loginlimit"
)

// Two limiters on one database are two console replicas: together they
// allow the limit once, even when every guess arrives at the same moment.
func TestReplicasShareTheLimitUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	db := testsupport.Pool(t)
	a, err := loginlimit.New(db, 5, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := loginlimit.New(db, 5, time.Hour)
	var allowed atomic.Int32
	var wg sync.WaitGroup
	for i := range 20 {
		l := a
		if i%2 == 1 {
			l = b
		}
		wg.Go(func() {
			_, ok, err := l.Begin(ctx, "name:alice")
			if err != nil {
				t.Error(err)
			}
			if ok {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	if n := allowed.Load(); n != 5 {
		t.Errorf("%d of 20 simultaneous attempts allowed across two replicas, want 5", n)
	}
	// Another key has its own count.
	if _, ok, err := b.Begin(ctx, "name:bob"); err != nil || !ok {
		t.Errorf("another name refused: %v %v", ok, err)
	}
}

func TestGivenBackAttemptsAndWindows(t *testing.T) {
	ctx := context.Background()
	db := testsupport.Pool(t)
	l, err := loginlimit.New(db, 2, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	begin := func() (*loginlimit.Attempt, bool) {
		t.Helper()
		a, ok, err := l.Begin(ctx, "addr:192.0.2.7")
		if err != nil {
			t.Fatal(err)
		}
		return a, ok
	}
	// A right password gives its attempt back: any number of them.
	for range 5 {
		a, ok := begin()
		if !ok {
			t.Fatal("a given-back attempt still counted")
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel() // the browser went away: the attempt is still given back
		if err := a.Cancel(cctx); err != nil {
			t.Fatal(err)
		}
	}
	// Two failures use up the window; a refused try does not add to it.
	begin()
	begin()
	if _, ok := begin(); ok {
		t.Fatal("third attempt allowed with a limit of 2")
	}
	var n int
	if err := db.QueryRow(ctx, `SELECT attempts FROM console_login_limits`).Scan(&n); err != nil || n != 2 {
		t.Errorf("attempts %d (%v), want 2: refused tries are not counted", n, err)
	}
	// The key is kept only as its hash.
	if err := db.QueryRow(ctx, `SELECT count(*) FROM console_login_limits WHERE position('192.0.2.7' in encode(key_hash, 'escape')) > 0`).Scan(&n); err != nil || n != 0 {
		t.Errorf("the key is stored in plain text (%v)", err)
	}
	// Once the window has ended (moved back rather than waited for), the
	// count starts again, and the sweep deletes the old row.
	if _, err := db.Exec(ctx, `UPDATE console_login_limits SET window_start = window_start - interval '61 minutes'`); err != nil {
		t.Fatal(err)
	}
	if swept, err := l.Sweep(ctx); err != nil || swept != 1 {
		t.Errorf("sweep deleted %d (%v), want 1", swept, err)
	}
	a, ok := begin()
	if !ok {
		t.Fatal("refused in a new window")
	}
	// An attempt of an ended window is not given back to the new one.
	if _, err := db.Exec(ctx, `UPDATE console_login_limits SET window_start = window_start - interval '61 minutes'`); err != nil {
		t.Fatal(err)
	}
	begin() // a new window: 1
	if err := a.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(ctx, `SELECT attempts FROM console_login_limits`).Scan(&n); err != nil || n != 1 {
		t.Errorf("attempts %d (%v), want 1: an old window's attempt was given back to the new one", n, err)
	}
	if _, err := loginlimit.New(db, 0, time.Minute); err == nil {
		t.Error("a limit of 0 accepted")
	}
}
