-- +goose Up

-- The trace a collection was started in. GoCardless's events about the
-- payment arrive days later, each in a trace of its own (the webhook's);
-- the orchestrator links the span that applies one back to this, so a
-- collection's story can be followed from the ERP poll to the ERP posting.
ALTER TABLE collections ADD COLUMN trace_parent text;
COMMENT ON COLUMN collections.trace_parent IS
    'W3C traceparent of the span that started the collection; events applied to it later link to this span.';

-- +goose Down
ALTER TABLE collections DROP COLUMN trace_parent;
