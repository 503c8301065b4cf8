// Package operator is what an operator does about collections that did not
// go as planned: look at one with its audit trail, list the exceptions,
// replay a failed collection (GoCardless's retry of the failed payment, or a
// new payment under the next attempt's idempotency key when a retry is not
// possible), and escalate an exception to someone who can act outside the
// system. Every action is audited under the operator's name. mlcctl uses it.
package operator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/platform/audit"
	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/accounts"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/collect"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/ledger"
)

// Desk carries out operator actions.
type Desk struct {
	ledger    *ledger.Ledger
	dir       *accounts.Directory
	collector *collect.Collector
	db        *pgxpool.Pool
	// Now is GoCardless's clock, by which a resent link's mandate_wait is
	// measured (as the collector measures it); tests set the simulator's.
	Now func() time.Time
}

// NewDesk returns a desk over the database and connection registry;
// clientOptions are given to GoCardless clients (nil for defaults).
func NewDesk(db *pgxpool.Pool, reg *connections.Store, clientOptions func(name string) []gocardless.Option) *Desk {
	led, dir := ledger.New(db), accounts.New(reg, time.Minute, clientOptions)
	return &Desk{ledger: led, dir: dir, collector: collect.New(led, dir, slog.New(slog.DiscardHandler)), db: db, Now: time.Now}
}

// Collection is a collection as an operator sees it.
type Collection struct {
	ID            int64              `json:"id"`
	ERP           string             `json:"erp"`
	Connection    string             `json:"connection"`
	Company       string             `json:"company"`
	InvoiceID     string             `json:"invoice_id"`
	InvoiceNo     string             `json:"invoice_no"`
	CustomerID    string             `json:"customer_id"`
	Kind          string             `json:"kind"`
	AmountMinor   int64              `json:"amount_minor"`
	Currency      string             `json:"currency"`
	State         string             `json:"state"`
	Attempts      int                `json:"attempts"`
	PaymentID     string             `json:"gc_payment_id,omitempty"`
	Subscription  string             `json:"gc_subscription_id,omitempty"`
	FailureCause  string             `json:"failure_cause,omitempty"`
	ReasonCode    string             `json:"failure_reason_code,omitempty"`
	Description   string             `json:"failure_description,omitempty"`
	ChargeDate    string             `json:"charge_date,omitempty"`
	AuditTrail    []audit.Record     `json:"audit_trail"`
	OpenProblems  []ledger.Exception `json:"open_exceptions"`
	AuditVerified bool               `json:"audit_verified"`

	key ledger.InvoiceKey
}

// ErrNotFound is returned for an unknown collection or exception.
var ErrNotFound = ledger.ErrNotFound

// Show returns the collection of an invoice with its audit trail and open
// exceptions; the trail's hash chain is verified on the way.
func (d *Desk) Show(ctx context.Context, erpConnection, company, invoiceID string) (Collection, error) {
	conn, err := d.dir.Connection(ctx, erpConnection)
	if err != nil {
		return Collection{}, err
	}
	erp := string(conn.Kind)
	col, err := d.ledger.Collection(ctx, ledger.InvoiceKey{ERP: erp, ConnectionID: conn.ID, Company: company, InvoiceID: invoiceID})
	if err != nil {
		return Collection{}, fmt.Errorf("collection %s/%s/%s: %w", erpConnection, company, invoiceID, err)
	}
	out := Collection{
		ID: col.ID, ERP: erp, Connection: erpConnection, Company: company, InvoiceID: invoiceID, InvoiceNo: col.InvoiceNo,
		CustomerID: col.CustomerID, Kind: col.Kind, AmountMinor: col.AmountMinor, Currency: col.Currency, State: string(col.State),
		Attempts: col.Attempts, PaymentID: col.GCPaymentID, Subscription: col.GCSubscription, FailureCause: col.FailureCause,
		ReasonCode: col.FailureReasonCode, Description: col.FailureDescription, key: col.Key,
	}
	if col.ChargeDate.Year() > 1 {
		out.ChargeDate = col.ChargeDate.Format(time.DateOnly)
	}
	if out.AuditTrail, err = audit.List(ctx, d.db, "collection", col.AggregateID()); err != nil {
		return out, err
	}
	out.AuditVerified = audit.Verify(ctx, d.db, "collection", col.AggregateID()) == nil
	out.OpenProblems, err = d.ledger.ExceptionsOf(ctx, "collection", col.AggregateID(), "open")
	return out, err
}

