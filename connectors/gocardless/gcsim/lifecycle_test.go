package gcsim_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/connectors/gocardless/gcsim"
)

const day = 24 * time.Hour

// eventAt describes an event as "resource_type.action@created_at".
func eventLog(srv *gcsim.Server, linkKey, id string) []string {
	var out []string
	for _, e := range srv.Events() {
		if e.Links[linkKey] == id {
			out = append(out, e.ResourceType+"."+e.Action+"@"+e.CreatedAt[:16])
		}
	}
	return out
}

func lastEvent(t *testing.T, srv *gcsim.Server, linkKey, id, action string) gcsim.Event {
	t.Helper()
	evs := srv.Events()
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Links[linkKey] == id && evs[i].Action == action {
			return evs[i]
		}
	}
	t.Fatalf("no %s event for %s", action, id)
	return gcsim.Event{}
}

func paymentByID(t *testing.T, srv *gcsim.Server, id string) gcsim.Payment {
	t.Helper()
	for _, p := range srv.Payments() {
		if p.ID == id {
			return p
		}
	}
	t.Fatalf("no payment %s", id)
	return gcsim.Payment{}
}

func mandateByID(t *testing.T, srv *gcsim.Server, id string) gcsim.Mandate {
	t.Helper()
	for _, m := range srv.Mandates() {
		if m.ID == id {
			return m
		}
	}
	t.Fatalf("no mandate %s", id)
	return gcsim.Mandate{}
}

func same(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s:\n got %v\nwant %v", what, got, want)
	}
}

// The clock starts on Monday 2025-01-06 at 08:00 UTC; runs are at 09:00
// on working days. Bacs mandates activate two working days after
// submission and payments are submitted two working days before their
// charge date.
func TestMandateAndPaymentTimeline(t *testing.T) {
	srv := start(t)
	a := newAPI(t, srv)
	f := gbCustomer(t, a, "t@example.com", "Timeline")
	md := a.do("GET", "/mandates/"+f.mandate, nil).must(t, 200, "mandates")
	if str(md, "status") != "pending_submission" || str(md, "next_possible_charge_date") != "2025-01-10" {
		t.Fatalf("new mandate: %v", md)
	}
	p := a.do("POST", "/payments", payment(2500, f.mandate, map[string]any{"reference": "INV-1"})).must(t, 201, "payments")
	p2 := a.do("POST", "/payments", payment(1500, f.mandate, nil)).must(t, 201, "payments")
	if str(p, "charge_date") != "2025-01-10" || str(p, "status") != "pending_submission" {
		t.Fatalf("new payment: %v", p)
	}
	srv.Advance(2*day + 2*time.Hour) // Wednesday 10:00
	md = a.do("GET", "/mandates/"+f.mandate, nil).must(t, 200, "mandates")
	if str(md, "status") != "active" || str(md, "next_possible_charge_date") != "2025-01-13" {
		t.Fatalf("activated mandate: %v", md)
	}
	srv.Advance(10 * day)
	same(t, "mandate events", eventLog(srv, "mandate", f.mandate), []string{
		"mandates.created@2025-01-06T08:00", "mandates.submitted@2025-01-06T09:00", "mandates.active@2025-01-08T09:00"})
	id := str(p, "id")
	same(t, "payment events", eventLog(srv, "payment", id), []string{
		"payments.created@2025-01-06T08:00", "payments.submitted@2025-01-08T09:00",
		"payments.confirmed@2025-01-13T09:00", "payments.paid_out@2025-01-14T09:00"})
	got := paymentByID(t, srv, id)
	if got.Status != "paid_out" || got.Links.Payout == "" || paymentByID(t, srv, str(p2, "id")).Links.Payout != got.Links.Payout {
		t.Fatalf("paid out payments not in one payout: %+v", got)
	}
	po := a.do("GET", "/payouts/"+got.Links.Payout, nil).must(t, 200, "payouts")
	// 2500 + 1500 less the default fees with GB VAT: (25 + 20) × 1.2 and
	// (15 + 20) × 1.2.
	if po["amount"].(float64) != 4000-54-42 || po["deducted_fees"].(float64) != 96 || str(po, "status") != "paid" ||
		str(po, "arrival_date") != "2025-01-15" ||
		str(po, "currency") != "GBP" || link(po, "creditor") != gcsim.DefaultCreditorID {
		t.Fatalf("payout: %v", po)
	}
	same(t, "payout events", eventLog(srv, "payout", got.Links.Payout), []string{
		"payments.paid_out@2025-01-14T09:00", "payments.paid_out@2025-01-14T09:00", "payouts.paid@2025-01-15T09:00"})
	// A charge date on a Saturday rolls forward to Monday.
	sat := a.do("POST", "/payments", payment(1000, f.mandate, map[string]any{"charge_date": "2025-01-25"})).must(t, 201, "payments")
	if str(sat, "charge_date") != "2025-01-27" {
		t.Fatalf("charge date %s, want Monday 2025-01-27", str(sat, "charge_date"))
	}
}

