package webhook_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/connectors/gocardless/gcsim"
	"github.com/ml-connector/ml-connector/platform/secrets"
	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
	"github.com/ml-connector/ml-connector/services/gc-webhook/internal/webhook"
)

// Webhooks signed and batched by the GoCardless simulator are accepted end
// to end: every event the simulator recorded is stored once, in full.
func TestSimulatorWebhooksAcceptedEndToEnd(t *testing.T) {
	s := newStack(t, webhook.Config{Connection: "gc-main"})
	sim := gcsim.NewServer(t, gcsim.Options{
		Tokens:    []string{"sim-token"},
		Creditors: []gcsim.Creditor{gcsim.ApprovedCreditor()},
		Webhook:   gcsim.WebhookOptions{URL: s.srv.URL + "/webhooks/gocardless", Secret: string(secret), BatchSize: 7, Manual: true},
	})
	client, err := gocardless.New(sim.URL, secrets.NewValue("sim-token"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cu, _, err := client.CreateCustomer(ctx, "cu-1", gocardless.CustomerParams{GivenName: "Ada", FamilyName: "Lovelace", Email: "ada@example.com", CountryCode: "GB"})
	if err != nil {
		t.Fatal(err)
	}
	bp := gocardless.CustomerBankAccountParams{AccountHolderName: "Ada Lovelace", AccountNumber: "55779911", BranchCode: "200000", CountryCode: "GB"}
	bp.Links.Customer = cu.ID
	ba, _, err := client.CreateCustomerBankAccount(ctx, "ba-1", bp)
	if err != nil {
		t.Fatal(err)
	}
	mp := gocardless.MandateParams{}
	mp.Links.CustomerBankAccount = ba.ID
	md, _, err := client.CreateMandate(ctx, "md-1", mp)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		pp := gocardless.PaymentParams{Amount: int64(1000 + i), Currency: "GBP"}
		pp.Links.Mandate = md.ID
		if _, _, err := client.CreatePayment(ctx, "pm-"+string(rune('a'+i)), pp); err != nil {
			t.Fatal(err)
		}
	}
	sim.Advance(20 * 24 * time.Hour)
	if err := sim.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	want := sim.Events()
	if len(want) < 20 {
		t.Fatalf("simulator recorded only %d events", len(want))
	}
	for _, d := range sim.Deliveries() {
		if d.State != gcsim.DeliveryDelivered {
			t.Errorf("delivery %+v not accepted", d)
		}
	}
	stored := s.stored(t)
	if len(stored) != len(want) {
		t.Fatalf("%d events stored, simulator sent %d", len(stored), len(want))
	}
	byID := map[string]*mlcv1.GoCardlessEvent{}
	for _, m := range stored {
		var e mlcv1.GoCardlessEvent
		if err := proto.Unmarshal(m.Data, &e); err != nil {
			t.Fatal(err)
		}
		byID[e.GetEventId()] = &e
	}
	for _, ev := range want {
		got, ok := byID[ev.ID]
		if !ok || got.GetResourceType() != ev.ResourceType || got.GetAction() != ev.Action || got.GetDetails().GetCause() != ev.Details.Cause {
			t.Errorf("event %s %s.%s missing or changed: %v", ev.ID, ev.ResourceType, ev.Action, got)
		}
	}
}
