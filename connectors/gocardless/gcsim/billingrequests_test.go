package gcsim_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/connectors/gocardless/gcsim"
)

// standard is a simulator whose creditor is as a new GoCardless account
// is: not approved for custom payment pages.
func standard(t *testing.T, opts ...func(*gcsim.Options)) (*gcsim.Server, *api) {
	t.Helper()
	srv := start(t, append([]func(*gcsim.Options){func(o *gcsim.Options) { o.Creditors = nil }}, opts...)...)
	return srv, newAPI(t, srv)
}

func billingRequest(t *testing.T, a *api, currency string, extra map[string]any) map[string]any {
	t.Helper()
	br := map[string]any{"mandate_request": map[string]any{"currency": currency}}
	for k, v := range extra {
		br[k] = v
	}
	return a.do("POST", "/billing_requests", map[string]any{"billing_requests": br}, idem("br-"+currency+time.Now().String())).
		must(t, 201, "billing_requests")
}

func flowFor(t *testing.T, a *api, br string, prefilled map[string]any) map[string]any {
	t.Helper()
	f := map[string]any{"links": map[string]any{"billing_request": br}}
	if prefilled != nil {
		f["prefilled_customer"] = prefilled
	}
	return a.do("POST", "/billing_request_flows", map[string]any{"billing_request_flows": f}).must(t, 201, "billing_request_flows")
}

func brEvents(srv *gcsim.Server, br string) []string {
	var out []string
	for _, e := range srv.Events() {
		if e.Links["billing_request"] == br {
			out = append(out, e.ResourceType+"/"+e.Action)
		}
	}
	return out
}

// TestDirectSetupNeedsCustomPaymentPages: a creditor GoCardless has not
// approved for custom payment pages (the default of a new account,
// developer.gocardless.com/getting-started/api/adding-your-first-customer)
// may not create bank accounts or mandates through the API, and its
// creditor resource says so.
func TestDirectSetupNeedsCustomPaymentPages(t *testing.T) {
	_, a := standard(t)
	cr := a.do("GET", "/creditors/"+gcsim.DefaultCreditorID, nil).must(t, 200, "creditors")
	if cr["custom_payment_pages_enabled"] != false {
		t.Fatalf("custom_payment_pages_enabled = %v, want false", cr["custom_payment_pages_enabled"])
	}
	cu := a.do("POST", "/customers", map[string]any{"customers": map[string]any{"company_name": "Acme"}}).must(t, 201, "customers")
	r := a.do("POST", "/customer_bank_accounts", map[string]any{"customer_bank_accounts": map[string]any{
		"account_holder_name": "Acme", "country_code": "GB", "account_number": "55779911", "branch_code": "200000",
		"links": map[string]any{"customer": cu["id"]}}})
	wantErr{status: 403, typ: "invalid_api_usage", reason: "insufficient_permissions"}.check(t, r)

	// An approved creditor of the same account may; a mandate for the
	// unapproved one is still refused.
	srv := start(t, func(o *gcsim.Options) {
		o.Creditors = []gcsim.Creditor{{ID: "CR000000000OK1", CustomPaymentPagesEnabled: true}, {ID: "CR000000000NO1"}}
	})
	a = newAPI(t, srv)
	f := mandateInWithCreditor(t, a, "CR000000000OK1")
	r = a.do("POST", "/mandates", map[string]any{"mandates": map[string]any{
		"links": map[string]any{"customer_bank_account": f.account, "creditor": "CR000000000NO1"}}})
	wantErr{status: 403, typ: "invalid_api_usage", reason: "insufficient_permissions"}.check(t, r)
}

