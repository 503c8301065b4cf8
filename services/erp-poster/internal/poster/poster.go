// Package poster implements mlc.v1.ErpPoster: it writes payment, refund and
// mandate outcomes, and GoCardless payouts, into the IFS Cloud or JD Edwards
// connection the request names, exactly once per outcome id (payout id).
// Amounts arrive as integer minor units and reach the ERP as exact decimals
// of their currency, never through a float.
//
// An outcome's row in erp_postings is locked for the whole write, so
// concurrent or repeated posts of one outcome write to the ERP once and all
// get the same reference; the ERP writers are themselves idempotent by
// outcome id, which covers a crash between the ERP's answer and the row's
// commit. A payout, whose posting is many ERP calls, is claimed with a
// lease instead of a lock held across them (payout.go). Errors carry the
// gRPC codes the contract promises.
package poster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ml-connector/ml-connector/connectors/ifscloud"
	"github.com/ml-connector/ml-connector/connectors/jde"
	"github.com/ml-connector/ml-connector/platform/audit"
	"github.com/ml-connector/ml-connector/platform/breaker"
	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/platform/database"
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

// post runs write once per outcome id and answers with the ERP's reference.
func (s *Server) post(ctx context.Context, req request, write func(context.Context, erpWriter) (posting, error)) (ref string, already bool, at time.Time, err error) {
	if err := req.validate(); err != nil {
		return "", false, at, status.Error(codes.InvalidArgument, err.Error())
	}
	w, conn, err := s.writers.For(ctx, req.ref.GetConnection(), req.erpKind())
	if err != nil {
		return "", false, at, toStatus(err)
	}
	var writeErr error
	err = database.WithTx(ctx, s.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `
			INSERT INTO erp_postings (outcome_id, connection_id, erp, company, invoice_id, kind)
			VALUES ($1, $2, $3, $4, nullif($5, ''), $6) ON CONFLICT (outcome_id) DO NOTHING`,
			req.outcomeID, conn.ID, string(conn.Kind), req.ref.GetCompany(), req.invoiceID, req.kind); err != nil {
			return err
		}
		var state string
		var reference *string
		var postedAt *time.Time
		if err := tx.QueryRow(ctx, `SELECT status, erp_reference, posted_at FROM erp_postings WHERE outcome_id = $1 FOR UPDATE`,
			req.outcomeID).Scan(&state, &reference, &postedAt); err != nil {
			return err
		}
		if state == "posted" {
			already, at = true, *postedAt
			if reference != nil {
				ref = *reference
			}
			return nil
		}
		p, err := write(ctx, w)
		if err != nil {
			writeErr = err
			_, uerr := tx.Exec(ctx, `UPDATE erp_postings SET status = 'failed', attempts = attempts + 1, last_error = $2 WHERE outcome_id = $1`,
				req.outcomeID, err.Error())
			return uerr
		}
		ref, at = p.Reference, p.PostedAt
		if p.Nothing {
			ref = "none"
		}
		if at.IsZero() {
			at = time.Now()
		}
		if _, err := tx.Exec(ctx, `UPDATE erp_postings SET status = 'posted', attempts = attempts + 1, erp_reference = $2,
			posted_at = $3, last_error = NULL WHERE outcome_id = $1`, req.outcomeID, ref, at); err != nil {
			return err
		}
		_, err = audit.Append(ctx, tx, audit.Entry{
			AggregateType: "erp_posting", AggregateID: req.outcomeID, Actor: Actor, Action: "posting." + req.kind,
			Payload: map[string]any{"connection": conn.Name, "company": req.ref.GetCompany(), "invoice": req.invoiceID,
				"erp_reference": ref, "nothing_to_post": p.Nothing},
		})
		return err
	})
	if err != nil {
		return "", false, at, toStatus(err)
	}
	if writeErr != nil {
		s.log.WarnContext(ctx, "posting failed", "outcome", req.outcomeID, "connection", conn.Name, "error", writeErr)
		return "", false, at, toStatus(writeErr)
	}
	return ref, already, at, nil
}

// toStatus maps an error to the gRPC codes of the contract.
func toStatus(err error) error {
	code := codes.Unknown
	switch {
	case errors.Is(err, errBadSettings):
		code = codes.FailedPrecondition
	case errors.Is(err, errInvalid), errors.Is(err, ifscloud.ErrInvalid), errors.Is(err, jde.ErrInvalid):
		code = codes.InvalidArgument
	case errors.Is(err, errUnknownConnection), errors.Is(err, ifscloud.ErrNotFound), errors.Is(err, jde.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, ifscloud.ErrConflict):
		code = codes.Aborted
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
