package poster

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ml-connector/ml-connector/platform/audit"
	"github.com/ml-connector/ml-connector/platform/money"
	"github.com/ml-connector/ml-connector/platform/payoutline"
	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
)

// Limits on a request: its lines and fees (mlcv1.MaxPayoutLines and
// MaxPayoutFees, which the orchestrator checks before queueing), and
// maxMinor, which bounds every amount so that sums cannot overflow int64.
const (
	maxPayoutLines = mlcv1.MaxPayoutLines
	maxPayoutFees  = mlcv1.MaxPayoutFees
	maxMinor       = int64(1) << 50
)

// payoutWriteTimeout bounds one payout's posting, which outlives its
// caller's deadline: 20,000 lines at IFS's default budget of 1,000
// requests a minute take about 80 minutes; a larger payout is resumed by
// the next call.
const payoutWriteTimeout = 90 * time.Minute

// feeSeparator joins the deposit's and the fee entry's references in
// erp_postings.erp_reference (for IFS they are the same mixed payment),
// so a repeat answers both without asking the ERP.
const feeSeparator = " | fees "

// payoutPosting is what an ERP answered for one payout.
type payoutPosting struct {
	posting
	FeeReference string
}

// validatePayout checks a request before anything is claimed or written.
func validatePayout(in *mlcv1.PostPayoutRequest) error {
	req := request{outcomeID: in.GetPayoutId(), ref: in.GetErp()}
	if err := req.validate(); err != nil {
		return errors.New(strings.ReplaceAll(strings.ReplaceAll(err.Error(), "outcome.outcome_id", "payout_id"), "outcome.erp", "erp"))
	}
	switch {
	case len(in.GetPayoutId()) > 50 || strings.ContainsAny(in.GetPayoutId(), "/ \t\n"):
		return fmt.Errorf("payout_id %q is not a GoCardless id", in.GetPayoutId())
	case in.GetReference() == "" || len(in.GetReference()) > 140:
		return errors.New("reference (the payout's bank reference) is required, at most 140 characters")
	case len(in.GetLines()) > maxPayoutLines || len(in.GetFees()) > maxPayoutFees:
		return fmt.Errorf("at most %d lines and %d fees per request, got %d and %d", maxPayoutLines, maxPayoutFees, len(in.GetLines()), len(in.GetFees()))
	case len(in.GetLines()) == 0 && len(in.GetFees()) == 0:
		return errors.New("a payout needs at least one line or fee")
	}
	if _, err := time.Parse(time.DateOnly, in.GetArrivalDate()); err != nil {
		return fmt.Errorf("arrival_date %q is not YYYY-MM-DD", in.GetArrivalDate())
	}
	if _, err := money.FromMinor(0, in.GetCurrency()); err != nil {
		return fmt.Errorf("currency: %w", err)
	}
	bounded := func(what string, n int64) error {
		if n > maxMinor || n < -maxMinor {
			return fmt.Errorf("%s %d is out of range", what, n)
		}
		return nil
	}
	if err := errors.Join(bounded("amount_minor", in.GetAmountMinor()), bounded("fees_minor", in.GetFeesMinor())); err != nil {
		return err
	}
	lines := new(big.Int)
	paidOut := make(map[string]bool)
	for i, l := range in.GetLines() {
		// A payment settles its invoice once: a second paid-out line for it
		// would be one receipt in JD Edwards (keyed by payout and payment)
		// and two in IFS. The orchestrator never sends one.
		if l.GetKind() == mlcv1.PayoutLineKind_PAYOUT_LINE_KIND_PAYMENT_PAID_OUT && l.GetPaymentId() != "" {
			if paidOut[l.GetPaymentId()] {
				return fmt.Errorf("lines[%d]: payment %s is paid out by another line of this payout", i, l.GetPaymentId())
			}
			paidOut[l.GetPaymentId()] = true
		}
		switch {
		case l.GetKind() == mlcv1.PayoutLineKind_PAYOUT_LINE_KIND_UNSPECIFIED || lineKinds[l.GetKind()] == "":
			return fmt.Errorf("lines[%d].kind is required", i)
		case l.GetAmountMinor() == 0 || (l.GetAmountMinor() > 0) != lineKinds[l.GetKind()].Credit():
			return fmt.Errorf("lines[%d]: a %s of %d minor units has the wrong sign (credits positive, debits negative)", i, lineKinds[l.GetKind()], l.GetAmountMinor())
		case l.GetCustomerId() == "":
			return fmt.Errorf("lines[%d].customer_id is required", i)
		case l.GetPaymentId() == "" && l.GetRefundId() == "":
			return fmt.Errorf("lines[%d] needs its payment_id or refund_id", i)
		}
		if err := bounded(fmt.Sprintf("lines[%d].amount_minor", i), l.GetAmountMinor()); err != nil {
			return err
		}
		lines.Add(lines, big.NewInt(l.GetAmountMinor()))
	}
	fees := new(big.Int)
	for i, f := range in.GetFees() {
		switch {
		case f.GetKind() == mlcv1.PayoutFeeKind_PAYOUT_FEE_KIND_UNSPECIFIED:
			return fmt.Errorf("fees[%d].kind is required", i)
		case f.GetAmountMinor() == 0:
			return fmt.Errorf("fees[%d].amount_minor must not be zero", i)
		case f.GetTaxMinor() != 0 && ((f.GetTaxMinor() > 0) != (f.GetAmountMinor() > 0) || abs(f.GetTaxMinor()) > abs(f.GetAmountMinor())):
			return fmt.Errorf("fees[%d].tax_minor %d is not part of its amount %d", i, f.GetTaxMinor(), f.GetAmountMinor())
		}
		if err := bounded(fmt.Sprintf("fees[%d].amount_minor", i), f.GetAmountMinor()); err != nil {
			return err
		}
		fees.Add(fees, big.NewInt(f.GetAmountMinor()))
	}
	if fees.Cmp(big.NewInt(in.GetFeesMinor())) != 0 {
		return fmt.Errorf("fees_minor %d is not the sum of the fees, %s", in.GetFeesMinor(), fees)
	}
	if total := new(big.Int).Add(lines, fees); total.Cmp(big.NewInt(in.GetAmountMinor())) != 0 {
		return fmt.Errorf("amount_minor %d is not lines (%s) plus fees (%s); the difference is not absorbed", in.GetAmountMinor(), lines, fees)
	}
	return nil
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

// lineKinds are the connectors' names of the contract's line kinds.
var lineKinds = map[mlcv1.PayoutLineKind]payoutline.Kind{
	mlcv1.PayoutLineKind_PAYOUT_LINE_KIND_PAYMENT_PAID_OUT:      payoutline.PaidOut,
	mlcv1.PayoutLineKind_PAYOUT_LINE_KIND_PAYMENT_FAILED:        payoutline.Failed,
	mlcv1.PayoutLineKind_PAYOUT_LINE_KIND_PAYMENT_CHARGED_BACK:  payoutline.ChargedBack,
	mlcv1.PayoutLineKind_PAYOUT_LINE_KIND_REFUND:                payoutline.Refund,
	mlcv1.PayoutLineKind_PAYOUT_LINE_KIND_REFUND_FUNDS_RETURNED: payoutline.RefundReturned,
}

// feeTotals are the payout's fees and the tax in them.
func feeTotals(in *mlcv1.PostPayoutRequest) (fees, tax int64) {
	for _, f := range in.GetFees() {
		tax += f.GetTaxMinor()
	}
	return in.GetFeesMinor(), tax
}

// PostPayout implements mlcv1.ErpPosterServer.
func (s *Server) PostPayout(ctx context.Context, in *mlcv1.PostPayoutRequest) (*mlcv1.PostPayoutResponse, error) {
	if err := validatePayout(in); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	req := request{outcomeID: in.GetPayoutId(), ref: in.GetErp()}
	w, conn, err := s.writers.For(ctx, req.ref.GetConnection(), req.erpKind())
	if err != nil {
		return nil, toStatus(err)
	}
	key := mlcv1.PayoutKey(in.GetErp(), in.GetPayoutId()) // the orchestrator's deposit id
	c, err := s.claim(ctx, postingRow{key: key, conn: conn, company: in.GetErp().GetCompany(), kind: "payout"})
	switch {
	case err != nil:
		return nil, toStatus(err)
	case c.posted:
		ref, fee := splitReference(c.ref)
		return &mlcv1.PostPayoutResponse{ErpReference: ref, FeeReference: fee, AlreadyPosted: true, PostedAt: timestamppb.New(c.at)}, nil
	case !c.mine:
		return nil, errBusy("payout " + in.GetPayoutId())
	}
	// A large payout is many ERP requests (IFS: about four per line, under
	// the connection's request budget), more than a caller's deadline may
	// allow: once claimed, the posting runs to its end even if the caller
	// gives up, bounded by payoutWriteTimeout. Retries meanwhile are
	// ABORTED (the claim is renewed), then answered already_posted.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), payoutWriteTimeout)
	defer cancel()
	var p payoutPosting
	if err := s.write(ctx, key, c, func(ctx context.Context) (err error) { p, err = w.payout(ctx, in); return err }); err != nil {
		s.recordFailure(ctx, key, c, err)
		s.log.WarnContext(ctx, "payout posting failed", "payout", in.GetPayoutId(), "connection", conn.Name, "error", err)
		return nil, toStatus(err)
	}
	ref, at := p.Reference, postedAt(p.PostedAt)
	if p.Nothing {
		ref = "none"
	}
	stored := ref
	if p.FeeReference != "" {
		stored = ref + feeSeparator + p.FeeReference
	}
	fees, tax := feeTotals(in)
	err = s.recordPosted(ctx, key, stored, at, audit.Entry{
		AggregateType: "erp_posting", AggregateID: key, Actor: Actor, Action: "posting.payout",
		Payload: map[string]any{"connection": conn.Name, "company": in.GetErp().GetCompany(), "payout": in.GetPayoutId(),
			"reference": in.GetReference(), "currency": in.GetCurrency(), "amount_minor": in.GetAmountMinor(),
			"fees_minor": fees, "fee_tax_minor": tax, "lines": len(in.GetLines()),
			"erp_reference": ref, "fee_reference": p.FeeReference, "nothing_to_post": p.Nothing},
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return &mlcv1.PostPayoutResponse{ErpReference: ref, FeeReference: p.FeeReference, PostedAt: timestamppb.New(at)}, nil
}

func splitReference(stored string) (ref, fee string) {
	ref, fee, _ = strings.Cut(stored, feeSeparator)
	return ref, fee
}
