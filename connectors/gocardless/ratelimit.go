package gocardless

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// spreadBelow is the share of the window's budget below which requests
// are spaced out: above it calls go at once (bursts are fine), below it
// the rest is spread over the time left, so the window never runs dry
// early and the limit is approached but not hit.
const spreadBelow = 4 // remaining <= limit/spreadBelow

// waitForNews is how long a request waits, when the budget is spent and
// the end of the window is unknown, for an answer in flight to describe
// the new window.
const waitForNews = 50 * time.Millisecond

// limiter paces requests by the RateLimit-* headers of the answers: by a
// budget shared with the token's other clients when it has one
// (sharedbudget.go), else, or while that is unavailable, alone.
type limiter struct {
	clock  Clock
	off    bool
	shared *sharedBudget

	mu        sync.Mutex
	limit     int       // requests per window; 0 until an answer says
	remaining int       // what this client may still send in the window
	reset     time.Time // local time the window ends; zero if unknown
	next      time.Time // earliest start of the next request while spreading
	inflight  int
}

// acquire waits until a request may start and counts it as sent.
func (l *limiter) acquire(ctx context.Context) error {
	if l.off {
		return nil
	}
	if l.shared != nil && l.shared.usable() {
		err := l.shared.acquire(ctx)
		if !errors.Is(err, errSharedUnavailable) {
			if err == nil {
				l.mu.Lock()
				l.inflight++
				l.mu.Unlock()
			}
			return err
		}
		// Paced alone until the shared window answers again.
	}
	for {
		d := l.take()
		if d <= 0 {
			return nil
		}
		if err := l.clock.Sleep(ctx, d); err != nil {
			return err
		}
	}
}

// take counts a request as sent and returns 0, or returns how long to
// wait before asking again.
func (l *limiter) take() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	if l.limit == 0 {
		l.inflight++
		return 0
	}
	if !l.reset.IsZero() && !now.Before(l.reset) {
		// A new window: assume its full budget until answers say more.
		l.remaining = l.limit - l.inflight
		l.reset, l.next = time.Time{}, time.Time{}
	}
	if l.remaining <= 0 {
		if l.reset.IsZero() {
			return waitForNews
		}
		left := l.reset.Sub(now)
		// Jitter so that callers waiting for the same reset do not all
		// arrive at its first instant.
		return left + rand.N(left/10+time.Millisecond)
	}
	if !l.reset.IsZero() && l.remaining*spreadBelow <= l.limit {
		if now.Before(l.next) {
			return l.next.Sub(now)
		}
		l.next = now.Add(l.reset.Sub(now) / time.Duration(l.remaining))
	}
	l.remaining--
	l.inflight++
	return 0
}

// done marks a sent request as finished, answered or not.
func (l *limiter) done() {
	if l.off {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inflight--
}

// observe learns the state of the window from an answer's headers. The
// estimate only goes down within a window: answers arrive out of order,
// and requests in flight are not yet counted by the answer. An answer
// naming another end of window (a new window, or a 429 saying when to
// come back) replaces the estimate.
func (l *limiter) observe(ctx context.Context, h http.Header) {
	if l.off {
		return
	}
	limit, err1 := strconv.Atoi(h.Get("RateLimit-Limit"))
	remaining, err2 := strconv.Atoi(h.Get("RateLimit-Remaining"))
	now := l.clock.Now()
	left, ok := resetIn(h, now)
	if err1 != nil || err2 != nil || !ok || limit <= 0 || left <= 0 {
		// Unreadable, or about a window that is over.
		return
	}
	reset := now.Add(left)
	if l.shared != nil && l.shared.usable() {
		l.shared.observe(ctx, limit, remaining, reset)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	// The other requests in flight may be counted in remaining or not;
	// assume not, which errs on the side of waiting. done() for this
	// answer has not run yet, hence the -1.
	estimate := remaining - (l.inflight - 1)
	// Reset has second resolution: an end within a second of the known
	// one is the same window.
	if l.reset.IsZero() || reset.Sub(l.reset).Abs() > time.Second {
		l.remaining = estimate
		l.reset = reset
		l.next = time.Time{}
	} else {
		l.remaining = min(l.remaining, estimate)
		// Answers measured across a second boundary differ by one;
		// the later end is the safe one.
		if reset.After(l.reset) {
			l.reset = reset
		}
	}
	l.limit = limit
}

// resetIn reads RateLimit-Reset, an HTTP date, as a duration from now.
// When the answer's Date says GoCardless's clock differs from ours by more
// than Date's whole-second truncation explains, the reset is measured from
// Date instead, so a skewed clock neither waits too long nor returns early.
func resetIn(h http.Header, now time.Time) (time.Duration, bool) {
	reset, err := http.ParseTime(h.Get("RateLimit-Reset"))
	if err != nil {
		return 0, false
	}
	from := now
	if date, err := http.ParseTime(h.Get("Date")); err == nil {
		if skew := now.Sub(date); skew > time.Second || skew < -time.Second {
			from = date
		}
	}
	return max(reset.Sub(from), 0), true
}
