// Package money converts between the decimal amounts ERPs speak and the
// integer minor units GoCardless speaks, by each currency's ISO 4217
// minor-unit exponent. It never uses floating point and never rounds: an
// amount that cannot be expressed exactly in the currency's minor units is
// an error, because a rounded amount is a different amount.
package money

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"golang.org/x/text/currency"
)

// Errors callers branch on; each is wrapped with the offending input.
var (
	ErrSyntax          = errors.New("not a decimal amount")
	ErrNegative        = errors.New("negative amount")
	ErrOverflow        = errors.New("amount out of range")
	ErrTooPrecise      = errors.New("more decimals than the currency allows")
	ErrUnknownCurrency = errors.New("unknown currency")
)

// Exponent is the number of minor-unit digits of an ISO 4217 currency code:
// 2 for GBP, 0 for JPY, 3 for KWD. Codes for metals, funds and testing
// (XAU, XDR, XTS, …) have no minor unit and are refused.
func Exponent(code string) (int, error) {
	if len(code) != 3 || strings.ToUpper(code) != code {
		return 0, fmt.Errorf("%w %q (want an upper-case ISO 4217 code)", ErrUnknownCurrency, code)
	}
	unit, err := currency.ParseISO(code)
	if err != nil || (code[0] == 'X' && !realXCurrency[code]) {
		return 0, fmt.Errorf("%w %q", ErrUnknownCurrency, code)
	}
	scale, _ := currency.Standard.Rounding(unit)
	if e, ok := iso4217Exceptions[code]; ok {
		scale = e
	}
	return scale, nil
}

// realXCurrency lists the circulating currencies whose codes start with X;
// every other X code is a metal, a fund or a test code.
var realXCurrency = map[string]bool{"XAF": true, "XCD": true, "XOF": true, "XPF": true}

// iso4217Exceptions corrects the places where CLDR's rounding data (which
// x/text/currency carries) differs from the ISO 4217 minor-unit exponent
// that banks and GoCardless use.
var iso4217Exceptions = map[string]int{
	"IQD": 3, "LYD": 3, "RSD": 2, "LAK": 2, "MGA": 2, "ALL": 2, "AFN": 2,
	"IRR": 2, "KPW": 2, "LBP": 2, "MMK": 2, "SLL": 2, "SOS": 2, "SYP": 2, "YER": 2,
	"COP": 2, "HUF": 2, "IDR": 2, "TWD": 2, "PKR": 2, "UZS": 2,
}

// Decimal is a parsed decimal number: Digits × 10^-Scale, with a sign.
type Decimal struct {
	Negative bool
	Digits   string // decimal digits without leading zeros ("0" for zero)
	Scale    int    // digits after the point, trailing zeros removed
}

// ParseDecimal parses plain decimal text: an optional sign, digits, and
// optionally a point followed by digits ("1234.50", "-0.5", "+12"). Exponents,
// thousands separators, spaces, "NaN" and "Inf" are refused: an ERP amount
// that looks like that is a mapping mistake to surface, not to guess at.
func ParseDecimal(s string) (Decimal, error) {
	var d Decimal
	t := s
	if t != "" && (t[0] == '-' || t[0] == '+') {
		d.Negative = t[0] == '-'
		t = t[1:]
	}
	whole, frac, hasPoint := strings.Cut(t, ".")
	if whole == "" || (hasPoint && frac == "") || !allDigits(whole) || !allDigits(frac) {
		return Decimal{}, fmt.Errorf("%w: %q", ErrSyntax, s)
	}
	frac = strings.TrimRight(frac, "0")
	digits := strings.TrimLeft(whole+frac, "0")
	if digits == "" {
		return Decimal{Digits: "0"}, nil // -0 is 0
	}
	d.Digits, d.Scale = digits, len(frac)
	return d, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ToMinor converts a non-negative decimal amount in currency to integer
// minor units: ToMinor("12.34", "GBP") = 1234, ToMinor("1000", "JPY") = 1000.
// Trailing zeros beyond the exponent are accepted ("12.340" GBP is 1234);
// a non-zero digit beyond it ("12.345" GBP) is ErrTooPrecise.
func ToMinor(amount, code string) (int64, error) {
	exp, err := Exponent(code)
	if err != nil {
		return 0, err
	}
	d, err := ParseDecimal(amount)
	if err != nil {
		return 0, err
	}
	if d.Negative {
		return 0, fmt.Errorf("%w: %s %s", ErrNegative, amount, code)
	}
	if d.Scale > exp {
		return 0, fmt.Errorf("%w: %s %s has %d decimals, %s has %d", ErrTooPrecise, amount, code, d.Scale, code, exp)
	}
	minor, err := strconv.ParseInt(d.Digits+strings.Repeat("0", exp-d.Scale), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s %s", ErrOverflow, amount, code)
	}
	return minor, nil
}

// FromMinor formats minor units as a decimal amount with exactly the
// currency's number of decimals: FromMinor(1234, "GBP") = "12.34",
// FromMinor(-5, "EUR") = "-0.05".
func FromMinor(minor int64, code string) (string, error) {
	exp, err := Exponent(code)
	if err != nil {
		return "", err
	}
	if minor == math.MinInt64 {
		return "", fmt.Errorf("%w: %d", ErrOverflow, minor)
	}
	sign := ""
	if minor < 0 {
		sign, minor = "-", -minor
	}
	digits := strconv.FormatInt(minor, 10)
	if exp == 0 {
		return sign + digits, nil
	}
	if len(digits) <= exp {
		digits = strings.Repeat("0", exp-len(digits)+1) + digits
	}
	return sign + digits[:len(digits)-exp] + "." + digits[len(digits)-exp:], nil
}

// FormatTenths writes an amount in tenths of a minor unit as minor units
// with one decimal, as GoCardless writes payout item amounts: "-264.0",
// "0.5" (gocardless-pro-java PayoutItem.java: "in fractional currency ...
// to one decimal place"). Every int64 has its text.
func FormatTenths(tenths int64) string {
	sign, u := "", uint64(tenths)
	if tenths < 0 {
		sign, u = "-", -u // two's complement: right for math.MinInt64 too
	}
	return sign + strconv.FormatUint(u/10, 10) + "." + strconv.FormatUint(u%10, 10)
}

// ScaleImplied turns an integer amount stored with implied decimals (as JD
// Edwards stores them: 123450 with 2 implied decimals is 1234.50) into
// minor units of currency. It refuses what would need rounding.
func ScaleImplied(stored int64, impliedDecimals int, code string) (int64, error) {
	exp, err := Exponent(code)
	if err != nil {
		return 0, err
	}
	if stored < 0 {
		return 0, fmt.Errorf("%w: %d", ErrNegative, stored)
	}
	for ; impliedDecimals > exp; impliedDecimals-- {
		if stored%10 != 0 {
			return 0, fmt.Errorf("%w: %d with %d implied decimals in %s", ErrTooPrecise, stored, impliedDecimals, code)
		}
		stored /= 10
	}
	for ; impliedDecimals < exp; impliedDecimals++ {
		if stored > math.MaxInt64/10 {
			return 0, fmt.Errorf("%w: %d", ErrOverflow, stored)
		}
		stored *= 10
	}
	return stored, nil
}
