-- +goose Up

-- GoCardless events the orchestrator received and deliberately did not
-- apply, each with the reason: none is dropped without a trace (#15). An
-- event id appears here at most once, in the same transaction that marks
-- it processed.
CREATE TABLE gc_ignored_events (
    event_id      text        PRIMARY KEY CHECK (event_id <> ''),
    resource_type text        NOT NULL CHECK (resource_type <> ''),
    action        text        NOT NULL CHECK (action <> ''),
    resource_id   text,
    reason        text        NOT NULL CHECK (reason <> ''),
    ignored_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE gc_ignored_events IS
    'GoCardless events received but not applied, with why (not ours, older than what was applied, an action the ERP need not hear of).';
CREATE INDEX gc_ignored_events_ignored_at_idx ON gc_ignored_events (ignored_at);

-- +goose Down
DROP TABLE gc_ignored_events;
