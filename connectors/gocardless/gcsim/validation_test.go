package gcsim_test

import (
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/connectors/gocardless/gcsim"
)

// wantErr is the GoCardless-shaped error a case expects. For
// validation_failed, field and pointer of one of the entries; otherwise the
// reason of the first entry.
type wantErr struct {
	status  int
	typ     string
	reason  string
	field   string
	pointer string
}

func (w wantErr) check(t *testing.T, r reply) {
	t.Helper()
	if r.status != w.status {
		t.Fatalf("status %d, want %d: %s", r.status, w.status, r.raw)
	}
	e := r.err(t)
	if e.Type != w.typ {
		t.Fatalf("type %q, want %q: %s", e.Type, w.typ, r.raw)
	}
	if len(e.Errors) == 0 {
		t.Fatalf("no errors[] entries: %s", r.raw)
	}
	if w.reason != "" && e.Errors[0].Reason != w.reason {
		t.Fatalf("reason %q, want %q: %s", e.Errors[0].Reason, w.reason, r.raw)
	}
	if w.field == "" {
		return
	}
	for _, item := range e.Errors {
		if item.Field == w.field && item.RequestPointer == w.pointer && item.Message != "" {
			return
		}
	}
	t.Fatalf("no error for field %q at %q: %s", w.field, w.pointer, r.raw)
}

func invalid(field, pointer string) wantErr {
	return wantErr{status: 422, typ: "validation_failed", field: field, pointer: pointer}
}

func stateErr(reason string) wantErr {
	return wantErr{status: 422, typ: "invalid_state", reason: reason}
}

func TestRequestRules(t *testing.T) {
	srv := start(t)
	a := newAPI(t, srv)
	srv.SetTokenActive("revoked_token", false)
	cust := map[string]any{"customers": map[string]any{"given_name": "A", "family_name": "B"}}
	cases := []struct {
		name   string
		method string
		path   string
		body   any
		opts   []reqOpt
		want   wantErr
	}{
		{"no authorization header", "GET", "/customers", nil, []reqOpt{noHeader("Authorization")},
			wantErr{status: 401, typ: "invalid_api_usage", reason: "missing_authorization_header"}},
		{"not a bearer token", "GET", "/customers", nil, []reqOpt{header("Authorization", "Basic abc")},
			wantErr{status: 401, typ: "invalid_api_usage", reason: "invalid_authorization_header"}},
		{"unknown token", "GET", "/customers", nil, []reqOpt{header("Authorization", "Bearer nope")},
			wantErr{status: 401, typ: "invalid_api_usage", reason: "access_token_not_found"}},
		{"revoked token", "GET", "/customers", nil, []reqOpt{header("Authorization", "Bearer revoked_token")},
			wantErr{status: 401, typ: "invalid_api_usage", reason: "access_token_not_active"}},
		{"no version header", "GET", "/customers", nil, []reqOpt{noHeader("GoCardless-Version")},
			wantErr{status: 400, typ: "invalid_api_usage", reason: "missing_version_header"}},
		{"unknown version", "GET", "/customers", nil, []reqOpt{header("GoCardless-Version", "2014-11-03")},
			wantErr{status: 400, typ: "invalid_api_usage", reason: "version_not_found"}},
		{"body without content type", "POST", "/customers", cust, []reqOpt{noHeader("Content-Type")},
			wantErr{status: 415, typ: "invalid_api_usage", reason: "invalid_content_type"}},
		{"body as text/plain", "POST", "/customers", cust, []reqOpt{header("Content-Type", "text/plain")},
			wantErr{status: 415, typ: "invalid_api_usage", reason: "invalid_content_type"}},
		{"malformed JSON", "POST", "/customers", `{"customers": {`, nil,
			wantErr{status: 400, typ: "invalid_api_usage", reason: "bad_request"}},
		{"root is an array", "POST", "/customers", `[]`, nil,
			wantErr{status: 400, typ: "invalid_api_usage", reason: "invalid_document_structure"}},
		{"no envelope", "POST", "/customers", `{"given_name": "A"}`, nil,
			wantErr{status: 400, typ: "invalid_api_usage", reason: "invalid_document_structure"}},
		{"envelope not an object", "POST", "/customers", `{"customers": "A"}`, nil,
			wantErr{status: 400, typ: "invalid_api_usage", reason: "invalid_document_structure"}},
		{"field of the wrong type", "POST", "/customers", `{"customers": {"given_name": 7, "family_name": "B"}}`, nil,
			invalid("given_name", "/customers/given_name")},
		{"unknown path", "GET", "/widgets", nil, nil,
			wantErr{status: 404, typ: "invalid_api_usage", reason: "path_not_found"}},
		{"method not allowed", "DELETE", "/customers", nil, nil,
			wantErr{status: 405, typ: "invalid_api_usage", reason: "method_not_allowed"}},
		{"unknown id", "GET", "/payments/PM000000000000", nil, nil,
			wantErr{status: 404, typ: "invalid_api_usage", reason: "resource_not_found"}},
		{"idempotency key too long", "POST", "/customers", cust, []reqOpt{idem(strings3(129, "k"))},
			wantErr{status: 400, typ: "invalid_api_usage", reason: "idempotency_key_too_long"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.want.check(t, a.do(tc.method, tc.path, tc.body, tc.opts...))
		})
	}
	if n := len(srv.Customers()); n != 0 {
		t.Fatalf("refused requests created %d customers", n)
	}
	// The same body with the right headers is fine, and the JSON:API media
	// type is accepted too.
	a.do("POST", "/customers", cust, header("Content-Type", "application/vnd.api+json; charset=utf-8")).must(t, 201, "customers")
}

