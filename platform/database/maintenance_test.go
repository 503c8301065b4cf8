package database_test

import (
	"context"
	"strings"
	"testing"

	"github.com/ml-connector/ml-connector/platform/database"
	"github.com/ml-connector/ml-connector/platform/testsupport"
)

// A table whose autovacuum is turned off is named, however "false" was
// spelled (Postgres keeps the spelling), and one turned on is not; the server-wide
// setting is reported as the server has it (CI's Postgres runs with it
// off, a developer's usually on), so both answers are checked against it.
func TestUnvacuumedNamesWhatIsNeverVacuumed(t *testing.T) {
	ctx := context.Background()
	pool := testsupport.Pool(t)
	var serverOff bool
	if err := pool.QueryRow(ctx, `SELECT NOT current_setting('autovacuum')::bool`).Scan(&serverOff); err != nil {
		t.Fatal(err)
	}

	got, err := database.Unvacuumed(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(got, "tables") {
		t.Errorf("fresh schema: %q names tables", got)
	}
	if strings.Contains(got, "on the server") != serverOff {
		t.Errorf("server autovacuum off = %v, but Unvacuumed = %q", serverOff, got)
	}

	if _, err := pool.Exec(ctx, `ALTER TABLE collections SET (autovacuum_enabled = false);
		ALTER TABLE audit_heads SET (autovacuum_enabled = off, fillfactor = 90);
		ALTER TABLE refunds SET (autovacuum_enabled = on)`); err != nil {
		t.Fatal(err)
	}
	got, err = database.Unvacuumed(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, "tables audit_heads, collections (autovacuum_enabled = false)") {
		t.Errorf("Unvacuumed = %q, want audit_heads and collections named", got)
	}
}
