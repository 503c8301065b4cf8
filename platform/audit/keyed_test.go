package audit_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ml-connector/ml-connector/platform/audit"
	"github.com/ml-connector/ml-connector/platform/testsupport"
)

func testKeys(t *testing.T, ids ...string) *audit.Keys {
	t.Helper()
	keys := map[string][]byte{}
	for _, id := range ids {
		k := sha256.Sum256([]byte("audit-key-" + id))
		keys[id] = k[:]
	}
	k, err := audit.NewKeys(ids[0], keys)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// rehash rewrites a chain from seq onwards the way someone with write
// access but without the audit key can: recomputed hashes, links and head.
func rehash(t *testing.T, ctx context.Context, pool *pgxpool.Pool, typ, id string) {
	t.Helper()
	recs, err := audit.List(ctx, pool, typ, id)
	if err != nil {
		t.Fatal(err)
	}
	prev := make([]byte, 32)
	var sql string
	for _, r := range recs {
		r.PrevHash = prev
		h := sha256.New()
		field := func(b []byte) {
			var n [8]byte
			binary.BigEndian.PutUint64(n[:], uint64(len(b)))
			h.Write(n[:])
			h.Write(b)
		}
		var seq [8]byte
		binary.BigEndian.PutUint64(seq[:], uint64(r.Seq))
		for _, f := range [][]byte{[]byte("mlc-audit-v1"), []byte(r.AggregateType), []byte(r.AggregateID), seq[:],
			[]byte(r.OccurredAt.UTC().Format("2006-01-02T15:04:05.999999999Z07:00")), []byte(r.Actor), []byte(r.Action), r.Payload, r.PrevHash} {
			field(f)
		}
		r.Hash = h.Sum(nil)
		sql += fmt.Sprintf("UPDATE audit_log SET prev_hash = '\\x%x', hash = '\\x%x' WHERE id = %d;\n", r.PrevHash, r.Hash, r.ID)
		prev = r.Hash
	}
	sql += fmt.Sprintf("UPDATE audit_heads SET hash = '\\x%x' WHERE aggregate_type = '%s' AND aggregate_id = '%s';", prev, typ, id)
	tamper(t, pool, sql)
}

// Signed rows: a chain rewritten with recomputed hashes verifies without
// the key, and is caught with it, naming the row; rows signed under a
// previous key still verify after rotation.
func TestKeyedChainDetectsRewriteAndRotates(t *testing.T) {
	ctx := context.Background()
	pool := testsupport.Pool(t)
	old := testKeys(t, "k1")
	audit.SignWith(old)
	t.Cleanup(func() { audit.SignWith(nil) })
	appendN(t, pool, "collection", "victim", 3)
	rotated := testKeys(t, "k2", "k1") // k2 signs from now on; k1 still verifies
	audit.SignWith(rotated)
	appendN(t, pool, "collection", "victim", 2)
	appendN(t, pool, "collection", "bystander", 2)
	if rep, err := audit.VerifyAllWith(ctx, pool, audit.VerifyOptions{Keys: rotated}); err != nil || rep.Records != 7 {
		t.Fatalf("intact log across a rotation: %+v, %v", rep, err)
	}

	tamper(t, pool, `UPDATE audit_log SET payload = '{"step":9}' WHERE aggregate_id = 'victim' AND seq = 2`)
	rehash(t, ctx, pool, "collection", "victim")
	if _, err := audit.VerifyAll(ctx, pool); err != nil {
		t.Fatalf("the rewrite should pass the unkeyed check (that is the attack): %v", err)
	}
	rep, err := audit.VerifyAllWith(ctx, pool, audit.VerifyOptions{Keys: rotated})
	var ce *audit.ChainError
	if !errors.As(err, &ce) || len(rep.Broken) != 1 || ce.AggregateID != "victim" || ce.Seq != 2 || ce.Problem != audit.ProblemBadMAC || ce.RowID == 0 {
		t.Fatalf("keyed verify of a rehashed chain: %v (%+v)", err, ce)
	}
	if got := ce.Error(); !strings.Contains(got, fmt.Sprintf("victim broken at seq 2 (audit_log id %d)", ce.RowID)) {
		t.Errorf("error %q does not name the row", got)
	}
}

// A signed checkpoint of the heads, kept outside the database, catches a
// chain deleted whole (rows and head) and a chain cut short with its head
// moved back, neither of which the log itself can show.
func TestCheckpointDetectsDeletedAndCutChains(t *testing.T) {
	ctx := context.Background()
	pool := testsupport.Pool(t)
	keys := testKeys(t, "k1")
	audit.SignWith(keys)
	t.Cleanup(func() { audit.SignWith(nil) })
	appendN(t, pool, "collection", "gone", 3)
	appendN(t, pool, "collection", "cut", 4)
	appendN(t, pool, "collection", "kept", 2)
	cp, err := audit.TakeCheckpoint(ctx, pool, keys)
	if err != nil || len(cp.Heads) != 3 {
		t.Fatalf("checkpoint: %+v, %v", cp, err)
	}
	appendN(t, pool, "collection", "kept", 1) // later appends are fine
	if _, err := audit.VerifyAllWith(ctx, pool, audit.VerifyOptions{Keys: keys, Checkpoint: &cp}); err != nil {
		t.Fatalf("intact log against its checkpoint: %v", err)
	}

	tamper(t, pool, `DELETE FROM audit_log WHERE aggregate_id = 'gone'; DELETE FROM audit_heads WHERE aggregate_id = 'gone';
		DELETE FROM audit_log WHERE aggregate_id = 'cut' AND seq > 2;
		UPDATE audit_heads SET seq = 2, hash = (SELECT hash FROM audit_log WHERE aggregate_id = 'cut' AND seq = 2) WHERE aggregate_id = 'cut'`)
	if _, err := audit.VerifyAllWith(ctx, pool, audit.VerifyOptions{Keys: keys}); err != nil {
		t.Fatalf("without the checkpoint the deletions are invisible (that is the attack): %v", err)
	}
	rep, err := audit.VerifyAllWith(ctx, pool, audit.VerifyOptions{Keys: keys, Checkpoint: &cp})
	if err == nil || len(rep.Broken) != 2 {
		t.Fatalf("verify against the checkpoint: %v, broken %v", err, rep.Broken)
	}
	for _, b := range rep.Broken {
		want := map[string]int64{"gone": 3, "cut": 4}[b.AggregateID]
		if b.Problem != audit.ProblemBehindCheckpoint || b.Seq != want {
			t.Errorf("%s: %v, want seq %d behind the checkpoint", b.AggregateID, b, want)
		}
	}
	// A forged checkpoint vouches for nothing.
	cp.Heads = cp.Heads[1:]
	if _, err := audit.VerifyAllWith(ctx, pool, audit.VerifyOptions{Keys: keys, Checkpoint: &cp}); !errors.Is(err, audit.ErrCheckpointForged) {
		t.Errorf("edited checkpoint: %v, want ErrCheckpointForged", err)
	}
}

// VerifyChain with keys checks one chain as strictly as VerifyAllWith: a
// chain rewritten with recomputed hashes and its MACs dropped passes the
// lenient Verify and is caught, and other chains are not read.
func TestVerifyChainRequiresMACs(t *testing.T) {
	ctx := context.Background()
	pool := testsupport.Pool(t)
	keys := testKeys(t, "k1")
	audit.SignWith(keys)
	t.Cleanup(func() { audit.SignWith(nil) })
	appendN(t, pool, "collection", "victim", 3)
	appendN(t, pool, "collection", "bystander", 2)
	if err := audit.VerifyChain(ctx, pool, "collection", "victim", audit.VerifyOptions{Keys: keys}); err != nil {
		t.Fatalf("intact chain: %v", err)
	}

	tamper(t, pool, `UPDATE audit_log SET payload = '{"step":9}', mac = NULL, mac_key_id = NULL WHERE aggregate_id = 'victim'`)
	rehash(t, ctx, pool, "collection", "victim")
	if err := audit.Verify(ctx, pool, "collection", "victim"); err != nil {
		t.Fatalf("the lenient check lets unsigned rows pass (that is the attack): %v", err)
	}
	var ce *audit.ChainError
	err := audit.VerifyChain(ctx, pool, "collection", "victim", audit.VerifyOptions{Keys: keys})
	if !errors.As(err, &ce) || ce.Seq != 1 || ce.Problem != audit.ProblemUnsigned {
		t.Fatalf("keyed check of an unsigned rewrite: %v", err)
	}
	if err := audit.VerifyChain(ctx, pool, "collection", "bystander", audit.VerifyOptions{Keys: keys}); err != nil {
		t.Errorf("another chain is blamed: %v", err)
	}
	if err := audit.VerifyChain(ctx, pool, "collection", "victim", audit.VerifyOptions{Keys: keys, Checkpoint: &audit.Checkpoint{}}); err == nil {
		t.Error("a checkpoint is accepted for one chain")
	}
}
