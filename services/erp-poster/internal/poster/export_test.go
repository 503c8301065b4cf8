package poster

import "time"

// SetLeaseRenew shortens how often a claim is renewed, for the test's
// duration; it returns the function that restores it.
func SetLeaseRenew(d time.Duration) (restore func()) {
	old := leaseRenew
	leaseRenew = d
	return func() { leaseRenew = old }
}
