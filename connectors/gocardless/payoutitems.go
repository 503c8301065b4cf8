package gocardless

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"math"
	"net/url"
	"strings"
)

// Payout item types GoCardless documents (gocardless-pro-java
// PayoutItem.java, gocardless-nodejs src/types/Types.ts PayoutItemType).
// Credits are positive, debits negative; fee items are debits when charged
// and credits when refunded (a late failure or charge-back refunds the
// payment's fees). Other types may appear: keep them, do not reject them.
const (
	PayoutItemPaymentPaidOut      = "payment_paid_out"      // credit
	PayoutItemPaymentFailed       = "payment_failed"        // debit: a paid-out payment failed late
	PayoutItemPaymentChargedBack  = "payment_charged_back"  // debit
	PayoutItemPaymentRefunded     = "payment_refunded"      // debit: a refund of a payment
	PayoutItemRefund              = "refund"                // debit: a refund not linked to a payment
	PayoutItemRefundFundsReturned = "refund_funds_returned" // credit: a refund the payer's bank returned
	PayoutItemGoCardlessFee       = "gocardless_fee"        // debit, or credit when refunded; includes tax
	PayoutItemAppFee              = "app_fee"               // debit, or credit when refunded
	PayoutItemRevenueShare        = "revenue_share"         // partner payouts only
	PayoutItemSurchargeFee        = "surcharge_fee"         // debit, or credit when refunded; includes tax
)

// PayoutItem is one credit or debit making up a payout.
//
// Amount is a decimal string in the currency's minor unit "to one decimal
// place" (gocardless-pro-java PayoutItem.java: "in fractional currency;
// the lowest denomination for the currency (e.g. pence in GBP, cents in
// EUR), to one decimal place"; gocardless-pro-python
// tests/fixtures/payout_items.json: "amount": "45.0"), positive for a
// credit and negative for a debit, and kept exactly as sent. GoCardless
// keeps fees to a tenth of the minor unit: a payout's amount is the sum of
// its items rounded to the minor unit. [PayoutItem.Tenths] reads Amount as
// an exact integer; nothing here uses floats.
type PayoutItem struct {
	Type   string          `json:"type"`
	Amount string          `json:"amount"`
	Links  PayoutItemLinks `json:"links"`
	// Taxes are the taxes (VAT on fees, for British and French creditors)
	// included in Amount.
	Taxes []PayoutItemTax `json:"taxes"`
}

// PayoutItemLinks are what an item is about. Mandate and Refund are
// documented for payment_refunded, refund and refund_funds_returned items
// only, but GoCardless's example also shows them elsewhere: empty when
// absent.
type PayoutItemLinks struct {
	Payment string `json:"payment"`
	Mandate string `json:"mandate"`
	Refund  string `json:"refund"`
}

// PayoutItemTax is a tax included in a fee item. Amounts are decimal
// strings in tenths of the minor unit, like PayoutItem.Amount; fields
// GoCardless sends as null are empty.
type PayoutItemTax struct {
	// Amount of tax in Currency (the item's currency).
	Amount   string `json:"amount"`
	Currency string `json:"currency"`
	// DestinationAmount is the tax in DestinationCurrency, the currency
	// of the creditor's tax authority. Empty while the currencies differ
	// and the exchange rate is not final (the payout's
	// tax_exchange_rates_confirmed event says when it is).
	DestinationAmount   string `json:"destination_amount"`
	DestinationCurrency string `json:"destination_currency"`
	// ExchangeRate from Currency to DestinationCurrency: set only when
	// they differ and the rate is final.
	ExchangeRate string `json:"exchange_rate"`
	// TaxRateID names the jurisdiction, tax type and version (GB_VAT_1).
	TaxRateID string `json:"tax_rate_id"`
}

