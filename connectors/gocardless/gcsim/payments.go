package gcsim

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Most retries a payment may have, automatic and manual together.
const maxRetries = 3

type paymentParams struct {
	Amount          json.RawMessage `json:"amount"`
	Currency        *string         `json:"currency"`
	ChargeDate      *string         `json:"charge_date"`
	Reference       *string         `json:"reference"`
	Description     *string         `json:"description"`
	RetryIfPossible *bool           `json:"retry_if_possible"`
	Metadata        json.RawMessage `json:"metadata"`
	Links           struct {
		Mandate *string `json:"mandate"`
	} `json:"links"`
}

func (s *Sim) createPayment(r *request) (int, any, *apiError) {
	if aerr := s.idempotencyConflict(r, "payments"); aerr != nil {
		return 0, nil, aerr
	}
	var p paymentParams
	if aerr := decodeEnvelope(r, "payments", &p); aerr != nil {
		return 0, nil, aerr
	}
	fe := fieldErrors{resource: "payments"}
	metadata := parseMetadata(p.Metadata, &fe)
	amount, amountOK := parseAmount(p.Amount, "amount", &fe)
	currency := strings.ToUpper(str(p.Currency))
	switch {
	case currency == "":
		fe.add("currency", "is required")
	case !supportedCurrency(currency):
		fe.add("currency", "must be one of AUD, CAD, DKK, EUR, GBP, NZD, SEK, USD")
	}
	var chargeDate time.Time
	if !blank(p.ChargeDate) {
		d, ok := parseDate(*p.ChargeDate)
		if !ok {
			fe.add("charge_date", "must be a date in the format YYYY-MM-DD")
		} else {
			chargeDate = rollForward(d)
		}
	}
	if p.Description != nil {
		checkMaxLen(*p.Description, 255, "description", &fe)
	}
	var m *Mandate
	if blank(p.Links.Mandate) {
		fe.add("links[mandate]", "is required")
	} else {
		m, _ = s.mandates.get(*p.Links.Mandate)
	}
	var sc *scheme
	active := m != nil && slices.Contains(creatableMandateStatuses, m.Status)
	if m != nil {
		sc, _ = schemeByName(m.Scheme)
		if currency != "" && supportedCurrency(currency) && currency != sc.currency {
			fe.add("currency", "must be "+sc.currency+" for a "+sc.name+" mandate")
		}
		if amountOK {
			checkAmountLimits(amount, sc, "amount", &fe)
		}
		creditor, _ := s.creditors.get(m.Links.Creditor)
		checkPaymentReference(str(p.Reference), sc, creditor, "reference", &fe)
		if sc.name == "becs" && s.referenceTaken(m.Links.Creditor, sc.name, str(p.Reference)) {
			// PaymentService.java, reference: "this reference must be
			// unique (for each merchant) for the BECS scheme".
			fe.add("reference", "must be unique for becs payments; it has been used before")
		}
		if active && !chargeDate.IsZero() {
			if earliest, _ := s.nextChargeDate(m, r.now); chargeDate.Before(earliest) {
				fe.add("charge_date", "must be on or after the mandate's next_possible_charge_date ("+formatDate(earliest)+")")
			}
		}
	}
	sortItems(&fe)
	if aerr := fe.err(); aerr != nil {
		return 0, nil, aerr
	}
	if m == nil {
		return 0, nil, linkNotFound("payments", "links[mandate]")
	}
	if !active {
		return 0, nil, stateError("mandate_is_inactive",
			"The mandate for this payment is "+m.Status+", so payments cannot be created against it")
	}
	if chargeDate.IsZero() {
		chargeDate, _ = s.nextChargeDate(m, r.now)
	}
	pay := s.newPayment(m, amount, chargeDate, str(p.Reference), r.now)
	pay.Description = str(p.Description)
	pay.RetryIfPossible = p.RetryIfPossible != nil && *p.RetryIfPossible
	pay.Metadata = nonNil(metadata)
	s.rememberKey(r, "payments", pay.ID)
	s.emit(r.now, "payments", "created", map[string]string{"payment": pay.ID},
		EventDetails{Origin: originAPI, Cause: "payment_created", Description: "Payment created via the API."},
		nil, pay.Metadata)
	s.scheduleSubmission(pay, r.now)
	return http.StatusCreated, envelope("payments", pay.clone()), nil
}

