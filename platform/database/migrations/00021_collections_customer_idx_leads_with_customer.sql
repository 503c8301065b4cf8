-- +goose NO TRANSACTION
-- +goose Up

-- The lookup of one invoice's collection (connection_id, company,
-- invoice_id: every invoice event, every mlcctl collections show) has its
-- unique index, but collections_customer_idx (connection_id, company,
-- customer_id) shares its first two columns. On a table Postgres has no
-- statistics for (a new ledger, or any ledger on a server with autovacuum
-- off, where no table is ever analyzed) the planner costs both indexes
-- alike and may take the customer one: it then reads every collection of
-- the company and filters on invoice_id, so each lookup grows with the
-- book (5,840 invoices: 1.7 ms a lookup instead of 0.05; at 100,000, 50,000
-- rows read for one; cmd/mlc-demo TestQueryPlansAt100kCollections checks
-- every per-key lookup before and after ANALYZE). Led by customer_id, the
-- customer index serves the customer lookups exactly as before (all three
-- columns are always given) and cannot serve an invoice lookup at all.
-- Built, then the old one dropped, CONCURRENTLY (outside a transaction):
-- collections takes writes all day. A build that failed or was cancelled
-- leaves an invalid index behind, which IF NOT EXISTS would then keep
-- while the valid one is dropped: each attempt drops what an earlier one
-- left and builds it anew.
DROP INDEX CONCURRENTLY IF EXISTS collections_customer_key_idx;
CREATE INDEX CONCURRENTLY collections_customer_key_idx ON collections (customer_id, connection_id, company);
DROP INDEX CONCURRENTLY IF EXISTS collections_customer_idx;

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS collections_customer_idx;
CREATE INDEX CONCURRENTLY collections_customer_idx ON collections (connection_id, company, customer_id);
DROP INDEX CONCURRENTLY IF EXISTS collections_customer_key_idx;
