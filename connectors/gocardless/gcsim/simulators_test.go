package gcsim_test

import (
	"slices"
	"testing"
	"time"
)

func runSimulator(a *api, name, resource string) reply {
	return a.do("POST", "/scenario_simulators/"+name+"/actions/run",
		map[string]any{"data": map[string]any{"links": map[string]any{"resource": resource}}})
}

// TestScenarioSimulators: GoCardless's scenario simulators
// (gocardless-pro-java resources/ScenarioSimulator.java) produce the
// documented event actions the lifecycles do not: chargeback_settled,
// late_failure_settled and mandate transferred.
func TestScenarioSimulators(t *testing.T) {
	srv := start(t)
	a := newAPI(t, srv)
	f := activeGB(t, srv, a, "sims@example.com", "Sims")
	p1 := a.do("POST", "/payments", payment(1000, f.mandate, nil)).must(t, 201, "payments")
	p2 := a.do("POST", "/payments", payment(2000, f.mandate, nil)).must(t, 201, "payments")
	stateErr("scenario_simulator_not_applicable").check(t, runSimulator(a, "payment_chargeback_settled", str(p1, "id")))
	srv.Advance(10 * 24 * time.Hour)
	runSimulator(a, "payment_chargeback_settled", str(p1, "id")).must(t, 200, "scenario_simulators")
	runSimulator(a, "payment_late_failure_settled", str(p2, "id")).must(t, 200, "scenario_simulators")
	if got := eventsOf(srv, "payment", str(p1, "id"), false); !slices.Equal(got[len(got)-2:], []string{"charged_back", "chargeback_settled"}) {
		t.Errorf("charge-back events %v", got)
	}
	if got := eventsOf(srv, "payment", str(p2, "id"), false); !slices.Equal(got[len(got)-2:], []string{"failed", "late_failure_settled"}) {
		t.Errorf("late failure events %v", got)
	}
	if st := str(a.do("GET", "/payments/"+str(p2, "id"), nil).must(t, 200, "payments"), "status"); st != "failed" {
		t.Errorf("late failed payment is %s", st)
	}

	g := gbCustomer(t, a, "moved@example.com", "Moved")
	runSimulator(a, "mandate_transferred", g.mandate).must(t, 200, "scenario_simulators")
	if got := eventsOf(srv, "mandate", g.mandate, false); !slices.Equal(got, []string{"created", "submitted", "active", "transferred"}) {
		t.Errorf("mandate events %v", got)
	}
	md := a.do("GET", "/mandates/"+g.mandate, nil).must(t, 200, "mandates")
	if str(md, "status") != "active" || link(md, "customer_bank_account") == g.account {
		t.Errorf("transferred mandate %v", md)
	}
	stateErr("scenario_simulator_not_applicable").check(t, runSimulator(a, "mandate_transferred", g.mandate))
	stateErr("scenario_simulator_not_applicable").check(t, runSimulator(a, "mandate_suspended_by_payer", f.mandate))
	au := mandateIn(t, a, "AU")
	stateErr("scenario_simulator_not_applicable").check(t, runSimulator(a, "mandate_transferred", au.mandate))
	wantErr{status: 404, typ: "invalid_api_usage", reason: "resource_not_found"}.check(t, runSimulator(a, "payment_exploded", str(p1, "id")))
	invalid("links[resource]", "/data/links/resource").check(t,
		a.do("POST", "/scenario_simulators/mandate_transferred/actions/run", map[string]any{"data": map[string]any{}}))
}

