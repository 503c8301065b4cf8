package gcsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"
)

// Mandate and payment statuses.
const (
	statusPendingSubmission = "pending_submission"
	statusSubmitted         = "submitted"
	statusActive            = "active"
	statusFailed            = "failed"
	statusCancelled         = "cancelled"
	statusExpired           = "expired"
	statusConfirmed         = "confirmed"
	statusPaidOut           = "paid_out"
	statusChargedBack       = "charged_back"
)

// creatableMandateStatuses are the mandate statuses payments and
// subscriptions may be created on (and that can still be cancelled).
var creatableMandateStatuses = []string{"pending_customer_approval", statusPendingSubmission, statusSubmitted, statusActive}

type mandateParams struct {
	Scheme              *string         `json:"scheme"`
	Reference           *string         `json:"reference"`
	AuthorisationSource *string         `json:"authorisation_source"`
	PayerIPAddress      *string         `json:"payer_ip_address"`
	Metadata            json.RawMessage `json:"metadata"`
	Links               struct {
		CustomerBankAccount *string `json:"customer_bank_account"`
		Creditor            *string `json:"creditor"`
	} `json:"links"`
}

func (s *Sim) createMandate(r *request) (int, any, *apiError) {
	if aerr := s.idempotencyConflict(r, "mandates"); aerr != nil {
		return 0, nil, aerr
	}
	var p mandateParams
	if aerr := decodeEnvelope(r, "mandates", &p); aerr != nil {
		return 0, nil, aerr
	}
	fe := fieldErrors{resource: "mandates"}
	metadata := parseMetadata(p.Metadata, &fe)
	var account *CustomerBankAccount
	if blank(p.Links.CustomerBankAccount) {
		fe.add("links[customer_bank_account]", "is required")
	} else {
		account, _ = s.accounts.get(*p.Links.CustomerBankAccount)
	}
	var creditor *Creditor
	switch {
	case !blank(p.Links.Creditor):
		var ok bool
		if creditor, ok = s.creditors.get(*p.Links.Creditor); !ok {
			if fe.empty() {
				return 0, nil, linkNotFound("mandates", "links[creditor]")
			}
		}
	case len(s.creditors.list) == 1:
		creditor = s.creditors.list[0]
	default:
		fe.add("links[creditor]", "is required when the account has more than one creditor")
	}
	var sc *scheme
	if account != nil {
		sc, _ = schemeForCurrency(account.Currency)
		if !blank(p.Scheme) {
			want, ok := schemeByName(*p.Scheme)
			switch {
			case !ok:
				fe.add("scheme", "is not a supported scheme")
			case want != sc:
				fe.add("scheme", "is not compatible with the bank account's currency ("+account.Currency+")")
			}
		}
	}
	if p.Reference != nil {
		checkMaxLen(*p.Reference, 35, "reference", &fe)
	}
	source := str(p.AuthorisationSource)
	if source != "" && !slices.Contains(authorisationSources, source) {
		fe.add("authorisation_source", "must be one of web, telephone, paper")
	}
	if sc != nil && sc.name == "ach" && source != "telephone" && source != "paper" && blank(p.PayerIPAddress) {
		// gocardless-pro-java MandateService.java, payer_ip_address: "For
		// ACH customers only. Required for ACH customers. ... Not required
		// for creating offline mandates where authorisation_source is set
		// to telephone or paper."
		fe.add("payer_ip_address", "is required for ACH mandates unless authorisation_source is telephone or paper")
	}
	sortItems(&fe)
	if aerr := fe.err(); aerr != nil {
		return 0, nil, aerr
	}
	if account == nil {
		return 0, nil, linkNotFound("mandates", "links[customer_bank_account]")
	}
	if aerr := s.directSetupAllowed(creditor.ID); aerr != nil {
		return 0, nil, aerr
	}
	if !account.Enabled {
		return 0, nil, stateError("bank_account_disabled",
			"The mandate could not be created because the customer bank account linked is disabled")
	}
	m := s.newMandate(r.now, creditor, account, sc, str(p.Reference), source, metadata)
	s.rememberKey(r, "mandates", m.ID)
	s.emit(r.now, "mandates", "created", map[string]string{"mandate": m.ID},
		EventDetails{Origin: originAPI, Cause: "mandate_created", Description: "Mandate created via the API."},
		nil, m.Metadata)
	s.startMandate(m, r.now)
	return http.StatusCreated, envelope("mandates", s.viewMandate(m, r.now)), nil
}

// authorisationSources are the ACH authorisation sources
// (gocardless-pro-java MandateService.java, authorisation_source).
var authorisationSources = []string{"web", "telephone", "paper"}

