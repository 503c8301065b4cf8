package gcsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

type refundParams struct {
	Amount                  json.RawMessage `json:"amount"`
	TotalAmountConfirmation json.RawMessage `json:"total_amount_confirmation"`
	Reference               *string         `json:"reference"`
	Metadata                json.RawMessage `json:"metadata"`
	Links                   struct {
		Payment *string `json:"payment"`
	} `json:"links"`
}

func (s *Sim) createRefund(r *request) (int, any, *apiError) {
	if aerr := s.idempotencyConflict(r, "refunds"); aerr != nil {
		return 0, nil, aerr
	}
	var p refundParams
	if aerr := decodeEnvelope(r, "refunds", &p); aerr != nil {
		return 0, nil, aerr
	}
	fe := fieldErrors{resource: "refunds"}
	metadata := parseMetadata(p.Metadata, &fe)
	amount, _ := parseAmount(p.Amount, "amount", &fe)
	total, _ := parseAmount(p.TotalAmountConfirmation, "total_amount_confirmation", &fe)
	var pay *Payment
	if blank(p.Links.Payment) {
		fe.add("links[payment]", "is required")
	} else {
		pay, _ = s.payments.get(*p.Links.Payment)
	}
	if pay != nil {
		sc, _ := schemeByName(pay.Scheme)
		checkReference(str(p.Reference), sc, "reference", &fe)
	}
	sortItems(&fe)
	if aerr := fe.err(); aerr != nil {
		return 0, nil, aerr
	}
	if pay == nil {
		return 0, nil, linkNotFound("refunds", "links[payment]")
	}
	if pay.Status != statusConfirmed && pay.Status != statusPaidOut {
		return 0, nil, stateError("refund_payment_invalid_state",
			"Only confirmed or paid out payments can be refunded; this one is "+pay.Status)
	}
	if pay.AmountRefunded+amount != total {
		return 0, nil, stateError("total_amount_confirmation_invalid", fmt.Sprintf(
			"total_amount_confirmation must equal the payment's existing refunds (%d) plus this refund's amount (%d)",
			pay.AmountRefunded, amount))
	}
	if total > pay.Amount {
		return 0, nil, stateError("available_refund_amount_insufficient", fmt.Sprintf(
			"The payment has only %d left to refund", pay.Amount-pay.AmountRefunded))
	}
	rf := &Refund{
		ID:        s.newID(prefixRefund),
		CreatedAt: formatTime(r.now),
		Amount:    amount,
		Currency:  pay.Currency,
		Reference: str(p.Reference),
		Status:    "created",
		Links:     RefundLinks{Payment: pay.ID, Mandate: pay.Links.Mandate},
		Metadata:  nonNil(metadata),
		seq:       s.nextSeq(),
		created:   r.now,
	}
	s.refunds.add(rf.ID, rf)
	pay.AmountRefunded += amount
	s.rememberKey(r, "refunds", rf.ID)
	s.refundEvent(rf, r.now, originAPI, "created", "The refund has been created, and will be submitted in the next batch.")
	s.startRefund(rf, pay, r.now)
	return http.StatusCreated, envelope("refunds", rf.clone()), nil
}

func (s *Sim) refundEvent(rf *Refund, at time.Time, origin, status, description string) {
	rf.Status = status
	d := EventDetails{Origin: origin, Cause: "refund_" + status, Description: description}
	if desc, ok := causeDescriptions[d.Cause]; ok {
		d.Description = desc
	}
	s.emit(at, "refunds", status, map[string]string{"refund": rf.ID}, d, nil, rf.Metadata)
}

// startRefund queues the refund at the next run, submits it a working day
// later and settles it a working day after that, as the scenario says.
func (s *Sim) startRefund(rf *Refund, pay *Payment, now time.Time) {
	queue := nextRun(now)
	s.schedule(queue, func(at time.Time) {
		if rf.Status != "created" {
			return
		}
		s.refundEvent(rf, at, originGoCardless, statusPendingSubmission, "The refund is queued for submission to the banks.")
		s.schedule(runAt(addWorkingDays(dateOf(at), 1)), func(at time.Time) {
			s.refundEvent(rf, at, originGoCardless, statusSubmitted, "The refund has been submitted to the banks.")
			s.refundMovement(rf, pay, PayoutItemPaymentRefunded)
			rule := s.match("refunds", s.subjectForRefund(rf))
			outcome := "paid"
			if rule != nil {
				outcome = rule.Outcome
			}
			s.schedule(runAt(addWorkingDays(dateOf(at), 1)), func(at time.Time) {
				s.settleRefund(rf, pay, rule, outcome, at)
			})
		})
	})
}

func (s *Sim) settleRefund(rf *Refund, pay *Payment, rule *Rule, outcome string, at time.Time) {
	if outcome == "bounced" || outcome == statusFailed {
		pay.AmountRefunded -= rf.Amount
		s.refundEvent(rf, at, originBank, outcome, "")
		s.refundMovement(rf, pay, PayoutItemRefundFundsReturned)
		return
	}
	s.refundEvent(rf, at, originGoCardless, "paid", "The refund has been paid to the customer.")
	if outcome != "funds_returned" {
		return
	}
	after := rule.AfterDays
	if after == 0 {
		after = 2
	}
	s.schedule(runAt(addWorkingDays(dateOf(at), after)), func(at time.Time) {
		pay.AmountRefunded -= rf.Amount
		s.refundEvent(rf, at, originBank, "funds_returned", "")
		s.refundMovement(rf, pay, PayoutItemRefundFundsReturned)
	})
}

func (s *Sim) listRefunds(r *request) (int, any, *apiError) {
	payment, mandate := eq(r.query, "payment"), eq(r.query, "mandate")
	return list("refunds", s.refunds.list, r.query,
		func(id string) (uint64, bool) { return seqOf(&s.refunds, id) },
		func(rf *Refund) time.Time { return rf.created },
		func(rf *Refund) bool { return payment(rf.Links.Payment) && mandate(rf.Links.Mandate) },
		func(rf *Refund) Refund { return rf.clone() })
}

func (s *Sim) getRefund(r *request) (int, any, *apiError) {
	rf, ok := s.refunds.get(r.id())
	if !ok {
		return 0, nil, notFound()
	}
	return 200, envelope("refunds", rf.clone()), nil
}

func (s *Sim) updateRefund(r *request) (int, any, *apiError) {
	rf, ok := s.refunds.get(r.id())
	if !ok {
		return 0, nil, notFound()
	}
	if aerr := updateMetadata(r, "refunds", &rf.Metadata); aerr != nil {
		return 0, nil, aerr
	}
	return 200, envelope("refunds", rf.clone()), nil
}
