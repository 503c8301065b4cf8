package database_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ml-connector/ml-connector/platform/testsupport"
)

const (
	codeNotNull    = "23502"
	codeForeignKey = "23503"
	codeUnique     = "23505"
	codeCheck      = "23514"
)

// schemaFixture holds one ERP connection, one GoCardless connection, one
// collection (id in collectionID) and one customer link, the rows the
// constraint cases collide with.
const schemaFixture = `
INSERT INTO connections (name, kind, settings) VALUES
	('ifs-prod', 'ifs', '{"base_url": "https://ifs.example"}'),
	('gc-live', 'gocardless', '{}');
INSERT INTO collections (erp, connection_id, company, invoice_id, invoice_no, customer_id, kind,
                         amount_minor, currency, state, gc_payment_id, idempotency_key)
VALUES ('ifs', (SELECT id FROM connections WHERE name = 'ifs-prod'), '10', 'INV-1', '1001', 'C1', 'payment',
        12345, 'GBP', 'submitted', 'PM001', 'ifs/10/INV-1/1');
INSERT INTO customer_links (erp, connection_id, company, erp_customer_id, gc_customer_id, gc_mandate_id, mandate_status, mandate_scheme)
VALUES ('ifs', (SELECT id FROM connections WHERE name = 'ifs-prod'), '10', 'C1', 'CU001', 'MD001', 'active', 'bacs');
`

// conn is the id of the ERP connection in SQL, for the cases below.
const conn = `(SELECT id FROM connections WHERE name = 'ifs-prod')`

func fixturePool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool := testsupport.Pool(t)
	if _, err := pool.Exec(context.Background(), schemaFixture); err != nil {
		t.Fatalf("fixture: %v", err)
	}
	return pool
}

