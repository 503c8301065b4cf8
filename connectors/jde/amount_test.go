package jde

import (
	"errors"
	"testing"
)

func TestParseAmount(t *testing.T) {
	decimal := AmountFormat{Decimals: CurrencyDecimals}
	implied := AmountFormat{Implied: true, Decimals: CurrencyDecimals}
	implied2 := AmountFormat{Implied: true, Decimals: 2}
	tests := []struct {
		in, currency string
		f            AmountFormat
		want         string
		bad          bool
	}{
		{in: "1234.5", currency: "USD", f: decimal, want: "1234.50"},
		{in: "1234.50", currency: "USD", f: decimal, want: "1234.50"},
		{in: "0", currency: "USD", f: decimal, want: "0.00"},
		{in: "-12.3", currency: "GBP", f: decimal, want: "-12.30"},
		{in: "1000", currency: "JPY", f: decimal, want: "1000"},
		{in: "1000.00", currency: "JPY", f: decimal, want: "1000"},
		{in: "1.234", currency: "KWD", f: decimal, want: "1.234"},
		{in: "0.005", currency: "BHD", f: decimal, want: "0.005"},
		{in: "99999999999.99", currency: "EUR", f: decimal, want: "99999999999.99"},
		{in: "123450", currency: "USD", f: implied, want: "1234.50"},
		{in: "1000", currency: "JPY", f: implied, want: "1000"},
		{in: "1234", currency: "KWD", f: implied, want: "1.234"},
		{in: "5", currency: "BHD", f: implied, want: "0.005"},
		{in: "-250", currency: "EUR", f: implied, want: "-2.50"},
		{in: "100", currency: "JPY", f: implied2, want: "1"}, // fixed two implied decimals
		{in: "12345", currency: "KWD", f: implied2, want: "123.450"},
		{in: "1234.567", currency: "USD", f: decimal, bad: true}, // would need rounding
		{in: "1000.5", currency: "JPY", f: decimal, bad: true},
		{in: "1.2345", currency: "KWD", f: decimal, bad: true},
		{in: "150", currency: "JPY", f: implied2, bad: true},
		{in: "12.50", currency: "USD", f: implied, bad: true},
		{in: "1e3", currency: "USD", f: decimal, bad: true},
		{in: "1,000.00", currency: "USD", f: decimal, bad: true},
		{in: "", currency: "USD", f: decimal, bad: true},
		{in: "abc", currency: "USD", f: decimal, bad: true},
		{in: "--1", currency: "USD", f: decimal, bad: true},
		{in: "-+1", currency: "USD", f: implied, bad: true},
		{in: "1.00", currency: "XXX", f: decimal, bad: true},
		{in: "100", currency: "usd", f: implied, bad: true},
		{in: "99999999999999999999", currency: "USD", f: implied, bad: true},
	}
	for _, tt := range tests {
		got, err := ParseAmount(tt.in, tt.currency, tt.f)
		if tt.bad {
			if !errors.Is(err, ErrBadAmount) {
				t.Errorf("ParseAmount(%q, %s, %+v) = %q, %v; want ErrBadAmount", tt.in, tt.currency, tt.f, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseAmount(%q, %s, %+v) = %q, %v; want %q", tt.in, tt.currency, tt.f, got, err, tt.want)
		}
	}
}
