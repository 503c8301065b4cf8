package gcsim

import (
	"net/http"
	"strconv"
	"time"
)

// limiter counts requests per token in fixed windows: a window opens with
// the first request after the previous one closed and lasts window. That
// makes the count and the reset time easy to reason about in tests.
type limiter struct {
	limit   int
	window  time.Duration
	windows map[string]*rateWindow
}

type rateWindow struct {
	start time.Time
	count int
}

// rateState is what the RateLimit-* headers report.
type rateState struct {
	limit, remaining int
	reset            time.Time
	ok               bool
}

func newLimiter(limit int, window time.Duration) *limiter {
	return &limiter{limit: limit, window: window, windows: make(map[string]*rateWindow)}
}

func (l *limiter) reset() { clear(l.windows) }

// take counts one request by token at wall time now.
func (l *limiter) take(token string, now time.Time) rateState {
	w := l.windows[token]
	if w == nil || !now.Before(w.start.Add(l.window)) {
		w = &rateWindow{start: now}
		l.windows[token] = w
	}
	w.count++
	return rateState{
		limit:     l.limit,
		remaining: max(0, l.limit-w.count),
		reset:     w.start.Add(l.window),
		ok:        w.count <= l.limit,
	}
}

// setHeaders writes RateLimit-Limit, -Remaining and -Reset. The reset is an
// HTTP date, which has whole seconds, so it is rounded up: a client that
// waits until then never arrives early.
func (r rateState) setHeaders(h http.Header) {
	h.Set("RateLimit-Limit", strconv.Itoa(r.limit))
	h.Set("RateLimit-Remaining", strconv.Itoa(r.remaining))
	h.Set("RateLimit-Reset", ceilSecond(r.reset).UTC().Format(http.TimeFormat))
}

// retryAfter is the Retry-After value, in whole seconds (at least 1), until
// the window resets.
func (r rateState) retryAfter(now time.Time) string {
	return strconv.FormatInt(ceilSeconds(ceilSecond(r.reset).Sub(now)), 10)
}

func ceilSecond(t time.Time) time.Time {
	if tt := t.Truncate(time.Second); !tt.Equal(t) {
		return tt.Add(time.Second)
	}
	return t
}

func ceilSeconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	return max(s, 1)
}

func rateLimited(h http.Header) *apiError {
	e := usageError(http.StatusTooManyRequests, "rate_limit_exceeded", "Rate limit exceeded")
	e.header = h
	return e
}
