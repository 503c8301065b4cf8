package accounts

import (
	"fmt"
	"slices"
)

// GCSettings are the optional settings of a GoCardless connection that
// change what the orchestrator sends, each for a rule GoCardless documents
// (docs/gocardless.md).
type GCSettings struct {
	// OwnBacsReferences: the creditor may set its own Bacs payment
	// references, which GoCardless allows on its Plus, Pro and Enterprise
	// packages only (gocardless-pro-java PaymentService.java, reference).
	// Setting "own_bacs_references"; default false: GoCardless picks them.
	OwnBacsReferences bool
	// ACHAuthorisationSource is how ACH payers authorised mandates the
	// orchestrator creates directly from ERP bank details: web,
	// telephone or paper (MandateService.java, authorisation_source).
	// Without it GoCardless needs the payer's IP address, which an ERP
	// does not hold, so direct ACH mandates are refused. Setting
	// "ach_authorisation_source"; default none.
	ACHAuthorisationSource string
}

// ParseGCSettings reads a GoCardless connection's optional settings.
func ParseGCSettings(s map[string]any) (GCSettings, error) {
	var g GCSettings
	if v, ok := s["own_bacs_references"]; ok {
		b, isBool := v.(bool)
		if !isBool {
			return g, fmt.Errorf("setting own_bacs_references must be true or false, not %v", v)
		}
		g.OwnBacsReferences = b
	}
	if v, ok := s["ach_authorisation_source"]; ok {
		src, _ := v.(string)
		if !slices.Contains([]string{"web", "telephone", "paper"}, src) {
			return g, fmt.Errorf("setting ach_authorisation_source must be web, telephone or paper, not %v", v)
		}
		g.ACHAuthorisationSource = src
	}
	return g, nil
}
