package poller_test

import (
	"context"
	"strings"
	"testing"

	"github.com/ml-connector/ml-connector/connectors/jde/jdesim"
	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
)

// A EUR invoice of the USD company 00001 is collected in EUR for its EUR
// amount (FAP/ACR), never for its USD figures (AAP/AG) labelled EUR.
func TestForeignInvoicesCollectTransactionAmounts(t *testing.T) {
	h := newHarness(t, jdesim.Options{}, nil)
	customer(h.sim, 4001, "Acme", "EUR", "00001")
	eur := invoices("00001", 4001, 1, 1)[0]
	eur.CRCD, eur.AG, eur.AAP = "EUR", 100000, 40000 // EUR 1000.00, 400.00 open
	usd := invoices("00001", 4001, 2, 1)[0]
	usd.CRCD, usd.AG, usd.AAP = "USD", 2500, 2500
	// Rows whose mode contradicts their currency are refused, not guessed.
	domesticEUR := invoices("00001", 4001, 3, 1)[0]
	domesticEUR.CRCD, domesticEUR.CRRM = "EUR", "D"
	foreignUSD := storedAsGiven(invoices("00001", 4001, 4, 1)[0], "USD")
	if err := h.sim.AddInvoices(eur, usd, domesticEUR, foreignUSD); err != nil {
		t.Fatal(err)
	}
	if stored, _ := h.sim.Invoice(jdesim.DocKey{DOC: 1, DCT: "RI", KCO: "00001", SFX: "001"}); stored.CRRM != "F" || stored.AAP != 43400 || stored.FAP != 40000 {
		t.Fatalf("simulator row = %+v, want a foreign row with USD 434.00 and EUR 400.00 open", stored)
	}
	res := h.cycle(h.poller(nil))
	if res.Invoices != 2 || res.Rejected != 2 {
		t.Fatalf("result = %+v", res)
	}
	got := map[string]*mlcv1.InvoiceReady{}
	for _, m := range h.drain() {
		if strings.HasSuffix(m.subject, ".invoice") {
			inv := decode(t, m.data, &mlcv1.InvoiceReady{})
			got[inv.Invoice.InvoiceId] = inv
		}
	}
	if e := got["1"]; e == nil || e.Currency != "EUR" || e.Amount != "400.00" || e.GrossAmount != "1000.00" || e.ErpFields["CRRM"] != "F" {
		t.Fatalf("EUR invoice = %v", e)
	}
	if u := got["2"]; u == nil || u.Currency != "USD" || u.Amount != "25.00" || u.GrossAmount != "25.00" {
		t.Fatalf("USD invoice = %v", u)
	}
	var reasons []string
	rows, err := h.pool.Query(context.Background(), `SELECT reason FROM exceptions ORDER BY aggregate_id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var r string
		_ = rows.Scan(&r)
		reasons = append(reasons, r)
	}
	if len(reasons) != 2 || !strings.Contains(reasons[0], "not the company's currency USD") || !strings.Contains(reasons[1], "is the company's own currency") {
		t.Fatalf("exceptions = %q", reasons)
	}
}

// A refund document whose outcome could not be posted back (no business
// unit and no default GL account) is an exception at intake: it is never
// published, so GoCardless is never asked to refund it.
func TestUnpostableRefundIsAnExceptionAtIntake(t *testing.T) {
	refund := jdesim.Invoice{DOC: 5001, DCT: "RF", KCO: "00001", SFX: "001", AN8: 4001, CO: "00001", AG: -2500, AAP: -2500,
		CRCD: "USD", PST: "A", ODOC: 900, ODCT: "RI", OKCO: "00001", OSFX: "001"}
	otherBU := refund
	otherBU.DOC, otherBU.MCU = 5002, "M99"

	h := newHarness(t, jdesim.Options{}, nil)
	customer(h.sim, 4001, "Acme", "USD", "00001")
	if err := h.sim.AddInvoices(refund, otherBU); err != nil {
		t.Fatal(err)
	}
	if res := h.cycle(h.poller(nil)); res.Refunds != 0 || res.Rejected != 2 {
		t.Fatalf("without a GL account: %+v", res)
	}
	var reasons string
	if err := h.pool.QueryRow(context.Background(), `SELECT string_agg(reason, ' | ' ORDER BY aggregate_id) FROM exceptions WHERE aggregate_type = 'jde_refund'`).Scan(&reasons); err != nil ||
		!strings.Contains(reasons, "no business unit and the connection has no default_gl_account") || !strings.Contains(reasons, `"M99" has no GL account`) {
		t.Fatalf("exceptions = %q, %v", reasons, err)
	}
	for _, m := range h.drain() {
		if strings.HasSuffix(m.subject, ".refund") {
			t.Fatalf("unpostable refund published: %s", m.id)
		}
	}

	h = newHarness(t, jdesim.Options{}, map[string]any{"default_gl_account": "HQ.1110"})
	customer(h.sim, 4001, "Acme", "USD", "00001")
	if err := h.sim.AddInvoices(refund); err != nil {
		t.Fatal(err)
	}
	if res := h.cycle(h.poller(nil)); res.Refunds != 1 || res.Rejected != 0 {
		t.Fatalf("with default_gl_account: %+v", res)
	}
}
