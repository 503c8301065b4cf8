package gcsim

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/ml-connector/ml-connector/platform/money"
)

// Payouts. GoCardless adds what it collects to the creditor's balance
// less its fees, and "periodically (usually every working day)" pays the
// balance out per currency; other movements (refunds, charge-backs) are
// credits or debits of that balance, and each payout's items are the
// credits and debits it bundles (gocardless-pro-java PayoutItem.java and
// developer.gocardless.com/payouts/reconciling-payouts). The simulator:
//
//   - puts each payment paid out at a run into that run's payout for its
//     creditor and currency, as a payment_paid_out credit and a
//     gocardless_fee debit (see Fees);
//   - keeps everything else (payment_refunded when a refund is submitted,
//     refund_funds_returned when it bounces, fails or its funds come
//     back, and for a charge-back payment_charged_back, the fee given
//     back as a gocardless_fee credit and any surcharge_fee) in the
//     balance, and at the end of the run that creates a payout moves
//     those movements into it, oldest first, while its amount stays
//     positive ("we take any positive balance"); the rest waits for a
//     later payout. A charge-back's chargeback_settled event is emitted
//     when it lands in a payout, linking the payout;
//   - pays the payout (status paid, arrival_date set, a payouts paid
//     event) at the next working day's run.
//
// A payout's amount is the sum of its items rounded to the minor unit and
// deducted_fees the fee items' sum, negated and rounded: half a unit goes
// away from zero (GoCardless does not say which way; clients should accept
// either).

// PayoutItem is one credit or debit of a payout (gocardless-pro-python
// tests/fixtures/payout_items.json). Amount is a decimal in the minor
// unit with one decimal place, signed: credits positive, debits negative.
type PayoutItem struct {
	Type   string          `json:"type"`
	Amount string          `json:"amount"`
	Links  PayoutItemLinks `json:"links"`
	Taxes  []PayoutItemTax `json:"taxes"`

	tenths int64
	fee    bool   // counts towards the payout's deducted_fees
	cursor string // opaque to clients, as GoCardless's are
	seq    uint64 // place in its payout
}

// PayoutItemLinks are what an item is about. Mandate and refund are set
// for payment_refunded and refund_funds_returned items only, as
// gocardless-pro-java PayoutItem.java documents them.
type PayoutItemLinks struct {
	Payment string `json:"payment,omitempty"`
	Mandate string `json:"mandate,omitempty"`
	Refund  string `json:"refund,omitempty"`
}

// PayoutItemTax is the tax included in a fee item. Amount is positive for
// tax charged and negative for tax given back with a refunded fee
// (GoCardless's examples show only the first). DestinationAmount and
// ExchangeRate are null while Currency and DestinationCurrency differ:
// GoCardless fills them in when it confirms the tax exchange rates, which
// the simulator does not simulate; with the same currency the amount is
// repeated and the rate null ("Present only if the currency and the
// destination currency don't match").
type PayoutItemTax struct {
	Amount              string  `json:"amount"`
	Currency            string  `json:"currency"`
	DestinationAmount   *string `json:"destination_amount"`
	DestinationCurrency string  `json:"destination_currency"`
	ExchangeRate        *string `json:"exchange_rate"`
	TaxRateID           string  `json:"tax_rate_id"`
}

func (i *PayoutItem) key() string   { return i.cursor }
func (i *PayoutItem) seqNo() uint64 { return i.seq }

func (i PayoutItem) clone() PayoutItem {
	taxes := make([]PayoutItemTax, len(i.Taxes))
	copy(taxes, i.Taxes)
	i.Taxes = taxes
	return i
}

// movement is a change of a creditor's balance that waits for a payout:
// items that belong together (a charge-back and the fee it gives back)
// and what to emit once they are in a payout.
type movement struct {
	items   []*PayoutItem
	settled func(payout string, at time.Time)
}

// roundTenths rounds tenths to the minor unit, half away from zero.
func roundTenths(t int64) int64 {
	if t < 0 {
		return -((-t + 5) / 10)
	}
	return (t + 5) / 10
}

