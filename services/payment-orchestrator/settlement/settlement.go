// Package settlement is what AR ticks the bank statement off with: the
// GoCardless payouts (one bank line each) with the items and invoices each
// settled, and the month-end report of collected, fees, refunds,
// charge-backs, paid out and in flight per connection, company and
// currency. mlcctl and the console both read through it, so the figures a
// person sees on the page and in a script are the same figures.
//
// Money is never a float here: amounts are summed in Postgres as integers
// (minor units, or the tenths of minor units GoCardless gives payout items
// in) and written out as exact decimals.
package settlement

import (
	"errors"
	"strconv"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ml-connector/ml-connector/platform/money"
)

// Reader reads payouts and reports from the orchestrator's database.
type Reader struct {
	db *pgxpool.Pool
}

// New returns a reader over db.
func New(db *pgxpool.Pool) *Reader { return &Reader{db: db} }

// ErrNotFound is returned for an unknown payout or connection.
var ErrNotFound = errors.New("not found")

// ErrInput is returned for a query outside the bounds a reader accepts.
var ErrInput = errors.New("invalid query")

// Money is an amount in minor units with its currency, and the same
// amount as an exact decimal ("4310.00"), as the console's JSON writes
// every amount.
type Money struct {
	Minor    int64  `json:"amount_minor"`
	Currency string `json:"currency"`
	Decimal  string `json:"amount"`
}

// NewMoney formats minor units of currency.
func NewMoney(minor int64, currency string) Money {
	return Money{Minor: minor, Currency: currency, Decimal: Decimal(minor, currency)}
}

// Decimal writes minor units of currency as an exact decimal; a currency
// the money package does not know is written in minor units, saying so,
// rather than guessed at.
func Decimal(minor int64, currency string) string {
	d, err := money.FromMinor(minor, currency)
	if err != nil {
		return strconv.FormatInt(minor, 10) + " (minor units)"
	}
	return d
}
