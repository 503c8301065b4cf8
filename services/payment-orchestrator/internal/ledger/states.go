package ledger

import (
	"errors"
	"fmt"
)

// The states of the orchestrator's aggregates, each a type of its own with
// one rank table, and each aggregate's transitions checked in one place
// (CheckCollection, CheckRefund, CheckMandate, CheckMandateRequest), by the ledger's Save
// functions: code elsewhere can propose any state, but an illegal
// transition never reaches the database.

// CollectionState is where an invoice's collection is: creating (its
// intent committed, GoCardless not yet answered), then the GoCardless
// payment's own statuses, or exception (GoCardless refused it).
type CollectionState string

// Collection states.
const (
	CollectionCreating          CollectionState = "creating"
	CollectionCreated           CollectionState = "created"
	CollectionPendingSubmission CollectionState = "pending_submission"
	CollectionSubmitted         CollectionState = "submitted"
	CollectionConfirmed         CollectionState = "confirmed"
	CollectionPaidOut           CollectionState = "paid_out"
	CollectionCancelled         CollectionState = "cancelled"
	CollectionFailed            CollectionState = "failed"
	CollectionChargedBack       CollectionState = "charged_back"
	CollectionException         CollectionState = "exception"
)

// collectionRanks order collection states along the payment lifecycle;
// they break ties between GoCardless events with the same timestamp.
var collectionRanks = map[CollectionState]int{
	CollectionCreating: 0, CollectionCreated: 1, CollectionPendingSubmission: 2, CollectionSubmitted: 3,
	CollectionConfirmed: 4, CollectionPaidOut: 5, CollectionCancelled: 6, CollectionFailed: 6,
	CollectionChargedBack: 7, CollectionException: 6,
}

// Rank is the state's place in the lifecycle (0 for an unknown state).
func (s CollectionState) Rank() int { return collectionRanks[s] }

// Known reports whether s is a collection state.
func (s CollectionState) Known() bool { _, ok := collectionRanks[s]; return ok }

// Collected reports whether the money was taken: confirmed or paid out.
func (s CollectionState) Collected() bool { return s == CollectionConfirmed || s == CollectionPaidOut }

// Replayable reports whether an operator may collect again.
func (s CollectionState) Replayable() bool {
	return s == CollectionFailed || s == CollectionCancelled || s == CollectionException
}

// ErrIllegalTransition is returned by the Save functions for a change of
// state the aggregate's state machine does not allow.
var ErrIllegalTransition = errors.New("illegal state transition")

// verdict is a state machine's answer about aggregate's change from from
// to to: nil when ok, else an error wrapping ErrIllegalTransition.
func verdict[S ~string](aggregate string, from, to S, ok bool) error {
	if ok {
		return nil
	}
	return fmt.Errorf("%s %s -> %s: %w", aggregate, from, to, ErrIllegalTransition)
}

// CheckCollection is the collection state machine. Creating is entered
// only as the intent of a new attempt (from nothing, or by an operator's
// replay of a collection that failed, was cancelled or was refused), and
// left for any state GoCardless reports or for exception; exception is
// entered only from creating; cancelled and exception are left only by a
// replay. Between GoCardless's own statuses the events decide (a payment
// may be resubmitted after failing, or fail late after confirmation).
func CheckCollection(from, to CollectionState) error {
	ok := to.Known()
	switch {
	case !ok:
	case from == to:
	case to == CollectionCreating:
		ok = from == "" || from.Replayable()
	case to == CollectionException:
		ok = from == CollectionCreating
	case from == CollectionCancelled || from == CollectionException:
		ok = false
	}
	return verdict("collection", from, to, ok)
}

// RefundState is where a refund is: creating, then GoCardless's refund
// statuses, or exception.
type RefundState string

// Refund states.
const (
	RefundCreating          RefundState = "creating"
	RefundCreated           RefundState = "created"
	RefundPendingSubmission RefundState = "pending_submission"
	RefundSubmitted         RefundState = "submitted"
	RefundPaid              RefundState = "paid"
	RefundCancelled         RefundState = "cancelled"
	RefundFailed            RefundState = "failed"
	RefundBounced           RefundState = "bounced"
	RefundFundsReturned     RefundState = "funds_returned"
	RefundException         RefundState = "exception"
)

var refundRanks = map[RefundState]int{
	RefundCreating: 0, RefundCreated: 1, RefundPendingSubmission: 2, RefundSubmitted: 3, RefundPaid: 4,
	RefundCancelled: 5, RefundFailed: 5, RefundBounced: 5, RefundFundsReturned: 6, RefundException: 5,
}

// Rank is the state's place in the refund lifecycle (0 for an unknown state).
func (s RefundState) Rank() int { return refundRanks[s] }