// item makes a payout item of tenths.
func (*Sim) item(typ string, tenths int64, links PayoutItemLinks) *PayoutItem {
	return &PayoutItem{Type: typ, Amount: money.FormatTenths(tenths), Links: links, Taxes: []PayoutItemTax{}, tenths: tenths}
}

// feeItem is the gocardless_fee on payment p: a debit when charged
// (sign -1), a credit when given back (sign +1), nil when the price list
// makes it nothing. Its tax is included.
func (s *Sim) feeItem(p *Payment, sign int64) *PayoutItem {
	fee := s.fees.feeTenths(p.Amount)
	if fee == 0 {
		return nil
	}
	return s.withVAT(PayoutItemGoCardlessFee, fee, sign, p)
}

// surchargeItem is the surcharge_fee on payment p's failure or
// charge-back, or nil when the price list has none.
func (s *Sim) surchargeItem(p *Payment) *PayoutItem {
	if s.fees.Surcharge == 0 {
		return nil
	}
	return s.withVAT(PayoutItemSurchargeFee, s.fees.Surcharge*10, -1, p)
}

// withVAT makes a fee item of fee tenths plus the creditor's VAT on it.
func (s *Sim) withVAT(typ string, fee, sign int64, p *Payment) *PayoutItem {
	cr, _ := s.creditors.get(p.Links.Creditor)
	v, taxed := vatOf(cr.CountryCode)
	tax := int64(0)
	if taxed {
		tax = v.taxTenths(fee)
	}
	it := s.item(typ, sign*(fee+tax), PayoutItemLinks{Payment: p.ID})
	it.fee = true
	if taxed {
		t := PayoutItemTax{Amount: money.FormatTenths(-sign * tax), Currency: p.Currency, DestinationCurrency: v.currency, TaxRateID: v.rateID}
		if p.Currency == v.currency {
			same := t.Amount
			t.DestinationAmount = &same
		}
		it.Taxes = append(it.Taxes, t)
	}
	return it
}

// Payout item types (gocardless-pro-java PayoutItem.java).
const (
	PayoutItemPaymentPaidOut      = "payment_paid_out"
	PayoutItemPaymentFailed       = "payment_failed"
	PayoutItemPaymentChargedBack  = "payment_charged_back"
	PayoutItemPaymentRefunded     = "payment_refunded"
	PayoutItemRefundFundsReturned = "refund_funds_returned"
	PayoutItemGoCardlessFee       = "gocardless_fee"
	PayoutItemSurchargeFee        = "surcharge_fee"
)

// add puts items into the payout and recomputes its amounts.
func (po *Payout) add(items ...*PayoutItem) {
	for _, it := range items {
		if it == nil {
			continue
		}
		// Cursors and paging order are the item's place in the payout.
		it.seq = uint64(len(po.items) + 1)
		it.cursor = fmt.Sprintf("%s_%d", po.ID, it.seq)
		po.items = append(po.items, it)
		po.sum += it.tenths
		if it.fee {
			po.fees += it.tenths
		}
	}
	po.Amount = roundTenths(po.sum)
	po.DeductedFees = -roundTenths(po.fees)
}

// balanceKey names a creditor's balance in one currency.
func balanceKey(creditor, currency string) string { return creditor + "/" + currency }

// queueMovement adds a movement to the creditor's balance in currency, for
// the next payout to take.
func (s *Sim) queueMovement(creditor, currency string, m movement) {
	k := balanceKey(creditor, currency)
	s.balances[k] = append(s.balances[k], m)
}

