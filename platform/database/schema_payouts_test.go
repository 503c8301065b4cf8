package database_test

import (
	"context"
	"errors"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// The payouts tables (00011) refuse what would let a payout be posted
// without its items adding up, an item claim a match it does not name,
// or an ERP outcome of an unknown kind be queued.
func TestPayoutSchemaConstraints(t *testing.T) {
	pool := fixturePool(t)
	ctx := context.Background()
	const gc = `(SELECT id FROM connections WHERE name = 'gc-live')`
	payout := func(state string, amount, items int64, extra string) string {
		return `INSERT INTO payouts (gc_connection_id, gc_payout_id, gc_creditor_id, payout_type, currency, amount_minor,
			deducted_fees_minor, reference, gc_status, gc_created_at, state, items_count, items_total_tenths,
			fees_total_tenths, unmatched_count, event_id` + extra + `)
			VALUES (` + gc + `, 'PO1', 'CR1', 'merchant', 'GBP', ` + strconv.FormatInt(amount, 10) + `, 45, 'REF-1', 'paid', now(), '` + state + `', 2, ` +
			strconv.FormatInt(items, 10) + `, -450, 0, 'EV1'`
	}
	end := `)`
	tests := []struct {
		name     string
		setup    string
		sql      string
		wantCode string
	}{
		{name: "payout posting", sql: payout("posting", 1000, 10000, "") + end},
		{name: "payout posting whose items do not add up", sql: payout("posting", 1000, 9994, "") + end, wantCode: codeCheck},
		{name: "payout posting of items GoCardless rounded up", sql: payout("posting", 1000, 9995, "") + end},
		{name: "payout posting of items GoCardless rounded down", sql: payout("posting", 1000, 10005, "") + end},
		{name: "payout mismatch that adds up", sql: payout("mismatch", 1000, 10000, "") + end, wantCode: codeCheck},
		{name: "payout mismatch within rounding", sql: payout("mismatch", 1000, 10004, "") + end, wantCode: codeCheck},
		{name: "payout mismatch", sql: payout("mismatch", 1000, 10006, "") + end},
		{name: "payout posted without time", sql: payout("posted", 1000, 10000, "") + end, wantCode: codeCheck},
		{name: "payout unknown state", sql: payout("paid", 1000, 10000, "") + end, wantCode: codeCheck},
		{name: "payout twice", setup: payout("posting", 1000, 10000, "") + end, sql: payout("posting", 1000, 10000, "") + end, wantCode: codeUnique},
		{name: "item matched", setup: payout("posting", 1000, 10000, "") + end,
			sql: `INSERT INTO payout_items (payout_id, seq, type, amount_tenths, gc_payment_id, match, collection_id, erp, erp_connection_id, company, invoice_id)
				VALUES ((SELECT id FROM payouts), 1, 'payment_paid_out', 10450, 'PM001', 'matched', (SELECT id FROM collections), 'ifs', ` + conn + `, '10', 'INV-1')`},
		{name: "item matched without collection", setup: payout("posting", 1000, 10000, "") + end,
			sql: `INSERT INTO payout_items (payout_id, seq, type, amount_tenths, gc_payment_id, match)
				VALUES ((SELECT id FROM payouts), 1, 'payment_paid_out', 10450, 'PM001', 'matched')`, wantCode: codeCheck},
		{name: "item matched without invoice", setup: payout("posting", 1000, 10000, "") + end,
			sql: `INSERT INTO payout_items (payout_id, seq, type, amount_tenths, gc_payment_id, match, collection_id)
				VALUES ((SELECT id FROM payouts), 1, 'payment_paid_out', 10450, 'PM001', 'matched', (SELECT id FROM collections))`, wantCode: codeCheck},
		{name: "item unmatched", setup: payout("posting", 1000, 10000, "") + end,
			sql: `INSERT INTO payout_items (payout_id, seq, type, amount_tenths, gc_payment_id, match)
				VALUES ((SELECT id FROM payouts), 1, 'payment_paid_out', 10450, 'PM999', 'unmatched')`},
		{name: "payment paid out twice", setup: payout("posting", 1000, 10000, "") + end + `;
			INSERT INTO payout_items (payout_id, seq, type, amount_tenths, gc_payment_id, match) VALUES ((SELECT id FROM payouts), 1, 'payment_paid_out', 10450, 'PM999', 'unmatched')`,
			sql: `INSERT INTO payout_items (payout_id, seq, type, amount_tenths, gc_payment_id, match)
				VALUES ((SELECT id FROM payouts), 2, 'payment_paid_out', 10450, 'PM999', 'unmatched')`, wantCode: codeUnique},
		{name: "payment paid out twice, marked duplicate", setup: payout("posting", 1000, 10000, "") + end + `;
			INSERT INTO payout_items (payout_id, seq, type, amount_tenths, gc_payment_id, match) VALUES ((SELECT id FROM payouts), 1, 'payment_paid_out', 10450, 'PM999', 'unmatched')`,
			sql: `INSERT INTO payout_items (payout_id, seq, type, amount_tenths, gc_payment_id, match, duplicate)
				VALUES ((SELECT id FROM payouts), 2, 'payment_paid_out', 10450, 'PM999', 'unmatched', true)`},
		{name: "fee marked duplicate", setup: payout("posting", 1000, 10000, "") + end,
			sql: `INSERT INTO payout_items (payout_id, seq, type, amount_tenths, gc_payment_id, match, duplicate)
				VALUES ((SELECT id FROM payouts), 1, 'gocardless_fee', -450, 'PM999', 'unmatched', true)`, wantCode: codeCheck},
		{name: "item taxes not a list", setup: payout("posting", 1000, 10000, "") + end,
			sql: `INSERT INTO payout_items (payout_id, seq, type, amount_tenths, match, taxes)
				VALUES ((SELECT id FROM payouts), 1, 'gocardless_fee', -450, 'unmatched', '{}')`, wantCode: codeCheck},
		{name: "item amount shown with its decimal", setup: payout("posting", 1000, 10000, "") + end + `;
			INSERT INTO payout_items (payout_id, seq, type, amount_tenths, match) VALUES ((SELECT id FROM payouts), 1, 'gocardless_fee', -205, 'unmatched')`,
			sql: `DO $$ BEGIN IF (SELECT amount_minor FROM payout_items) <> -20.5 THEN RAISE check_violation; END IF; END $$`},
		{name: "payout outcome queued", sql: `INSERT INTO pending_outcomes (aggregate_type, aggregate_id, event_id, outcome_id, kind, outcome)
				VALUES ('payout', 'PO1', 'EV1', 'payout:PO1:1:10', 'payout', '\x00')`},
		{name: "outcome of unknown kind", sql: `INSERT INTO pending_outcomes (aggregate_type, aggregate_id, event_id, outcome_id, kind, outcome)
				VALUES ('payout', 'PO1', 'EV1', 'x', 'deposit', '\x00')`, wantCode: codeCheck},
		{name: "posting posted without time", setup: payout("posting", 1000, 10000, "") + end,
			sql: `INSERT INTO payout_postings (payout_id, erp, erp_connection_id, company, outcome_id, lines_tenths, fees_tenths, line_count, state)
				VALUES ((SELECT id FROM payouts), 'ifs', ` + conn + `, '10', 'payout:PO1:1:10', 10450, -450, 1, 'posted')`, wantCode: codeCheck},
		{name: "posting queued", setup: payout("posting", 1000, 10000, "") + end,
			sql: `INSERT INTO payout_postings (payout_id, erp, erp_connection_id, company, outcome_id, lines_tenths, fees_tenths, line_count, state)
				VALUES ((SELECT id FROM payouts), 'ifs', ` + conn + `, '10', 'payout:PO1:1:10', 10450, -450, 1, 'queued')`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tx, err := pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx)
			if tt.setup != "" {
				if _, err := tx.Exec(ctx, tt.setup); err != nil {
					t.Fatalf("setup: %v", err)
				}
			}
			_, err = tx.Exec(ctx, tt.sql)
			if tt.wantCode == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != tt.wantCode {
				t.Fatalf("error = %v, want SQLSTATE %s", err, tt.wantCode)
			}
		})
	}
}