func TestPaymentOutcomes(t *testing.T) {
	cases := []struct {
		name       string
		country    string
		rule       gcsim.Rule
		amount     int64
		metadata   map[string]any
		wantEvents []string
		wantCause  string
		wantCode   string
	}{
		{name: "success", country: "GB", amount: 1000,
			wantEvents: []string{"created", "submitted", "confirmed", "paid_out"}},
		{name: "insufficient funds by amount", country: "GB", amount: 1001,
			rule:       gcsim.Rule{Resource: "payments", AmountSuffix: "01", Outcome: "failed"},
			wantEvents: []string{"created", "submitted", "failed"}, wantCause: "insufficient_funds", wantCode: "ARUDD-0"},
		{name: "SEPA insufficient funds", country: "FR", amount: 1001,
			rule:       gcsim.Rule{Resource: "payments", AmountSuffix: "01", Outcome: "failed", Cause: "insufficient_funds"},
			wantEvents: []string{"created", "submitted", "failed"}, wantCause: "insufficient_funds", wantCode: "AM04"},
		{name: "SEPA account closed", country: "DE", amount: 2000,
			rule:       gcsim.Rule{Resource: "payments", Scheme: "sepa_core", Outcome: "failed", Cause: "bank_account_closed"},
			wantEvents: []string{"created", "submitted", "failed"}, wantCause: "bank_account_closed", wantCode: "AC04"},
		{name: "late failure", country: "GB", amount: 1003,
			rule:       gcsim.Rule{Resource: "payments", AmountSuffix: "03", Outcome: "late_failure", Cause: "refer_to_payer"},
			wantEvents: []string{"created", "submitted", "confirmed", "failed"}, wantCause: "refer_to_payer", wantCode: "ARUDD-0"},
		{name: "charge-back", country: "GB", amount: 1004,
			rule:       gcsim.Rule{Resource: "payments", Amount: 1004, Outcome: "charged_back"},
			wantEvents: []string{"created", "submitted", "confirmed", "paid_out", "charged_back"}, wantCause: "authorisation_disputed", wantCode: "DDICA-4"},
		{name: "SEPA refund request", country: "FR", amount: 3000,
			rule:       gcsim.Rule{Resource: "payments", Currency: "eur", Outcome: "charged_back", Cause: "refund_requested"},
			wantEvents: []string{"created", "submitted", "confirmed", "paid_out", "charged_back"}, wantCause: "refund_requested", wantCode: "MD06"},
		{name: "by metadata", country: "GB", amount: 1000, metadata: map[string]any{"case": "fail"},
			rule:       gcsim.Rule{Resource: "payments", Metadata: map[string]string{"case": "fail"}, Outcome: "failed", ReasonCode: "X-1"},
			wantEvents: []string{"created", "submitted", "failed"}, wantCause: "insufficient_funds", wantCode: "X-1"},
		{name: "by customer family name", country: "GB", amount: 1000,
			rule:       gcsim.Rule{Resource: "payments", FamilyName: "pay*", Outcome: "failed", Cause: "invalid_bank_details"},
			wantEvents: []string{"created", "submitted", "failed"}, wantCause: "invalid_bank_details", wantCode: "ARUDD-5"},
		{name: "rule for another customer", country: "GB", amount: 1000,
			rule:       gcsim.Rule{Resource: "payments", Email: "*@elsewhere.example", Outcome: "failed"},
			wantEvents: []string{"created", "submitted", "confirmed", "paid_out"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := start(t)
			if tc.rule.Resource != "" {
				if err := srv.SetScenarios([]gcsim.Rule{tc.rule}); err != nil {
					t.Fatal(err)
				}
			}
			a := newAPI(t, srv)
			f := mandateIn(t, a, tc.country)
			srv.Advance(3 * day)
			md := mandateByID(t, srv, f.mandate)
			body := map[string]any{"payments": map[string]any{"amount": tc.amount, "currency": map[string]string{"GB": "GBP"}[tc.country],
				"links": map[string]any{"mandate": f.mandate}, "metadata": tc.metadata}}
			if tc.country != "GB" {
				body["payments"].(map[string]any)["currency"] = "EUR"
			}
			p := a.do("POST", "/payments", body).must(t, 201, "payments")
			srv.Advance(20 * day)
			id := str(p, "id")
			same(t, "events", eventsOf(srv, "payment", id, false), tc.wantEvents)
			final := tc.wantEvents[len(tc.wantEvents)-1]
			if got := paymentByID(t, srv, id).Status; got != final {
				t.Fatalf("status %s, want %s", got, final)
			}
			if tc.wantCause == "" {
				return
			}
			ev := lastEvent(t, srv, "payment", id, final)
			d := ev.Details
			if d.Cause != tc.wantCause || d.ReasonCode != tc.wantCode || d.Origin != "bank" || d.Scheme != md.Scheme || d.Description == "" {
				t.Fatalf("details %+v, want cause %s, reason_code %s, origin bank, scheme %s", d, tc.wantCause, tc.wantCode, md.Scheme)
			}
			if final == "failed" && (d.WillAttemptRetry == nil || *d.WillAttemptRetry) {
				t.Fatalf("will_attempt_retry %v, want false", d.WillAttemptRetry)
			}
			if (tc.wantCause == "bank_account_closed") != (mandateByID(t, srv, f.mandate).Status == "cancelled") {
				t.Fatalf("mandate %s after a %s failure", mandateByID(t, srv, f.mandate).Status, tc.wantCause)
			}
		})
	}
}