// TestBillingRequestFlowCompleted follows the documented mandate set-up:
// billing request, flow, the payer completing it, fulfilment creating the
// bank account and mandate, each step an event
// (developer.gocardless.com/billing-requests/responding-to-billing-request-events).
func TestBillingRequestFlowCompleted(t *testing.T) {
	srv, a := standard(t)
	br := billingRequest(t, a, "GBP", map[string]any{"metadata": map[string]any{"erp": "C1"}})
	id := str(br, "id")
	if !strings.HasPrefix(id, "BRQ") || str(br, "status") != "pending" || link(br, "customer") == "" || link(br, "creditor") != gcsim.DefaultCreditorID {
		t.Fatalf("new billing request: %v", br)
	}
	mr := br["mandate_request"].(map[string]any)
	if mr["scheme"] != "bacs" || mr["currency"] != "GBP" {
		t.Fatalf("mandate_request %v", mr)
	}
	var pending []string
	for _, x := range br["actions"].([]any) {
		act := x.(map[string]any)
		if act["status"] == "pending" {
			pending = append(pending, act["type"].(string))
		}
	}
	if want := []string{"collect_customer_details", "collect_bank_account", "confirm_payer_details"}; !slices.Equal(pending, want) {
		t.Fatalf("pending actions %v, want %v", pending, want)
	}
	flow := flowFor(t, a, id, map[string]any{"company_name": "Acme Ltd", "email": "ap@acme.example"})
	created, _ := time.Parse(time.RFC3339, str(flow, "created_at"))
	expires, _ := time.Parse(time.RFC3339, str(flow, "expires_at"))
	if !strings.HasPrefix(str(flow, "id"), "BRF") || !strings.Contains(str(flow, "authorisation_url"), str(flow, "id")) ||
		expires.Sub(created) != 7*24*time.Hour || flow["auto_fulfil"] != true {
		t.Fatalf("flow %v", flow)
	}
	if _, err := srv.CompleteFlow(str(flow, "id"), gcsim.Payer{}); err != nil {
		t.Fatal(err)
	}
	got := a.do("GET", "/billing_requests/"+id, nil).must(t, 200, "billing_requests")
	mandate := link(got, "mandate_request_mandate")
	if str(got, "status") != "fulfilled" || mandate == "" || link(got, "customer_bank_account") == "" {
		t.Fatalf("after the payer: %s", got)
	}
	md := a.do("GET", "/mandates/"+mandate, nil).must(t, 200, "mandates")
	if str(md, "status") != "pending_submission" || link(md, "customer_bank_account") != link(got, "customer_bank_account") {
		t.Fatalf("mandate %v", md)
	}
	cu := a.do("GET", "/customers/"+link(got, "customer"), nil).must(t, 200, "customers")
	if str(cu, "company_name") != "Acme Ltd" || str(cu, "email") != "ap@acme.example" {
		t.Fatalf("the payer's details did not reach the customer: %v", cu)
	}
	want := []string{"billing_requests/created", "billing_requests/flow_created", "billing_requests/flow_visited",
		"billing_requests/collect_customer_details", "billing_requests/collect_bank_account",
		"billing_requests/payer_details_confirmed", "mandates/created", "billing_requests/fulfilled"}
	if got := brEvents(srv, id); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	srv.Advance(5 * 24 * time.Hour)
	if md := a.do("GET", "/mandates/"+mandate, nil).must(t, 200, "mandates"); str(md, "status") != "active" {
		t.Fatalf("mandate %s after 5 days", str(md, "status"))
	}
	if _, err := srv.CompleteFlow(str(flow, "id"), gcsim.Payer{}); err == nil {
		t.Fatal("a completed flow was completed again")
	}
	wantErr{status: 422, typ: "invalid_state", reason: "billing_request_not_pending"}.check(t,
		a.do("POST", "/billing_request_flows", map[string]any{"billing_request_flows": map[string]any{
			"links": map[string]any{"billing_request": id}}}))
}

func TestBillingRequestFlowAbandonedAndExpired(t *testing.T) {
	srv, a := standard(t)
	br := billingRequest(t, a, "EUR", nil)
	id := str(br, "id")
	f1 := flowFor(t, a, id, map[string]any{"given_name": "Ada", "family_name": "Lovelace", "email": "ada@example.com"})
	if err := srv.AbandonFlow(str(f1, "id")); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.CompleteFlow(str(f1, "id"), gcsim.Payer{}); err == nil {
		t.Fatal("an exited flow was completed")
	}
	// Expiry by time: seven days later the flow is dead.
	f2 := flowFor(t, a, id, nil)
	srv.Advance(7*24*time.Hour + time.Minute)
	if _, err := srv.CompleteFlow(str(f2, "id"), gcsim.Payer{GivenName: "A", FamilyName: "B", Email: "a@b.example"}); err == nil {
		t.Fatal("an expired flow was completed")
	}
	// Expiry on demand.
	f3 := flowFor(t, a, id, nil)
	if err := srv.ExpireFlow(str(f3, "id")); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.CompleteFlow(str(f3, "id"), gcsim.Payer{GivenName: "A", FamilyName: "B", Email: "a@b.example"}); err == nil {
		t.Fatal("an expired flow was completed")
	}
	if got := a.do("GET", "/billing_requests/"+id, nil).must(t, 200, "billing_requests"); str(got, "status") != "pending" {
		t.Fatalf("status %s after abandoned and expired flows", str(got, "status"))
	}
	want := []string{"billing_requests/created", "billing_requests/flow_created", "billing_requests/flow_visited",
		"billing_requests/flow_exited", "billing_requests/flow_created", "billing_requests/flow_created"}
	if got := brEvents(srv, id); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	// A new flow still works, and a SEPA payer gets a EUR account.
	f4 := flowFor(t, a, id, map[string]any{"company_name": "Late GmbH", "email": "ap@late.example"})
	done, err := srv.CompleteFlow(str(f4, "id"), gcsim.Payer{})
	if err != nil || done.Status != "fulfilled" || done.MandateRequest.Scheme != "sepa_core" {
		t.Fatalf("completed %+v, %v", done, err)
	}
}

