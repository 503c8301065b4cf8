package database

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Unvacuumed names what keeps Postgres from vacuuming and analyzing this
// database's tables: autovacuum off for the whole server, or for some
// tables (their autovacuum_enabled storage parameter, in any of the
// spellings of false Postgres accepts and keeps as typed). Empty when
// nothing does. Services log it at start-up, with the remedy, because its effects
// come slowly and look like something else: every state change leaves a
// dead row behind (collections, audit heads, postings are updated all
// day), so tables and indexes grow without end, and tables never analyzed
// leave the planner guessing (a ledger on such a server once read every
// collection of a company to find one invoice's; see migration 00021).
func Unvacuumed(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	var serverWide bool
	var tables []string
	err := pool.QueryRow(ctx, `
		SELECT NOT current_setting('autovacuum')::bool,
		       coalesce(array_agg(c.relname ORDER BY c.relname) FILTER (WHERE c.relname IS NOT NULL), '{}')
		FROM (SELECT 1) one
		LEFT JOIN pg_class c ON c.relkind = 'r' AND c.relnamespace = current_schema()::regnamespace
		     AND EXISTS (SELECT 1 FROM pg_options_to_table(c.reloptions) o
		                 WHERE o.option_name = 'autovacuum_enabled' AND NOT o.option_value::bool)`).Scan(&serverWide, &tables)
	if err != nil {
		return "", fmt.Errorf("database: autovacuum settings: %w", err)
	}
	var off []string
	if serverWide {
		off = append(off, "autovacuum is off on the server (autovacuum = off)")
	}
	if len(tables) > 0 {
		off = append(off, "autovacuum is off for tables "+strings.Join(tables, ", ")+" (autovacuum_enabled = false)")
	}
	return strings.Join(off, "; "), nil
}