// A failure saying the account is closed also cancels the mandate, with
// the payment's failure as parent event.
func TestAccountClosedCancelsMandate(t *testing.T) {
	srv := start(t, func(o *gcsim.Options) { o.Scenarios = gcsim.BuiltinScenarios() })
	a := newAPI(t, srv)
	f := activeGB(t, srv, a, "c@example.com", "Closed")
	failing := a.do("POST", "/payments", payment(1002, f.mandate, nil)).must(t, 201, "payments")
	later := a.do("POST", "/payments", payment(1000, f.mandate, map[string]any{"charge_date": "2025-02-14"})).must(t, 201, "payments")
	srv.Advance(10 * day)
	failed := lastEvent(t, srv, "payment", str(failing, "id"), "failed")
	cancelled := lastEvent(t, srv, "mandate", f.mandate, "cancelled")
	if cancelled.Links["parent_event"] != failed.ID || cancelled.Details.ReasonCode != "ADDACS-B" || cancelled.Details.Origin != "bank" {
		t.Fatalf("mandate cancellation %+v, want parent %s, ADDACS-B from the bank", cancelled, failed.ID)
	}
	later2 := lastEvent(t, srv, "payment", str(later, "id"), "cancelled")
	if later2.Links["parent_event"] != cancelled.ID || later2.Details.Cause != "mandate_cancelled" {
		t.Fatalf("pending payment %+v, want cancelled by the mandate", later2)
	}
}

