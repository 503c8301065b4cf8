package audit

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// A Checkpoint is every chain's head at one moment, signed with the audit
// keys, to be kept outside Postgres (see CheckpointStore): verified with
// it, a chain cut short or deleted whole (rows and head) is detected,
// which no content of the database can prove once the database is the
// one rewritten.
type Checkpoint struct {
	TakenAt time.Time `json:"taken_at"`
	Heads   []Head    `json:"heads"`
	KeyID   string    `json:"key_id"`
	MAC     []byte    `json:"mac"`

	index map[aggregateKey]*Head
}

// Head is one chain's newest row as a checkpoint saw it.
type Head struct {
	AggregateType string `json:"aggregate_type"`
	AggregateID   string `json:"aggregate_id"`
	Seq           int64  `json:"seq"`
	Hash          []byte `json:"hash"`
}

const checkpointDomain = "mlc-audit-checkpoint-v1"

// TakeCheckpoint reads every chain's head, in one snapshot, and signs
// them with keys.
func TakeCheckpoint(ctx context.Context, q Querier, keys *Keys) (Checkpoint, error) {
	if keys == nil {
		return Checkpoint{}, errors.New("audit: checkpoint: no keys to sign it with")
	}
	rows, err := q.Query(ctx, `SELECT aggregate_type, aggregate_id, seq, hash FROM audit_heads WHERE seq > 0
		ORDER BY aggregate_type, aggregate_id`)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit: checkpoint: %w", err)
	}
	heads, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Head, error) {
		var h Head
		err := r.Scan(&h.AggregateType, &h.AggregateID, &h.Seq, &h.Hash)
		return h, err
	})
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit: checkpoint: %w", err)
	}
	c := Checkpoint{TakenAt: time.Now().UTC().Truncate(time.Microsecond), Heads: heads}
	c.KeyID, c.MAC = keys.sign(checkpointDomain, c.message())
	return c, nil
}

// message is the signed content: the time and every head, each field
// length-prefixed as in the row hash.
func (c *Checkpoint) message() []byte {
	var b []byte
	field := func(f []byte) {
		b = binary.BigEndian.AppendUint64(b, uint64(len(f)))
		b = append(b, f...)
	}
	field([]byte(c.TakenAt.UTC().Format(time.RFC3339Nano)))
	for _, h := range c.Heads {
		field([]byte(h.AggregateType))
		field([]byte(h.AggregateID))
		field(binary.BigEndian.AppendUint64(nil, uint64(h.Seq)))
		field(h.Hash)
	}
	return b
}

// ErrCheckpointForged is returned for a checkpoint whose signature does
// not verify: it cannot vouch for anything.
var ErrCheckpointForged = errors.New("audit: checkpoint signature does not verify")

func (c *Checkpoint) verify(keys *Keys) error {
	ok, known := keys.check(c.KeyID, checkpointDomain, c.message(), c.MAC)
	if !known {
		return fmt.Errorf("%w: signed with unknown key %q", ErrCheckpointForged, c.KeyID)
	}
	if !ok {
		return ErrCheckpointForged
	}
	return nil
}

// head returns the checkpoint's head of a chain, if it has one.
func (c *Checkpoint) head(typ, id string) *Head {
	if c == nil {
		return nil
	}
	if c.index == nil {
		c.index = make(map[aggregateKey]*Head, len(c.Heads))
		for i := range c.Heads {
			c.index[aggregateKey{c.Heads[i].AggregateType, c.Heads[i].AggregateID}] = &c.Heads[i]
		}
	}
	return c.index[aggregateKey{typ, id}]
}
