package gocardless

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/ml-connector/ml-connector/platform/secrets"
)

// GoCardless limits requests per access token, not per process
// (developer.gocardless.com/api-reference/#overview-rate-limiting: the
// RateLimit-Limit, -Remaining and -Reset headers describe the token's
// window). Replicas that each pace by their own answers spend the same
// window side by side: each believes the whole remainder is its own, so
// together they overshoot it (429s) at the end of a window and at the
// start of the next. A shared budget makes them one client: the requests
// of the token's window are granted from one count that every replica
// reads and updates by compare-and-swap, and every answer's headers
// correct that count, so the headers stay the authority.

// SharedWindow is where the clients of one access token keep their common
// account of its rate-limit window: one value, replaced by
// compare-and-swap. Implementations live outside this package (the
// orchestrator keeps it in a JetStream key-value bucket).
type SharedWindow interface {
	// Load returns the value and its revision; nil and 0 when none is
	// stored yet.
	Load(ctx context.Context) (value []byte, revision uint64, err error)
	// Store replaces the value stored at revision (0: creates it) and
	// returns the new revision; stored is false, without error, when
	// another client stored first.
	Store(ctx context.Context, value []byte, revision uint64) (newRevision uint64, stored bool, err error)
}

// WithSharedBudget paces the client by a budget shared with every other
// client of its access token: open is called once, with a fingerprint of
// the token (a hash, never the token), for the window to keep it in. While
// the shared window cannot be reached the client paces alone, as it does
// without this option, and tries the shared one again after a while.
func WithSharedBudget(open func(tokenFingerprint string) SharedWindow) Option {
	return func(o *options) { o.shared = open }
}

// TokenFingerprint names an access token without revealing it: the first
// 16 bytes of a SHA-256 of it, in hex, under a label of this use.
func TokenFingerprint(token secrets.Value) string {
	h := sha256.Sum256([]byte("mlc-gocardless-rate-budget\x00" + token.Reveal()))
	return hex.EncodeToString(h[:16])
}

// budgetState is the shared account of the token's current window.
type budgetState struct {
	// Limit is RateLimit-Limit as last answered; 0 until an answer says.
	Limit int `json:"limit"`
	// Reset is the end of the current window, from RateLimit-Reset; zero
	// when a window has begun whose end no answer has told yet.
	Reset time.Time `json:"reset,omitzero"`
	// Granted counts the requests granted in the current window by every
	// client, corrected upwards by the answers' counts.
	Granted int `json:"granted"`
	// Next is, while the end of the window is spread over (see
	// spreadBelow), the earliest start of the next granted request.
	Next time.Time `json:"next,omitzero"`
}

// sharedRetryAfter is how long a client paces alone after the shared
// window failed it.
const sharedRetryAfter = 10 * time.Second

// sharedCASAttempts bounds the compare-and-swap rounds of one reservation
// or observation; contention beyond it means something is wrong, and the
// client paces alone for a while.
const sharedCASAttempts = 32

// errSharedUnavailable: the shared window cannot be used now.
var errSharedUnavailable = errors.New("shared rate budget unavailable")

// sharedBudget is one client's use of its token's shared window. A
// client asks for one reservation at a time and hands the requests it
// was granted to its callers, so the shared value sees about one update
// per chunk of requests.
type sharedBudget struct {
	w     SharedWindow
	clock Clock

	reserving chan struct{} // held by the caller reserving for this client

	mu          sync.Mutex
	tokens      int       // granted to this client and not yet spent
	until       time.Time // when they lapse: the end of their window
	st          budgetState
	rev         uint64
	loaded      bool
	failedUntil time.Time
}

func newSharedBudget(w SharedWindow, clock Clock) *sharedBudget {
	return &sharedBudget{w: w, clock: clock, reserving: make(chan struct{}, 1)}
}

// usable reports whether the shared window is to be used now.
func (b *sharedBudget) usable() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.clock.Now().Before(b.failedUntil)
}