// Exceptions lists exceptions; status "" lists all.
func (d *Desk) Exceptions(ctx context.Context, status string) ([]ledger.Exception, error) {
	return d.ledger.Exceptions(ctx, status)
}

// Escalate marks an exception escalated, with the operator's note.
func (d *Desk) Escalate(ctx context.Context, exceptionID int64, actor, note string) error {
	return d.ledger.Tx(ctx, func(tx pgx.Tx) error {
		return ledger.SetExceptionStatus(ctx, tx, exceptionID, "escalated", actor, note)
	})
}

// Replayed says what a replay did.
type Replayed struct {
	How       string `json:"how"` // "retry" (the failed payment resubmitted) or "new payment"
	PaymentID string `json:"gc_payment_id"`
	Attempt   int    `json:"attempt"`
}

// ErrNotReplayable is returned for a collection that has not failed.
var ErrNotReplayable = errors.New("collection cannot be replayed")

// Replay collects a failed, cancelled or refused collection again. A failed
// payment is retried at GoCardless when it allows; otherwise (cancelled,
// refused at creation, retry refused) a new payment is created under the
// next attempt's key, so replaying twice by accident still makes one
// payment per attempt. The collection's open exceptions are marked
// replayed.
//
// Each step follows the orchestrator's pattern for outside calls: the
// intent is committed (a lease holding the retry's key; or the collection
// in state creating under the next attempt's key), GoCardless is called
// with nothing held, and the result is recorded. A replay cut short
// (crash, timeout) is finished by replaying again, which resumes the
// recorded intent instead of starting another.
func (d *Desk) Replay(ctx context.Context, erpConnection, company, invoiceID, actor string) (Replayed, error) {
	conn, err := d.dir.Connection(ctx, erpConnection)
	if err != nil {
		return Replayed{}, err
	}
	route, err := d.dir.Route(ctx, erpConnection, company)
	if err != nil {
		return Replayed{}, err
	}
	key := ledger.InvoiceKey{ERP: string(conn.Kind), ConnectionID: conn.ID, Company: company, InvoiceID: invoiceID}
	col, err := d.ledger.Collection(ctx, key)
	if err != nil {
		return Replayed{}, fmt.Errorf("collection %s/%s/%s: %w", erpConnection, company, invoiceID, err)
	}
	var res Replayed
	switch {
	case col.Kind != "payment":
		return res, fmt.Errorf("%w: it is a %s in state %s", ErrNotReplayable, col.Kind, col.State)
	case col.State == ledger.CollectionCreating && col.Attempts > 1:
		// A replay's new payment, cut short: resume it.
	case col.State == ledger.CollectionFailed && col.GCPaymentID != "":
		retried, err := d.retry(ctx, route, col, actor)
		if err != nil || retried.How != "" {
			if err == nil {
				err = d.markReplayed(ctx, actor, retried, key)
			}
			return retried, err
		}
		// GoCardless will not retry it (limit reached, mandate changed):
		// a new payment instead.
		fallthrough
	case col.State.Replayable():
		if col, err = d.startAttempt(ctx, key, actor); err != nil {
			return res, err
		}
	default:
		return res, fmt.Errorf("%w: it is a %s in state %s", ErrNotReplayable, col.Kind, col.State)
	}
	if err := d.collector.Resume(ctx, route, col); err != nil {
		return res, fmt.Errorf("new payment: %w", err)
	}
	done, err := d.ledger.Collection(ctx, key)
	if err != nil {
		return res, err
	}
	if done.State == ledger.CollectionException {
		return res, fmt.Errorf("new payment refused by GoCardless: %s", done.FailureDescription)
	}
	res = Replayed{How: "new payment", PaymentID: done.GCPaymentID, Attempt: done.Attempts}
	return res, d.markReplayed(ctx, actor, res, key)
}

