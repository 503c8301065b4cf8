package views

import (
	"errors"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/ml-connector/ml-connector/platform/money"
)

// Amount is money in minor units with its currency, and the same amount
// written out with the currency's exact decimals ("4310.00"). JSON
// carries both as they are: minor units as an integer, the decimal as a
// string, never a float.
type Amount struct {
	Minor    int64  `json:"amount_minor"`
	Currency string `json:"currency"`
	Decimal  string `json:"amount"`
}

// NewAmount formats minor units of currency.
func NewAmount(minor int64, currency string) Amount {
	d, err := money.FromMinor(minor, currency)
	if err != nil {
		d = strconv.FormatInt(minor, 10) + " (minor units)"
	}
	return Amount{Minor: minor, Currency: currency, Decimal: d}
}

// String is the amount as people read it: "GBP 4,310.00".
func (a Amount) String() string {
	whole, frac, hasFrac := strings.Cut(a.Decimal, ".")
	sign := ""
	if strings.HasPrefix(whole, "-") {
		sign, whole = "-", whole[1:]
	}
	var b strings.Builder
	for i, r := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	out := a.Currency + " " + sign + b.String()
	if hasFrac {
		out += "." + frac
	}
	return out
}

// ErrOverflow is returned when a sum does not fit in minor units.
var ErrOverflow = errors.New("sum does not fit in 64-bit minor units")

// Sum adds amounts per currency, ordered by currency.
func Sum(amounts []Amount) ([]Amount, error) {
	by := map[string]int64{}
	for _, a := range amounts {
		cur := by[a.Currency]
		if (a.Minor > 0 && cur > math.MaxInt64-a.Minor) || (a.Minor < 0 && cur < math.MinInt64-a.Minor) {
			return nil, ErrOverflow
		}
		by[a.Currency] = cur + a.Minor
	}
	out := make([]Amount, 0, len(by))
	for c, m := range by {
		out = append(out, NewAmount(m, c))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Currency < out[j].Currency })
	return out, nil
}

// Join writes amounts as "GBP 4,310.00 and EUR 12.00".
func Join(amounts []Amount) string {
	parts := make([]string, len(amounts))
	for i, a := range amounts {
		parts[i] = a.String()
	}
	switch len(parts) {
	case 0:
		return "nothing"
	case 1:
		return parts[0]
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}
