package gcsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

type bankAccountParams struct {
	AccountHolderName *string         `json:"account_holder_name"`
	AccountNumber     *string         `json:"account_number"`
	BranchCode        *string         `json:"branch_code"`
	BankCode          *string         `json:"bank_code"`
	IBAN              *string         `json:"iban"`
	CountryCode       *string         `json:"country_code"`
	Currency          *string         `json:"currency"`
	AccountType       *string         `json:"account_type"`
	Metadata          json.RawMessage `json:"metadata"`
	Links             struct {
		Customer *string `json:"customer"`
	} `json:"links"`
}

// localFormat is how a country's local bank details look: each code is
// all digits with a length in [min, max]; a zero max means the code is not
// used in that country.
type localFormat struct {
	account, branch, bank [2]int
	bankName              string
}

var localFormats = map[string]localFormat{
	"GB": {account: [2]int{8, 8}, branch: [2]int{6, 6}, bankName: "BARCLAYS BANK PLC"},
	"US": {account: [2]int{4, 17}, bank: [2]int{9, 9}, bankName: "SIMULATED BANK OF AMERICA"},
	"CA": {account: [2]int{7, 12}, branch: [2]int{5, 5}, bank: [2]int{3, 3}, bankName: "SIMULATED BANK OF CANADA"},
	"AU": {account: [2]int{5, 9}, branch: [2]int{6, 6}, bankName: "SIMULATED AUSTRALIAN BANK"},
	"NZ": {account: [2]int{7, 10}, branch: [2]int{4, 4}, bank: [2]int{2, 2}, bankName: "SIMULATED NZ BANK"},
	"SE": {account: [2]int{6, 10}, branch: [2]int{4, 5}, bankName: "SIMULATED SVENSK BANK"},
	"DK": {account: [2]int{6, 10}, bank: [2]int{4, 4}, bankName: "SIMULATED DANSK BANK"},
}

func (s *Sim) createBankAccount(r *request) (int, any, *apiError) {
	if aerr := s.idempotencyConflict(r, "customer_bank_accounts"); aerr != nil {
		return 0, nil, aerr
	}
	var p bankAccountParams
	if aerr := decodeEnvelope(r, "customer_bank_accounts", &p); aerr != nil {
		return 0, nil, aerr
	}
	fe := fieldErrors{resource: "customer_bank_accounts"}
	ba := &CustomerBankAccount{Enabled: true}
	ba.Metadata = parseMetadata(p.Metadata, &fe)
	if blank(p.AccountHolderName) {
		fe.add("account_holder_name", "is required")
	} else {
		ba.AccountHolderName = strings.TrimSpace(*p.AccountHolderName)
	}
	var customer *Customer
	if blank(p.Links.Customer) {
		fe.add("links[customer]", "is required")
	} else if c, ok := s.customers.get(*p.Links.Customer); ok {
		customer = c
	}
	fingerprint := s.checkAccountDetails(&p, ba, &fe)
	sortItems(&fe)
	if aerr := fe.err(); aerr != nil {
		return 0, nil, aerr
	}
	if customer == nil {
		return 0, nil, linkNotFound("customer_bank_accounts", "links[customer]")
	}
	if aerr := s.directSetupAllowed(""); aerr != nil {
		return 0, nil, aerr
	}
	if other := s.existingAccount(customer.ID, fingerprint); other != nil {
		return 0, nil, bankAccountExists(other.ID)
	}
	ba.ID = s.newID(prefixBankAccount)
	ba.seq = s.nextSeq()
	ba.created = r.now
	ba.CreatedAt = formatTime(r.now)
	ba.Links.Customer = customer.ID
	ba.Metadata = nonNil(ba.Metadata)
	ba.fingerprint = fingerprint
	s.accounts.add(ba.ID, ba)
	s.rememberKey(r, "customer_bank_accounts", ba.ID)
	return http.StatusCreated, envelope("customer_bank_accounts", ba.clone()), nil
}

