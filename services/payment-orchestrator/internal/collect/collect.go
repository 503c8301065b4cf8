// Package collect turns ERP events into GoCardless objects, exactly once:
// a changed customer becomes (or updates) a GoCardless customer and, when
// it has bank details and no usable mandate, a bank account and mandate
// (a snapshot of the customer published before the one applied, or
// without publish times older by the ERP's updated_at, is ignored);
// an invoice ready for collection becomes one payment (or a subscription
// for recurring payment terms); a refund request becomes a refund.
//
// Every GoCardless create carries an idempotency key derived from the ERP
// identity, committed as an intent before the call (no transaction is open
// during it) and completed after it, so a crash or redelivery at any point
// leads to the same single object; the orchestrator's package doc states
// the invariant. Inputs that can never succeed become exceptions with
// their reason; transient failures are retried.
package collect

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/platform/breaker"
	"github.com/ml-connector/ml-connector/platform/bus"
	"github.com/ml-connector/ml-connector/platform/erpmsg"
	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/accounts"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/ledger"
)

// SchemaVersion is the version of the ERP event messages understood here.
const SchemaVersion = 1

// DefaultWorkers is how many ERP events a replica handles at once. Handlers
// mostly wait, on GoCardless and on the ledger's shared transactions, and
// the more of them wait together the more each transaction serves: 64
// collect about half again as many invoices a second as 16 on two cores
// (docs/benchmarks.md).
const DefaultWorkers = 64

// Collector handles the messages of MLC_ERP.
type Collector struct {
	ledger *ledger.Ledger
	dir    *accounts.Directory
	log    *slog.Logger
	// Now is the clock charge dates are decided by (GoCardless's days).
	Now func() time.Time
	// CustomerWait is how long an invoice that came before its customer's
	// mandate first waits before it is tried again; each further wait
	// doubles, up to maxCustomerWait. With the consumer's MaxDeliver it
	// bounds how long an invoice may precede its customer.
	CustomerWait time.Duration

	// SweepLease is how long this collector stays the one replica that
	// sweeps parked invoices after its last sweep (billingrequests.go);
	// it must outlast the interval between sweeps.
	SweepLease time.Duration

	// sweptTo is the last parked invoice the previous sweep looked at
	// (billingrequests.go).
	sweptTo atomic.Int64
	// holder names this collector in leases it holds alone (the sweep's).
	holder string
}

