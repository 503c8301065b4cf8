package poster

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ml-connector/ml-connector/platform/audit"
	"github.com/ml-connector/ml-connector/platform/database"
	"github.com/ml-connector/ml-connector/platform/money"
	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
)

// Payouts are posted without holding a row lock or a transaction across
// the ERP calls, which for a large payout are many: the payout's row in
// erp_postings is claimed in one short transaction (a lease, renewed while
// the writer runs), the writer runs, and the outcome is recorded in
// another. A second call for the same payout while the lease is held gets
// ABORTED ("being posted, retry later"); a lease left by a process that
// died expires after payoutLease, and the next call resumes the posting,
// which the ERP writers make idempotent by payout id.

// payoutLease is how long a claim on a payout lives without renewal;
// payoutRenew is how often the claim is renewed while the writer runs.
const (
	payoutLease = 2 * time.Minute
	payoutRenew = 30 * time.Second
)

// Limits on a request: far above one creditor's daily payout, low enough
// to bound memory and the time a posting takes.
const (
	maxPayoutLines = 20000
	maxPayoutFees  = 20000
	// maxMinor bounds every amount so that sums cannot overflow int64.
	maxMinor = int64(1) << 50
)

// feeSeparator joins the deposit's and the fee entry's references in
// erp_postings.erp_reference (for IFS they are the same mixed payment),
// so a repeat answers both without asking the ERP.
const feeSeparator = " | fees "

// payoutPosting is what an ERP answered for one payout.
type payoutPosting struct {
	posting
	FeeReference string
}

