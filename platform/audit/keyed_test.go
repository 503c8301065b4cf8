package audit_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

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

// signingWith makes Append sign with the keys ids until the test ends.
func signingWith(t *testing.T, ids ...string) *audit.Keys {
	t.Helper()
	keys := testKeys(t, ids...)
	audit.SignWith(keys)
	t.Cleanup(func() { audit.SignWith(nil) })
	return keys
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
// moved back, neither of which the log itself can show; in the version 2
// format (a manifest and a heads stream) and in version 1 (heads inline),
// still read after an upgrade.
func TestCheckpointDetectsDeletedAndCutChains(t *testing.T) {
	for _, v := range []struct {
		name string
		take func(t *testing.T, pool *pgxpool.Pool, keys *audit.Keys) *audit.Checkpoint
	}{
		{"v2", takeV2}, {"v1", func(t *testing.T, pool *pgxpool.Pool, keys *audit.Keys) *audit.Checkpoint {
			k := sha256.Sum256([]byte("audit-key-k1")) // testKeys' k1
			var cp audit.Checkpoint
			if err := json.Unmarshal(testsupport.AuditCheckpointV1(t, pool, "k1", k[:]), &cp); err != nil {
				t.Fatal(err)
			}
			return &cp
		}},
	} {
		t.Run(v.name, func(t *testing.T) {
			ctx := context.Background()
			pool := testsupport.Pool(t)
			keys := signingWith(t, "k1")
			appendN(t, pool, "collection", "gone", 3)
			appendN(t, pool, "collection", "cut", 4)
			appendN(t, pool, "collection", "kept", 2)
			cp := v.take(t, pool, keys)
			if cp.Chains() != 3 {
				t.Fatalf("checkpoint: %+v", cp)
			}
			appendN(t, pool, "collection", "kept", 1) // later appends are fine
			if _, err := audit.VerifyAllWith(ctx, pool, audit.VerifyOptions{Keys: keys, Checkpoint: cp}); err != nil {
				t.Fatalf("intact log against its checkpoint: %v", err)
			}

			tamper(t, pool, `DELETE FROM audit_log WHERE aggregate_id = 'gone'; DELETE FROM audit_heads WHERE aggregate_id = 'gone';
				DELETE FROM audit_log WHERE aggregate_id = 'cut' AND seq > 2;
				UPDATE audit_heads SET seq = 2, hash = (SELECT hash FROM audit_log WHERE aggregate_id = 'cut' AND seq = 2) WHERE aggregate_id = 'cut'`)
			if _, err := audit.VerifyAllWith(ctx, pool, audit.VerifyOptions{Keys: keys}); err != nil {
				t.Fatalf("without the checkpoint the deletions are invisible (that is the attack): %v", err)
			}
			rep, err := audit.VerifyAllWith(ctx, pool, audit.VerifyOptions{Keys: keys, Checkpoint: cp})
			if err == nil || len(rep.Broken) != 2 || rep.Chains != 3 {
				t.Fatalf("verify against the checkpoint: %v, %d chains, broken %v", err, rep.Chains, rep.Broken)
			}
			for _, b := range rep.Broken {
				want := map[string]int64{"gone": 3, "cut": 4}[b.AggregateID]
				if b.Problem != audit.ProblemBehindCheckpoint || b.Seq != want {
					t.Errorf("%s: %v, want seq %d behind the checkpoint", b.AggregateID, b, want)
				}
			}
			// A forged checkpoint vouches for nothing.
			forged := *cp
			forged.TakenAt = forged.TakenAt.Add(-time.Hour)
			if _, err := audit.VerifyAllWith(ctx, pool, audit.VerifyOptions{Keys: keys, Checkpoint: &forged}); !errors.Is(err, audit.ErrCheckpointForged) {
				t.Errorf("edited checkpoint: %v, want ErrCheckpointForged", err)
			}
		})
	}
}

// takeV2 takes a version 2 checkpoint, its heads stream kept in memory.
func takeV2(t *testing.T, pool *pgxpool.Pool, keys *audit.Keys) *audit.Checkpoint {
	t.Helper()
	var heads bytes.Buffer
	cp, err := audit.WriteCheckpoint(context.Background(), pool, keys, "test-object", &heads)
	if err != nil {
		t.Fatal(err)
	}
	cp.OpenHeads = func(context.Context) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(heads.Bytes())), nil
	}
	return &cp
}