// checkAccountDetails validates the IBAN or local details, the country and
// the currency, fills ba's country, currency, bank name and account number
// ending, and returns a fingerprint of the account for duplicate checks.
func (s *Sim) checkAccountDetails(p *bankAccountParams, ba *CustomerBankAccount, fe *fieldErrors) string {
	country := strings.ToUpper(str(p.CountryCode))
	if country != "" && !validCountry(country) {
		fe.add("country_code", "is not a valid ISO 3166-1 alpha-2 country code")
		return ""
	}
	currency := strings.ToUpper(str(p.Currency))
	if currency != "" && !supportedCurrency(currency) {
		fe.add("currency", "must be one of AUD, CAD, DKK, EUR, GBP, NZD, SEK, USD")
		return ""
	}
	var fingerprint, number string
	if !blank(p.IBAN) {
		if !blank(p.AccountNumber) || !blank(p.BranchCode) || !blank(p.BankCode) {
			fe.add("iban", "must not be given together with local bank details")
			return ""
		}
		iban, err := checkIBAN(*p.IBAN)
		if err != nil {
			fe.add("iban", err.Error())
			return ""
		}
		ibanCountry := iban[:2]
		if country != "" && country != ibanCountry {
			fe.add("country_code", "does not match the IBAN's country ("+ibanCountry+")")
			return ""
		}
		country = ibanCountry
		if country == "SE" || currency == "SEK" {
			fe.add("iban", "is not supported for Swedish (SEK) accounts; give local details (branch_code and account_number)")
			return ""
		}
		fingerprint, number = "iban:"+iban, iban
	} else {
		if country == "" {
			fe.add("country_code", "is required with local bank details")
			return ""
		}
		f, ok := localFormats[country]
		if !ok {
			fe.add("iban", "is required for bank accounts in "+country)
			return ""
		}
		account := normalizeDigits(str(p.AccountNumber))
		branch := normalizeDigits(str(p.BranchCode))
		bank := normalizeDigits(str(p.BankCode))
		checkCode("account_number", account, f.account, country, fe)
		checkCode("branch_code", branch, f.branch, country, fe)
		checkCode("bank_code", bank, f.bank, country, fe)
		fingerprint = fmt.Sprintf("local:%s:%s:%s:%s", country, bank, branch, account)
		number = account
		ba.BankName = f.bankName
	}
	sc, ok := schemeForCountry(country)
	if !ok {
		fe.add("country_code", "is not supported for Direct Debit ("+country+")")
		return ""
	}
	if currency == "" {
		currency = sc.currency
	} else if currency != sc.currency {
		fe.add("currency", fmt.Sprintf("%s is not supported for bank accounts in %s (expected %s)", currency, country, sc.currency))
		return ""
	}
	accountType := str(p.AccountType)
	switch {
	case currency == "USD" && accountType == "":
		fe.add("account_type", "is required for USD bank accounts")
	case currency == "USD" && accountType != "checking" && accountType != "savings":
		fe.add("account_type", "must be checking or savings")
	case currency != "USD" && accountType != "":
		fe.add("account_type", "is only supported for USD bank accounts")
	}
	ba.AccountType = accountType
	ba.CountryCode = country
	ba.Currency = currency
	if ba.BankName == "" {
		ba.BankName = "SIMULATED BANK " + country
	}
	if len(number) >= 2 {
		ba.AccountNumberEnding = number[len(number)-2:]
	}
	return fingerprint
}

func checkCode(field, v string, limits [2]int, country string, fe *fieldErrors) {
	lo, hi := limits[0], limits[1]
	switch {
	case hi == 0 && v != "":
		fe.add(field, "is not used for bank accounts in "+country)
	case hi == 0:
	case v == "":
		fe.add(field, "is required for bank accounts in "+country)
	case !allDigits(v):
		fe.add(field, "must be a number")
	case len(v) < lo || len(v) > hi:
		if lo == hi {
			fe.add(field, fmt.Sprintf("must be %d digits for %s", lo, country))
		} else {
			fe.add(field, fmt.Sprintf("must be %d to %d digits for %s", lo, hi, country))
		}
	}
}

func (s *Sim) listBankAccounts(r *request) (int, any, *apiError) {
	customer := eq(r.query, "customer")
	enabled := r.query.Get("enabled")
	return list("customer_bank_accounts", s.accounts.list, r.query,
		func(id string) (uint64, bool) { return seqOf(&s.accounts, id) },
		func(b *CustomerBankAccount) time.Time { return b.created },
		func(b *CustomerBankAccount) bool {
			return customer(b.Links.Customer) && (enabled == "" || enabled == fmt.Sprint(b.Enabled))
		},
		func(b *CustomerBankAccount) CustomerBankAccount { return b.clone() })
}