func TestValidation(t *testing.T) {
	srv := start(t)
	a := newAPI(t, srv)
	gb := mandateIn(t, a, "GB")
	fr := mandateIn(t, a, "FR")
	disabled := mandateIn(t, a, "GB")
	a.do("POST", "/customer_bank_accounts/"+disabled.account+"/actions/disable", nil).must(t, 200, "customer_bank_accounts")
	cancelled := mandateIn(t, a, "GB")
	a.do("POST", "/mandates/"+cancelled.mandate+"/actions/cancel", nil).must(t, 200, "mandates")

	customer := func(fields map[string]any) map[string]any {
		c := map[string]any{"given_name": "Ada", "family_name": "Lovelace"}
		for k, v := range fields {
			c[k] = v
		}
		return map[string]any{"customers": c}
	}
	account := func(country string, fields map[string]any) map[string]any {
		b := map[string]any{"account_holder_name": "Ada Lovelace", "links": map[string]any{"customer": gb.customer}}
		for k, v := range accountDetails[country] {
			b[k] = v
		}
		for k, v := range fields {
			if v == nil {
				delete(b, k)
			} else {
				b[k] = v
			}
		}
		return map[string]any{"customer_bank_accounts": b}
	}
	pay := func(fields map[string]any) map[string]any {
		p := map[string]any{"amount": 1000, "currency": "GBP", "links": map[string]any{"mandate": gb.mandate}}
		for k, v := range fields {
			if v == nil {
				delete(p, k)
			} else {
				p[k] = v
			}
		}
		return map[string]any{"payments": p}
	}
	sub := func(fields map[string]any) map[string]any {
		s := map[string]any{"amount": 1500, "currency": "GBP", "interval_unit": "monthly", "links": map[string]any{"mandate": gb.mandate}}
		for k, v := range fields {
			if v == nil {
				delete(s, k)
			} else {
				s[k] = v
			}
		}
		return map[string]any{"subscriptions": s}
	}
	npcd := str(a.do("GET", "/mandates/"+gb.mandate, nil).must(t, 200, "mandates"), "next_possible_charge_date")
	npcdDate, _ := time.Parse("2006-01-02", npcd)
	dayBefore := npcdDate.AddDate(0, 0, -1).Format("2006-01-02")

	cases := []struct {
		name string
		path string
		body any
		want wantErr
	}{
		// customers
		{"customer needs a name", "/customers", map[string]any{"customers": map[string]any{"email": "a@b.co"}},
			invalid("family_name", "/customers/family_name")},
		{"customer email", "/customers", customer(map[string]any{"email": "not-an-email"}), invalid("email", "/customers/email")},
		{"customer country", "/customers", customer(map[string]any{"country_code": "XX"}), invalid("country_code", "/customers/country_code")},
		{"customer language", "/customers", customer(map[string]any{"language": "english"}), invalid("language", "/customers/language")},
		{"metadata has 4 keys", "/customers", customer(map[string]any{"metadata": map[string]any{"a": "1", "b": "2", "c": "3", "d": "4"}}),
			invalid("metadata", "/customers/metadata")},
		{"metadata key of 51 characters", "/customers", customer(map[string]any{"metadata": map[string]any{strings3(51, "k"): "v"}}),
			invalid("metadata", "/customers/metadata/"+strings3(51, "k"))},
		{"metadata value of 501 characters", "/customers", customer(map[string]any{"metadata": map[string]any{"k": strings3(501, "v")}}),
			invalid("metadata", "/customers/metadata/k")},
		{"metadata value not a string", "/customers", customer(map[string]any{"metadata": map[string]any{"k": 5}}),
			invalid("metadata", "/customers/metadata/k")},
		{"metadata not an object", "/customers", customer(map[string]any{"metadata": []string{"a"}}),
			invalid("metadata", "/customers/metadata")},
		// customer bank accounts
		{"account holder name required", "/customer_bank_accounts", account("GB", map[string]any{"account_holder_name": nil}),
			invalid("account_holder_name", "/customer_bank_accounts/account_holder_name")},
		{"account customer link required", "/customer_bank_accounts", account("GB", map[string]any{"links": map[string]any{}}),
			invalid("links[customer]", "/customer_bank_accounts/links/customer")},
		{"account customer not found", "/customer_bank_accounts", account("GB", map[string]any{"links": map[string]any{"customer": "CU000000000000"}}),
			wantErr{status: 400, typ: "invalid_api_usage", reason: "link_not_found"}},
		{"GB sort code length", "/customer_bank_accounts", account("GB", map[string]any{"branch_code": "20000"}),
			invalid("branch_code", "/customer_bank_accounts/branch_code")},
		{"GB account number digits", "/customer_bank_accounts", account("GB", map[string]any{"account_number": "5577991A"}),
			invalid("account_number", "/customer_bank_accounts/account_number")},
		{"IBAN check digits", "/customer_bank_accounts", account("FR", map[string]any{"iban": "FR1520041010050500013M02606"}),
			invalid("iban", "/customer_bank_accounts/iban")},
		{"no IBAN for SEK", "/customer_bank_accounts", account("GB", map[string]any{"country_code": nil, "account_number": nil,
			"branch_code": nil, "iban": "SE4550000000058398257466"}), invalid("iban", "/customer_bank_accounts/iban")},
		{"EUR account needs an IBAN", "/customer_bank_accounts", account("GB", map[string]any{"country_code": "FR"}),
			invalid("iban", "/customer_bank_accounts/iban")},
		{"currency must fit the country", "/customer_bank_accounts", account("GB", map[string]any{"currency": "EUR"}),
			invalid("currency", "/customer_bank_accounts/currency")},
		{"currency must be supported", "/customer_bank_accounts", account("GB", map[string]any{"currency": "CHF"}),
			invalid("currency", "/customer_bank_accounts/currency")},
		{"country must match the IBAN", "/customer_bank_accounts", account("FR", map[string]any{"country_code": "DE"}),
			invalid("country_code", "/customer_bank_accounts/country_code")},
		{"USD needs account_type", "/customer_bank_accounts", account("US", map[string]any{"account_type": nil}),
			invalid("account_type", "/customer_bank_accounts/account_type")},
		{"account_type only for USD", "/customer_bank_accounts", account("GB", map[string]any{"account_type": "savings"}),
			invalid("account_type", "/customer_bank_accounts/account_type")},
		// mandates
		{"mandate bank account required", "/mandates", map[string]any{"mandates": map[string]any{"links": map[string]any{}}},
			invalid("links[customer_bank_account]", "/mandates/links/customer_bank_account")},
		{"mandate scheme must fit the currency", "/mandates", map[string]any{"mandates": map[string]any{"scheme": "sepa_core",
			"links": map[string]any{"customer_bank_account": gb.account}}}, invalid("scheme", "/mandates/scheme")},
		{"mandate on a disabled account", "/mandates", map[string]any{"mandates": map[string]any{
			"links": map[string]any{"customer_bank_account": disabled.account}}}, stateErr("bank_account_disabled")},
		// payments
		{"payment amount required", "/payments", pay(map[string]any{"amount": nil}), invalid("amount", "/payments/amount")},
		{"payment currency required", "/payments", pay(map[string]any{"currency": nil}), invalid("currency", "/payments/currency")},
		{"payment mandate required", "/payments", pay(map[string]any{"links": map[string]any{}}), invalid("links[mandate]", "/payments/links/mandate")},
		{"payment mandate not found", "/payments", pay(map[string]any{"links": map[string]any{"mandate": "MD000000000000"}}),
			wantErr{status: 400, typ: "invalid_api_usage", reason: "link_not_found"}},
		{"amount in minor units", "/payments", pay(map[string]any{"amount": 10.5}), invalid("amount", "/payments/amount")},
		{"amount as text", "/payments", pay(map[string]any{"amount": "ten"}), invalid("amount", "/payments/amount")},
		{"amount positive", "/payments", pay(map[string]any{"amount": 0}), invalid("amount", "/payments/amount")},
		{"currency must fit the scheme", "/payments", pay(map[string]any{"currency": "EUR"}), invalid("currency", "/payments/currency")},
		{"currency on a SEPA mandate", "/payments", pay(map[string]any{"links": map[string]any{"mandate": fr.mandate}}),
			invalid("currency", "/payments/currency")},
		{"charge date format", "/payments", pay(map[string]any{"charge_date": "13/01/2025"}), invalid("charge_date", "/payments/charge_date")},
		{"charge date before next possible", "/payments", pay(map[string]any{"charge_date": dayBefore}), invalid("charge_date", "/payments/charge_date")},
		{"payment on a cancelled mandate", "/payments", pay(map[string]any{"links": map[string]any{"mandate": cancelled.mandate}}),
			stateErr("mandate_is_inactive")},
		{"payment metadata limits", "/payments", pay(map[string]any{"metadata": map[string]any{"a": "1", "b": "2", "c": "3", "d": "4"}}),
			invalid("metadata", "/payments/metadata")},
		// subscriptions
		{"interval_unit required", "/subscriptions", sub(map[string]any{"interval_unit": nil}), invalid("interval_unit", "/subscriptions/interval_unit")},
		{"day_of_month range", "/subscriptions", sub(map[string]any{"day_of_month": 29}), invalid("day_of_month", "/subscriptions/day_of_month")},
		{"month only when yearly", "/subscriptions", sub(map[string]any{"month": "march"}), invalid("month", "/subscriptions/month")},
		{"interval of a weekly subscription", "/subscriptions", sub(map[string]any{"interval_unit": "weekly", "interval": 53}),
			invalid("interval", "/subscriptions/interval")},
		{"count and end_date together", "/subscriptions", sub(map[string]any{"count": 3, "end_date": "2026-01-01"}),
			invalid("end_date", "/subscriptions/end_date")},
		{"start_date before next possible", "/subscriptions", sub(map[string]any{"start_date": dayBefore}),
			invalid("start_date", "/subscriptions/start_date")},
		{"payment_reference length", "/subscriptions", sub(map[string]any{"payment_reference": "ELEVENCHARS"}),
			invalid("payment_reference", "/subscriptions/payment_reference")},
		{"subscription on a cancelled mandate", "/subscriptions", sub(map[string]any{"links": map[string]any{"mandate": cancelled.mandate}}),
			stateErr("mandate_is_inactive")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.want.check(t, a.do("POST", tc.path, tc.body))
		})
	}
	// Each body above differs from an accepted one in the one rule it
	// breaks.
	a.do("POST", "/customers", customer(map[string]any{"email": "ada@example.com", "country_code": "GB", "language": "en",
		"metadata": map[string]any{"a": "1", "b": "2", strings3(50, "k"): strings3(500, "v")}})).must(t, 201, "customers")
	a.do("POST", "/customers", map[string]any{"customers": map[string]any{"company_name": "Analytical Engines Ltd"}}).must(t, 201, "customers")
	a.do("POST", "/payments", pay(map[string]any{"charge_date": npcd, "reference": "TENCHARS10"})).must(t, 201, "payments")
	a.do("POST", "/subscriptions", sub(nil)).must(t, 201, "subscriptions")
	a.do("POST", "/customer_bank_accounts", account("DE", map[string]any{"links": map[string]any{"customer": fr.customer}})).
		must(t, 201, "customer_bank_accounts")
}

