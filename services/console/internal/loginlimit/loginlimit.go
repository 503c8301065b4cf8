// Package loginlimit limits console sign-in attempts per key (a user name,
// a client address) across every console replica. The counts live in
// Postgres (console_login_limits) and run on the database's clock, so N
// console pods do not give an attacker N times the attempts, and the pods'
// clocks need not agree.
//
// An attempt is counted before the password is checked, so guesses sent
// all at once cannot slip under the limit while each waits for its
// argon2id hash; it is given back when the password was right, when the
// sign-in was refused anyway, or when the check itself failed. What stays
// counted is the failures, as the limit promises. Keys are stored as their
// SHA-256: the name field sometimes holds a password typed in the wrong box.
//
// No money passes through here.
package loginlimit

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Limiter allows limit attempts per key in each window.
type Limiter struct {
	db     *pgxpool.Pool
	limit  int
	window time.Duration
}

// New returns a limiter over db allowing limit attempts per key per window.
func New(db *pgxpool.Pool, limit int, window time.Duration) (*Limiter, error) {
	if limit < 1 || window < time.Millisecond {
		return nil, errors.New("loginlimit: limit must be at least 1 and window at least 1ms")
	}
	return &Limiter{db: db, limit: limit, window: window}, nil
}

// Attempt is one counted try at a key.
type Attempt struct {
	l     *Limiter
	key   []byte
	start time.Time
}

func hash(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

// Begin counts an attempt at key and reports whether it is within the
// limit. A refused attempt is given back at once (it never reached the
// password check), so only the caller's failures use up the window.
func (l *Limiter) Begin(ctx context.Context, key string) (*Attempt, bool, error) {
	a := &Attempt{l: l, key: hash(key)}
	var n int
	// In ON CONFLICT DO UPDATE every t.* is the row as it was, so both
	// columns decide on the same window.
	err := l.db.QueryRow(ctx, `
		INSERT INTO console_login_limits AS t (key_hash, window_start, attempts) VALUES ($1, now(), 1)
		ON CONFLICT (key_hash) DO UPDATE SET
			attempts     = CASE WHEN t.window_start > now() - $2::bigint * interval '1 microsecond' THEN t.attempts + 1 ELSE 1 END,
			window_start = CASE WHEN t.window_start > now() - $2::bigint * interval '1 microsecond' THEN t.window_start ELSE now() END
		RETURNING window_start, attempts`, a.key, l.window.Microseconds()).Scan(&a.start, &n)
	if err != nil {
		return nil, false, fmt.Errorf("count sign-in attempt: %w", err)
	}
	if n > l.limit {
		return nil, false, a.Cancel(ctx)
	}
	return a, true, nil
}

// Cancel gives the attempt back. It does so even when ctx is already
// cancelled (the browser went away after a right password must not cost
// the user an attempt), and only within the attempt's own window.
func (a *Attempt) Cancel(ctx context.Context) error {
	if a == nil {
		return nil
	}
	if _, err := a.l.db.Exec(context.WithoutCancel(ctx), `
		UPDATE console_login_limits SET attempts = attempts - 1
		WHERE key_hash = $1 AND window_start = $2 AND attempts > 0`, a.key, a.start); err != nil {
		return fmt.Errorf("give back sign-in attempt: %w", err)
	}
	return nil
}

// Sweep deletes the counts of ended windows and returns how many.
func (l *Limiter) Sweep(ctx context.Context) (int64, error) {
	tag, err := l.db.Exec(ctx, `DELETE FROM console_login_limits WHERE window_start <= now() - $1::bigint * interval '1 microsecond'`,
		l.window.Microseconds())
	if err != nil {
		return 0, fmt.Errorf("sweep sign-in attempts: %w", err)
	}
	return tag.RowsAffected(), nil
}
