package main

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/ml-connector/ml-connector/platform/database"
	"github.com/ml-connector/ml-connector/platform/testsupport"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/settlement/settlementtest"
)

// november is a migrated database holding settlementtest's November 2026.
func november(t *testing.T) string {
	t.Helper()
	dbURL := testsupport.PostgresURL(t)
	if _, err := mlcctl(t, dbURL, "", "migrate"); err != nil {
		t.Fatal(err)
	}
	db, err := database.Open(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	settlementtest.New(t, db).Seed()
	return dbURL
}

func TestPayoutsListAndShow(t *testing.T) {
	dbURL := november(t)
	out, err := mlcctl(t, dbURL, "", "payouts", "list", "--from", "2026-11-01", "--to", "2026-11-30")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "PAYOUT ") {
		t.Fatalf("payouts list:\n%s", out)
	}
	for _, want := range [][]string{
		{"PO1", "REF-NOV", "2026-11-30", "140.50", "2.50", "GBP", "posted", "3", "9", "2 !"},
		{"PO3", "REF-EUR", "2026-11-15", "10.00", "0.00", "EUR", "MISMATCH (items differ by -0.01)"},
	} {
		found := false
		for _, l := range lines[1:] {
			if strings.HasPrefix(l, want[0]+" ") {
				found = true
				for _, w := range want {
					if !strings.Contains(l, w) {
						t.Errorf("%s's line %q lacks %q", want[0], l, w)
					}
				}
			}
		}
		if !found {
			t.Errorf("no line for %s:\n%s", want[0], out)
		}
	}

	out, err = mlcctl(t, dbURL, "", "payouts", "show", "REF-NOV")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"bank reference:  REF-NOV", "amount:          140.50 GBP", "fees:            2.50 GBP", "9, 2 unmatched",
		"ifs-acme    10       INV-1    No INV-1  C1        87.995  posted",
		"!  6  gocardless_fee        -0.494  unmatched          payment=PMX",
		"   7  payment_refunded      -10.00  ifs-acme/10/INV-1  payment=PM1 refund=RF1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("payouts show lacks %q:\n%s", want, out)
		}
	}
	if _, err := mlcctl(t, dbURL, "", "payouts", "show", "PO404"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("unknown payout: %v", err)
	}
	if _, err := mlcctl(t, dbURL, "", "payouts", "list", "--from", "30/11/2026"); err == nil || !strings.Contains(err.Error(), "not a date") {
		t.Errorf("bad date: %v", err)
	}
	if _, err := mlcctl(t, dbURL, "", "payouts", "list", "--limit", "100000"); err == nil {
		t.Error("a limit above the maximum was accepted")
	}

	// --json: the console API's snake_case names.
	out, err = mlcctl(t, dbURL, "", "payouts", "show", "PO1", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if d["bank_reference"] != "REF-NOV" || d["arrival_date"] != "2026-11-30" || d["unmatched_items"] != float64(2) {
		t.Errorf("json payout: %v", d)
	}
	if amount, _ := d["amount"].(map[string]any); amount["amount"] != "140.50" || amount["amount_minor"] != float64(14050) {
		t.Errorf("json amount: %v", d["amount"])
	}
	items, _ := d["item_list"].([]any)
	if len(items) != 9 {
		t.Fatalf("json items: %v", d["item_list"])
	}
	if it := items[4].(map[string]any); it["matched"] != false || it["type"] != "payment_paid_out" || it["amount"] != "10.00" {
		t.Errorf("json unmatched item: %v", it)
	}
}