// Known reports whether s is a refund state.
func (s RefundState) Known() bool { _, ok := refundRanks[s]; return ok }

// Counts reports whether a refund in this state counts towards the total
// refunded of its payment (GoCardless's total_amount_confirmation).
func (s RefundState) Counts() bool {
	switch s {
	case RefundFailed, RefundCancelled, RefundBounced, RefundFundsReturned, RefundException:
		return false
	}
	return true
}

// CheckRefund is the refund state machine: creating only as the first
// state, exception only from creating, nothing out of exception.
func CheckRefund(from, to RefundState) error {
	ok := to.Known()
	switch {
	case !ok:
	case from == to:
	case to == RefundCreating, from == RefundException:
		ok = false
	case to == RefundException:
		ok = from == RefundCreating
	}
	return verdict("refund", from, to, ok)
}

// MandateStatus is a customer link's mandate status, as GoCardless
// reports it ("" before the first mandate).
type MandateStatus string

// Mandate statuses.
const (
	MandatePendingCustomerApproval MandateStatus = "pending_customer_approval"
	MandatePendingSubmission       MandateStatus = "pending_submission"
	MandateSubmitted               MandateStatus = "submitted"
	MandateActive                  MandateStatus = "active"
	MandateSuspendedByPayer        MandateStatus = "suspended_by_payer"
	MandateFailed                  MandateStatus = "failed"
	MandateCancelled               MandateStatus = "cancelled"
	MandateExpired                 MandateStatus = "expired"
	MandateConsumed                MandateStatus = "consumed"
	MandateBlocked                 MandateStatus = "blocked"
)

var mandateRanks = map[MandateStatus]int{
	MandatePendingCustomerApproval: 0, MandatePendingSubmission: 1, MandateSubmitted: 2, MandateActive: 3,
	MandateSuspendedByPayer: 4, MandateFailed: 4, MandateCancelled: 4, MandateExpired: 4, MandateConsumed: 4, MandateBlocked: 4,
}

// Rank breaks ties between mandate events of the same instant.
func (s MandateStatus) Rank() int { return mandateRanks[s] }

// Known reports whether s is a mandate status.
func (s MandateStatus) Known() bool { _, ok := mandateRanks[s]; return ok }

// Usable reports whether GoCardless accepts payments on a mandate in this
// status: from submission onwards, before activation too.
func (s MandateStatus) Usable() bool {
	switch s {
	case MandatePendingCustomerApproval, MandatePendingSubmission, MandateSubmitted, MandateActive:
		return true
	}
	return false
}

// CheckMandate is the mandate state machine of a link: any status
// GoCardless reports, in the order its events say, and back to "" never.
// A new mandate (new bank details, or a replacement) starts its own
// story, so a change of mandate id is not a transition.
func CheckMandate(from, to MandateStatus) error {
	illegal := (to == "" && from != "") || (to != "" && !to.Known())
	return verdict("mandate", from, to, !illegal)
}

// MandateRequestState is where a customer's billing request for a mandate
// is: requesting (its intent committed; the billing request or its flow
// not yet recorded), awaiting_payer (the link recorded), and then one of
// fulfilled (the mandate linked), cancelled (GoCardless closed it) or
// expired (superseded by an operator's resend).
type MandateRequestState string

// Mandate request states.
const (
	MandateRequestRequesting    MandateRequestState = "requesting"
	MandateRequestAwaitingPayer MandateRequestState = "awaiting_payer"
	MandateRequestFulfilled     MandateRequestState = "fulfilled"
	MandateRequestCancelled     MandateRequestState = "cancelled"
	MandateRequestExpired       MandateRequestState = "expired"
)

// Open reports whether the request still waits: for its calls, or for
// the payer. A customer has at most one open request.
func (s MandateRequestState) Open() bool {
	return s == MandateRequestRequesting || s == MandateRequestAwaitingPayer
}

// Known reports whether s is a mandate request state.
func (s MandateRequestState) Known() bool {
	switch s {
	case MandateRequestRequesting, MandateRequestAwaitingPayer, MandateRequestFulfilled, MandateRequestCancelled, MandateRequestExpired:
		return true
	}
	return false
}

// CheckMandateRequest is the mandate request state machine: requesting
// first, awaiting_payer only from it, and nothing out of fulfilled,
// cancelled or expired (a resend opens the next attempt instead).
func CheckMandateRequest(from, to MandateRequestState) error {
	ok := to.Known()
	switch {
	case !ok, from == to:
	case !from.Open():
		ok = false
	case to == MandateRequestRequesting:
		ok = false
	case to == MandateRequestAwaitingPayer:
		ok = from == MandateRequestRequesting
	}
	return verdict("mandate request", from, to, ok)
}