func TestMandateOutcomes(t *testing.T) {
	cases := []struct {
		name       string
		rule       gcsim.Rule
		cancelAPI  bool
		disable    bool
		wantEvents []string
		wantCause  string
		wantCode   string
		wantOrigin string
		// what happens to a pending payment and a subscription
		wantPayment, wantSub string
	}{
		{name: "fails at the bank", rule: gcsim.Rule{Resource: "mandates", Email: "*@fail.example", Outcome: "failed"},
			wantEvents: []string{"created", "submitted", "failed"}, wantCause: "invalid_bank_details", wantCode: "AUDDIS-5", wantOrigin: "bank",
			wantPayment: "failed"},
		{name: "cancelled by the bank", rule: gcsim.Rule{Resource: "mandates", Email: "*@fail.example", Outcome: "cancelled", AfterDays: 1},
			wantEvents: []string{"created", "submitted", "active", "cancelled"}, wantCause: "bank_account_closed", wantCode: "ADDACS-B", wantOrigin: "bank",
			wantPayment: "cancelled", wantSub: "cancelled"},
		{name: "customer cancelled at the bank", rule: gcsim.Rule{Resource: "mandates", GivenName: "ada", Outcome: "cancelled", Cause: "mandate_cancelled"},
			wantEvents: []string{"created", "submitted", "active", "cancelled"}, wantCause: "mandate_cancelled", wantCode: "ADDACS-1", wantOrigin: "bank",
			wantPayment: "cancelled", wantSub: "cancelled"},
		{name: "expires", rule: gcsim.Rule{Resource: "mandates", Email: "*@FAIL.example", Outcome: "expired"},
			wantEvents: []string{"created", "submitted", "active", "expired"}, wantCause: "mandate_expired", wantOrigin: "gocardless",
			wantPayment: "cancelled", wantSub: "cancelled"},
		{name: "cancelled through the API", cancelAPI: true,
			wantEvents: []string{"created", "submitted", "active", "cancelled"}, wantCause: "mandate_cancelled", wantOrigin: "api",
			wantPayment: "cancelled", wantSub: "cancelled"},
		{name: "bank account disabled", disable: true,
			wantEvents: []string{"created", "submitted", "active", "cancelled"}, wantCause: "bank_account_disabled", wantOrigin: "api",
			wantPayment: "cancelled", wantSub: "cancelled"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := start(t)
			if tc.rule.Resource != "" {
				if err := srv.SetScenarios([]gcsim.Rule{tc.rule}); err != nil {
					t.Fatal(err)
				}
			}
			a := newAPI(t, srv)
			f := gbCustomer(t, a, "ada@fail.example", "Lovelace")
			p := a.do("POST", "/payments", payment(1000, f.mandate, map[string]any{"charge_date": "2025-03-03"})).must(t, 201, "payments")
			srv.Advance(2*day + 2*time.Hour)
			var sub map[string]any
			if tc.wantSub != "" {
				sub = a.do("POST", "/subscriptions", map[string]any{"subscriptions": map[string]any{"amount": 1000, "currency": "GBP",
					"interval_unit": "monthly", "links": map[string]any{"mandate": f.mandate}}}).must(t, 201, "subscriptions")
			}
			switch {
			case tc.cancelAPI:
				a.do("POST", "/mandates/"+f.mandate+"/actions/cancel", map[string]any{"data": map[string]any{"metadata": map[string]any{"why": "asked"}}}).
					must(t, 200, "mandates")
			case tc.disable:
				a.do("POST", "/customer_bank_accounts/"+f.account+"/actions/disable", nil).must(t, 200, "customer_bank_accounts")
			}
			srv.Advance(5 * day)
			same(t, "mandate events", eventsOf(srv, "mandate", f.mandate, false), tc.wantEvents)
			final := tc.wantEvents[len(tc.wantEvents)-1]
			m := mandateByID(t, srv, f.mandate)
			if m.Status != final || m.NextPossibleChargeDate != nil {
				t.Fatalf("mandate %s (next_possible_charge_date %v), want %s and none", m.Status, m.NextPossibleChargeDate, final)
			}
			ev := lastEvent(t, srv, "mandate", f.mandate, final)
			if ev.Details.Cause != tc.wantCause || ev.Details.ReasonCode != tc.wantCode || ev.Details.Origin != tc.wantOrigin {
				t.Fatalf("details %+v, want %s/%s from %s", ev.Details, tc.wantCause, tc.wantCode, tc.wantOrigin)
			}
			if tc.cancelAPI && ev.Metadata["why"] != "asked" {
				t.Fatalf("action metadata not on the event: %v", ev.Metadata)
			}
			pid := str(p, "id")
			if got := paymentByID(t, srv, pid).Status; got != tc.wantPayment {
				t.Fatalf("pending payment %s, want %s", got, tc.wantPayment)
			}
			if pe := lastEvent(t, srv, "payment", pid, tc.wantPayment); pe.Links["parent_event"] != ev.ID {
				t.Fatalf("payment event parent %q, want %s", pe.Links["parent_event"], ev.ID)
			}
			if sub != nil {
				got := str(a.do("GET", "/subscriptions/"+str(sub, "id"), nil).must(t, 200, "subscriptions"), "status")
				if got != tc.wantSub {
					t.Fatalf("subscription %s, want %s", got, tc.wantSub)
				}
			}
			wantErr{status: 422, typ: "invalid_state", reason: "mandate_is_inactive"}.check(t,
				a.do("POST", "/payments", payment(1000, f.mandate, nil)))
		})
	}
}

