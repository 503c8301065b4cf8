package views

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestAmountString(t *testing.T) {
	for _, c := range []struct {
		minor    int64
		currency string
		want     string
	}{
		{431000, "GBP", "GBP 4,310.00"},
		{5, "EUR", "EUR 0.05"},
		{-123456789, "USD", "USD -1,234,567.89"},
		{1000000, "JPY", "JPY 1,000,000"},
		{100, "SEK", "SEK 1.00"},
	} {
		if got := NewAmount(c.minor, c.currency).String(); got != c.want {
			t.Errorf("%d %s: %q, want %q", c.minor, c.currency, got, c.want)
		}
	}
}

func TestSum(t *testing.T) {
	got, err := Sum([]Amount{NewAmount(400000, "GBP"), NewAmount(1234, "EUR"), NewAmount(31000, "GBP")})
	if err != nil || Join(got) != "EUR 12.34 and GBP 4,310.00" {
		t.Errorf("sum: %v %v", got, err)
	}
	if _, err := Sum([]Amount{NewAmount(math.MaxInt64, "GBP"), NewAmount(1, "GBP")}); !errors.Is(err, ErrOverflow) {
		t.Errorf("overflow: %v", err)
	}
}

func TestParkedDocument(t *testing.T) {
	for _, c := range []struct{ aggID, want string }{
		{"ifs:12:10:INV-1", "INV-1"},               // the ledger's identity
		{"jde:3:00001:4711/RI/001", "4711/RI/001"}, // JD Edwards documents keep their slashes
		{"ifs-acme:10:INV-1", "INV-1"},             // parked before migration 00014
	} {
		if got := parkedDocument(c.aggID, "ifs-acme", map[bool]string{true: "00001", false: "10"}[strings.HasPrefix(c.aggID, "jde")]); got != c.want {
			t.Errorf("parkedDocument(%q) = %q, want %q", c.aggID, got, c.want)
		}
	}
}
