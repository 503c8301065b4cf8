-- +goose Up

-- The payment orchestrator's intents: what it committed to do before it
-- calls GoCardless or erp-poster with no transaction open.
--
-- A lease is one aggregate's outside work in progress: who it is for
-- (holder: the message or operator action doing it), what it planned
-- (intent), and until when other work on the aggregate must wait. The same
-- holder resumes its own lease after a crash; another takes it over once
-- it has expired.
CREATE TABLE leases (
    aggregate_type text        NOT NULL CHECK (aggregate_type <> ''),
    aggregate_id   text        NOT NULL CHECK (aggregate_id <> ''),
    holder         text        NOT NULL CHECK (holder <> ''),
    intent         jsonb       NOT NULL DEFAULT '{}',
    expires_at     timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (aggregate_type, aggregate_id)
);
COMMENT ON TABLE leases IS
    'Outside calls in progress, one holder per aggregate, written before the call and deleted with its recorded result.';

-- Outcomes for the ERP, queued in the transaction that applied the event
-- and deleted once erp-poster has written them (or refused them for good,
-- which raises an exception). Posted in id order per aggregate.
CREATE TABLE pending_outcomes (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    aggregate_type text        NOT NULL CHECK (aggregate_type <> ''),
    aggregate_id   text        NOT NULL CHECK (aggregate_id <> ''),
    event_id       text        NOT NULL CHECK (event_id <> ''),
    outcome_id     text        NOT NULL UNIQUE CHECK (outcome_id <> ''),
    kind           text        NOT NULL CHECK (kind IN ('payment', 'refund', 'mandate')),
    outcome        bytea       NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE pending_outcomes IS
    'ERP outcomes committed with the state change they report and not yet written by erp-poster (outcome: the marshalled mlc.v1 outcome message).';
CREATE INDEX pending_outcomes_aggregate_idx ON pending_outcomes (aggregate_type, aggregate_id, id);
CREATE INDEX pending_outcomes_event_idx ON pending_outcomes (event_id);

-- +goose Down
DROP TABLE pending_outcomes;
DROP TABLE leases;