func (s *Sim) newPayment(m *Mandate, amount int64, chargeDate time.Time, reference string, now time.Time) *Payment {
	sc, _ := schemeByName(m.Scheme)
	p := &Payment{
		ID:         s.newID(prefixPayment),
		CreatedAt:  formatTime(now),
		ChargeDate: formatDate(chargeDate),
		Amount:     amount,
		Currency:   sc.currency,
		Reference:  reference,
		Scheme:     sc.name,
		Status:     statusPendingSubmission,
		Links:      PaymentLinks{Creditor: m.Links.Creditor, Mandate: m.ID},
		Metadata:   map[string]string{},
		seq:        s.nextSeq(),
		created:    now,
	}
	s.payments.add(p.ID, p)
	return p
}

// scheduleSubmission submits the payment leadDays working days before its
// charge date (or at the next run, if that has passed).
func (s *Sim) scheduleSubmission(p *Payment, now time.Time) {
	sc, _ := schemeByName(p.Scheme)
	cd, _ := parseDate(p.ChargeDate)
	attempt := p.attempts
	s.schedule(runNoEarlierThan(addWorkingDays(cd, -sc.leadDays), now), func(at time.Time) {
		if p.attempts == attempt {
			s.submitPayment(p, at)
		}
	})
}

// submitPayment sends the payment to the banks and decides, by scenario,
// how it ends; the outcome then unfolds over the following runs.
func (s *Sim) submitPayment(p *Payment, at time.Time) {
	if p.Status != statusPendingSubmission {
		return
	}
	m, _ := s.mandates.get(p.Links.Mandate)
	if m.Status != statusActive {
		// Not active yet: submit right after it activates, which may be
		// this very run. (An ended mandate has already cancelled this
		// payment.)
		if slices.Contains(creatableMandateStatuses, m.Status) {
			next := m.activeFrom
			if next.Before(at) {
				next = nextRun(at)
			}
			s.schedule(next, func(at time.Time) { s.submitPayment(p, at) })
		}
		return
	}
	p.attempts++
	attempt := p.attempts
	p.Status = statusSubmitted
	s.emit(at, "payments", "submitted", map[string]string{"payment": p.ID},
		EventDetails{Origin: originGoCardless, Cause: "payment_submitted",
			Description: "Payment submitted to the banks. As a result, it can no longer be cancelled."},
		nil, p.Metadata)
	rule := s.match("payments", s.subjectForPayment(p))
	outcome := statusPaidOut
	if rule != nil {
		outcome = rule.Outcome
	}
	cd, _ := parseDate(p.ChargeDate)
	current := func() bool { return p.attempts == attempt }
	day := func(n int) time.Time { return runAt(addWorkingDays(cd, n)) }
	if outcome == statusFailed {
		s.schedule(day(1), func(at time.Time) {
			if current() && p.Status == statusSubmitted {
				s.failPayment(p, rule, at)
			}
		})
		return
	}
	s.schedule(day(1), func(at time.Time) {
		if current() && p.Status == statusSubmitted {
			p.Status = statusConfirmed
			s.emit(at, "payments", "confirmed", map[string]string{"payment": p.ID},
				EventDetails{Origin: originGoCardless, Cause: "payment_confirmed",
					Description: "Enough time has passed since the payment was submitted for the banks to return an error, so this payment is now confirmed."},
				nil, p.Metadata)
		}
	})
	if outcome == "late_failure" {
		s.schedule(day(2), func(at time.Time) {
			if current() && p.Status == statusConfirmed {
				s.failPayment(p, rule, at)
			}
		})
		return
	}
	s.schedule(day(2), func(at time.Time) {
		if current() && p.Status == statusConfirmed {
			s.payOut(p, at)
		}
	})
	if outcome == statusChargedBack {
		after := rule.AfterDays
		if after == 0 {
			after = 3
		}
		s.schedule(day(2+after), func(at time.Time) {
			if current() && p.Status == statusPaidOut {
				p.Status = statusChargedBack
				s.emit(at, "payments", "charged_back", map[string]string{"payment": p.ID},
					ruleDetails(rule, originBank, "charged_back", p.Scheme), nil, p.Metadata)
				s.paymentDebit(p, PayoutItemPaymentChargedBack, "chargeback_settled", chargebackSettled)
			}
		})
	}
}