// retryIntent is what a retry commits to before asking GoCardless.
type retryIntent struct {
	Payment string `json:"payment"`
	Key     string `json:"idempotency_key"`
	Attempt int    `json:"attempt"`
}

// retry asks GoCardless to retry a failed payment, under a lease holding
// the retry's key. It returns How "" when GoCardless refuses for good, and
// a new payment must be made instead.
func (d *Desk) retry(ctx context.Context, route accounts.Route, col ledger.Collection, actor string) (Replayed, error) {
	intent := retryIntent{Payment: col.GCPaymentID, Attempt: col.Attempts + 1}
	intent.Key = fmt.Sprintf("%s:retry:%d", col.IdempotencyKey, intent.Attempt)
	holder := fmt.Sprintf("replay:%d", intent.Attempt)
	if _, _, err := d.ledger.Claim(ctx, "collection", col.AggregateID(), holder, intent, replayLease, "collection.replaying"); err != nil {
		return Replayed{}, err
	}
	p, err := route.Client.RetryPayment(ctx, intent.Key, intent.Payment, gocardless.RetryParams{})
	if err != nil && gocardless.Temporary(err) {
		return Replayed{}, err // the lease stays; replaying again resumes it
	}
	err = d.ledger.Tx(ctx, func(tx pgx.Tx) error {
		if rerr := ledger.Release(ctx, tx, "collection", col.AggregateID(), holder); rerr != nil || err != nil {
			return rerr
		}
		now, err := ledger.LockCollection(ctx, tx, col.Key)
		if err != nil {
			return err
		}
		if now.State != ledger.CollectionFailed || now.GCPaymentID != intent.Payment {
			return fmt.Errorf("%w: it changed to %s while being retried", ErrNotReplayable, now.State)
		}
		after := now
		after.Attempts = intent.Attempt
		after.FailureCause, after.FailureReasonCode, after.FailureDescription = "", "", ""
		after.State, after.PostedOutcomes = ledger.CollectionPendingSubmission, nil
		return ledger.SaveCollection(ctx, tx, now, after, "collection.replayed", actor+": payment "+p.ID+" retried")
	})
	if err != nil {
		return Replayed{}, err
	}
	if p == nil {
		return Replayed{}, nil
	}
	return Replayed{How: "retry", PaymentID: p.ID, Attempt: intent.Attempt}, nil
}

// replayLease is how long an operator's retry keeps others off the
// collection; past it, a replay again takes it over.
const replayLease = 5 * time.Minute

// startAttempt records the intent of a new payment: the collection in
// state creating under the next attempt's idempotency key, on the
// customer's current mandate, with no payment id, so that the failed
// attempt's events cannot be taken for the new payment's.
func (d *Desk) startAttempt(ctx context.Context, key ledger.InvoiceKey, actor string) (ledger.Collection, error) {
	var after ledger.Collection
	err := d.ledger.Tx(ctx, func(tx pgx.Tx) error {
		col, err := ledger.LockCollection(ctx, tx, key)
		if err != nil {
			return err
		}
		if !col.State.Replayable() {
			return fmt.Errorf("%w: it is a %s in state %s", ErrNotReplayable, col.Kind, col.State)
		}
		customer, err := ledger.ReadCustomer(ctx, tx, ledger.CustomerKey{ERP: key.ERP, ConnectionID: key.ConnectionID, Company: key.Company, CustomerID: col.CustomerID})
		if err != nil {
			return fmt.Errorf("customer %s: %w", col.CustomerID, err)
		}
		if !customer.MandateUsable() {
			return fmt.Errorf("%w: customer %s's mandate is %q", ErrNotReplayable, col.CustomerID, customer.MandateStatus)
		}
		after = col
		after.Attempts = col.Attempts + 1
		after.IdempotencyKey = ledger.PaymentKey(key, after.Attempts)
		after.FailureCause, after.FailureReasonCode, after.FailureDescription = "", "", ""
		after.State, after.GCPaymentID, after.GCMandateID = ledger.CollectionCreating, "", customer.GCMandateID
		after.ChargeDate = time.Time{}                             // GoCardless dates it
		after.LastEventAt, after.PostedOutcomes = time.Time{}, nil // the new payment's story starts afresh
		return ledger.SaveCollection(ctx, tx, col, after, "collection.replaying", actor+": new payment, attempt "+fmt.Sprint(after.Attempts))
	})
	return after, err
}

