-- +goose Up

-- Mandates set up through GoCardless billing requests (#15): for an ERP
-- customer without a usable mandate the orchestrator records its intent
-- here, then creates a billing request (idempotency_key) and a flow, and
-- records each answer; the payer opens authorisation_url; the
-- billing_requests "fulfilled" event names the mandate. At most one
-- request per customer is open at a time; a resend opens the next attempt.
CREATE TABLE mandate_requests (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    erp                text        NOT NULL CHECK (erp IN ('ifs', 'jde')),
    connection_id      bigint      NOT NULL REFERENCES connections (id),
    company            text        NOT NULL CHECK (company <> ''),
    erp_customer_id    text        NOT NULL CHECK (erp_customer_id <> ''),
    gc_connection_id   bigint      NOT NULL REFERENCES connections (id),
    gc_customer_id     text        NOT NULL CHECK (gc_customer_id <> ''),
    attempt            integer     NOT NULL CHECK (attempt > 0),
    idempotency_key    text        NOT NULL UNIQUE CHECK (idempotency_key <> ''),
    currency           text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    state              text        NOT NULL CHECK (state IN ('requesting', 'awaiting_payer', 'fulfilled', 'cancelled', 'expired')),
    billing_request_id text        UNIQUE,
    flow_id            text,
    authorisation_url  text,
    flow_expires_at    timestamptz,
    notified           text,
    mandate_id         text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (connection_id, company, erp_customer_id, attempt)
);
COMMENT ON TABLE mandate_requests IS
    'Billing requests asking ERP customers for a mandate: the link the payer must open, and what became of it.';
CREATE UNIQUE INDEX mandate_requests_one_open_idx ON mandate_requests (connection_id, company, erp_customer_id)
    WHERE state IN ('requesting', 'awaiting_payer');
CREATE INDEX mandate_requests_state_idx ON mandate_requests (state, created_at);

-- Invoices of customers who have yet to authorise their mandate, parked
-- (acknowledged on the bus) instead of redelivered for days; the
-- orchestrator's sweep collects each once the mandate exists, or turns it
-- into an exception when the link expired or mandate_wait passed.
CREATE TABLE awaiting_invoices (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    aggregate_id text        NOT NULL CHECK (aggregate_id <> ''),
    version      text        NOT NULL,
    message      bytea       NOT NULL,
    parked_at    timestamptz NOT NULL DEFAULT now(),
    released_at  timestamptz,
    UNIQUE (aggregate_id, version)
);
COMMENT ON TABLE awaiting_invoices IS
    'InvoiceReady messages waiting for their customer to authorise a mandate; released_at is set once collected or refused.';
CREATE INDEX awaiting_invoices_open_idx ON awaiting_invoices (id) WHERE released_at IS NULL;

-- +goose Down
DROP TABLE awaiting_invoices;
DROP TABLE mandate_requests;
