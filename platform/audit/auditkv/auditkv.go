// Package auditkv keeps the audit log's signed checkpoints outside
// Postgres, in a JetStream key-value bucket, and takes them periodically:
// verified against the newest one (mlcctl audit verify), a chain deleted
// whole, or cut short, in the database is detected. The bucket keeps a
// history, so an attacker who can also write NATS must forge a signature
// (the audit key is in neither store) rather than just delete a value.
package auditkv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ml-connector/ml-connector/platform/audit"
)

// Bucket is the JetStream key-value bucket of the checkpoints.
const Bucket = "MLC_AUDIT_CHECKPOINTS"

const latest = "latest"

// Store reads and writes checkpoints.
type Store struct{ kv jetstream.KeyValue }

// Open creates the bucket if it is missing and returns its store.
func Open(ctx context.Context, js jetstream.JetStream, replicas int) (*Store, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: Bucket, Description: "Signed checkpoints of the audit log's chain heads (platform/audit).",
		History: 64, Replicas: max(replicas, 1), Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("audit checkpoints bucket: %w", err)
	}
	return &Store{kv: kv}, nil
}

// OpenExisting returns the store of an existing bucket, for readers.
func OpenExisting(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	kv, err := js.KeyValue(ctx, Bucket)
	if err != nil {
		return nil, fmt.Errorf("audit checkpoints bucket: %w", err)
	}
	return &Store{kv: kv}, nil
}

// Put stores c as the newest checkpoint.
func (s *Store) Put(ctx context.Context, c audit.Checkpoint) error {
	data, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("audit checkpoint: %w", err)
	}
	if _, err := s.kv.Put(ctx, latest, data); err != nil {
		return fmt.Errorf("audit checkpoint: %w", err)
	}
	return nil
}

// Latest returns the newest checkpoint, or nil when none was taken.
func (s *Store) Latest(ctx context.Context) (*audit.Checkpoint, error) {
	e, err := s.kv.Get(ctx, latest)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit checkpoint: %w", err)
	}
	var c audit.Checkpoint
	if err := json.Unmarshal(e.Value(), &c); err != nil {
		return nil, fmt.Errorf("audit checkpoint: %w", err)
	}
	return &c, nil
}

// Run takes a checkpoint every interval until ctx ends. Replicas may all
// run it: each checkpoint is complete, the newest wins.
func Run(ctx context.Context, q audit.Querier, keys *audit.Keys, s *Store, interval time.Duration, log *slog.Logger) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		c, err := audit.TakeCheckpoint(ctx, q, keys)
		if err == nil {
			err = s.Put(ctx, c)
		}
		if err != nil && ctx.Err() == nil {
			log.WarnContext(ctx, "audit checkpoint failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
