package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ml-connector/ml-connector/platform/testsupport"
)

// bigTables grow with the book; a lookup of one invoice, customer or event
// must never scan them.
var bigTables = []string{"collections", "refunds", "customer_links", "erp_postings", "exceptions", "audit_log", "audit_heads", "processed_events"}

// perKeyQueries are the lookups the services, mlcctl and the demo make for
// one invoice, refund, customer, event or aggregate, with arguments that
// exist in the seeded database. Each names where it is run; they are
// copied, so a changed query must be changed here too.
var perKeyQueries = []struct {
	where, sql string
	args       []any
}{
	{"ledger.Collection, ledger.LockCollection (orchestrator, mlcctl collections show/replay)",
		`SELECT * FROM collections WHERE connection_id = $1 AND company = $2 AND invoice_id = $3 FOR UPDATE`, []any{1, "10", "500"}},
	{"ledger: collection by payment (orchestrator, every payment event)",
		`SELECT * FROM collections WHERE gc_payment_id = $1 FOR UPDATE`, []any{"PM500"}},
	{"ledger: collection by subscription", `SELECT * FROM collections WHERE gc_subscription_id = $1 FOR UPDATE`, []any{"SB1"}},
	{"ledger: collection by id", `SELECT * FROM collections WHERE id = $1`, []any{500}},
	{"ledger: customer by key (orchestrator, every invoice)",
		`SELECT * FROM customer_links WHERE connection_id = $1 AND company = $2 AND erp_customer_id = $3 FOR UPDATE`, []any{1, "10", "C42"}},
	{"ledger: customers of a mandate (every mandate event)",
		`SELECT * FROM customer_links WHERE gc_mandate_id = $1 ORDER BY id FOR UPDATE`, []any{"MD42"}},
	{"ledger: refund by key", `SELECT * FROM refunds WHERE connection_id = $1 AND company = $2 AND erp_refund_id = $3 FOR UPDATE`, []any{2, "00001", "R7"}},
	{"ledger: refunded so far of a collection",
		`SELECT coalesce(sum(amount_minor), 0) FROM refunds WHERE collection_id = $1 AND id <> $2 AND gc_refund_id IS NOT NULL`, []any{500, 0}},
	{"ledger: refund by GoCardless id", `SELECT * FROM refunds WHERE gc_refund_id = $1 FOR UPDATE`, []any{"RF7"}},
	{"erp-poster: posting by outcome", `SELECT status, erp_reference, posted_at FROM erp_postings WHERE outcome_id = $1 FOR UPDATE`, []any{"out-500-a"}},
	{"postings of an invoice (demo monitor, mlcctl collections show, console)", postingsOfInvoice, []any{"10", "500"}},
	{"demo: collection of an invoice (JDE refunds)", `SELECT state FROM collections WHERE connection_id = $1 AND company = $2 AND invoice_id = $3`, []any{2, "00001", "500"}},
	{"audit.List (mlcctl collections show, console)",
		`SELECT * FROM audit_log WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY seq`, []any{"collection", "500"}},
	{"audit.Verify of one aggregate (mlcctl collections show)", `
		SELECT * FROM (SELECT * FROM audit_log WHERE aggregate_type = $1 AND aggregate_id = $2) l
		FULL JOIN (SELECT * FROM audit_heads WHERE aggregate_type = $1 AND aggregate_id = $2) h
		  ON h.aggregate_type = l.aggregate_type AND h.aggregate_id = l.aggregate_id
		ORDER BY l.seq`, []any{"collection", "500"}},
	{"audit head of an aggregate (every audited change)",
		`SELECT seq, hash FROM audit_heads WHERE aggregate_type = $1 AND aggregate_id = $2 FOR UPDATE`, []any{"collection", "500"}},
	{"processed event (orchestrator, every event)",
		`SELECT 1 FROM processed_events WHERE source = $1 AND event_id = $2`, []any{"gocardless", "EV500"}},
	{"exception by dedup key (dead letters, failure handlers)", `SELECT id FROM exceptions WHERE dedup_key = $1`, []any{"dl-7"}},
	{"exceptions of an aggregate", `SELECT * FROM exceptions WHERE aggregate_type = $1 AND aggregate_id = $2`, []any{"collection", "500"}},
	{"ledger.Exceptions open (mlcctl exceptions list, collections show)",
		`SELECT * FROM exceptions WHERE $1 = '' OR status = $1 ORDER BY id DESC`, []any{"open"}},
}