// paymentDebit queues the debit of payment p's charge-back or late failure
// (typ), the fee given back and any surcharge; settled names the payments
// event (chargeback_settled, late_failure_settled) emitted once a payout
// takes them.
func (s *Sim) paymentDebit(p *Payment, typ, settled, description string) {
	items := []*PayoutItem{s.item(typ, -p.Amount*10, PayoutItemLinks{Payment: p.ID})}
	if it := s.feeItem(p, +1); it != nil {
		items = append(items, it)
	}
	surcharge := s.surchargeItem(p)
	if surcharge != nil {
		items = append(items, surcharge)
	}
	s.queueMovement(p.Links.Creditor, p.Currency, movement{items: items, settled: func(payout string, at time.Time) {
		links := map[string]string{"payment": p.ID, "payout": payout}
		s.emit(at, "payments", settled, links,
			EventDetails{Origin: originGoCardless, Cause: settled, Description: description}, nil, p.Metadata)
		if surcharge != nil {
			// A payments action of GoCardless's event reference (see
			// docs/gocardless.md); its cause and description are the
			// simulator's, no example of it being published.
			s.emit(at, "payments", "surcharge_fee_debited", links,
				EventDetails{Origin: originGoCardless, Cause: "surcharge_fee_debited",
					Description: "GoCardless has debited a surcharge fee for this payment from a payout."}, nil, p.Metadata)
		}
	}})
}

// refundMovement queues a refund's debit (payment_refunded) or the credit
// of its funds coming back (refund_funds_returned).
func (s *Sim) refundMovement(rf *Refund, pay *Payment, typ string) {
	sign := int64(-1)
	if typ == PayoutItemRefundFundsReturned {
		sign = 1
	}
	it := s.item(typ, sign*rf.Amount*10, PayoutItemLinks{Payment: pay.ID, Mandate: rf.Links.Mandate, Refund: rf.ID})
	s.queueMovement(pay.Links.Creditor, rf.Currency, movement{items: []*PayoutItem{it}})
}

// newPayout creates a pending payout of the creditor in currency at at,
// paid at the next working day's run.
func (s *Sim) newPayout(creditor, currency string, at time.Time) *Payout {
	cr, _ := s.creditors.get(creditor)
	po := &Payout{
		ID:         s.newID(prefixPayout),
		CreatedAt:  formatTime(at),
		Currency:   currency,
		PayoutType: "merchant",
		Status:     "pending",
		Links: PayoutLinks{
			Creditor:            creditor,
			CreditorBankAccount: cr.Links["default_"+strings.ToLower(currency)+"_payout_account"],
		},
		Metadata: map[string]string{},
		seq:      s.nextSeq(),
		created:  at,
	}
	if v, ok := vatOf(cr.CountryCode); ok {
		po.TaxCurrency = v.currency
	}
	po.Reference = "SIM-" + po.ID[2:]
	s.payouts.add(po.ID, po)
	arrival := addWorkingDays(dateOf(at), 1)
	s.schedule(runAt(arrival), func(at time.Time) {
		po.Status = "paid"
		po.ArrivalDate = formatDate(arrival)
		s.emit(at, "payouts", "paid", map[string]string{"payout": po.ID},
			EventDetails{Origin: originGoCardless, Cause: "payout_paid",
				Description: "GoCardless has transferred the payout to the creditor's bank account."},
			nil, po.Metadata)
	})
	return po
}

// payoutFor returns the payout collecting the creditor's payments in
// currency paid out at the run at, creating it if this is the run's first.
// Once the run's other work is done, the payout takes what waits in the
// balance.
func (s *Sim) payoutFor(creditor, currency string, at time.Time) *Payout {
	key := balanceKey(creditor, currency) + "/" + formatTime(at)
	if po, ok := s.openPay[key]; ok {
		return po
	}
	po := s.newPayout(creditor, currency, at)
	s.openPay[key] = po
	s.schedule(at, func(at time.Time) {
		delete(s.openPay, key)
		s.takeBalance(po, at, false)
	})
	return po
}

// takeBalance moves the creditor's waiting movements into po, oldest
// first: all of them when force is set, else while po's amount stays
// positive.
func (s *Sim) takeBalance(po *Payout, at time.Time, force bool) {
	k := balanceKey(po.Links.Creditor, po.Currency)
	waiting := s.balances[k]
	n := 0
	for ; n < len(waiting); n++ {
		sum := po.sum
		for _, it := range waiting[n].items {
			sum += it.tenths
		}
		if !force && roundTenths(sum) <= 0 {
			break
		}
		po.add(waiting[n].items...)
		if waiting[n].settled != nil {
			waiting[n].settled(po.ID, at)
		}
	}
	s.balances[k] = waiting[n:]
	if len(s.balances[k]) == 0 {
		delete(s.balances, k)
	}
}