// New returns a collector.
func New(l *ledger.Ledger, dir *accounts.Directory, log *slog.Logger) *Collector {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	host, _ := os.Hostname()
	return &Collector{ledger: l, dir: dir, log: log, Now: time.Now, CustomerWait: 30 * time.Second, SweepLease: 2 * time.Minute,
		holder: fmt.Sprintf("sweeper:%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b))}
}

// Handle is the bus handler for mlc.erp.<erp>.<company>.<kind>.
func (c *Collector) Handle(ctx context.Context, d *bus.Delivery) error {
	_, _, kind, err := erpmsg.Parse(d.Subject)
	if err != nil {
		return bus.Poison(err)
	}
	switch kind {
	case erpmsg.KindCustomer:
		var m mlcv1.CustomerChanged
		if err = decode(d, &m, m.GetSchemaVersion); err == nil {
			err = c.Customer(ctx, &m, d.Published)
		}
	case erpmsg.KindInvoice:
		var m mlcv1.InvoiceReady
		if err = decode(d, &m, m.GetSchemaVersion); err == nil {
			err = c.Invoice(ctx, &m)
		}
		if errors.Is(err, errAwaitingPayer) {
			err = c.park(ctx, &m) // SweepAwaiting collects it once the payer authorised
		}
		if errors.Is(err, errNoMandateYet) {
			err = bus.RetryAfter(c.customerWait(d.Deliveries), err)
		}
	case erpmsg.KindRefund:
		var m mlcv1.RefundRequested
		if err = decode(d, &m, m.GetSchemaVersion); err == nil {
			err = c.Refund(ctx, &m)
		}
	default:
		err = bus.Poison(fmt.Errorf("unknown ERP event kind %q", kind))
	}
	if busy := (*ledger.BusyError)(nil); errors.As(err, &busy) {
		err = bus.RetryAfter(busy.Wait(d.Deliveries), err)
	}
	return err
}

func decode(d *bus.Delivery, m proto.Message, version func() uint32) error {
	if err := proto.Unmarshal(d.Data, m); err != nil {
		return bus.Poison(fmt.Errorf("undecodable %s: %w", d.Subject, err))
	}
	if v := version(); v != SchemaVersion {
		return bus.Poison(fmt.Errorf("%s: schema version %d not understood (want %d)", d.Subject, v, SchemaVersion))
	}
	return nil
}

// errNoMandateYet: the invoice's customer, or its mandate, has not
// arrived yet. The ERP publishes customers and invoices independently, and
// a customer's alignment takes GoCardless calls, so an invoice often
// overtakes its customer.
var errNoMandateYet = errors.New("no mandate yet")

// maxCustomerWait caps the doubling waits of an invoice for its customer.
const maxCustomerWait = 10 * time.Minute

// customerWait is the pause after delivery n of an invoice still waiting
// for its customer's mandate: CustomerWait, doubled on each delivery up to
// maxCustomerWait. Fixed pauses would let a stall of a few minutes (a
// restart, GoCardless throttling a burst of new customers) use up all of
// the consumer's deliveries and turn good invoices into exceptions; with
// the defaults (30 s, MaxDeliver 20) an invoice may precede its customer
// by more than two hours.
func (c *Collector) customerWait(n uint64) time.Duration {
	wait := c.CustomerWait
	for i := uint64(1); i < n && wait < maxCustomerWait; i++ {
		wait = min(2*wait, maxCustomerWait)
	}
	return wait
}

// erpName is the ledger's name for an ERP.
func erpName(e mlcv1.Erp) (string, error) {
	switch e {
	case mlcv1.Erp_ERP_IFS:
		return "ifs", nil
	case mlcv1.Erp_ERP_JDE:
		return "jde", nil
	}
	return "", fmt.Errorf("unknown erp %v", e)
}

// invalid is an input that can never succeed: it becomes an exception.
type invalid struct {
	kind   string
	reason string
}

func (e *invalid) Error() string { return e.reason }

func invalidf(kind, format string, args ...any) error {
	return &invalid{kind: kind, reason: fmt.Sprintf(format, args...)}
}

// classify turns a GoCardless error into what the handler should do:
// transient errors are retried (after a pause when the breaker is open),
// refusals become exceptions.
func classify(what string, err error) error {
	switch {
	case breaker.IsOpen(err) || errors.Is(err, gocardless.ErrUnavailable):
		return bus.RetryAfter(30*time.Second, fmt.Errorf("%s: %w", what, err))
	case gocardless.Temporary(err) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %w", what, err)
	}
	return &invalid{kind: "gocardless_refused", reason: fmt.Sprintf("%s: %v", what, err)}
}

// settle turns a handler's error into the bus's answer: an invalid input
// is recorded as an exception (once, by dedup key) and acknowledged.
//
// The exception names its aggregate as the ledger does (aggType and the
// key's String, with connection id 0 when the ERP connection is not
// registered), so that the ledger, exceptions, postings and the operator
// know an invoice, refund or customer by one identity; dedup is prefixed
// with it. also, when given, runs in the exception's transaction, told the
// aggregate's id.
func (c *Collector) settle(ctx context.Context, err error, aggType string, key func(erp string, connectionID int64) fmt.Stringer, ref *mlcv1.ErpRef, dedup string, detail map[string]any, also ...func(tx pgx.Tx, aggID string, inv *invalid) error) error {
	var inv *invalid
	if !errors.As(err, &inv) {
		return err
	}
	erp, _ := erpName(ref.GetErp())
	var connID int64
	if conn, err := c.dir.Connection(ctx, ref.GetConnection()); err == nil {
		connID = conn.ID
	}
	aggID := key(erp, connID).String()
	dedup = aggType + ":" + aggID + ":" + dedup
	if errors.Is(err, accounts.ErrNotRoutable) {
		inv.kind = "unroutable"
	}
	c.log.WarnContext(ctx, "input refused", "aggregate", aggType+" "+aggID, "kind", inv.kind, "reason", inv.reason)
	return c.ledger.Tx(ctx, func(tx pgx.Tx) error {
		if _, err := ledger.RaiseException(ctx, tx, ledger.Exception{
			Kind: inv.kind, AggregateType: aggType, AggregateID: aggID, Reason: inv.reason, Detail: detail, DedupKey: dedup,
		}); err != nil {
			return err
		}
		for _, f := range also {
			if err := f(tx, aggID, inv); err != nil {
				return err
			}
		}
		return nil
	})
}

// route resolves who collects for the event's company; an unroutable
// company is an invalid input.
func (c *Collector) route(ctx context.Context, ref *mlcv1.ErpRef) (accounts.Route, string, error) {
	erp, err := erpName(ref.GetErp())
	if err != nil {
		return accounts.Route{}, "", &invalid{kind: "invalid_event", reason: err.Error()}
	}
	r, err := c.dir.Route(ctx, ref.GetConnection(), ref.GetCompany())
	if errors.Is(err, accounts.ErrNotRoutable) {
		return r, erp, &invalid{kind: "unroutable", reason: err.Error()}
	}
	return r, erp, err
}

// invoiceID is the ledger's id of an ERP invoice: the ERP's own id, or for
// ERPs that split a document into pay items under one number (JD Edwards:
// document, type and suffix), all three, so two pay items are two
// collections.
func invoiceID(k *mlcv1.InvoiceKey) string {
	if k.GetDocType() == "" && k.GetSuffix() == "" {
		return k.GetInvoiceId()
	}
	return k.GetInvoiceId() + "/" + k.GetDocType() + "/" + k.GetSuffix()
}
