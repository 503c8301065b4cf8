package gcsim

import (
	"errors"
	"fmt"
)

// Fees is the simulator's price list: what GoCardless keeps of each
// paid-out payment, deducted from the payout as a gocardless_fee item.
// Amounts are minor units of the payment's currency. GoCardless's prices
// depend on the creditor's package, so they are options; the default,
// [DefaultFees], is 1% + 20 minor units, the transaction fee of
// GoCardless's VAT FAQ ("if your total transaction value is £200, the
// GoCardless fee before VAT will be £2 + 20 pence", gocardless.com/legal/vat-faqs).
//
// Fees are kept to a tenth of the minor unit, as GoCardless keeps them
// (gocardless-pro-java PayoutItem.java: "a GoCardless fee we record might
// come to 0.5 pence"): the percentage is rounded half up to a tenth.
// Creditors in GB and FR also pay 20% VAT on every fee (vat-faqs: "the UK
// Standard Rate, which is currently 20%"; GoCardless's "Accounting for
// VAT on GoCardless fees" support article: mainland France 20%), included
// in the fee item and listed in its taxes; other creditors pay none
// (developer.gocardless.com/guides/handling-tax: "merchants who have a
// country_code of GB or FR").
type Fees struct {
	// BasisPoints of the payment's amount: 0–10000.
	BasisPoints int `json:"basis_points"`
	// Fixed per payment: 0–100000.
	Fixed int64 `json:"fixed"`
	// Cap is the most a payment's fee comes to before tax; 0 leaves it
	// uncapped: 0–10000000.
	Cap int64 `json:"cap"`
	// Surcharge is taken (surcharge_fee, plus VAT) for each charge-back
	// and each settled late failure; GoCardless publishes no figure the
	// API shows, so it defaults to none: 0–100000.
	Surcharge int64 `json:"surcharge"`
}

// DefaultFees are the fees of a simulator whose options set none.
var DefaultFees = Fees{BasisPoints: 100, Fixed: 20}

func (f Fees) validate() error {
	var errs []error
	if f.BasisPoints < 0 || f.BasisPoints > 10000 {
		errs = append(errs, fmt.Errorf("fees: basis points %d outside 0..10000", f.BasisPoints))
	}
	if f.Fixed < 0 || f.Fixed > 100000 {
		errs = append(errs, fmt.Errorf("fees: fixed %d outside 0..100000", f.Fixed))
	}
	if f.Cap < 0 || f.Cap > 10000000 {
		errs = append(errs, fmt.Errorf("fees: cap %d outside 0..10000000", f.Cap))
	}
	if f.Surcharge < 0 || f.Surcharge > 100000 {
		errs = append(errs, fmt.Errorf("fees: surcharge %d outside 0..100000", f.Surcharge))
	}
	return errors.Join(errs...)
}

// Charge is what the simulator deducts for a paid-out payment of amount
// minor units collected for a creditor in creditorCountry: the fee and the
// tax on it, in tenths of the minor unit (the gocardless_fee item's
// amount is their sum, negated). Tests and the demo use it to predict
// payouts.
func (f Fees) Charge(amount int64, creditorCountry string) (feeTenths, taxTenths int64) {
	fee := f.feeTenths(amount)
	if v, ok := vatOf(creditorCountry); ok {
		return fee, v.taxTenths(fee)
	}
	return fee, 0
}

// feeTenths is the fee before tax on a payment of amount minor units, in
// tenths of the minor unit.
func (f Fees) feeTenths(amount int64) int64 {
	// amount × bp / 10000 minor units = amount × bp / 1000 tenths.
	fee := (amount*int64(f.BasisPoints)+500)/1000 + f.Fixed*10
	if f.Cap > 0 && fee > f.Cap*10 {
		fee = f.Cap * 10
	}
	return fee
}

// vat is the tax a creditor's country puts on GoCardless's fees.
type vat struct {
	rateID   string // tax_rate_id
	percent  int64
	currency string // the payout's tax_currency
}

// vatOf returns the tax on fees for a creditor in country, if any.
// GB_VAT_1 is the tax_rate_id of gocardless-pro-python
// tests/fixtures/payout_items.json; FR_VAT_1 follows its pattern
// (GoCardless publishes no French example).
func vatOf(country string) (vat, bool) {
	switch country {
	case "GB":
		return vat{rateID: "GB_VAT_1", percent: 20, currency: "GBP"}, true
	case "FR":
		return vat{rateID: "FR_VAT_1", percent: 20, currency: "EUR"}, true
	}
	return vat{}, false
}

// taxTenths is the tax on fee tenths, rounded half up to a tenth.
func (v vat) taxTenths(fee int64) int64 { return (fee*v.percent + 50) / 100 }
