package accounts_test

import (
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/accounts"
)

func TestParseGCSettings(t *testing.T) {
	g, err := accounts.ParseGCSettings(map[string]any{"base_url": "x"})
	if err != nil || g.OwnBacsReferences || g.ACHAuthorisationSource != "" || g.MandateSetup != accounts.SetupBillingRequest ||
		g.NotifyPayer || g.MandateWait != 14*24*time.Hour {
		t.Fatalf("defaults: %+v, %v", g, err)
	}
	g, err = accounts.ParseGCSettings(map[string]any{"own_bacs_references": true, "ach_authorisation_source": "paper",
		"mandate_setup": "direct", "notify_payer": true, "mandate_wait": "48h"})
	if err != nil || !g.OwnBacsReferences || g.ACHAuthorisationSource != "paper" || g.MandateSetup != accounts.SetupDirect ||
		!g.NotifyPayer || g.MandateWait != 48*time.Hour {
		t.Fatalf("set: %+v, %v", g, err)
	}
	for _, bad := range []map[string]any{{"own_bacs_references": "yes"}, {"ach_authorisation_source": "fax"},
		{"ach_authorisation_source": 1}, {"mandate_setup": "custom"}, {"notify_payer": "no"}, {"mandate_wait": "30m"},
		{"mandate_wait": "100d"}, {"mandate_wait": 5}} {
		if _, err := accounts.ParseGCSettings(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
