package gcsim

import (
	"fmt"
	"slices"
)

// Scenario simulators are GoCardless's own way to drive a resource down a
// path in the sandbox: POST /scenario_simulators/{identity}/actions/run with
// {"data": {"links": {"resource": ID}}} (gocardless-pro-java
// ScenarioSimulatorService.java; the identities and their preconditions
// are listed in resources/ScenarioSimulator.java). The simulator runs the
// ones that produce event actions its lifecycles do not:
//
//   - payment_chargeback_settled: a paid-out payment is charged back
//     (charged_back) and the charge-back debited from a payout at once
//     (chargeback_settled, linking the payout; see settleNow);
//   - payment_late_failure_settled: a paid-out payment fails late
//     (failed) and the failure is debited from a payout at once
//     (late_failure_settled, likewise);
//   - mandate_transferred: a pending_submission mandate is submitted, set
//     up and moved to a new bank account (transferred); "Only compatible
//     with Bacs and SEPA mandates";
//   - mandate_suspended_by_payer: "Only compatible with PAY_TO mandates",
//     which the simulator does not hold, so it is always refused;
//   - payment_charged_back: as payment_chargeback_settled, without the
//     settlement (charged_back only);
//   - mandate_failed: a pending_submission or submitted mandate fails
//     ("Not compatible with SEPA mandates, which are submitted with their
//     first payment"); its unsubmitted payments fail with it;
//   - mandate_expired: a pending_submission mandate is submitted, set up
//     and expires ("Not compatible with Autogiro, BECS NZ, and PAD
//     mandates, which do not expire"); its unsubmitted payments are
//     cancelled (cause mandate_expired).
//
// A cancelled charge-back has no simulator; CancelChargeback (control API
// POST /_sim/payments/{id}/cancel_chargeback) plays the payer's bank.
//
// The documented payment_* simulators also accept pending_submission
// payments, running their whole lifecycle; the simulator asks for paid_out
// ones (advance the clock first). Refusals use the simulator's own reason,
// scenario_simulator_not_applicable: GoCardless publishes none.
// The descriptions of the settlement events.
const (
	chargebackSettled  = "This charged back payment has been settled against a payout."
	lateFailureSettled = "This late failed payment has been settled against a payout."
)

var scenarioSimulators = []string{"payment_chargeback_settled", "payment_late_failure_settled", "mandate_transferred",
	"mandate_suspended_by_payer", "payment_charged_back", "mandate_failed", "mandate_expired"}

