// Package poster implements mlc.v1.ErpPoster: it writes payment, refund and
// mandate outcomes, and GoCardless payouts, into the IFS Cloud or JD Edwards
// connection the request names, exactly once per outcome id (payout id).
// Amounts arrive as integer minor units and reach the ERP as exact decimals
// of their currency, never through a float.
//
// A posting's row in erp_postings is claimed with a lease before the ERP is
// called and recorded after (claim.go), never locked across the calls: a
// repeated post of one outcome writes to the ERP once and gets the same
// reference, a concurrent one is told to retry (ABORTED); the ERP writers
// are themselves idempotent by outcome id, which covers a crash between the
// ERP's answer and the record. Errors carry the gRPC codes the contract
// promises.
package poster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ml-connector/ml-connector/connectors/ifscloud"
	"github.com/ml-connector/ml-connector/connectors/jde"
	"github.com/ml-connector/ml-connector/platform/audit"
	"github.com/ml-connector/ml-connector/platform/breaker"
	"github.com/ml-connector/ml-connector/platform/connections"
	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
)

// Actor names erp-poster in the audit log.
const Actor = "erp-poster"

var errInvalid = errors.New("invalid outcome")

// Server is the ErpPoster service.
type Server struct {
	mlcv1.UnimplementedErpPosterServer
	db      *pgxpool.Pool
	writers *Writers
	log     *slog.Logger
}

// New returns the service.
func New(db *pgxpool.Pool, writers *Writers, log *slog.Logger) *Server {
	return &Server{db: db, writers: writers, log: log}
}

// request is what every rpc has in common.
type request struct {
	outcomeID string
	ref       *mlcv1.ErpRef
	invoiceID string
	kind      string
}

func (r request) validate() error {
	switch {
	case r.outcomeID == "":
		return errors.New("outcome.outcome_id is required")
	case r.ref.GetConnection() == "" || r.ref.GetCompany() == "":
		return errors.New("outcome.erp needs connection and company")
	case r.ref.GetErp() != mlcv1.Erp_ERP_IFS && r.ref.GetErp() != mlcv1.Erp_ERP_JDE:
		return errors.New("outcome.erp.erp must be ERP_IFS or ERP_JDE")
	}
	return nil
}

func (r request) erpKind() connections.Kind {
	if r.ref.GetErp() == mlcv1.Erp_ERP_JDE {
		return connections.KindJDE
	}
	return connections.KindIFS
}

// PostPaymentOutcome implements mlcv1.ErpPosterServer.
func (s *Server) PostPaymentOutcome(ctx context.Context, in *mlcv1.PostPaymentOutcomeRequest) (*mlcv1.PostPaymentOutcomeResponse, error) {
	o := in.GetOutcome()
	req := request{outcomeID: o.GetOutcomeId(), ref: o.GetErp(), invoiceID: o.GetInvoice().GetInvoiceId(), kind: "payment_" + kindName(o.GetKind().String())}
	if o.GetInvoice().GetInvoiceId() == "" {
		return nil, status.Error(codes.InvalidArgument, "outcome.invoice.invoice_id is required")
	}
	ref, already, at, err := s.post(ctx, req, func(ctx context.Context, w erpWriter) (posting, error) { return w.payment(ctx, o) })
	if err != nil {
		return nil, err
	}
	return &mlcv1.PostPaymentOutcomeResponse{ErpReference: ref, AlreadyPosted: already, PostedAt: timestamppb.New(at)}, nil
}

// PostRefundOutcome implements mlcv1.ErpPosterServer.
func (s *Server) PostRefundOutcome(ctx context.Context, in *mlcv1.PostRefundOutcomeRequest) (*mlcv1.PostRefundOutcomeResponse, error) {
	o := in.GetOutcome()
	req := request{outcomeID: o.GetOutcomeId(), ref: o.GetErp(), invoiceID: o.GetInvoice().GetInvoiceId(), kind: "refund_" + kindName(o.GetKind().String())}
	if o.GetRefundId() == "" {
		return nil, status.Error(codes.InvalidArgument, "outcome.refund_id is required")
	}
	ref, already, at, err := s.post(ctx, req, func(ctx context.Context, w erpWriter) (posting, error) { return w.refund(ctx, o) })
	if err != nil {
		return nil, err
	}
	return &mlcv1.PostRefundOutcomeResponse{ErpReference: ref, AlreadyPosted: already, PostedAt: timestamppb.New(at)}, nil
}

