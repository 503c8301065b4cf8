package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// A Lease is an aggregate's outside work in progress, committed before
// the first call: who it is for (Holder, the message or operator action
// doing it), what it planned (Intent), and until when other work on the
// aggregate waits. See the orchestrator's package doc for how leases and
// idempotency keys together make each outside effect happen once.
type Lease struct {
	AggregateType string
	AggregateID   string
	Holder        string
	Intent        json.RawMessage
	ExpiresAt     time.Time
}

// A BusyError says another holder's lease on the aggregate is in force.
type BusyError struct {
	AggregateType, AggregateID, Holder string
	Until                              time.Time
}

// LeaseDeliveries is the most deliveries a message that found an
// aggregate busy needs, waiting as Wait says, to reach the moment a lease
// of up to 5 min (the longest a message can meet: a payout's fetch; a
// customer's alignment, a refund and a mandate request hold theirs 2 min)
// has run out and can be taken over from a holder that died. MAX_DELIVER
// must leave at least one delivery beyond it.
const LeaseDeliveries = 7

// Wait is the pause after delivery n of a message that found the
// aggregate busy. Work usually records its result within a second, so the
// pauses start at 250 ms and double for the first five deliveries (7.75 s
// in all, for a holder that is alive but slow, as on a loaded machine);
// the sixth lasts until a second past the lease's expiry, when a holder
// that died can be taken over. That bounds the deliveries a dead holder
// costs (LeaseDeliveries), where doubling throughout needed eleven for the
// payout lease and the payouts' old fixed 10 s pauses thirty, more than
// MAX_DELIVER's default of 20 allowed (issue #17); quadrupling throughout
// also bounded them but made a live holder's waiter pause 4 s and then
// 16 s, longer than most work takes.
func (e *BusyError) Wait(n uint64) time.Duration { return busyWait(n, time.Until(e.Until)) }

// busyWait is Wait with left the time until the lease expires.
func busyWait(n uint64, left time.Duration) time.Duration {
	const doublings = 5
	if n > doublings {
		return max(left+time.Second, 50*time.Millisecond)
	}
	wait := 250 * time.Millisecond << (n - 1)
	return max(min(wait, left+time.Second), 50*time.Millisecond)
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("%s %s is busy with %s until %s", e.AggregateType, e.AggregateID, e.Holder, e.Until.Format(time.RFC3339))
}

// ErrLeaseLost is returned when work tries to record its result under a
// lease it no longer holds (it expired and other work took it over).
var ErrLeaseLost = errors.New("lease lost")

// Claim takes the lease of an aggregate for holder, for d, in tx. When
// the holder already has it (its message redelivered after a crash), the
// lease is renewed and resumed reports true with the intent recorded
// then, which the holder must follow; otherwise the holder decides now,
// from what it reads in tx after Claim (everything the lease's previous
// holder recorded is visible by then), and records that with [Intend].
// When another holder's lease is in force, Claim fails with a *BusyError;
// an expired lease is taken over.
func Claim(ctx context.Context, tx pgx.Tx, aggType, aggID, holder string, d time.Duration) (recorded json.RawMessage, resumed bool, err error) {
	var (
		owner   string
		until   time.Time
		current []byte
	)
	// One statement: insert, or take over an expired or own lease, and
	// either way say what is now there.
	err = tx.QueryRow(ctx, `
		INSERT INTO leases (aggregate_type, aggregate_id, holder, expires_at)
		VALUES ($1, $2, $3, now() + $4::interval)
		ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE
		SET holder = excluded.holder, expires_at = excluded.expires_at,
		    intent = CASE WHEN leases.holder = excluded.holder THEN leases.intent ELSE '{}' END,
		    created_at = CASE WHEN leases.holder = excluded.holder THEN leases.created_at ELSE now() END
		WHERE leases.holder = excluded.holder OR leases.expires_at < now()
		RETURNING holder, expires_at, intent::text, created_at < now()`,
		aggType, aggID, holder, d.String()).Scan(&owner, &until, &current, &resumed)
	if errors.Is(err, pgx.ErrNoRows) {
		err = tx.QueryRow(ctx, `SELECT holder, expires_at FROM leases WHERE aggregate_type = $1 AND aggregate_id = $2`,
			aggType, aggID).Scan(&owner, &until)
		if err != nil {
			return nil, false, fmt.Errorf("claim %s %s: %w", aggType, aggID, err)
		}
		return nil, false, &BusyError{AggregateType: aggType, AggregateID: aggID, Holder: owner, Until: until}
	}
	if err != nil {
		return nil, false, fmt.Errorf("claim %s %s: %w", aggType, aggID, err)
	}
	return current, resumed, nil
}

// Intend records, in tx, what holder's lease on an aggregate is for
// (marshalled to JSON), and audits it as action.
func Intend(ctx context.Context, tx pgx.Tx, aggType, aggID, holder string, intent any, action string) error {
	return intend(ctx, tx, aggType, aggID, holder, Actor, action, intent)
}

