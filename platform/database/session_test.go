package database_test

import (
	"strings"
	"testing"

	"github.com/ml-connector/ml-connector/platform/database"
	"github.com/ml-connector/ml-connector/platform/secrets"
	"github.com/ml-connector/ml-connector/platform/testsupport"
)

func withAppName(url, name string) string {
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return url + sep + "application_name=" + name
}

// Behind PgBouncer in transaction mode a session advisory lock must not go
// through the pooler. With a SessionURL, locks (and migrations) are taken
// on connections to it, and ordinary queries on the main pool.
func TestSessionURLCarriesLocksAndMigrations(t *testing.T) {
	ctx := t.Context()
	url := testsupport.PostgresURL(t)
	pool, err := database.OpenWith(ctx, withAppName(url, "mlc-main"), database.Options{
		MaxConns:   4,
		SessionURL: secrets.NewValue(withAppName(url, "mlc-session")),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer database.Close(pool)
	if err := database.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	lock, ok, err := database.TryLock(ctx, pool, "jde-poller/acme")
	if err != nil || !ok {
		t.Fatalf("TryLock: %v %v", ok, err)
	}
	defer lock.Release(ctx)

	var holder string
	key := uint64(database.LockKey("jde-poller/acme"))
	if err := pool.QueryRow(ctx, `SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1 AND l.objid = $2`,
		uint32(key>>32), uint32(key)).Scan(&holder); err != nil {
		t.Fatal(err)
	}
	if holder != "mlc-session" {
		t.Errorf("lock held by a %q connection, want the session pool's", holder)
	}
	var app string
	if err := pool.QueryRow(ctx, `SELECT current_setting('application_name')`).Scan(&app); err != nil || app != "mlc-main" {
		t.Errorf("queries run on %q (%v), want the main pool", app, err)
	}
}