// newMandate records a new pending_submission mandate; the caller emits
// its created event and starts it.
func (s *Sim) newMandate(now time.Time, creditor *Creditor, account *CustomerBankAccount, sc *scheme,
	reference, source string, metadata map[string]string) *Mandate {
	m := &Mandate{
		ID:                  s.newID(prefixMandate),
		CreatedAt:           formatTime(now),
		Reference:           reference,
		Scheme:              sc.name,
		Status:              statusPendingSubmission,
		AuthorisationSource: source,
		FundsSettlement:     "managed",
		Links: MandateLinks{
			Creditor:            creditor.ID,
			Customer:            account.Links.Customer,
			CustomerBankAccount: account.ID,
		},
		Metadata: nonNil(metadata),
		seq:      s.nextSeq(),
		created:  now,
	}
	if m.Reference == "" {
		m.Reference = "SIM-" + m.ID[6:]
	}
	s.mandates.add(m.ID, m)
	return m
}

// startMandate schedules a new mandate's submission at the next run and
// fixes when it will become active.
func (s *Sim) startMandate(m *Mandate, now time.Time) {
	sc, _ := schemeByName(m.Scheme)
	submitAt := nextRun(now)
	m.activeFrom = runAt(addWorkingDays(dateOf(submitAt), sc.activationDays))
	s.schedule(submitAt, func(at time.Time) { s.submitMandate(m, at) })
}

func (s *Sim) submitMandate(m *Mandate, at time.Time) {
	if m.Status != statusPendingSubmission {
		return
	}
	m.Status = statusSubmitted
	s.emit(at, "mandates", "submitted", map[string]string{"mandate": m.ID},
		EventDetails{Origin: originGoCardless, Cause: "mandate_submitted",
			Description: "The mandate has been submitted to the banks."}, nil, m.Metadata)
	rule := s.match("mandates", s.subjectForMandate(m))
	s.schedule(m.activeFrom, func(at time.Time) {
		if m.Status != statusSubmitted {
			return
		}
		if rule != nil && rule.Outcome == "failed" {
			s.endMandate(m, at, statusFailed, ruleDetails(rule, originBank, "failed", m.Scheme), nil, "")
			return
		}
		s.activateMandate(m, at)
		if rule != nil && (rule.Outcome == "cancelled" || rule.Outcome == "expired") {
			status := rule.Outcome
			origin := originBank
			if status == statusExpired {
				origin = originGoCardless
			}
			endAt := runAt(addWorkingDays(dateOf(at), max(rule.AfterDays, 1)))
			s.schedule(endAt, func(at time.Time) {
				if m.Status == statusActive {
					s.endMandate(m, at, status, ruleDetails(rule, origin, status, m.Scheme), nil, "")
				}
			})
		}
	})
}

func (s *Sim) activateMandate(m *Mandate, at time.Time) {
	m.Status = statusActive
	m.activeFrom = at
	action, cause := "active", "mandate_activated"
	if m.reinstating {
		// A reinstated mandate set up again says so (event types, mandate
		// actions: reinstated, origin gocardless, cause mandate_reinstated).
		action, cause, m.reinstating = "reinstated", "mandate_reinstated", false
	}
	s.emit(at, "mandates", action, map[string]string{"mandate": m.ID},
		EventDetails{Origin: originGoCardless, Cause: cause,
			Description: "The time window after submission for the banks to refuse a mandate has ended without any errors being received, so this mandate is now active."},
		nil, m.Metadata)
}

// reinstateMandate: POST /mandates/{id}/actions/reinstate. "Reinstates a
// cancelled or expired mandate to the banks. You will receive a
// resubmission_requested webhook, but after that reinstating the mandate
// follows the same process as its initial creation, so you will receive a
// submitted webhook, followed by a reinstated or failed webhook up to two
// working days later. Any metadata supplied to this endpoint will be
// stored on the resubmission_requested event it causes. This will fail
// with a mandate_not_inactive error if the mandate is already being
// submitted, or is active." (gocardless-pro-java MandateService.reinstate;
// the limit of reinstates, where the sources disagree, is
// Options.MandateReinstates). The resubmission_requested details are
// those the event types list gives the reinstate endpoint (origin api,
// cause resubmission_requested).
func (s *Sim) reinstateMandate(r *request) (int, any, *apiError) {
	m, _, metadata, aerr := action(&s.mandates, r, nil)
	if aerr != nil {
		return 0, nil, aerr
	}
	if m.Status != statusCancelled && m.Status != statusExpired {
		return 0, nil, stateError("mandate_not_inactive", "The mandate is "+m.Status+"; only a cancelled or expired mandate can be reinstated")
	}
	if limit := s.reinstates; m.reinstates >= limit {
		// GoCardless publishes no reason for this refusal: the simulator's own.
		return 0, nil, stateError("mandate_reinstate_limit_reached", fmt.Sprintf("Mandates can be resubmitted up to %d times", limit))
	}
	m.reinstates++
	m.reinstating = true
	m.Status = statusPendingSubmission
	s.emit(r.now, "mandates", "resubmission_requested", map[string]string{"mandate": m.ID},
		EventDetails{Origin: originAPI, Cause: "resubmission_requested", Description: "An attempt to reinstate this mandate was requested."},
		metadata, m.Metadata)
	s.startMandate(m, r.now)
	return 200, envelope("mandates", s.viewMandate(m, r.now)), nil
}