// postingsOfInvoice counts an invoice's posted outcomes.
const postingsOfInvoice = `SELECT count(*) FROM erp_postings WHERE company = $1 AND invoice_id = $2 AND status = 'posted'`

// TestQueryPlansAt100kCollections seeds a database with 100,000
// collections (200,000 postings, 300,000 audit records, ...) and checks
// the plans: no lookup of one key scans a big table, and the demo's
// whole-book monitor reads each table once rather than once per invoice
// (issue #17 item 8: the monitor's per-invoice posting count scanned every
// posting, so its cost grew with the square of the book).
func TestQueryPlansAt100kCollections(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds 100,000 collections")
	}
	db := testsupport.Pool(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	seedScale(ctx, t, db, 100_000)

	for _, q := range perKeyQueries {
		plan := explain(ctx, t, db, false, q.sql, q.args...)
		for _, n := range plan.nodes() {
			if n.NodeType == "Seq Scan" && isBig(n.RelationName) {
				t.Errorf("%s: Seq Scan on %s:\n%s", q.where, n.RelationName, plan.text)
			}
		}
	}
	for name, sql := range map[string]string{"monitor": monitorQuery, "exceptions": exceptionsQuery} {
		plan := explain(ctx, t, db, true, sql)
		for _, n := range plan.nodes() {
			if n.NodeType == "Seq Scan" && isBig(n.RelationName) && n.Loops > 1 {
				t.Errorf("demo %s: Seq Scan on %s repeated %d times:\n%s", name, n.RelationName, n.Loops, plan.text)
			}
			if n.Loops > 1 && n.ActualRows*n.Loops > 10*100_000 {
				t.Errorf("demo %s: %s on %s reads %d rows in %d loops:\n%s", name, n.NodeType, n.RelationName, n.ActualRows*n.Loops, n.Loops, plan.text)
			}
		}
	}
}

func isBig(rel string) bool {
	for _, b := range bigTables {
		if rel == b {
			return true
		}
	}
	return false
}

