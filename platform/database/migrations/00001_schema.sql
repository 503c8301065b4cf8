-- +goose Up

-- touch_updated_at keeps updated_at honest without every writer remembering it.
-- +goose StatementBegin
CREATE FUNCTION touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;
-- +goose StatementEnd

CREATE TABLE connections (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text        NOT NULL UNIQUE CHECK (name <> ''),
    kind       text        NOT NULL CHECK (kind IN ('ifs', 'jde', 'gocardless')),
    settings   jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(settings) = 'object'),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE connections IS
    'One row per ERP tenant (ifs, jde) or GoCardless account. settings holds non-secret configuration: base URL, company codes, company->creditor map, business-unit->GL map. Secrets live encrypted in connection_secrets.';
CREATE TRIGGER connections_touch BEFORE UPDATE ON connections
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

CREATE TABLE connection_secrets (
    connection_id bigint      NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    name          text        NOT NULL CHECK (name <> ''),
    key_id        text        NOT NULL CHECK (key_id <> ''),
    -- AES-GCM output always carries a 12-byte nonce and a 16-byte tag; anything
    -- shorter cannot be ciphertext, so it is most likely a plaintext mistake.
    ciphertext    bytea       NOT NULL CHECK (octet_length(ciphertext) >= 28),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection_id, name)
);
COMMENT ON TABLE connection_secrets IS
    'Secrets of a connection (client secret, AIS password, GoCardless token, webhook secret) as AES-256-GCM ciphertext; key_id names the master key that sealed it, for rotation. Plaintext is never stored.';
CREATE INDEX connection_secrets_key_id_idx ON connection_secrets (key_id);
CREATE TRIGGER connection_secrets_touch BEFORE UPDATE ON connection_secrets
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

CREATE TABLE poll_state (
    connection_id  bigint      NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    entity         text        NOT NULL CHECK (entity <> ''),
    watermark_time timestamptz NOT NULL,
    watermark_key  text        NOT NULL DEFAULT '',
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection_id, entity)
);
COMMENT ON TABLE poll_state IS
    'ERP poller watermark per connection and entity: the modified time and last key of the newest record whose publish JetStream acknowledged. Advanced only after the ack.';
CREATE TRIGGER poll_state_touch BEFORE UPDATE ON poll_state
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

