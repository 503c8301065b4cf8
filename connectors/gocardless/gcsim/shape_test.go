package gcsim_test

import (
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/ml-connector/ml-connector/connectors/gocardless/gcsim"
)

// fixtureAttributes are the attributes of each resource in
// gocardless/gocardless-pro-python tests/fixtures/<resource>.json (commit
// d5c83f375d8867d2980745ed1c510f264823d300), which list every attribute
// GoCardless returns.
var fixtureAttributes = map[string]string{
	"creditors": "address_line1 address_line2 address_line3 bank_reference_prefix can_create_refunds city country_code " +
		"created_at creditor_type custom_payment_pages_enabled fx_payout_currency id links logo_url mandate_imports_enabled " +
		"merchant_responsible_for_notifications name postal_code region scheme_identifiers verification_status",
	"customers": "address_line1 address_line2 address_line3 city company_name country_code created_at danish_identity_number " +
		"email family_name given_name id language metadata phone_number postal_code region swedish_identity_number",
	"customer_bank_accounts": "account_holder_name account_number_ending account_type bank_account_token bank_name " +
		"country_code created_at currency enabled id links metadata payer_name_verification_result trusted_recipient",
	"mandates": "authorisation_source consent_parameters consent_type created_at funds_settlement id links mandate_type " +
		"metadata next_possible_charge_date next_possible_standard_ach_charge_date payments_require_approval reference " +
		"scheme status verified_at",
	"payments": "amount amount_refunded app_fee charge_date created_at currency description faster_ach fx id links " +
		"metadata reference retry_if_possible scheme status",
	"billing_requests": "actions created_at fallback_enabled fallback_occurred id instalment_schedule_request links " +
		"mandate_request metadata payment_context_code payment_purpose_code payment_request purpose_code resources " +
		"status subscription_request",
	"billing_request_flows": "authorisation_url auto_fulfil created_at customer_details_captured exit_uri expires_at id " +
		"language links lock_bank_account lock_currency lock_customer_details prefilled_bank_account prefilled_customer " +
		"redirect_uri session_token show_redirect_buttons show_success_redirect_button skip_success_screen",
	"subscriptions": "amount app_fee count created_at currency day_of_month earliest_charge_date_after_resume end_date " +
		"id interval interval_unit links metadata month name parent_plan_paused payment_reference retry_if_possible " +
		"start_date status upcoming_payments",
}

func keys(m map[string]any) string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// TestEveryAttributePresent: each resource carries every attribute,
// unset ones as explicit null (recorded responses in
// gocardless/gocardless-pro-java src/test/resources/fixtures/client, e.g.
// create_a_payment_response.json "description": null).
func TestEveryAttributePresent(t *testing.T) {
	srv := start(t)
	a := newAPI(t, srv)
	f := mandateIn(t, a, "GB")
	cu := a.do("POST", "/customers", map[string]any{"customers": map[string]any{"company_name": "Bare Ltd"}}).must(t, 201, "customers")
	pm := a.do("POST", "/payments", payment(1000, f.mandate, nil)).must(t, 201, "payments")
	sub := a.do("POST", "/subscriptions", map[string]any{"subscriptions": map[string]any{"amount": 1000, "currency": "GBP",
		"interval_unit": "monthly", "links": map[string]any{"mandate": f.mandate}}}).must(t, 201, "subscriptions")
	br := billingRequest(t, a, "GBP", nil)
	flow := flowFor(t, a, str(br, "id"), nil)
	got := map[string]map[string]any{
		"creditors":              a.do("GET", "/creditors/"+gcsim.DefaultCreditorID, nil).must(t, 200, "creditors"),
		"customers":              cu,
		"customer_bank_accounts": a.do("GET", "/customer_bank_accounts/"+f.account, nil).must(t, 200, "customer_bank_accounts"),
		"mandates":               a.do("GET", "/mandates/"+f.mandate, nil).must(t, 200, "mandates"),
		"payments":               pm,
		"subscriptions":          sub,
		"billing_requests":       br,
		"billing_request_flows":  flow,
	}
	for resource, want := range fixtureAttributes {
		if k := keys(got[resource]); k != want {
			t.Errorf("%s attributes:\n got %s\nwant %s", resource, k, want)
		}
	}
	for _, ra := range [][2]string{{"customers", "email"}, {"payments", "reference"}, {"payments", "description"},
		{"subscriptions", "end_date"}, {"customer_bank_accounts", "account_type"}, {"billing_request_flows", "redirect_uri"}} {
		if v, ok := got[ra[0]][ra[1]]; !ok || v != nil {
			t.Errorf("%s.%s = %#v, want null", ra[0], ra[1], v)
		}
	}
	// Links carry only what is set, as in the recorded responses.
	if _, ok := pm["links"].(map[string]any)["subscription"]; ok {
		t.Errorf("payment links show an unset subscription: %v", pm["links"])
	}
}

