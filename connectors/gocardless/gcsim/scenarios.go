package gcsim

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Rule picks a non-default outcome for the payments, mandates or refunds it
// matches. Every condition that is set must hold; the first matching rule
// (in order) wins; with no match everything succeeds. Patterns are
// case-insensitive globs (path.Match syntax: *, ?, [a-z]) against the
// customer behind the resource.
//
// Outcomes and their default causes:
//
//	payments: failed (insufficient_funds), late_failure (insufficient_funds;
//	          confirmed first, failed a working day later),
//	          charged_back (authorisation_disputed; after paid_out), paid_out
//	mandates: failed (invalid_bank_details; instead of active),
//	          cancelled (bank_account_closed; after active), expired, active
//	refunds:  bounced, failed, funds_returned (after paid), paid
//
// The explicit success outcomes (paid_out, active, paid) let an earlier,
// narrower rule exempt resources from a broader failing one.
type Rule struct {
	Name     string `json:"name,omitempty"`
	Resource string `json:"resource"`

	Email       string `json:"email,omitempty"`
	GivenName   string `json:"given_name,omitempty"`
	FamilyName  string `json:"family_name,omitempty"`
	CompanyName string `json:"company_name,omitempty"`
	Reference   string `json:"reference,omitempty"` // payments and refunds
	Amount      int64  `json:"amount,omitempty"`    // exact, minor units
	// AmountSuffix matches amounts (in minor units) whose decimal digits
	// end with it: "01" matches 1001 and 250001.
	AmountSuffix string            `json:"amount_suffix,omitempty"`
	Currency     string            `json:"currency,omitempty"`
	Scheme       string            `json:"scheme,omitempty"`
	Metadata     map[string]string `json:"metadata,omitempty"` // the resource's own metadata

	Outcome    string `json:"outcome"`
	Cause      string `json:"cause,omitempty"`
	ReasonCode string `json:"reason_code,omitempty"` // default: the scheme's code for the cause
	// Attempts limits a payment rule to the first N submissions, so a
	// retry can succeed (0: every attempt).
	Attempts int `json:"attempts,omitempty"`
	// AfterDays is how many working days after paid_out a charge-back
	// comes (default 3), or after activation a mandate is cancelled or
	// expires (default 1), or after paid a refund's funds return (default 2).
	AfterDays int `json:"after_days,omitempty"`
}

// outcomes per resource; the first is the default (success).
var outcomes = map[string][]string{
	"payments": {statusPaidOut, statusFailed, "late_failure", statusChargedBack},
	"mandates": {statusActive, statusFailed, statusCancelled, statusExpired},
	"refunds":  {"paid", "bounced", statusFailed, "funds_returned"},
	// billing_requests rules play the payer of a new flow.
	"billing_requests": {payerAuthorises, payerAbandons, payerIgnores},
}

// causesFor lists the causes a rule may name for an outcome.
func causesFor(resource, outcome string) []string {
	switch resource + "/" + outcome {
	case "payments/failed", "payments/late_failure":
		return paymentFailureCauses
	case "payments/charged_back":
		return chargebackCauses
	case "mandates/failed":
		return mandateFailureCauses
	case "mandates/cancelled":
		return mandateCancelCauses
	case "mandates/expired":
		return []string{"mandate_expired"}
	case "refunds/bounced":
		return []string{"refund_bounced"}
	case "refunds/failed":
		return []string{"refund_failed"}
	case "refunds/funds_returned":
		return []string{"refund_funds_returned"}
	}
	return nil
}

