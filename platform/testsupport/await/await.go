// Package await waits in tests for a condition that other goroutines
// make true, polling it, for state there is nothing else to wait on. It
// needs only the standard library, so modules that do not start NATS or
// Postgres (the connectors) can use it without their dependencies.
package await

import (
	"testing"
	"time"
)

// Interval is how often Until polls.
const Interval = 5 * time.Millisecond

// Until polls cond every Interval until it holds, failing the test with
// what if it does not within timeout.
func Until(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(Interval)
	}
}