CREATE TABLE event_cursors (
    connection_id bigint      PRIMARY KEY REFERENCES connections (id) ON DELETE CASCADE,
    cursor        text        NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE event_cursors IS
    'GoCardless GET /events catch-up cursor (the id to pass as after=) per GoCardless connection.';
CREATE TRIGGER event_cursors_touch BEFORE UPDATE ON event_cursors
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

-- Rows that record money or mandates reference their connection without
-- ON DELETE CASCADE: a connection with history cannot be removed by accident.

CREATE TABLE customer_links (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    erp                text        NOT NULL CHECK (erp IN ('ifs', 'jde')),
    connection_id      bigint      NOT NULL REFERENCES connections (id),
    company            text        NOT NULL CHECK (company <> ''),
    erp_customer_id    text        NOT NULL CHECK (erp_customer_id <> ''),
    gc_connection_id   bigint      REFERENCES connections (id),
    gc_customer_id     text,
    gc_bank_account_id text,
    gc_mandate_id      text,
    mandate_status     text CHECK (mandate_status IN (
        'pending_customer_approval', 'pending_submission', 'submitted', 'active',
        'suspended_by_payer', 'failed', 'cancelled', 'expired', 'consumed', 'blocked')),
    mandate_scheme     text CHECK (mandate_scheme ~ '^[a-z][a-z0-9_]*$'),
    erp_version        text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (connection_id, company, erp_customer_id),
    CHECK (mandate_status IS NULL OR gc_mandate_id IS NOT NULL)
);
COMMENT ON TABLE customer_links IS
    'ERP customer (erp, connection, company, customer id) linked to its GoCardless customer, bank account and mandate, with the mandate status last applied.';
-- Not unique: two companies mapped to one creditor may share a mandate.
CREATE INDEX customer_links_gc_mandate_idx ON customer_links (gc_mandate_id) WHERE gc_mandate_id IS NOT NULL;
CREATE INDEX customer_links_gc_customer_idx ON customer_links (gc_customer_id) WHERE gc_customer_id IS NOT NULL;
CREATE TRIGGER customer_links_touch BEFORE UPDATE ON customer_links
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

CREATE TABLE collections (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    erp                 text        NOT NULL CHECK (erp IN ('ifs', 'jde')),
    connection_id       bigint      NOT NULL REFERENCES connections (id),
    gc_connection_id    bigint      REFERENCES connections (id),
    company             text        NOT NULL CHECK (company <> ''),
    invoice_id          text        NOT NULL CHECK (invoice_id <> ''),
    invoice_no          text        NOT NULL,
    doc_type            text        NOT NULL DEFAULT '',
    suffix              text        NOT NULL DEFAULT '',
    customer_id         text        NOT NULL CHECK (customer_id <> ''),
    kind                text        NOT NULL CHECK (kind IN ('payment', 'subscription')),
    amount_minor        bigint      NOT NULL CHECK (amount_minor > 0),
    currency            char(3)     NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    due_date            date,
    charge_date         date,
    state               text        NOT NULL CHECK (state IN (
        'creating', 'created', 'pending_submission', 'submitted', 'confirmed', 'paid_out',
        'failed', 'charged_back', 'cancelled', 'exception')),
    state_rank          integer     NOT NULL DEFAULT 0 CHECK (state_rank >= 0),
    gc_payment_id       text,
    gc_subscription_id  text,
    idempotency_key     text        NOT NULL UNIQUE CHECK (idempotency_key <> ''),
    attempts            integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    failure_cause       text,
    failure_reason_code text,
    failure_description text,
    erp_version         text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (connection_id, company, invoice_id),
    -- Past 'creating' GoCardless has answered, so its id must have been kept:
    -- losing it would leave a live payment nobody can reconcile.
    CHECK (state NOT IN ('created', 'pending_submission', 'submitted', 'confirmed', 'paid_out', 'charged_back')
           OR gc_payment_id IS NOT NULL OR gc_subscription_id IS NOT NULL)
);
COMMENT ON TABLE collections IS
    'One row per ERP invoice to collect. Written in state creating with its idempotency key before the GoCardless call and completed after it, so a restart resumes instead of charging twice. state_rank lets out-of-order events be ignored.';
CREATE UNIQUE INDEX collections_gc_payment_id_key ON collections (gc_payment_id) WHERE gc_payment_id IS NOT NULL;
CREATE UNIQUE INDEX collections_gc_subscription_id_key ON collections (gc_subscription_id) WHERE gc_subscription_id IS NOT NULL;
CREATE INDEX collections_state_idx ON collections (state, updated_at);
CREATE INDEX collections_customer_idx ON collections (connection_id, company, customer_id);
CREATE TRIGGER collections_touch BEFORE UPDATE ON collections
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

CREATE TABLE refunds (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    collection_id       bigint      NOT NULL REFERENCES collections (id),
    erp                 text        NOT NULL CHECK (erp IN ('ifs', 'jde')),
    connection_id       bigint      NOT NULL REFERENCES connections (id),
    company             text        NOT NULL CHECK (company <> ''),
    erp_refund_id       text        NOT NULL CHECK (erp_refund_id <> ''),
    amount_minor        bigint      NOT NULL CHECK (amount_minor > 0),
    currency            char(3)     NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    state               text        NOT NULL CHECK (state IN (
        'creating', 'created', 'pending_submission', 'submitted', 'paid', 'failed',
        'cancelled', 'bounced', 'funds_returned', 'exception')),
    state_rank          integer     NOT NULL DEFAULT 0 CHECK (state_rank >= 0),
    gc_refund_id        text,
    idempotency_key     text        NOT NULL UNIQUE CHECK (idempotency_key <> ''),
    attempts            integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    failure_cause       text,
    failure_reason_code text,
    failure_description text,
    erp_version         text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (connection_id, company, erp_refund_id),
    CHECK (state NOT IN ('created', 'pending_submission', 'submitted', 'paid', 'bounced', 'funds_returned')
           OR gc_refund_id IS NOT NULL)
);
COMMENT ON TABLE refunds IS
    'One row per ERP refund request turned into a GoCardless refund of a collected payment; same write-before-call discipline as collections.';
CREATE UNIQUE INDEX refunds_gc_refund_id_key ON refunds (gc_refund_id) WHERE gc_refund_id IS NOT NULL;
CREATE INDEX refunds_collection_idx ON refunds (collection_id);
CREATE INDEX refunds_state_idx ON refunds (state, updated_at);
CREATE TRIGGER refunds_touch BEFORE UPDATE ON refunds
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

CREATE TABLE processed_events (
    source       text        NOT NULL CHECK (source IN ('gocardless', 'erp')),
    event_id     text        NOT NULL CHECK (event_id <> ''),
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, event_id)
);
COMMENT ON TABLE processed_events IS
    'GoCardless event ids and ERP message ids already applied; inserted in the same transaction as the effect, so redelivery beyond the JetStream dedup window is harmless.';
CREATE INDEX processed_events_processed_at_idx ON processed_events (processed_at);

CREATE TABLE erp_postings (
    outcome_id    text        PRIMARY KEY CHECK (outcome_id <> ''),
    connection_id bigint      NOT NULL REFERENCES connections (id),
    erp           text        NOT NULL CHECK (erp IN ('ifs', 'jde')),
    company       text        NOT NULL CHECK (company <> ''),
    invoice_id    text,
    kind          text        NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]*$'),
    status        text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'posted', 'failed')),
    erp_reference text,
    attempts      integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    posted_at     timestamptz,
    CHECK ((status = 'posted') = (posted_at IS NOT NULL))
);
COMMENT ON TABLE erp_postings IS
    'One row per outcome written into an ERP by erp-poster, keyed by the outcome id that makes the write idempotent, with the reference the ERP returned.';
