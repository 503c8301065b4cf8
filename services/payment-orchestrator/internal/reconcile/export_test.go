package reconcile

import "testing"

// SetMaxDeposit lowers what one deposit may carry for the test's length.
func SetMaxDeposit(t *testing.T, lines, fees int) {
	oldLines, oldFees := maxDepositLines, maxDepositFees
	maxDepositLines, maxDepositFees = lines, fees
	t.Cleanup(func() { maxDepositLines, maxDepositFees = oldLines, oldFees })
}

// PayoutLease is how long a payout's fetch holds its lease.
const PayoutLease = payoutLease