func (s *Sim) runScenarioSimulator(r *request) (int, any, *apiError) {
	name := r.id()
	if !slices.Contains(scenarioSimulators, name) {
		return 0, nil, notFound()
	}
	var body struct {
		Links struct {
			Resource *string `json:"resource"`
		} `json:"links"`
	}
	raw, aerr := envelopeMember(r.body, "data", true)
	if aerr != nil {
		return 0, nil, aerr
	}
	if aerr := decodeInto(raw, "data", &body); aerr != nil {
		return 0, nil, aerr
	}
	if blank(body.Links.Resource) {
		fe := fieldErrors{resource: "data"}
		fe.add("links[resource]", "is required")
		return 0, nil, fe.err()
	}
	id := *body.Links.Resource
	refuse := func(msg string) (int, any, *apiError) {
		return 0, nil, stateError("scenario_simulator_not_applicable", msg)
	}
	switch name {
	case "payment_charged_back":
		p, ok := s.payments.get(id)
		if !ok {
			return 0, nil, linkNotFound("data", "links[resource]")
		}
		if p.Status != statusPaidOut {
			return refuse("The payment is " + p.Status + "; this simulator needs a paid_out payment")
		}
		p.Status = statusChargedBack
		s.emit(r.now, "payments", "charged_back", map[string]string{"payment": p.ID}, EventDetails{Origin: originBank,
			Cause: "authorisation_disputed", Description: "The customer disputed having authorised you to take this payment.",
			Scheme: p.Scheme}, nil, p.Metadata)
		return 200, envelope("scenario_simulators", map[string]string{"id": name}), nil
	case "mandate_failed", "mandate_expired":
		m, ok := s.mandates.get(id)
		if !ok {
			return 0, nil, linkNotFound("data", "links[resource]")
		}
		if name == "mandate_failed" {
			switch {
			case m.Scheme == "sepa_core":
				return refuse("Not compatible with SEPA mandates, which are submitted with their first payment")
			case m.Status != statusPendingSubmission && m.Status != statusSubmitted:
				return refuse("The mandate is " + m.Status + "; this simulator needs a pending_submission or submitted mandate")
			}
			// The same details as a scenario rule's failed mandate.
			s.endMandate(m, r.now, statusFailed, ruleDetails(&Rule{Resource: "mandates", Outcome: statusFailed}, originBank, statusFailed, m.Scheme), nil, "")
			return 200, envelope("scenario_simulators", map[string]string{"id": name}), nil
		}
		switch {
		case m.Scheme == "autogiro" || m.Scheme == "becs_nz" || m.Scheme == "pad":
			return refuse("Not compatible with Autogiro, BECS NZ, and PAD mandates, which do not expire")
		case m.Status != statusPendingSubmission:
			return refuse("The mandate is " + m.Status + "; this simulator needs a pending_submission mandate")
		}
		m.Status = statusSubmitted
		s.emit(r.now, "mandates", "submitted", map[string]string{"mandate": m.ID}, EventDetails{Origin: originGoCardless,
			Cause: "mandate_submitted", Description: "The mandate has been submitted to the banks."}, nil, m.Metadata)
		s.activateMandate(m, r.now)
		s.endMandate(m, r.now, statusExpired, ruleDetails(&Rule{Resource: "mandates", Outcome: statusExpired}, originGoCardless, statusExpired, m.Scheme), nil, "")
		return 200, envelope("scenario_simulators", map[string]string{"id": name}), nil
	case "payment_chargeback_settled", "payment_late_failure_settled":
		p, ok := s.payments.get(id)
		if !ok {
			return 0, nil, linkNotFound("data", "links[resource]")
		}
		if p.Status != statusPaidOut {
			return refuse("The payment is " + p.Status + "; this simulator needs a paid_out payment")
		}
		links := map[string]string{"payment": p.ID}
		if name == "payment_chargeback_settled" {
			p.Status = statusChargedBack
			s.emit(r.now, "payments", "charged_back", links, EventDetails{Origin: originBank, Cause: "authorisation_disputed",
				Description: "The customer disputed having authorised you to take this payment.", Scheme: p.Scheme}, nil, p.Metadata)
			s.paymentDebit(p, PayoutItemPaymentChargedBack, "chargeback_settled", chargebackSettled)
		} else {
			p.Status = statusFailed
			s.emit(r.now, "payments", "failed", links, EventDetails{Origin: originBank, Cause: "insufficient_funds",
				Description: "The customer's account had insufficient funds to make this payment.", Scheme: p.Scheme,
				WillAttemptRetry: boolPtr(false)}, nil, p.Metadata)
			s.paymentDebit(p, PayoutItemPaymentFailed, "late_failure_settled", lateFailureSettled)
		}
		s.settleNow(p.Links.Creditor, p.Currency, r.now)
		return 200, envelope("scenario_simulators", map[string]string{"id": name}), nil
	case "mandate_transferred":
		m, ok := s.mandates.get(id)
		if !ok {
			return 0, nil, linkNotFound("data", "links[resource]")
		}
		switch {
		case m.Scheme != "bacs" && m.Scheme != "sepa_core":
			return refuse("Only compatible with Bacs and SEPA mandates")
		case m.Status != statusPendingSubmission:
			return refuse("The mandate is " + m.Status + "; this simulator needs a pending_submission mandate")
		}
		links := map[string]string{"mandate": m.ID}
		m.Status = statusSubmitted
		s.emit(r.now, "mandates", "submitted", links, EventDetails{Origin: originGoCardless, Cause: "mandate_submitted",
			Description: "The mandate has been submitted to the banks."}, nil, m.Metadata)
		s.activateMandate(m, r.now)
		previous := m.Links.CustomerBankAccount
		account, _ := s.accounts.get(previous)
		moved := account.clone()
		moved.ID, moved.seq, moved.created, moved.CreatedAt = s.newID(prefixBankAccount), s.nextSeq(), r.now, formatTime(r.now)
		moved.fingerprint = account.fingerprint + ":transferred:" + moved.ID
		s.accounts.add(moved.ID, &moved)
		m.Links.CustomerBankAccount = moved.ID
		s.emit(r.now, "mandates", "transferred", map[string]string{"mandate": m.ID, "new_customer_bank_account": moved.ID,
			"previous_customer_bank_account": previous}, EventDetails{Origin: originBank, Cause: "bank_account_transferred",
			Description: "The customer's bank account was transferred to a different bank or building society.", Scheme: m.Scheme},
			nil, m.Metadata)
		return 200, envelope("scenario_simulators", map[string]string{"id": name}), nil
	}
	return refuse("Only compatible with PAY_TO mandates")
}

// CancelChargeback plays the payer's bank cancelling the charge-back of
// payment id, which GoCardless reports as payments chargeback_cancelled:
// "The customer's bank has cancelled the chargeback request", details
// origin bank, cause payment_confirmed, "The chargeback for this payment
// was reversed" (developer.gocardless.com/api-reference, event types,
// payment actions). The cause names the status the payment returns to:
// confirmed. GoCardless offers no API or scenario simulator for it.
func (s *Sim) CancelChargeback(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.payments.get(id)
	if !ok {
		return fmt.Errorf("no payment %s", id)
	}
	if p.Status != statusChargedBack {
		return fmt.Errorf("payment %s is %s, not charged_back", id, p.Status)
	}
	now := s.clock.Now()
	p.Status = statusConfirmed
	s.emit(now, "payments", "chargeback_cancelled", map[string]string{"payment": p.ID}, EventDetails{Origin: originBank,
		Cause: "payment_confirmed", Description: "The chargeback for this payment was reversed"}, nil, p.Metadata)
	defer s.kick()
	return nil
}