func TestReportMonthEnd(t *testing.T) {
	dbURL := november(t)
	out, err := mlcctl(t, dbURL, "", "report", "month-end", "--from", "2026-11-01", "--to", "2026-11-30")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"kind,connection,company,gc_connection,currency,collected,fees,refunds,charge_backs,other,paid_out,in_flight,payouts\n",
		"invoices,ifs-acme,10,gc,GBP,150.00,2.005,10.00,7.00,0.00,130.995,25.00,1\n",
		"invoices,ifs-acme,20,gc,GBP,0.00,0.00,0.00,0.00,0.00,0.00,30.00,0\n",
		"rounding,gc,,gc,GBP,0.00,0.001,0.00,0.00,0.00,-0.001,0.00,0\n",
		"total,,,,GBP,160.00,2.50,10.00,7.00,0.00,140.50,55.00,1\n",
		"warning: payout PO3 (bank reference REF-EUR): GoCardless paid EUR 10.00, its items add up to 9.99",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("CSV lacks %q:\n%s", want, out)
		}
	}
	out, err = mlcctl(t, dbURL, "", "report", "month-end", "--from", "2026-11-01", "--to", "2026-11-30", "--connection", "ifs-acme", "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Lines []map[string]any `json:"lines"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(rep.Lines) != 2 || rep.Lines[0]["paid_out"] != "130.995" || rep.Lines[0]["charge_backs"] != "7.00" {
		t.Errorf("json lines: %v", rep.Lines)
	}
	for _, bad := range [][]string{
		{"--from", "2026-11-01"},
		{"--from", "2026-11-30", "--to", "2026-11-01"},
		{"--from", "2026-11-01", "--to", "2026-11-30", "--format", "xlsx"},
		{"--from", "2026-11-01", "--to", "2026-11-30", "--connection", "nope"},
	} {
		if _, err := mlcctl(t, dbURL, "", append([]string{"report", "month-end"}, bad...)...); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// An operator re-posts a payout the ERP refused: its deposits are queued
// again under their own outcome ids (with the request kept when they were
// first queued), the operator is audited; a payout that does not add up
// has nothing to re-post.
func TestPayoutsRepost(t *testing.T) {
	dbURL := november(t)
	ctx := context.Background()
	db, err := database.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// PO1 as an ERP's refusal leaves it: its deposits refused, their
	// requests kept, nothing queued.
	for _, sql := range []string{
		`UPDATE payouts SET state = 'refused', posted_at = NULL WHERE gc_payout_id = 'PO1'`,
		`UPDATE payout_postings SET state = 'refused', posted_at = NULL, request = '\x0a00'::bytea
		 WHERE payout_id = (SELECT id FROM payouts WHERE gc_payout_id = 'PO1')`,
	} {
		if _, err := db.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	var deposits int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM payout_postings p JOIN payouts o ON o.id = p.payout_id
		WHERE o.gc_payout_id = 'PO1'`).Scan(&deposits); err != nil || deposits == 0 {
		t.Fatalf("PO1 has %d deposits: %v", deposits, err)
	}
	out, err := mlcctl(t, dbURL, "", "payouts", "repost", "REF-NOV", "--note", "period reopened")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "payout PO1: "+strconv.Itoa(deposits)+" deposit(s) queued again") {
		t.Errorf("repost said %q", out)
	}
	count := func(sql string) int {
		t.Helper()
		var n int
		if err := db.QueryRow(ctx, sql).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(`SELECT count(*) FROM pending_outcomes o JOIN payout_postings p ON p.outcome_id = o.outcome_id
			WHERE o.kind = 'payout' AND o.aggregate_id = 'PO1' AND o.outcome = p.request AND p.state = 'queued'`); n != deposits {
		t.Errorf("%d deposits queued again with their request, want %d", n, deposits)
	}
	if n := count(`SELECT count(*) FROM payouts WHERE gc_payout_id = 'PO1' AND state = 'posting'`); n != 1 {
		t.Errorf("PO1 is not posting again")
	}
	if n := count(`SELECT count(*) FROM audit_log WHERE aggregate_id = 'PO1' AND action = 'payout.repost'
			AND actor LIKE 'mlcctl%' AND payload::text LIKE '%period reopened%'`); n != 1 {
		t.Errorf("%d re-posts audited under mlcctl with the note", n)
	}
	if _, err := mlcctl(t, dbURL, "", "payouts", "repost", "PO3"); err == nil || !strings.Contains(err.Error(), "does not add up") {
		t.Errorf("re-post of a mismatch: %v", err)
	}
	if _, err := mlcctl(t, dbURL, "", "payouts", "repost"); err == nil || !strings.Contains(err.Error(), "usage") {
		t.Errorf("re-post without a payout: %v", err)
	}
}
