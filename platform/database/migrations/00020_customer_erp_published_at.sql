-- +goose Up

-- When the applied customer snapshot (erp_version) was published on
-- MLC_ERP: the JetStream timestamp of its message. An older updated_at
-- alone does not make a snapshot older: JD Edwards' updated_at is the
-- local stamp of whichever enterprise server wrote the row, and goes
-- backwards for a newer change written by a server whose clock lags or in
-- the repeated hour of a DST fall-back. Publication is the order of the
-- poller's reads: a snapshot published before the applied one is ignored,
-- whatever its updated_at.
-- Nullable: links aligned before this column have none, and are judged by
-- updated_at alone, as before.
ALTER TABLE customer_links ADD COLUMN erp_published_at timestamptz;
COMMENT ON COLUMN customer_links.erp_published_at IS
    'When the applied snapshot (erp_version) was published on MLC_ERP; a snapshot published before this is ignored. NULL when unknown.';

-- +goose Down
ALTER TABLE customer_links DROP COLUMN erp_published_at;
