package testsupport

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ml-connector/ml-connector/platform/audit"
	"github.com/ml-connector/ml-connector/platform/database"
)

// AuditChains appends one entry to each of n audit chains, typ "1" to
// typ "n" (signed with the keys audit.SignWith set, if any), a few
// thousand per transaction: a large audit log quickly.
func AuditChains(t testing.TB, pool *pgxpool.Pool, typ string, n int) {
	t.Helper()
	const perTx = 2000
	for from := 0; from < n; from += perTx {
		entries := make([]audit.Entry, 0, perTx)
		for i := from; i < min(from+perTx, n); i++ {
			entries = append(entries, audit.Entry{AggregateType: typ, AggregateID: fmt.Sprint(i + 1), Actor: "test", Action: "created"})
		}
		err := database.WithTx(context.Background(), pool, func(tx pgx.Tx) error {
			_, err := audit.AppendAll(context.Background(), tx, entries)
			return err
		})
		if err != nil {
			t.Fatalf("testsupport: audit chains: %v", err)
		}
	}
}

// AuditCheckpointV1 returns a version 1 audit checkpoint of pool's chain
// heads, as releases before version 2 stored it (JSON, every head
// inline), signed with key (id keyID) as the package doc of
// platform/audit describes: HMAC-SHA256 of "mlc-audit-checkpoint-v1", a
// zero byte, then taken_at and each head's type, id, seq and hash, each
// field its 8-byte big-endian length and its bytes. Tests show such a
// checkpoint, still stored after an upgrade, is verified against.
func AuditCheckpointV1(t testing.TB, pool *pgxpool.Pool, keyID string, key []byte) []byte {
	t.Helper()
	ctx := context.Background()
	rows, err := pool.Query(ctx, `SELECT aggregate_type, aggregate_id, seq, hash FROM audit_heads WHERE seq > 0 ORDER BY 1, 2`)
	if err != nil {
		t.Fatalf("testsupport: v1 checkpoint: %v", err)
	}
	heads, err := pgx.CollectRows(rows, pgx.RowToStructByPos[audit.Head])
	if err != nil {
		t.Fatalf("testsupport: v1 checkpoint: %v", err)
	}
	taken := time.Now().UTC().Truncate(time.Microsecond)
	var msg []byte
	field := func(f []byte) {
		msg = binary.BigEndian.AppendUint64(msg, uint64(len(f)))
		msg = append(msg, f...)
	}
	field([]byte(taken.Format(time.RFC3339Nano)))
	for _, h := range heads {
		field([]byte(h.AggregateType))
		field([]byte(h.AggregateID))
		field(binary.BigEndian.AppendUint64(nil, uint64(h.Seq)))
		field(h.Hash)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("mlc-audit-checkpoint-v1\x00"))
	m.Write(msg)
	data, err := json.Marshal(map[string]any{"taken_at": taken, "heads": heads, "key_id": keyID, "mac": m.Sum(nil)})
	if err != nil {
		t.Fatalf("testsupport: v1 checkpoint: %v", err)
	}
	return data
}
