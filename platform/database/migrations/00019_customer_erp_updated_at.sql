-- +goose Up

-- The ERP's updated_at of the customer snapshot applied (the one of
-- erp_version), so that an older snapshot JetStream redelivers after a
-- newer one was applied is ignored rather than applied over it: it would
-- put the customer's old details back at GoCardless and, with mandate_setup
-- direct, a mandate on a bank account the customer changed away from.
-- It decides only where publish times are unknown (00020).
-- Nullable: links aligned before this column, and snapshots without
-- updated_at, have none, and are compared by version alone, as before.
ALTER TABLE customer_links ADD COLUMN erp_updated_at timestamptz;
COMMENT ON COLUMN customer_links.erp_updated_at IS
    'The ERP''s updated_at of the applied snapshot (erp_version); where publish times are unknown, a snapshot strictly older is ignored. NULL when unknown.';

-- +goose Down
ALTER TABLE customer_links DROP COLUMN erp_updated_at;
