-- +goose Up

-- The rows an ERP poller handled inside its overlap window (#16). ERP
-- change stamps are coarse (JD Edwards UPMJ/UPMT: one second) and written
-- before commit, so a row can appear later with a stamp the watermark has
-- already passed. A poller therefore reads again from its watermark minus
-- a window and publishes a re-read row only when its version is not the one
-- recorded here. Rows leave when they fall out of the window, so the table
-- holds per entity only the rows changed within one window of the
-- watermark (platform/watermark).
CREATE TABLE poll_seen (
    connection_id bigint      NOT NULL,
    entity        text        NOT NULL CHECK (entity <> ''),
    key           text        NOT NULL CHECK (key <> '' AND length(key) <= 512),
    version       text        NOT NULL CHECK (length(version) <= 512),
    changed_at    timestamptz NOT NULL,
    PRIMARY KEY (connection_id, entity, key),
    FOREIGN KEY (connection_id, entity) REFERENCES poll_state (connection_id, entity) ON DELETE CASCADE
);
COMMENT ON TABLE poll_seen IS
    'Key and version of each row an ERP poller handled within its overlap window before the watermark of poll_state; pruned as the watermark moves.';
CREATE INDEX poll_seen_changed_at_idx ON poll_seen (connection_id, entity, changed_at);

-- +goose Down
DROP TABLE poll_seen;
