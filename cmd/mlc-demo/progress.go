package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ml-connector/ml-connector/connectors/gocardless/gcsim"
)

// tally is where the book stands, read from the ledger and the simulators.
type tally struct {
	perGroup                      map[string]*groupTally // "ifs 10", "jde 00001 USD", ...
	reached                       int                    // invoices in their expected end state
	missing                       []string               // invoices not (yet) in their expected end state
	payments                      map[string]int         // GoCardless payments per invoice
	posted                        int                    // outcomes posted to the ERPs
	duplicated                    int
	collected, failed, exceptions int
}

type groupTally struct {
	invoices, inLedger, paidOut, failed, exceptions int
}

type collectionRow struct {
	state, refund string
	postings      int
}

// measure compares the book with what the pipeline did.
func measure(ctx context.Context, db *pgxpool.Pool, sim *gcsim.Server, b book) (tally, error) {
	t := tally{perGroup: map[string]*groupTally{}, payments: map[string]int{}}
	rows, err := db.Query(ctx, `
		SELECT c.company, c.invoice_id, c.state,
		       coalesce((SELECT r.state FROM refunds r WHERE r.collection_id = c.id ORDER BY r.id DESC LIMIT 1), ''),
		       (SELECT count(*) FROM erp_postings p WHERE p.company = c.company AND p.invoice_id = c.invoice_id AND p.status = 'posted')
		FROM collections c`)
	if err != nil {
		return t, err
	}
	cols := map[string]collectionRow{}
	for rows.Next() {
		var company, id string
		var r collectionRow
		if err := rows.Scan(&company, &id, &r.state, &r.refund, &r.postings); err != nil {
			return t, err
		}
		cols[company+"/"+id] = r
	}
	if err := rows.Err(); err != nil {
		return t, err
	}
	awaiting := map[string]bool{}
	arows, err := db.Query(ctx, `SELECT aggregate_id FROM awaiting_invoices WHERE released_at IS NULL`)
	if err != nil {
		return t, err
	}
	for arows.Next() {
		var id string
		if err := arows.Scan(&id); err != nil {
			return t, err
		}
		awaiting[id] = true
	}
	if err := arows.Err(); err != nil {
		return t, err
	}
	var exceptionText string
	if err := db.QueryRow(ctx, `SELECT coalesce(string_agg(aggregate_id || ' ' || reason, E'\n'), '') FROM exceptions`).Scan(&exceptionText); err != nil {
		return t, err
	}
	if err := db.QueryRow(ctx, `SELECT count(*) FROM erp_postings WHERE status = 'posted'`).Scan(&t.posted); err != nil {
		return t, err
	}
	for _, p := range sim.Payments() {
		t.payments[p.Metadata["company"]+"/"+p.Metadata["invoice_id"]]++
	}
	for _, inv := range b.invoices {
		g := groupKey(inv)
		gt := t.perGroup[g]
		if gt == nil {
			gt = &groupTally{}
			t.perGroup[g] = gt
		}
		gt.invoices++
		key := inv.company + "/" + inv.id
		c, inLedger := cols[key]
		if inLedger {
			gt.inLedger++
		}
		if t.payments[key] > 1 {
			t.duplicated++
		}
		var ok bool
		switch inv.want {
		case wantCollected:
			ok = c.state == "paid_out" && c.postings >= 1
		case wantRefunded:
			ok = c.state == "paid_out" && c.refund == "paid" && c.postings >= 1
		case wantFailed:
			ok = c.state == "failed" && c.postings >= 1
		case wantChargedBack:
			ok = c.state == "charged_back" && c.postings >= 2
		case wantException:
			docNo := strings.SplitN(inv.id, "/", 2)[0]
			ok = t.payments[key] == 0 && strings.Contains(exceptionText, docNo)
		case wantAwaiting:
			ok = t.payments[key] == 0 && awaitingInvoice(awaiting, inv)
		}
		switch c.state {
		case "paid_out":
			gt.paidOut++
			t.collected++
		case "failed", "charged_back":
			gt.failed++
			t.failed++
		}
		if inv.want == wantException && ok {
			gt.exceptions++
			t.exceptions++
		}
		if ok {
			t.reached++
		} else {
			t.missing = append(t.missing, fmt.Sprintf("%s %s %s want %s, is %q", inv.erp, inv.company, inv.id, inv.want, c.state))
		}
	}
	return t, nil
}

func groupKey(inv invoice) string {
	if inv.erp == "jde" {
		return "jde " + inv.company + " " + inv.currency
	}
	return "ifs " + inv.company + " " + inv.currency
}

// print writes the per-company table.
func (t tally) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "ERP COMPANY\tinvoices\tin ledger\tpaid out\tfailed\texceptions\t")
	keys := make([]string, 0, len(t.perGroup))
	for k := range t.perGroup {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		g := t.perGroup[k]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t\n", k, g.invoices, g.inLedger, g.paidOut, g.failed, g.exceptions)
	}
	_ = tw.Flush()
}

// awaitingInvoice reports whether inv is parked, waiting for its
// customer's mandate (its ledger id is connection:company:invoice, with
// JD Edwards' document type and suffix after the number).
func awaitingInvoice(awaiting map[string]bool, inv invoice) bool {
	for id := range awaiting {
		if strings.Contains(id, ":"+inv.company+":"+inv.id) {
			return true
		}
	}
	return false
}