func TestSchemaConstraints(t *testing.T) {
	pool := fixturePool(t)
	collection := func(cols, vals string) string {
		return `INSERT INTO collections (erp, connection_id, company, invoice_id, invoice_no, customer_id, kind,
		        amount_minor, currency, state, idempotency_key` + cols + `)
		        VALUES ` + vals
	}

	tests := []struct {
		name     string
		sql      string
		wantCode string // "" = must succeed
	}{
		{"connection kind unknown", `INSERT INTO connections (name, kind) VALUES ('x', 'sap')`, codeCheck},
		{"connection name taken", `INSERT INTO connections (name, kind) VALUES ('ifs-prod', 'jde')`, codeUnique},
		{"connection settings not an object", `INSERT INTO connections (name, kind, settings) VALUES ('x', 'jde', '[]')`, codeCheck},
		{"connection ok", `INSERT INTO connections (name, kind) VALUES ('jde-prod', 'jde')`, ""},

		{"secret too short to be ciphertext", `INSERT INTO connection_secrets (connection_id, name, key_id, ciphertext)
			VALUES (` + conn + `, 'client_secret', 'k1', 'hunter2')`, codeCheck},
		{"secret ok", `INSERT INTO connection_secrets (connection_id, name, key_id, ciphertext)
			VALUES (` + conn + `, 'client_secret', 'k1', decode(repeat('ab', 29), 'hex'))`, ""},
		{"secret without key id", `INSERT INTO connection_secrets (connection_id, name, key_id, ciphertext)
			VALUES (` + conn + `, 'client_secret', '', decode(repeat('ab', 29), 'hex'))`, codeCheck},

		{"collection ok", collection("", `('ifs', `+conn+`, '10', 'INV-2', '1002', 'C1', 'payment', 1, 'EUR', 'creating', 'k2')`), ""},
		{"collection zero amount", collection("", `('ifs', `+conn+`, '10', 'INV-2', '1002', 'C1', 'payment', 0, 'EUR', 'creating', 'k2')`), codeCheck},
		{"collection negative amount", collection("", `('ifs', `+conn+`, '10', 'INV-2', '1002', 'C1', 'payment', -5, 'EUR', 'creating', 'k2')`), codeCheck},
		{"collection lowercase currency", collection("", `('ifs', `+conn+`, '10', 'INV-2', '1002', 'C1', 'payment', 1, 'eur', 'creating', 'k2')`), codeCheck},
		{"collection short currency", collection("", `('ifs', `+conn+`, '10', 'INV-2', '1002', 'C1', 'payment', 1, 'EU', 'creating', 'k2')`), codeCheck},
		{"collection unknown state", collection("", `('ifs', `+conn+`, '10', 'INV-2', '1002', 'C1', 'payment', 1, 'EUR', 'paid', 'k2')`), codeCheck},
		{"collection unknown kind", collection("", `('ifs', `+conn+`, '10', 'INV-2', '1002', 'C1', 'invoice', 1, 'EUR', 'creating', 'k2')`), codeCheck},
		{"collection unknown erp", collection("", `('sap', `+conn+`, '10', 'INV-2', '1002', 'C1', 'payment', 1, 'EUR', 'creating', 'k2')`), codeCheck},
		{"collection submitted without gocardless id", collection("", `('ifs', `+conn+`, '10', 'INV-2', '1002', 'C1', 'payment', 1, 'EUR', 'submitted', 'k2')`), codeCheck},
		{"collection created with subscription id", collection(", gc_subscription_id", `('jde', `+conn+`, '10', 'INV-2', '1002', 'C1', 'subscription', 1, 'EUR', 'created', 'k2', 'SB001')`), ""},
		{"collection failed without gocardless id", collection(", failure_reason_code", `('ifs', `+conn+`, '10', 'INV-2', '1002', 'C1', 'payment', 1, 'EUR', 'exception', 'k2', 'currency_mismatch')`), ""},
		{"collection idempotency key reused", collection("", `('ifs', `+conn+`, '10', 'INV-2', '1002', 'C1', 'payment', 1, 'EUR', 'creating', 'ifs/10/INV-1/1')`), codeUnique},
		{"collection empty idempotency key", collection("", `('ifs', `+conn+`, '10', 'INV-2', '1002', 'C1', 'payment', 1, 'EUR', 'creating', '')`), codeCheck},
		{"collection invoice collected twice", collection("", `('ifs', `+conn+`, '10', 'INV-1', '1001', 'C1', 'payment', 1, 'EUR', 'creating', 'k2')`), codeUnique},
		{"same invoice id in another company", collection("", `('ifs', `+conn+`, '20', 'INV-1', '1001', 'C1', 'payment', 1, 'EUR', 'creating', 'k2')`), ""},
		{"collection payment id reused", collection(", gc_payment_id", `('ifs', `+conn+`, '10', 'INV-2', '1002', 'C1', 'payment', 1, 'EUR', 'created', 'k2', 'PM001')`), codeUnique},
		{"collection negative attempts", collection(", attempts", `('ifs', `+conn+`, '10', 'INV-2', '1002', 'C1', 'payment', 1, 'EUR', 'creating', 'k2', -1)`), codeCheck},
		{"collection unknown connection", collection("", `('ifs', -1, '10', 'INV-2', '1002', 'C1', 'payment', 1, 'EUR', 'creating', 'k2')`), codeForeignKey},

		{"refund ok", `INSERT INTO refunds (collection_id, erp, connection_id, company, erp_refund_id, amount_minor, currency, state, idempotency_key)
			VALUES ((SELECT id FROM collections), 'ifs', ` + conn + `, '10', 'R1', 100, 'GBP', 'creating', 'r1')`, ""},
		{"refund paid without refund id", `INSERT INTO refunds (collection_id, erp, connection_id, company, erp_refund_id, amount_minor, currency, state, idempotency_key)
			VALUES ((SELECT id FROM collections), 'ifs', ` + conn + `, '10', 'R1', 100, 'GBP', 'paid', 'r1')`, codeCheck},
		{"refund of unknown collection", `INSERT INTO refunds (collection_id, erp, connection_id, company, erp_refund_id, amount_minor, currency, state, idempotency_key)
			VALUES (-1, 'ifs', ` + conn + `, '10', 'R1', 100, 'GBP', 'creating', 'r1')`, codeForeignKey},
		{"refund idempotency key shared with a collection is allowed", `INSERT INTO refunds (collection_id, erp, connection_id, company, erp_refund_id, amount_minor, currency, state, idempotency_key)
			VALUES ((SELECT id FROM collections), 'ifs', ` + conn + `, '10', 'R1', 100, 'GBP', 'creating', 'ifs/10/INV-1/1')`, ""},

		{"customer link twice", `INSERT INTO customer_links (erp, connection_id, company, erp_customer_id)
			VALUES ('ifs', ` + conn + `, '10', 'C1')`, codeUnique},
		{"customer link unknown mandate status", `INSERT INTO customer_links (erp, connection_id, company, erp_customer_id, gc_mandate_id, mandate_status)
			VALUES ('ifs', ` + conn + `, '10', 'C2', 'MD002', 'approved')`, codeCheck},
		{"customer link status without mandate", `INSERT INTO customer_links (erp, connection_id, company, erp_customer_id, mandate_status)
			VALUES ('ifs', ` + conn + `, '10', 'C2', 'active')`, codeCheck},
		{"customer link sharing a mandate", `INSERT INTO customer_links (erp, connection_id, company, erp_customer_id, gc_mandate_id, mandate_status)
			VALUES ('ifs', ` + conn + `, '20', 'C1', 'MD001', 'active')`, ""},

		{"event processed twice", `INSERT INTO processed_events (source, event_id) VALUES ('gocardless', 'EV1'), ('gocardless', 'EV1')`, codeUnique},
		{"same id from both sources", `INSERT INTO processed_events (source, event_id) VALUES ('gocardless', 'EV1'), ('erp', 'EV1')`, ""},
		{"event from unknown source", `INSERT INTO processed_events (source, event_id) VALUES ('nats', 'EV1')`, codeCheck},

		{"posting posted without time", `INSERT INTO erp_postings (outcome_id, connection_id, erp, company, kind, status)
			VALUES ('o1', ` + conn + `, 'ifs', '10', 'payment_confirmed', 'posted')`, codeCheck},
		{"posting pending with posted time", `INSERT INTO erp_postings (outcome_id, connection_id, erp, company, kind, posted_at)
			VALUES ('o1', ` + conn + `, 'ifs', '10', 'payment_confirmed', now())`, codeCheck},
		{"posting posted", `INSERT INTO erp_postings (outcome_id, connection_id, erp, company, kind, status, erp_reference, posted_at)
			VALUES ('o1', ` + conn + `, 'ifs', '10', 'payment_confirmed', 'posted', 'AR-7', now())`, ""},
		{"posting twice", `INSERT INTO erp_postings (outcome_id, connection_id, erp, company, kind)
			VALUES ('o1', ` + conn + `, 'ifs', '10', 'payment_confirmed'), ('o1', ` + conn + `, 'ifs', '10', 'payment_confirmed')`, codeUnique},

		{"exception unknown status", `INSERT INTO exceptions (kind, aggregate_type, aggregate_id, reason, status)
			VALUES ('dead_letter', 'message', 'm1', 'max deliveries', 'closed')`, codeCheck},
		{"exception dedup key twice", `INSERT INTO exceptions (kind, aggregate_type, aggregate_id, reason, dedup_key)
			VALUES ('dead_letter', 'message', 'm1', 'x', 'dlq:7'), ('dead_letter', 'message', 'm1', 'x', 'dlq:7')`, codeUnique},
		{"exceptions without dedup key", `INSERT INTO exceptions (kind, aggregate_type, aggregate_id, reason)
			VALUES ('collection_failed', 'collection', '1', 'x'), ('collection_failed', 'collection', '1', 'x')`, ""},

		{"poll state without watermark", `INSERT INTO poll_state (connection_id, entity) VALUES (` + conn + `, 'invoice')`, codeNotNull},

		{"connection with collections cannot be deleted", `DELETE FROM connections WHERE name = 'ifs-prod'`, codeForeignKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			tx, err := pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx)
			_, err = tx.Exec(ctx, tt.sql)
			if tt.wantCode == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) {
				t.Fatalf("error = %v, want SQLSTATE %s", err, tt.wantCode)
			}
			if pgErr.Code != tt.wantCode {
				t.Fatalf("SQLSTATE %s (%s), want %s", pgErr.Code, pgErr.Message, tt.wantCode)
			}
		})
	}
}

