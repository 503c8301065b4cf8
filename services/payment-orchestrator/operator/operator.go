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
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/platform/audit"
	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/accounts"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/ledger"
)

// Desk carries out operator actions.
type Desk struct {
	ledger *ledger.Ledger
	dir    *accounts.Directory
	db     *pgxpool.Pool
}

// NewDesk returns a desk over the database and connection registry;
// clientOptions are given to GoCardless clients (nil for defaults).
func NewDesk(db *pgxpool.Pool, reg *connections.Store, clientOptions func(name string) []gocardless.Option) *Desk {
	return &Desk{ledger: ledger.New(db), dir: accounts.New(reg, time.Minute, clientOptions), db: db}
}

// Collection is a collection as an operator sees it.
type Collection struct {
	ID            int64
	ERP           string
	Connection    string
	Company       string
	InvoiceID     string
	InvoiceNo     string
	CustomerID    string
	Kind          string
	AmountMinor   int64
	Currency      string
	State         string
	Attempts      int
	PaymentID     string
	Subscription  string
	FailureCause  string
	ReasonCode    string
	Description   string
	ChargeDate    string
	AuditTrail    []audit.Record
	OpenProblems  []ledger.Exception
	AuditVerified bool
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
		CustomerID: col.CustomerID, Kind: col.Kind, AmountMinor: col.AmountMinor, Currency: col.Currency, State: col.State,
		Attempts: col.Attempts, PaymentID: col.GCPaymentID, Subscription: col.GCSubscription, FailureCause: col.FailureCause,
		ReasonCode: col.FailureReasonCode, Description: col.FailureDescription,
	}
	if col.ChargeDate.Year() > 1 {
		out.ChargeDate = col.ChargeDate.Format(time.DateOnly)
	}
	if out.AuditTrail, err = audit.List(ctx, d.db, "collection", col.AggregateID()); err != nil {
		return out, err
	}
	out.AuditVerified = audit.Verify(ctx, d.db, "collection", col.AggregateID()) == nil
	all, err := d.ledger.Exceptions(ctx, "open")
	if err != nil {
		return out, err
	}
	for _, e := range all {
		if e.AggregateID == erpConnection+":"+company+":"+invoiceID || e.AggregateID == col.AggregateID() {
			out.OpenProblems = append(out.OpenProblems, e)
		}
	}
	return out, nil
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
	How       string // "retry" (the failed payment resubmitted) or "new payment"
	PaymentID string
	Attempt   int
}

// ErrNotReplayable is returned for a collection that has not failed.
var ErrNotReplayable = errors.New("collection cannot be replayed")