CREATE INDEX erp_postings_unposted_idx ON erp_postings (status, created_at) WHERE status <> 'posted';
CREATE TRIGGER erp_postings_touch BEFORE UPDATE ON erp_postings
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

CREATE TABLE exceptions (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind           text        NOT NULL CHECK (kind <> ''),
    aggregate_type text        NOT NULL CHECK (aggregate_type <> ''),
    aggregate_id   text        NOT NULL CHECK (aggregate_id <> ''),
    reason         text        NOT NULL,
    detail         jsonb       NOT NULL DEFAULT '{}',
    status         text        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'replayed', 'escalated', 'resolved')),
    -- Lets a redelivered dead letter or a re-run failure handler find the row
    -- it already created instead of opening a second one.
    dedup_key      text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE exceptions IS
    'Work for operators: failed collections (with reason code) and dead-lettered messages. Listed, replayed or escalated with mlcctl; every change is also in audit_log.';
CREATE UNIQUE INDEX exceptions_dedup_key_key ON exceptions (dedup_key) WHERE dedup_key IS NOT NULL;
CREATE INDEX exceptions_status_idx ON exceptions (status, created_at);
CREATE INDEX exceptions_aggregate_idx ON exceptions (aggregate_type, aggregate_id);
CREATE TRIGGER exceptions_touch BEFORE UPDATE ON exceptions
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

CREATE TABLE audit_log (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    aggregate_type text        NOT NULL CHECK (aggregate_type <> ''),
    aggregate_id   text        NOT NULL CHECK (aggregate_id <> ''),
    seq            bigint      NOT NULL CHECK (seq >= 1),
    occurred_at    timestamptz NOT NULL,
    actor          text        NOT NULL CHECK (actor <> ''),
    action         text        NOT NULL CHECK (action <> ''),
    -- json, not jsonb: json keeps the exact text, so the hash can be recomputed.
    payload        json        NOT NULL,
    prev_hash      bytea       NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash           bytea       NOT NULL CHECK (octet_length(hash) = 32),
    UNIQUE (aggregate_type, aggregate_id, seq)
);
COMMENT ON TABLE audit_log IS
    'Append-only audit trail. Each row is SHA-256 hash-chained to the previous row of the same aggregate (see package platform/audit); UPDATE, DELETE and TRUNCATE are refused by triggers.';
CREATE INDEX audit_log_occurred_at_idx ON audit_log (occurred_at);

-- +goose StatementBegin
CREATE FUNCTION audit_log_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'restrict_violation',
              HINT = 'audit records are never changed or removed; append a correcting entry instead';
END
$$;
-- +goose StatementEnd

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();

CREATE TABLE audit_heads (
    aggregate_type text   NOT NULL,
    aggregate_id   text   NOT NULL,
    seq            bigint NOT NULL CHECK (seq >= 0),
    hash           bytea  NOT NULL CHECK (octet_length(hash) = 32),
    PRIMARY KEY (aggregate_type, aggregate_id)
);
COMMENT ON TABLE audit_heads IS
    'Newest link (seq, hash) of each audit_log chain. Appends lock the head row, which serializes them per aggregate, and the head makes deletion of the newest rows detectable. seq 0 with a zero hash is an empty chain.';

-- A head may only move forward one step at a time, onto a row that exists in
-- audit_log, and never disappear; otherwise the head would stop vouching for
-- the end of the chain.
-- +goose StatementBegin
CREATE FUNCTION audit_heads_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' THEN
        RAISE EXCEPTION 'audit_heads rows cannot be removed: % refused', TG_OP
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF NEW.aggregate_type IS DISTINCT FROM OLD.aggregate_type
       OR NEW.aggregate_id IS DISTINCT FROM OLD.aggregate_id
       OR NEW.seq <> OLD.seq + 1
       OR NOT EXISTS (SELECT 1 FROM audit_log l
                      WHERE l.aggregate_type = NEW.aggregate_type
                        AND l.aggregate_id = NEW.aggregate_id
                        AND l.seq = NEW.seq
                        AND l.hash = NEW.hash
                        AND l.prev_hash = OLD.hash) THEN
        RAISE EXCEPTION 'audit_heads % %: head may only advance to the next appended audit_log row',
            OLD.aggregate_type, OLD.aggregate_id
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER audit_heads_guard BEFORE UPDATE OR DELETE ON audit_heads
    FOR EACH ROW EXECUTE FUNCTION audit_heads_guard();
CREATE TRIGGER audit_heads_no_truncate BEFORE TRUNCATE ON audit_heads
    FOR EACH STATEMENT EXECUTE FUNCTION audit_heads_guard();

-- +goose Down
DROP TABLE audit_heads;
DROP FUNCTION audit_heads_guard();
DROP TABLE audit_log;
DROP FUNCTION audit_log_refuse_change();
DROP TABLE exceptions;
DROP TABLE erp_postings;
DROP TABLE processed_events;
DROP TABLE refunds;
DROP TABLE collections;
DROP TABLE customer_links;
DROP TABLE event_cursors;
DROP TABLE poll_state;
DROP TABLE connection_secrets;
DROP TABLE connections;
DROP FUNCTION touch_updated_at();
