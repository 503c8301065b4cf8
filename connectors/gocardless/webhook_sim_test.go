package gocardless_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/connectors/gocardless/gcsim"
)

// TestWebhooksFromSimulator checks the webhook helpers against the
// simulator's deliveries: every event it records arrives, verified and
// parsed, and a badly signed delivery is refused (498) and retried.
func TestWebhooksFromSimulator(t *testing.T) {
	const secret = "whsec-from-the-dashboard"
	var (
		mu       sync.Mutex
		received = map[string]gocardless.Event{}
		refused  int
	)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if err := gocardless.VerifySignature(body, r.Header.Get(gocardless.SignatureHeader), []byte("old-secret"), []byte(secret)); err != nil {
			mu.Lock()
			refused++
			mu.Unlock()
			w.WriteHeader(498)
			return
		}
		hook, err := gocardless.ParseWebhook(body)
		if err != nil {
			t.Errorf("simulator webhook does not parse: %v", err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if hook.WebhookID == "" {
			t.Error("webhook without meta.webhook_id")
		}
		mu.Lock()
		for _, ev := range hook.Events {
			received[ev.ID] = ev
		}
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()

	e := setup(t, gcsim.Options{
		Webhook: gcsim.WebhookOptions{URL: receiver.URL, Secret: secret, Manual: true, BatchSize: 5},
		Faults:  gcsim.Faults{Webhook: gcsim.WebhookFaults{BadSignatureNext: 1}},
		Scenarios: []gcsim.Rule{
			{Resource: "payments", AmountSuffix: "01", Outcome: "failed", Cause: "insufficient_funds"},
		},
	})
	ctx := context.Background()
	_, _, md := e.customer(t, 1)
	for i, amount := range []int64{1_000, 2_001} {
		if _, _, err := e.gc.CreatePayment(ctx, string(rune('a'+i)), paymentParams(md, amount)); err != nil {
			t.Fatal(err)
		}
	}
	e.sim.Advance(14 * 24 * time.Hour)
	for range 2 { // the second flush retries the refused delivery
		if err := e.sim.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}

	mu.Lock()
	defer mu.Unlock()
	if refused != 1 {
		t.Errorf("%d deliveries refused, want the 1 badly signed", refused)
	}
	all := e.sim.Events()
	var want, got []string
	for _, ev := range all {
		want = append(want, ev.ID)
	}
	for id := range received {
		got = append(got, id)
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("received %d events, the simulator recorded %d", len(got), len(want))
	}
	for _, sev := range all {
		ev := received[sev.ID]
		if ev.ResourceType != sev.ResourceType || ev.Action != sev.Action || ev.Details.Cause != sev.Details.Cause ||
			ev.Details.ReasonCode != sev.Details.ReasonCode || ev.Links["payment"] != sev.Links["payment"] || len(ev.Raw) == 0 {
			t.Errorf("event %s parsed as %+v, the simulator has %+v", sev.ID, ev, sev)
		}
		if ev.ResourceType == "payments" && ev.Action == "failed" &&
			(ev.Details.Cause != "insufficient_funds" || ev.Details.Origin != "bank" || ev.Details.ReasonCode == "") {
			t.Errorf("failure event %+v lacks its cause, origin or reason code", ev.Details)
		}
	}
}