// TestMoreScenarioSimulators: payment_charged_back, mandate_failed and
// mandate_expired as gocardless-pro-java resources/ScenarioSimulator.java
// documents them (preconditions included), and a cancelled charge-back,
// played through the control API, returning the payment to confirmed.
func TestMoreScenarioSimulators(t *testing.T) {
	srv := start(t)
	a := newAPI(t, srv)
	f := activeGB(t, srv, a, "cb@example.com", "Charged")
	p := a.do("POST", "/payments", payment(1000, f.mandate, nil)).must(t, 201, "payments")
	stateErr("scenario_simulator_not_applicable").check(t, runSimulator(a, "payment_charged_back", str(p, "id")))
	srv.Advance(10 * 24 * time.Hour)
	runSimulator(a, "payment_charged_back", str(p, "id")).must(t, 200, "scenario_simulators")
	if got := eventsOf(srv, "payment", str(p, "id"), false); got[len(got)-1] != "charged_back" {
		t.Errorf("charge-back events %v", got)
	}
	if err := srv.CancelChargeback(str(p, "id")); err != nil {
		t.Fatal(err)
	}
	if got := eventsOf(srv, "payment", str(p, "id"), false); got[len(got)-1] != "chargeback_cancelled" {
		t.Errorf("events after the cancelled charge-back %v", got)
	}
	if st := str(a.do("GET", "/payments/"+str(p, "id"), nil).must(t, 200, "payments"), "status"); st != "confirmed" {
		t.Errorf("payment after its charge-back was cancelled is %s, want confirmed", st)
	}
	if err := srv.CancelChargeback(str(p, "id")); err == nil {
		t.Error("a charge-back cancelled twice")
	}

	g := gbCustomer(t, a, "failing@example.com", "Failing")
	pending := a.do("POST", "/payments", payment(500, g.mandate, nil)).must(t, 201, "payments")
	runSimulator(a, "mandate_failed", g.mandate).must(t, 200, "scenario_simulators")
	if got := eventsOf(srv, "mandate", g.mandate, false); got[len(got)-1] != "failed" {
		t.Errorf("mandate events %v", got)
	}
	if st := str(a.do("GET", "/payments/"+str(pending, "id"), nil).must(t, 200, "payments"), "status"); st != "failed" {
		t.Errorf("unsubmitted payment of a failed mandate is %s", st)
	}
	stateErr("scenario_simulator_not_applicable").check(t, runSimulator(a, "mandate_failed", g.mandate))

	h := gbCustomer(t, a, "dormant@example.com", "Dormant")
	runSimulator(a, "mandate_expired", h.mandate).must(t, 200, "scenario_simulators")
	if got := eventsOf(srv, "mandate", h.mandate, false); !slices.Equal(got, []string{"created", "submitted", "active", "expired"}) {
		t.Errorf("mandate events %v", got)
	}
	stateErr("scenario_simulator_not_applicable").check(t, runSimulator(a, "mandate_expired", h.mandate))
}

// TestReinstateMandate: POST /mandates/{id}/actions/reinstate as
// gocardless-pro-java MandateService.reinstate documents it: only a
// cancelled or expired mandate (else mandate_not_inactive), a
// resubmission_requested event, then submitted and reinstated; and at
// most Options.MandateReinstates times (3 unless set: the sources differ).
func TestReinstateMandate(t *testing.T) {
	srv := start(t)
	a := newAPI(t, srv)
	f := activeGB(t, srv, a, "back@example.com", "Back")
	stateErr("mandate_not_inactive").check(t, a.do("POST", "/mandates/"+f.mandate+"/actions/reinstate", map[string]any{"data": map[string]any{}}))
	for i := range 4 {
		a.do("POST", "/mandates/"+f.mandate+"/actions/cancel", map[string]any{"data": map[string]any{}}).must(t, 200, "mandates")
		r := a.do("POST", "/mandates/"+f.mandate+"/actions/reinstate", map[string]any{"data": map[string]any{}})
		if i == 3 {
			stateErr("mandate_reinstate_limit_reached").check(t, r)
			break
		}
		if st := str(r.must(t, 200, "mandates"), "status"); st != "pending_submission" {
			t.Fatalf("reinstated mandate is %s", st)
		}
		stateErr("mandate_not_inactive").check(t, a.do("POST", "/mandates/"+f.mandate+"/actions/reinstate", map[string]any{"data": map[string]any{}}))
		srv.Advance(10 * 24 * time.Hour)
		if st := str(a.do("GET", "/mandates/"+f.mandate, nil).must(t, 200, "mandates"), "status"); st != "active" {
			t.Fatalf("mandate after its reinstatement is %s", st)
		}
	}
	got := eventsOf(srv, "mandate", f.mandate, false)
	want := []string{"cancelled", "resubmission_requested", "submitted", "reinstated"}
	if len(got) < 4 || !slices.Equal(got[len(got)-5:len(got)-1], want) || got[len(got)-1] != "cancelled" {
		t.Errorf("mandate events %v, want ... %v, cancelled", got, want)
	}
}
