package main

import (
	"context"
	"strings"
	"testing"

	"github.com/ml-connector/ml-connector/platform/database"
	"github.com/ml-connector/ml-connector/platform/testsupport"
)

func TestMandatesList(t *testing.T) {
	dbURL := testsupport.PostgresURL(t)
	if _, err := mlcctl(t, dbURL, "", "migrate"); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][]string{
		{"ifs-secret\n", "--name", "ifs-acme", "--kind", "ifs", "--settings", `{"base_url":"https://acme.ifs.cloud","client_id":"mlc","company_codes":["10"]}`, "--secret", "client_secret=-"},
		{"gc-token\n", "--name", "gc", "--kind", "gocardless", "--settings", `{"base_url":"https://api-sandbox.gocardless.com"}`, "--secret", "access_token=-"},
	} {
		if _, err := mlcctl(t, dbURL, c[0], append([]string{"connections", "add"}, c[1:]...)...); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	db, err := database.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(ctx, `INSERT INTO mandate_requests (erp, connection_id, company, erp_customer_id, gc_connection_id,
			gc_customer_id, attempt, idempotency_key, currency, state, billing_request_id, flow_id, authorisation_url, flow_expires_at, notified)
		SELECT 'ifs', e.id, '10', 'C1', g.id, 'CU1', 1, 'k1', 'GBP', 'awaiting_payer', 'BRQ1', 'BRF1',
		       'https://pay.gocardless.com/billing/static/flow?id=BRF1', '2026-12-13T09:00:00Z', 'refused: notify not supported'
		FROM connections e, connections g WHERE e.name = 'ifs-acme' AND g.name = 'gc'`); err != nil {
		t.Fatal(err)
	}
	out, err := mlcctl(t, dbURL, "", "mandates", "list")
	if err != nil || !strings.Contains(out, "https://pay.gocardless.com/billing/static/flow?id=BRF1") || !strings.Contains(out, "C1") ||
		!strings.Contains(out, "2026-12-13 09:00") {
		t.Fatalf("mandates list: %v\n%s", err, out)
	}
	if out, err := mlcctl(t, dbURL, "", "mandates", "list", "--state", "fulfilled"); err != nil || strings.Contains(out, "BRQ1") {
		t.Fatalf("fulfilled list shows an open request: %v\n%s", err, out)
	}
	if out, err := mlcctl(t, dbURL, "", "mandates", "list", "--json"); err != nil || !strings.Contains(out, `"authorisation_url": "https://pay.gocardless.com`) {
		t.Fatalf("json: %v\n%s", err, out)
	}
	if _, err := mlcctl(t, dbURL, "", "mandates", "resend", "x"); err == nil {
		t.Fatal("resend of a non-number")
	}
}