// UnmarshalJSON keeps amount as its literal text whether GoCardless sends
// it as a string (as documented) or as a JSON number.
func (i *PayoutItem) UnmarshalJSON(b []byte) error {
	type plain PayoutItem
	var v struct {
		plain
		Amount json.RawMessage `json:"amount"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	amount, err := decimalText(v.Amount)
	if err != nil {
		return fmt.Errorf("payout item amount: %w", err)
	}
	*i = PayoutItem(v.plain)
	i.Amount = amount
	return nil
}

// UnmarshalJSON keeps the amounts as their literal text whether they are
// strings or JSON numbers.
func (t *PayoutItemTax) UnmarshalJSON(b []byte) error {
	type plain PayoutItemTax
	var v struct {
		plain
		Amount            json.RawMessage `json:"amount"`
		DestinationAmount json.RawMessage `json:"destination_amount"`
		ExchangeRate      json.RawMessage `json:"exchange_rate"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*t = PayoutItemTax(v.plain)
	var err error
	for _, f := range []struct {
		raw json.RawMessage
		dst *string
	}{{v.Amount, &t.Amount}, {v.DestinationAmount, &t.DestinationAmount}, {v.ExchangeRate, &t.ExchangeRate}} {
		if *f.dst, err = decimalText(f.raw); err != nil {
			return fmt.Errorf("payout item tax: %w", err)
		}
	}
	return nil
}

// decimalText returns a JSON string's value or a JSON number's literal;
// null and absence are "".
func decimalText(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	if raw[0] == '"' {
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return "", fmt.Errorf("not a decimal: %s", raw)
	}
	return n.String(), nil
}

// Tenths returns the item's amount as an exact integer in tenths of the
// currency's minor unit ("-264.0" pence is -2640), or an error if it is
// not a decimal with at most one significant decimal place.
func (i PayoutItem) Tenths() (int64, error) { return ParseTenths(i.Amount) }

// Tenths returns the tax's amount in tenths of the minor unit.
func (t PayoutItemTax) Tenths() (int64, error) { return ParseTenths(t.Amount) }

// maxDecimalLen bounds the decimal strings ParseTenths reads.
const maxDecimalLen = 32

// ParseTenths reads a decimal amount of minor units given to one decimal
// place ("45.0", "-0.5", "12"; further decimals must be zeros) as an
// integer number of tenths of the minor unit.
func ParseTenths(s string) (int64, error) {
	if s == "" || len(s) > maxDecimalLen {
		return 0, fmt.Errorf("gocardless: amount %q is not a decimal of at most %d characters", s, maxDecimalLen)
	}
	neg := strings.HasPrefix(s, "-")
	digits := strings.TrimPrefix(s, "-")
	whole, frac, dotted := strings.Cut(digits, ".")
	if whole == "" || (dotted && frac == "") {
		return 0, fmt.Errorf("gocardless: amount %q is not a decimal", s)
	}
	var t int64
	for _, c := range whole {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("gocardless: amount %q is not a decimal", s)
		}
		d := int64(c - '0')
		if t > (math.MaxInt64-d)/10 {
			return 0, fmt.Errorf("gocardless: amount %q overflows", s)
		}
		t = t*10 + d
	}
	if t > math.MaxInt64/10 {
		return 0, fmt.Errorf("gocardless: amount %q overflows", s)
	}
	t *= 10
	for n, c := range frac {
		switch {
		case c < '0' || c > '9':
			return 0, fmt.Errorf("gocardless: amount %q is not a decimal", s)
		case n == 0 && t > math.MaxInt64-int64(c-'0'):
			return 0, fmt.Errorf("gocardless: amount %q overflows", s)
		case n == 0:
			t += int64(c - '0')
		case c != '0':
			return 0, fmt.Errorf("gocardless: amount %q is finer than a tenth of the minor unit", s)
		}
	}
	if neg {
		t = -t
	}
	return t, nil
}

// RoundTenths rounds an amount in tenths of the minor unit to the nearest
// minor unit, as GoCardless rounds the sum of a payout's items ("we sum
// all of the items and then round to the nearest currency unit",
// gocardless-pro-java PayoutItem.java). GoCardless does not say which way
// half a unit goes, so for an exact half lo and hi are the two neighbours
// (lo < hi); otherwise lo == hi.
func RoundTenths(t int64) (lo, hi int64) {
	q, r := t/10, t%10 // r has t's sign
	switch {
	case r == 5:
		return q, q + 1
	case r == -5:
		return q - 1, q
	case r > 5:
		return q + 1, q + 1
	case r < -5:
		return q - 1, q - 1
	}
	return q, q
}

