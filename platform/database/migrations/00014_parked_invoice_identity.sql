-- +goose Up

-- Parked invoices are keyed by the ledger's invoice identity
-- (erp:connection-id:company:invoice), as their collections and exceptions
-- are, so that a resend finds an invoice's kept message by its exception's
-- aggregate id. Rows parked before were keyed connection-name:company:invoice.
UPDATE awaiting_invoices a
SET aggregate_id = c.kind || ':' || c.id || ':' || substr(a.aggregate_id, length(c.name) + 2)
FROM connections c
WHERE c.kind IN ('ifs', 'jde') AND starts_with(a.aggregate_id, c.name || ':')
  AND a.aggregate_id !~ '^(ifs|jde):[0-9]+:';

-- +goose Down
UPDATE awaiting_invoices a
SET aggregate_id = c.name || ':' || substr(a.aggregate_id, length(c.kind || ':' || c.id) + 2)
FROM connections c
WHERE starts_with(a.aggregate_id, c.kind || ':' || c.id || ':');
