package webhook

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/platform/logging"
	"github.com/ml-connector/ml-connector/platform/secrets"
)

// SecretName is the connection secret that signs a GoCardless account's
// webhooks. A connection may hold a second one, SecretName+"_previous",
// while the secret is rotated.
const SecretName = "webhook_secret"

// connectionStore is the part of the connection registry used here.
type connectionStore interface {
	Get(ctx context.Context, name string) (connections.Connection, error)
	Secrets(ctx context.Context, name string) (map[string]secrets.Value, error)
}

// RegistrySecrets reads webhook secrets from the connection registry and
// keeps them for a short while: decrypting on every request would put
// Postgres on the hot path of every webhook, while a short TTL still picks
// up a rotated secret within seconds.
type RegistrySecrets struct {
	store connectionStore
	ttl   time.Duration

	mu    sync.Mutex
	cache map[string]cachedSecrets
}

type cachedSecrets struct {
	secrets [][]byte
	err     error
	until   time.Time
}

// NewRegistrySecrets returns a source over store caching answers for ttl.
func NewRegistrySecrets(store connectionStore, ttl time.Duration) *RegistrySecrets {
	return &RegistrySecrets{store: store, ttl: ttl, cache: map[string]cachedSecrets{}}
}

// WebhookSecrets implements SecretSource.
func (r *RegistrySecrets) WebhookSecrets(ctx context.Context, name string) ([][]byte, error) {
	r.mu.Lock()
	c, ok := r.cache[name]
	r.mu.Unlock()
	if ok && time.Now().Before(c.until) {
		return c.secrets, c.err
	}
	got, err := r.load(ctx, name)
	if err != nil && !errors.Is(err, ErrUnknownConnection) {
		return nil, err // transient: not cached
	}
	r.mu.Lock()
	r.cache[name] = cachedSecrets{secrets: got, err: err, until: time.Now().Add(r.ttl)}
	r.mu.Unlock()
	return got, err
}

func (r *RegistrySecrets) load(ctx context.Context, name string) ([][]byte, error) {
	conn, err := r.store.Get(ctx, name)
	if errors.Is(err, connections.ErrNotFound) {
		return nil, ErrUnknownConnection
	}
	if err != nil {
		return nil, fmt.Errorf("connection %q: %w", name, err)
	}
	if conn.Kind != connections.KindGoCardless {
		return nil, ErrUnknownConnection
	}
	vals, err := r.store.Secrets(ctx, name)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, key := range []string{SecretName, SecretName + "_previous"} {
		if v, ok := vals[key]; ok && !v.Empty() {
			logging.Register(v.Reveal())
			out = append(out, []byte(v.Reveal()))
		}
	}
	if len(out) == 0 {
		return nil, ErrUnknownConnection
	}
	return out, nil
}
