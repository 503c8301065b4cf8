package gocardless_test

import (
	"context"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/connectors/gocardless/gcsim"
)

// standardAccount is a simulator whose creditor is not approved for
// custom payment pages, as a new GoCardless account is.
func standardAccount(t *testing.T, o gcsim.Options) *env {
	o.Creditors = []gcsim.Creditor{{ID: gcsim.DefaultCreditorID}}
	return setup(t, o)
}

func mandateRequest(currency string) gocardless.BillingRequestParams {
	return gocardless.BillingRequestParams{MandateRequest: gocardless.MandateRequestParams{Currency: currency}}
}

// TestBillingRequestMandate sets a mandate up the way an ordinary account
// must: billing request, flow, the payer completing it, the mandate.
func TestBillingRequestMandate(t *testing.T) {
	e := standardAccount(t, gcsim.Options{})
	ctx := context.Background()
	cr, err := e.gc.GetCreditor(ctx, gcsim.DefaultCreditorID)
	if err != nil || cr.CustomPaymentPagesEnabled {
		t.Fatalf("creditor %+v, %v", cr, err)
	}
	// The direct path is closed.
	cu, _, err := e.gc.CreateCustomer(ctx, "cu-1", gocardless.CustomerParams{CompanyName: "Acme Ltd", Email: "ap@acme.example"})
	if err != nil {
		t.Fatal(err)
	}
	bp := gocardless.CustomerBankAccountParams{AccountHolderName: "Acme", AccountNumber: "55779911", BranchCode: "200000", CountryCode: "GB"}
	bp.Links.Customer = cu.ID
	if _, _, err := e.gc.CreateCustomerBankAccount(ctx, "ba-1", bp); !gocardless.IsForbidden(err) {
		t.Fatalf("direct bank account on a standard account: %v, want a 403", err)
	}

	p := mandateRequest("GBP")
	p.Links.Customer = cu.ID
	p.Metadata = map[string]string{"erp_customer": "C1"}
	br, existed, err := e.gc.CreateBillingRequest(ctx, "br-1", p)
	if err != nil || existed || br.Status != gocardless.BillingRequestPending || br.MandateRequest.Scheme != "bacs" {
		t.Fatalf("create: %+v existed=%v %v", br, existed, err)
	}
	again, existed, err := e.gc.CreateBillingRequest(ctx, "br-1", p)
	if err != nil || !existed || again.ID != br.ID {
		t.Fatalf("replayed create: %+v existed=%v %v", again, existed, err)
	}
	fp := gocardless.BillingRequestFlowParams{PrefilledCustomer: &gocardless.PrefilledCustomer{CompanyName: "Acme Ltd"}}
	fp.Links.BillingRequest = br.ID
	flow, err := e.gc.CreateBillingRequestFlow(ctx, fp)
	if err != nil || flow.AuthorisationURL == "" || flow.ExpiresAt.Sub(flow.CreatedAt) != 7*24*time.Hour {
		t.Fatalf("flow %+v, %v", flow, err)
	}
	if _, err := e.sim.CompleteFlow(flow.ID, gcsim.Payer{}); err != nil {
		t.Fatal(err)
	}
	got, err := e.gc.GetBillingRequest(ctx, br.ID)
	if err != nil || got.Status != gocardless.BillingRequestFulfilled || got.Links.MandateRequestMandate == "" {
		t.Fatalf("after the payer: %+v, %v", got, err)
	}
	md, err := e.gc.GetMandate(ctx, got.Links.MandateRequestMandate)
	if err != nil || md.Links.Customer != cu.ID {
		t.Fatalf("mandate %+v, %v", md, err)
	}
	page, err := e.gc.ListBillingRequests(ctx, gocardless.BillingRequestListParams{Status: gocardless.BillingRequestFulfilled})
	if err != nil || len(page.Items) != 1 || page.Items[0].ID != br.ID {
		t.Fatalf("list fulfilled: %+v, %v", page, err)
	}
	events, err := e.gc.ListEvents(ctx, gocardless.EventListParams{ResourceType: "billing_requests", Action: "fulfilled",
		Include: "billing_request"})
	if err != nil || len(events.Items) != 1 || events.Items[0].Links["mandate_request_mandate"] != md.ID ||
		len(events.Linked.BillingRequests) != 1 || events.Linked.BillingRequests[0].ID != br.ID {
		t.Fatalf("fulfilled events: %+v, %v", events, err)
	}
}