// endMandate moves a mandate to a final status (failed, cancelled,
// expired) and, as GoCardless does, ends what depended on it: payments not
// yet submitted are cancelled (failed, for a failed mandate) and
// subscriptions are cancelled, each event linking the mandate's event as
// its parent. parentEvent, if set, is the event that caused this one.
func (s *Sim) endMandate(m *Mandate, at time.Time, status string, details EventDetails, metadata map[string]string, parentEvent string) {
	m.Status = status
	links := map[string]string{"mandate": m.ID}
	if parentEvent != "" {
		links["parent_event"] = parentEvent
	}
	parent := s.emit(at, "mandates", status, links, details, metadata, m.Metadata)
	cause := map[string]string{statusCancelled: "mandate_cancelled", statusExpired: "mandate_expired"}[status]
	for _, p := range s.payments.list {
		if p.Links.Mandate != m.ID || (p.Status != statusPendingSubmission && p.Status != "pending_customer_approval") {
			continue
		}
		links := map[string]string{"payment": p.ID, "parent_event": parent.ID}
		if status == statusFailed {
			p.Status = statusFailed
			d := details
			d.WillAttemptRetry = boolPtr(false)
			s.emit(at, "payments", "failed", links, d, nil, p.Metadata)
			continue
		}
		p.Status = statusCancelled
		s.emit(at, "payments", "cancelled", links, EventDetails{Origin: details.Origin, Cause: cause,
			Description: "The mandate for this payment was " + status + "."}, nil, p.Metadata)
	}
	for _, sub := range s.subs.list {
		if sub.Links.Mandate != m.ID || (sub.Status != statusActive && sub.Status != "paused") {
			continue
		}
		sub.Status = statusCancelled
		subCause := cause
		if subCause == "" {
			subCause = "mandate_cancelled"
		}
		s.emit(at, "subscriptions", "cancelled", map[string]string{"subscription": sub.ID, "parent_event": parent.ID},
			EventDetails{Origin: details.Origin, Cause: subCause,
				Description: "The subscription was cancelled because its mandate was " + status + "."}, nil, sub.Metadata)
	}
}

// nextChargeDate is the mandate's next_possible_charge_date at now: the
// first date a payment created now could be collected, given that it is
// submitted at the next run (and not before the mandate is active), leadDays
// before its charge date.
func (s *Sim) nextChargeDate(m *Mandate, now time.Time) (time.Time, bool) {
	if !slices.Contains(creatableMandateStatuses, m.Status) {
		return time.Time{}, false
	}
	sc, _ := schemeByName(m.Scheme)
	submit := dateOf(nextRun(now))
	if m.Status != statusActive && dateOf(m.activeFrom).After(submit) {
		submit = dateOf(m.activeFrom)
	}
	return addWorkingDays(submit, sc.leadDays), true
}

func (s *Sim) viewMandate(m *Mandate, now time.Time) Mandate {
	v := m.clone()
	v.NextPossibleChargeDate = nil
	if d, ok := s.nextChargeDate(m, now); ok {
		ds := formatDate(d)
		v.NextPossibleChargeDate = &ds
	}
	return v
}

func (s *Sim) listMandates(r *request) (int, any, *apiError) {
	customer, account, creditor := eq(r.query, "customer"), eq(r.query, "customer_bank_account"), eq(r.query, "creditor")
	status, scheme, reference := eq(r.query, "status"), eq(r.query, "scheme"), eq(r.query, "reference")
	return list("mandates", s.mandates.list, r.query,
		func(id string) (uint64, bool) { return seqOf(&s.mandates, id) },
		func(m *Mandate) time.Time { return m.created },
		func(m *Mandate) bool {
			return customer(m.Links.Customer) && account(m.Links.CustomerBankAccount) && creditor(m.Links.Creditor) &&
				status(m.Status) && scheme(m.Scheme) && reference(m.Reference)
		},
		func(m *Mandate) Mandate { return s.viewMandate(m, r.now) })
}

func (s *Sim) getMandate(r *request) (int, any, *apiError) {
	m, ok := s.mandates.get(r.id())
	if !ok {
		return 0, nil, notFound()
	}
	return 200, envelope("mandates", s.viewMandate(m, r.now)), nil
}

func (s *Sim) updateMandate(r *request) (int, any, *apiError) {
	m, ok := s.mandates.get(r.id())
	if !ok {
		return 0, nil, notFound()
	}
	if aerr := updateMetadata(r, "mandates", &m.Metadata); aerr != nil {
		return 0, nil, aerr
	}
	return 200, envelope("mandates", s.viewMandate(m, r.now)), nil
}

func (s *Sim) cancelMandate(r *request) (int, any, *apiError) {
	m, _, metadata, aerr := action(&s.mandates, r, nil)
	if aerr != nil {
		return 0, nil, aerr
	}
	if !slices.Contains(creatableMandateStatuses, m.Status) {
		return 0, nil, stateError("cancellation_failed",
			"The mandate is "+m.Status+" and can no longer be cancelled")
	}
	s.endMandate(m, r.now, statusCancelled, EventDetails{Origin: originAPI, Cause: "mandate_cancelled",
		Description: "The mandate was cancelled at your request."}, metadata, "")
	return 200, envelope("mandates", s.viewMandate(m, r.now)), nil
}
