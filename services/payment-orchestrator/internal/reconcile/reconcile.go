// Package reconcile applies GoCardless events to the ledger and tells the
// ERP what it must know. Events arrive duplicated, late and out of order
// (webhooks are retried, the /events catch-up re-reads them), so each is
// applied at most once (processed_events, in the same transaction as its
// effect) and only if it is newer than the last event applied to its
// payment, refund or mandate; an older one changes nothing.
//
// Outside calls never run inside that transaction. What an event needs
// from GoCardless (a payment the event alone cannot place, a mandate's
// next charge date) is fetched before it; the outcomes for the ERP are
// queued in it, with deterministic outcome ids, and posted to erp-poster
// after it commits. The message is acknowledged only once its outcomes
// are posted: a crash in between redelivers it, and the redelivery, which
// finds the event already applied, posts what is still queued. An outcome
// is never lost, erp-poster's idempotency by outcome id makes a repeat
// harmless, and each aggregate's outcomes are posted in the order queued.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/connectors/gocardless/gcmsg"
	"github.com/ml-connector/ml-connector/platform/bus"
	"github.com/ml-connector/ml-connector/platform/connections"
	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/accounts"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/ledger"
)

// Poster writes outcomes into the ERP; mlcv1.ErpPosterClient is one.
type Poster interface {
	PostPaymentOutcome(ctx context.Context, in *mlcv1.PostPaymentOutcomeRequest, opts ...grpc.CallOption) (*mlcv1.PostPaymentOutcomeResponse, error)
	PostRefundOutcome(ctx context.Context, in *mlcv1.PostRefundOutcomeRequest, opts ...grpc.CallOption) (*mlcv1.PostRefundOutcomeResponse, error)
	PostMandateStatus(ctx context.Context, in *mlcv1.PostMandateStatusRequest, opts ...grpc.CallOption) (*mlcv1.PostMandateStatusResponse, error)
	PostPayout(ctx context.Context, in *mlcv1.PostPayoutRequest, opts ...grpc.CallOption) (*mlcv1.PostPayoutResponse, error)
}

// Reconciler handles the messages of MLC_GC.
type Reconciler struct {
	ledger *ledger.Ledger
	dir    *accounts.Directory
	poster Poster
	log    *slog.Logger
	// PostTimeout bounds one call to erp-poster.
	PostTimeout time.Duration
	// MaxPayoutItems bounds the items read for one payout; a payout with
	// more is an exception. Zero means DefaultMaxPayoutItems.
	MaxPayoutItems int
	// NotRecordedWait is the pause before the first retry of an event
	// about an object of ours the ledger does not hold yet (see
	// errNotRecordedYet); later retries follow the consumer's back-off.
	NotRecordedWait time.Duration
	// BusyWait bounds how long a handler waits, posting again, for an
	// outcome erp-poster is posting for another call (ABORTED) before it
	// leaves the event to the consumer's back-off (see postOnce).
	BusyWait time.Duration
}

// New returns a reconciler.
func New(l *ledger.Ledger, dir *accounts.Directory, poster Poster, log *slog.Logger) *Reconciler {
	return &Reconciler{ledger: l, dir: dir, poster: poster, log: log, PostTimeout: 15 * time.Second, NotRecordedWait: 2 * time.Second,
		BusyWait: 5 * time.Second}
}

// event is a decoded GoCardless event with its time.
type event struct {
	*mlcv1.GoCardlessEvent
	at time.Time
}

// Handle is the bus handler for mlc.gc.<resource_type>.<action>.
func (r *Reconciler) Handle(ctx context.Context, d *bus.Delivery) error {
	err := r.handle(ctx, d)
	if errors.Is(err, errNotRecordedYet) && d.Deliveries <= 1 {
		return bus.RetryAfter(r.NotRecordedWait, err)
	}
	if busy := (*ledger.BusyError)(nil); errors.As(err, &busy) {
		// Another event's work holds the aggregate (a payout's fetch):
		// wait for it, and for its lease to run out if its holder died.
		return bus.RetryAfter(busy.Wait(d.Deliveries), err)
	}
	return err
}

// errNotRecordedYet: the event is about an object of ours (its metadata
// names the ERP customer) that the ledger does not hold yet.
//
// Usually the transaction recording it is about to commit, so the first
// retry comes after Reconciler.NotRecordedWait. Later retries follow the consumer's
// back-off, like any failed message: often what records the object is
// another event (a billing request's fulfilled event links the mandate
// its mandate events are about), and that event may itself be retried on
// that back-off (GoCardless answering 5xx or 429 to the mandate read it
// needs), or come late through the /events catch-up after its webhook was
// lost. A fixed 2 s gave up after (MAX_DELIVER - 1) × 2 s, 38 s at the
// default 20 and 8 s at 5, so mandate events were dead-lettered under the
// demo's chaos while the fulfilled event they waited for was still being
// retried (issue #17).
var errNotRecordedYet = errors.New("not yet recorded")

