package jdesim

import (
	"fmt"
	"math/big"
	"strings"

	"github.com/ml-connector/ml-connector/platform/money"
)

// Multi-currency as JD Edwards keeps it in the customer ledger. Sources:
//
//   - "Multicurrency Fields Required in the F03B11Z1 Table"
//     (https://docs.oracle.com/en/applications/jd-edwards/financials/9.2/eoamp/multicurrency-fields-required-in-the-f03b11z1-table.html):
//     CRRM is D (domestic) or F (foreign); CRCD is the transaction
//     currency; ACR, the currency amount, is entered only when CRCD differs
//     from the company's currency in the Company Constants (F0010); CRR is
//     the exchange rate, taken from F0015 when left blank; a blank CRRM is
//     derived from the rest of the transaction.
//   - "Guidelines for Amount, Exchange Rate, and Currency Mode Fields"
//     (https://docs.oracle.com/en/applications/jd-edwards/financials/9.2/eoamp/guidelines-for-amount-exchange-rate-and-currency-mode-fields-for-1.html):
//     domestic transactions carry the amount in AA/AG with mode D and no
//     rate; foreign ones carry it in ACR with mode F, and the system
//     computes the domestic amount with the rate.
//   - F03B13 (https://docs.oracle.com/en/applications/jd-edwards/localizations/9.2/eoaag/f03b13-table.html):
//     domestic amounts are in CKAM/AAP, foreign ones in FCAM/FAP.
//
// So on an F03B11 row AG and AAP are always in the company's currency and,
// in foreign mode, ACR and FAP are the same amounts in CRCD.

// Currency modes (CRRM).
const (
	ModeDomestic = "D"
	ModeForeign  = "F"
)

// Company is an F0010 (Company Constants) row: the company's own, domestic
// currency.
type Company struct {
	CO   string `json:"CO"`
	NAME string `json:"NAME"`
	CRCD string `json:"CRCD"`
}

// defaultRates stand in for the Currency Exchange Rates table (F0015): the
// multiplier from a currency to USD. A pair the table has no rate for
// cannot be converted, as in JDE, where the rate must then be given.
var defaultRates = map[string]string{
	"USD/USD": "1", "EUR/USD": "1.0850000", "GBP/USD": "1.2700000", "CAD/USD": "0.7300000",
	"SEK/USD": "0.0950000", "DKK/USD": "0.1450000", "JPY/USD": "0.0067000", "KWD/USD": "3.2500000",
	"AUD/USD": "0.6600000", "BHD/USD": "2.6500000", "NZD/USD": "0.6000000", "CHF/USD": "1.1300000",
}

// rate returns the F0015 multiplier from currency from to currency to.
func (s *Server) rate(from, to string) (string, bool) {
	if from == to {
		return "1", true
	}
	if r, ok := s.opts.Rates[from+"/"+to]; ok {
		return r, true
	}
	r, ok := defaultRates[from+"/"+to]
	return r, ok
}

// companyCurrency returns the domestic currency of a company, or "" when
// F0010 has no row for it.
func (s *Server) companyCurrency(co string) string {
	co = strings.TrimSpace(co)
	for _, c := range s.data.companies {
		if c.CO == co {
			return c.CRCD
		}
	}
	return ""
}

// toDomestic converts foreign minor units of currency cur to domestic
// minor units of currency dom at rate crr (domestic per foreign),
// rounding half away from zero as JDE rounds to the currency's decimals.
func toDomestic(foreign int64, cur, dom, crr string) (int64, error) {
	r, ok := new(big.Rat).SetString(strings.TrimSpace(crr))
	if !ok || r.Sign() <= 0 {
		return 0, fmt.Errorf("exchange rate %q is not a positive number", crr)
	}
	fe, err := money.Exponent(cur)
	if err != nil {
		return 0, err
	}
	de, err := money.Exponent(dom)
	if err != nil {
		return 0, err
	}
	v := new(big.Rat).SetInt64(foreign)
	v.Mul(v, r)
	v.Mul(v, new(big.Rat).SetFrac(pow10(de), pow10(fe)))
	num, den := v.Num(), v.Denom()
	q, m := new(big.Int).QuoRem(num, den, new(big.Int))
	if m.Sign() != 0 && new(big.Int).Mul(new(big.Int).Abs(m), big.NewInt(2)).Cmp(den) >= 0 {
		if num.Sign() < 0 {
			q.Sub(q, big.NewInt(1))
		} else {
			q.Add(q, big.NewInt(1))
		}
	}
	if !q.IsInt64() {
		return 0, fmt.Errorf("amount out of range")
	}
	return q.Int64(), nil
}

