package ledger

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestStateMachines(t *testing.T) {
	collections := []struct {
		from, to CollectionState
		ok       bool
	}{
		{"", CollectionCreating, true},
		{CollectionCreating, CollectionPendingSubmission, true},
		{CollectionCreating, CollectionException, true},
		{CollectionSubmitted, CollectionException, false},
		{CollectionFailed, CollectionPendingSubmission, true}, // resubmitted
		{CollectionConfirmed, CollectionFailed, true},         // late failure
		{CollectionFailed, CollectionCreating, true},          // replay
		{CollectionPaidOut, CollectionCreating, false},
		{CollectionCancelled, CollectionConfirmed, false},
		{CollectionException, CollectionCreated, false},
		{CollectionCreated, "settled", false},
	}
	for _, c := range collections {
		if err := CheckCollection(c.from, c.to); (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrIllegalTransition)) {
			t.Errorf("collection %q -> %q: %v, want allowed %v", c.from, c.to, err, c.ok)
		}
	}
	refunds := []struct {
		from, to RefundState
		ok       bool
	}{
		{RefundCreating, RefundCreated, true},
		{RefundCreating, RefundException, true},
		{RefundPaid, RefundFundsReturned, true},
		{RefundCreated, RefundCreating, false},
		{RefundException, RefundPaid, false},
	}
	for _, c := range refunds {
		if err := CheckRefund(c.from, c.to); (err == nil) != c.ok {
			t.Errorf("refund %q -> %q: %v, want allowed %v", c.from, c.to, err, c.ok)
		}
	}
	requests := []struct {
		from, to MandateRequestState
		ok       bool
	}{
		{MandateRequestRequesting, MandateRequestAwaitingPayer, true},
		{MandateRequestRequesting, MandateRequestCancelled, true},
		{MandateRequestAwaitingPayer, MandateRequestFulfilled, true},
		{MandateRequestAwaitingPayer, MandateRequestExpired, true},
		{MandateRequestAwaitingPayer, MandateRequestRequesting, false},
		{MandateRequestFulfilled, MandateRequestCancelled, false},
		{MandateRequestExpired, MandateRequestAwaitingPayer, false},
		{MandateRequestFulfilled, MandateRequestFulfilled, true},
		{MandateRequestRequesting, "authorised", false},
	}
	for _, c := range requests {
		if err := CheckMandateRequest(c.from, c.to); (err == nil) != c.ok {
			t.Errorf("mandate request %q -> %q: %v, want allowed %v", c.from, c.to, err, c.ok)
		}
	}
	if CheckMandate(MandateActive, MandateCancelled) != nil || CheckMandate(MandateActive, "") == nil || CheckMandate("", "paused") == nil {
		t.Error("mandate state machine")
	}
}

// An illegal transition never reaches the database, whoever proposes it.
func TestSaveRefusesIllegalTransitions(t *testing.T) {
	l, conn := newLedger(t)
	ctx := context.Background()
	c, _, err := l.StartCollection(ctx, testCollection(conn, "INV1", 100))
	if err != nil {
		t.Fatal(err)
	}
	err = l.Tx(ctx, func(tx pgx.Tx) error {
		after := c
		after.State, after.GCPaymentID = CollectionPaidOut, "PM1"
		if err := SaveCollection(ctx, tx, c, after, "collection.paid_out", "test"); err != nil {
			return err
		}
		again := after
		again.State = CollectionCreating
		return SaveCollection(ctx, tx, after, again, "collection.creating", "test")
	})
	if !errors.Is(err, ErrIllegalTransition) {
		t.Fatalf("paid_out -> creating saved: %v", err)
	}
	if got, _ := l.Collection(ctx, c.Key); got.State != CollectionCreating {
		t.Errorf("state %s after the refused transaction, want it rolled back to creating", got.State)
	}
}
