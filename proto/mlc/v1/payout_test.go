package mlcv1_test

import (
	"testing"

	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
)

// The key names the ERP, connection, company and payout, so deposits of
// one payout into two companies or tenants never share a posting.
func TestPayoutKey(t *testing.T) {
	for _, c := range []struct {
		ref  *mlcv1.ErpRef
		want string
	}{
		{&mlcv1.ErpRef{Erp: mlcv1.Erp_ERP_IFS, Connection: "ifs-prod", Company: "10"}, "payout/ifs/ifs-prod/10/PO123"},
		{&mlcv1.ErpRef{Erp: mlcv1.Erp_ERP_JDE, Connection: "jde", Company: "00001"}, "payout/jde/jde/00001/PO123"},
	} {
		if got := mlcv1.PayoutKey(c.ref, "PO123"); got != c.want {
			t.Errorf("PayoutKey(%v) = %q, want %q", c.ref, got, c.want)
		}
	}
}
