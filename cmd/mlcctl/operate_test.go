package main

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/ml-connector/ml-connector/platform/database"
	"github.com/ml-connector/ml-connector/platform/testsupport"
)

func TestExceptionsAndCollections(t *testing.T) {
	dbURL := testsupport.PostgresURL(t)
	if _, err := mlcctl(t, dbURL, "", "migrate"); err != nil {
		t.Fatal(err)
	}
	if _, err := mlcctl(t, dbURL, "ifs-secret\n", "connections", "add", "--name", "ifs-acme", "--kind", "ifs",
		"--settings", `{"base_url":"https://acme.ifs.cloud","client_id":"mlc","company_codes":["10"]}`, "--secret", "client_secret=-"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	db, err := database.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// A collection that failed, as the orchestrator leaves one, and the
	// exception about another invoice's bad amount.
	if err := database.WithTx(ctx, db, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO collections (erp, connection_id, company, invoice_id, invoice_no, customer_id, kind,
			amount_minor, currency, state, gc_payment_id, idempotency_key, attempts, failure_cause, failure_reason_code)
			SELECT 'ifs', id, '10', 'INV-7', 'INV-7', 'C1', 'payment', 12345, 'GBP', 'failed', 'PM123', 'k1', 1,
			       'insufficient_funds', 'ARUDD-0' FROM connections WHERE name = 'ifs-acme'`)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO exceptions (kind, aggregate_type, aggregate_id, reason) VALUES
			('invalid_invoice', 'invoice', 'ifs-acme:10:INV-8', 'amount: more decimals than the currency allows')`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		args    []string
		want    string
		wantErr bool
	}{
		{args: []string{"exceptions", "list"}, want: "invalid_invoice  invoice ifs-acme:10:INV-8"},
		{args: []string{"exceptions", "list", "--json"}, want: `"reason": "amount: more decimals than the currency allows"`},
		{args: []string{"collections", "show", "ifs-acme", "10", "INV-7"}, want: "123.45 GBP"},
		{args: []string{"collections", "show", "ifs-acme", "10", "INV-7"}, want: "insufficient_funds ARUDD-0"},
		// --json uses the console's JSON names (snake_case), not Go's.
		{args: []string{"collections", "show", "ifs-acme", "10", "INV-7", "--json"}, want: `"amount_minor": 12345`},
		{args: []string{"collections", "show", "ifs-acme", "10", "INV-7", "--json"}, want: `"gc_payment_id": "PM123"`},
		{args: []string{"collections", "show", "ifs-acme", "10", "NOPE"}, want: "not found", wantErr: true},
		{args: []string{"exceptions", "escalate", "1", "--note", "asked AR to fix the amount"}, want: "exception 1 escalated"},
		{args: []string{"exceptions", "list"}, want: "ID  STATUS  KIND  WHAT  REASON  SINCE"},
		{args: []string{"exceptions", "list", "--status", "escalated"}, want: "escalated"},
		{args: []string{"collections", "escalate", "ifs-acme", "10", "INV-7", "--note", "customer disputes"}, want: "exceptions [2]"},
		{args: []string{"collections", "replay", "ifs-acme", "10", "INV-7"}, want: "no gocardless route", wantErr: true},
		{args: []string{"audit", "verify"}, want: "audit log verified"},
	}
	for _, st := range steps {
		out, err := mlcctl(t, dbURL, "", st.args...)
		if (err != nil) != st.wantErr {
			t.Fatalf("%v: err %v, output %s", st.args, err, out)
		}
		if err != nil {
			out = err.Error()
		}
		if !strings.Contains(out, st.want) {
			t.Errorf("%v:\n%s\ndoes not contain %q", st.args, out, st.want)
		}
	}
}

func TestUsersAdd(t *testing.T) {
	dbURL := testsupport.PostgresURL(t)
	if _, err := mlcctl(t, dbURL, "", "migrate"); err != nil {
		t.Fatal(err)
	}
	if out, err := mlcctl(t, dbURL, "a-long-enough-password\n", "users", "add", "--name", "ann", "--role", "operator"); err != nil || !strings.Contains(out, "added operator ann (signs in with password)") {
		t.Fatalf("users add: %v %s", err, out)
	}
	if _, err := mlcctl(t, dbURL, "short\n", "users", "add", "--name", "bob", "--role", "viewer"); err == nil || !strings.Contains(err.Error(), "password must be") {
		t.Errorf("short password: %v", err)
	}
	if _, err := mlcctl(t, dbURL, "", "users", "add", "--name", "carl", "--role", "root", "--oidc"); err == nil || !strings.Contains(err.Error(), "unknown role") {
		t.Errorf("unknown role: %v", err)
	}
	if _, err := mlcctl(t, dbURL, "", "users", "add", "--name", "sso@example.com", "--role", "admin", "--oidc"); err != nil {
		t.Fatal(err)
	}
	if out, err := mlcctl(t, dbURL, "", "audit", "verify"); err != nil {
		t.Errorf("audit verify after users add: %v\n%s", err, out)
	}
	out, err := mlcctl(t, dbURL, "", "users", "list")
	if err != nil || !strings.Contains(out, "ann              operator  password") || !strings.Contains(out, "OpenID provider") || strings.Contains(out, "a-long-enough") {
		t.Errorf("users list: %v\n%s", err, out)
	}
}
