package gocardless

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// stepClock is time that moves only when slept through.
type stepClock struct{ now time.Time }

func (c *stepClock) Now() time.Time { return c.now }
func (c *stepClock) Sleep(ctx context.Context, d time.Duration) error {
	c.now = c.now.Add(d)
	return ctx.Err()
}

var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func headers(date time.Time, limit, remaining int, reset time.Time) http.Header {
	h := http.Header{}
	h.Set("Date", date.Format(http.TimeFormat))
	h.Set("RateLimit-Limit", strconv.Itoa(limit))
	h.Set("RateLimit-Remaining", strconv.Itoa(remaining))
	h.Set("RateLimit-Reset", reset.Format(http.TimeFormat))
	return h
}

// answered takes a slot, observes the answer's headers and finishes the
// request, as attempt does.
func answered(t *testing.T, l *limiter, h http.Header) {
	t.Helper()
	if d := l.take(); d != 0 {
		t.Fatalf("take waited %v, want a slot", d)
	}
	l.observe(context.Background(), h)
	l.done()
}

func TestLimiterBurstsWhileBudgetIsHigh(t *testing.T) {
	clock := &stepClock{now: t0}
	l := &limiter{clock: clock}
	if d := l.take(); d != 0 {
		t.Fatalf("without any answer take waited %v", d)
	}
	l.observe(context.Background(), headers(t0, 100, 60, t0.Add(time.Minute)))
	l.done()
	// 60 -> 26 remaining: above a quarter of 100, no spacing.
	for i := range 34 {
		if d := l.take(); d != 0 {
			t.Fatalf("request %d waited %v with %d of 100 left", i, d, l.remaining)
		}
		l.done()
	}
	if l.remaining != 26 {
		t.Fatalf("remaining = %d, want 26", l.remaining)
	}
}

func TestLimiterSpreadsTheLastQuarter(t *testing.T) {
	clock := &stepClock{now: t0}
	l := &limiter{clock: clock}
	answered(t, l, headers(t0, 100, 20, t0.Add(60*time.Second)))
	// 20 left over 60s: one request every 3s.
	if d := l.take(); d != 0 {
		t.Fatalf("first spread request waited %v", d)
	}
	l.done()
	d := l.take()
	if d != 3*time.Second {
		t.Fatalf("second request waits %v, want 3s (60s over 20 left)", d)
	}
	clock.now = clock.now.Add(d)
	if d := l.take(); d != 0 {
		t.Fatalf("after the spacing take waited %v", d)
	}
	l.done()
}

func TestLimiterWaitsForResetWhenSpent(t *testing.T) {
	clock := &stepClock{now: t0}
	l := &limiter{clock: clock}
	answered(t, l, headers(t0, 10, 0, t0.Add(10*time.Second)))
	d := l.take()
	if d < 10*time.Second || d > 11*time.Second+time.Millisecond {
		t.Fatalf("spent budget waits %v, want the 10s to reset plus at most 10%% jitter", d)
	}
	clock.now = clock.now.Add(d)
	// A new window: its full budget, bursting again.
	for i := range 7 {
		if d := l.take(); d != 0 {
			t.Fatalf("request %d of the new window waited %v", i, d)
		}
		l.done()
	}
}

func TestLimiterResetAcrossClockSkew(t *testing.T) {
	now := t0.Add(700 * time.Millisecond)
	tests := []struct {
		name string
		date time.Time // GoCardless's Date header
	}{
		{"clocks agree (Date truncated)", t0},
		{"GoCardless an hour ahead", t0.Add(time.Hour)},
		{"GoCardless an hour behind", t0.Add(-time.Hour)},
		{"GoCardless 3s behind", t0.Add(-3 * time.Second)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := &limiter{clock: &stepClock{now: now}}
			// The window ends 10s after GoCardless's now.
			serverNow := tc.date.Add(now.Sub(t0))
			answered(t, l, headers(tc.date, 10, 0, serverNow.Add(10*time.Second).Truncate(time.Second).Add(time.Second)))
			d := l.take()
			if d < 10*time.Second || d > 12200*time.Millisecond {
				t.Fatalf("waits %v, want 10-11s (the reset, rounded up to seconds) plus at most 10%% jitter", d)
			}
		})
	}
}

func TestLimiterEstimateOnlyFallsWithinWindow(t *testing.T) {
	clock := &stepClock{now: t0}
	l := &limiter{clock: clock}
	reset := t0.Add(time.Minute)
	answered(t, l, headers(t0, 100, 40, reset))
	// An older answer arrives late claiming more budget.
	answered(t, l, headers(t0, 100, 70, reset))
	if l.remaining != 39 {
		t.Fatalf("remaining = %d, want 39: a late answer must not raise it", l.remaining)
	}
}

func TestLimiterCountsRequestsInFlight(t *testing.T) {
	clock := &stepClock{now: t0}
	l := &limiter{clock: clock}
	answered(t, l, headers(t0, 10, 9, t0.Add(time.Minute)))
	// Five requests are sent; the first answer comes from the next
	// window (remaining 8) and may not count the other four yet.
	for range 5 {
		if d := l.take(); d != 0 {
			t.Fatalf("waited %v", d)
		}
	}
	l.observe(context.Background(), headers(t0, 10, 8, t0.Add(2*time.Minute)))
	l.done()
	if l.remaining != 4 {
		t.Fatalf("remaining = %d, want 4 (8 less the 4 still in flight)", l.remaining)
	}
}

func TestLimiterIgnoresIncompleteHeaders(t *testing.T) {
	clock := &stepClock{now: t0}
	l := &limiter{clock: clock}
	h := headers(t0, 10, 0, t0.Add(time.Minute))
	h.Del("RateLimit-Reset")
	answered(t, l, h)
	h = headers(t0, 10, 0, t0.Add(time.Minute))
	h.Set("RateLimit-Remaining", "many")
	answered(t, l, h)
	if d := l.take(); d != 0 {
		t.Fatalf("waited %v on unreadable headers", d)
	}
}

func TestLimiterAcquireRespectsContext(t *testing.T) {
	clock := &stepClock{now: t0}
	l := &limiter{clock: clock}
	answered(t, l, headers(t0, 10, 0, t0.Add(time.Minute)))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.acquire(ctx); err == nil {
		t.Fatal("acquire with a spent budget and a cancelled context succeeded")
	}
}