func TestBankAccountDuplicate(t *testing.T) {
	srv := start(t)
	a := newAPI(t, srv)
	f := mandateIn(t, a, "GB")
	body := map[string]any{"customer_bank_accounts": map[string]any{"account_holder_name": "Pat Payer",
		"country_code": "GB", "account_number": "5577-9911", "branch_code": "20-00-00", "links": map[string]any{"customer": f.customer}}}
	r := a.do("POST", "/customer_bank_accounts", body)
	// gocardless-pro-python tests/fixtures/validation_failed_duplicate_bank_account_error.json
	wantErr{status: 409, typ: "validation_failed", reason: "bank_account_exists"}.check(t, r)
	if got := r.err(t).Errors[0].Links["customer_bank_account"]; got != f.account {
		t.Fatalf("links.customer_bank_account = %q, want %s", got, f.account)
	}
}

func TestMandateNeedsCreditorWhenSeveral(t *testing.T) {
	srv := start(t, func(o *gcsim.Options) {
		o.Creditors = []gcsim.Creditor{{ID: "CR000000000UK1", Name: "UK", CustomPaymentPagesEnabled: true},
			{ID: "CR000000000DE1", Name: "DE", CountryCode: "DE", CustomPaymentPagesEnabled: true}}
	})
	a := newAPI(t, srv)
	f := mandateInWithCreditor(t, a, "CR000000000DE1")
	body := map[string]any{"mandates": map[string]any{"links": map[string]any{"customer_bank_account": f.account}}}
	invalid("links[creditor]", "/mandates/links/creditor").check(t, a.do("POST", "/mandates", body))
	body["mandates"].(map[string]any)["links"].(map[string]any)["creditor"] = "CR000000000XX1"
	wantErr{status: 400, typ: "invalid_api_usage", reason: "link_not_found"}.check(t, a.do("POST", "/mandates", body))
	if got := link(a.do("GET", "/mandates/"+f.mandate, nil).must(t, 200, "mandates"), "creditor"); got != "CR000000000DE1" {
		t.Fatalf("mandate creditor %q", got)
	}
	creditors := a.do("GET", "/creditors", nil)
	if list, _ := creditors.body["creditors"].([]any); len(list) != 2 {
		t.Fatalf("GET /creditors: %s", creditors.raw)
	}
}

