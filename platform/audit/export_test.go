package audit

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// TakeV1Checkpoint takes a checkpoint as releases before version 2 did
// (every head inline, signed whole), so that tests show such a checkpoint,
// still in a store after an upgrade, is verified against.
func TakeV1Checkpoint(ctx context.Context, q Querier, keys *Keys) (Checkpoint, error) {
	rows, err := q.Query(ctx, `SELECT aggregate_type, aggregate_id, seq, hash FROM audit_heads WHERE seq > 0
		ORDER BY aggregate_type, aggregate_id`)
	if err != nil {
		return Checkpoint{}, err
	}
	heads, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Head])
	if err != nil {
		return Checkpoint{}, err
	}
	c := Checkpoint{TakenAt: time.Now().UTC().Truncate(time.Microsecond), Heads: heads}
	c.KeyID, c.MAC = keys.sign(checkpointDomain, c.message())
	return c, nil
}