// markReplayed closes the open exceptions of a collection.
func (d *Desk) markReplayed(ctx context.Context, actor string, res Replayed, key ledger.InvoiceKey) error {
	open, err := d.ledger.ExceptionsOf(ctx, "collection", key.String(), "open")
	if err != nil {
		return err
	}
	return d.ledger.Tx(ctx, func(tx pgx.Tx) error {
		for _, e := range open {
			if err := ledger.SetExceptionStatus(ctx, tx, e.ID, "replayed", actor, fmt.Sprintf("%s, payment %s", res.How, res.PaymentID)); err != nil {
				return err
			}
		}
		return nil
	})
}

// EscalateCollection escalates the open exceptions of a collection; with
// none open, it opens one on the operator's word and escalates it, so the
// hand-over is recorded either way. It returns the exceptions escalated.
func (d *Desk) EscalateCollection(ctx context.Context, erpConnection, company, invoiceID, actor, note string) ([]int64, error) {
	return d.closeCollection(ctx, erpConnection, company, invoiceID, "escalated", actor, note)
}

// closeCollection moves the open exceptions of a collection to status,
// opening one on the operator's word when there is none.
func (d *Desk) closeCollection(ctx context.Context, erpConnection, company, invoiceID, status, actor, note string) ([]int64, error) {
	shown, err := d.Show(ctx, erpConnection, company, invoiceID)
	if err != nil {
		return nil, err
	}
	var ids []int64
	err = d.ledger.Tx(ctx, func(tx pgx.Tx) error {
		for _, e := range shown.OpenProblems {
			ids = append(ids, e.ID)
		}
		if len(ids) == 0 {
			id, err := ledger.RaiseException(ctx, tx, ledger.Exception{Kind: map[string]string{"escalated": "operator_escalation", "resolved": "operator_resolution"}[status], AggregateType: "collection",
				AggregateID: shown.key.String(), Reason: note})
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		for _, id := range ids {
			if err := ledger.SetExceptionStatus(ctx, tx, id, status, actor, note); err != nil {
				return err
			}
		}
		return nil
	})
	return ids, err
}

// Resolve marks an exception resolved, with the operator's note on what
// was done about it outside the system.
func (d *Desk) Resolve(ctx context.Context, exceptionID int64, actor, note string) error {
	return d.ledger.Tx(ctx, func(tx pgx.Tx) error {
		return ledger.SetExceptionStatus(ctx, tx, exceptionID, "resolved", actor, note)
	})
}

// ResolveCollection resolves the open exceptions of a collection; with
// none open (a failed payment the operator settled by other means), it
// opens one on the operator's word and resolves it, so the decision is
// recorded either way. It returns the exceptions resolved.
func (d *Desk) ResolveCollection(ctx context.Context, erpConnection, company, invoiceID, actor, note string) ([]int64, error) {
	return d.closeCollection(ctx, erpConnection, company, invoiceID, "resolved", actor, note)
}

// Note is what an operator wrote when changing an exception's status.
type Note = ledger.ExceptionNote

// Notes returns the notes on the given exceptions, oldest first.
func (d *Desk) Notes(ctx context.Context, exceptionIDs []int64) (map[int64][]Note, error) {
	return d.ledger.ExceptionNotes(ctx, exceptionIDs)
}
