// Package retry holds the rules every client of an external system (GoCardless,
// IFS Cloud, JD Edwards AIS) follows when a call fails transiently:
// exponential backoff with full jitter, bounded attempts, the server's
// Retry-After honoured, and the context's deadline respected.
package retry

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Backoff is an exponential backoff with full jitter: the n-th retry waits a
// uniformly random time in [0, min(Max, Base·2ⁿ)], so many clients recovering
// from the same outage do not retry in lockstep.
type Backoff struct {
	Base     time.Duration
	Max      time.Duration
	Attempts int // total attempts including the first; at least 1
}

// DefaultBackoff suits calls to ERP and payment APIs.
var DefaultBackoff = Backoff{Base: 200 * time.Millisecond, Max: 20 * time.Second, Attempts: 6}

// Delay is the wait before retry number n (0 for the first retry).
func (b Backoff) Delay(n int) time.Duration {
	ceiling := b.Max
	if n < 62 && b.Base > 0 {
		if d := b.Base << n; d > 0 && d < ceiling {
			ceiling = d
		}
	}
	if ceiling <= 0 {
		return 0
	}
	return rand.N(ceiling + 1)
}

// Sleep waits d or until ctx ends, whichever is first, and returns ctx's
// error in the second case. A wait that would outlast ctx's deadline fails
// at once: sleeping only to time out helps nobody.
func Sleep(ctx context.Context, d time.Duration) error {
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < d {
		return context.DeadlineExceeded
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// After reads a Retry-After header, in seconds or as an HTTP date, relative
// to now. ok is false when the header is absent or unreadable.
func After(h http.Header, now time.Time) (d time.Duration, ok bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0, false
		}
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d, true
		}
		return 0, true
	}
	return 0, false
}

// Status reports whether an HTTP status is worth retrying: rate limiting
// and server-side failures. Everything else is the caller's to handle.
func Status(code int) bool {
	switch code {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}