// TestSubscriptionMonthRules: month "Must be lowercase. Only applies when
// the interval_unit is yearly", and for yearly month and day_of_month go
// together (gocardless-pro-java SubscriptionService.java: class doc table
// and examples).
func TestSubscriptionMonthRules(t *testing.T) {
	srv := start(t)
	a := newAPI(t, srv)
	f := activeGB(t, srv, a, "sub@example.com", "Subs")
	sub := func(extra map[string]any) reply {
		s := map[string]any{"amount": 1000, "currency": "GBP", "links": map[string]any{"mandate": f.mandate}}
		for k, v := range extra {
			s[k] = v
		}
		return a.do("POST", "/subscriptions", map[string]any{"subscriptions": s})
	}
	invalid("month", "/subscriptions/month").check(t, sub(map[string]any{"interval_unit": "yearly", "month": "January", "day_of_month": 1}))
	invalid("month", "/subscriptions/month").check(t, sub(map[string]any{"interval_unit": "monthly", "month": "january"}))
	invalid("day_of_month", "/subscriptions/day_of_month").check(t, sub(map[string]any{"interval_unit": "yearly", "month": "march"}))
	invalid("month", "/subscriptions/month").check(t, sub(map[string]any{"interval_unit": "yearly", "day_of_month": 2}))
	invalid("day_of_month", "/subscriptions/day_of_month").check(t, sub(map[string]any{"interval_unit": "weekly", "day_of_month": 2}))
	ok := sub(map[string]any{"interval_unit": "yearly", "month": "january", "day_of_month": -1}).must(t, 201, "subscriptions")
	if ok["month"] != "january" {
		t.Fatalf("month %v", ok["month"])
	}
	sub(map[string]any{"interval_unit": "yearly"}).must(t, 201, "subscriptions")
}

// TestACHMandateConsent: an ACH mandate needs payer_ip_address unless
// authorisation_source is telephone or paper (MandateService.java).
func TestACHMandateConsent(t *testing.T) {
	srv := start(t)
	a := newAPI(t, srv)
	cu := a.do("POST", "/customers", map[string]any{"customers": map[string]any{"company_name": "US Co", "country_code": "US"}}).must(t, 201, "customers")
	details := map[string]any{"account_holder_name": "US Co", "links": map[string]any{"customer": cu["id"]}}
	for k, v := range accountDetails["US"] {
		details[k] = v
	}
	ba := a.do("POST", "/customer_bank_accounts", map[string]any{"customer_bank_accounts": details}).must(t, 201, "customer_bank_accounts")
	mandate := func(extra map[string]any) reply {
		m := map[string]any{"links": map[string]any{"customer_bank_account": ba["id"]}}
		for k, v := range extra {
			m[k] = v
		}
		return a.do("POST", "/mandates", map[string]any{"mandates": m})
	}
	invalid("payer_ip_address", "/mandates/payer_ip_address").check(t, mandate(nil))
	invalid("payer_ip_address", "/mandates/payer_ip_address").check(t, mandate(map[string]any{"authorisation_source": "web"}))
	invalid("authorisation_source", "/mandates/authorisation_source").check(t, mandate(map[string]any{"authorisation_source": "fax"}))
	md := mandate(map[string]any{"authorisation_source": "telephone"}).must(t, 201, "mandates")
	if md["authorisation_source"] != "telephone" {
		t.Fatalf("authorisation_source %v", md["authorisation_source"])
	}
	mandate(map[string]any{"payer_ip_address": "192.0.2.1"}).must(t, 201, "mandates")
}

// TestBacsReferenceNeedsPackage: a Bacs payment reference needs the
// GoCardless Plus, Pro or Enterprise package (PaymentService.java,
// reference); a creditor without it may collect, but not name the
// reference.
func TestBacsReferenceNeedsPackage(t *testing.T) {
	srv := start(t, func(o *gcsim.Options) {
		o.Creditors = []gcsim.Creditor{{ID: gcsim.DefaultCreditorID, CustomPaymentPagesEnabled: true}}
	})
	a := newAPI(t, srv)
	f := mandateIn(t, a, "GB")
	invalid("reference", "/payments/reference").check(t, a.do("POST", "/payments", payment(1000, f.mandate, map[string]any{"reference": "INV1"})))
	a.do("POST", "/payments", payment(1000, f.mandate, nil)).must(t, 201, "payments")
	sepa := mandateIn(t, a, "FR")
	a.do("POST", "/payments", map[string]any{"payments": map[string]any{"amount": 1000, "currency": "EUR", "reference": "INV1",
		"links": map[string]any{"mandate": sepa.mandate}}}).must(t, 201, "payments")
}

// TestBECSReferenceUnique: a BECS reference "must be unique (for each
// merchant)" (PaymentService.java, reference).
func TestBECSReferenceUnique(t *testing.T) {
	srv := start(t)
	a := newAPI(t, srv)
	f := mandateIn(t, a, "AU")
	pay := map[string]any{"payments": map[string]any{"amount": 1000, "currency": "AUD", "reference": "INV-1",
		"links": map[string]any{"mandate": f.mandate}}}
	a.do("POST", "/payments", pay).must(t, 201, "payments")
	invalid("reference", "/payments/reference").check(t, a.do("POST", "/payments", pay))
	if n := len(srv.Payments()); n != 1 || !slices.ContainsFunc(srv.Payments(), func(p gcsim.Payment) bool { return p.Reference == "INV-1" }) {
		t.Fatalf("payments %d", n)
	}
}
