// Package database is ml-connector's access to PostgreSQL, the system of
// record for collection state and the audit log.
//
// It opens traced connection pools ([Open]), applies the embedded schema
// migrations ([Migrate]) so that replicas starting together migrate exactly
// once, runs transactions ([WithTx]) and provides session advisory locks
// ([TryLock], [RunExclusive]) for workers of which only one replica may be
// active at a time.
package database

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"

	"github.com/ml-connector/ml-connector/platform/secrets"
)

// DefaultMaxConns is the pool size when neither [Options.MaxConns] nor the
// connection string sets one.
const DefaultMaxConns = 32

// Options tune a pool beyond what the connection string says.
type Options struct {
	// MaxConns caps the pool (DATABASE_POOL_SIZE). Every replica of every
	// service opens its own pool, so the sum over pods must stay below the
	// server's max_connections (see deploy/README.md, "Postgres connection
	// budget"). 0 keeps the connection string's pool_max_conns, or
	// DefaultMaxConns.
	MaxConns int32
	// ExecMode is how pgx sends queries (DATABASE_EXEC_MODE); see
	// [ParseExecMode]. The zero value keeps pgx's default,
	// cache_statement, which names prepared statements per connection:
	// behind PgBouncer in transaction mode older than 1.21 (or with
	// max_prepared_statements = 0) use exec or simple_protocol instead.
	ExecMode pgx.QueryExecMode
	// SessionURL, when set (DATABASE_SESSION_URL), is where the work that
	// needs a session of its own connects: advisory locks ([TryLock],
	// [RunExclusive]) and migrations. Behind PgBouncer in transaction mode a
	// session lock taken through the pooler would stay on a server
	// connection other clients then use, so point this at Postgres itself
	// (or a session-mode pool). Empty: the pool's own connections are used.
	SessionURL secrets.Value
	// SessionMaxConns caps the connections to SessionURL
	// (DATABASE_SESSION_POOL_SIZE): one per advisory lock held at once.
	SessionMaxConns int32
}

// sessionPools maps a pool opened with a SessionURL to the pool of session
// connections beside it, so TryLock and Migrate find it without every
// caller having to carry two pools.
var sessionPools sync.Map // *pgxpool.Pool -> *pgxpool.Pool

// sessionPool is the pool that session-scoped work on pool uses.
func sessionPool(pool *pgxpool.Pool) *pgxpool.Pool {
	if sp, ok := sessionPools.Load(pool); ok {
		return sp.(*pgxpool.Pool)
	}
	return pool
}

// Close closes pool and the session pool opened beside it, if any.
func Close(pool *pgxpool.Pool) {
	if sp, ok := sessionPools.LoadAndDelete(pool); ok {
		sp.(*pgxpool.Pool).Close()
	}
	pool.Close()
}

// ExecModes are the names ParseExecMode accepts, in pgx's order.
var ExecModes = []string{"cache_statement", "cache_describe", "describe_exec", "exec", "simple_protocol"}

// ParseExecMode maps a DATABASE_EXEC_MODE name to pgx's query exec mode.
func ParseExecMode(name string) (pgx.QueryExecMode, error) {
	switch name {
	case "cache_statement":
		return pgx.QueryExecModeCacheStatement, nil
	case "cache_describe":
		return pgx.QueryExecModeCacheDescribe, nil
	case "describe_exec":
		return pgx.QueryExecModeDescribeExec, nil
	case "exec":
		return pgx.QueryExecModeExec, nil
	case "simple_protocol":
		return pgx.QueryExecModeSimpleProtocol, nil
	}
	return 0, fmt.Errorf("unknown exec mode %q (want one of %s)", name, strings.Join(ExecModes, ", "))
}

// Open creates a connection pool for the PostgreSQL database at connString
// (a postgres:// URL or a key=value connection string, with pgx's pool_*
// settings if wanted) and checks that the database answers. Queries are
// traced with OpenTelemetry; spans are only recorded beneath a span already
// in the context.
//
// Errors never contain the password from connString.
func Open(ctx context.Context, connString string) (*pgxpool.Pool, error) {
	return OpenWith(ctx, connString, Options{})
}

// OpenWith is [Open] with options.
func OpenWith(ctx context.Context, connString string, opts Options) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return nil, redact(fmt.Errorf("database: parse connection string: %w", err), connString, nil)
	}
	// The connection's attributes are set once here rather than per span:
	// otelpgx reads them through conn.Config() and pool.Config(), each a
	// deep copy of the configuration, on every traced query and acquire
	// (in a 10,000-invoice run of the orchestrator, a fifth of all it
	// allocated). The spans carry the same attributes (db.system.name is
	// otelpgx's own).
	cfg.ConnConfig.Tracer = otelpgx.NewTracer(otelpgx.WithDisableConnectionDetailsInAttributes(),
		otelpgx.WithTracerAttributes(semconv.ServerAddress(cfg.ConnConfig.Host),
			semconv.ServerPort(int(cfg.ConnConfig.Port)), semconv.UserName(cfg.ConnConfig.User), semconv.DBNamespace(cfg.ConnConfig.Database)))
	// pgx defaults to max(4, CPUs) connections; consumers that hold a row
	// lock across an outbound call need more than that to keep their
	// workers busy. An explicit pool_max_conns still wins over the default.
	switch {
	case opts.MaxConns > 0:
		cfg.MaxConns = opts.MaxConns
	case !strings.Contains(connString, "pool_max_conns"):
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.MinConns > cfg.MaxConns {
		cfg.MinConns = cfg.MaxConns
	}
	if opts.ExecMode != 0 {
		cfg.ConnConfig.DefaultQueryExecMode = opts.ExecMode
	}
	dropUnusedCache(cfg.ConnConfig, connString)
	passwords := configPasswords(cfg)

	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, redact(fmt.Errorf("database: open: %w", err), connString, passwords)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, redact(fmt.Errorf("database: ping: %w", err), connString, passwords)
	}
	if !opts.SessionURL.Empty() {
		// The session pool speaks to Postgres directly: the default
		// statement cache is right there whatever ExecMode says.
		sp, err := OpenWith(ctx, opts.SessionURL.Reveal(), Options{MaxConns: max(opts.SessionMaxConns, 1)})
		if err != nil {
			pool.Close()
			return nil, fmt.Errorf("database: session pool: %w", err)
		}
		sessionPools.Store(pool, sp)
	}
	return pool, nil
}

