-- +goose NO TRANSACTION
-- +goose Up

-- exceptions_status_idx (status, created_at), from the first schema, is a
-- prefix of exceptions_queue_idx (status, created_at, id), which migration
-- 00013 added for the console's queue: every lookup the first can serve,
-- the second serves the same way, and each write to exceptions paid for
-- both. No query's plan names it (EXPLAIN of every exceptions query the
-- services, mlcctl, the console and the demo run, at the scale of
-- cmd/mlc-demo TestQueryPlansAt100kCollections, before and after).
-- Dropped CONCURRENTLY (so outside a transaction), as 00013 built its
-- replacement: exceptions takes writes all day.
DROP INDEX CONCURRENTLY IF EXISTS exceptions_status_idx;

-- +goose Down
CREATE INDEX CONCURRENTLY IF NOT EXISTS exceptions_status_idx ON exceptions (status, created_at);