func TestDeletingUnusedConnectionRemovesItsState(t *testing.T) {
	ctx := context.Background()
	pool := testsupport.Pool(t)
	var id int64
	err := pool.QueryRow(ctx, `INSERT INTO connections (name, kind) VALUES ('gc', 'gocardless') RETURNING id`).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO connection_secrets (connection_id, name, key_id, ciphertext) VALUES ($1, 'token', 'k1', decode(repeat('00', 29), 'hex'))`,
		`INSERT INTO poll_state (connection_id, entity, watermark_time) VALUES ($1, 'invoice', now())`,
		`INSERT INTO event_cursors (connection_id, cursor) VALUES ($1, 'EV123')`,
	} {
		if _, err := pool.Exec(ctx, q, id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `DELETE FROM connections WHERE id = $1`, id); err != nil {
		t.Fatalf("delete connection: %v", err)
	}
	var left int
	err = pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM connection_secrets) + (SELECT count(*) FROM poll_state) + (SELECT count(*) FROM event_cursors)`).Scan(&left)
	if err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("%d dependent rows survived the connection", left)
	}
}

func TestUpdatedAtIsMaintained(t *testing.T) {
	ctx := context.Background()
	pool := fixturePool(t)
	tables := []struct {
		table, set, where string
	}{
		{"connections", "settings = '{\"x\": 1}'", "name = 'ifs-prod'"},
		{"collections", "attempts = attempts + 1", "invoice_id = 'INV-1'"},
		{"customer_links", "mandate_status = 'cancelled'", "erp_customer_id = 'C1'"},
	}
	for _, tt := range tables {
		t.Run(tt.table, func(t *testing.T) {
			var before time.Time
			if err := pool.QueryRow(ctx, `SELECT updated_at FROM `+tt.table+` WHERE `+tt.where).Scan(&before); err != nil {
				t.Fatal(err)
			}
			// A writer that forgets updated_at, or sets it wrongly, still
			// gets the time of its transaction.
			var after time.Time
			err := pool.QueryRow(ctx, `UPDATE `+tt.table+` SET `+tt.set+`, updated_at = '2000-01-01Z' WHERE `+tt.where+` RETURNING updated_at`).Scan(&after)
			if err != nil {
				t.Fatal(err)
			}
			if !after.After(before) {
				t.Errorf("updated_at %v not after %v", after, before)
			}
		})
	}
}
