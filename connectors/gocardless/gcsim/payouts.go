package gcsim

import (
	"strings"
	"time"
)

// payoutFor returns the payout collecting the creditor's payments in
// currency paid out at the run at, creating it (and scheduling its arrival)
// if this is the run's first.
func (s *Sim) payoutFor(creditor, currency string, at time.Time) *Payout {
	key := creditor + "/" + currency + "/" + formatTime(at)
	if po, ok := s.openPay[key]; ok {
		return po
	}
	cr, _ := s.creditors.get(creditor)
	arrival := addWorkingDays(dateOf(at), 1)
	po := &Payout{
		ID:          s.newID(prefixPayout),
		CreatedAt:   formatTime(at),
		ArrivalDate: formatDate(arrival),
		Currency:    currency,
		PayoutType:  "merchant",
		Status:      "pending",
		Links: PayoutLinks{
			Creditor:            creditor,
			CreditorBankAccount: cr.Links["default_"+strings.ToLower(currency)+"_payout_account"],
		},
		Metadata: map[string]string{},
		seq:      s.nextSeq(),
		created:  at,
	}
	po.Reference = "SIM-" + po.ID[2:]
	s.payouts.add(po.ID, po)
	s.openPay[key] = po
	s.schedule(runAt(arrival), func(at time.Time) {
		delete(s.openPay, key)
		po.Status = "paid"
		s.emit(at, "payouts", "paid", map[string]string{"payout": po.ID},
			EventDetails{Origin: originGoCardless, Cause: "payout_paid",
				Description: "GoCardless has transferred the payout to the creditor's bank account."},
			nil, po.Metadata)
	})
	return po
}

func (s *Sim) listPayouts(r *request) (int, any, *apiError) {
	creditor, status, currency := eq(r.query, "creditor"), eq(r.query, "status"), eq(r.query, "currency")
	return list("payouts", s.payouts.list, r.query,
		func(id string) (uint64, bool) { return seqOf(&s.payouts, id) },
		func(p *Payout) time.Time { return p.created },
		func(p *Payout) bool { return creditor(p.Links.Creditor) && status(p.Status) && currency(p.Currency) },
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
