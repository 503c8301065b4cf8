package poller

import (
	"testing"

	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
)

func TestRouteBank(t *testing.T) {
	tests := []struct {
		country, transit, wantBank, wantBranch string
	}{
		{"US", "026073150", "026073150", ""},
		{"CA", "003-12345", "003", "12345"},
		{"CA", "00312345", "003", "12345"},
		{"GB", "200000", "", "200000"},
	}
	for _, tc := range tests {
		bd := &mlcv1.BankDetails{CountryCode: tc.country, BranchCode: tc.transit, AccountNumber: "1234567", AccountType: "checking"}
		routeBank(bd)
		if (bd.GetAccountType() != "") != (tc.country == "US") {
			t.Errorf("%s: account type %q", tc.country, bd.GetAccountType())
		}
		if bd.GetBankCode() != tc.wantBank || bd.GetBranchCode() != tc.wantBranch {
			t.Errorf("%s %s: bank %q branch %q, want %q %q", tc.country, tc.transit, bd.GetBankCode(), bd.GetBranchCode(), tc.wantBank, tc.wantBranch)
		}
	}
}
