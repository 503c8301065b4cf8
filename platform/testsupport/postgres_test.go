package testsupport

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/ml-connector/ml-connector/platform/database"
)

func databaseExists(t *testing.T, name string) bool {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, PostgresAdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	return exists
}

func TestPostgresURLCreatesAndDropsDatabase(t *testing.T) {
	var names []string
	var conns []*pgx.Conn
	t.Run("use", func(t *testing.T) {
		for range 2 {
			raw := PostgresURL(t)
			u, err := url.Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			name := strings.TrimPrefix(u.Path, "/")
			if !regexp.MustCompile(`^mlct_[0-9a-f]{16}$`).MatchString(name) {
				t.Errorf("database name %q, want mlct_ and 16 hex digits", name)
			}
			names = append(names, name)

			// Leave a connection open: the drop must not be blocked by it.
			conn, err := pgx.Connect(context.Background(), raw)
			if err != nil {
				t.Fatalf("connect to %s: %v", name, err)
			}
			conns = append(conns, conn)
			var current string
			if err := conn.QueryRow(context.Background(), `SELECT current_database()`).Scan(&current); err != nil || current != name {
				t.Fatalf("current_database() = %q, %v; want %q", current, err, name)
			}
		}
		if names[0] == names[1] {
			t.Errorf("two calls gave the same database %q", names[0])
		}
	})
	for _, c := range conns {
		c.Close(context.Background())
	}
	for _, name := range names {
		if databaseExists(t, name) {
			t.Errorf("database %s still exists after its test ended", name)
		}
	}
}

func TestPoolIsMigratedAndClosed(t *testing.T) {
	var name string
	var closed func() error
	t.Run("use", func(t *testing.T) {
		pool := Pool(t)
		ctx := context.Background()
		v, err := database.MigrationVersion(ctx, pool)
		if err != nil || v < 1 {
			t.Fatalf("MigrationVersion = %d, %v; want migrated", v, err)
		}
		if err := pool.QueryRow(ctx, `SELECT current_database()`).Scan(&name); err != nil {
			t.Fatal(err)
		}
		closed = func() error { return pool.Ping(ctx) }
	})
	if err := closed(); err == nil {
		t.Error("pool still usable after its test ended")
	}
	if databaseExists(t, name) {
		t.Errorf("database %s still exists after its test ended", name)
	}
}

// recordingTB stands in for a test, recording how PostgresURL ends it.
type recordingTB struct {
	testing.TB
	mu      sync.Mutex
	fatal   string
	skipped bool
}

func (r *recordingTB) Helper() {}
func (r *recordingTB) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.fatal = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}
func (r *recordingTB) Fatal(args ...any) { r.Fatalf("%s", fmt.Sprint(args...)) }
func (r *recordingTB) Skipf(string, ...any) {
	r.skipped = true
	runtime.Goexit()
}
func (r *recordingTB) Skip(...any)    { r.Skipf("") }
func (r *recordingTB) SkipNow()       { r.Skipf("") }
func (r *recordingTB) Cleanup(func()) {}

func TestUnreachablePostgresFailsTheTest(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	t.Setenv(PostgresAdminURLEnv, fmt.Sprintf("postgres://postgres:adminpw@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=2", port))

	for _, tc := range []struct {
		name string
		call func(testing.TB)
	}{
		{"PostgresURL", func(tb testing.TB) { PostgresURL(tb) }},
		{"Pool", func(tb testing.TB) { Pool(tb) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recordingTB{TB: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				tc.call(rec)
			}()
			<-done
			if rec.skipped {
				t.Fatal("skipped; an unreachable database must fail the test")
			}
			if !strings.Contains(rec.fatal, "cannot reach PostgreSQL") || !strings.Contains(rec.fatal, PostgresAdminURLEnv) {
				t.Errorf("failure message %q should say PostgreSQL is unreachable and name %s", rec.fatal, PostgresAdminURLEnv)
			}
			if strings.Contains(rec.fatal, "adminpw") {
				t.Errorf("failure message %q reveals the password", rec.fatal)
			}
		})
	}
}
