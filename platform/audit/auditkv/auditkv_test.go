package auditkv_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ml-connector/ml-connector/platform/audit"
	"github.com/ml-connector/ml-connector/platform/audit/auditkv"
	"github.com/ml-connector/ml-connector/platform/database"
	"github.com/ml-connector/ml-connector/platform/testsupport"
	"github.com/ml-connector/ml-connector/platform/testsupport/await"
)

func setup(t *testing.T) (context.Context, *pgxpool.Pool, jetstream.JetStream, *audit.Keys) {
	t.Helper()
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
	return context.Background(), pool, js, keys
}

func deleteChains(t *testing.T, pool *pgxpool.Pool, sql string) {
	t.Helper()
	err := database.WithTx(context.Background(), pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(context.Background(), `ALTER TABLE audit_log DISABLE TRIGGER USER; ALTER TABLE audit_heads DISABLE TRIGGER USER;
			`+sql+`; ALTER TABLE audit_log ENABLE TRIGGER USER; ALTER TABLE audit_heads ENABLE TRIGGER USER`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Checkpoints taken periodically land in JetStream, and the newest one
// read back catches a chain deleted from the database.
func TestCheckpointsKeptInJetStream(t *testing.T) {
	ctx, pool, js, keys := setup(t)
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
	metrics := recordMetrics(t)
	began := time.Now().Unix()
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
	// An operator alerts on the time of the last one published.
	var results map[string]int64
	var published []int64
	await.Until(t, 10*time.Second, "the checkpoint counted", func() bool {
		results, published = metrics.read(t)
		return results["published"] > 0
	})
	if len(results) != 1 || results["published"] != 1 || len(published) != 1 || published[0] < began || published[0] > time.Now().Unix() {
		t.Errorf("checkpoints by result %v, published at %v; want one published, at a time from %d to now", results, published, began)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if cp.Version != 2 || cp.Chains() != 2 {
		t.Fatalf("checkpoint v%d of %d heads, want v2 of 2", cp.Version, cp.Chains())
	}
	deleteChains(t, pool, `DELETE FROM audit_log WHERE aggregate_id = 'b'; DELETE FROM audit_heads WHERE aggregate_id = 'b'`)
	rep, err := audit.VerifyAllWith(ctx, pool, audit.VerifyOptions{Keys: keys, Checkpoint: cp})
	if err == nil || len(rep.Broken) != 1 || rep.Broken[0].AggregateID != "b" || rep.Broken[0].Problem != audit.ProblemBehindCheckpoint {
		t.Errorf("chain b deleted: %v, %v", rep.Broken, err)
	}
}

// A checkpoint of 20,000 chains (a version 1 value of ~2.4 MB, which NATS
// refused: "maximum payload exceeded") is stored and verified; against it
// a chain deleted whole and a chain cut short are found; a forged
// manifest, a tampered object and a missing object each fail with a
// message naming what is wrong. Objects past the grace go, but for the
// latest's.
func TestCheckpointOf20000Chains(t *testing.T) {
	ctx, pool, js, keys := setup(t)
	const chains = 20000
	testsupport.AuditChains(t, pool, "collection", chains)
	if _, err := audit.Append(ctx, pool, audit.Entry{AggregateType: "collection", AggregateID: "7", Actor: "test", Action: "again"}); err != nil {
		t.Fatal(err)
	}
	store, err := auditkv.Open(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	// What version 1 stored: refused.
	k := sha256.Sum256([]byte("test audit key"))
	kv, err := js.KeyValue(ctx, auditkv.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "latest", testsupport.AuditCheckpointV1(t, pool, "k1", k[:])); err == nil || !strings.Contains(err.Error(), "maximum payload exceeded") {
		t.Fatalf("a v1 checkpoint of %d chains: %v, want maximum payload exceeded", chains, err)
	}
	if _, err := store.Take(ctx, pool, keys); err != nil {
		t.Fatalf("taking a checkpoint of %d chains: %v", chains, err)
	}
	cp, err := store.Latest(ctx)
	if err != nil || cp == nil || cp.Chains() != chains {
		t.Fatalf("latest: %+v, %v", cp, err)
	}
	if rep, err := audit.VerifyAllWith(ctx, pool, audit.VerifyOptions{Keys: keys, Checkpoint: cp}); err != nil || rep.Chains != chains {
		t.Fatalf("intact log of %d chains: %d chains, %v", chains, rep.Chains, err)
	}

	deleteChains(t, pool, `DELETE FROM audit_log WHERE aggregate_id = '12345'; DELETE FROM audit_heads WHERE aggregate_id = '12345';
		DELETE FROM audit_log WHERE aggregate_id = '7' AND seq = 2;
		UPDATE audit_heads SET seq = 1, hash = (SELECT hash FROM audit_log WHERE aggregate_id = '7') WHERE aggregate_id = '7'`)
	rep, err := audit.VerifyAllWith(ctx, pool, audit.VerifyOptions{Keys: keys, Checkpoint: cp})
	got := map[string]int64{}
	for _, b := range rep.Broken {
		if b.Problem == audit.ProblemBehindCheckpoint {
			got[b.AggregateID] = b.Seq
		}
	}
	if err == nil || len(rep.Broken) != 2 || got["12345"] != 1 || got["7"] != 2 || rep.Chains != chains {
		t.Fatalf("a chain deleted and one cut: %d chains, broken %v, %v", rep.Chains, rep.Broken, err)
	}

	objects, err := js.ObjectStore(ctx, auditkv.ObjectBucket)
	if err != nil {
		t.Fatal(err)
	}
	// Tampered: the object replaced by one vouching for the cut log (the
	// manifest's digest no longer matches).
	var cutHeads bytes.Buffer
	if _, err := audit.WriteCheckpoint(ctx, pool, keys, cp.Object, &cutHeads); err != nil {
		t.Fatal(err)
	}
	if _, err := objects.PutBytes(ctx, cp.Object, cutHeads.Bytes()); err != nil {
		t.Fatal(err)
	}
	_, err = audit.VerifyAllWith(ctx, pool, audit.VerifyOptions{Keys: keys, Checkpoint: cp})
	if !errors.Is(err, audit.ErrCheckpointHeads) || !strings.Contains(err.Error(), "holds 19999 heads, the manifest 20000") {
		t.Errorf("a tampered object: %v", err)
	}
	// Missing.
	if err := objects.Delete(ctx, cp.Object); err != nil {
		t.Fatal(err)
	}
	_, err = audit.VerifyAllWith(ctx, pool, audit.VerifyOptions{Keys: keys, Checkpoint: cp})
	if !errors.Is(err, audit.ErrCheckpointHeads) || !strings.Contains(err.Error(), cp.Object+`": missing from object store MLC_AUDIT_CHECKPOINT_HEADS`) {
		t.Errorf("a missing object: %v", err)
	}
	// Forged: a manifest vouching for the cut heads, signed without the key.
	forged := *cp
	forged.HeadCount, forged.HeadsSHA256 = chains-1, sha256Of(cutHeads.Bytes())
	if err := store.Put(ctx, forged); err != nil {
		t.Fatal(err)
	}
	if _, err := objects.PutBytes(ctx, cp.Object, cutHeads.Bytes()); err != nil {
		t.Fatal(err)
	}
	latest, err := store.Latest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.VerifyAllWith(ctx, pool, audit.VerifyOptions{Keys: keys, Checkpoint: latest}); !errors.Is(err, audit.ErrCheckpointForged) {
		t.Errorf("a forged manifest: %v", err)
	}

	// Old objects go, once past the grace, but for the latest's.
	store.SetHeadsGrace(time.Nanosecond)
	for range 2 {
		if _, err := store.Take(ctx, pool, keys); err != nil {
			t.Fatal(err)
		}
	}
	if latest, err = store.Latest(ctx); err != nil {
		t.Fatal(err)
	}
	if names := objectNames(t, objects); !slices.Equal(names, []string{latest.Object}) {
		t.Errorf("objects after 2 more checkpoints, past the grace: %v, want only the latest's %s", names, latest.Object)
	}
}

func sha256Of(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// A system upgraded from version 1 checkpoints (heads inline in the
// value) still verifies against the last one stored.
func TestVersion1CheckpointStillRead(t *testing.T) {
	ctx, pool, js, keys := setup(t)
	for _, id := range []string{"a", "b"} {
		if _, err := audit.Append(ctx, pool, audit.Entry{AggregateType: "collection", AggregateID: id, Actor: "test", Action: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	k := sha256.Sum256([]byte("test audit key"))
	v1 := testsupport.AuditCheckpointV1(t, pool, "k1", k[:])
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: auditkv.Bucket, History: 64})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "latest", v1); err != nil {
		t.Fatal(err)
	}
	store, err := auditkv.OpenExisting(ctx, js) // as mlcctl does: no object store yet
	if err != nil {
		t.Fatal(err)
	}
	cp, err := store.Latest(ctx)
	if err != nil || cp == nil || cp.Version != 0 || cp.Chains() != 2 {
		t.Fatalf("v1 checkpoint read back: %+v, %v", cp, err)
	}
	if _, err := audit.VerifyAllWith(ctx, pool, audit.VerifyOptions{Keys: keys, Checkpoint: cp}); err != nil {
		t.Fatalf("intact log against its v1 checkpoint: %v", err)
	}
	deleteChains(t, pool, `DELETE FROM audit_log WHERE aggregate_id = 'b'; DELETE FROM audit_heads WHERE aggregate_id = 'b'`)
	rep, err := audit.VerifyAllWith(ctx, pool, audit.VerifyOptions{Keys: keys, Checkpoint: cp})
	if err == nil || len(rep.Broken) != 1 || rep.Broken[0].AggregateID != "b" || rep.Broken[0].Problem != audit.ProblemBehindCheckpoint {
		t.Errorf("chain b deleted, against the v1 checkpoint: %v, %v", rep.Broken, err)
	}
}
