-- +goose Up

-- The outcomes of the current payment attempt already sent to the ERP.
-- Events arrive out of order, and an older one is not applied; but when a
-- newer state implies a milestone whose own event has not been applied
-- (paid_out before confirmed), the ERP must still hear of the milestone
-- (IFS books a payment on confirmation). This remembers which were sent.
ALTER TABLE collections ADD COLUMN posted_outcomes text[] NOT NULL DEFAULT '{}';

-- +goose Down
ALTER TABLE collections DROP COLUMN posted_outcomes;
