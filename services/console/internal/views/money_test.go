package views

import (
	"errors"
	"math"
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
