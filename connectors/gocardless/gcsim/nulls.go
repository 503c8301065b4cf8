package gcsim

import (
	"encoding/json"
	"fmt"
)

// GoCardless sends every attribute of a resource, unset ones as an
// explicit null: see the recorded API responses in
// gocardless/gocardless-pro-java src/test/resources/fixtures/client/*.json
// (e.g. create_a_payment_response.json: "description": null,
// "reference": null; cancel_a_mandate_response.json:
// "next_possible_charge_date": null) and the example bodies in
// gocardless/gocardless-pro-python tests/fixtures/*.json, which list every
// attribute. Links are different: those responses carry only the links
// that are set, so link structs keep omitempty.
//
// withNulls marshals v (a struct without its own MarshalJSON) and then
// makes sure each attribute in attrs is present, written as null when it
// is absent or an empty string. The simulator's records keep plain
// strings; only their JSON shows the nulls.
func withNulls(v any, attrs ...string) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("gcsim: resource is not an object: %w", err)
	}
	for _, a := range attrs {
		if raw, ok := m[a]; !ok || string(raw) == `""` {
			m[a] = json.RawMessage("null")
		}
	}
	return json.Marshal(m)
}

// The attribute lists below are those of gocardless/gocardless-pro-python
// tests/fixtures/<resource>.json that the simulator does not always set.
// Attributes of features it does not simulate (FX, app fees, instalment
// schedules, PayTo consent) are always null.

// MarshalJSON renders a creditor with every attribute (creditors.json).
func (c Creditor) MarshalJSON() ([]byte, error) {
	type plain Creditor
	return withNulls(plain(c), "address_line1", "address_line2", "address_line3", "city", "region",
		"postal_code", "bank_reference_prefix", "creditor_type", "fx_payout_currency", "logo_url")
}

// MarshalJSON renders a customer with every attribute (customers.json).
func (c Customer) MarshalJSON() ([]byte, error) {
	type plain Customer
	return withNulls(plain(c), "email", "given_name", "family_name", "company_name", "address_line1",
		"address_line2", "address_line3", "city", "region", "postal_code", "country_code", "language",
		"phone_number", "swedish_identity_number", "danish_identity_number")
}

// MarshalJSON renders a bank account with every attribute
// (customer_bank_accounts.json).
func (b CustomerBankAccount) MarshalJSON() ([]byte, error) {
	type plain CustomerBankAccount
	return withNulls(plain(b), "account_type", "bank_account_token", "payer_name_verification_result",
		"trusted_recipient")
}

// MarshalJSON renders a mandate with every attribute (mandates.json).
func (m Mandate) MarshalJSON() ([]byte, error) {
	type plain Mandate
	return withNulls(plain(m), "next_possible_charge_date", "next_possible_standard_ach_charge_date",
		"authorisation_source", "consent_parameters", "consent_type", "verified_at", "funds_settlement",
		"mandate_type")
}

// MarshalJSON renders a payment with every attribute (payments.json).
func (p Payment) MarshalJSON() ([]byte, error) {
	type plain Payment
	return withNulls(plain(p), "description", "reference", "app_fee", "faster_ach", "fx")
}

// MarshalJSON renders a refund with every attribute (refunds.json).
func (r Refund) MarshalJSON() ([]byte, error) {
	type plain Refund
	return withNulls(plain(r), "reference", "fx")
}

// MarshalJSON renders a subscription with every attribute
// (subscriptions.json).
func (s Subscription) MarshalJSON() ([]byte, error) {
	type plain Subscription
	return withNulls(plain(s), "name", "end_date", "month", "payment_reference", "app_fee",
		"earliest_charge_date_after_resume", "parent_plan_paused")
}

// MarshalJSON renders a payout with every attribute (payouts.json).
func (p Payout) MarshalJSON() ([]byte, error) {
	type plain Payout
	return withNulls(plain(p), "fx", "tax_currency", "arrival_date")
}