func TestBillingRequestActions(t *testing.T) {
	e := standardAccount(t, gcsim.Options{})
	ctx := context.Background()
	br, _, err := e.gc.CreateBillingRequest(ctx, "br-1", mandateRequest("EUR"))
	if err != nil {
		t.Fatal(err)
	}
	// GoCardless documents notify for Pay by Bank requests only; a
	// mandate request may be refused, and the caller must cope.
	if _, err := e.gc.NotifyBillingRequest(ctx, "n-1", br.ID, gocardless.NotifyParams{}); !gocardless.IsInvalidState(err) {
		t.Fatalf("notify of a mandate request: %v, want invalid_state", err)
	}
	if _, err := e.gc.FulfilBillingRequest(ctx, "f-1", br.ID, gocardless.ActionParams{}); !gocardless.IsInvalidState(err) {
		t.Fatalf("fulfil before the payer: %v", err)
	}
	got, err := e.gc.CancelBillingRequest(ctx, "c-1", br.ID, gocardless.ActionParams{})
	if err != nil || got.Status != gocardless.BillingRequestCancelled {
		t.Fatalf("cancel: %+v, %v", got, err)
	}
	if _, err := e.gc.CancelBillingRequest(ctx, "c-2", br.ID, gocardless.ActionParams{}); !gocardless.IsInvalidState(err) {
		t.Fatalf("cancel again: %v", err)
	}
	if _, _, err := e.gc.CreateBillingRequest(ctx, "br-x", mandateRequest("")); err == nil {
		t.Fatal("a billing request without a currency was sent")
	}
	if _, err := e.gc.CreateBillingRequestFlow(ctx, gocardless.BillingRequestFlowParams{}); err == nil {
		t.Fatal("a flow without its billing request was sent")
	}

	// Where GoCardless does email mandate requests, notify succeeds.
	e2 := standardAccount(t, gcsim.Options{NotifyMandateRequests: true})
	cu, _, err := e2.gc.CreateCustomer(ctx, "cu-1", gocardless.CustomerParams{CompanyName: "Acme", Email: "ap@acme.example"})
	if err != nil {
		t.Fatal(err)
	}
	p := mandateRequest("GBP")
	p.Links.Customer = cu.ID
	br2, _, err := e2.gc.CreateBillingRequest(ctx, "br-2", p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e2.gc.NotifyBillingRequest(ctx, "n-2", br2.ID, gocardless.NotifyParams{}); err != nil {
		t.Fatal(err)
	}
	if n := e2.sim.Notified(br2.ID); len(n) != 1 {
		t.Fatalf("notifications %v", n)
	}
}

// TestBankAccountExistsIsReused: a duplicate bank account is refused by
// GoCardless with bank_account_exists naming the account it holds; the
// client returns that account.
func TestBankAccountExistsIsReused(t *testing.T) {
	e := setup(t, gcsim.Options{})
	ctx := context.Background()
	cu, ba, _ := e.customer(t, 1)
	bp := gocardless.CustomerBankAccountParams{AccountHolderName: "A Lovelace", AccountNumber: "55779911",
		BranchCode: "200000", CountryCode: "GB"}
	bp.Links.Customer = cu
	got, existed, err := e.gc.CreateCustomerBankAccount(ctx, "another-key", bp)
	if err != nil || !existed || got.ID != ba {
		t.Fatalf("duplicate account: %+v existed=%v %v, want %s", got, existed, err, ba)
	}
	if n := len(e.sim.BankAccounts()); n != 1 {
		t.Fatalf("%d bank accounts", n)
	}
}

// TestSubscriptionRecurrenceChecked: the client refuses what GoCardless
// documents as invalid before sending it.
func TestSubscriptionRecurrenceChecked(t *testing.T) {
	e := setup(t, gcsim.Options{})
	ctx := context.Background()
	_, _, md := e.customer(t, 1)
	sub := func(unit, month string, day int) error {
		p := gocardless.SubscriptionParams{Amount: 1000, Currency: "GBP", IntervalUnit: unit, Month: month, DayOfMonth: day}
		p.Links.Mandate = md
		_, _, err := e.gc.CreateSubscription(ctx, "sub-"+unit+month, p)
		return err
	}
	before := e.calls.requests()
	for _, bad := range []error{sub("yearly", "January", 1), sub("monthly", "january", 1), sub("yearly", "march", 0),
		sub("yearly", "", 5), sub("weekly", "", 3)} {
		if bad == nil {
			t.Fatal("an invalid recurrence was accepted")
		}
	}
	if n := e.calls.requests() - before; n != 0 {
		t.Fatalf("%d invalid subscriptions were sent", n)
	}
	if err := sub("yearly", gocardless.MonthName(time.January), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := e.gc.ListEvents(ctx, gocardless.EventListParams{ResourceType: "payments", Payment: "PM1"}); err == nil {
		t.Fatal("resource_type with a payment filter was sent")
	}
}

// TestFlowCreateRetried: a flow create that meets a 500 is sent again
// (a second flow would be harmless) and returns the flow.
func TestFlowCreateRetried(t *testing.T) {
	e := standardAccount(t, gcsim.Options{})
	ctx := context.Background()
	br, _, err := e.gc.CreateBillingRequest(ctx, "br-1", mandateRequest("GBP"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.sim.SetFaults(gcsim.Faults{ServerErrorNext: 1}); err != nil {
		t.Fatal(err)
	}
	fp := gocardless.BillingRequestFlowParams{}
	fp.Links.BillingRequest = br.ID
	before := e.calls.requests()
	flow, err := e.gc.CreateBillingRequestFlow(ctx, fp)
	if err != nil || flow.AuthorisationURL == "" {
		t.Fatalf("flow after a 500: %+v, %v", flow, err)
	}
	if n := e.calls.requests() - before; n != 2 {
		t.Fatalf("%d requests, want 2 (the 500, then the flow)", n)
	}
}
