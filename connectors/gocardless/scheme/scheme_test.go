package scheme_test

import (
	"strings"
	"testing"

	"github.com/ml-connector/ml-connector/connectors/gocardless/scheme"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		currency, country, reference string
		amount                       int64
		wantErr                      string
	}{
		{"GBP", "GB", "INV10", 12345, ""},
		{"GBP", "GB", "INV10", 99, "below the bacs minimum"},
		{"GBP", "GB", "INV10", 500001, "above the bacs maximum"},
		{"GBP", "FR", "INV10", 12345, "bacs cannot debit a payer in FR"},
		{"GBP", "GB", "INV-0000000010", 12345, "longer than the 10 characters"},
		{"EUR", "FR", strings.Repeat("R", 140), 12345, ""},
		{"EUR", "US", "R", 12345, "sepa_core cannot debit a payer in US"},
		{"SEK", "SE", "12345678901", 500, "below the autogiro minimum"},
		{"SEK", "SE", "123456789012", 100000, "longer than the 11"},
		{"CAD", "CA", "", 1000, ""},
		{"CAD", "CA", "R", 1000, "pad takes no payment reference"}, // PaymentService.java: PAD "doesn't offer references"
		{"USD", "US", "INV1", 100000000, ""},
		{"EUR", "FR", "R", 0, "amount must be positive"},
	}
	for _, tc := range tests {
		s, err := scheme.ForCurrency(tc.currency)
		if err != nil {
			t.Fatal(err)
		}
		err = s.Check(tc.amount, tc.country, tc.reference)
		if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s %s %q %d: %v, want %q", tc.currency, tc.country, tc.reference, tc.amount, err, tc.wantErr)
		}
	}
	for country, want := range map[string]string{"GB": "bacs", "SE": "autogiro", "DK": "betalingsservice", "FR": "sepa_core",
		"US": "ach", "CA": "pad"} {
		if s, err := scheme.ForCountry(country); err != nil || s.Name != want {
			t.Errorf("ForCountry(%s) = %s, %v, want %s", country, s.Name, err, want)
		}
	}
	if _, err := scheme.ForCountry("JP"); err == nil {
		t.Error("JP has a scheme")
	}
	if _, err := scheme.ForCurrency("JPY"); err == nil {
		t.Error("JPY has a scheme")
	}
	if s, err := scheme.ByName("becs_nz"); err != nil || s.Currency != "NZD" {
		t.Errorf("ByName(becs_nz) = %+v, %v", s, err)
	}
}
