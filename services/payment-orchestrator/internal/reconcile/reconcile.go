// Package reconcile applies GoCardless events to the ledger and tells the
// ERP what it must know. Events arrive duplicated, late and out of order
// (webhooks are retried, the /events catch-up re-reads them), so each is
// applied at most once (processed_events, in the same transaction as its
// effect) and only if it is newer than the last event applied to its
// payment, refund or mandate; an older one changes nothing. The aggregate's
// row stays locked while erp-poster writes the outcome, and the message is
// acknowledged only after the transaction commits: an outcome is never
// lost, and erp-poster's idempotency by outcome id makes a repeat harmless.
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

	"github.com/ml-connector/ml-connector/connectors/gocardless/gcmsg"
	"github.com/ml-connector/ml-connector/platform/bus"
	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/accounts"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/ledger"
)

// Poster writes outcomes into the ERP; mlcv1.ErpPosterClient is one.
type Poster interface {
	PostPaymentOutcome(ctx context.Context, in *mlcv1.PostPaymentOutcomeRequest, opts ...grpc.CallOption) (*mlcv1.PostPaymentOutcomeResponse, error)
	PostRefundOutcome(ctx context.Context, in *mlcv1.PostRefundOutcomeRequest, opts ...grpc.CallOption) (*mlcv1.PostRefundOutcomeResponse, error)
	PostMandateStatus(ctx context.Context, in *mlcv1.PostMandateStatusRequest, opts ...grpc.CallOption) (*mlcv1.PostMandateStatusResponse, error)
}

// Reconciler handles the messages of MLC_GC.
type Reconciler struct {
	ledger *ledger.Ledger
	dir    *accounts.Directory
	poster Poster
	log    *slog.Logger
	// PostTimeout bounds one call to erp-poster.
	PostTimeout time.Duration
}

// New returns a reconciler.
func New(l *ledger.Ledger, dir *accounts.Directory, poster Poster, log *slog.Logger) *Reconciler {
	return &Reconciler{ledger: l, dir: dir, poster: poster, log: log, PostTimeout: 15 * time.Second}
}

// event is a decoded GoCardless event with its time.
type event struct {
	*mlcv1.GoCardlessEvent
	at time.Time
}

// Handle is the bus handler for mlc.gc.<resource_type>.<action>.
func (r *Reconciler) Handle(ctx context.Context, d *bus.Delivery) error {
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
	return r.ledger.Tx(ctx, func(tx pgx.Tx) error {
		fresh, err := ledger.MarkProcessed(ctx, tx, "gocardless", m.GetEventId())
		if err != nil || !fresh {
			return err
		}
		switch m.GetResourceType() {
		case "payments":
			return r.payment(ctx, tx, ev)
		case "refunds":
			return r.refund(ctx, tx, ev)
		case "mandates":
			return r.mandate(ctx, tx, ev)
		case "subscriptions":
			return r.subscription(ctx, tx, ev)
		}
		return r.ignore(ctx, tx, ev, "", "resource type "+m.GetResourceType()+" carries nothing the ledger or the ERP needs")
	})
}

// newer reports whether an event at `at` moving to a state of rank `rank`
// supersedes what was last applied at `last` with rank `lastRank`.
func newer(at time.Time, rank int, last time.Time, lastRank int) bool {
	return at.After(last) || (at.Equal(last) && rank > lastRank)
}

// erpRef builds the ERP reference of a ledger row.
func erpRef(ctx context.Context, tx pgx.Tx, erp string, connectionID int64, company string) (*mlcv1.ErpRef, error) {
	name, err := ledger.ConnectionName(ctx, tx, connectionID)
	if err != nil {
		return nil, fmt.Errorf("erp connection %d: %w", connectionID, err)
	}
	e := mlcv1.Erp_ERP_IFS
	if erp == "jde" {
		e = mlcv1.Erp_ERP_JDE
	}
	return &mlcv1.ErpRef{Erp: e, Connection: name, Company: company}, nil
}

// posted turns erp-poster's answer into the handler's: nil when written
// (or written before), a retryable error when erp-poster or the ERP is
// unavailable, and an exception (recorded in tx) when the ERP refuses the
// outcome for good, so the event is applied without being retried forever.
func (r *Reconciler) posted(ctx context.Context, tx pgx.Tx, outcomeID, aggType, aggID string, err error) error {
	if err == nil {
		return nil
	}
	switch status.Code(err) {
	case codes.InvalidArgument, codes.NotFound, codes.FailedPrecondition:
		r.log.ErrorContext(ctx, "erp refused outcome", "outcome", outcomeID, "error", err)
		_, xerr := ledger.RaiseException(ctx, tx, ledger.Exception{
			Kind: "erp_posting_refused", AggregateType: aggType, AggregateID: aggID,
			Reason: status.Convert(err).Message(), Detail: map[string]any{"outcome_id": outcomeID, "code": status.Code(err).String()},
			DedupKey: "posting:" + outcomeID,
		})
		return xerr
	}
	return fmt.Errorf("post outcome %s: %w", outcomeID, err)
}

func ts(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

var errNotOurs = errors.New("not an ml-connector object")