func (r *Reconciler) handle(ctx context.Context, d *bus.Delivery) error {
	var m mlcv1.GoCardlessEvent
	if err := proto.Unmarshal(d.Data, &m); err != nil {
		return bus.Poison(fmt.Errorf("undecodable %s: %w", d.Subject, err))
	}
	if m.GetSchemaVersion() != gcmsg.SchemaVersion {
		return bus.Poison(fmt.Errorf("%s: schema version %d not understood", d.Subject, m.GetSchemaVersion()))
	}
	if m.GetEventId() == "" {
		return bus.Poison(fmt.Errorf("%s: event without id", d.Subject))
	}
	ev := event{GoCardlessEvent: &m, at: m.GetCreatedAt().AsTime()}
	switch m.GetResourceType() {
	case "billing_requests":
		return r.billingRequest(ctx, ev) // reads GoCardless before its transaction
	case "payouts":
		return r.payoutEvent(ctx, ev) // the same, under a lease
	}
	// What GoCardless must tell first, asked before the transaction.
	var f facts
	var err error
	switch m.GetResourceType() {
	case "payments":
		f, err = r.paymentFacts(ctx, ev)
	case "mandates":
		f, err = r.mandateFacts(ctx, ev)
	}
	if err != nil {
		return err
	}
	// The registry, read before the transaction: looked up inside it, a
	// cache miss would wait for a second pooled connection.
	if f.reg, err = r.dir.Snapshot(ctx); err != nil {
		return err
	}
	err = r.ledger.Tx(ctx, func(tx pgx.Tx) error {
		fresh, err := ledger.MarkProcessed(ctx, tx, "gocardless", m.GetEventId())
		if err != nil || !fresh {
			return err
		}
		switch m.GetResourceType() {
		case "payments":
			return r.payment(ctx, tx, ev, f)
		case "refunds":
			return r.refund(ctx, tx, ev, f)
		case "mandates":
			return r.mandate(ctx, tx, ev, f)
		case "subscriptions":
			return r.subscription(ctx, tx, ev)
		}
		return r.ignore(ctx, tx, ev, "", "resource type "+m.GetResourceType()+" carries nothing the ledger or the ERP needs")
	})
	if err != nil {
		return err
	}
	return r.flush(ctx, m.GetEventId())
}

// facts are what GoCardless said about an event's object before the
// event was applied.
type facts struct {
	payment        *gocardless.Payment // when the event alone cannot place its payment
	notOurs        bool
	nextChargeDate time.Time
	reg            *accounts.Snapshot
}

// queue queues an outcome for the ERP in tx; flush posts it.
func queue(ctx context.Context, tx pgx.Tx, ev event, aggType, aggID, kind, outcomeID string, m proto.Message) error {
	data, err := proto.Marshal(m)
	if err != nil {
		return fmt.Errorf("outcome %s: %w", outcomeID, err)
	}
	return ledger.QueueOutcome(ctx, tx, ledger.PendingOutcome{AggregateType: aggType, AggregateID: aggID,
		EventID: ev.GetEventId(), OutcomeID: outcomeID, Kind: kind, Outcome: data})
}

// flush posts the outcomes an event queued, with those queued before them
// for the same aggregates, in order, with no transaction open.
func (r *Reconciler) flush(ctx context.Context, eventID string) error {
	pending, err := r.ledger.EventOutcomes(ctx, eventID)
	if err != nil {
		return err
	}
	for _, o := range pending {
		// Stop at the first failure: a later outcome must not reach the
		// ERP before an earlier one.
		if err := r.postOnce(ctx, o); err != nil {
			return err
		}
	}
	return nil
}

