package accounts

import (
	"fmt"
	"slices"
	"time"
)

// Mandate set-up paths of a GoCardless connection (setting
// "mandate_setup").
const (
	// SetupBillingRequest, the default: the payer authorises a billing
	// request flow, as on any GoCardless account.
	SetupBillingRequest = "billing_request"
	// SetupDirect creates bank accounts and mandates from ERP bank
	// details, for creditors GoCardless approved for custom payment pages.
	SetupDirect = "direct"
)

// Bounds of "mandate_wait".
const (
	DefaultMandateWait = 14 * 24 * time.Hour
	minMandateWait     = time.Hour
	maxMandateWait     = 90 * 24 * time.Hour
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
	// MandateSetup is SetupBillingRequest or SetupDirect.
	MandateSetup string
	// NotifyPayer asks GoCardless to email the payer the billing request
	// (setting "notify_payer"; default false: AR sends the link). GoCardless
	// documents the notify action for Pay by Bank requests only, so a
	// refusal is recorded and the link is still shown.
	NotifyPayer bool
	// MandateWait is how long an invoice waits for its customer to
	// authorise a mandate before it becomes an exception (setting
	// "mandate_wait", a Go duration, 1h to 2160h; default 14 days).
	MandateWait time.Duration
}

// ParseGCSettings reads a GoCardless connection's optional settings.
func ParseGCSettings(s map[string]any) (GCSettings, error) {
	g := GCSettings{MandateSetup: SetupBillingRequest, MandateWait: DefaultMandateWait}
	if v, ok := s["mandate_setup"]; ok {
		m, _ := v.(string)
		if m != SetupBillingRequest && m != SetupDirect {
			return g, fmt.Errorf("setting mandate_setup must be %s or %s, not %v", SetupBillingRequest, SetupDirect, v)
		}
		g.MandateSetup = m
	}
	if v, ok := s["notify_payer"]; ok {
		b, isBool := v.(bool)
		if !isBool {
			return g, fmt.Errorf("setting notify_payer must be true or false, not %v", v)
		}
		g.NotifyPayer = b
	}
	if v, ok := s["mandate_wait"]; ok {
		str, _ := v.(string)
		d, err := time.ParseDuration(str)
		if err != nil || d < minMandateWait || d > maxMandateWait {
			return g, fmt.Errorf("setting mandate_wait must be a duration from %v to %v, not %v", minMandateWait, maxMandateWait, v)
		}
		g.MandateWait = d
	}
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