func pow10(n int) *big.Int { return new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil) }

// completeCurrency fills the multi-currency columns of a new F03B11 row as
// the batch invoice processor does for an F03B11Z1 row with a blank mode
// (F03B11Z1 page above): in the company's currency the row is domestic;
// in another, the amounts given in AG/AAP are the transaction amounts and
// move to ACR/FAP, CRR comes from the rate table, and AG/AAP become the
// domestic equivalents. A row whose mode is already set is stored as
// given; so is a row of a company without an F0010 row (multi-currency
// not set up for it), whose amounts are all in CRCD.
func (s *Server) completeCurrency(inv *Invoice) error {
	dom := s.companyCurrency(inv.KCO)
	if inv.CRRM != "" || dom == "" {
		return nil
	}
	if inv.CRCD == dom || inv.CRCD == "" {
		inv.CRRM = ModeDomestic
		return nil
	}
	crr := inv.CRR
	if crr == "" {
		var ok bool
		if crr, ok = s.rate(inv.CRCD, dom); !ok {
			return fmt.Errorf("jdesim: no exchange rate from %s to %s (F0015)", inv.CRCD, dom)
		}
	}
	ag, err := toDomestic(inv.AG, inv.CRCD, dom, crr)
	if err != nil {
		return fmt.Errorf("jdesim: invoice %s: %w", inv.Key(), err)
	}
	aap, err := toDomestic(inv.AAP, inv.CRCD, dom, crr)
	if err != nil {
		return fmt.Errorf("jdesim: invoice %s: %w", inv.Key(), err)
	}
	inv.CRRM, inv.CRR, inv.ACR, inv.FAP, inv.AG, inv.AAP = ModeForeign, crr, inv.AG, inv.AAP, ag, aap
	return nil
}

// receiptMode is the mode a receipt in currency cur against inv must be
// entered in ("Multicurrency Fields Required in the F03B13Z1 Table",
// https://docs.oracle.com/en/applications/jd-edwards/financials/9.2/eoamp/multicurrency-fields-required-in-the-f03b13z1-table.html:
// a receipt in a currency other than the base currency of the invoice it
// pays is foreign, F; the mode must be given whether domestic or foreign).
// The base currency of an invoice is its company's (F0010).
func (s *Server) receiptMode(inv *Invoice) string {
	dom := s.companyCurrency(inv.KCO)
	if dom == "" || inv.CRCD == dom {
		return ModeDomestic
	}
	return ModeForeign
}

// open returns the open amount of inv in its transaction currency CRCD.
func (inv *Invoice) open() int64 {
	if inv.CRRM == ModeForeign {
		return inv.FAP
	}
	return inv.AAP
}

// applyOpen changes the open amount of inv by delta minor units of CRCD,
// keeping the domestic side in step: FAP by delta and AAP by its domestic
// equivalent at the invoice's rate, or exactly to zero when FAP reaches
// zero, so that rounding never leaves a domestic remainder open.
func (s *Server) applyOpen(inv *Invoice, delta int64) {
	if inv.CRRM != ModeForeign {
		inv.AAP += delta
		return
	}
	inv.FAP += delta
	if inv.FAP == 0 {
		inv.AAP = 0
		return
	}
	d, err := toDomestic(delta, inv.CRCD, s.companyCurrency(inv.KCO), inv.CRR)
	if err == nil {
		inv.AAP += d
	}
}

// currencyOf returns the currency of amount column col of rec: the
// company's for the domestic columns, else the table's currency column.
// The caller must hold s.mu.
func (s *Server) currencyOf(t *table, rec record, col string) any {
	if t.domestic[col] {
		if dom := s.companyCurrency(fmt.Sprint(rec.value(t.company))); dom != "" {
			return dom
		}
	}
	return rec.value(t.currency)
}

// PutCompany adds or replaces the F0010 row of a company.
func (s *Server) PutCompany(c Company) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, o := range s.data.companies {
		if o.CO == c.CO {
			s.data.companies[i] = &c
			return
		}
	}
	s.data.companies = append(s.data.companies, &c)
}