func (r Rule) validate() error {
	var errs []error
	valid, ok := outcomes[r.Resource]
	if !ok {
		return fmt.Errorf("resource %q is not payments, mandates, refunds or billing_requests", r.Resource)
	}
	if !slices.Contains(valid, r.Outcome) {
		errs = append(errs, fmt.Errorf("outcome %q is not one of %s", r.Outcome, strings.Join(valid, ", ")))
	} else if causes := causesFor(r.Resource, r.Outcome); r.Cause != "" && !slices.Contains(causes, r.Cause) {
		if len(causes) == 0 {
			errs = append(errs, fmt.Errorf("outcome %s takes no cause", r.Outcome))
		} else {
			errs = append(errs, fmt.Errorf("cause %q is not one of %s", r.Cause, strings.Join(causes, ", ")))
		}
	}
	for name, p := range map[string]string{"email": r.Email, "given_name": r.GivenName,
		"family_name": r.FamilyName, "company_name": r.CompanyName, "reference": r.Reference} {
		if _, err := path.Match(p, ""); err != nil {
			errs = append(errs, fmt.Errorf("%s pattern %q: %w", name, p, err))
		}
	}
	if r.AmountSuffix != "" && !allDigits(r.AmountSuffix) {
		errs = append(errs, fmt.Errorf("amount_suffix %q is not digits", r.AmountSuffix))
	}
	if r.Amount < 0 || r.Attempts < 0 || r.AfterDays < 0 {
		errs = append(errs, errors.New("amount, attempts and after_days must not be negative"))
	}
	if (r.Resource == "mandates" || r.Resource == "billing_requests") && (r.Amount != 0 || r.AmountSuffix != "" || r.Reference != "") {
		errs = append(errs, errors.New("mandate and billing request rules cannot match on amount or reference"))
	}
	if r.Resource != "payments" && r.Attempts != 0 {
		errs = append(errs, errors.New("attempts applies to payment rules only"))
	}
	if err := errors.Join(errs...); err != nil {
		name := r.Name
		if name == "" {
			name = r.Resource + " " + r.Outcome
		}
		return fmt.Errorf("rule %q: %w", name, err)
	}
	return nil
}