// Beginner starts a transaction. *pgxpool.Pool, *pgx.Conn and pgx.Tx (which
// starts a savepoint) satisfy it.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// WithTx runs fn in a transaction begun on db and commits it if fn returns
// nil. If fn returns an error or panics, the transaction is rolled back and
// the error (or panic) is passed on. Called with a pgx.Tx, the work runs in
// a savepoint of that transaction.
func WithTx(ctx context.Context, db Beginner, fn func(pgx.Tx) error) error {
	tx, err := db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("database: begin: %w", err)
	}
	// Rollback after a successful Commit is a no-op returning ErrTxClosed;
	// deferring it covers both the error and the panic paths.
	defer tx.Rollback(context.WithoutCancel(ctx))

	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("database: commit: %w", err)
	}
	return nil
}

// redactedError hides passwords in the message of the error it wraps. The
// wrapped error stays reachable through errors.Is and errors.As, so callers
// can still test for context cancellation or *pgconn.PgError.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

const redactedMark = "xxxxx"

// kvPassword finds password settings in key=value connection strings.
var kvPassword = regexp.MustCompile(`(?i)\b(?:ssl)?password\s*=\s*('(?:[^'\\]|\\.)*'|[^\s]+)`)

// redact returns err with every password that connString (or the parsed
// extra passwords) carries masked out of its message. pgx already masks the
// passwords it knows about; this is a second line of defence, because an
// error message ends up in logs and a leaked database password is an incident.
func redact(err error, connString string, extra []string) error {
	if err == nil {
		return nil
	}
	secrets := append(stringPasswords(connString), extra...)
	msg := err.Error()
	// Longest first, so a password containing another is masked whole.
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, redactedMark)
		}
	}
	return &redactedError{msg: msg, err: err}
}

// stringPasswords extracts password candidates from a connection string
// without relying on it being valid: both the raw (possibly percent-encoded)
// and the decoded form may appear in an error message.
func stringPasswords(connString string) []string {
	var out []string
	add := func(raw string) {
		if raw == "" {
			return
		}
		out = append(out, raw)
		if dec, err := url.PathUnescape(raw); err == nil && dec != raw {
			out = append(out, dec)
		}
		if dec, err := url.QueryUnescape(raw); err == nil && dec != raw {
			out = append(out, dec)
		}
	}
	if i := strings.Index(connString, "://"); i >= 0 {
		rest := connString[i+3:]
		// The userinfo ends at the last '@' before the path, so an
		// unencoded '@' inside the password does not cut it short.
		if j := strings.IndexAny(rest, "/?#"); j >= 0 {
			rest = rest[:j]
		}
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if _, pw, ok := strings.Cut(rest[:at], ":"); ok {
				add(pw)
			}
		}
		if u, err := url.Parse(connString); err == nil {
			if pw, ok := u.User.Password(); ok {
				add(pw)
			}
			for k, vs := range u.Query() {
				if strings.EqualFold(k, "password") || strings.EqualFold(k, "sslpassword") {
					for _, v := range vs {
						add(v)
					}
				}
			}
		}
	}
	for _, m := range kvPassword.FindAllStringSubmatch(connString, -1) {
		v := m[1]
		add(v)
		if strings.HasPrefix(v, "'") && strings.HasSuffix(v, "'") && len(v) >= 2 {
			add(strings.NewReplacer(`\'`, `'`, `\\`, `\`).Replace(v[1 : len(v)-1]))
		}
	}
	return out
}

// configPasswords returns the password pgx will actually send, which may
// come from a passfile or the environment rather than the URL.
func configPasswords(cfg *pgxpool.Config) []string {
	return []string{cfg.ConnConfig.Password}
}

// dropUnusedCache turns off the description cache unless the exec mode
// reads it (cache_describe) or connString sizes it. pgx gives every
// connection two statement caches, each a map made for 512 entries up
// front; the default mode, cache_statement, reads only the statement
// cache. At the orchestrator's 40-odd connections the unused maps were
// about 1 MiB of its live heap. A query that names cache_describe as its
// own mode fails without the cache (pgx refuses it); none does, and one
// that must can size the cache in the URL (description_cache_capacity).
func dropUnusedCache(cfg *pgx.ConnConfig, connString string) {
	if cfg.DefaultQueryExecMode != pgx.QueryExecModeCacheDescribe && !strings.Contains(connString, "description_cache_capacity") {
		cfg.DescriptionCacheCapacity = 0
	}
}