// ErrPayoutMismatch says a payout's amount is not the sum of its items.
var ErrPayoutMismatch = errors.New("gocardless: payout amount is not the sum of its items")

// CheckPayoutItems checks that amount (a payout's, in minor units) is the
// sum of items rounded to the minor unit, and returns that sum in tenths
// of the minor unit. A difference is ErrPayoutMismatch; an unreadable
// amount is an error naming the item.
func CheckPayoutItems(amount int64, items []PayoutItem) (sumTenths int64, err error) {
	for n, it := range items {
		t, err := it.Tenths()
		if err != nil {
			return 0, fmt.Errorf("gocardless: payout item %d (%s): %w", n, it.Type, err)
		}
		if (t > 0 && sumTenths > math.MaxInt64-t) || (t < 0 && sumTenths < math.MinInt64-t) {
			return 0, fmt.Errorf("gocardless: payout items overflow at item %d", n)
		}
		sumTenths += t
	}
	if lo, hi := RoundTenths(sumTenths); amount != lo && amount != hi {
		return sumTenths, fmt.Errorf("%w: amount %d, items sum to %d tenths of a minor unit", ErrPayoutMismatch, amount, sumTenths)
	}
	return sumTenths, nil
}

// PayoutItemListParams filter ListPayoutItems. Payout is required
// (gocardless-nodejs src/services/payoutItemService.ts: the only
// parameter not optional); Include2020TaxCutover is "", "true" or
// "false" (tax data for April to August 2020; GoCardless's default is
// false). Payout items take no created_at filter: ListParams.CreatedAt
// must be zero.
type PayoutItemListParams struct {
	ListParams
	Payout                string
	Include2020TaxCutover string
}

func (p PayoutItemListParams) query() (url.Values, error) {
	if p.CreatedAt != (TimeRange{}) {
		return nil, errors.New("payout items take no created_at filter")
	}
	if strings.TrimSpace(p.Payout) == "" {
		return nil, errors.New("payout is required")
	}
	switch p.Include2020TaxCutover {
	case "", "true", "false":
	default:
		return nil, fmt.Errorf("include_2020_tax_cutover %q is not true or false", p.Include2020TaxCutover)
	}
	q := url.Values{}
	if err := p.encode(q); err != nil {
		return nil, err
	}
	q.Set("payout", p.Payout)
	set(q, "include_2020_tax_cutover", p.Include2020TaxCutover)
	return q, nil
}

// ListPayoutItems lists one page of a payout's items. GoCardless serves
// items only for payouts created in the last 6 months; older ones answer
// 410 Gone (an *APIError with Code 410).
func (c *Client) ListPayoutItems(ctx context.Context, p PayoutItemListParams) (*Page[PayoutItem], error) {
	q, err := p.query()
	if err != nil {
		return nil, fmt.Errorf("gocardless: list payout items: %w", err)
	}
	page, _, err := list[PayoutItem](ctx, c, payoutItems, q)
	return page, err
}

// PayoutItems iterates over all items of the payout, following the after
// cursor with pages of MaxLimit items. It stops at the first error, which
// it yields. Each page is a call, paced and retried like any other.
func (c *Client) PayoutItems(ctx context.Context, payoutID string) iter.Seq2[PayoutItem, error] {
	return func(yield func(PayoutItem, error) bool) {
		p := PayoutItemListParams{ListParams: ListParams{Limit: MaxLimit}, Payout: payoutID}
		for {
			page, err := c.ListPayoutItems(ctx, p)
			if err != nil {
				yield(PayoutItem{}, err)
				return
			}
			for _, it := range page.Items {
				if !yield(it, nil) {
					return
				}
			}
			if page.After == "" || len(page.Items) == 0 {
				return
			}
			p.After = page.After
		}
	}
}