// failPayment marks the payment failed with the rule's cause. A retryable
// failure of a payment created with retry_if_possible is retried at the
// next run; a failure saying the account or mandate is gone also cancels
// the mandate, as the bank's report does.
func (s *Sim) failPayment(p *Payment, rule *Rule, at time.Time) {
	m, _ := s.mandates.get(p.Links.Mandate)
	details := ruleDetails(rule, originBank, "failed", p.Scheme)
	retry := p.RetryIfPossible && slices.Contains(retryableCauses, details.Cause) &&
		p.retries < maxRetries && m.Status == statusActive
	details.WillAttemptRetry = boolPtr(retry)
	p.Status = statusFailed
	ev := s.emit(at, "payments", "failed", map[string]string{"payment": p.ID}, details, nil, p.Metadata)
	switch details.Cause {
	case "bank_account_closed", "mandate_cancelled":
		if slices.Contains(creatableMandateStatuses, m.Status) {
			md := EventDetails{Origin: originBank, Cause: details.Cause, Description: causeDescriptions[details.Cause],
				Scheme: m.Scheme, ReasonCode: mandateReasonCode("cancelled", details.Cause, m.Scheme)}
			s.endMandate(m, at, statusCancelled, md, nil, ev.ID)
		}
	}
	if !retry {
		return
	}
	s.schedule(nextRun(at), func(at time.Time) {
		if p.Status != statusFailed || m.Status != statusActive {
			return
		}
		p.retries++
		p.autoRetries++
		cd, _ := s.nextChargeDate(m, at)
		p.ChargeDate = formatDate(cd)
		p.Status = statusPendingSubmission
		s.emit(at, "payments", "resubmission_requested", map[string]string{"payment": p.ID},
			EventDetails{Origin: originGoCardless, Cause: "payment_autoretried",
				Description: "The payment was automatically retried by GoCardless."}, nil, p.Metadata)
		s.scheduleSubmission(p, at)
	})
}

// payOut marks the payment paid out, adding it to the creditor's payout of
// the day for its currency.
func (s *Sim) payOut(p *Payment, at time.Time) {
	po := s.payoutFor(p.Links.Creditor, p.Currency, at)
	po.add(s.item(PayoutItemPaymentPaidOut, p.Amount*10, PayoutItemLinks{Payment: p.ID}), s.feeItem(p, -1))
	p.Status = statusPaidOut
	p.Links.Payout = po.ID
	s.emit(at, "payments", "paid_out", map[string]string{"payment": p.ID, "payout": po.ID},
		EventDetails{Origin: originGoCardless, Cause: "payment_paid_out",
			Description: "The payment has been paid out by GoCardless."}, nil, p.Metadata)
}

func (s *Sim) listPayments(r *request) (int, any, *apiError) {
	mandate, creditor, subscription := eq(r.query, "mandate"), eq(r.query, "creditor"), eq(r.query, "subscription")
	status, currency, customer := eq(r.query, "status"), eq(r.query, "currency"), eq(r.query, "customer")
	return list("payments", s.payments.list, r.query,
		func(id string) (uint64, bool) { return seqOf(&s.payments, id) },
		func(p *Payment) time.Time { return p.created },
		func(p *Payment) bool {
			cust := ""
			if m, ok := s.mandates.get(p.Links.Mandate); ok {
				cust = m.Links.Customer
			}
			return mandate(p.Links.Mandate) && creditor(p.Links.Creditor) && subscription(p.Links.Subscription) &&
				status(p.Status) && currency(p.Currency) && customer(cust)
		},
		func(p *Payment) Payment { return p.clone() })
}

func (s *Sim) getPayment(r *request) (int, any, *apiError) {
	p, ok := s.payments.get(r.id())
	if !ok {
		return 0, nil, notFound()
	}
	return 200, envelope("payments", p.clone()), nil
}

