-- +goose NO TRANSACTION
-- +goose Up

-- The console's exceptions queue lists open exceptions and the failed,
-- cancelled, charged-back and exception collections newest first, a page
-- at a time, ties (rows a batch committed together) broken by id. The
-- state index (state, updated_at) cannot give the four states in one time
-- order, so every such collection was read and sorted for each page (17 of
-- the page's 32 ms at 1,000,000 collections with 5,000 failed, EXPLAIN
-- ANALYZE in docs/benchmarks.md), and neither index orders ties. With
-- these a page reads its rows in exactly the queue's order and stops, and
-- a page deep in the queue starts where its cursor says (keyset paging).
-- The collections index is partial: collected payments, the bulk of the
-- table, are not in it; its predicate is the queue's, word for word.
-- Built CONCURRENTLY (so outside a transaction): collections and
-- exceptions take writes all day, and a plain CREATE INDEX would block
-- them for the whole build on a large ledger.
CREATE INDEX CONCURRENTLY IF NOT EXISTS collections_unsettled_idx ON collections (updated_at, id)
    WHERE state IN ('failed', 'cancelled', 'charged_back', 'exception');
CREATE INDEX CONCURRENTLY IF NOT EXISTS exceptions_queue_idx ON exceptions (status, created_at, id);

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS exceptions_queue_idx;
DROP INDEX CONCURRENTLY IF EXISTS collections_unsettled_idx;
