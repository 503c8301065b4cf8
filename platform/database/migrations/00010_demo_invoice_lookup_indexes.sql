-- +goose Up

-- The postings of one invoice are looked up by (company, invoice_id): the
-- demo's monitor does it for every collection on every progress step,
-- mlcctl collections show and the console for one. Without an index each
-- lookup scans every posting, so the monitor's cost grew with the square of
-- the book (issue #17 item 8).
CREATE INDEX erp_postings_invoice_idx ON erp_postings (company, invoice_id) WHERE invoice_id IS NOT NULL;

-- +goose Down
DROP INDEX erp_postings_invoice_idx;