func (b *sharedBudget) fail(err error) error {
	b.mu.Lock()
	b.failedUntil = b.clock.Now().Add(sharedRetryAfter)
	b.loaded = false
	b.mu.Unlock()
	return fmt.Errorf("%w: %w", errSharedUnavailable, err)
}

// spend takes one of this client's granted requests, if any is left.
func (b *sharedBudget) spend() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tokens > 0 && b.clock.Now().Before(b.until) {
		b.tokens--
		return true
	}
	return false
}

// acquire waits until the shared budget grants a request; an error
// wrapping errSharedUnavailable means the caller must pace alone. One
// caller at a time reserves for the client, waiting for its grant while
// the others queue behind it, so a client asks the shared window about
// once per grant however many callers wait.
func (b *sharedBudget) acquire(ctx context.Context) error {
	if b.spend() {
		return nil
	}
	select {
	case b.reserving <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	reserving := true
	defer func() {
		if reserving {
			<-b.reserving
		}
	}()
	for {
		if b.spend() { // granted to another caller while this one queued
			return nil
		}
		g, err := b.reserve(ctx)
		if err != nil {
			return err
		}
		if g.wait > 0 {
			if err := b.clock.Sleep(ctx, g.wait); err != nil {
				return err
			}
			continue
		}
		if g.n > 1 {
			b.mu.Lock()
			b.tokens, b.until = g.n-1, g.until
			b.mu.Unlock()
		}
		<-b.reserving // the next caller may reserve while this one waits for its slot
		reserving = false
		if d := g.at.Sub(b.clock.Now()); d > 0 {
			return b.clock.Sleep(ctx, d)
		}
		return nil
	}
}

// grant is what a reservation obtained: n requests, the first of which
// may start at at (the others at once), lapsing at until; or, with n 0,
// how long to wait before asking again.
type grant struct {
	n     int
	at    time.Time
	until time.Time
	wait  time.Duration
}

// reserve obtains a grant from the shared window.
func (b *sharedBudget) reserve(ctx context.Context) (grant, error) {
	return b.update(ctx, func(st budgetState, now time.Time) (budgetState, grant) { return plan(st, now) })
}

// update applies change to the shared state by compare-and-swap, and
// returns change's grant once its state is stored (or needed no store).
func (b *sharedBudget) update(ctx context.Context, change func(budgetState, time.Time) (budgetState, grant)) (grant, error) {
	for range sharedCASAttempts {
		b.mu.Lock()
		st, rev, loaded := b.st, b.rev, b.loaded
		b.mu.Unlock()
		if !loaded {
			var err error
			if st, rev, err = b.load(ctx); err != nil {
				return grant{}, b.fail(err)
			}
		}
		next, g := change(st, b.clock.Now())
		if next == st {
			return g, nil
		}
		data, err := json.Marshal(next)
		if err != nil {
			return grant{}, b.fail(err)
		}
		newRev, stored, err := b.w.Store(ctx, data, rev)
		if err != nil {
			if ctx.Err() != nil {
				return grant{}, ctx.Err()
			}
			return grant{}, b.fail(err)
		}
		b.mu.Lock()
		if stored {
			b.st, b.rev, b.loaded = next, newRev, true
		} else {
			b.loaded = false // another client stored: read it again
		}
		b.mu.Unlock()
		if stored {
			return g, nil
		}
	}
	return grant{}, b.fail(errors.New("too much contention"))
}

func (b *sharedBudget) load(ctx context.Context) (budgetState, uint64, error) {
	data, rev, err := b.w.Load(ctx)
	if err != nil {
		return budgetState{}, 0, err
	}
	var st budgetState
	if rev != 0 {
		if err := json.Unmarshal(data, &st); err != nil {
			// Unreadable (another version's format): start it afresh.
			st = budgetState{}
		}
	}
	b.mu.Lock()
	b.st, b.rev, b.loaded = st, rev, true
	b.mu.Unlock()
	return st, rev, nil
}

// slotAhead is how far ahead of its time a spaced request's slot is
// granted.
const slotAhead = 100 * time.Millisecond

// chunk is how many requests one reservation asks for while the window
// is far from spent: a 200th of the limit, up to 1,000 (one round trip
// to the shared window per chunk), so that what a replica
// holds unspent when demand stops costs little of the window.
func chunk(limit int) int { return max(1, min(limit/200, 1000)) }

// plan grants from st at now: at once while more than a spreadBelow-th of
// the window is left; one request at a time, spaced evenly over the time
// left, below that (as the local limiter does); nothing until the window
// ends once it is spent.
func plan(st budgetState, now time.Time) (budgetState, grant) {
	if st.Limit == 0 {
		// No answer has told the limit yet: go, as the local limiter
		// does, but counted, so that the first answer's window knows of
		// the requests still in flight.
		st.Granted++
		return st, grant{n: 1, at: now}
	}
	if !st.Reset.IsZero() && !now.Before(st.Reset) {
		st = budgetState{Limit: st.Limit} // a new window, its end unknown until answered
	}
	avail := st.Limit - st.Granted
	if avail <= 0 {
		if st.Reset.IsZero() {
			return st, grant{wait: waitForNews}
		}
		// Jitter: the replicas waiting for the same reset do not all
		// arrive at its first instant.
		left := st.Reset.Sub(now)
		return st, grant{wait: left + rand.N(20*time.Millisecond)}
	}
	until := st.Reset
	if until.IsZero() {
		until = now.Add(time.Second) // its window's end is not known yet
	}
	if !st.Reset.IsZero() && avail*spreadBelow <= st.Limit {
		at := now
		if st.Next.After(at) {
			at = st.Next
		}
		if ahead := at.Sub(now); ahead > slotAhead {
			// Slots are handed out just before they come, not far ahead:
			// a caller holding one for long would outlive its deadline and
			// waste it.
			return st, grant{wait: ahead - slotAhead}
		}
		st.Next = at.Add(st.Reset.Sub(at) / time.Duration(avail))
		st.Granted++
		return st, grant{n: 1, at: at, until: until}
	}
	n := max(1, min(chunk(st.Limit), avail-st.Limit/spreadBelow))
	st.Granted += n
	return st, grant{n: n, at: now, until: until}
}

// observe corrects the shared window by an answer's headers: GoCardless's
// count of the window is authoritative, the shared one only ever ahead of
// it (requests granted and not yet answered).
func (b *sharedBudget) observe(ctx context.Context, limit, remaining int, reset time.Time) {
	_, err := b.update(ctx, func(st budgetState, now time.Time) (budgetState, grant) {
		return corrected(st, now, limit, remaining, reset), grant{}
	})
	_ = err // a failure is remembered by fail: the client paces alone for a while
}

// corrected is st after an answer said, at now, limit, remaining and
// reset. Answers about one window may name different ends: RateLimit-Reset
// has whole seconds, and an answer delayed past a second is measured from
// its Date (resetIn), which moves its end later. So an end in the future
// earlier than the known one, within a second after it, or named while the
// known window has more than two seconds left (too early for GoCardless
// to have begun the next) is the same window, whose end is the earliest
// named; only a later end beyond those is a new window.
func corrected(st budgetState, now time.Time, limit, remaining int, reset time.Time) budgetState {
	used := limit - remaining
	switch {
	case !reset.After(now):
		return st // about a window that is over
	case st.Reset.IsZero():
		// The first news of the window that began: the requests granted
		// since count in it, and so does what GoCardless counted.
		st.Reset, st.Granted = reset, max(st.Granted, used)
	case !reset.After(st.Reset.Add(time.Second)) || now.Before(st.Reset.Add(-2*time.Second)):
		st.Granted = max(st.Granted, used)
		if reset.Before(st.Reset) {
			st.Reset = reset
		}
	default:
		// GoCardless began a new window before the known one was thought
		// over: its count is the truth.
		st.Reset, st.Granted, st.Next = reset, used, time.Time{}
	}
	st.Limit = limit
	return st
}
