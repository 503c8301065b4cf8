package reconcile_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/rig"
)

// TestEventsNotAppliedAreRecorded: an event the orchestrator does not
// apply (a documented action the ERP need not hear of, a payment that is
// not ours, a resource type it does not follow) is recorded with its
// reason in gc_ignored_events; none disappears without a trace.
func TestEventsNotAppliedAreRecorded(t *testing.T) {
	r := rig.New(t, rig.Options{GC: rig.Direct})
	r.Consumers("a", 2)
	collected(t, r, map[string]string{"OK": "100.00"})
	settle(r, 10) // paid out: payouts events come too
	var payment, mandate string
	if err := r.DB.QueryRow(context.Background(), `SELECT gc_payment_id FROM collections`).Scan(&payment); err != nil {
		t.Fatal(err)
	}
	if err := r.DB.QueryRow(context.Background(), `SELECT gc_mandate_id FROM customer_links`).Scan(&mandate); err != nil {
		t.Fatal(err)
	}
	now := r.Sim.Now().UTC()
	publishEvents(t, r, []gocardless.Event{
		{ID: "EVSYNSETTLED1", CreatedAt: now, ResourceType: "payments", Action: "chargeback_settled", Links: map[string]string{"payment": payment}},
		{ID: "EVSYNFEE00001", CreatedAt: now, ResourceType: "payments", Action: "surcharge_fee_debited", Links: map[string]string{"payment": payment}},
		{ID: "EVSYNOTOURS01", CreatedAt: now, ResourceType: "payments", Action: "confirmed", Links: map[string]string{"payment": "PM00000NOTOURS"}},
		{ID: "EVSYNSKIPPED1", CreatedAt: now, ResourceType: "mandates", Action: "customer_approval_skipped", Links: map[string]string{"mandate": mandate}},
		{ID: "EVSYNOLDSUB01", CreatedAt: now.Add(-30 * 24 * time.Hour), ResourceType: "payments", Action: "submitted", Links: map[string]string{"payment": payment}},
		{ID: "EVSYNFXRATE01", CreatedAt: now, ResourceType: "payouts", Action: "fx_rate_confirmed", Links: map[string]string{"payout": "PO00000000FX01"}},
		{ID: "EVSYNCREDIT01", CreatedAt: now, ResourceType: "creditors", Action: "updated", Links: map[string]string{"creditor": "CR00000000001"}},
	})
	r.Drain()
	want := map[string]string{
		"EVSYNSETTLED1": "debited from a payout",
		"EVSYNFEE00001": "GoCardless fee",
		"EVSYNOTOURS01": "not a payment ml-connector created",
		"EVSYNSKIPPED1": "no payer approval",
		"EVSYNOLDSUB01": "older than the event already applied",
		"EVSYNFXRATE01": "exchange rate is read with the payout",
		"EVSYNCREDIT01": "carries nothing the ledger or the ERP needs",
	}
	for id, reason := range want {
		if n := r.Count(`SELECT count(*) FROM gc_ignored_events WHERE event_id = $1 AND strpos(reason, $2) > 0`, id, reason); n != 1 {
			t.Errorf("event %s: %d records with reason %q", id, n, reason)
		}
	}
	// A payout's paid event is applied (the payout stored), not ignored.
	if n := r.Count(`SELECT count(*) FROM gc_ignored_events WHERE resource_type = 'payouts' AND action = 'paid'`); n != 0 {
		t.Errorf("%d payouts paid events recorded as ignored", n)
	}
	if n := r.Count(`SELECT count(*) FROM payouts`); n == 0 {
		t.Error("no payout stored from its paid event")
	}
	// Applied events are not recorded as ignored.
	if n := r.Count(`SELECT count(*) FROM gc_ignored_events WHERE resource_type = 'payments' AND action = 'paid_out'`); n != 0 {
		t.Errorf("%d applied paid_out events recorded as ignored", n)
	}
	// The payment's state is untouched by what was ignored.
	if got := states(t, r)["OK"]; got != "paid_out" {
		t.Errorf("state %s after ignored events", got)
	}
}