func TestBillingRequestActions(t *testing.T) {
	srv, a := standard(t)
	br := billingRequest(t, a, "GBP", nil)
	id := str(br, "id")
	// notify: GoCardless's generated docs say it is "currently supported
	// only for Pay by Bank Billing Requests" (BillingRequestService.java).
	notify := func(a *api, id string, data map[string]any) reply {
		return a.do("POST", "/billing_requests/"+id+"/actions/notify", map[string]any{"data": data}, idem("n-"+id))
	}
	invalid("notification_type", "/data/notification_type").check(t, notify(a, id, map[string]any{}))
	stateErr("notification_not_supported").check(t, notify(a, id, map[string]any{"notification_type": "email"}))
	// fulfil before the payer acted.
	stateErr("billing_request_not_ready_to_fulfil").check(t,
		a.do("POST", "/billing_requests/"+id+"/actions/fulfil", nil, idem("f-"+id)))
	flow := flowFor(t, a, id, nil)
	r := a.do("POST", "/billing_requests/"+id+"/actions/cancel", nil, idem("c-"+id))
	if got := r.must(t, 200, "billing_requests"); str(got, "status") != "cancelled" {
		t.Fatalf("cancel: %v", got)
	}
	stateErr("cancellation_failed").check(t, a.do("POST", "/billing_requests/"+id+"/actions/cancel", nil, idem("c2-"+id)))
	if _, err := srv.CompleteFlow(str(flow, "id"), gcsim.Payer{CompanyName: "X", Email: "x@y.example"}); err == nil {
		t.Fatal("a flow of a cancelled billing request was completed")
	}
	if got := brEvents(srv, id); got[len(got)-1] != "billing_requests/cancelled" {
		t.Fatalf("events %v", got)
	}

	// With NotifyMandateRequests the other documented answer: GoCardless
	// emails the customer, who needs an email address.
	srv2, a2 := standard(t, func(o *gcsim.Options) { o.NotifyMandateRequests = true })
	br2 := str(billingRequest(t, a2, "GBP", nil), "id")
	invalid("customer[email]", "/data/customer/email").check(t, notify(a2, br2, map[string]any{"notification_type": "email"}))
	cu := a2.do("POST", "/customers", map[string]any{"customers": map[string]any{"company_name": "Acme", "email": "ap@acme.example"}}).must(t, 201, "customers")
	br3 := str(billingRequest(t, a2, "GBP", map[string]any{"links": map[string]any{"customer": cu["id"]}}), "id")
	notify(a2, br3, map[string]any{"notification_type": "email"}).must(t, 200, "billing_requests")
	if n := srv2.Notified(br3); len(n) != 1 {
		t.Fatalf("notified %v", n)
	}
}

func TestBillingRequestValidation(t *testing.T) {
	_, a := standard(t)
	post := func(br map[string]any) reply {
		return a.do("POST", "/billing_requests", map[string]any{"billing_requests": br})
	}
	invalid("mandate_request", "/billing_requests/mandate_request").check(t, post(map[string]any{}))
	invalid("mandate_request[currency]", "/billing_requests/mandate_request/currency").check(t,
		post(map[string]any{"mandate_request": map[string]any{"currency": "XYZ"}}))
	invalid("mandate_request[scheme]", "/billing_requests/mandate_request/scheme").check(t,
		post(map[string]any{"mandate_request": map[string]any{"currency": "GBP", "scheme": "sepa_core"}}))
	invalid("payment_request", "/billing_requests/payment_request").check(t,
		post(map[string]any{"mandate_request": map[string]any{"currency": "GBP"}, "payment_request": map[string]any{"amount": 100}}))
	wantErr{status: 400, typ: "invalid_api_usage", reason: "link_not_found"}.check(t,
		post(map[string]any{"mandate_request": map[string]any{"currency": "GBP"}, "links": map[string]any{"customer": "CU000000000000"}}))
	id := str(billingRequest(t, a, "GBP", nil), "id")
	flow := func(f map[string]any) reply {
		f["links"] = map[string]any{"billing_request": id}
		return a.do("POST", "/billing_request_flows", map[string]any{"billing_request_flows": f})
	}
	// BillingRequestFlowService.java: "Disabling the auto_fulfil is not
	// allowed currently"; Types.ts: "You can only lock bank account if
	// these have already been completed".
	invalid("auto_fulfil", "/billing_request_flows/auto_fulfil").check(t, flow(map[string]any{"auto_fulfil": false}))
	invalid("lock_bank_account", "/billing_request_flows/lock_bank_account").check(t, flow(map[string]any{"lock_bank_account": true}))
	invalid("links[billing_request]", "/billing_request_flows/links/billing_request").check(t,
		a.do("POST", "/billing_request_flows", map[string]any{"billing_request_flows": map[string]any{}}))
	// Idempotency keys work as for every create.
	body := map[string]any{"billing_requests": map[string]any{"mandate_request": map[string]any{"currency": "GBP"}}}
	first := a.do("POST", "/billing_requests", body, idem("same")).must(t, 201, "billing_requests")
	r := a.do("POST", "/billing_requests", body, idem("same"))
	wantErr{status: 409, typ: "invalid_state", reason: "idempotent_creation_conflict"}.check(t, r)
	if got := r.err(t).Errors[0].Links["conflicting_resource_id"]; got != str(first, "id") {
		t.Fatalf("conflicting_resource_id %q, want %s", got, str(first, "id"))
	}
}

