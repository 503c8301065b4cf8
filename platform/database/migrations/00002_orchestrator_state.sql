-- +goose Up

-- What the payment orchestrator needs beyond the base schema.
--
-- Events are applied by their GoCardless created_at, not by arrival: a
-- webhook that arrives late (or is fetched by the /events catch-up) must not
-- roll a payment or mandate back to an older state.
ALTER TABLE collections
    ADD COLUMN last_event_at   timestamptz,
    ADD COLUMN gc_mandate_id   text,
    ADD COLUMN reference       text,
    ADD COLUMN business_unit   text;
COMMENT ON COLUMN collections.last_event_at IS
    'created_at of the newest GoCardless event applied to this collection; older events do not change its state.';

ALTER TABLE refunds
    ADD COLUMN last_event_at timestamptz,
    ADD COLUMN gc_payment_id text;

ALTER TABLE customer_links
    ADD COLUMN gc_creditor_id           text,
    ADD COLUMN bank_fingerprint         text,
    ADD COLUMN mandate_next_charge_date date,
    ADD COLUMN mandate_event_at         timestamptz,
    ADD COLUMN customer_country         text,
    ADD COLUMN customer_language        text;
COMMENT ON COLUMN customer_links.bank_fingerprint IS
    'SHA-256 (hex, truncated) of the bank details the current bank account was created from; new details mean a new account and mandate. The details themselves are not stored.';
COMMENT ON COLUMN customer_links.mandate_next_charge_date IS
    'The mandate''s next_possible_charge_date as last seen, so a payment can be dated without asking GoCardless first.';

-- +goose Down
ALTER TABLE customer_links
    DROP COLUMN customer_language, DROP COLUMN customer_country, DROP COLUMN mandate_event_at,
    DROP COLUMN mandate_next_charge_date, DROP COLUMN bank_fingerprint, DROP COLUMN gc_creditor_id;
ALTER TABLE refunds DROP COLUMN gc_payment_id, DROP COLUMN last_event_at;
ALTER TABLE collections DROP COLUMN business_unit, DROP COLUMN reference, DROP COLUMN gc_mandate_id, DROP COLUMN last_event_at;
