package database_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ml-connector/ml-connector/platform/database"
	"github.com/ml-connector/ml-connector/platform/testsupport"
)

// expectedTables are the tables other packages build on.
var expectedTables = []string{
	"connections", "connection_secrets", "poll_state", "event_cursors",
	"customer_links", "collections", "refunds", "processed_events",
	"erp_postings", "exceptions", "audit_log", "audit_heads",
}

// migrationFiles reports how many migration files there are and the highest
// version among them, so the tests keep up as migrations are added.
func migrationFiles(t *testing.T) (count int, latest int64) {
	t.Helper()
	entries, err := os.ReadDir("migrations")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		prefix, _, ok := strings.Cut(e.Name(), "_")
		if !ok || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		v, err := strconv.ParseInt(prefix, 10, 64)
		if err != nil {
			t.Fatalf("migration %s: bad version prefix: %v", e.Name(), err)
		}
		latest = max(latest, v)
		count++
	}
	if count == 0 {
		t.Fatal("no migrations found")
	}
	return count, latest
}

func openEmpty(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool, err := database.Open(context.Background(), testsupport.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func appliedRows(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	err := pool.QueryRow(context.Background(),
		`SELECT count(*) FROM goose_db_version WHERE version_id > 0`).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestMigrate(t *testing.T) {
	ctx := context.Background()
	pool := openEmpty(t)
	count, latest := migrationFiles(t)

	v, err := database.MigrationVersion(ctx, pool)
	if err != nil || v != 0 {
		t.Fatalf("MigrationVersion before migrating = %d, %v; want 0, nil", v, err)
	}
	var created bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass('goose_db_version') IS NOT NULL`).Scan(&created); err != nil {
		t.Fatal(err)
	}
	if created {
		t.Error("MigrationVersion created the version table; it must only read")
	}

	if err := database.Migrate(ctx, pool); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if v, err := database.MigrationVersion(ctx, pool); err != nil || v != latest {
		t.Fatalf("MigrationVersion = %d, %v; want %d", v, err, latest)
	}
	applied := appliedRows(t, pool)
	if applied != count {
		t.Errorf("goose_db_version records %d migrations, want %d", applied, count)
	}

	if err := database.Migrate(ctx, pool); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	if v, err := database.MigrationVersion(ctx, pool); err != nil || v != latest {
		t.Fatalf("MigrationVersion after second Migrate = %d, %v; want %d", v, err, latest)
	}
	if got := appliedRows(t, pool); got != applied {
		t.Errorf("second Migrate recorded %d more migrations, want none", got-applied)
	}

	for _, table := range expectedTables {
		var comment *string
		err := pool.QueryRow(ctx, `SELECT obj_description(to_regclass($1), 'pg_class')`, table).Scan(&comment)
		switch {
		case err != nil:
			t.Errorf("table %s: %v", table, err)
		case comment == nil || *comment == "":
			// obj_description is NULL both for a missing table and a
			// missing comment; the second query tells them apart.
			var exists bool
			pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&exists)
			if !exists {
				t.Errorf("table %s does not exist", table)
			} else {
				t.Errorf("table %s has no COMMENT", table)
			}
		}
	}
}

func TestMigrateConcurrently(t *testing.T) {
	ctx := context.Background()
	url := testsupport.PostgresURL(t)
	count, latest := migrationFiles(t)

	// Separate pools, as separate replicas would have.
	const replicas = 4
	pools := make([]*pgxpool.Pool, replicas)
	for i := range pools {
		p, err := database.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		pools[i] = p
	}

	start := make(chan struct{})
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i, p := range pools {
		wg.Go(func() {
			<-start
			errs[i] = database.Migrate(ctx, p)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: Migrate: %v", i, err)
		}
	}

	if v, err := database.MigrationVersion(ctx, pools[0]); err != nil || v != latest {
		t.Fatalf("MigrationVersion = %d, %v; want %d", v, err, latest)
	}
	// Each migration recorded once: exactly one replica applied it.
	var rows, distinct int
	err := pools[0].QueryRow(ctx, `
		SELECT count(*), count(DISTINCT version_id) FROM goose_db_version WHERE version_id > 0`).
		Scan(&rows, &distinct)
	if err != nil {
		t.Fatal(err)
	}
	if rows != count || distinct != count {
		t.Errorf("goose_db_version has %d rows for %d versions, want %d each", rows, distinct, count)
	}
}

// A concurrent index build that failed or was cancelled (a pod killed
// mid-migration, the start-up deadline) leaves an invalid index behind;
// the migration's next attempt must build it again rather than keep it and
// drop the valid index it replaces (00021).
func TestIndexMigrationRebuildsAnIndexAFailedAttemptLeft(t *testing.T) {
	ctx := context.Background()
	pool := testsupport.Pool(t) // migrated
	for _, stmt := range []string{
		// As if 00021 had not been applied and its build had failed.
		`DELETE FROM goose_db_version WHERE version_id = 21`,
		`CREATE INDEX collections_customer_idx ON collections (connection_id, company, customer_id)`,
		`UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'collections_customer_key_idx'::regclass`,
	} {
		if _, err := pool.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	if err := database.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	var valid, old bool
	if err := pool.QueryRow(ctx, `SELECT
		(SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('collections_customer_key_idx')),
		to_regclass('collections_customer_idx') IS NOT NULL`).Scan(&valid, &old); err != nil {
		t.Fatal(err)
	}
	if !valid || old {
		t.Errorf("after the retry: customer_key index valid %v, old index still there %v; want a valid new index only", valid, old)
	}
}
