package gocardless_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/connectors/gocardless/gcsim"
	"github.com/ml-connector/ml-connector/platform/secrets"
)

func TestNewRefusesBadConfig(t *testing.T) {
	tests := []struct {
		name  string
		base  string
		token string
	}{
		{"empty url", "", token},
		{"no scheme", "api.gocardless.com", token},
		{"ftp", "ftp://api.gocardless.com", token},
		{"credentials in url", "https://user:pw@api.gocardless.com", token},
		{"query in url", "https://api.gocardless.com?x=1", token},
		{"empty token", gocardless.LiveURL, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := gocardless.New(tc.base, secrets.NewValue(tc.token)); err == nil {
				t.Fatal("New accepted it")
			}
		})
	}
}

func TestCreditors(t *testing.T) {
	e := setup(t, gcsim.Options{})
	ctx := context.Background()
	page, err := e.gc.ListCreditors(ctx, gocardless.ListParams{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 || page.Items[0].ID != gcsim.DefaultCreditorID || page.After != "" {
		t.Fatalf("creditors page %+v, want just %s", page, gcsim.DefaultCreditorID)
	}
	cr, err := e.gc.GetCreditor(ctx, gcsim.DefaultCreditorID)
	if err != nil {
		t.Fatal(err)
	}
	if cr.Name != e.sim.Creditors()[0].Name || cr.CountryCode != "GB" || len(cr.SchemeIdentifiers) == 0 || cr.CreatedAt.IsZero() {
		t.Errorf("creditor decoded as %+v", cr)
	}
	if _, err := e.gc.GetCreditor(ctx, "CR000000MISSING"); !gocardless.IsNotFound(err) {
		t.Errorf("missing creditor: %v, want not found", err)
	}
}

func TestCustomers(t *testing.T) {
	e := setup(t, gcsim.Options{})
	ctx := context.Background()
	var ids []string
	var times []time.Time
	for i := range 5 {
		cu, existed, err := e.gc.CreateCustomer(ctx, fmt.Sprintf("erp-cust-%d", i), gocardless.CustomerParams{
			CompanyName: fmt.Sprintf("Acme %d Ltd", i), Email: fmt.Sprintf("ap%d@acme.example", i),
			CountryCode: "GB", Metadata: map[string]string{"erp_id": fmt.Sprint(i)},
		})
		if err != nil || existed {
			t.Fatalf("create customer %d: existed %v, %v", i, existed, err)
		}
		ids = append(ids, cu.ID)
		times = append(times, cu.CreatedAt)
		e.sim.Advance(time.Minute)
	}

	got, err := e.gc.GetCustomer(ctx, ids[2])
	if err != nil {
		t.Fatal(err)
	}
	if got.CompanyName != "Acme 2 Ltd" || got.Email != "ap2@acme.example" || got.Metadata["erp_id"] != "2" ||
		!got.CreatedAt.Equal(times[2]) {
		t.Errorf("customer read back as %+v", got)
	}

	up, err := e.gc.UpdateCustomer(ctx, ids[2], gocardless.CustomerParams{City: "Leeds", Metadata: map[string]string{"erp_id": "2b"}})
	if err != nil {
		t.Fatal(err)
	}
	if up.City != "Leeds" || up.CompanyName != "Acme 2 Ltd" || up.Metadata["erp_id"] != "2b" {
		t.Errorf("updated customer %+v: want city set, name kept, metadata replaced", up)
	}
	if sim := e.sim.Customers()[2]; sim.City != "Leeds" {
		t.Errorf("simulator has city %q after update", sim.City)
	}

	// Page through two at a time: newest first, every customer once.
	var seen []string
	p := gocardless.ListParams{Limit: 2}
	for {
		page, err := e.gc.ListCustomers(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if page.Limit != 2 || len(page.Items) > 2 {
			t.Fatalf("page of %d with limit %d", len(page.Items), page.Limit)
		}
		for _, c := range page.Items {
			seen = append(seen, c.ID)
		}
		if page.After == "" {
			break
		}
		p.After = page.After
	}
	want := slices.Clone(ids)
	slices.Reverse(want)
	if !slices.Equal(seen, want) {
		t.Errorf("paged %v, want %v", seen, want)
	}

	// The before cursor pages back.
	page, err := e.gc.ListCustomers(ctx, gocardless.ListParams{Limit: 2, Before: ids[1]})
	if err != nil {
		t.Fatal(err)
	}
	if got := itemIDs(page.Items, func(c gocardless.Customer) string { return c.ID }); !slices.Equal(got, []string{ids[3], ids[2]}) {
		t.Errorf("before %s: %v, want %v", ids[1], got, []string{ids[3], ids[2]})
	}

	tests := []struct {
		name  string
		where gocardless.TimeRange
		want  []string
	}{
		{"gt", gocardless.TimeRange{GT: times[2]}, []string{ids[4], ids[3]}},
		{"gte", gocardless.TimeRange{GTE: times[2]}, []string{ids[4], ids[3], ids[2]}},
		{"lt", gocardless.TimeRange{LT: times[1]}, []string{ids[0]}},
		{"lte", gocardless.TimeRange{LTE: times[1]}, []string{ids[1], ids[0]}},
		{"between", gocardless.TimeRange{GT: times[0], LT: times[4]}, []string{ids[3], ids[2], ids[1]}},
	}
	for _, tc := range tests {
		t.Run("created_at "+tc.name, func(t *testing.T) {
			page, err := e.gc.ListCustomers(ctx, gocardless.ListParams{CreatedAt: tc.where})
			if err != nil {
				t.Fatal(err)
			}
			if got := itemIDs(page.Items, func(c gocardless.Customer) string { return c.ID }); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func itemIDs[T any](items []T, id func(T) string) []string {
	out := []string{}
	for _, it := range items {
		out = append(out, id(it))
	}
	return out
}

func TestListParamsRefusedLocally(t *testing.T) {
	e := setup(t, gcsim.Options{})
	ctx := context.Background()
	tests := []struct {
		name string
		call func() error
	}{
		{"limit above 500", func() error {
			_, err := e.gc.ListPayments(ctx, gocardless.PaymentListParams{ListParams: gocardless.ListParams{Limit: 501}})
			return err
		}},
		{"negative limit", func() error {
			_, err := e.gc.ListCustomers(ctx, gocardless.ListParams{Limit: -1})
			return err
		}},
		{"after and before", func() error {
			_, err := e.gc.ListMandates(ctx, gocardless.MandateListParams{ListParams: gocardless.ListParams{After: "MD1", Before: "MD2"}})
			return err
		}},
		{"two event resource filters", func() error {
			_, err := e.gc.ListEvents(ctx, gocardless.EventListParams{Payment: "PM1", Mandate: "MD1"})
			return err
		}},
		{"empty id", func() error {
			_, err := e.gc.GetPayment(ctx, " ")
			return err
		}},
		{"payout items without a payout", func() error {
			_, err := e.gc.ListPayoutItems(ctx, gocardless.PayoutItemListParams{})
			return err
		}},
		{"payout items by created_at", func() error {
			_, err := e.gc.ListPayoutItems(ctx, gocardless.PayoutItemListParams{Payout: "PO1",
				ListParams: gocardless.ListParams{CreatedAt: gocardless.TimeRange{GT: time.Unix(1, 0)}}})
			return err
		}},
		{"payout items with a bad include_2020_tax_cutover", func() error {
			_, err := e.gc.ListPayoutItems(ctx, gocardless.PayoutItemListParams{Payout: "PO1", Include2020TaxCutover: "yes"})
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); err == nil {
				t.Fatal("accepted")
			}
			if n := e.calls.requests(); n != 0 {
				t.Errorf("%d requests sent for a call refused locally", n)
			}
		})
	}
}

func TestBankAccountsAndMandates(t *testing.T) {
	e := setup(t, gcsim.Options{})
	ctx := context.Background()
	cu, ba, md := e.customer(t, 1)
	_, ba2, _ := e.customer(t, 2)

	acct, err := e.gc.GetCustomerBankAccount(ctx, ba)
	if err != nil {
		t.Fatal(err)
	}
	if acct.Links.Customer != cu || acct.AccountNumberEnding != "11" || acct.Currency != "GBP" || !acct.Enabled {
		t.Errorf("bank account %+v", acct)
	}
	page, err := e.gc.ListCustomerBankAccounts(ctx, gocardless.CustomerBankAccountListParams{Customer: cu})
	if err != nil {
		t.Fatal(err)
	}
	if got := itemIDs(page.Items, func(b gocardless.CustomerBankAccount) string { return b.ID }); !slices.Equal(got, []string{ba}) {
		t.Errorf("accounts of %s: %v, want [%s]", cu, got, ba)
	}

	m, err := e.gc.GetMandate(ctx, md)
	if err != nil {
		t.Fatal(err)
	}
	if m.Status != "pending_submission" || m.Scheme != "bacs" || m.Links.Customer != cu || m.Links.CustomerBankAccount != ba ||
		m.Links.Creditor != gcsim.DefaultCreditorID || m.NextPossibleChargeDate == "" {
		t.Errorf("new mandate %+v", m)
	}

	e.sim.Advance(5 * 24 * time.Hour)
	m, err = e.gc.GetMandate(ctx, md)
	if err != nil || m.Status != "active" {
		t.Fatalf("mandate after 5 days: %+v, %v; want active", m, err)
	}
	mp, err := e.gc.ListMandates(ctx, gocardless.MandateListParams{Customer: cu, Status: []string{"active"}})
	if err != nil || len(mp.Items) != 1 || mp.Items[0].ID != md {
		t.Fatalf("active mandates of %s: %+v, %v", cu, mp, err)
	}

	cancelled, err := e.gc.CancelMandate(ctx, "cancel-"+md, md, gocardless.ActionParams{Metadata: map[string]string{"why": "test"}})
	if err != nil || cancelled.Status != "cancelled" {
		t.Fatalf("cancel mandate: %+v, %v", cancelled, err)
	}
	if _, err := e.gc.CancelMandate(ctx, "cancel-again-"+md, md, gocardless.ActionParams{}); !gocardless.IsInvalidState(err) {
		t.Errorf("cancelling a cancelled mandate: %v, want invalid_state", err)
	}

	disabled, err := e.gc.DisableCustomerBankAccount(ctx, "disable-"+ba2, ba2)
	if err != nil || disabled.Enabled {
		t.Fatalf("disable: %+v, %v", disabled, err)
	}
	no := false
	page, err = e.gc.ListCustomerBankAccounts(ctx, gocardless.CustomerBankAccountListParams{Enabled: &no})
	if err != nil {
		t.Fatal(err)
	}
	if got := itemIDs(page.Items, func(b gocardless.CustomerBankAccount) string { return b.ID }); !slices.Equal(got, []string{ba2}) {
		t.Errorf("disabled accounts: %v, want [%s]", got, ba2)
	}
	var mp2 gocardless.MandateParams
	mp2.Links.CustomerBankAccount = ba2
	if _, _, err := e.gc.CreateMandate(ctx, "md-on-disabled", mp2); !HasAnyReason(err) {
		t.Errorf("mandate on a disabled account: %v, want a refusal with a reason", err)
	}
}

// HasAnyReason reports whether err is an APIError with at least one reason.
func HasAnyReason(err error) bool {
	var e *gocardless.APIError
	return errors.As(err, &e) && len(e.Errors) > 0 && e.Errors[0].Reason != ""
}

func TestPaymentsRefundsAndPayouts(t *testing.T) {
	e := setup(t, gcsim.Options{})
	ctx := context.Background()
	cu, _, md := e.customer(t, 1)

	yes := true
	pp := paymentParams(md, 12_345)
	pp.Description = "Invoice 1"
	pp.RetryIfPossible = &yes
	pp.Metadata = map[string]string{"invoice": "INV-1"}
	pm, existed, err := e.gc.CreatePayment(ctx, "ifs:C1:INV-1", pp)
	if err != nil || existed {
		t.Fatalf("create payment: existed %v, %v", existed, err)
	}
	if pm.Amount != 12_345 || pm.Currency != "GBP" || pm.Status != "pending_submission" || pm.Links.Mandate != md ||
		!pm.RetryIfPossible || pm.Metadata["invoice"] != "INV-1" || pm.ChargeDate == "" || pm.Scheme != "bacs" {
		t.Errorf("payment %+v", pm)
	}
	other, _, err := e.gc.CreatePayment(ctx, "ifs:C1:INV-2", paymentParams(md, 500))
	if err != nil {
		t.Fatal(err)
	}

	list, err := e.gc.ListPayments(ctx, gocardless.PaymentListParams{Mandate: md, Status: "pending_submission"})
	if err != nil {
		t.Fatal(err)
	}
	if got := itemIDs(list.Items, func(p gocardless.Payment) string { return p.ID }); !slices.Equal(got, []string{other.ID, pm.ID}) {
		t.Errorf("payments of %s: %v", md, got)
	}
	list, err = e.gc.ListPayments(ctx, gocardless.PaymentListParams{Customer: cu, Currency: "GBP", ListParams: gocardless.ListParams{Limit: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if got := itemIDs(list.Items, func(p gocardless.Payment) string { return p.ID }); !slices.Equal(got, []string{other.ID}) || list.After != other.ID {
		t.Errorf("first payment of %s: %v after %q", cu, got, list.After)
	}

	e.sim.Advance(14 * 24 * time.Hour)
	paid, err := e.gc.GetPayment(ctx, pm.ID)
	if err != nil || paid.Status != "paid_out" || paid.Links.Payout == "" {
		t.Fatalf("payment after 14 days: %+v, %v; want paid_out into a payout", paid, err)
	}

	po, err := e.gc.GetPayout(ctx, paid.Links.Payout)
	if err != nil {
		t.Fatal(err)
	}
	if po.Currency != "GBP" || po.Links.Creditor != gcsim.DefaultCreditorID || po.Status != "paid" || po.ArrivalDate == "" {
		t.Errorf("payout %+v", po)
	}
	pos, err := e.gc.ListPayouts(ctx, gocardless.PayoutListParams{Creditor: gcsim.DefaultCreditorID, Currency: "GBP"})
	if err != nil || len(pos.Items) == 0 || pos.Items[0].ID != po.ID {
		t.Errorf("payouts: %+v, %v", pos, err)
	}

	rp := gocardless.RefundParams{Amount: 1_000, TotalAmountConfirmation: 1_000, Reference: "RF-1"}
	rp.Links.Payment = pm.ID
	rf, existed, err := e.gc.CreateRefund(ctx, "refund:INV-1:1", rp)
	if err != nil || existed {
		t.Fatalf("create refund: existed %v, %v", existed, err)
	}
	if rf.Amount != 1_000 || rf.Links.Payment != pm.ID || rf.Currency != "GBP" {
		t.Errorf("refund %+v", rf)
	}
	got, err := e.gc.GetRefund(ctx, rf.ID)
	if err != nil || got.ID != rf.ID || got.Amount != 1_000 {
		t.Errorf("get refund: %+v, %v", got, err)
	}
	// The confirmation must count the refund already made.
	rp2 := gocardless.RefundParams{Amount: 2_000, TotalAmountConfirmation: 2_000}
	rp2.Links.Payment = pm.ID
	if _, _, err := e.gc.CreateRefund(ctx, "refund:INV-1:2", rp2); !HasAnyReason(err) {
		t.Errorf("refund with a wrong total confirmation: %v, want refused", err)
	}
	rp2.TotalAmountConfirmation = 3_000
	rf2, _, err := e.gc.CreateRefund(ctx, "refund:INV-1:2", rp2)
	if err != nil {
		t.Fatalf("second refund: %v", err)
	}
	rfs, err := e.gc.ListRefunds(ctx, gocardless.RefundListParams{Payment: pm.ID})
	if err != nil {
		t.Fatal(err)
	}
	if got := itemIDs(rfs.Items, func(r gocardless.Refund) string { return r.ID }); !slices.Equal(got, []string{rf2.ID, rf.ID}) {
		t.Errorf("refunds of %s: %v", pm.ID, got)
	}
}

func TestCancelAndRetryPayment(t *testing.T) {
	e := setup(t, gcsim.Options{Scenarios: []gcsim.Rule{
		{Resource: "payments", AmountSuffix: "01", Outcome: "failed", Cause: "insufficient_funds", Attempts: 1},
	}})
	ctx := context.Background()
	_, _, md := e.customer(t, 1)

	pm, _, err := e.gc.CreatePayment(ctx, "to-cancel", paymentParams(md, 2_000))
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.gc.CancelPayment(ctx, "cancel:"+pm.ID, pm.ID, gocardless.ActionParams{Metadata: map[string]string{"by": "test"}})
	if err != nil || c.Status != "cancelled" {
		t.Fatalf("cancel: %+v, %v", c, err)
	}
	if _, err := e.gc.CancelPayment(ctx, "cancel2:"+pm.ID, pm.ID, gocardless.ActionParams{}); !gocardless.HasReason(err, "cancellation_failed") {
		t.Errorf("second cancel: %v, want cancellation_failed", err)
	}

	failing, _, err := e.gc.CreatePayment(ctx, "fails-once", paymentParams(md, 3_001))
	if err != nil {
		t.Fatal(err)
	}
	e.sim.Advance(10 * 24 * time.Hour)
	f, err := e.gc.GetPayment(ctx, failing.ID)
	if err != nil || f.Status != "failed" {
		t.Fatalf("payment the scenario fails: %+v, %v", f, err)
	}
	r, err := e.gc.RetryPayment(ctx, "retry:"+failing.ID+":1", failing.ID, gocardless.RetryParams{})
	if err != nil || r.Status != "pending_submission" {
		t.Fatalf("retry: %+v, %v", r, err)
	}
	e.sim.Advance(10 * 24 * time.Hour)
	if p, err := e.gc.GetPayment(ctx, failing.ID); err != nil || p.Status != "paid_out" {
		t.Fatalf("retried payment: %+v, %v; want paid_out", p, err)
	}
	if _, err := e.gc.RetryPayment(ctx, "retry:"+failing.ID+":2", failing.ID, gocardless.RetryParams{}); !gocardless.HasReason(err, gocardless.ReasonRetryFailed) {
		t.Errorf("retrying a paid payment: %v, want retry_failed", err)
	}
}

func TestSubscriptions(t *testing.T) {
	e := setup(t, gcsim.Options{})
	ctx := context.Background()
	_, _, md := e.customer(t, 1)
	sp := gocardless.SubscriptionParams{Amount: 2_500, Currency: "GBP", IntervalUnit: "monthly", DayOfMonth: 15, Count: 3, Name: "Support plan"}
	sp.Links.Mandate = md
	sub, existed, err := e.gc.CreateSubscription(ctx, "sub:C1", sp)
	if err != nil || existed {
		t.Fatalf("create subscription: existed %v, %v", existed, err)
	}
	if sub.Status != "active" || sub.Amount != 2_500 || sub.IntervalUnit != "monthly" || sub.DayOfMonth != 15 ||
		sub.Count != 3 || len(sub.UpcomingPayments) == 0 || sub.Links.Mandate != md {
		t.Errorf("subscription %+v", sub)
	}
	got, err := e.gc.GetSubscription(ctx, sub.ID)
	if err != nil || got.ID != sub.ID || got.Name != "Support plan" {
		t.Errorf("get subscription: %+v, %v", got, err)
	}
	list, err := e.gc.ListSubscriptions(ctx, gocardless.SubscriptionListParams{Mandate: md, Status: []string{"active"}})
	if err != nil || len(list.Items) != 1 || list.Items[0].ID != sub.ID {
		t.Errorf("subscriptions of %s: %+v, %v", md, list, err)
	}

	e.sim.Advance(40 * 24 * time.Hour)
	pms, err := e.gc.ListPayments(ctx, gocardless.PaymentListParams{Subscription: sub.ID})
	if err != nil || len(pms.Items) == 0 {
		t.Fatalf("payments of the subscription after 40 days: %+v, %v", pms, err)
	}
	for _, p := range pms.Items {
		if p.Amount != 2_500 || p.Links.Subscription != sub.ID {
			t.Errorf("subscription payment %+v", p)
		}
	}

	c, err := e.gc.CancelSubscription(ctx, "cancel:"+sub.ID, sub.ID, gocardless.ActionParams{})
	if err != nil || c.Status != "cancelled" {
		t.Fatalf("cancel subscription: %+v, %v", c, err)
	}
}

func TestEvents(t *testing.T) {
	e := setup(t, gcsim.Options{})
	ctx := context.Background()
	_, _, md := e.customer(t, 1)
	var pms []string
	for i := range 3 {
		pm, _, err := e.gc.CreatePayment(ctx, fmt.Sprint("ev-", i), paymentParams(md, int64(1_000+i*10)))
		if err != nil {
			t.Fatal(err)
		}
		pms = append(pms, pm.ID)
	}
	e.sim.Advance(14 * 24 * time.Hour)
	all := e.sim.Events()
	if len(all) < 15 {
		t.Fatalf("only %d events in the simulator", len(all))
	}

	// The iterator walks every page, newest first, each event once.
	var walked []string
	for ev, err := range e.gc.Events(ctx, gocardless.EventListParams{ListParams: gocardless.ListParams{Limit: 4}}) {
		if err != nil {
			t.Fatal(err)
		}
		walked = append(walked, ev.ID)
	}
	var want []string
	for i := len(all) - 1; i >= 0; i-- {
		want = append(want, all[i].ID)
	}
	if !slices.Equal(walked, want) {
		t.Fatalf("iterator gave %d events %v\nwant %d %v", len(walked), walked, len(want), want)
	}
	pages := e.calls.requests()

	// Breaking out stops fetching.
	before := e.calls.requests()
	n := 0
	for _, err := range e.gc.Events(ctx, gocardless.EventListParams{ListParams: gocardless.ListParams{Limit: 2}}) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 3 {
			break
		}
	}
	if got := e.calls.requests() - before; got != 2 {
		t.Errorf("3 events of pages of 2 took %d requests, want 2 (iterated %d pages in all before)", got, pages)
	}

	first := all[0].CreatedAt
	tests := []struct {
		name   string
		params gocardless.EventListParams
		keep   func(gcsim.Event) bool
	}{
		{"resource type and action", gocardless.EventListParams{ResourceType: "payments", Action: "confirmed"},
			func(ev gcsim.Event) bool { return ev.ResourceType == "payments" && ev.Action == "confirmed" }},
		{"payment", gocardless.EventListParams{Payment: pms[1]},
			func(ev gcsim.Event) bool { return ev.Links["payment"] == pms[1] }},
		{"mandate", gocardless.EventListParams{Mandate: md},
			func(ev gcsim.Event) bool { return ev.Links["mandate"] == md }},
		{"payout", gocardless.EventListParams{ResourceType: "payouts"},
			func(ev gcsim.Event) bool { return ev.ResourceType == "payouts" }},
		{"created_at gt", gocardless.EventListParams{ListParams: gocardless.ListParams{CreatedAt: gocardless.TimeRange{GT: mustTime(t, first)}}},
			func(ev gcsim.Event) bool { return ev.CreatedAt > first }},
		{"created_at lte", gocardless.EventListParams{ListParams: gocardless.ListParams{CreatedAt: gocardless.TimeRange{LTE: mustTime(t, first)}}},
			func(ev gcsim.Event) bool { return ev.CreatedAt <= first }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var want []string
			for i := len(all) - 1; i >= 0; i-- {
				if tc.keep(all[i]) {
					want = append(want, all[i].ID)
				}
			}
			if len(want) == 0 {
				t.Fatal("the filter matches no simulator event; the test proves nothing")
			}
			var got []string
			for ev, err := range e.gc.Events(ctx, tc.params) {
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, ev.ID)
			}
			if !slices.Equal(got, want) {
				t.Errorf("got %v\nwant %v", got, want)
			}
		})
	}

	// Include returns the payments the events are about.
	page, err := e.gc.ListEvents(ctx, gocardless.EventListParams{ResourceType: "payments", Action: "paid_out", Include: "payment"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 3 || len(page.Linked.Payments) != 3 {
		t.Fatalf("paid_out events %d with %d linked payments, want 3 and 3", len(page.Items), len(page.Linked.Payments))
	}
	for _, p := range page.Linked.Payments {
		if p.Status != "paid_out" || !slices.Contains(pms, p.ID) {
			t.Errorf("linked payment %+v", p)
		}
	}
	ev := page.Items[0]
	if ev.Details.Origin == "" || ev.Details.Cause == "" || ev.Links["payment"] == "" || len(ev.Raw) == 0 || ev.CreatedAt.IsZero() {
		t.Errorf("event decoded as %+v", ev)
	}

	// An error ends the iteration with the error.
	var errs int
	for _, err := range e.gc.Events(ctx, gocardless.EventListParams{ResourceType: "spaceships"}) {
		if err == nil || !HasAnyReason(err) {
			t.Fatalf("bad filter yielded %v", err)
		}
		errs++
	}
	if errs != 1 {
		t.Errorf("bad filter yielded %d errors, want 1", errs)
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestIdempotentCreates(t *testing.T) {
	e := setup(t, gcsim.Options{})
	ctx := context.Background()
	_, _, md := e.customer(t, 1)

	first, existed, err := e.gc.CreatePayment(ctx, "ifs:ACME:INV-42", paymentParams(md, 4_200))
	if err != nil || existed {
		t.Fatalf("first create: existed %v, %v", existed, err)
	}
	second, existed, err := e.gc.CreatePayment(ctx, "ifs:ACME:INV-42", paymentParams(md, 4_200))
	if err != nil {
		t.Fatalf("second create: %v", err)
	}
	if !existed || second.ID != first.ID || second.Amount != 4_200 {
		t.Errorf("second create gave %s (existed %v), want %s marked existing", second.ID, existed, first.ID)
	}
	if got := len(e.sim.Payments()); got != 1 {
		t.Errorf("simulator holds %d payments, want 1", got)
	}
	if got := e.calls.status(http.StatusConflict); got != 1 {
		t.Errorf("saw %d conflicts, want 1", got)
	}
	if got := e.calls.keyUses()["ifs:ACME:INV-42"]; got != 2 {
		t.Errorf("key sent %d times, want 2", got)
	}

	// The same holds for every create.
	cu1, _, _ := e.customer(t, 2)
	cu2, existed, err := e.gc.CreateCustomer(ctx, "cu-2", gocardless.CustomerParams{GivenName: "X", FamilyName: "Y"})
	if err != nil || !existed || cu2.ID != cu1 {
		t.Errorf("customer replay: %v existed %v, %v; want %s", cu2, existed, err, cu1)
	}
	if got := len(e.sim.Customers()); got != 2 {
		t.Errorf("simulator holds %d customers, want 2", got)
	}
}

func TestEmptyIdempotencyKeyRefused(t *testing.T) {
	e := setup(t, gcsim.Options{})
	ctx := context.Background()
	calls := map[string]func(key string) error{
		"CreateCustomer": func(k string) error {
			_, _, err := e.gc.CreateCustomer(ctx, k, gocardless.CustomerParams{GivenName: "A", FamilyName: "B"})
			return err
		},
		"CreateCustomerBankAccount": func(k string) error {
			_, _, err := e.gc.CreateCustomerBankAccount(ctx, k, gocardless.CustomerBankAccountParams{})
			return err
		},
		"DisableCustomerBankAccount": func(k string) error {
			_, err := e.gc.DisableCustomerBankAccount(ctx, k, "BA1")
			return err
		},
		"CreateMandate": func(k string) error {
			_, _, err := e.gc.CreateMandate(ctx, k, gocardless.MandateParams{})
			return err
		},
		"CancelMandate": func(k string) error {
			_, err := e.gc.CancelMandate(ctx, k, "MD1", gocardless.ActionParams{})
			return err
		},
		"CreatePayment": func(k string) error {
			_, _, err := e.gc.CreatePayment(ctx, k, paymentParams("MD1", 100))
			return err
		},
		"CancelPayment": func(k string) error {
			_, err := e.gc.CancelPayment(ctx, k, "PM1", gocardless.ActionParams{})
			return err
		},
		"RetryPayment": func(k string) error {
			_, err := e.gc.RetryPayment(ctx, k, "PM1", gocardless.RetryParams{})
			return err
		},
		"CreateRefund": func(k string) error {
			_, _, err := e.gc.CreateRefund(ctx, k, gocardless.RefundParams{})
			return err
		},
		"CreateSubscription": func(k string) error {
			_, _, err := e.gc.CreateSubscription(ctx, k, gocardless.SubscriptionParams{})
			return err
		},
		"CancelSubscription": func(k string) error {
			_, err := e.gc.CancelSubscription(ctx, k, "SB1", gocardless.ActionParams{})
			return err
		},
	}
	for name, call := range calls {
		for _, key := range []string{"", "  "} {
			t.Run(fmt.Sprintf("%s key %q", name, key), func(t *testing.T) {
				if err := call(key); !errors.Is(err, gocardless.ErrIdempotencyKey) {
					t.Errorf("got %v, want ErrIdempotencyKey", err)
				}
			})
		}
	}
	if n := e.calls.requests(); n != 0 {
		t.Errorf("%d requests sent without a key", n)
	}
}

func TestAPIErrors(t *testing.T) {
	e := setup(t, gcsim.Options{})
	ctx := context.Background()
	_, _, md := e.customer(t, 1)
	_, _, cancelled := e.customer(t, 2)
	if _, err := e.gc.CancelMandate(ctx, "c", cancelled, gocardless.ActionParams{}); err != nil {
		t.Fatal(err)
	}
	wrong, err := gocardless.New(e.sim.URL, secrets.NewValue("not-the-token"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		call       func() error
		code       int
		typ        string
		reason     string
		field      string
		pointer    string
		validation bool
	}{
		{"validation", func() error {
			_, _, err := e.gc.CreatePayment(ctx, "bad-amount", paymentParams(md, 0))
			return err
		}, 422, gocardless.TypeValidationFailed, "", "amount", "/payments/amount", true},
		{"missing link", func() error {
			_, _, err := e.gc.CreatePayment(ctx, "no-mandate", paymentParams("", 100))
			return err
		}, 422, gocardless.TypeValidationFailed, "", "links[mandate]", "/payments/links/mandate", true},
		{"inactive mandate", func() error {
			_, _, err := e.gc.CreatePayment(ctx, "on-cancelled", paymentParams(cancelled, 100))
			return err
		}, 422, gocardless.TypeInvalidState, "mandate_is_inactive", "", "", false},
		{"not found", func() error {
			_, err := e.gc.GetPayment(ctx, "PM0000NOTTHERE")
			return err
		}, 404, gocardless.TypeInvalidAPIUsage, "resource_not_found", "", "", false},
		{"unauthorised", func() error {
			_, err := wrong.GetPayment(ctx, "PM0000NOTTHERE")
			return err
		}, 401, gocardless.TypeInvalidAPIUsage, "access_token_not_found", "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var ae *gocardless.APIError
			if !errors.As(err, &ae) {
				t.Fatalf("error %v is not an *APIError", err)
			}
			if ae.Code != tc.code || ae.Type != tc.typ || ae.RequestID == "" || ae.Message == "" || ae.DocumentationURL == "" {
				t.Errorf("APIError %+v, want code %d type %s with request id, message and docs", ae, tc.code, tc.typ)
			}
			if tc.reason != "" && !gocardless.HasReason(err, tc.reason) {
				t.Errorf("reasons %+v lack %s", ae.Errors, tc.reason)
			}
			if tc.field != "" && !slices.ContainsFunc(ae.Errors, func(d gocardless.ErrorDetail) bool {
				return d.Field == tc.field && d.RequestPointer == tc.pointer && d.Message != ""
			}) {
				t.Errorf("details %+v lack field %s at %s", ae.Errors, tc.field, tc.pointer)
			}
			if gocardless.IsValidation(err) != tc.validation {
				t.Errorf("IsValidation = %v", !tc.validation)
			}
			if gocardless.Temporary(err) {
				t.Error("a 4xx answer is Temporary")
			}
		})
	}
}

func TestRequestHeaders(t *testing.T) {
	e := setup(t, gcsim.Options{}, gocardless.WithUserAgent("ml-connector-test/2"))
	ctx := context.Background()
	_, _, md := e.customer(t, 1)
	if _, _, err := e.gc.CreatePayment(ctx, "hdr-key", paymentParams(md, 1_000)); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"Authorization":      "Bearer " + token,
		"GoCardless-Version": "2015-07-06",
		"Content-Type":       "application/json",
		"Accept":             "application/json",
		"User-Agent":         "ml-connector-test/2",
		"Idempotency-Key":    "hdr-key",
	}
	h := e.calls.lastHeader()
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("POST %s: %q, want %q", k, got, v)
		}
	}
	if _, err := e.gc.GetMandate(ctx, md); err != nil {
		t.Fatal(err)
	}
	if k := e.calls.lastHeader().Get("Idempotency-Key"); k != "" {
		t.Errorf("GET sent Idempotency-Key %q", k)
	}
}
