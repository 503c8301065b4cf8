package gcsim

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// SeedData are resources that exist before the simulator starts (a demo's
// customers with active mandates, say), in GoCardless's JSON shape. IDs
// are required; seeding records no events.
type SeedData struct {
	Customers    []Customer            `json:"customers"`
	BankAccounts []CustomerBankAccount `json:"customer_bank_accounts"`
	Mandates     []Mandate             `json:"mandates"`
}

// Seed adds data's resources. It checks them all first and adds nothing if
// any is wrong. Mandates default to active; pending_submission ones start
// their lifecycle now.
func (s *Sim) Seed(data SeedData) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkSeed(data); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	now := s.clock.Now()
	for _, c := range data.Customers {
		c := c.clone()
		c.seq, c.created, c.CreatedAt = s.nextSeq(), now, formatTime(now)
		c.Metadata = nonNil(c.Metadata)
		if c.Language == "" {
			c.Language = "en"
		}
		s.usedIDs[c.ID] = true
		s.customers.add(c.ID, &c)
	}
	for _, b := range data.BankAccounts {
		b := b.clone()
		b.seq, b.created, b.CreatedAt = s.nextSeq(), now, formatTime(now)
		b.Metadata = nonNil(b.Metadata)
		b.Enabled = true
		if b.BankName == "" {
			b.BankName = "SIMULATED BANK " + b.CountryCode
		}
		s.usedIDs[b.ID] = true
		s.accounts.add(b.ID, &b)
	}
	for _, m := range data.Mandates {
		m := m.clone()
		acct, _ := s.accounts.get(m.Links.CustomerBankAccount)
		sc, _ := schemeForCurrency(acct.Currency)
		m.Scheme = sc.name
		m.Links.Customer = acct.Links.Customer
		if m.Links.Creditor == "" {
			m.Links.Creditor = s.creditors.list[0].ID
		}
		if m.Reference == "" {
			m.Reference = "SIM-" + m.ID[min(6, len(m.ID)):]
		}
		m.seq, m.created, m.CreatedAt = s.nextSeq(), now, formatTime(now)
		m.Metadata = nonNil(m.Metadata)
		m.NextPossibleChargeDate = nil
		s.usedIDs[m.ID] = true
		s.mandates.add(m.ID, &m)
		if m.Status == statusPendingSubmission {
			s.startMandate(&m, now)
		} else {
			m.Status, m.activeFrom = statusActive, now
		}
	}
	return nil
}

func (s *Sim) checkSeed(data SeedData) error {
	var errs []error
	ids := map[string]bool{}
	checkID := func(kind, id, prefix string) {
		switch {
		case !strings.HasPrefix(id, prefix) || len(id) <= len(prefix):
			errs = append(errs, fmt.Errorf("%s id %q must start with %s", kind, id, prefix))
		case ids[id] || s.usedIDs[id]:
			errs = append(errs, fmt.Errorf("%s id %q is already used", kind, id))
		}
		ids[id] = true
	}
	customers := map[string]bool{}
	for _, c := range data.Customers {
		checkID("customer", c.ID, prefixCustomer)
		customers[c.ID] = true
		if c.CompanyName == "" && (c.GivenName == "" || c.FamilyName == "") {
			errs = append(errs, fmt.Errorf("customer %s needs given_name and family_name, or company_name", c.ID))
		}
	}
	accounts := map[string]bool{}
	for _, b := range data.BankAccounts {
		checkID("customer bank account", b.ID, prefixBankAccount)
		accounts[b.ID] = true
		if _, ok := s.customers.get(b.Links.Customer); !ok && !customers[b.Links.Customer] {
			errs = append(errs, fmt.Errorf("customer bank account %s: customer %q not found", b.ID, b.Links.Customer))
		}
		sc, ok := schemeForCurrency(b.Currency)
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("customer bank account %s: currency %q not supported", b.ID, b.Currency))
		case !slices.Contains(sc.countries, b.CountryCode):
			errs = append(errs, fmt.Errorf("customer bank account %s: country_code %q does not fit %s", b.ID, b.CountryCode, b.Currency))
		}
		if b.AccountHolderName == "" {
			errs = append(errs, fmt.Errorf("customer bank account %s: account_holder_name is required", b.ID))
		}
	}
	for _, m := range data.Mandates {
		checkID("mandate", m.ID, prefixMandate)
		if _, ok := s.accounts.get(m.Links.CustomerBankAccount); !ok && !accounts[m.Links.CustomerBankAccount] {
			errs = append(errs, fmt.Errorf("mandate %s: customer bank account %q not found", m.ID, m.Links.CustomerBankAccount))
		}
		if m.Links.Creditor != "" {
			if _, ok := s.creditors.get(m.Links.Creditor); !ok {
				errs = append(errs, fmt.Errorf("mandate %s: creditor %q not found", m.ID, m.Links.Creditor))
			}
		}
		if m.Status != "" && m.Status != statusActive && m.Status != statusPendingSubmission {
			errs = append(errs, fmt.Errorf("mandate %s: status must be active or pending_submission", m.ID))
		}
	}
	return errors.Join(errs...)
}
