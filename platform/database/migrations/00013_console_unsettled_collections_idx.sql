-- +goose Up

-- The console's exceptions queue lists the failed, cancelled, charged-back
-- and exception collections newest first, a page at a time. The state
-- index (state, updated_at) cannot give the four states in one time order,
-- so every such collection was read and sorted for each page (17 of the
-- page's 32 ms at 1,000,000 collections with 5,000 failed, EXPLAIN ANALYZE
-- in docs/benchmarks.md); with this index a page reads its rows in order
-- and stops. Partial: collected payments, the bulk of the table, are not in
-- it, and its predicate is the queue's, word for word.
CREATE INDEX collections_unsettled_idx ON collections (updated_at)
    WHERE state IN ('failed', 'cancelled', 'charged_back', 'exception');

-- +goose Down
DROP INDEX collections_unsettled_idx;
