package gcsim

import "slices"

// scheme describes one bank-debit scheme as the simulator enforces it.
type scheme struct {
	name      string
	currency  string
	countries []string
	// Default amount limits in minor units (GoCardless publishes them in
	// major units; see the package documentation for the table).
	minAmount, maxAmount int64
	// maxReference is the longest payment reference the scheme carries;
	// 0 means no limit.
	maxReference int
	// activationDays is how many working days after submission a new
	// mandate becomes active; leadDays is how many working days before
	// its charge date a payment is submitted.
	activationDays, leadDays int
}

// sepaCountries are the countries whose EUR accounts the simulator accepts
// for sepa_core: the euro area plus the microstates that use the euro.
var sepaCountries = []string{
	"AD", "AT", "BE", "CY", "DE", "EE", "ES", "FI", "FR", "GR", "HR", "IE", "IT",
	"LT", "LU", "LV", "MC", "MT", "NL", "PT", "SI", "SK", "SM", "VA",
}

var schemes = []scheme{
	{name: "bacs", currency: "GBP", countries: []string{"GB"}, minAmount: 100, maxAmount: 500000, maxReference: 10, activationDays: 2, leadDays: 2},
	{name: "sepa_core", currency: "EUR", countries: sepaCountries, minAmount: 100, maxAmount: 500000, maxReference: 140, activationDays: 1, leadDays: 2},
	{name: "autogiro", currency: "SEK", countries: []string{"SE"}, minAmount: 1000, maxAmount: 5000000, maxReference: 11, activationDays: 2, leadDays: 1},
	{name: "betalingsservice", currency: "DKK", countries: []string{"DK"}, minAmount: 1000, maxAmount: 5000000, maxReference: 30, activationDays: 2, leadDays: 5},
	{name: "becs", currency: "AUD", countries: []string{"AU"}, minAmount: 200, maxAmount: 1000000, maxReference: 30, activationDays: 1, leadDays: 2},
	{name: "becs_nz", currency: "NZD", countries: []string{"NZ"}, minAmount: 200, maxAmount: 1000000, maxReference: 12, activationDays: 1, leadDays: 2},
	{name: "pad", currency: "CAD", countries: []string{"CA"}, minAmount: 200, maxAmount: 500000, maxReference: 0, activationDays: 1, leadDays: 3},
	// GoCardless publishes no default ACH limits; the simulator uses
	// USD 1.00–5,000.00, the same band as bacs and sepa_core.
	{name: "ach", currency: "USD", countries: []string{"US"}, minAmount: 100, maxAmount: 500000, maxReference: 10, activationDays: 1, leadDays: 2},
}

func schemeByName(name string) (*scheme, bool) {
	for i := range schemes {
		if schemes[i].name == name {
			return &schemes[i], true
		}
	}
	return nil, false
}

func schemeForCurrency(currency string) (*scheme, bool) {
	for i := range schemes {
		if schemes[i].currency == currency {
			return &schemes[i], true
		}
	}
	return nil, false
}

// schemeForCountry returns the scheme whose currency a bank account in
// country is debited in by default.
func schemeForCountry(country string) (*scheme, bool) {
	for i := range schemes {
		if slices.Contains(schemes[i].countries, country) {
			return &schemes[i], true
		}
	}
	return nil, false
}

func supportedCurrency(c string) bool {
	_, ok := schemeForCurrency(c)
	return ok
}

// reasonCodes gives, per cause and scheme, the bank reason code the
// simulator reports. Bacs (ARUDD/AUDDIS/ADDACS/DDICA), SEPA (ISO 20022),
// ACH (NACHA R-codes) and PAD (Payments Canada 9xx) codes are the schemes'
// real ones; where a scheme has no entry the event carries no reason_code.
var reasonCodes = map[string]map[string]string{
	// payment failures
	"insufficient_funds":   {"bacs": "ARUDD-0", "sepa_core": "AM04", "ach": "R01", "pad": "901", "becs": "6", "becs_nz": "6"},
	"refer_to_payer":       {"bacs": "ARUDD-0", "sepa_core": "MS03", "ach": "R09", "pad": "901", "becs": "6", "becs_nz": "6"},
	"bank_account_closed":  {"bacs": "ARUDD-B", "sepa_core": "AC04", "ach": "R02", "pad": "905", "becs": "3", "becs_nz": "3"},
	"invalid_bank_details": {"bacs": "ARUDD-5", "sepa_core": "AC01", "ach": "R03", "pad": "912", "becs": "5", "becs_nz": "5"},
	"mandate_cancelled":    {"bacs": "ARUDD-1", "sepa_core": "MD01", "ach": "R07", "pad": "917", "becs": "2", "becs_nz": "2"},
	// chargebacks
	"authorisation_disputed": {"bacs": "DDICA-4", "sepa_core": "MD01", "ach": "R10", "pad": "915"},
	"refund_requested":       {"sepa_core": "MD06"},
	// mandate set-up failures
	"direct_debit_not_enabled": {"bacs": "AUDDIS-F", "sepa_core": "AG01", "ach": "R20", "pad": "907"},
}

// mandateReasonCodes overrides reasonCodes for mandate events, whose Bacs
// codes come from AUDDIS (set-up) and ADDACS (later cancellation).
var mandateReasonCodes = map[string]map[string]string{
	"failed": {
		"invalid_bank_details": "AUDDIS-5",
		"bank_account_closed":  "AUDDIS-B",
	},
	"cancelled": {
		"mandate_cancelled":   "ADDACS-1",
		"bank_account_closed": "ADDACS-B",
	},
}

func reasonCode(cause, scheme string) string {
	return reasonCodes[cause][scheme]
}

func mandateReasonCode(action, cause, scheme string) string {
	if scheme == "bacs" {
		if c, ok := mandateReasonCodes[action][cause]; ok {
			return c
		}
	}
	return reasonCode(cause, scheme)
}

// causeDescriptions are the human-readable details.description values.
var causeDescriptions = map[string]string{
	"insufficient_funds":       "The customer's account had insufficient funds to make this payment.",
	"refer_to_payer":           "The customer's bank wasn't able to pay the Direct Debit. The customer should contact their bank.",
	"bank_account_closed":      "The customer's bank account was closed.",
	"invalid_bank_details":     "The bank details for this mandate were invalid.",
	"mandate_cancelled":        "The mandate for this payment was cancelled at a bank branch.",
	"authorisation_disputed":   "The customer disputed having authorised the payment.",
	"refund_requested":         "The customer asked their bank to refund the payment.",
	"direct_debit_not_enabled": "The customer's bank account does not support Direct Debit.",
	"mandate_expired":          "The mandate expired because no payments were collected on it for 13 months.",
	"refund_bounced":           "The customer's bank returned the refund.",
	"refund_failed":            "The refund could not be sent to the customer's bank.",
	"refund_funds_returned":    "The refund was paid, but the funds were later returned by the customer's bank.",
}

// Causes a scenario may choose, per resource and outcome.
var (
	paymentFailureCauses = []string{"insufficient_funds", "refer_to_payer", "bank_account_closed", "invalid_bank_details", "mandate_cancelled"}
	chargebackCauses     = []string{"authorisation_disputed", "refund_requested"}
	mandateFailureCauses = []string{"invalid_bank_details", "bank_account_closed", "direct_debit_not_enabled"}
	mandateCancelCauses  = []string{"bank_account_closed", "mandate_cancelled"}
	// retryableCauses are the failures GoCardless retries automatically
	// for payments created with retry_if_possible.
	retryableCauses = []string{"insufficient_funds", "refer_to_payer"}
)
