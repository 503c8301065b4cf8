-- +goose Up

-- Every paid invoice appears in exactly one payout (issue #20), as a
-- database guarantee rather than a check two transactions could both pass:
-- two payouts listing the same payment, stored at the same moment, each
-- read no earlier payout_paid_out item for it and both stored theirs.
--
-- A payment GoCardless pays out again is still stored and posted as
-- GoCardless paid it (the bank line holds it), but flagged: its item is
-- `duplicate`, and the payout_duplicate_payment exception says so. At most
-- one item per payment is not a duplicate; a second transaction storing
-- one waits for the first and fails on the index, and the orchestrator
-- stores its payout again, finding the first.
ALTER TABLE payout_items ADD COLUMN duplicate boolean NOT NULL DEFAULT false;
ALTER TABLE payout_items ADD CONSTRAINT payout_items_duplicate_paid_out
    CHECK (NOT duplicate OR (type = 'payment_paid_out' AND gc_payment_id IS NOT NULL));
COMMENT ON COLUMN payout_items.duplicate IS
    'A payment_paid_out item whose payment an item stored before it (in another payout, or earlier in this one) pays out already: stored and posted as GoCardless paid it, raised as payout_duplicate_payment.';

-- Payouts stored before this migration: every item after a payment's
-- first (in storing order) is the duplicate.
UPDATE payout_items i SET duplicate = true
FROM (SELECT payout_id, seq, row_number() OVER (PARTITION BY gc_payment_id ORDER BY payout_id, seq) AS n
      FROM payout_items WHERE type = 'payment_paid_out' AND gc_payment_id IS NOT NULL) d
WHERE d.payout_id = i.payout_id AND d.seq = i.seq AND d.n > 1;

CREATE UNIQUE INDEX payout_items_paid_out_once ON payout_items (gc_payment_id)
    WHERE type = 'payment_paid_out' AND gc_payment_id IS NOT NULL AND NOT duplicate;

-- A payout's deposit can be posted again when an operator asks (mlcctl
-- payouts repost, the console's payout page): after the ERP refused it, or
-- after its posting ran out of retries. Its request is kept so that the
-- same deposit, under the same outcome id (erp-poster's idempotency key:
-- never a second deposit), is queued again; rows from before this have
-- none and cannot be re-posted.
ALTER TABLE payout_postings ADD COLUMN request bytea;
COMMENT ON COLUMN payout_postings.request IS
    'The marshalled mlc.v1.PostPayoutRequest queued for erp-poster under outcome_id, kept for a re-post.';

-- +goose Down
ALTER TABLE payout_postings DROP COLUMN request;
DROP INDEX payout_items_paid_out_once;
ALTER TABLE payout_items DROP CONSTRAINT payout_items_duplicate_paid_out;
ALTER TABLE payout_items DROP COLUMN duplicate;