// SetScenarios replaces the outcome rules. They apply to transitions
// decided from now on (a payment's outcome is decided when it is
// submitted, a mandate's when it is submitted, a refund's when it is
// submitted).
func (s *Sim) SetScenarios(rules []Rule) error {
	var errs []error
	for _, r := range rules {
		errs = append(errs, r.validate())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("scenarios: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scenarios = slices.Clone(rules)
	return nil
}

// Scenarios returns the outcome rules in force.
func (s *Sim) Scenarios() []Rule {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.scenarios)
}

// BuiltinScenarios is a ready-made set of rules for demos and manual
// testing (gcsim GCSIM_SCENARIOS=builtin):
//
//	payment amount ending 01  -> failed, insufficient_funds
//	payment amount ending 02  -> failed, bank_account_closed (cancels the mandate)
//	payment amount ending 03  -> late_failure, insufficient_funds
//	payment amount ending 04  -> charged_back, authorisation_disputed
//	payment amount ending 05  -> failed once (insufficient_funds), then succeeds
//	customer email *@fail.example    -> mandate failed, invalid_bank_details
//	customer email *@cancel.example  -> mandate cancelled by the bank, bank_account_closed
//	refund amount ending 01   -> bounced
func BuiltinScenarios() []Rule {
	return []Rule{
		{Name: "insufficient funds", Resource: "payments", AmountSuffix: "01", Outcome: statusFailed, Cause: "insufficient_funds"},
		{Name: "account closed", Resource: "payments", AmountSuffix: "02", Outcome: statusFailed, Cause: "bank_account_closed"},
		{Name: "late failure", Resource: "payments", AmountSuffix: "03", Outcome: "late_failure", Cause: "insufficient_funds"},
		{Name: "charge-back", Resource: "payments", AmountSuffix: "04", Outcome: statusChargedBack, Cause: "authorisation_disputed"},
		{Name: "fails once", Resource: "payments", AmountSuffix: "05", Outcome: statusFailed, Cause: "insufficient_funds", Attempts: 1},
		{Name: "mandate fails", Resource: "mandates", Email: "*@fail.example", Outcome: statusFailed, Cause: "invalid_bank_details"},
		{Name: "mandate cancelled", Resource: "mandates", Email: "*@cancel.example", Outcome: statusCancelled, Cause: "bank_account_closed"},
		{Name: "refund bounces", Resource: "refunds", AmountSuffix: "01", Outcome: "bounced"},
	}
}

// subject is what a rule is matched against.
type subject struct {
	customer  *Customer
	amount    int64
	currency  string
	scheme    string
	reference string
	metadata  map[string]string
	attempt   int
}

func (r *Rule) matches(resource string, sj subject) bool {
	if r.Resource != resource {
		return false
	}
	globs := []struct{ pattern, value string }{
		{r.Email, ""}, {r.GivenName, ""}, {r.FamilyName, ""}, {r.CompanyName, ""},
	}
	if sj.customer != nil {
		globs[0].value, globs[1].value = sj.customer.Email, sj.customer.GivenName
		globs[2].value, globs[3].value = sj.customer.FamilyName, sj.customer.CompanyName
	}
	globs = append(globs, struct{ pattern, value string }{r.Reference, sj.reference})
	for _, g := range globs {
		if g.pattern == "" {
			continue
		}
		if ok, _ := path.Match(strings.ToLower(g.pattern), strings.ToLower(g.value)); !ok || g.value == "" {
			return false
		}
	}
	switch {
	case r.Amount != 0 && r.Amount != sj.amount,
		r.AmountSuffix != "" && !strings.HasSuffix(strconv.FormatInt(sj.amount, 10), r.AmountSuffix),
		r.Currency != "" && !strings.EqualFold(r.Currency, sj.currency),
		r.Scheme != "" && r.Scheme != sj.scheme,
		r.Attempts > 0 && sj.attempt > r.Attempts:
		return false
	}
	for k, v := range r.Metadata {
		if got, ok := sj.metadata[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// match returns the first rule matching sj, or nil. Callers hold s.mu.
func (s *Sim) match(resource string, sj subject) *Rule {
	for i := range s.scenarios {
		if s.scenarios[i].matches(resource, sj) {
			r := s.scenarios[i]
			return &r
		}
	}
	return nil
}

func (s *Sim) customerOfMandate(m *Mandate) *Customer {
	c, _ := s.customers.get(m.Links.Customer)
	return c
}

func (s *Sim) subjectForMandate(m *Mandate) subject {
	sc, _ := schemeByName(m.Scheme)
	return subject{customer: s.customerOfMandate(m), currency: sc.currency, scheme: m.Scheme, metadata: m.Metadata}
}

func (s *Sim) subjectForPayment(p *Payment) subject {
	sj := subject{amount: p.Amount, currency: p.Currency, scheme: p.Scheme, reference: p.Reference,
		metadata: p.Metadata, attempt: p.attempts}
	if m, ok := s.mandates.get(p.Links.Mandate); ok {
		sj.customer = s.customerOfMandate(m)
	}
	return sj
}

func (s *Sim) subjectForRefund(rf *Refund) subject {
	sj := subject{amount: rf.Amount, currency: rf.Currency, reference: rf.Reference, metadata: rf.Metadata}
	if m, ok := s.mandates.get(rf.Links.Mandate); ok {
		sj.customer = s.customerOfMandate(m)
		sj.scheme = m.Scheme
	}
	return sj
}

// defaultCause is the cause of an outcome when its rule names none.
func defaultCause(resource, outcome string) string {
	switch resource + "/" + outcome {
	case "payments/failed", "payments/late_failure":
		return "insufficient_funds"
	case "payments/charged_back":
		return "authorisation_disputed"
	case "mandates/failed":
		return "invalid_bank_details"
	case "mandates/cancelled":
		return "bank_account_closed"
	case "mandates/expired":
		return "mandate_expired"
	case "refunds/bounced":
		return "refund_bounced"
	case "refunds/failed":
		return "refund_failed"
	case "refunds/funds_returned":
		return "refund_funds_returned"
	}
	return ""
}

// ruleDetails builds the details of the event a rule's outcome causes.
func ruleDetails(r *Rule, origin, action, scheme string) EventDetails {
	cause := r.Cause
	if cause == "" {
		cause = defaultCause(r.Resource, r.Outcome)
	}
	code := r.ReasonCode
	if code == "" && cause != "mandate_expired" {
		if r.Resource == "mandates" {
			code = mandateReasonCode(action, cause, scheme)
		} else {
			code = reasonCode(cause, scheme)
		}
	}
	return EventDetails{Origin: origin, Cause: cause, Description: causeDescriptions[cause], Scheme: scheme, ReasonCode: code}
}
