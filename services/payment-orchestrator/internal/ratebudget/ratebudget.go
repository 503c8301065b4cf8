// Package ratebudget keeps the shared rate-limit window of each GoCardless
// access token in the JetStream key-value bucket MLC_GC_RATE_BUDGETS, one
// key per token fingerprint (gocardless.TokenFingerprint: a hash, never
// the token), so that every orchestrator replica collecting with one token
// spends one budget (gocardless.WithSharedBudget): together they use all
// of GoCardless's per-token limit and never exceed it. No money moves
// here; a lost or unreachable value only makes the clients pace alone
// until it answers again, and GoCardless's RateLimit headers correct it.
package ratebudget

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
)

// Bucket is the JetStream key-value bucket of the shared windows.
const Bucket = "MLC_GC_RATE_BUDGETS"

// idle is how long a token's window is kept after its last change: a
// window is at most minutes long, so an older value is only history.
const idle = time.Hour

// Store opens shared windows in the bucket.
type Store struct{ kv jetstream.KeyValue }

// Open creates the bucket if it is missing (in memory: the windows are
// rebuilt from GoCardless's answers after a restart) and returns its store.
func Open(ctx context.Context, js jetstream.JetStream, replicas int) (*Store, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: Bucket, Description: "Shared GoCardless rate-limit windows, per access-token fingerprint (payment-orchestrator).",
		History: 1, TTL: idle, Replicas: max(replicas, 1), Storage: jetstream.MemoryStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("rate budget bucket: %w", err)
	}
	return &Store{kv: kv}, nil
}

// Window is the shared window of the token with fingerprint, for
// gocardless.WithSharedBudget.
func (s *Store) Window(fingerprint string) gocardless.SharedWindow {
	return window{kv: s.kv, key: fingerprint}
}

type window struct {
	kv  jetstream.KeyValue
	key string
}

func (w window) Load(ctx context.Context) ([]byte, uint64, error) {
	e, err := w.kv.Get(ctx, w.key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("rate budget: %w", err)
	}
	return e.Value(), e.Revision(), nil
}

func (w window) Store(ctx context.Context, value []byte, revision uint64) (uint64, bool, error) {
	var rev uint64
	var err error
	if revision == 0 {
		rev, err = w.kv.Create(ctx, w.key, value)
	} else {
		rev, err = w.kv.Update(ctx, w.key, value, revision)
	}
	switch {
	case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch):
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("rate budget: %w", err)
	}
	return rev, true, nil
}