func (s *Sim) getBankAccount(r *request) (int, any, *apiError) {
	b, ok := s.accounts.get(r.id())
	if !ok {
		return 0, nil, notFound()
	}
	return 200, envelope("customer_bank_accounts", b.clone()), nil
}

// metadataOnly is the body of updates that may change metadata only.
type metadataOnly struct {
	Metadata json.RawMessage `json:"metadata"`
}

// updateMetadata applies a metadata-only update body to *dst.
func updateMetadata(r *request, resource string, dst *map[string]string) *apiError {
	var p metadataOnly
	if aerr := decodeEnvelope(r, resource, &p); aerr != nil {
		return aerr
	}
	fe := fieldErrors{resource: resource}
	m := parseMetadata(p.Metadata, &fe)
	if aerr := fe.err(); aerr != nil {
		return aerr
	}
	if p.Metadata != nil {
		*dst = nonNil(m)
	}
	return nil
}

func (s *Sim) updateBankAccount(r *request) (int, any, *apiError) {
	b, ok := s.accounts.get(r.id())
	if !ok {
		return 0, nil, notFound()
	}
	if aerr := updateMetadata(r, "customer_bank_accounts", &b.Metadata); aerr != nil {
		return 0, nil, aerr
	}
	return 200, envelope("customer_bank_accounts", b.clone()), nil
}

// disableBankAccount disables the account and, as GoCardless does,
// cancels its mandates (and so their pending payments and subscriptions).
func (s *Sim) disableBankAccount(r *request) (int, any, *apiError) {
	b, ok := s.accounts.get(r.id())
	if !ok {
		return 0, nil, notFound()
	}
	if _, aerr := decodeAction(r, "customer_bank_accounts"); aerr != nil {
		return 0, nil, aerr
	}
	if !b.Enabled {
		return 0, nil, stateError("disable_failed", "The bank account is already disabled")
	}
	b.Enabled = false
	for _, m := range s.mandates.list {
		if m.Links.CustomerBankAccount == b.ID && slices.Contains(creatableMandateStatuses, m.Status) {
			s.endMandate(m, r.now, "cancelled", EventDetails{Origin: originAPI, Cause: "bank_account_disabled",
				Description: "The customer's bank account was disabled."}, nil, "")
		}
	}
	return 200, envelope("customer_bank_accounts", b.clone()), nil
}

// existingAccount is the customer's enabled account with the same details.
func (s *Sim) existingAccount(customer, fingerprint string) *CustomerBankAccount {
	for _, other := range s.accounts.list {
		if other.Links.Customer == customer && other.Enabled && other.fingerprint == fingerprint {
			return other
		}
	}
	return nil
}

// bankAccountExists is GoCardless's answer to a duplicate bank account:
// validation_failed with HTTP 409, reason bank_account_exists and the
// existing account in links.customer_bank_account
// (gocardless/gocardless-pro-python
// tests/fixtures/validation_failed_duplicate_bank_account_error.json).
func bankAccountExists(id string) *apiError {
	const msg = "Bank account already exists"
	return &apiError{status: http.StatusConflict, typ: typeValidationFailed, message: msg,
		errors: []errorItem{{Reason: "bank_account_exists", Message: msg,
			Links: map[string]string{"customer_bank_account": id}}}}
}

// directSetupAllowed refuses creating bank accounts and mandates through
// the API for a creditor GoCardless has not approved for custom payment
// pages (see Creditor.CustomPaymentPagesEnabled). creditor names the
// creditor concerned; empty (a bank account, which names none) means any
// creditor of the account. GoCardless does not publish the exact error
// for this case; the simulator answers with its documented answer for an
// action the access token may not take, 403 invalid_api_usage
// insufficient_permissions (developer.gocardless.com/api-reference,
// "Errors"; /work/shared/reference/gocardless.md lists 403
// insufficient_permissions), so a client must not rely on more than the
// 403.
func (s *Sim) directSetupAllowed(creditor string) *apiError {
	for _, c := range s.creditors.list {
		if (creditor == "" || c.ID == creditor) && c.CustomPaymentPagesEnabled {
			return nil
		}
	}
	return usageError(http.StatusForbidden, "insufficient_permissions",
		"Creating customer bank accounts and mandates through the API needs custom payment pages, "+
			"which GoCardless has not enabled for this creditor: set the mandate up with a billing request")
}