// TestSimulatedPayers: billing_requests scenario rules play the payers of
// new flows: some authorise late, some abandon the page, some never act.
func TestSimulatedPayers(t *testing.T) {
	srv, a := standard(t, func(o *gcsim.Options) {
		o.Scenarios = []gcsim.Rule{
			{Resource: "billing_requests", CompanyName: "Late*", Outcome: "authorised", AfterDays: 3},
			{Resource: "billing_requests", CompanyName: "Gone*", Outcome: "abandoned"},
			{Resource: "billing_requests", CompanyName: "*", Outcome: "authorised"},
		}
	})
	ids := map[string]string{}
	for _, name := range []string{"Prompt Ltd", "Late Ltd", "Gone Ltd"} {
		id := str(billingRequest(t, a, "GBP", nil), "id")
		flowFor(t, a, id, map[string]any{"company_name": name, "email": "ap@example.com"})
		ids[name] = id
	}
	status := func(name string) string {
		return str(a.do("GET", "/billing_requests/"+ids[name], nil).must(t, 200, "billing_requests"), "status")
	}
	srv.Advance(24 * time.Hour)
	if status("Prompt Ltd") != "fulfilled" || status("Late Ltd") != "pending" || status("Gone Ltd") != "pending" {
		t.Fatalf("after a day: %s %s %s", status("Prompt Ltd"), status("Late Ltd"), status("Gone Ltd"))
	}
	srv.Advance(5 * 24 * time.Hour)
	if status("Late Ltd") != "fulfilled" || status("Gone Ltd") != "pending" {
		t.Fatalf("after six days: late %s, gone %s", status("Late Ltd"), status("Gone Ltd"))
	}
	if got := brEvents(srv, ids["Gone Ltd"]); !slices.Contains(got, "billing_requests/flow_exited") {
		t.Fatalf("abandoning payer: %v", got)
	}
	if err := (gcsim.Options{Scenarios: []gcsim.Rule{{Resource: "billing_requests", Outcome: "paid_out"}}}).Validate(); err == nil {
		t.Fatal("a payer outcome that is not one was accepted")
	}
}

// TestBillingRequestEvents: events of billing requests are listed under
// resource_type billing_requests, include=billing_request links the
// request, and resource_type cannot be combined with a resource id filter
// (gocardless-pro-java EventService.java, resource_type).
func TestBillingRequestEvents(t *testing.T) {
	_, a := standard(t)
	id := str(billingRequest(t, a, "GBP", nil), "id")
	r := a.do("GET", "/events?resource_type=billing_requests&include=billing_request", nil)
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	linked := r.body["linked"].(map[string]any)["billing_requests"].([]any)
	if len(linked) != 1 || linked[0].(map[string]any)["id"] != id {
		t.Fatalf("linked %v", linked)
	}
	if evs := a.do("GET", "/events?billing_request="+id, nil).body["events"].([]any); len(evs) != 1 {
		t.Fatalf("events of the billing request: %v", evs)
	}
	for _, q := range []string{"resource_type=payments&payment=PM000000000000", "resource_type=billing_requests&billing_request=" + id,
		"resource_type=mandates&mandate=MD000000000000"} {
		wantErr{status: 400, typ: "invalid_api_usage", reason: "invalid_filters"}.check(t, a.do("GET", "/events?"+q, nil))
	}
}