// postOnce posts o, waiting while erp-poster answers that another call is
// posting it (ABORTED with POSTING_IN_PROGRESS; a plain ABORTED, an ERP
// race erp-poster lost, is left to the consumer's back-off). That call is usually this aggregate's previous
// event's handler, still writing the outcome this event's flush must post
// first (a payment's confirmation when its paid_out arrives): it finishes
// in moments, and the repeat is then answered with the posted reference.
// Left to the consumer's back-off (5 s at first), the event waited
// seconds for what took milliseconds. The wait holds no transaction, lock
// or connection, and is bounded by BusyWait, after which the event is
// retried as any failure is. A payout is not waited for: its deposit is
// written for minutes and stays queued (errPostingInProgress).
func (r *Reconciler) postOnce(ctx context.Context, o ledger.PendingOutcome) error {
	deadline := time.Now().Add(r.BusyWait)
	pause := 10 * time.Millisecond
	for {
		err := r.post(ctx, o)
		if err == nil || o.Kind == "payout" || !mlcv1.IsPostingInProgress(err) || time.Now().Add(pause).After(deadline) {
			return err
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		pause = min(2*pause, 500*time.Millisecond)
	}
}

// post sends one queued outcome to erp-poster and records the answer.
func (r *Reconciler) post(ctx context.Context, o ledger.PendingOutcome) error {
	pctx, cancel := context.WithTimeout(ctx, r.PostTimeout)
	defer cancel()
	var ref string
	var err error
	switch o.Kind {
	case "payment":
		var m mlcv1.PaymentOutcome
		if err = proto.Unmarshal(o.Outcome, &m); err == nil {
			var res *mlcv1.PostPaymentOutcomeResponse
			res, err = r.poster.PostPaymentOutcome(pctx, &mlcv1.PostPaymentOutcomeRequest{Outcome: &m})
			ref = res.GetErpReference()
		}
	case "refund":
		var m mlcv1.RefundOutcome
		if err = proto.Unmarshal(o.Outcome, &m); err == nil {
			var res *mlcv1.PostRefundOutcomeResponse
			res, err = r.poster.PostRefundOutcome(pctx, &mlcv1.PostRefundOutcomeRequest{Outcome: &m})
			ref = res.GetErpReference()
		}
	case "mandate":
		var m mlcv1.MandateOutcome
		if err = proto.Unmarshal(o.Outcome, &m); err == nil {
			var res *mlcv1.PostMandateStatusResponse
			res, err = r.poster.PostMandateStatus(pctx, &mlcv1.PostMandateStatusRequest{Outcome: &m})
			ref = res.GetErpReference()
		}
	case "payout":
		var m mlcv1.PostPayoutRequest
		if err = proto.Unmarshal(o.Outcome, &m); err == nil {
			var res *mlcv1.PostPayoutResponse
			res, err = r.poster.PostPayout(pctx, &m)
			ref = res.GetErpReference()
		}
	default:
		err = fmt.Errorf("outcome %s of unknown kind %q", o.OutcomeID, o.Kind)
	}
	posted := r.ledger.OutcomePosted
	if o.Kind == "payout" {
		posted = r.ledger.PayoutOutcomePosted // the payout's state moves with its deposits
	}
	if err == nil {
		return posted(ctx, o, ref, nil)
	}
	if o.Kind == "payout" && (status.Code(err) == codes.Aborted || status.Code(err) == codes.DeadlineExceeded) {
		// erp-poster writes a claimed payout to its end, however long the
		// caller waits (thousands of lines take many minutes): ABORTED is
		// another call holding the claim, DEADLINE_EXCEEDED this call giving
		// up first. Neither is a failure; the deposit stays queued.
		return fmt.Errorf("post outcome %s: %w: %w", o.OutcomeID, errPostingInProgress, err)
	}
	switch status.Code(err) {
	case codes.InvalidArgument, codes.NotFound, codes.FailedPrecondition:
		// Refused for good: an exception, so that the event is not
		// retried forever.
		r.log.ErrorContext(ctx, "erp refused outcome", "outcome", o.OutcomeID, "error", err)
		return posted(ctx, o, "", &ledger.Exception{
			Kind: "erp_posting_refused", AggregateType: o.AggregateType, AggregateID: o.AggregateID,
			Reason: status.Convert(err).Message(), Detail: map[string]any{"outcome_id": o.OutcomeID, "code": status.Code(err).String()},
			DedupKey: "posting:" + o.OutcomeID,
		})
	}
	return fmt.Errorf("post outcome %s: %w", o.OutcomeID, err)
}

// newer reports whether an event at `at` moving to a state of rank `rank`
// supersedes what was last applied at `last` with rank `lastRank`.
func newer(at time.Time, rank int, last time.Time, lastRank int) bool {
	return at.After(last) || (at.Equal(last) && rank > lastRank)
}

// erpRef builds the ERP reference of a ledger row.
func erpRef(reg *accounts.Snapshot, erp string, connectionID int64, company string) (*mlcv1.ErpRef, error) {
	conn, ok := reg.ByID(connectionID)
	if !ok || conn.Kind != connections.Kind(erp) {
		return nil, fmt.Errorf("%s connection %d is not registered", erp, connectionID)
	}
	name := conn.Name
	e := mlcv1.Erp_ERP_IFS
	if erp == "jde" {
		e = mlcv1.Erp_ERP_JDE
	}
	return &mlcv1.ErpRef{Erp: e, Connection: name, Company: company}, nil
}

func ts(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

var errNotOurs = errors.New("not an ml-connector object")

// errPostingInProgress: erp-poster is still writing a payout's deposit.
// The deposit stays queued and is posted again by the next flush of the
// payout (FlushPayouts), not by redelivering the event: every redelivery
// would find it still in progress and a large payout would use up the
// message's deliveries and be dead-lettered while being written.
var errPostingInProgress = errors.New("posting in progress")