func mandateInWithCreditor(t *testing.T, a *api, creditor string) fixture {
	cu := a.do("POST", "/customers", map[string]any{"customers": map[string]any{"company_name": "Acme"}}).must(t, 201, "customers")
	ba := a.do("POST", "/customer_bank_accounts", map[string]any{"customer_bank_accounts": map[string]any{
		"account_holder_name": "Acme", "iban": "DE89370400440532013000", "links": map[string]any{"customer": cu["id"]}}}).
		must(t, 201, "customer_bank_accounts")
	md := a.do("POST", "/mandates", map[string]any{"mandates": map[string]any{
		"links": map[string]any{"customer_bank_account": ba["id"], "creditor": creditor}}}).must(t, 201, "mandates")
	return fixture{customer: str(cu, "id"), account: str(ba, "id"), mandate: str(md, "id")}
}

// TestSchemeRules checks every scheme's default amount limits, payment
// reference length and currency, at and just past each bound.
func TestSchemeRules(t *testing.T) {
	limits := map[string][2]int64{
		"bacs": {100, 500000}, "sepa_core": {100, 500000}, "autogiro": {1000, 5000000},
		"betalingsservice": {1000, 5000000}, "becs": {200, 1000000}, "becs_nz": {200, 1000000},
		"pad": {200, 500000}, "ach": {100, 500000},
	}
	refs := map[string]int{"bacs": 10, "sepa_core": 140, "autogiro": 11, "betalingsservice": 30,
		"becs": 30, "becs_nz": 12, "pad": 0, "ach": 10}
	srv := start(t)
	a := newAPI(t, srv)
	for scheme, country := range schemeCountry {
		t.Run(scheme, func(t *testing.T) {
			f := mandateIn(t, a, country)
			md := a.do("GET", "/mandates/"+f.mandate, nil).must(t, 200, "mandates")
			if str(md, "scheme") != scheme {
				t.Fatalf("an account in %s got scheme %q, want %s", country, str(md, "scheme"), scheme)
			}
			body := func(amount int64, ref string) map[string]any {
				p := map[string]any{"amount": amount, "currency": schemeCurrency[scheme], "links": map[string]any{"mandate": f.mandate}}
				if ref != "" {
					p["reference"] = ref
				}
				return map[string]any{"payments": p}
			}
			lo, hi := limits[scheme][0], limits[scheme][1]
			for _, amount := range []int64{lo, hi} {
				a.do("POST", "/payments", body(amount, "")).must(t, 201, "payments")
			}
			for _, amount := range []int64{lo - 1, hi + 1} {
				invalid("amount", "/payments/amount").check(t, a.do("POST", "/payments", body(amount, "")))
			}
			if n := refs[scheme]; n > 0 {
				a.do("POST", "/payments", body(lo, strings3(n, "R"))).must(t, 201, "payments")
				invalid("reference", "/payments/reference").check(t, a.do("POST", "/payments", body(lo, strings3(n+1, "R"))))
			} else {
				// PAD "doesn't offer references" (PaymentService.java, reference).
				invalid("reference", "/payments/reference").check(t, a.do("POST", "/payments", body(lo, "R")))
			}
			other := "GBP"
			if scheme == "bacs" {
				other = "EUR"
			}
			r := a.do("POST", "/payments", map[string]any{"payments": map[string]any{"amount": lo, "currency": other,
				"links": map[string]any{"mandate": f.mandate}}})
			invalid("currency", "/payments/currency").check(t, r)
		})
	}
}

