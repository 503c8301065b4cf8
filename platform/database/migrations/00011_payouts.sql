-- +goose Up

-- GoCardless payouts, each tied to the invoices it settled (issue #20).
--
-- GoCardless pays a creditor's collected money out in batches, net of its
-- fees, refunds, charge-backs and taxes: one bank line stands for hundreds
-- of invoices. On a payout's `paid` event the orchestrator fetches the
-- payout and every one of its payout items, stores them here in one
-- transaction, checks that the items add up to the payout exactly, ties
-- each item to the collection (and so the ERP invoice) or refund it is
-- for, and posts one deposit per ERP connection and company through
-- erp-poster (payout_postings; the posting itself is in erp_postings under
-- the same outcome id).
--
-- Money: amount_minor and the other *_minor columns are integer minor units
-- (pence, cents), as GoCardless gives a payout's amounts. Payout items come
-- from GoCardless in minor units to one decimal place ("-20.4"), so every
-- item amount, and every sum of them, is kept exactly as an integer number
-- of tenths of a minor unit (*_tenths); GoCardless rounds the items' sum to
-- the minor unit to get the payout's amount. Nothing is ever a float.

CREATE TABLE payouts (
    id                          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    gc_connection_id            bigint      NOT NULL REFERENCES connections (id),
    gc_payout_id                text        NOT NULL UNIQUE CHECK (gc_payout_id <> ''),
    gc_creditor_id              text        NOT NULL CHECK (gc_creditor_id <> ''),
    gc_creditor_bank_account_id text,
    payout_type                 text        NOT NULL CHECK (payout_type ~ '^[a-z][a-z0-9_]*$'),
    currency                    char(3)     NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    amount_minor                bigint      NOT NULL,
    deducted_fees_minor         bigint      NOT NULL,
    reference                   text        NOT NULL,
    arrival_date                date,
    gc_status                   text        NOT NULL CHECK (gc_status ~ '^[a-z][a-z0-9_]*$'),
    gc_created_at               timestamptz NOT NULL,
    fx_currency                 char(3) CHECK (fx_currency ~ '^[A-Z]{3}$'),
    fx_amount_minor             bigint,
    fx_exchange_rate            numeric CHECK (fx_exchange_rate > 0),
    fx_estimated_exchange_rate  numeric CHECK (fx_estimated_exchange_rate > 0),
    tax_currency                char(3) CHECK (tax_currency ~ '^[A-Z]{3}$'),
    metadata                    jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    state                       text        NOT NULL CHECK (state IN (
        'fetched', 'mismatch', 'posting', 'posted', 'refused', 'nothing_to_post')),
    items_count                 integer     NOT NULL CHECK (items_count >= 0),
    items_total_tenths          bigint      NOT NULL,
    fees_total_tenths           bigint      NOT NULL,
    unmatched_count             integer     NOT NULL CHECK (unmatched_count >= 0),
    -- What the items say beyond the payout's amount. GoCardless rounds the
    -- items' sum to the minor unit (half a unit either way: it does not say
    -- which way a half goes); beyond that it is the payout_mismatch
    -- exception, never absorbed.
    difference_tenths           bigint      GENERATED ALWAYS AS (items_total_tenths - amount_minor * 10) STORED,
    event_id                    text        NOT NULL CHECK (event_id <> ''),
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now(),
    posted_at                   timestamptz,
    CHECK ((state = 'posted') = (posted_at IS NOT NULL)),
    CHECK (state <> 'mismatch' OR abs(items_total_tenths - amount_minor * 10) > 5),
    CHECK (state NOT IN ('posting', 'posted') OR abs(items_total_tenths - amount_minor * 10) <= 5)
);
COMMENT ON TABLE payouts IS
    'GoCardless payouts (one bank deposit each), stored with all their items on the payout''s paid event. state: fetched (stored; left so only when a line of ours is finer than a minor unit: payout_fractional_amount exception, not posted), mismatch (items do not add up to amount_minor as GoCardless rounds them: payout_mismatch exception, not posted), posting (one payout_postings row per ERP connection and company queued for erp-poster), posted (every posting written), refused (an ERP refused a posting for good: erp_posting_refused exception), nothing_to_post (no item belongs to an invoice or refund of ours). Amounts as GoCardless gives them: *_minor integer minor units of currency; fx_* as given (fx_amount_minor in fx_currency; rates null until GoCardless confirms them).';
COMMENT ON COLUMN payouts.items_total_tenths IS
    'Sum of every payout item''s amount, in tenths of a minor unit; rounded to the minor unit (as GoCardless rounds it) it is amount_minor, unless the payout is a mismatch.';
COMMENT ON COLUMN payouts.fees_total_tenths IS
    'Sum of the fee items (gocardless_fee, app_fee, surcharge_fee, revenue_share), in tenths of a minor unit, negative for a cost; deducted_fees_minor is what GoCardless says it deducted.';
COMMENT ON COLUMN payouts.unmatched_count IS
    'Items tied to no collection or refund of ours (another integration''s payments, or fees without a payment): kept and flagged, never dropped.';
COMMENT ON COLUMN payouts.event_id IS
    'The GoCardless event (payouts paid) whose handling fetched and stored the payout.';