func TestPaymentRetries(t *testing.T) {
	t.Run("automatic, with retry_if_possible", func(t *testing.T) {
		srv := start(t, func(o *gcsim.Options) {
			o.Scenarios = []gcsim.Rule{{Resource: "payments", AmountSuffix: "05", Outcome: "failed", Attempts: 1}}
		})
		a := newAPI(t, srv)
		f := activeGB(t, srv, a, "r@example.com", "Retry")
		p := a.do("POST", "/payments", payment(1005, f.mandate, map[string]any{"retry_if_possible": true})).must(t, 201, "payments")
		srv.Advance(20 * day)
		id := str(p, "id")
		same(t, "events", eventsOf(srv, "payment", id, true), []string{"created:payment_created", "submitted:payment_submitted",
			"failed:insufficient_funds", "resubmission_requested:payment_autoretried", "submitted:payment_submitted",
			"confirmed:payment_confirmed", "paid_out:payment_paid_out"})
		if w := lastEvent(t, srv, "payment", id, "failed").Details.WillAttemptRetry; w == nil || !*w {
			t.Fatalf("will_attempt_retry %v, want true", w)
		}
	})
	t.Run("not without retry_if_possible", func(t *testing.T) {
		srv := start(t, func(o *gcsim.Options) {
			o.Scenarios = []gcsim.Rule{{Resource: "payments", AmountSuffix: "05", Outcome: "failed", Attempts: 1}}
		})
		a := newAPI(t, srv)
		f := activeGB(t, srv, a, "r@example.com", "Retry")
		p := a.do("POST", "/payments", payment(1005, f.mandate, nil)).must(t, 201, "payments")
		srv.Advance(20 * day)
		same(t, "events", eventsOf(srv, "payment", str(p, "id"), false), []string{"created", "submitted", "failed"})
	})
	t.Run("through the API, at most three times", func(t *testing.T) {
		srv := start(t, func(o *gcsim.Options) {
			o.Scenarios = []gcsim.Rule{{Resource: "payments", AmountSuffix: "01", Outcome: "failed"}}
		})
		a := newAPI(t, srv)
		f := activeGB(t, srv, a, "r@example.com", "Retry")
		p := a.do("POST", "/payments", payment(1001, f.mandate, nil)).must(t, 201, "payments")
		id := str(p, "id")
		srv.Advance(10 * day)
		early := srv.Now().Format("2006-01-02")
		invalid("charge_date", "/data/charge_date").check(t,
			a.do("POST", "/payments/"+id+"/actions/retry", map[string]any{"data": map[string]any{"charge_date": early}}))
		for i := range 3 {
			r := a.do("POST", "/payments/"+id+"/actions/retry", map[string]any{"data": map[string]any{"metadata": map[string]any{"try": fmt.Sprint(i)}}}).
				must(t, 200, "payments")
			if str(r, "status") != "pending_submission" {
				t.Fatalf("retried payment is %s", str(r, "status"))
			}
			if ev := lastEvent(t, srv, "payment", id, "resubmission_requested"); ev.Details.Origin != "api" ||
				ev.Details.Cause != "payment_retried" || ev.Metadata["try"] != fmt.Sprint(i) {
				t.Fatalf("retry event %+v", ev)
			}
			srv.Advance(10 * day)
			if got := paymentByID(t, srv, id).Status; got != "failed" {
				t.Fatalf("after retry %d: %s, want failed again", i+1, got)
			}
		}
		stateErr("retry_limit_reached").check(t, a.do("POST", "/payments/"+id+"/actions/retry", nil))
		if n := strings.Count(strings.Join(eventsOf(srv, "payment", id, false), " "), "submitted"); n != 4 {
			t.Fatalf("%d submissions, want 4", n)
		}
	})
	t.Run("retry succeeds once the rule stops matching", func(t *testing.T) {
		srv := start(t, func(o *gcsim.Options) {
			o.Scenarios = []gcsim.Rule{{Resource: "payments", AmountSuffix: "01", Outcome: "failed", Attempts: 1}}
		})
		a := newAPI(t, srv)
		f := activeGB(t, srv, a, "r@example.com", "Retry")
		p := a.do("POST", "/payments", payment(1001, f.mandate, nil)).must(t, 201, "payments")
		srv.Advance(10 * day)
		a.do("POST", "/payments/"+str(p, "id")+"/actions/retry", nil).must(t, 200, "payments")
		srv.Advance(10 * day)
		if got := paymentByID(t, srv, str(p, "id")).Status; got != "paid_out" {
			t.Fatalf("retried payment %s, want paid_out", got)
		}
	})
}