// Replay collects a failed, cancelled or refused collection again. A failed
// payment is retried at GoCardless when it allows; otherwise (cancelled,
// refused at creation, retry refused) a new payment is created under the
// next attempt's key, so replaying twice by accident still makes one
// payment per attempt. The collection's open exceptions are marked
// replayed.
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
	var res Replayed
	err = d.ledger.Tx(ctx, func(tx pgx.Tx) error {
		col, err := ledger.LockCollection(ctx, tx, key)
		if err != nil {
			return fmt.Errorf("collection %s/%s/%s: %w", erpConnection, company, invoiceID, err)
		}
		if col.State != "failed" && col.State != "cancelled" && col.State != "exception" || col.Kind != "payment" {
			return fmt.Errorf("%w: it is a %s in state %s", ErrNotReplayable, col.Kind, col.State)
		}
		after := col
		after.Attempts = col.Attempts + 1
		after.FailureCause, after.FailureReasonCode, after.FailureDescription = "", "", ""
		if col.State == "failed" && col.GCPaymentID != "" {
			p, err := route.Client.RetryPayment(ctx, fmt.Sprintf("%s:retry:%d", col.IdempotencyKey, after.Attempts), col.GCPaymentID, gocardless.RetryParams{})
			if err == nil {
				after.State, after.PostedOutcomes = "pending_submission", nil
				res = Replayed{How: "retry", PaymentID: p.ID, Attempt: after.Attempts}
				return ledger.SaveCollection(ctx, tx, col, after, "collection.replayed", actor+": payment "+p.ID+" retried")
			}
			if gocardless.Temporary(err) {
				return err
			}
			// GoCardless will not retry it (limit reached, mandate changed):
			// a new payment instead.
		}
		customer, err := d.ledger.Customer(ctx, ledger.CustomerKey{ERP: key.ERP, ConnectionID: key.ConnectionID, Company: company, CustomerID: col.CustomerID})
		if err != nil {
			return fmt.Errorf("customer %s: %w", col.CustomerID, err)
		}
		if !customer.MandateUsable() {
			return fmt.Errorf("%w: customer %s's mandate is %q", ErrNotReplayable, col.CustomerID, customer.MandateStatus)
		}
		after.IdempotencyKey = ledger.PaymentKey(key, after.Attempts)
		pp := gocardless.PaymentParams{Amount: col.AmountMinor, Currency: col.Currency, Reference: col.Reference,
			Description: "Invoice " + col.InvoiceNo,
			Metadata:    map[string]string{"erp_connection": erpConnection, "company": company, "invoice_id": invoiceID}}
		pp.Links.Mandate = customer.GCMandateID
		p, _, err := route.Client.CreatePayment(ctx, after.IdempotencyKey, pp)
		if err != nil {
			return fmt.Errorf("new payment: %w", err)
		}
		after.GCPaymentID, after.GCMandateID, after.State = p.ID, customer.GCMandateID, p.Status
		after.LastEventAt, after.PostedOutcomes = time.Time{}, nil // the new payment's story starts afresh
		if d, err := time.Parse(time.DateOnly, p.ChargeDate); err == nil {
			after.ChargeDate = d
		}
		res = Replayed{How: "new payment", PaymentID: p.ID, Attempt: after.Attempts}
		return ledger.SaveCollection(ctx, tx, col, after, "collection.replayed", actor+": new payment "+p.ID)
	})
	if err != nil {
		return res, err
	}
	return res, d.markReplayed(ctx, actor, res, erpConnection+":"+company+":"+invoiceID, fmt.Sprintf("%s:%d:%s:%s", key.ERP, key.ConnectionID, company, invoiceID))
}

// markReplayed closes the open exceptions of a collection, known under its
// ERP name (invalid inputs) or its ledger id (refused postings).
func (d *Desk) markReplayed(ctx context.Context, actor string, res Replayed, aggregateIDs ...string) error {
	open, err := d.ledger.Exceptions(ctx, "open")
	if err != nil {
		return err
	}
	return d.ledger.Tx(ctx, func(tx pgx.Tx) error {
		for _, e := range open {
			if slices.Contains(aggregateIDs, e.AggregateID) {
				if err := ledger.SetExceptionStatus(ctx, tx, e.ID, "replayed", actor, fmt.Sprintf("%s, payment %s", res.How, res.PaymentID)); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// EscalateCollection escalates the open exceptions of a collection; with
// none open, it opens one on the operator's word and escalates it, so the
// hand-over is recorded either way. It returns the exceptions escalated.
func (d *Desk) EscalateCollection(ctx context.Context, erpConnection, company, invoiceID, actor, note string) ([]int64, error) {
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
			var id int64
			if err := tx.QueryRow(ctx, `INSERT INTO exceptions (kind, aggregate_type, aggregate_id, reason, detail)
				VALUES ('operator_escalation', 'invoice', $1, $2, '{}') RETURNING id`,
				erpConnection+":"+company+":"+invoiceID, note).Scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		for _, id := range ids {
			if err := ledger.SetExceptionStatus(ctx, tx, id, "escalated", actor, note); err != nil {
				return err
			}
		}
		return nil
	})
	return ids, err
}
