package testsupport

import (
	"context"
	"fmt"
	"testing"

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