func TestPaymentCancel(t *testing.T) {
	srv := start(t)
	a := newAPI(t, srv)
	f := activeGB(t, srv, a, "x@example.com", "Cancel")
	p := a.do("POST", "/payments", payment(1000, f.mandate, map[string]any{"charge_date": "2025-02-03"})).must(t, 201, "payments")
	c := a.do("POST", "/payments/"+str(p, "id")+"/actions/cancel", map[string]any{"data": map[string]any{"metadata": map[string]any{"by": "ops"}}}).
		must(t, 200, "payments")
	if str(c, "status") != "cancelled" {
		t.Fatalf("cancelled payment is %s", str(c, "status"))
	}
	srv.Advance(40 * day)
	same(t, "events", eventsOf(srv, "payment", str(p, "id"), true), []string{"created:payment_created", "cancelled:payment_cancelled"})
	if ev := lastEvent(t, srv, "payment", str(p, "id"), "cancelled"); ev.Metadata["by"] != "ops" || ev.Details.Origin != "api" {
		t.Fatalf("cancel event %+v", ev)
	}
}

func TestRefundOutcomes(t *testing.T) {
	cases := []struct {
		name       string
		rule       *gcsim.Rule
		wantEvents []string
		refunded   float64
	}{
		{"paid", nil, []string{"created", "pending_submission", "submitted", "paid"}, 600},
		{"bounced", &gcsim.Rule{Resource: "refunds", AmountSuffix: "00", Outcome: "bounced"},
			[]string{"created", "pending_submission", "submitted", "bounced"}, 0},
		{"failed", &gcsim.Rule{Resource: "refunds", Outcome: "failed"},
			[]string{"created", "pending_submission", "submitted", "failed"}, 0},
		{"funds returned", &gcsim.Rule{Resource: "refunds", Outcome: "funds_returned", AfterDays: 2},
			[]string{"created", "pending_submission", "submitted", "paid", "funds_returned"}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := start(t)
			if tc.rule != nil {
				if err := srv.SetScenarios([]gcsim.Rule{*tc.rule}); err != nil {
					t.Fatal(err)
				}
			}
			a := newAPI(t, srv)
			f := activeGB(t, srv, a, "r@example.com", "Refund")
			p := a.do("POST", "/payments", payment(1000, f.mandate, nil)).must(t, 201, "payments")
			srv.Advance(6 * day)
			rf := a.do("POST", "/refunds", map[string]any{"refunds": map[string]any{"amount": 600, "total_amount_confirmation": 600,
				"links": map[string]any{"payment": p["id"]}}}).must(t, 201, "refunds")
			if str(rf, "status") != "created" || link(rf, "mandate") != f.mandate || str(rf, "currency") != "GBP" {
				t.Fatalf("new refund %v", rf)
			}
			srv.Advance(10 * day)
			same(t, "refund events", eventsOf(srv, "refund", str(rf, "id"), false), tc.wantEvents)
			got := a.do("GET", "/payments/"+str(p, "id"), nil).must(t, 200, "payments")
			if got["amount_refunded"].(float64) != tc.refunded {
				t.Fatalf("amount_refunded %v, want %v", got["amount_refunded"], tc.refunded)
			}
			final := tc.wantEvents[len(tc.wantEvents)-1]
			if ev := lastEvent(t, srv, "refund", str(rf, "id"), final); ev.Details.Cause != "refund_"+final {
				t.Fatalf("final refund event cause %q", ev.Details.Cause)
			}
		})
	}
}

