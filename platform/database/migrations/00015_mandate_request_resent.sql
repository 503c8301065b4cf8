-- +goose Up

-- A resent link (mlcctl mandates resend, the console's resend) gives the
-- payer a new mandate_wait: the wait runs from the latest resend, not from
-- when the customer was first asked.
ALTER TABLE mandate_requests ADD COLUMN resent_at timestamptz;
COMMENT ON COLUMN mandate_requests.resent_at IS
    'When AR last resent the link; the customer''s invoices wait mandate_wait from here (else from created_at).';

-- +goose Down
ALTER TABLE mandate_requests DROP COLUMN resent_at;