func (s *Sim) updatePayment(r *request) (int, any, *apiError) {
	p, ok := s.payments.get(r.id())
	if !ok {
		return 0, nil, notFound()
	}
	var params struct {
		Metadata        json.RawMessage `json:"metadata"`
		RetryIfPossible *bool           `json:"retry_if_possible"`
	}
	if aerr := decodeEnvelope(r, "payments", &params); aerr != nil {
		return 0, nil, aerr
	}
	fe := fieldErrors{resource: "payments"}
	m := parseMetadata(params.Metadata, &fe)
	if aerr := fe.err(); aerr != nil {
		return 0, nil, aerr
	}
	if params.Metadata != nil {
		p.Metadata = nonNil(m)
	}
	if params.RetryIfPossible != nil {
		p.RetryIfPossible = *params.RetryIfPossible
	}
	return 200, envelope("payments", p.clone()), nil
}

func (s *Sim) cancelPayment(r *request) (int, any, *apiError) {
	p, _, metadata, aerr := action(&s.payments, r, nil)
	if aerr != nil {
		return 0, nil, aerr
	}
	if p.Status != statusPendingSubmission && p.Status != "pending_customer_approval" {
		return 0, nil, stateError("cancellation_failed",
			"The payment is "+p.Status+" and can no longer be cancelled")
	}
	p.Status = statusCancelled
	s.emit(r.now, "payments", "cancelled", map[string]string{"payment": p.ID},
		EventDetails{Origin: originAPI, Cause: "payment_cancelled", Description: "The payment was cancelled."},
		metadata, p.Metadata)
	return 200, envelope("payments", p.clone()), nil
}

// retryPayment resubmits a failed payment, on a new charge date.
func (s *Sim) retryPayment(r *request) (int, any, *apiError) {
	var chargeDate time.Time
	p, _, metadata, aerr := action(&s.payments, r, func(data actionData, fe *fieldErrors) {
		if !blank(data.ChargeDate) {
			d, ok := parseDate(*data.ChargeDate)
			if !ok {
				fe.add("charge_date", "must be a date in the format YYYY-MM-DD")
			} else {
				chargeDate = rollForward(d)
			}
		}
	})
	if aerr != nil {
		return 0, nil, aerr
	}
	m, _ := s.mandates.get(p.Links.Mandate)
	switch {
	case p.Status != statusFailed:
		// gocardless-pro-java PaymentService.java, retry: "This will
		// return a retry_failed error if the payment has not failed."
		return 0, nil, stateError("retry_failed", "Only failed payments can be retried; this one is "+p.Status)
	case m.Status != statusActive:
		return 0, nil, stateError("mandate_is_inactive", "The mandate for this payment is "+m.Status+", so it cannot be retried")
	case p.retries >= maxRetries:
		return 0, nil, stateError("retry_limit_reached", "This payment has already been retried 3 times")
	}
	earliest, _ := s.nextChargeDate(m, r.now)
	if chargeDate.IsZero() {
		chargeDate = earliest
	} else if chargeDate.Before(earliest) {
		fe := fieldErrors{resource: "data"}
		fe.add("charge_date", "must be on or after the mandate's next_possible_charge_date ("+formatDate(earliest)+")")
		return 0, nil, fe.err()
	}
	p.retries++
	p.ChargeDate = formatDate(chargeDate)
	p.Status = statusPendingSubmission
	s.emit(r.now, "payments", "resubmission_requested", map[string]string{"payment": p.ID},
		EventDetails{Origin: originAPI, Cause: "payment_retried", Description: "The payment was retried via the API."},
		metadata, p.Metadata)
	s.scheduleSubmission(p, r.now)
	return 200, envelope("payments", p.clone()), nil
}

// referenceTaken says whether creditor already has a payment of scheme
// with the (non-empty) reference.
func (s *Sim) referenceTaken(creditor, scheme, reference string) bool {
	if reference == "" {
		return false
	}
	for _, p := range s.payments.list {
		if p.Links.Creditor == creditor && p.Scheme == scheme && p.Reference == reference {
			return true
		}
	}
	return false
}
