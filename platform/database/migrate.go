package database

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// versionTable is where goose records applied migrations.
const versionTable = goose.DefaultTablename

// migrationLockName names the advisory lock that serializes migrations
// between replicas; see [LockKey].
const migrationLockName = "mlc:schema-migrations"

// Migrate brings the schema up to date by applying the embedded migrations
// that the database has not seen yet. It is safe to call on every start-up
// and from several replicas at once: a session advisory lock lets one
// replica migrate while the others wait (polling every second, for up to ten
// minutes) and then find nothing left to do. The lock and the migrations
// use the session pool when the pool was opened with a SessionURL. Each
// migration applied is
// logged with the default slog logger.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	fsys, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return fmt.Errorf("database: migrations: %w", err)
	}
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(LockKey(migrationLockName)),
		lock.WithLockTimeout(1, 600),
		lock.WithUnlockTimeout(1, 60),
	)
	if err != nil {
		return fmt.Errorf("database: migration lock: %w", err)
	}
	// The *sql.DB borrows connections from pool; closing it hands them back
	// and leaves the pool open.
	db := stdlib.OpenDBFromPool(sessionPool(pool))
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys,
		goose.WithSessionLocker(locker),
		goose.WithTableName(versionTable),
		goose.WithDisableGlobalRegistry(true),
	)
	if err != nil {
		return fmt.Errorf("database: migrations: %w", err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("database: migrate: %w", err)
	}
	for _, r := range results {
		slog.InfoContext(ctx, "database migration applied",
			"version", r.Source.Version, "file", r.Source.Path, "duration", r.Duration)
	}
	return nil
}

// MigrationVersion reports the newest schema migration applied to the
// database, or 0 if none has been. Unlike goose's own version query it
// neither creates the version table nor waits for a migration in progress,
// so it is cheap enough for a readiness probe.
func MigrationVersion(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, versionTable).Scan(&exists); err != nil {
		return 0, fmt.Errorf("database: migration version: %w", err)
	}
	if !exists {
		return 0, nil
	}
	var v int64
	q := `SELECT coalesce(max(version_id), 0) FROM ` + versionTable
	if err := pool.QueryRow(ctx, q).Scan(&v); err != nil {
		return 0, fmt.Errorf("database: migration version: %w", err)
	}
	return v, nil
}
