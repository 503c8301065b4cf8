package accounts_test

import (
	"testing"

	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/accounts"
)

func TestParseGCSettings(t *testing.T) {
	g, err := accounts.ParseGCSettings(map[string]any{"base_url": "x"})
	if err != nil || g.OwnBacsReferences || g.ACHAuthorisationSource != "" {
		t.Fatalf("defaults: %+v, %v", g, err)
	}
	g, err = accounts.ParseGCSettings(map[string]any{"own_bacs_references": true, "ach_authorisation_source": "paper"})
	if err != nil || !g.OwnBacsReferences || g.ACHAuthorisationSource != "paper" {
		t.Fatalf("set: %+v, %v", g, err)
	}
	for _, bad := range []map[string]any{{"own_bacs_references": "yes"}, {"ach_authorisation_source": "fax"},
		{"ach_authorisation_source": 1}} {
		if _, err := accounts.ParseGCSettings(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