func payoutKey(ref *mlcv1.ErpRef, payoutID string) string {
	return "payout/" + strings.ToLower(strings.TrimPrefix(ref.GetErp().String(), "ERP_")) + "/" + ref.GetConnection() + "/" + ref.GetCompany() + "/" + payoutID
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
	for i, l := range in.GetLines() {
		credit := l.GetKind() == mlcv1.PayoutLineKind_PAYOUT_LINE_KIND_PAYMENT_PAID_OUT || l.GetKind() == mlcv1.PayoutLineKind_PAYOUT_LINE_KIND_REFUND_FUNDS_RETURNED
		switch {
		case l.GetKind() == mlcv1.PayoutLineKind_PAYOUT_LINE_KIND_UNSPECIFIED || lineKinds[l.GetKind()] == "":
			return fmt.Errorf("lines[%d].kind is required", i)
		case l.GetAmountMinor() == 0 || (l.GetAmountMinor() > 0) != credit:
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

var lineKinds = map[mlcv1.PayoutLineKind]string{
	mlcv1.PayoutLineKind_PAYOUT_LINE_KIND_PAYMENT_PAID_OUT:      "payment_paid_out",
	mlcv1.PayoutLineKind_PAYOUT_LINE_KIND_PAYMENT_FAILED:        "payment_failed",
	mlcv1.PayoutLineKind_PAYOUT_LINE_KIND_PAYMENT_CHARGED_BACK:  "payment_charged_back",
	mlcv1.PayoutLineKind_PAYOUT_LINE_KIND_REFUND:                "refund",
	mlcv1.PayoutLineKind_PAYOUT_LINE_KIND_REFUND_FUNDS_RETURNED: "refund_funds_returned",
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
	key := payoutKey(in.GetErp(), in.GetPayoutId())

	// Claim: one short transaction.
	var claimed bool
	var state string
	var reference *string
	var postedAt *time.Time
	err = database.WithTx(ctx, s.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `
			INSERT INTO erp_postings (outcome_id, connection_id, erp, company, kind)
			VALUES ($1, $2, $3, $4, 'payout') ON CONFLICT (outcome_id) DO NOTHING`,
			key, conn.ID, string(conn.Kind), in.GetErp().GetCompany()); err != nil {
			return err
		}
		var attempts int
		err := tx.QueryRow(ctx, `
			UPDATE erp_postings SET status = 'pending', attempts = attempts + 1, last_error = NULL
			WHERE outcome_id = $1 AND status <> 'posted'
			  AND (attempts = 0 OR status = 'failed' OR updated_at < now() - make_interval(secs => $2))
			RETURNING attempts`, key, payoutLease.Seconds()).Scan(&attempts)
		if err == nil {
			claimed = true
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		return tx.QueryRow(ctx, `SELECT status, erp_reference, posted_at FROM erp_postings WHERE outcome_id = $1`, key).
			Scan(&state, &reference, &postedAt)
	})
	if err != nil {
		return nil, toStatus(err)
	}
	if !claimed {
		if state != "posted" {
			return nil, status.Errorf(codes.Aborted, "payout %s is being posted by another call; retry later", in.GetPayoutId())
		}
		ref, fee := "", ""
		if reference != nil {
			ref, fee = splitReference(*reference)
		}
		return &mlcv1.PostPayoutResponse{ErpReference: ref, FeeReference: fee, AlreadyPosted: true, PostedAt: timestamppb.New(*postedAt)}, nil
	}

	// Write, renewing the claim meanwhile.
	renewCtx, stopRenew := context.WithCancel(ctx)
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		s.renewClaim(renewCtx, key)
	}()
	p, writeErr := w.payout(ctx, in)
	stopRenew()
	<-renewed

	// Record: another short transaction, with the audit row.
	if writeErr != nil {
		// A fresh context: the caller's may be gone, and the claim must
		// not wait for the lease to run out before a retry can resume.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := s.db.Exec(rctx, `UPDATE erp_postings SET status = 'failed', last_error = $2 WHERE outcome_id = $1 AND status = 'pending'`,
			key, writeErr.Error()); err != nil {
			s.log.WarnContext(ctx, "recording a failed payout posting", "payout", in.GetPayoutId(), "error", err)
		}
		s.log.WarnContext(ctx, "payout posting failed", "payout", in.GetPayoutId(), "connection", conn.Name, "error", writeErr)
		return nil, toStatus(writeErr)
	}
	ref, at := p.Reference, p.PostedAt
	if p.Nothing {
		ref = "none"
	}
	if at.IsZero() {
		at = time.Now()
	}
	// As Postgres keeps it, so the first answer and a repeat's agree.
	at = at.UTC().Truncate(time.Microsecond)
	stored := ref
	if p.FeeReference != "" {
		stored = ref + feeSeparator + p.FeeReference
	}
	fees, tax := feeTotals(in)
	err = database.WithTx(ctx, s.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE erp_postings SET status = 'posted', erp_reference = $2, posted_at = $3, last_error = NULL
			WHERE outcome_id = $1`, key, stored, at); err != nil {
			return err
		}
		_, err := audit.Append(ctx, tx, audit.Entry{
			AggregateType: "erp_posting", AggregateID: key, Actor: Actor, Action: "posting.payout",
			Payload: map[string]any{"connection": conn.Name, "company": in.GetErp().GetCompany(), "payout": in.GetPayoutId(),
				"reference": in.GetReference(), "currency": in.GetCurrency(), "amount_minor": in.GetAmountMinor(),
				"fees_minor": fees, "fee_tax_minor": tax, "lines": len(in.GetLines()),
				"erp_reference": ref, "fee_reference": p.FeeReference, "nothing_to_post": p.Nothing},
		})
		return err
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return &mlcv1.PostPayoutResponse{ErpReference: ref, FeeReference: p.FeeReference, PostedAt: timestamppb.New(at)}, nil
}

// renewClaim keeps the payout's lease alive until ctx ends.
func (s *Server) renewClaim(ctx context.Context, key string) {
	t := time.NewTicker(payoutRenew)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// The update trigger moves updated_at, which is the lease.
			if _, err := s.db.Exec(ctx, `UPDATE erp_postings SET attempts = attempts WHERE outcome_id = $1 AND status = 'pending'`, key); err != nil && ctx.Err() == nil {
				s.log.WarnContext(ctx, "renewing a payout claim", "key", key, "error", err)
			}
		}
	}
}

func splitReference(stored string) (ref, fee string) {
	ref, fee, _ = strings.Cut(stored, feeSeparator)
	return ref, fee
}
