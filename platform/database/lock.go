package database

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrLockLost reports that a held advisory lock is no longer held, because
// the database session that held it ended (connection lost, backend
// terminated, server restarted) or stopped answering.
var ErrLockLost = errors.New("database: advisory lock lost")

const (
	// lockCheckInterval is how often a holder confirms it still holds its
	// lock, which bounds how long it may go on working after losing it.
	lockCheckInterval = time.Second
	// lockCheckTimeout bounds one confirmation. A session that cannot answer
	// in time is treated as lost: stopping work needlessly is safe, working
	// on without the lock is not.
	lockCheckTimeout = 5 * time.Second
	// closeTimeout bounds closing a lock's connection.
	closeTimeout = 5 * time.Second
)

// LockKey returns the PostgreSQL advisory lock key used for name: the
// 64-bit FNV-1a hash of the UTF-8 bytes of name, reinterpreted as a signed
// bigint. Operators can find a holder with
//
//	SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1
//	  AND classid = (key >> 32) AND objid = (key & 4294967295)
//
// (with classid and objid compared as unsigned 32-bit values).
func LockKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return int64(h.Sum64())
}

// A Lock is a session-level PostgreSQL advisory lock held on a connection
// of its own, taken out of the pool for as long as the lock is held.
//
// PostgreSQL releases the lock when the session ends, so a holder whose
// connection dies loses the lock without being told; Lock checks every
// second and closes [Lock.Lost] when that happens. Between the loss and the
// check another replica may already hold the lock, so work done under a
// Lock must still be safe to overlap briefly (row locks, idempotency keys):
// the lock keeps replicas from duplicating effort, it is not the only guard
// against duplicating effects.
type Lock struct {
	name string
	key  int64
	conn *pgx.Conn

	lost     chan struct{}
	lostOnce sync.Once
	stop     chan struct{}
	done     chan struct{}

	releaseOnce sync.Once
	releaseErr  error
}

// TryLock tries once, without waiting, to take the advisory lock for name
// (see [LockKey]). It reports false with a nil error if another session
// holds it. ctx bounds only the attempt, not how long the lock is held; a
// held lock must be given back with [Lock.Release].
func TryLock(ctx context.Context, pool *pgxpool.Pool, name string) (*Lock, bool, error) {
	key := LockKey(name)
	pc, err := sessionPool(pool).Acquire(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("database: lock %q: acquire connection: %w", name, err)
	}
	var ok bool
	if err := pc.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok); err != nil {
		// The lock may have been granted before the error (a cancelled
		// read, say). A pooled connection must never carry a lock, so this
		// one is closed rather than returned.
		closeConn(pc.Hijack())
		return nil, false, fmt.Errorf("database: lock %q: %w", name, err)
	}
	if !ok {
		pc.Release()
		return nil, false, nil
	}
	l := &Lock{
		name: name,
		key:  key,
		conn: pc.Hijack(),
		lost: make(chan struct{}),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go l.watch()
	return l, true, nil
}

// Name returns the name the lock was taken for.
func (l *Lock) Name() string { return l.name }

// Lost returns a channel that is closed when the lock is found to be no
// longer held. It is not closed by [Lock.Release].
func (l *Lock) Lost() <-chan struct{} { return l.lost }

func (l *Lock) isLost() bool {
	select {
	case <-l.lost:
		return true
	default:
		return false
	}
}

// watch confirms the lock every lockCheckInterval until Release, and
// declares it lost when the session no longer holds it or does not answer.
func (l *Lock) watch() {
	defer close(l.done)
	t := time.NewTicker(lockCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		if l.stillHeld() {
			continue
		}
		l.lostOnce.Do(func() { close(l.lost) })
		// Ending the session makes sure the server lets go of the lock
		// too, in case it is merely slow rather than gone.
		closeConn(l.conn)
		return
	}
}

func (l *Lock) stillHeld() bool {
	ctx, cancel := context.WithTimeout(context.Background(), lockCheckTimeout)
	defer cancel()
	u := uint64(l.key)
	var held bool
	err := l.conn.QueryRow(ctx, `
		SELECT EXISTS (
			SELECT 1 FROM pg_locks
			WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid()
			  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
			  AND classid = $1 AND objid = $2 AND objsubid = 1)`,
		uint32(u>>32), uint32(u)).Scan(&held)
	return err == nil && held
}

// Release gives the lock back and closes its connection. It is safe to call
// more than once and after the lock was lost, in which case it does nothing
// and returns nil. ctx bounds the unlock; whatever happens, the connection
// is closed, which ends the session and so releases the lock server-side.
func (l *Lock) Release(ctx context.Context) error {
	l.releaseOnce.Do(func() {
		close(l.stop)
		<-l.done
		if l.isLost() {
			return // watch has closed the connection already
		}
		var unlocked bool
		err := l.conn.QueryRow(ctx, `SELECT pg_advisory_unlock($1)`, l.key).Scan(&unlocked)
		closeConn(l.conn)
		switch {
		case err != nil:
			l.releaseErr = fmt.Errorf("database: release lock %q: %w", l.name, err)
		case !unlocked:
			l.lostOnce.Do(func() { close(l.lost) })
			l.releaseErr = fmt.Errorf("database: release lock %q: %w", l.name, ErrLockLost)
		}
	})
	return l.releaseErr
}

func closeConn(c *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	c.Close(ctx)
}

// RunExclusive runs fn while holding the advisory lock for name, so that
// of all replicas calling it with the same name only one runs fn at a time.
// It waits for the lock, trying again every retry, until ctx is done.
//
// The context passed to fn is cancelled, with cause [ErrLockLost], if the
// lock is lost while fn runs; fn must then stop promptly. RunExclusive
// releases the lock when fn returns. It returns fn's error; if the lock was
// lost, the error also matches ErrLockLost (even if fn returned nil), so a
// caller that loops back into RunExclusive knows another replica may have
// taken over.
func RunExclusive(ctx context.Context, pool *pgxpool.Pool, name string, retry time.Duration, fn func(ctx context.Context) error) error {
	if retry <= 0 {
		return fmt.Errorf("database: run exclusive %q: retry interval must be positive, got %v", name, retry)
	}
	l, err := waitLock(ctx, pool, name, retry)
	if err != nil {
		return err
	}

	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-l.Lost():
			cancel(fmt.Errorf("database: lock %q: %w", name, ErrLockLost))
		case <-runCtx.Done():
		}
	}()

	err = fn(runCtx)
	lost := l.isLost()

	releaseCtx, cancelRelease := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
	defer cancelRelease()
	relErr := l.Release(releaseCtx)

	if lost {
		lostErr := fmt.Errorf("database: run exclusive %q: %w", name, ErrLockLost)
		if err != nil {
			return errors.Join(lostErr, err)
		}
		return lostErr
	}
	return errors.Join(err, relErr)
}

func waitLock(ctx context.Context, pool *pgxpool.Pool, name string, retry time.Duration) (*Lock, error) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("database: wait for lock %q: %w", name, context.Cause(ctx))
		case <-t.C:
		}
		l, ok, err := TryLock(ctx, pool, name)
		if err != nil {
			return nil, err
		}
		if ok {
			return l, nil
		}
		t.Reset(retry)
	}
}
