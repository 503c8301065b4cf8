package testsupport

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ml-connector/ml-connector/platform/database"
)

// PostgresAdminURLEnv names the environment variable holding the URL of a
// PostgreSQL database that tests may use to create and drop databases.
const PostgresAdminURLEnv = "MLC_TEST_DATABASE_URL"

// DefaultPostgresAdminURL is used when PostgresAdminURLEnv is unset: the
// local development server, trust authentication.
const DefaultPostgresAdminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// postgresTimeout bounds each administrative step, so an unreachable or
// hung server fails the test instead of stalling it.
const postgresTimeout = 30 * time.Second

// PostgresURL creates an empty database with a unique name (mlct_ and 16
// hex digits) and returns its URL. The database is dropped, with any
// connections still open to it, when the test ends.
//
// The test fails if PostgreSQL cannot be reached; it is never skipped.
func PostgresURL(t testing.TB) string {
	t.Helper()
	admin := PostgresAdminURL()
	u, err := url.Parse(admin)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("testsupport: %s must be a postgres:// URL, got %q", PostgresAdminURLEnv, redactURL(admin))
	}

	name := "mlct_" + randomHex(8)
	ident := pgx.Identifier{name}.Sanitize()
	if err := adminExec(admin, "CREATE DATABASE "+ident); err != nil {
		t.Fatalf("testsupport: %v", err)
	}
	t.Cleanup(func() {
		if err := adminExec(admin, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
			t.Errorf("testsupport: %v", err)
		}
	})

	u.Path = "/" + name
	u.RawPath = ""
	return u.String()
}

// Pool returns a connection pool, opened with [database.Open], on a fresh
// database from [PostgresURL] with every migration applied. The pool is
// closed when the test ends, before the database is dropped.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	dbURL := PostgresURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), postgresTimeout)
	defer cancel()

	pool, err := database.Open(ctx, dbURL)
	if err != nil {
		t.Fatalf("testsupport: open test database: %v", err)
	}
	t.Cleanup(pool.Close)
	if err := database.Migrate(ctx, pool); err != nil {
		t.Fatalf("testsupport: migrate test database: %v", err)
	}
	return pool
}

// PostgresAdminURL is the server tests create their databases on: $MLC_TEST_DATABASE_URL
// or DefaultPostgresAdminURL.
func PostgresAdminURL() string {
	if s := strings.TrimSpace(os.Getenv(PostgresAdminURLEnv)); s != "" {
		return s
	}
	return DefaultPostgresAdminURL
}

// adminExec runs one statement on a short-lived connection to the admin
// database. CREATE and DROP DATABASE cannot run in a transaction, and a
// fresh connection keeps no session to the admin database open between tests.
func adminExec(admin, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), postgresTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return fmt.Errorf("cannot reach PostgreSQL at %s (set %s to a server where tests may create databases): %w",
			redactURL(admin), PostgresAdminURLEnv, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails; see crypto/rand.Read
	return hex.EncodeToString(b)
}
