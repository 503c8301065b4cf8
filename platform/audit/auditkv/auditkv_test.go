package auditkv_test

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ml-connector/ml-connector/platform/audit"
	"github.com/ml-connector/ml-connector/platform/audit/auditkv"
	"github.com/ml-connector/ml-connector/platform/database"
	"github.com/ml-connector/ml-connector/platform/testsupport"
)

// Checkpoints taken periodically land in JetStream, and the newest one
// read back catches a chain deleted from the database.
func TestCheckpointsKeptInJetStream(t *testing.T) {
	ctx := context.Background()
	pool := testsupport.Pool(t)
	js, err := jetstream.New(testsupport.StartJetStream(t).Connect())
	if err != nil {
		t.Fatal(err)
	}
	k := sha256.Sum256([]byte("test audit key"))
	keys, err := audit.NewKeys("k1", map[string][]byte{"k1": k[:]})
	if err != nil {
		t.Fatal(err)
	}
	audit.SignWith(keys)
	t.Cleanup(func() { audit.SignWith(nil) })
	for _, id := range []string{"a", "b"} {
		if _, err := audit.Append(ctx, pool, audit.Entry{AggregateType: "collection", AggregateID: id, Actor: "test", Action: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	store, err := auditkv.Open(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := store.Latest(ctx); err != nil || c != nil {
		t.Fatalf("before any checkpoint: %v, %v", c, err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- auditkv.Run(runCtx, pool, keys, store, time.Hour, slog.New(slog.DiscardHandler)) }()
	var cp *audit.Checkpoint
	for deadline := time.Now().Add(10 * time.Second); cp == nil; {
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint stored")
		}
		cp, _ = store.Latest(ctx)
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(cp.Heads) != 2 {
		t.Fatalf("checkpoint of %d heads, want 2", len(cp.Heads))
	}
	err = database.WithTx(ctx, pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `ALTER TABLE audit_log DISABLE TRIGGER USER; ALTER TABLE audit_heads DISABLE TRIGGER USER;
			DELETE FROM audit_log WHERE aggregate_id = 'b'; DELETE FROM audit_heads WHERE aggregate_id = 'b';
			ALTER TABLE audit_log ENABLE TRIGGER USER; ALTER TABLE audit_heads ENABLE TRIGGER USER`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := audit.VerifyAllWith(ctx, pool, audit.VerifyOptions{Keys: keys, Checkpoint: cp})
	if err == nil || len(rep.Broken) != 1 || rep.Broken[0].AggregateID != "b" || rep.Broken[0].Problem != audit.ProblemBehindCheckpoint {
		t.Errorf("chain b deleted: %v, %v", rep.Broken, err)
	}
}
