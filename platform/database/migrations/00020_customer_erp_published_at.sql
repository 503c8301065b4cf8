-- +goose Up

-- When the applied customer snapshot (erp_version) was published on
-- MLC_ERP: the JetStream timestamp of its message. An older updated_at
-- alone does not make a snapshot older: JD Edwards' updated_at is the
-- local stamp of whichever enterprise server wrote the row, and goes
-- backwards for a newer change written by a server whose clock lags or in
-- the repeated hour of a DST fall-back. A snapshot is ignored only when
-- its updated_at is older and it was published before the applied one.
-- Nullable: links aligned before this column have none, and are judged by
-- updated_at alone, as before.
ALTER TABLE customer_links ADD COLUMN erp_published_at timestamptz;
COMMENT ON COLUMN customer_links.erp_published_at IS
    'When the applied snapshot (erp_version) was published on MLC_ERP; a snapshot is ignored when it is older by erp_updated_at and published before this. NULL when unknown.';

-- +goose Down
ALTER TABLE customer_links DROP COLUMN erp_published_at;
