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
	ListKind(ctx context.Context, kind connections.Kind) ([]connections.Connection, error)
	Secrets(ctx context.Context, name string) (map[string]secrets.Value, error)
}

// minRelist is the shortest time between two readings of the connection
// list prompted by an unknown name, so that a connection added a moment
// ago is found quickly while a stream of made-up names costs at most one
// query per minRelist.
const minRelist = time.Second

// RegistrySecrets reads webhook secrets from the connection registry and
// keeps them for a short while: decrypting on every request would put
// Postgres on the hot path of every webhook, while a short TTL still picks
// up a rotated secret within seconds.
//
// Names that are not connections cost nothing per name: the set of
// GoCardless connections is read as a whole (once per TTL, or once per
// minRelist when asked for a name not in it), and a name outside it is
// answered from that set. Nothing is kept for unknown names, so what this
// holds is bounded by the connections that exist, whatever is requested.
type RegistrySecrets struct {
	store connectionStore
	ttl   time.Duration
	now   func() time.Time

	listMu   sync.Mutex // held while the list is read
	mu       sync.Mutex
	names    map[string]bool // GoCardless connections, as of listedAt
	listedAt time.Time
	cache    map[string]cachedSecrets // only for names in names
}

type cachedSecrets struct {
	secrets [][]byte
	err     error
	until   time.Time
}

// NewRegistrySecrets returns a source over store caching answers for ttl.
func NewRegistrySecrets(store connectionStore, ttl time.Duration) *RegistrySecrets {
	return &RegistrySecrets{store: store, ttl: ttl, now: time.Now, cache: map[string]cachedSecrets{}}
}

// WebhookSecrets implements SecretSource.
func (r *RegistrySecrets) WebhookSecrets(ctx context.Context, name string) ([][]byte, error) {
	known, err := r.known(ctx, name)
	if err != nil {
		return nil, err
	}
	if !known {
		return nil, ErrUnknownConnection
	}
	r.mu.Lock()
	c, ok := r.cache[name]
	r.mu.Unlock()
	if ok && r.now().Before(c.until) {
		return c.secrets, c.err
	}
	got, err := r.load(ctx, name)
	if err != nil && !errors.Is(err, ErrUnknownConnection) {
		return nil, err // transient: not cached
	}
	r.mu.Lock()
	if r.names[name] { // still a connection after a concurrent relist
		r.cache[name] = cachedSecrets{secrets: got, err: err, until: r.now().Add(r.ttl)}
	}
	r.mu.Unlock()
	return got, err
}

// known reports whether name is a GoCardless connection, reading the list
// again when it is older than the TTL, or older than minRelist and name is
// not in it.
func (r *RegistrySecrets) known(ctx context.Context, name string) (bool, error) {
	if in, fresh := r.lookup(name); fresh {
		return in, nil
	}
	// One reading at a time: a flood of unknown names arriving together
	// waits for it rather than each reading the list.
	r.listMu.Lock()
	defer r.listMu.Unlock()
	if in, fresh := r.lookup(name); fresh {
		return in, nil
	}
	list, err := r.store.ListKind(ctx, connections.KindGoCardless)
	if err != nil {
		return false, fmt.Errorf("list gocardless connections: %w", err)
	}
	names := make(map[string]bool, len(list))
	for _, c := range list {
		names[c.Name] = true
	}
	r.mu.Lock()
	r.names, r.listedAt = names, r.now()
	for n := range r.cache {
		if !names[n] {
			delete(r.cache, n)
		}
	}
	r.mu.Unlock()
	return names[name], nil
}

// lookup answers from the list read last, if it is fresh enough for name.
func (r *RegistrySecrets) lookup(name string) (in, fresh bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	age := r.now().Sub(r.listedAt)
	in = r.names[name]
	return in, r.names != nil && age < r.ttl && (in || age < minRelist)
}

func (r *RegistrySecrets) load(ctx context.Context, name string) ([][]byte, error) {
	vals, err := r.store.Secrets(ctx, name)
	if errors.Is(err, connections.ErrNotFound) {
		return nil, ErrUnknownConnection
	}
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

// ErrNoSecrets is the readiness failure of a gc-webhook that could verify
// no webhook at all.
var ErrNoSecrets = errors.New("no webhook secret: GC_WEBHOOK_SECRET is unset and no gocardless connection has a " + SecretName)

// SecretsCheck is a readiness check that fails while no webhook could be
// verified: haveEnv is false (GC_WEBHOOK_SECRET unset) and no GoCardless
// connection in the registry (nil: none) holds a webhook secret.
func SecretsCheck(haveEnv bool, registry *RegistrySecrets) func(context.Context) error {
	return func(ctx context.Context) error {
		if haveEnv {
			return nil
		}
		if registry == nil {
			return ErrNoSecrets
		}
		list, err := registry.store.ListKind(ctx, connections.KindGoCardless)
		if err != nil {
			return fmt.Errorf("list gocardless connections: %w", err)
		}
		for _, c := range list {
			if _, ok := c.Secrets[SecretName]; ok {
				return nil
			}
		}
		return ErrNoSecrets
	}
}
