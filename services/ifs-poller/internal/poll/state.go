package poll

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ml-connector/ml-connector/connectors/ifscloud"
	"github.com/ml-connector/ml-connector/platform/audit"
	"github.com/ml-connector/ml-connector/platform/database"
	"github.com/ml-connector/ml-connector/platform/erpmsg"
	"github.com/ml-connector/ml-connector/platform/watermark"
)

// ExceptionKind is the exceptions.kind of a row the poller could not publish.
const ExceptionKind = "erp_record_invalid"

// PollState keeps watermarks, with the rows of their overlap windows, in
// poll_state and poll_seen (platform/watermark), and rejected rows in
// exceptions.
type PollState struct {
	Marks *watermark.Store
}

// Load returns the entity's watermark and the rows handled within its
// overlap window; the zero state before the first page was saved.
func (s *PollState) Load(ctx context.Context, connectionID int64, entity string) (watermark.State, error) {
	return s.Marks.Load(ctx, connectionID, entity)
}

// Save records the rejected rows as exceptions (once each, with an audit
// entry), moves the watermark and records the handled rows, in one
// transaction. The watermark never moves back in time: a replica that lost
// its lock mid-page must not undo the progress of the one that took over.
// (Postgres keeps microseconds; a finer IFS time is rounded down, which
// can only cause a harmless re-read.)
func (s *PollState) Save(ctx context.Context, connectionID int64, entity string, wm ifscloud.Watermark, rejected []Rejected, handled []watermark.Row) error {
	err := database.WithTx(ctx, s.Marks.DB, func(tx pgx.Tx) error {
		if len(rejected) > 0 {
			var name string
			if err := tx.QueryRow(ctx, `SELECT name FROM connections WHERE id = $1`, connectionID).Scan(&name); err != nil {
				return fmt.Errorf("connection %d: %w", connectionID, err)
			}
			for _, r := range rejected {
				if err := recordRejected(ctx, tx, name, r); err != nil {
					return err
				}
			}
		}
		return s.Marks.Advance(ctx, tx, connectionID, entity, watermark.Mark{At: wm.Time, Key: wm.Key}, handled)
	})
	if err != nil {
		return fmt.Errorf("save watermark %s: %w", entity, err)
	}
	return nil
}

// recordRejected opens an exception for a row, unless this version of the
// row was recorded before (a re-read after a crash).
func recordRejected(ctx context.Context, tx pgx.Tx, connection string, r Rejected) error {
	detail := map[string]any{
		"erp": "ifs", "connection": connection, "company": r.Company, "kind": r.Kind,
		"key": r.Key, "version": r.Version,
	}
	if !r.Modified.IsZero() {
		detail["modified"] = r.Modified.UTC().Format(time.RFC3339Nano)
	}
	var id int64
	err := tx.QueryRow(ctx, `
		INSERT INTO exceptions (kind, aggregate_type, aggregate_id, reason, detail, dedup_key)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING
		RETURNING id`,
		ExceptionKind, "ifs_"+r.Kind, connection+"/"+r.Company+"/"+r.Key, r.Reason, detail,
		erpmsg.RawID(erpmsg.IFS, connection, r.Company, r.Kind, r.Key, r.Version)).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("record rejected %s %s: %w", r.Kind, r.Key, err)
	}
	detail["reason"] = r.Reason
	_, err = audit.Append(ctx, tx, audit.Entry{
		AggregateType: "exception",
		AggregateID:   strconv.FormatInt(id, 10),
		Actor:         "ifs-poller",
		Action:        "exception.opened",
		Payload:       detail,
	})
	return err
}