func TestSubscriptionSchedules(t *testing.T) {
	cases := []struct {
		name string
		body map[string]any
		want []string // upcoming charge dates
	}{
		{"monthly on the 1st, count 3", map[string]any{"interval_unit": "monthly", "day_of_month": 1, "count": 3},
			[]string{"2025-02-03", "2025-03-03", "2025-04-01"}},
		{"monthly on the last day", map[string]any{"interval_unit": "monthly", "day_of_month": -1, "count": 3},
			[]string{"2025-01-31", "2025-02-28", "2025-03-31"}},
		{"every two weeks from a start date", map[string]any{"interval_unit": "weekly", "interval": 2, "start_date": "2025-01-15",
			"end_date": "2025-02-20"}, []string{"2025-01-15", "2025-01-29", "2025-02-12"}},
		{"yearly in March", map[string]any{"interval_unit": "yearly", "month": "march", "day_of_month": 15, "count": 2},
			[]string{"2025-03-17", "2026-03-16"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := start(t)
			a := newAPI(t, srv)
			f := activeGB(t, srv, a, "s@example.com", "Sub")
			body := map[string]any{"amount": 1999, "currency": "GBP", "payment_reference": "GOLD",
				"links": map[string]any{"mandate": f.mandate}}
			for k, v := range tc.body {
				body[k] = v
			}
			sub := a.do("POST", "/subscriptions", map[string]any{"subscriptions": body}).must(t, 201, "subscriptions")
			var upcoming []string
			for _, u := range sub["upcoming_payments"].([]any) {
				upcoming = append(upcoming, str(u.(map[string]any), "charge_date"))
			}
			same(t, "upcoming_payments", upcoming, tc.want)
			srv.Advance(500 * day)
			var dates []string
			for _, p := range srv.Payments() {
				if p.Links.Subscription == str(sub, "id") {
					dates = append(dates, p.ChargeDate)
					if p.Amount != 1999 || p.Reference != "GOLD" || p.Status != "paid_out" {
						t.Fatalf("subscription payment %+v", p)
					}
				}
			}
			same(t, "payment charge dates", dates, tc.want)
			got := a.do("GET", "/subscriptions/"+str(sub, "id"), nil).must(t, 200, "subscriptions")
			if str(got, "status") != "finished" || len(got["upcoming_payments"].([]any)) != 0 {
				t.Fatalf("subscription after its last charge: %v", got)
			}
			evs := eventsOf(srv, "subscription", str(sub, "id"), false)
			want := []string{"created"}
			for range tc.want {
				want = append(want, "payment_created")
			}
			same(t, "subscription events", evs, append(want, "finished"))
		})
	}
}