// intend is Intend audited under actor.
func intend(ctx context.Context, tx pgx.Tx, aggType, aggID, holder, actor, action string, intent any) error {
	planned, err := json.Marshal(intent)
	if err != nil {
		return fmt.Errorf("intent for %s %s: %w", aggType, aggID, err)
	}
	tag, err := tx.Exec(ctx, `UPDATE leases SET intent = $4 WHERE aggregate_type = $1 AND aggregate_id = $2 AND holder = $3`,
		aggType, aggID, holder, string(planned))
	if err != nil {
		return fmt.Errorf("intent for %s %s: %w", aggType, aggID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("intent for %s %s: %w", aggType, aggID, ErrLeaseLost)
	}
	return recordBy(ctx, tx, actor, aggType, aggID, action, Change{After: json.RawMessage(planned), Cause: "intent recorded before calling out"})
}

// holds checks, in tx, that holder still has the lease of an aggregate,
// and keeps it locked to the end of tx, for work that records a step's
// result and goes on under the lease; ErrLeaseLost when it does not.
func holds(ctx context.Context, tx pgx.Tx, aggType, aggID, holder string) error {
	var one int
	err := tx.QueryRow(ctx, `SELECT 1 FROM leases WHERE aggregate_type = $1 AND aggregate_id = $2 AND holder = $3 FOR UPDATE`,
		aggType, aggID, holder).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s %s for %s: %w", aggType, aggID, holder, ErrLeaseLost)
	}
	if err != nil {
		return fmt.Errorf("lease of %s %s: %w", aggType, aggID, err)
	}
	return nil
}

// Release ends holder's lease of an aggregate in tx, where the work's
// result is recorded; ErrLeaseLost when the holder no longer has it, and
// the transaction must then not commit the result.
func Release(ctx context.Context, tx pgx.Tx, aggType, aggID, holder string) error {
	tag, err := tx.Exec(ctx, `DELETE FROM leases WHERE aggregate_type = $1 AND aggregate_id = $2 AND holder = $3`, aggType, aggID, holder)
	if err != nil {
		return fmt.Errorf("release %s %s: %w", aggType, aggID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%s %s for %s: %w", aggType, aggID, holder, ErrLeaseLost)
	}
	return nil
}

// Claim is Claim in a transaction of its own, followed by Intend when
// the lease is not resumed and action is set.
func (l *Ledger) Claim(ctx context.Context, aggType, aggID, holder string, intent any, d time.Duration, action string) (recorded json.RawMessage, resumed bool, err error) {
	err = l.Tx(ctx, func(tx pgx.Tx) error {
		if recorded, resumed, err = Claim(ctx, tx, aggType, aggID, holder, d); err != nil || resumed || action == "" {
			return err
		}
		return Intend(ctx, tx, aggType, aggID, holder, intent, action)
	})
	return recorded, resumed, err
}

// Release is Release in a transaction of its own, for work that gives up
// its lease without a result to record.
func (l *Ledger) Release(ctx context.Context, aggType, aggID, holder string) error {
	return l.Tx(ctx, func(tx pgx.Tx) error { return Release(ctx, tx, aggType, aggID, holder) })
}

// Renew extends holder's lease of an aggregate to d from now, for work
// that outlasts the lease it claimed; ErrLeaseLost when the holder no
// longer has it. Unlike Claim it never creates a lease, so a renewal that
// arrives after the work released its lease leaves nothing behind.
func (l *Ledger) Renew(ctx context.Context, aggType, aggID, holder string, d time.Duration) error {
	tag, err := l.db.Exec(ctx, `UPDATE leases SET expires_at = now() + $4::interval
		WHERE aggregate_type = $1 AND aggregate_id = $2 AND holder = $3`, aggType, aggID, holder, d.String())
	if err != nil {
		return fmt.Errorf("renew %s %s: %w", aggType, aggID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%s %s for %s: %w", aggType, aggID, holder, ErrLeaseLost)
	}
	return nil
}

// EventCursor is the created_at of the newest GoCardless event the
// /events catch-up published for a connection; ErrNotFound before the
// first pass.
func (l *Ledger) EventCursor(ctx context.Context, connectionID int64) (time.Time, error) {
	var text string
	err := l.db.QueryRow(ctx, `SELECT cursor FROM event_cursors WHERE connection_id = $1`, connectionID).Scan(&text)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, ErrNotFound
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("event cursor of connection %d: %w", connectionID, err)
	}
	return time.Parse(time.RFC3339Nano, text)
}

// SaveEventCursor ends a catch-up pass: it stores cursor (unless zero)
// and releases the pass's lease, in one transaction, so that a pass whose
// lease another replica took over stores nothing.
func (l *Ledger) SaveEventCursor(ctx context.Context, leaseType, leaseID, holder string, connectionID int64, cursor time.Time) error {
	return l.Tx(ctx, func(tx pgx.Tx) error {
		if !cursor.IsZero() {
			if _, err := tx.Exec(ctx, `INSERT INTO event_cursors (connection_id, cursor) VALUES ($1, $2)
				ON CONFLICT (connection_id) DO UPDATE SET cursor = excluded.cursor`, connectionID, cursor.UTC().Format(time.RFC3339Nano)); err != nil {
				return fmt.Errorf("store event cursor: %w", err)
			}
		}
		return Release(ctx, tx, leaseType, leaseID, holder)
	})
}