func TestRefundRules(t *testing.T) {
	srv := start(t)
	a := newAPI(t, srv)
	f := activeGB(t, srv, a, "r@example.com", "Refund")
	paid := a.do("POST", "/payments", payment(5000, f.mandate, nil)).must(t, 201, "payments")
	srv.Advance(7 * 24 * time.Hour)
	if got := str(a.do("GET", "/payments/"+str(paid, "id"), nil).must(t, 200, "payments"), "status"); got != "paid_out" {
		t.Fatalf("payment is %s, want paid_out", got)
	}
	pending := a.do("POST", "/payments", payment(5000, f.mandate, nil)).must(t, 201, "payments")
	refund := func(pay map[string]any, amount, total any) map[string]any {
		r := map[string]any{"amount": amount, "links": map[string]any{"payment": pay["id"]}}
		if total != nil {
			r["total_amount_confirmation"] = total
		}
		return map[string]any{"refunds": r}
	}
	cases := []struct {
		name string
		body map[string]any
		want wantErr
	}{
		{"total_amount_confirmation required", refund(paid, 1000, nil),
			invalid("total_amount_confirmation", "/refunds/total_amount_confirmation")},
		{"amount required", refund(paid, nil, 1000), invalid("amount", "/refunds/amount")},
		{"payment required", map[string]any{"refunds": map[string]any{"amount": 1, "total_amount_confirmation": 1}},
			invalid("links[payment]", "/refunds/links/payment")},
		{"total must include existing refunds", refund(paid, 1000, 1000), stateErr("total_amount_confirmation_invalid")},
		{"total must add up", refund(paid, 1000, 999), stateErr("total_amount_confirmation_invalid")},
		{"cannot refund more than the payment", refund(paid, 4001, 5001), stateErr("available_refund_amount_insufficient")},
		{"payment not yet collected", refund(pending, 100, 100), stateErr("refund_payment_invalid_state")},
	}
	a.do("POST", "/refunds", refund(paid, 1000, 1000)).must(t, 201, "refunds")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.want.check(t, a.do("POST", "/refunds", tc.body))
		})
	}
	a.do("POST", "/refunds", refund(paid, 4000, 5000)).must(t, 201, "refunds")
	got := a.do("GET", "/payments/"+str(paid, "id"), nil).must(t, 200, "payments")
	if got["amount_refunded"].(float64) != 5000 {
		t.Fatalf("amount_refunded = %v, want 5000", got["amount_refunded"])
	}
}

