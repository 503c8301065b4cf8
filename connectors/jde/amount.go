package jde

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/ml-connector/ml-connector/platform/money"
)

// ErrBadAmount is wrapped by every amount parsing error.
var ErrBadAmount = errors.New("jde: bad amount")

// CurrencyDecimals as AmountFormat.Decimals means "as many implied decimals
// as the currency has minor-unit digits" (JDE's currency-decimals mode).
const CurrencyDecimals = -1

// AmountFormat says how AIS returns amount columns (AG, AAP, ...). Whether
// AIS applies the implied decimals itself depends on the release and the
// output type, so it is a per-connection setting.
type AmountFormat struct {
	// Implied: AIS returns JDE's stored integers (123450 for 1234.50)
	// rather than decimals.
	Implied bool
	// Decimals is the number of implied decimals, or CurrencyDecimals.
	Decimals int
}

// ParseAmount reads an amount column of currency exactly, never through
// floating point, and returns it with exactly the currency's number of
// decimals ("1234.50" for USD, "1234" for JPY, "1.234" for KWD). The text
// is a JSON number's literal text or a string. A value that would need
// rounding to fit the currency is an error, as is anything but plain
// decimal digits.
func ParseAmount(text, currency string, f AmountFormat) (string, error) {
	text = strings.TrimSpace(text)
	neg := strings.HasPrefix(text, "-")
	abs := strings.TrimPrefix(text, "-")
	if neg && strings.ContainsAny(abs[:min(1, len(abs))], "+-") {
		return "", fmt.Errorf("%w: %q has two signs", ErrBadAmount, text)
	}
	var minor int64
	if f.Implied {
		stored, err := strconv.ParseInt(abs, 10, 64)
		if err != nil {
			return "", fmt.Errorf("%w: %q is not an integer amount with implied decimals", ErrBadAmount, text)
		}
		decimals := f.Decimals
		if decimals == CurrencyDecimals {
			if decimals, err = money.Exponent(currency); err != nil {
				return "", fmt.Errorf("%w: %w", ErrBadAmount, err)
			}
		}
		if minor, err = money.ScaleImplied(stored, decimals, currency); err != nil {
			return "", fmt.Errorf("%w: %w", ErrBadAmount, err)
		}
	} else {
		var err error
		if minor, err = money.ToMinor(abs, currency); err != nil {
			return "", fmt.Errorf("%w: %w", ErrBadAmount, err)
		}
	}
	if neg {
		minor = -minor
	}
	out, err := money.FromMinor(minor, currency)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadAmount, err)
	}
	return out, nil
}