// TestLateFailureSettled: a paid-out payment that fails late (GoCardless's
// payment_late_failure_settled scenario simulator) is posted to the ERP as
// failed; the settlement that follows is recorded as ignored, with why.
func TestLateFailureSettled(t *testing.T) {
	r := rig.New(t, rig.Options{GC: rig.Direct})
	r.Consumers("a", 2)
	collected(t, r, map[string]string{"LATE": "100.00"})
	settle(r, 10)
	var payment string
	if err := r.DB.QueryRow(context.Background(), `SELECT gc_payment_id FROM collections`).Scan(&payment); err != nil {
		t.Fatal(err)
	}
	runSimulator(t, r, "payment_late_failure_settled", payment)
	r.Advance(time.Hour)
	r.Eventually(20*time.Second, "late failure applied", func() bool { return states(t, r)["LATE"] == "failed" })
	r.Drain()
	if kinds := outcomeKinds(r)["LATE"]; !slices.Contains(kinds, "failed") {
		t.Errorf("outcomes posted %v, want failed among them", kinds)
	}
	if n := r.Count(`SELECT count(*) FROM gc_ignored_events WHERE action = 'late_failure_settled' AND strpos(reason, 'debited from a payout') > 0`); n != 1 {
		t.Errorf("late_failure_settled recorded %d times", n)
	}
}

// runSimulator runs one of GoCardless's scenario simulators on resource.
func runSimulator(t *testing.T, r *rig.Rig, name, resource string) {
	t.Helper()
	body := strings.NewReader(`{"data": {"links": {"resource": "` + resource + `"}}}`)
	req, err := http.NewRequest("POST", r.Sim.URL+"/scenario_simulators/"+name+"/actions/run", body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+rig.Token)
	req.Header.Set("GoCardless-Version", "2015-07-06")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("scenario simulator %s: %s", name, resp.Status)
	}
}

// TestChargebackCancelledIsPosted: a charge-back the payer's bank
// cancels is posted to the ERP (the receipt booked again), once however
// often the event comes.
func TestChargebackCancelledIsPosted(t *testing.T) {
	r := rig.New(t, rig.Options{GC: rig.Direct})
	r.Consumers("a", 2)
	collected(t, r, map[string]string{"BACK": "100.00"})
	settle(r, 10)
	var payment string
	if err := r.DB.QueryRow(context.Background(), `SELECT gc_payment_id FROM collections`).Scan(&payment); err != nil {
		t.Fatal(err)
	}
	runSimulator(t, r, "payment_charged_back", payment)
	r.Advance(time.Hour)
	r.Eventually(20*time.Second, "charged back", func() bool { return states(t, r)["BACK"] == "charged_back" })
	if err := r.Sim.CancelChargeback(payment); err != nil {
		t.Fatal(err)
	}
	r.Advance(time.Hour)
	r.Eventually(20*time.Second, "charge-back cancelled", func() bool { return states(t, r)["BACK"] == "confirmed" })
	r.Drain()
	// The same events again, as a catch-up overlapping the webhooks would.
	if err := r.CatchUp.Pass(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.Drain()
	want := []string{"confirmed", "paid_out", "charged_back", "chargeback_cancelled"}
	if got := outcomeKinds(r)["BACK"]; !slices.Equal(got, want) {
		t.Fatalf("outcomes posted %v, want %v", got, want)
	}
	var cause string
	for _, o := range r.Poster.PaymentOutcomes() {
		if o.GetKind() == mlcv1.PaymentOutcomeKind_PAYMENT_OUTCOME_KIND_CHARGEBACK_CANCELLED {
			cause = o.GetPaymentId() + " " + fmt.Sprint(o.GetAmountMinor())
		}
	}
	if cause != payment+" 10000" {
		t.Errorf("reinstatement posted for %q, want the payment and its amount", cause)
	}
	if n := r.Count(`SELECT count(*) FROM gc_ignored_events WHERE action = 'chargeback_cancelled'`); n != 0 {
		t.Errorf("chargeback_cancelled recorded as ignored %d times", n)
	}
}
