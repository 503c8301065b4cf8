package collect

// SetSweepBatch sets how many parked invoices one sweep looks at, for
// tests, and returns a function restoring it.
func SetSweepBatch(n int) (restore func()) {
	old := sweepBatch
	sweepBatch = n
	return func() { sweepBatch = old }
}

// Holder is the name c holds its leases under.
func Holder(c *Collector) string { return c.holder }