// PostMandateStatus implements mlcv1.ErpPosterServer.
func (s *Server) PostMandateStatus(ctx context.Context, in *mlcv1.PostMandateStatusRequest) (*mlcv1.PostMandateStatusResponse, error) {
	o := in.GetOutcome()
	req := request{outcomeID: o.GetOutcomeId(), ref: o.GetErp(), kind: "mandate_" + kindName(o.GetStatus().String())}
	if o.GetCustomerId() == "" || o.GetMandateId() == "" {
		return nil, status.Error(codes.InvalidArgument, "outcome.customer_id and outcome.mandate_id are required")
	}
	ref, already, at, err := s.post(ctx, req, func(ctx context.Context, w erpWriter) (posting, error) { return w.mandate(ctx, o) })
	if err != nil {
		return nil, err
	}
	return &mlcv1.PostMandateStatusResponse{ErpReference: ref, AlreadyPosted: already, PostedAt: timestamppb.New(at)}, nil
}

// kindName turns PAYMENT_OUTCOME_KIND_PAID_OUT into paid_out.
func kindName(enum string) string {
	for _, prefix := range []string{"PAYMENT_OUTCOME_KIND_", "REFUND_OUTCOME_KIND_", "MANDATE_STATUS_"} {
		if len(enum) > len(prefix) && enum[:len(prefix)] == prefix {
			enum = enum[len(prefix):]
		}
	}
	b := []byte(enum)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// post runs write once per outcome id and answers with the ERP's reference
// (claim.go: claim, write, record; no lock held across the ERP calls).
func (s *Server) post(ctx context.Context, req request, write func(context.Context, erpWriter) (posting, error)) (ref string, already bool, at time.Time, err error) {
	if err := req.validate(); err != nil {
		return "", false, at, status.Error(codes.InvalidArgument, err.Error())
	}
	w, conn, err := s.writers.For(ctx, req.ref.GetConnection(), req.erpKind())
	if err != nil {
		return "", false, at, toStatus(err)
	}
	c, err := s.claim(ctx, postingRow{key: req.outcomeID, conn: conn, company: req.ref.GetCompany(), invoiceID: req.invoiceID, kind: req.kind})
	switch {
	case err != nil:
		return "", false, at, toStatus(err)
	case c.posted:
		return c.ref, true, c.at, nil
	case !c.mine:
		return "", false, at, errBusy("outcome " + req.outcomeID)
	}
	var p posting
	if err := s.write(ctx, req.outcomeID, c, func(ctx context.Context) (err error) { p, err = write(ctx, w); return err }); err != nil {
		s.recordFailure(ctx, req.outcomeID, c, err)
		s.log.WarnContext(ctx, "posting failed", "outcome", req.outcomeID, "connection", conn.Name, "error", err)
		return "", false, at, toStatus(err)
	}
	ref, at = p.Reference, postedAt(p.PostedAt)
	if p.Nothing {
		ref = "none"
	}
	err = s.recordPosted(ctx, req.outcomeID, ref, at, audit.Entry{
		AggregateType: "erp_posting", AggregateID: req.outcomeID, Actor: Actor, Action: "posting." + req.kind,
		Payload: map[string]any{"connection": conn.Name, "company": req.ref.GetCompany(), "invoice": req.invoiceID,
			"erp_reference": ref, "nothing_to_post": p.Nothing},
	})
	if err != nil {
		return "", false, at, toStatus(err)
	}
	return ref, false, at, nil
}

// toStatus maps an error to the gRPC codes of the contract.
func toStatus(err error) error {
	code := codes.Unknown
	switch {
	case errors.Is(err, errLeaseLost):
		return mlcv1.PostingInProgress(fmt.Sprint(err)) // another call took it over
	case errors.Is(err, errBadSettings):
		code = codes.FailedPrecondition
	case errors.Is(err, errInvalid), errors.Is(err, ifscloud.ErrInvalid), errors.Is(err, jde.ErrInvalid):
		code = codes.InvalidArgument
	case errors.Is(err, errUnknownConnection), errors.Is(err, ifscloud.ErrNotFound), errors.Is(err, jde.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, ifscloud.ErrConflict):
		code = codes.Aborted // a race lost: retried with back-off, not at once
	case errors.Is(err, ifscloud.ErrNoFeeAccount), errors.Is(err, jde.ErrNoPayoutAccount):
		code = codes.FailedPrecondition
	case errors.Is(err, ifscloud.ErrUnavailable), errors.Is(err, jde.ErrUnavailable), breaker.IsOpen(err):
		code = codes.Unavailable
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	}
	return status.Error(code, fmt.Sprint(err))
}