// seedScale writes n collections with two postings, three audit records
// and an event each, a refund for every 50th, an exception for every
// 20th (most resolved, as in a book that has run for a while), and a
// customer per 100.
func seedScale(ctx context.Context, t *testing.T, db *pgxpool.Pool, n int) {
	t.Helper()
	for _, stmt := range []string{
		`INSERT INTO connections (name, kind) VALUES ('ifs', 'ifs'), ('jde', 'jde'), ('gc', 'gocardless')`,
		`INSERT INTO customer_links (erp, connection_id, company, erp_customer_id, gc_connection_id, gc_customer_id, gc_mandate_id, mandate_status)
		 SELECT 'ifs', 1, '10', 'C' || i, 3, 'CU' || i, 'MD' || i, 'active' FROM generate_series(1, $1 / 100) i`,
		`INSERT INTO collections (erp, connection_id, gc_connection_id, company, invoice_id, invoice_no, customer_id, kind,
		     amount_minor, currency, state, gc_payment_id, idempotency_key)
		 SELECT CASE WHEN i % 2 = 0 THEN 'ifs' ELSE 'jde' END, 1 + i % 2, 3, CASE WHEN i % 2 = 0 THEN '10' ELSE '00001' END,
		        i::text, 'CI-' || i, 'C' || (i % ($1 / 100)), 'payment', 1000 + i, 'GBP', 'paid_out', 'PM' || i, 'key-' || i
		 FROM generate_series(1, $1) i`,
		`INSERT INTO refunds (collection_id, erp, connection_id, company, erp_refund_id, amount_minor, currency, state, gc_refund_id, idempotency_key)
		 SELECT i, 'jde', 2, '00001', 'R' || i, 100, 'GBP', 'paid', 'RF' || i, 'rkey-' || i FROM generate_series(1, $1, 50) i`,
		`INSERT INTO erp_postings (outcome_id, connection_id, erp, company, invoice_id, kind, status, posted_at)
		 SELECT 'out-' || i || '-' || k, 1 + i % 2, CASE WHEN i % 2 = 0 THEN 'ifs' ELSE 'jde' END, CASE WHEN i % 2 = 0 THEN '10' ELSE '00001' END,
		        i::text, 'payment_' || k, 'posted', now()
		 FROM generate_series(1, $1) i, unnest(ARRAY['a', 'b']) k`,
		`INSERT INTO exceptions (kind, aggregate_type, aggregate_id, reason, status, dedup_key)
		 SELECT 'dead_letter', 'collection', i::text, 'test', CASE WHEN i % 1000 = 0 THEN 'open' ELSE 'resolved' END, 'dl-' || i
		 FROM generate_series(1, $1, 20) i`,
		`INSERT INTO audit_log (aggregate_type, aggregate_id, seq, occurred_at, actor, action, payload, prev_hash, hash)
		 SELECT 'collection', i::text, s, now(), 'test', 'collection.changed', '{}', sha256(''::bytea), sha256(''::bytea)
		 FROM generate_series(1, $1) i, generate_series(1, 3) s`,
		`INSERT INTO audit_heads (aggregate_type, aggregate_id, seq, hash)
		 SELECT 'collection', i::text, 3, sha256(''::bytea) FROM generate_series(1, $1) i`,
		`INSERT INTO processed_events (source, event_id) SELECT 'gocardless', 'EV' || i FROM generate_series(1, $1) i`,
	} {
		args := []any{}
		if strings.Contains(stmt, "$1") {
			args = append(args, n)
		}
		if _, err := db.Exec(ctx, stmt, args...); err != nil {
			t.Fatalf("seed: %v\n%s", err, stmt)
		}
	}
	if _, err := db.Exec(ctx, `ANALYZE`); err != nil {
		t.Fatal(err)
	}
}

type plan struct {
	root planNode
	text string
}

type planNode struct {
	NodeType     string     `json:"Node Type"`
	RelationName string     `json:"Relation Name"`
	Loops        int        `json:"Actual Loops"`
	ActualRows   int        `json:"Actual Rows"`
	Plans        []planNode `json:"Plans"`
}

func (p plan) nodes() []planNode {
	var all []planNode
	var walk func(n planNode)
	walk = func(n planNode) {
		all = append(all, n)
		for _, c := range n.Plans {
			walk(c)
		}
	}
	walk(p.root)
	return all
}

// explain returns the plan Postgres picks for sql with args (as the
// services send them: bound parameters, so a custom plan for these values).
func explain(ctx context.Context, t *testing.T, db *pgxpool.Pool, analyze bool, sql string, args ...any) plan {
	t.Helper()
	opts := "FORMAT JSON"
	if analyze {
		opts = "ANALYZE, " + opts
	}
	var raw []byte
	tx, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if err := tx.QueryRow(ctx, fmt.Sprintf("EXPLAIN (%s) %s", opts, sql), args...).Scan(&raw); err != nil {
		t.Fatalf("explain: %v\n%s", err, sql)
	}
	var out []struct {
		Plan planNode `json:"Plan"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || len(out) != 1 {
		t.Fatalf("explain output: %v\n%s", err, raw)
	}
	var text string
	rows, err := tx.Query(ctx, "EXPLAIN "+sql, args...)
	if err == nil {
		var lines []string
		for rows.Next() {
			var l string
			_ = rows.Scan(&l)
			lines = append(lines, l)
		}
		rows.Close()
		text = strings.Join(lines, "\n")
	}
	return plan{root: out[0].Plan, text: text}
}
