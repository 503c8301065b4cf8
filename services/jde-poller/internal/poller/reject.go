package poller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/ml-connector/ml-connector/platform/audit"
	"github.com/ml-connector/ml-connector/platform/database"
)

// rejection is a JDE row the poller could not turn into an event.
type rejection struct {
	kind    string // customer, invoice or refund
	company string
	key     string
	version string
	table   string
	err     error
}

// reject records a row that cannot be published as an exception for an
// operator, once per row version, with an audit entry. The watermark may
// then pass the row: it is not lost, and a corrected row gets a new
// version and is read again.
func (p *Poller) reject(ctx context.Context, rj rejection, res *Result) error {
	res.Rejected++
	p.cfg.Metrics.rejected(ctx, p.cfg.ConnectionName, rj.kind)
	p.cfg.Log.WarnContext(ctx, "jde row rejected", "connection", p.cfg.ConnectionName, "company", rj.company,
		"kind", rj.kind, "key", rj.key, "version", rj.version, "error", rj.err)
	aggregate := fmt.Sprintf("%s/%s/%s", p.cfg.ConnectionName, rj.company, rj.key)
	dedup := fmt.Sprintf("jde-poller:%s:%s:%s:%s:%s", p.cfg.ConnectionName, rj.company, rj.kind, rj.key, rj.version)
	detail, _ := json.Marshal(map[string]string{
		"connection": p.cfg.ConnectionName, "company": rj.company, "table": rj.table,
		"key": rj.key, "version": rj.version, "error": rj.err.Error(),
	})
	return database.WithTx(ctx, p.cfg.DB, func(tx pgx.Tx) error {
		var id int64
		err := tx.QueryRow(ctx, `
			INSERT INTO exceptions (kind, aggregate_type, aggregate_id, reason, detail, dedup_key)
			VALUES ('erp_record_invalid', $1, $2, $3, $4, $5)
			ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING
			RETURNING id`,
			"jde_"+rj.kind, aggregate, rj.err.Error(), detail, dedup).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // recorded by an earlier cycle
		}
		if err != nil {
			return fmt.Errorf("record rejected %s %s: %w", rj.kind, rj.key, err)
		}
		_, err = audit.Append(ctx, tx, audit.Entry{
			AggregateType: "exception",
			AggregateID:   fmt.Sprint(id),
			Actor:         "jde-poller",
			Action:        "exception.opened",
			Payload:       json.RawMessage(detail),
		})
		return err
	})
}
