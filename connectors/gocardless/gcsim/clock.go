package gcsim

import (
	"sync"
	"time"
)

// Clock is the simulator's notion of "now". Lifecycles (submission,
// confirmation, payouts, subscription payments) are scheduled on it, and
// event timestamps come from it. Rate limiting and webhook retries use the
// wall clock instead, because they pace real network traffic.
type Clock interface {
	Now() time.Time
	// Advance moves the clock forward by d (d <= 0 does nothing).
	Advance(d time.Duration)
}

// ManualClock stands still until advanced; tests use it so that every
// transition happens exactly when they say.
type ManualClock struct {
	mu sync.Mutex
	t  time.Time
}

// DefaultStart is where a [ManualClock] made by [New] starts when the
// options name no clock: a Monday morning, before the daily submission run.
var DefaultStart = time.Date(2025, time.January, 6, 8, 0, 0, 0, time.UTC)

// NewManualClock returns a clock reading start until advanced.
func NewManualClock(start time.Time) *ManualClock {
	return &ManualClock{t: start.UTC()}
}

// Now returns the current simulated time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *ManualClock) Advance(d time.Duration) {
	if d <= 0 {
		return
	}
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// ScaledClock runs speed times faster than the wall clock from start, plus
// whatever it has been advanced by. Speed 1 with start = now is a real-time
// clock that can still be pushed forward for a demo.
type ScaledClock struct {
	mu        sync.Mutex
	start     time.Time
	wallStart time.Time
	speed     int64
	offset    time.Duration
	wall      func() time.Time
}

// NewRealClock returns a clock that follows the wall clock (and can be
// advanced past it).
func NewRealClock() *ScaledClock { return NewScaledClock(time.Now(), 1) }

// NewScaledClock returns a clock that starts at start and runs speed times
// as fast as the wall clock (speed < 1 counts as 1).
func NewScaledClock(start time.Time, speed int) *ScaledClock {
	if speed < 1 {
		speed = 1
	}
	return &ScaledClock{start: start.UTC(), wallStart: time.Now(), speed: int64(speed), wall: time.Now}
}

// Now returns the current simulated time.
func (c *ScaledClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	elapsed := c.wall().Sub(c.wallStart)
	return c.start.Add(time.Duration(int64(elapsed)*c.speed) + c.offset).UTC()
}

// Advance moves the clock forward by d.
func (c *ScaledClock) Advance(d time.Duration) {
	if d <= 0 {
		return
	}
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}
