package poster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ml-connector/ml-connector/platform/audit"
	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/platform/database"
	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
)

// Every posting (an outcome, a payout) is written without holding a row
// lock, a transaction or a pooled connection across the ERP calls: its
// erp_postings row is claimed in one short transaction (a lease, renewed
// while the writer runs), the ERP writer runs, and the result is recorded
// with its audit row in another. A second call for the same key while the
// lease is held gets ABORTED ("being posted, retry later"); a lease left by
// a process that died expires after leaseTTL and the next call resumes the
// posting, which the ERP writers make idempotent by outcome (payout) id.
//
// The claim's attempts count fences it: a call renews, and records a
// failure, only while the row still carries the attempts it claimed. A
// call whose lease ran out (its renewals failed for leaseTTL, say) and was
// taken over finds that out at its next renewal and stops writing, rather
// than writing to the ERP beside the call that took over (the writers'
// idempotency is a look-up before each write, which two writers at once
// can both pass), and never marks the taker's claim failed, which would
// let a third call in beside it.

// leaseTTL is how long a claim lives without renewal: how long the
// postings of an erp-poster that died mid-write wait before another takes
// them over (a lock would have been released at once, with the
// connection). leaseRenew is how often it is renewed while the writer runs,
// well inside leaseTTL, so a slow database round trip does not lose it.
const leaseTTL = 30 * time.Second

var leaseRenew = 10 * time.Second // a variable only so that tests can shorten it

// claimed is the state of a posting's row after a claim.
type claimed struct {
	// mine: this call holds the lease and must write and record.
	mine bool
	// attempts is the row's attempts as this call claimed it: its fence.
	attempts int
	// posted: the key was posted before; ref and at are the original's.
	posted bool
	ref    string
	at     time.Time
}

// posting row: what claim inserts when the key is new.
type postingRow struct {
	key, company, invoiceID, kind string
	conn                          connections.Connection
}

// claim takes the lease on a posting's row, creating the row if needed.
func (s *Server) claim(ctx context.Context, r postingRow) (claimed, error) {
	var c claimed
	err := database.WithTx(ctx, s.db, func(tx pgx.Tx) error {
		c = claimed{}
		if _, err := tx.Exec(ctx, `
			INSERT INTO erp_postings (outcome_id, connection_id, erp, company, invoice_id, kind)
			VALUES ($1, $2, $3, $4, nullif($5, ''), $6) ON CONFLICT (outcome_id) DO NOTHING`,
			r.key, r.conn.ID, string(r.conn.Kind), r.company, r.invoiceID, r.kind); err != nil {
			return err
		}
		var attempts int
		err := tx.QueryRow(ctx, `
			UPDATE erp_postings SET status = 'pending', attempts = attempts + 1, last_error = NULL
			WHERE outcome_id = $1 AND status <> 'posted'
			  AND (attempts = 0 OR status = 'failed' OR updated_at < now() - make_interval(secs => $2))
			RETURNING attempts`, r.key, leaseTTL.Seconds()).Scan(&attempts)
		if err == nil {
			c.mine, c.attempts = true, attempts
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		var state string
		var ref *string
		var at *time.Time
		if err := tx.QueryRow(ctx, `SELECT status, erp_reference, posted_at FROM erp_postings WHERE outcome_id = $1`, r.key).
			Scan(&state, &ref, &at); err != nil {
			return err
		}
		if state == "posted" {
			c.posted, c.at = true, *at
			if ref != nil {
				c.ref = *ref
			}
		}
		return nil
	})
	return c, err
}

// errBusy is the answer to a call whose key another call is posting.
func errBusy(what string) error {
	return mlcv1.PostingInProgress(what + " is being posted by another call; retry later")
}

// errLeaseLost: the claim ran out and another call took the posting
// over; this call stopped writing and leaves the posting to it.
var errLeaseLost = errors.New("the posting's claim ran out and another call took it over")

// write runs the writer under claim c on key, renewing the lease until it
// returns. When a renewal finds the claim taken over, the writer's
// context is cancelled and write returns errLeaseLost.
func (s *Server) write(ctx context.Context, key string, c claimed, run func(context.Context) error) error {
	runCtx, cancelRun := context.WithCancelCause(ctx)
	defer cancelRun(nil)
	renewCtx, stop := context.WithCancel(ctx)
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		t := time.NewTicker(leaseRenew)
		defer t.Stop()
		for {
			select {
			case <-renewCtx.Done():
				return
			case <-t.C:
				// The update trigger moves updated_at, which is the lease.
				tag, err := s.db.Exec(renewCtx, `UPDATE erp_postings SET attempts = attempts
					WHERE outcome_id = $1 AND status = 'pending' AND attempts = $2`, key, c.attempts)
				switch {
				case err != nil && renewCtx.Err() == nil:
					s.log.WarnContext(renewCtx, "renewing a posting's claim", "key", key, "error", err)
				case err == nil && tag.RowsAffected() == 0:
					s.log.WarnContext(renewCtx, "a posting's claim was taken over; stopping its write", "key", key)
					cancelRun(errLeaseLost)
					return
				}
			}
		}
	}()
	err := run(runCtx)
	stop()
	<-renewed
	if errors.Is(context.Cause(runCtx), errLeaseLost) {
		return fmt.Errorf("posting %s: %w (the writer stopped with: %w)", key, errLeaseLost, err)
	}
	return err
}

// recordFailure releases claim c with the writer's error, so the next
// call may retry at once rather than wait for the lease to run out. A
// claim taken over meanwhile is left to the call that holds it.
func (s *Server) recordFailure(ctx context.Context, key string, c claimed, writeErr error) {
	// A fresh context: the caller's may be gone by now.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := s.db.Exec(rctx, `UPDATE erp_postings SET status = 'failed', last_error = $2
		WHERE outcome_id = $1 AND status = 'pending' AND attempts = $3`,
		key, writeErr.Error(), c.attempts); err != nil {
		s.log.WarnContext(ctx, "recording a failed posting", "key", key, "error", err)
	}
}

// recordPosted marks key posted with the ERP's reference and appends its
// audit entry, in one transaction.
func (s *Server) recordPosted(ctx context.Context, key, ref string, at time.Time, entry audit.Entry) error {
	return database.WithTx(ctx, s.db, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE erp_postings SET status = 'posted', erp_reference = $2, posted_at = $3, last_error = NULL
			WHERE outcome_id = $1 AND status <> 'posted'`, key, ref, at)
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("posting %s was recorded by another call meanwhile", key)
		}
		_, err = audit.Append(ctx, tx, entry)
		return err
	})
}

// postedAt is when a posting counts as written: the ERP's time, else now,
// as Postgres keeps it (microseconds, UTC), so that the first answer and a
// repeat's agree.
func postedAt(at time.Time) time.Time {
	if at.IsZero() {
		at = time.Now()
	}
	return at.UTC().Truncate(time.Microsecond)
}
