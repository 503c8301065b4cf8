package accounts

import (
	"context"
	"crypto/rand"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/platform/secrets"
	"github.com/ml-connector/ml-connector/platform/testsupport"
)

// counting is a registry that counts the lookups that read connections.
type counting struct {
	*connections.Store
	reads atomic.Int32
}

func (c *counting) Get(ctx context.Context, name string) (connections.Connection, error) {
	c.reads.Add(1)
	return c.Store.Get(ctx, name)
}

func (c *counting) ListKind(ctx context.Context, kind connections.Kind) ([]connections.Connection, error) {
	c.reads.Add(1)
	return c.Store.ListKind(ctx, kind)
}

// Routes of an ERP connection that names no GoCardless connection, and
// connections found by id, are served from the cache, not one registry
// read per message; a change to the registry is seen at the next version
// check, however long the cache's ttl.
func TestDirectoryCachesUntilTheRegistryChanges(t *testing.T) {
	ctx := context.Background()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	keys, err := secrets.NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	reg := &counting{Store: connections.NewStore(testsupport.Pool(t), keys)}
	add := func(n connections.New) connections.Connection {
		n.Actor = "test"
		c, err := reg.Add(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	gc := add(connections.New{Name: "gc-one", Kind: connections.KindGoCardless, Settings: map[string]any{"base_url": "http://127.0.0.1:1"},
		Secrets: map[string]secrets.Value{"access_token": secrets.NewValue("sandbox_token_one")}})
	add(connections.New{Name: "ifs-one", Kind: connections.KindIFS,
		Settings: map[string]any{"base_url": "https://x.ifs.cloud", "client_id": "mlc", "company_codes": []any{"10"}},
		Secrets:  map[string]secrets.Value{"client_secret": secrets.NewValue("s")}})

	d := New(reg, time.Hour, nil)
	d.checkEvery = 50 * time.Millisecond
	for range 100 {
		if _, err := d.Route(ctx, "ifs-one", "10"); err != nil {
			t.Fatal(err)
		}
		if c, err := d.ByID(ctx, connections.KindGoCardless, gc.ID); err != nil || c.Name != "gc-one" {
			t.Fatalf("by id: %v, %v", c, err)
		}
	}
	if n := reg.reads.Load(); n > 4 {
		t.Errorf("%d registry reads for 100 routes and lookups by id, want a handful", n)
	}
	add(connections.New{Name: "gc-two", Kind: connections.KindGoCardless, Settings: map[string]any{"base_url": "http://127.0.0.1:1"},
		Secrets: map[string]secrets.Value{"access_token": secrets.NewValue("sandbox_token_two")}})
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := d.Route(ctx, "ifs-one", "10")
		if err != nil && strings.Contains(err.Error(), "2 exist") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a second GoCardless connection not seen within 5 s of a 50 ms version check (ttl an hour): %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