func TestStateRules(t *testing.T) {
	srv := start(t)
	a := newAPI(t, srv)
	f := activeGB(t, srv, a, "s@example.com", "State")
	paidOut := a.do("POST", "/payments", payment(1000, f.mandate, nil)).must(t, 201, "payments")
	subPaused := a.do("POST", "/subscriptions", map[string]any{"subscriptions": map[string]any{"amount": 1000, "currency": "GBP",
		"interval_unit": "monthly", "links": map[string]any{"mandate": f.mandate}}}).must(t, 201, "subscriptions")
	a.do("POST", "/subscriptions/"+str(subPaused, "id")+"/actions/pause", nil).must(t, 200, "subscriptions")
	subActive := a.do("POST", "/subscriptions", map[string]any{"subscriptions": map[string]any{"amount": 1000, "currency": "GBP",
		"interval_unit": "monthly", "links": map[string]any{"mandate": f.mandate}}}).must(t, 201, "subscriptions")
	srv.Advance(7 * 24 * time.Hour)
	other := mandateIn(t, a, "GB")
	a.do("POST", "/mandates/"+other.mandate+"/actions/cancel", nil).must(t, 200, "mandates")
	a.do("POST", "/customer_bank_accounts/"+other.account+"/actions/disable", nil).must(t, 200, "customer_bank_accounts")

	cases := []struct {
		name string
		path string
		want wantErr
	}{
		{"cancel a paid-out payment", "/payments/" + str(paidOut, "id") + "/actions/cancel", stateErr("cancellation_failed")},
		{"retry a payment that did not fail", "/payments/" + str(paidOut, "id") + "/actions/retry", stateErr("retry_failed")}, // PaymentService.java, retry
		{"cancel a cancelled mandate", "/mandates/" + other.mandate + "/actions/cancel", stateErr("cancellation_failed")},
		{"disable a disabled account", "/customer_bank_accounts/" + other.account + "/actions/disable", stateErr("disable_failed")},
		{"pause a paused subscription", "/subscriptions/" + str(subPaused, "id") + "/actions/pause", stateErr("subscription_not_active")},
		{"resume an active subscription", "/subscriptions/" + str(subActive, "id") + "/actions/resume", stateErr("subscription_not_paused")},
		{"action metadata limits", "/payments/" + str(paidOut, "id") + "/actions/cancel", invalid("metadata", "/data/metadata/k")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var body any
			if tc.name == "action metadata limits" {
				body = map[string]any{"data": map[string]any{"metadata": map[string]any{"k": 1}}}
			}
			tc.want.check(t, a.do("POST", tc.path, body))
		})
	}
	if s := str(a.do("GET", "/subscriptions/"+str(subPaused, "id"), nil).must(t, 200, "subscriptions"), "status"); s != "paused" {
		t.Fatalf("refused action changed the subscription to %s", s)
	}
}