CREATE INDEX payouts_connection_created_idx ON payouts (gc_connection_id, gc_created_at);
CREATE INDEX payouts_arrival_date_idx ON payouts (arrival_date);
CREATE INDEX payouts_state_idx ON payouts (state, updated_at);
CREATE TRIGGER payouts_touch BEFORE UPDATE ON payouts
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

CREATE TABLE payout_items (
    payout_id         bigint      NOT NULL REFERENCES payouts (id),
    -- The item's place in GoCardless's list (1 = first), which is also the
    -- order of the lines posted to the ERP.
    seq               integer     NOT NULL CHECK (seq >= 1),
    type              text        NOT NULL CHECK (type ~ '^[a-z][a-z0-9_]*$'),
    amount_tenths     bigint      NOT NULL,
    -- amount_tenths in minor units with its one decimal, as GoCardless wrote it.
    amount_minor      numeric(20, 1) GENERATED ALWAYS AS (amount_tenths::numeric / 10) STORED,
    gc_payment_id     text,
    gc_mandate_id     text,
    gc_refund_id      text,
    taxes             jsonb       NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(taxes) = 'array'),
    match             text        NOT NULL CHECK (match IN ('matched', 'unmatched')),
    collection_id     bigint      REFERENCES collections (id),
    refund_id         bigint      REFERENCES refunds (id),
    erp               text        CHECK (erp IN ('ifs', 'jde')),
    erp_connection_id bigint      REFERENCES connections (id),
    company           text,
    invoice_id        text,
    PRIMARY KEY (payout_id, seq),
    CHECK ((match = 'matched') = (collection_id IS NOT NULL)),
    CHECK (collection_id IS NULL OR (erp IS NOT NULL AND erp_connection_id IS NOT NULL
                                     AND company IS NOT NULL AND invoice_id IS NOT NULL)),
    CHECK (refund_id IS NULL OR collection_id IS NOT NULL)
);
COMMENT ON TABLE payout_items IS
    'Every credit and debit of a payout, as GoCardless lists it (GET /payout_items?payout=...): payments paid out, fees, refunds, charge-backs, late failures, surcharges, with their links and taxes (as given). match: matched items are tied to the collection (and ERP connection, company and invoice) of the payment, or to the refund, they are for; unmatched items (payments not collected by ml-connector) are kept and counted in payouts.unmatched_count.';
COMMENT ON COLUMN payout_items.amount_tenths IS
    'The item''s amount in tenths of a minor unit, exact: positive a credit, negative a debit.';
CREATE INDEX payout_items_gc_payment_idx ON payout_items (gc_payment_id) WHERE gc_payment_id IS NOT NULL;
CREATE INDEX payout_items_collection_idx ON payout_items (collection_id) WHERE collection_id IS NOT NULL;
CREATE INDEX payout_items_erp_idx ON payout_items (erp_connection_id, company) WHERE erp_connection_id IS NOT NULL;

CREATE TABLE payout_postings (
    payout_id         bigint      NOT NULL REFERENCES payouts (id),
    erp               text        NOT NULL CHECK (erp IN ('ifs', 'jde')),
    erp_connection_id bigint      NOT NULL REFERENCES connections (id),
    company           text        NOT NULL CHECK (company <> ''),
    -- erp-poster's idempotency key; its erp_postings row has the same id.
    outcome_id        text        NOT NULL UNIQUE CHECK (outcome_id <> ''),
    lines_tenths      bigint      NOT NULL,
    fees_tenths       bigint      NOT NULL,
    amount_tenths     bigint      GENERATED ALWAYS AS (lines_tenths + fees_tenths) STORED,
    line_count        integer     NOT NULL CHECK (line_count >= 0),
    state             text        NOT NULL CHECK (state IN ('queued', 'posted', 'refused')),
    erp_reference     text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    posted_at         timestamptz,
    PRIMARY KEY (payout_id, erp_connection_id, company),
    CHECK ((state = 'posted') = (posted_at IS NOT NULL))
);
COMMENT ON TABLE payout_postings IS
    'One deposit per payout per ERP connection and company: the lines of the invoices and refunds it settled there and their fees, queued for erp-poster (pending_outcomes, kind payout) in the transaction that stored the payout. amount_tenths is the deposit''s exact share in tenths; erp-poster is sent it in whole minor units (the payout''s deposits rounded together so that, with nothing unmatched, they add up to the payout''s amount; the rounding is in the payout.deposit_queued audit entry).';
CREATE INDEX payout_postings_erp_idx ON payout_postings (erp_connection_id, company);
CREATE TRIGGER payout_postings_touch BEFORE UPDATE ON payout_postings
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

-- A payout's deposits go through the same outbox as every ERP outcome.
ALTER TABLE pending_outcomes DROP CONSTRAINT pending_outcomes_kind_check;
ALTER TABLE pending_outcomes ADD CONSTRAINT pending_outcomes_kind_check
    CHECK (kind IN ('payment', 'refund', 'mandate', 'payout'));

-- +goose Down
DELETE FROM pending_outcomes WHERE kind = 'payout';
ALTER TABLE pending_outcomes DROP CONSTRAINT pending_outcomes_kind_check;
ALTER TABLE pending_outcomes ADD CONSTRAINT pending_outcomes_kind_check
    CHECK (kind IN ('payment', 'refund', 'mandate'));
DROP TABLE payout_postings;
DROP TABLE payout_items;
DROP TABLE payouts;