// settleNow pays the creditor's whole balance in currency into a payout
// of its own now, even one of debits only: what the *_settled scenario
// simulators promise ("additionally included as a debit item in a
// payout", gocardless-pro-java ScenarioSimulator.java). GoCardless does
// not say what it pays when the balance is negative; the simulator's
// payout then has a negative amount.
func (s *Sim) settleNow(creditor, currency string, at time.Time) {
	s.takeBalance(s.newPayout(creditor, currency, at), at, true)
}

func (s *Sim) listPayouts(r *request) (int, any, *apiError) {
	creditor, status, currency := eq(r.query, "creditor"), eq(r.query, "status"), eq(r.query, "currency")
	account, typ, reference := eq(r.query, "creditor_bank_account"), eq(r.query, "payout_type"), eq(r.query, "reference")
	return list("payouts", s.payouts.list, r.query,
		func(id string) (uint64, bool) { return seqOf(&s.payouts, id) },
		func(p *Payout) time.Time { return p.created },
		func(p *Payout) bool {
			return creditor(p.Links.Creditor) && status(p.Status) && currency(p.Currency) &&
				account(p.Links.CreditorBankAccount) && typ(p.PayoutType) && reference(p.Reference)
		},
		func(p *Payout) Payout { return p.clone() })
}

func (s *Sim) getPayout(r *request) (int, any, *apiError) {
	p, ok := s.payouts.get(r.id())
	if !ok {
		return 0, nil, notFound()
	}
	return 200, envelope("payouts", p.clone()), nil
}

func (s *Sim) updatePayout(r *request) (int, any, *apiError) {
	p, ok := s.payouts.get(r.id())
	if !ok {
		return 0, nil, notFound()
	}
	if aerr := updateMetadata(r, "payouts", &p.Metadata); aerr != nil {
		return 0, nil, aerr
	}
	return 200, envelope("payouts", p.clone()), nil
}

// payoutItemsKept is how long GoCardless serves a payout's items:
// "Payout items can only be retrieved for payouts created in the last 6
// months. Requests for older payouts will return an HTTP status 410 Gone"
// (gocardless-pro-java PayoutItemService.java).
const payoutItemsKept = 6 // months

// listPayoutItems serves GET /payout_items?payout=PO... (limit, after,
// before, include_2020_tax_cutover: gocardless-pro-java
// PayoutItemService.java). payout is required (gocardless-nodejs
// src/services/payoutItemService.ts declares it the one parameter not
// optional). GoCardless publishes neither the error for a missing payout
// nor the reason of its 410: the simulator answers invalid_filters, as
// for other bad list parameters, and gone.
func (s *Sim) listPayoutItems(r *request) (int, any, *apiError) {
	id := r.query.Get("payout")
	if id == "" {
		return 0, nil, invalidFilters("payout is required")
	}
	switch r.query.Get("include_2020_tax_cutover") {
	case "", "true", "false":
	default:
		return 0, nil, invalidFilters("include_2020_tax_cutover must be true or false")
	}
	po, ok := s.payouts.get(id)
	if !ok {
		return 0, nil, notFound()
	}
	if po.created.Before(r.now.AddDate(0, -payoutItemsKept, 0)) {
		return 0, nil, usageError(http.StatusGone, "gone",
			"Payout items can only be retrieved for payouts created in the last 6 months")
	}
	return list("payout_items", po.items, r.query,
		func(cursor string) (uint64, bool) {
			for _, it := range po.items {
				if it.cursor == cursor {
					return it.seq, true
				}
			}
			return 0, false
		},
		nil, nil, func(it *PayoutItem) PayoutItem { return it.clone() })
}
