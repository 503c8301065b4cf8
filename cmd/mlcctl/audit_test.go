package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ml-connector/ml-connector/platform/audit"
	"github.com/ml-connector/ml-connector/platform/audit/auditkv"
	"github.com/ml-connector/ml-connector/platform/secrets"
	"github.com/ml-connector/ml-connector/platform/testsupport"
)

// TestAuditVerifyChecksTheJetStreamCheckpoint: with NATS_URL set, mlcctl
// audit verify reads the newest signed checkpoint from MLC_AUDIT_CHECKPOINTS
// and reports what the database alone cannot show: a chain whose tail was
// cut off (rows deleted, head moved back, so the chain is consistent in
// itself) or cut and written anew, and a chain deleted whole. A checkpoint not signed with the audit
// keys is refused rather than trusted.
func TestAuditVerifyChecksTheJetStreamCheckpoint(t *testing.T) {
	ctx := context.Background()
	dbURL := testsupport.PostgresURL(t)
	nats := testsupport.StartJetStream(t)
	withNATS := map[string]string{"DATABASE_URL": dbURL, "MLC_MASTER_KEY": masterKey, "NATS_URL": nats.URL()}
	dbOnly := map[string]string{"DATABASE_URL": dbURL, "MLC_MASTER_KEY": masterKey}
	run := func(env map[string]string, stdin string, args ...string) (string, error) {
		t.Helper()
		out, err := mlcctlEnv(t, env, stdin, args...)
		if err != nil {
			out += err.Error()
		}
		return out, err
	}
	mustRun := func(env map[string]string, stdin string, args ...string) string {
		t.Helper()
		out, err := run(env, stdin, args...)
		if err != nil {
			t.Fatalf("mlcctl %s: %s", strings.Join(args, " "), out)
		}
		return out
	}
	mustRun(dbOnly, "", "migrate")
	for _, name := range []string{"ifs-a", "ifs-b"} {
		mustRun(dbOnly, "a-client-secret\n", "connections", "add", "--name", name, "--kind", "ifs", "--settings",
			`{"base_url":"https://acme.ifs.cloud","client_id":"mlc","company_codes":["10"]}`, "--secret", "client_secret=-")
	}
	mustRun(dbOnly, "", "connections", "remove", "ifs-b") // ifs-b's chain: added, removed

	if out := mustRun(withNATS, "", "audit", "verify"); !strings.Contains(out, "no audit checkpoint in JetStream yet") {
		t.Errorf("verify before any checkpoint: %s", out)
	}

	// A checkpoint, as the orchestrator takes them.
	keyring, err := secrets.ParseKeyring(masterKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	keys := audit.KeysFrom(keyring)
	db, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	nc := nats.Connect()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	store, err := auditkv.Open(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := store.Take(ctx, db, keys)
	if err != nil {
		t.Fatal(err)
	}
	out := mustRun(withNATS, "", "audit", "verify")
	if !strings.Contains(out, "checked against the checkpoint of") || !strings.Contains(out, "audit log verified: 2 chains, 3 records") {
		t.Fatalf("verify against an honest checkpoint: %s", out)
	}

	// Whoever owns the database (its guard triggers off) cuts ifs-b's
	// tail (its removal) off, moving the head back to the row before, then
	// deletes ifs-a's chain whole.
	if _, err := db.Exec(ctx, `ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only;
		ALTER TABLE audit_heads DISABLE TRIGGER audit_heads_guard`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `
		WITH tail AS (DELETE FROM audit_log WHERE aggregate_type = 'connection' AND aggregate_id = 'ifs-b'
			AND seq = (SELECT max(seq) FROM audit_log WHERE aggregate_id = 'ifs-b') RETURNING seq, prev_hash)
		UPDATE audit_heads h SET seq = tail.seq - 1, hash = tail.prev_hash FROM tail
		WHERE h.aggregate_type = 'connection' AND h.aggregate_id = 'ifs-b'`); err != nil {
		t.Fatal(err)
	}
	if out := mustRun(dbOnly, "", "audit", "verify"); !strings.Contains(out, "audit log verified: 2 chains, 2 records") {
		t.Fatalf("the cut chain should look whole to the database alone (else this test proves nothing): %s", out)
	}
	out, err = run(withNATS, "", "audit", "verify")
	if err == nil || !strings.Contains(out, "chain connection ifs-b broken at seq 2") || !strings.Contains(out, string(audit.ProblemBehindCheckpoint)) {
		t.Fatalf("a cut tail not detected against the checkpoint: %v\n%s", err, out)
	}
	// The tail rewritten: after the cut, the service appends a new, signed
	// row where the removed one was.
	mustRun(dbOnly, "another-secret\n", "connections", "add", "--name", "ifs-b", "--kind", "ifs", "--settings",
		`{"base_url":"https://other.ifs.cloud","client_id":"mlc","company_codes":["10"]}`, "--secret", "client_secret=-")
	if out := mustRun(dbOnly, "", "audit", "verify"); !strings.Contains(out, "audit log verified: 2 chains, 3 records") {
		t.Fatalf("the rewritten chain should look whole to the database alone: %s", out)
	}
	out, err = run(withNATS, "", "audit", "verify")
	if err == nil || !strings.Contains(out, "chain connection ifs-b broken at seq 2") {
		t.Fatalf("a rewritten tail not detected against the checkpoint: %v\n%s", err, out)
	}
	if _, err := db.Exec(ctx, `DELETE FROM audit_log WHERE aggregate_id = 'ifs-a'; DELETE FROM audit_heads WHERE aggregate_id = 'ifs-a'`); err != nil {
		t.Fatal(err)
	}
	out, err = run(withNATS, "", "audit", "verify")
	if err == nil || !strings.Contains(out, "chain connection ifs-a broken at seq 1") {
		t.Fatalf("a chain deleted whole not detected against the checkpoint: %v\n%s", err, out)
	}

	// Whoever can also write NATS cannot vouch for the cut log: heads
	// of the cut log in place of the checkpoint's object do not match its
	// signed manifest, a missing object vouches for nothing, and a
	// manifest for the cut heads without the audit key does not verify.
	objects, err := js.ObjectStore(ctx, auditkv.ObjectBucket)
	if err != nil {
		t.Fatal(err)
	}
	var cutHeads bytes.Buffer
	if _, err := audit.WriteCheckpoint(ctx, db, keys, cp.Object, &cutHeads); err != nil {
		t.Fatal(err)
	}
	if _, err := objects.PutBytes(ctx, cp.Object, cutHeads.Bytes()); err != nil {
		t.Fatal(err)
	}
	out, err = run(withNATS, "", "audit", "verify")
	if err == nil || !strings.Contains(out, "audit log not verified") || !strings.Contains(out, `checkpoint heads missing or not the ones their manifest signed: object "`+cp.Object+`" holds 1 heads, the manifest 2`) {
		t.Fatalf("a tampered heads object was trusted: %v\n%s", err, out)
	}
	if err := objects.Delete(ctx, cp.Object); err != nil {
		t.Fatal(err)
	}
	out, err = run(withNATS, "", "audit", "verify")
	if err == nil || !strings.Contains(out, `object "`+cp.Object+`": missing from object store MLC_AUDIT_CHECKPOINT_HEADS`) {
		t.Fatalf("a missing heads object was not reported: %v\n%s", err, out)
	}
	forged := cp
	forged.HeadsSHA256 = sha256.New().Sum(nil)
	if err := store.Put(ctx, forged); err != nil {
		t.Fatal(err)
	}
	out, err = run(withNATS, "", "audit", "verify")
	if err == nil || !strings.Contains(out, "signature does not verify") {
		t.Fatalf("a forged checkpoint was trusted: %v\n%s", err, out)
	}
}