func TestSubscriptionPauseResumeCancel(t *testing.T) {
	srv := start(t)
	a := newAPI(t, srv)
	f := activeGB(t, srv, a, "p@example.com", "Pause")
	newSub := func() string {
		return str(a.do("POST", "/subscriptions", map[string]any{"subscriptions": map[string]any{"amount": 1000, "currency": "GBP",
			"interval_unit": "monthly", "day_of_month": 10, "links": map[string]any{"mandate": f.mandate}}}).must(t, 201, "subscriptions"), "id")
	}
	chargeDates := func(sub string) []string {
		var out []string
		for _, p := range srv.Payments() {
			if p.Links.Subscription == sub && p.Status != "cancelled" {
				out = append(out, p.ChargeDate)
			}
		}
		return out
	}
	// It is Thursday 9 January; the first charge is 10 February, and
	// payments are created five working days before their charge date.
	paused, cycles, cancelled := newSub(), newSub(), newSub()
	p := a.do("POST", "/subscriptions/"+paused+"/actions/pause", nil).must(t, 200, "subscriptions")
	if str(p, "status") != "paused" || len(p["upcoming_payments"].([]any)) != 0 {
		t.Fatalf("paused subscription %v", p)
	}
	a.do("POST", "/subscriptions/"+cycles+"/actions/pause", map[string]any{"data": map[string]any{"pause_cycles": 1}}).must(t, 200, "subscriptions")
	srv.Advance(26 * day) // 4 February
	if got := chargeDates(cancelled); !slices.Equal(got, []string{"2025-02-10"}) {
		t.Fatalf("payments before cancelling: %v", got)
	}
	a.do("POST", "/subscriptions/"+cancelled+"/actions/cancel", nil).must(t, 200, "subscriptions")
	srv.Advance(40 * day) // 16 March
	if got := chargeDates(paused); len(got) != 0 {
		t.Fatalf("a paused subscription created payments %v", got)
	}
	// Resuming skips the charges that can no longer be collected (10 March).
	a.do("POST", "/subscriptions/"+paused+"/actions/resume", nil).must(t, 200, "subscriptions")
	srv.Advance(60 * day) // 15 May
	same(t, "resumed subscription", chargeDates(paused), []string{"2025-04-10", "2025-05-12"})
	same(t, "subscription paused for one cycle", chargeDates(cycles), []string{"2025-03-10", "2025-04-10", "2025-05-12"})
	same(t, "cycle pause events", eventsOf(srv, "subscription", cycles, true)[:3], []string{
		"created:subscription_created", "paused:subscription_paused", "resumed:subscription_resumed"})
	same(t, "cancelled subscription", chargeDates(cancelled), nil)
	for _, pm := range srv.Payments() {
		if pm.Links.Subscription == cancelled && pm.Status != "cancelled" {
			t.Fatalf("payment %s of a cancelled subscription is %s", pm.ID, pm.Status)
		}
	}
}

// Two simulators with the same seed, given the same requests, agree on
// every ID and event.
func TestDeterministic(t *testing.T) {
	run := func() []string {
		srv := start(t, func(o *gcsim.Options) { o.Seed = 7; o.Scenarios = gcsim.BuiltinScenarios() })
		a := newAPI(t, srv)
		f := activeGB(t, srv, a, "d@example.com", "Det")
		for _, amount := range []int64{1000, 1001, 1003, 1004, 1005} {
			a.do("POST", "/payments", payment(amount, f.mandate, map[string]any{"retry_if_possible": true}))
		}
		srv.Advance(30 * day)
		var out []string
		for _, e := range srv.Events() {
			out = append(out, fmt.Sprint(e.ID, e.CreatedAt, e.ResourceType, e.Action, e.Links, e.Details.Cause))
		}
		return out
	}
	first, second := run(), run()
	if len(first) < 20 {
		t.Fatalf("only %d events", len(first))
	}
	same(t, "events of two seeded runs", first, second)
}
