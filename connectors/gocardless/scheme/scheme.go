// Package scheme holds what GoCardless's bank-debit schemes allow: the
// currency and countries of each scheme, its default amount limits and the
// longest payment reference its banks carry. The orchestrator checks an
// invoice against these before asking GoCardless, so that an invoice that
// can never be collected becomes an exception with a clear reason instead
// of a failed API call.
package scheme

import (
	"fmt"
	"slices"
)

// Scheme describes one bank-debit scheme.
type Scheme struct {
	Name      string
	Currency  string
	Countries []string // ISO 3166-1 alpha-2 codes of payer bank accounts
	// MinMinor and MaxMinor are GoCardless's default per-payment limits in
	// minor units; 0 means no published limit.
	MinMinor, MaxMinor int64
	// MaxReference is the longest payment reference banks carry; 0 means
	// no scheme limit.
	MaxReference int
	// NoReference: the scheme "doesn't offer references" (PAD;
	// gocardless-pro-java PaymentService.java, reference), so none may be
	// sent.
	NoReference bool
}

// sepaCountries are the countries of the Single Euro Payments Area whose
// payers can be debited in EUR.
var sepaCountries = []string{
	"AD", "AT", "BE", "BG", "CH", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GB", "GI", "GR",
	"HR", "HU", "IE", "IS", "IT", "LI", "LT", "LU", "LV", "MC", "MT", "NL", "NO", "PL", "PT", "RO",
	"SE", "SI", "SK", "SM", "VA",
}

var schemes = []Scheme{
	{Name: "bacs", Currency: "GBP", Countries: []string{"GB"}, MinMinor: 100, MaxMinor: 500000, MaxReference: 10},
	{Name: "sepa_core", Currency: "EUR", Countries: sepaCountries, MinMinor: 100, MaxMinor: 500000, MaxReference: 140},
	{Name: "autogiro", Currency: "SEK", Countries: []string{"SE"}, MinMinor: 1000, MaxMinor: 5000000, MaxReference: 11},
	{Name: "betalingsservice", Currency: "DKK", Countries: []string{"DK"}, MinMinor: 1000, MaxMinor: 5000000, MaxReference: 30},
	{Name: "becs", Currency: "AUD", Countries: []string{"AU"}, MinMinor: 200, MaxMinor: 1000000, MaxReference: 30},
	{Name: "becs_nz", Currency: "NZD", Countries: []string{"NZ"}, MinMinor: 200, MaxMinor: 1000000, MaxReference: 12},
	{Name: "pad", Currency: "CAD", Countries: []string{"CA"}, MinMinor: 200, MaxMinor: 500000, NoReference: true},
	{Name: "ach", Currency: "USD", Countries: []string{"US"}, MaxReference: 10},
}

// ForCurrency returns the scheme that collects currency.
func ForCurrency(currency string) (Scheme, error) {
	for _, s := range schemes {
		if s.Currency == currency {
			return s, nil
		}
	}
	return Scheme{}, fmt.Errorf("no bank-debit scheme collects %q", currency)
}

// ForCountry returns the scheme that debits payers in country in its own
// currency (bacs for GB, autogiro for SE, sepa_core for FR, ...).
func ForCountry(country string) (Scheme, error) {
	for _, s := range schemes {
		if slices.Contains(s.Countries, country) && (s.Name != "sepa_core" || !domestic(country)) {
			return s, nil
		}
	}
	return Scheme{}, fmt.Errorf("no bank-debit scheme debits payers in %q", country)
}

// domestic reports whether country has a scheme of its own besides SEPA.
func domestic(country string) bool {
	for _, s := range schemes {
		if s.Name != "sepa_core" && slices.Contains(s.Countries, country) {
			return true
		}
	}
	return false
}

// ByName returns a scheme by its GoCardless name.
func ByName(name string) (Scheme, error) {
	for _, s := range schemes {
		if s.Name == name {
			return s, nil
		}
	}
	return Scheme{}, fmt.Errorf("unknown scheme %q", name)
}

// Check reports why a payment of amount minor units with reference, from a
// payer in country, cannot be collected under s; nil means it can.
func (s Scheme) Check(amountMinor int64, country, reference string) error {
	switch {
	case amountMinor <= 0:
		return fmt.Errorf("amount must be positive")
	case s.MinMinor > 0 && amountMinor < s.MinMinor:
		return fmt.Errorf("amount %d is below the %s minimum of %d minor units", amountMinor, s.Name, s.MinMinor)
	case s.MaxMinor > 0 && amountMinor > s.MaxMinor:
		return fmt.Errorf("amount %d is above the %s maximum of %d minor units", amountMinor, s.Name, s.MaxMinor)
	case country != "" && !slices.Contains(s.Countries, country):
		return fmt.Errorf("%s cannot debit a payer in %s", s.Name, country)
	case s.NoReference && reference != "":
		return fmt.Errorf("%s takes no payment reference", s.Name)
	case s.MaxReference > 0 && len(reference) > s.MaxReference:
		return fmt.Errorf("reference %q is longer than the %d characters %s allows", reference, s.MaxReference, s.Name)
	}
	return nil
}
