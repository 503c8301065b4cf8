package webhook

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/platform/secrets"
)

// countingStore is a registry of GoCardless connections that counts the
// queries made of it.
type countingStore struct {
	mu       sync.Mutex
	conns    map[string]string // name -> webhook secret
	lists    int
	secretsQ int
}

func (s *countingStore) ListKind(_ context.Context, kind connections.Kind) ([]connections.Connection, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lists++
	var out []connections.Connection
	for name := range s.conns {
		out = append(out, connections.Connection{Name: name, Kind: kind, Secrets: map[string]string{SecretName: "k1"}})
	}
	return out, nil
}

func (s *countingStore) Secrets(_ context.Context, name string) (map[string]secrets.Value, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secretsQ++
	v, ok := s.conns[name]
	if !ok {
		return nil, connections.ErrNotFound
	}
	return map[string]secrets.Value{SecretName: secrets.NewValue(v)}, nil
}

// Issue #17: every unknown name cost a Postgres query and a cache entry
// never evicted (100k requests: RSS 24 -> 104 MB). Now unknown names are
// answered from the list of connections: 100,000 of them, concurrently,
// cost one list query and leave nothing behind.
func TestUnknownNamesCostNoQueryAfterTheFirst(t *testing.T) {
	store := &countingStore{conns: map[string]string{"gc-main": "whsec-main-123456"}}
	now := time.Unix(1_800_000_000, 0)
	r := NewRegistrySecrets(store, 30*time.Second)
	r.now = func() time.Time { return now }

	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 12_500 {
				if _, err := r.WebhookSecrets(t.Context(), fmt.Sprintf("nobody-%d-%d", w, i)); !errors.Is(err, ErrUnknownConnection) {
					t.Errorf("unknown name: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if store.lists != 1 || store.secretsQ != 0 {
		t.Errorf("100,000 unknown names cost %d list and %d secrets queries, want 1 and 0", store.lists, store.secretsQ)
	}
	if len(r.cache) != 0 || len(r.names) != 1 {
		t.Errorf("kept %d cache entries and %d names for unknown names", len(r.cache), len(r.names))
	}

	// The known connection: its secrets are read once and cached.
	for range 3 {
		got, err := r.WebhookSecrets(t.Context(), "gc-main")
		if err != nil || len(got) != 1 || string(got[0]) != "whsec-main-123456" {
			t.Fatalf("gc-main: %q, %v", got, err)
		}
	}
	if store.lists != 1 || store.secretsQ != 1 {
		t.Errorf("known name: %d lists, %d secrets queries, want 1 and 1", store.lists, store.secretsQ)
	}

	// A connection added later is found at the next reading, which an
	// unknown name prompts at most once per minRelist.
	store.mu.Lock()
	store.conns["gc-new"] = "whsec-new-123456"
	store.mu.Unlock()
	if _, err := r.WebhookSecrets(t.Context(), "gc-new"); !errors.Is(err, ErrUnknownConnection) {
		t.Errorf("gc-new within minRelist: %v, want unknown (the list is fresh)", err)
	}
	now = now.Add(minRelist)
	if _, err := r.WebhookSecrets(t.Context(), "gc-new"); err != nil {
		t.Errorf("gc-new after minRelist: %v", err)
	}
	if store.lists != 2 {
		t.Errorf("%d list queries, want 2", store.lists)
	}

	// A removed connection is forgotten, with its cached secrets, once the
	// list is read again.
	store.mu.Lock()
	delete(store.conns, "gc-main")
	store.mu.Unlock()
	now = now.Add(30 * time.Second)
	if _, err := r.WebhookSecrets(t.Context(), "gc-main"); !errors.Is(err, ErrUnknownConnection) {
		t.Errorf("removed connection: %v", err)
	}
	if _, ok := r.cache["gc-main"]; ok {
		t.Error("secrets of a removed connection still cached")
	}
}

func TestSecretsCheck(t *testing.T) {
	if err := SecretsCheck(true, nil)(t.Context()); err != nil {
		t.Errorf("with GC_WEBHOOK_SECRET: %v", err)
	}
	if err := SecretsCheck(false, nil)(t.Context()); !errors.Is(err, ErrNoSecrets) {
		t.Errorf("without any: %v", err)
	}
	store := &countingStore{conns: map[string]string{}}
	r := NewRegistrySecrets(store, time.Minute)
	if err := SecretsCheck(false, r)(t.Context()); !errors.Is(err, ErrNoSecrets) {
		t.Errorf("empty registry: %v", err)
	}
	store.conns["gc-main"] = "x"
	if err := SecretsCheck(false, r)(t.Context()); err != nil {
		t.Errorf("registry with a webhook secret: %v", err)
	}
}
