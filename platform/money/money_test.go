package money_test

import (
	"errors"
	"testing"

	"github.com/ml-connector/ml-connector/platform/money"
)

func TestExponent(t *testing.T) {
	tests := []struct {
		code string
		want int
		err  error
	}{
		{"GBP", 2, nil}, {"EUR", 2, nil}, {"SEK", 2, nil}, {"USD", 2, nil}, {"CAD", 2, nil},
		{"JPY", 0, nil}, {"KRW", 0, nil}, {"KWD", 3, nil}, {"BHD", 3, nil}, {"IQD", 3, nil},
		{"HUF", 2, nil}, {"XOF", 0, nil}, {"CLF", 4, nil},
		{"XAU", 0, money.ErrUnknownCurrency}, {"XTS", 0, money.ErrUnknownCurrency},
		{"ABC", 0, money.ErrUnknownCurrency}, {"gbp", 0, money.ErrUnknownCurrency}, {"GB", 0, money.ErrUnknownCurrency},
	}
	for _, tc := range tests {
		got, err := money.Exponent(tc.code)
		if !errors.Is(err, tc.err) || (tc.err == nil && got != tc.want) {
			t.Errorf("Exponent(%q) = %d, %v; want %d, %v", tc.code, got, err, tc.want, tc.err)
		}
	}
}

func TestToMinor(t *testing.T) {
	tests := []struct {
		amount, code string
		want         int64
		err          error
	}{
		{"12.34", "GBP", 1234, nil},
		{"12.3", "GBP", 1230, nil},
		{"12", "GBP", 1200, nil},
		{"+12.00", "EUR", 1200, nil},
		{"0.01", "EUR", 1, nil},
		{"0", "EUR", 0, nil},
		{"-0.00", "EUR", 0, nil},
		{"12.340000", "GBP", 1234, nil},
		{"0001234.5", "SEK", 123450, nil},
		{"1000", "JPY", 1000, nil},
		{"1000.0", "JPY", 1000, nil},
		{"1.234", "KWD", 1234, nil},
		{"92233720368547758.07", "USD", 9223372036854775807, nil},
		{"12.345", "GBP", 0, money.ErrTooPrecise},
		{"1000.5", "JPY", 0, money.ErrTooPrecise},
		{"1.2345", "KWD", 0, money.ErrTooPrecise},
		{"-12.34", "GBP", 0, money.ErrNegative},
		{"92233720368547758.08", "USD", 0, money.ErrOverflow},
		{"1e3", "GBP", 0, money.ErrSyntax},
		{"1,234.00", "GBP", 0, money.ErrSyntax},
		{" 12", "GBP", 0, money.ErrSyntax},
		{"12.", "GBP", 0, money.ErrSyntax},
		{".5", "GBP", 0, money.ErrSyntax},
		{"", "GBP", 0, money.ErrSyntax},
		{"NaN", "GBP", 0, money.ErrSyntax},
		{"--1", "GBP", 0, money.ErrSyntax},
		{"12.34", "XXX", 0, money.ErrUnknownCurrency},
	}
	for _, tc := range tests {
		got, err := money.ToMinor(tc.amount, tc.code)
		if !errors.Is(err, tc.err) || got != tc.want {
			t.Errorf("ToMinor(%q, %s) = %d, %v; want %d, %v", tc.amount, tc.code, got, err, tc.want, tc.err)
		}
	}
}

func TestFromMinor(t *testing.T) {
	tests := []struct {
		minor int64
		code  string
		want  string
	}{
		{1234, "GBP", "12.34"}, {5, "EUR", "0.05"}, {0, "EUR", "0.00"}, {-5, "EUR", "-0.05"},
		{1000, "JPY", "1000"}, {1, "KWD", "0.001"}, {123456, "KWD", "123.456"},
		{9223372036854775807, "USD", "92233720368547758.07"},
	}
	for _, tc := range tests {
		got, err := money.FromMinor(tc.minor, tc.code)
		if err != nil || got != tc.want {
			t.Errorf("FromMinor(%d, %s) = %q, %v; want %q", tc.minor, tc.code, got, err, tc.want)
		}
	}
	if _, err := money.FromMinor(-9223372036854775808, "USD"); !errors.Is(err, money.ErrOverflow) {
		t.Errorf("FromMinor(MinInt64): %v", err)
	}
}

func TestFormatTenths(t *testing.T) {
	tests := []struct {
		tenths int64
		want   string
	}{
		{-2640, "-264.0"}, {5, "0.5"}, {-5, "-0.5"}, {0, "0.0"}, {-205, "-20.5"}, {100000, "10000.0"},
		{9223372036854775807, "922337203685477580.7"}, {-9223372036854775808, "-922337203685477580.8"},
	}
	for _, tc := range tests {
		if got := money.FormatTenths(tc.tenths); got != tc.want {
			t.Errorf("FormatTenths(%d) = %q; want %q", tc.tenths, got, tc.want)
		}
	}
}

func TestScaleImplied(t *testing.T) {
	tests := []struct {
		stored  int64
		implied int
		code    string
		want    int64
		err     error
	}{
		{123450, 2, "USD", 123450, nil},
		{1234500, 3, "USD", 123450, nil},
		{1234, 0, "USD", 123400, nil},
		{1234501, 3, "USD", 0, money.ErrTooPrecise},
		{5000, 2, "JPY", 50, nil},
		{5001, 2, "JPY", 0, money.ErrTooPrecise},
		{-1, 2, "USD", 0, money.ErrNegative},
		{9223372036854775807, 0, "USD", 0, money.ErrOverflow},
	}
	for _, tc := range tests {
		got, err := money.ScaleImplied(tc.stored, tc.implied, tc.code)
		if !errors.Is(err, tc.err) || got != tc.want {
			t.Errorf("ScaleImplied(%d, %d, %s) = %d, %v; want %d, %v", tc.stored, tc.implied, tc.code, got, err, tc.want, tc.err)
		}
	}
}

// FuzzToMinor: whatever the input, ToMinor either refuses it or returns an
// amount that formats back to the same value, so nothing is ever rounded.
func FuzzToMinor(f *testing.F) {
	for _, s := range []string{"12.34", "0.01", "12.345", "-1", "1e3", "92233720368547758.07", "000.10", "+0", "."} {
		f.Add(s, "GBP")
		f.Add(s, "JPY")
		f.Add(s, "KWD")
	}
	f.Fuzz(func(t *testing.T, amount, code string) {
		minor, err := money.ToMinor(amount, code)
		if err != nil {
			return
		}
		if minor < 0 {
			t.Fatalf("ToMinor(%q, %s) = %d < 0", amount, code, minor)
		}
		back, err := money.FromMinor(minor, code)
		if err != nil {
			t.Fatalf("FromMinor(%d, %s): %v", minor, code, err)
		}
		a, _ := money.ParseDecimal(amount)
		b, _ := money.ParseDecimal(back)
		if a.Digits != b.Digits || a.Scale != b.Scale {
			t.Fatalf("%q %s -> %d -> %q: value changed", amount, code, minor, back)
		}
		again, err := money.ToMinor(back, code)
		if err != nil || again != minor {
			t.Fatalf("round trip %q -> %d -> %q -> %d, %v", amount, minor, back, again, err)
		}
	})
}
