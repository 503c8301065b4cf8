package gcsim_test

import (
	"testing"
)

// accountDetails are valid bank details per country.
var accountDetails = map[string]map[string]any{
	"GB": {"country_code": "GB", "account_number": "55779911", "branch_code": "200000"},
	"FR": {"iban": "FR1420041010050500013M02606"},
	"DE": {"iban": "DE89370400440532013000"},
	"SE": {"country_code": "SE", "branch_code": "5491", "account_number": "1234567"},
	"DK": {"country_code": "DK", "bank_code": "0040", "account_number": "0440116243"},
	"AU": {"country_code": "AU", "branch_code": "082082", "account_number": "012345678"},
	"NZ": {"country_code": "NZ", "bank_code": "01", "branch_code": "0902", "account_number": "006838900"},
	"CA": {"country_code": "CA", "bank_code": "001", "branch_code": "12345", "account_number": "0123456"},
	"US": {"country_code": "US", "bank_code": "026073150", "account_number": "2715500356", "account_type": "checking"},
}

// schemeCountry is a country whose accounts each scheme debits.
var schemeCountry = map[string]string{
	"bacs": "GB", "sepa_core": "FR", "autogiro": "SE", "betalingsservice": "DK",
	"becs": "AU", "becs_nz": "NZ", "pad": "CA", "ach": "US",
}

var schemeCurrency = map[string]string{
	"bacs": "GBP", "sepa_core": "EUR", "autogiro": "SEK", "betalingsservice": "DKK",
	"becs": "AUD", "becs_nz": "NZD", "pad": "CAD", "ach": "USD",
}

// mandateIn creates a customer, an account in country and a mandate.
func mandateIn(t testing.TB, a *api, country string) fixture {
	t.Helper()
	cu := a.do("POST", "/customers", map[string]any{"customers": map[string]any{
		"email": "payer@example.com", "given_name": "Pat", "family_name": "Payer", "country_code": country}}).must(t, 201, "customers")
	details := map[string]any{"account_holder_name": "Pat Payer", "links": map[string]any{"customer": cu["id"]}}
	for k, v := range accountDetails[country] {
		details[k] = v
	}
	ba := a.do("POST", "/customer_bank_accounts", map[string]any{"customer_bank_accounts": details}).must(t, 201, "customer_bank_accounts")
	mandate := map[string]any{"links": map[string]any{"customer_bank_account": ba["id"]}}
	if country == "US" {
		mandate["payer_ip_address"] = "192.0.2.10" // ACH needs it (MandateService.java, payer_ip_address)
	}
	md := a.do("POST", "/mandates", map[string]any{"mandates": mandate}).must(t, 201, "mandates")
	return fixture{customer: str(cu, "id"), account: str(ba, "id"), mandate: str(md, "id")}
}

func strings3(n int, c string) string {
	out := ""
	for range n {
		out += c
	}
	return out
}