// A version 2 checkpoint whose heads stream was changed, cut or lost, or
// whose manifest was edited, vouches for nothing, and says what is wrong.
func TestCheckpointHeadsStreamTampering(t *testing.T) {
	ctx := context.Background()
	pool := testsupport.Pool(t)
	keys := signingWith(t, "k1")
	appendN(t, pool, "collection", "a", 2)
	appendN(t, pool, "collection", "b", 1)
	var heads bytes.Buffer
	cp, err := audit.WriteCheckpoint(ctx, pool, keys, "obj", &heads)
	if err != nil || cp.HeadCount != 2 || cp.Version != 2 {
		t.Fatalf("checkpoint: %+v, %v", cp, err)
	}
	verifyWith := func(c audit.Checkpoint, stream []byte, openErr error) error {
		c.OpenHeads = func(context.Context) (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(stream)), openErr
		}
		_, err := audit.VerifyAllWith(ctx, pool, audit.VerifyOptions{Keys: keys, Checkpoint: &c})
		return err
	}
	if err := verifyWith(cp, heads.Bytes(), nil); err != nil {
		t.Fatalf("intact: %v", err)
	}
	flipped := bytes.Clone(heads.Bytes())
	flipped[len(flipped)-1] ^= 1                          // the last head's hash
	second := 4*8 + len("collection") + len("a") + 8 + 32 // where head b starts
	for name, c := range map[string]struct {
		stream  []byte
		openErr error
		want    string
	}{
		"hash flipped":    {flipped, nil, "SHA-256"},
		"last head cut":   {heads.Bytes()[:second], nil, "holds 1 heads, the manifest 2"},
		"cut mid-head":    {heads.Bytes()[:len(heads.Bytes())-5], nil, "unexpected EOF"},
		"missing":         {nil, errors.New("missing from object store X"), `object "obj": missing from object store X`},
		"garbage lengths": {bytes.Repeat([]byte{0xff}, 16), nil, "at most 4096 expected"},
	} {
		err := verifyWith(cp, c.stream, c.openErr)
		if !errors.Is(err, audit.ErrCheckpointHeads) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrCheckpointHeads saying %q", name, err, c.want)
		}
	}
	edited := cp
	edited.HeadCount = 1
	if err := verifyWith(edited, heads.Bytes()[:second], nil); !errors.Is(err, audit.ErrCheckpointForged) {
		t.Errorf("manifest edited to match a cut stream: %v, want ErrCheckpointForged", err)
	}
}

// Taking a checkpoint needs memory for a page of heads, not for every
// chain: from 20,000 to 40,000 chains its allocations grow by a constant
// per page (and none per head), where the version 1 checkpoint allocated
// every head (~800 bytes a head, 27 MiB at 32,823 chains).
func TestCheckpointMemoryDoesNotGrowWithChains(t *testing.T) {
	ctx := context.Background()
	pool := testsupport.Pool(t)
	keys := testKeys(t, "k1")
	measure := func() (bytes, mallocs uint64, heads int64) {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		cp, err := audit.WriteCheckpoint(ctx, pool, keys, "obj", io.Discard)
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatal(err)
		}
		return after.TotalAlloc - before.TotalAlloc, after.Mallocs - before.Mallocs, cp.HeadCount
	}
	seedHeads(t, pool, 1, 20000)
	measure() // warm the pool's connections and statement cache
	b20, m20, n20 := measure()
	seedHeads(t, pool, 20001, 40000)
	b40, m40, n40 := measure()
	if n20 != 20000 || n40 != 40000 {
		t.Fatalf("checkpoints of %d and %d heads", n20, n40)
	}
	pages := uint64(20000 / 1000)
	t.Logf("20,000 heads: %d bytes in %d allocations; 40,000: %d bytes in %d allocations", b20, m20, b40, m40)
	// What 20,000 more heads may cost: a few allocations and 2 KiB per
	// page (the query, its arguments, the page's last key).
	if m40 > m20+pages*64 || b40 > b20+pages*4096 {
		t.Errorf("20,000 more heads cost %d more bytes in %d more allocations: memory grows with the chains", b40-b20, m40-m20)
	}
}

// seedHeads writes chain heads from..to directly (a checkpoint reads only
// the heads).
func seedHeads(t *testing.T, pool *pgxpool.Pool, from, to int) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), `INSERT INTO audit_heads (aggregate_type, aggregate_id, seq, hash)
		SELECT 'collection', 'jde:00070:invoice:' || g, 1 + g % 7, sha256(g::text::bytea) FROM generate_series($1::int, $2::int) g`, from, to); err != nil {
		t.Fatal(err)
	}
}

// VerifyChain with keys checks one chain as strictly as VerifyAllWith: a
// chain rewritten with recomputed hashes and its MACs dropped passes the
// lenient Verify and is caught, and other chains are not read.
func TestVerifyChainRequiresMACs(t *testing.T) {
	ctx := context.Background()
	pool := testsupport.Pool(t)
	keys := signingWith(t, "k1")
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
