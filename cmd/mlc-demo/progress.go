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
	perGroup   map[string]*groupTally // "ifs 10", "jde 00001 USD", ...
	states     map[string]string      // ledger state per "company/invoice"
	reached    int                    // invoices in their expected end state
	missing    []string               // invoices not (yet) in their expected end state
	payments   map[string]int         // GoCardless payments per invoice
	posted     int                    // outcomes posted to the ERPs
	unposted   int                    // outcomes recorded but not (yet) posted: pending or refused
	duplicated int
	// collected and failed count invoices by ledger state; refunded counts
	// refunds paid by GoCardless and posted to the ERP.
	collected, failed, refunded int
	// exceptions are every row of the exceptions table, as mlcctl
	// exceptions list --status all shows them; expected are those the book
	// meant to raise (an invoice that cannot be collected), unexpected the rest.
	exceptions []exceptionRow
	expected   int
	unexpected []exceptionRow
}

type groupTally struct {
	invoices, inLedger, paidOut, failed, exceptions int
}

type collectionRow struct {
	state, refund               string
	paymentPosted, refundPosted int
}

type exceptionRow struct {
	id                                int64
	kind, aggregateID, reason, status string
}

func (e exceptionRow) String() string {
	return fmt.Sprintf("#%d %s %s %s: %s", e.id, e.status, e.kind, e.aggregateID, e.reason)
}

// monitorQuery reads every collection with its newest refund and the
// outcomes posted on its invoice. Postings are counted in one grouped pass
// rather than per collection: a correlated count on erp_postings cost a
// scan of every posting per invoice (issue #17 item 8).
const monitorQuery = `
	SELECT c.company, c.invoice_id, c.state, coalesce(r.state, ''),
	       coalesce(p.payments, 0), coalesce(p.refunds, 0)
	FROM collections c
	LEFT JOIN LATERAL (SELECT r.state FROM refunds r WHERE r.collection_id = c.id ORDER BY r.id DESC LIMIT 1) r ON true
	LEFT JOIN (SELECT company, invoice_id,
	                  count(*) FILTER (WHERE kind LIKE 'payment\_%') AS payments,
	                  count(*) FILTER (WHERE kind LIKE 'refund\_%') AS refunds
	           FROM erp_postings WHERE status = 'posted' AND invoice_id IS NOT NULL
	           GROUP BY company, invoice_id) p
	  ON p.company = c.company AND p.invoice_id = c.invoice_id`

// exceptionsQuery reads every exception, whatever its status.
const exceptionsQuery = `SELECT id, kind, aggregate_id, reason, status FROM exceptions ORDER BY id`

// measure compares the book with what the pipeline did.
func measure(ctx context.Context, db *pgxpool.Pool, sim *gcsim.Server, b book) (tally, error) {
	t := tally{perGroup: map[string]*groupTally{}, payments: map[string]int{}, states: map[string]string{}}
	rows, err := db.Query(ctx, monitorQuery)
	if err != nil {
		return t, err
	}
	cols := map[string]collectionRow{}
	for rows.Next() {
		var company, id string
		var r collectionRow
		if err := rows.Scan(&company, &id, &r.state, &r.refund, &r.paymentPosted, &r.refundPosted); err != nil {
			return t, err
		}
		cols[company+"/"+id] = r
		t.states[company+"/"+id] = r.state
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
		// The ledger's invoice identity is erp:connection-id:company:invoice.
		if parts := strings.SplitN(id, ":", 3); len(parts) == 3 {
			awaiting[parts[2]] = true
		}
	}
	if err := arows.Err(); err != nil {
		return t, err
	}
	rows, err = db.Query(ctx, exceptionsQuery)
	if err != nil {
		return t, err
	}
	for rows.Next() {
		var e exceptionRow
		if err := rows.Scan(&e.id, &e.kind, &e.aggregateID, &e.reason, &e.status); err != nil {
			return t, err
		}
		t.exceptions = append(t.exceptions, e)
	}
	if err := rows.Err(); err != nil {
		return t, err
	}
	if err := db.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'posted'), count(*) FILTER (WHERE status <> 'posted') FROM erp_postings`).
		Scan(&t.posted, &t.unposted); err != nil {
		return t, err
	}
	for _, p := range sim.Payments() {
		t.payments[p.Metadata["company"]+"/"+p.Metadata["invoice_id"]]++
	}
	// An exception is expected when it names an invoice the book meant
	// never to reach GoCardless.
	raisedFor := map[string]bool{}
	for _, e := range t.exceptions {
		matched := false
		for _, inv := range b.invoices {
			if inv.want != wantException {
				continue
			}
			docNo := strings.SplitN(inv.id, "/", 2)[0]
			if strings.Contains(e.aggregateID, docNo) || strings.Contains(e.reason, docNo) {
				raisedFor[inv.company+"/"+inv.id] = true
				matched = true
			}
		}
		if matched {
			t.expected++
		} else {
			t.unexpected = append(t.unexpected, e)
		}
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
			ok = c.state == "paid_out" && c.paymentPosted >= 1
		case wantRefunded:
			// The refund counts once GoCardless paid it and the ERP has it.
			ok = c.state == "paid_out" && c.paymentPosted >= 1 && c.refund == "paid" && c.refundPosted >= 1
			if ok {
				t.refunded++
			}
		case wantFailed:
			ok = c.state == "failed" && c.paymentPosted >= 1
		case wantChargedBack:
			ok = c.state == "charged_back" && c.paymentPosted >= 2
		case wantException:
			ok = t.payments[key] == 0 && raisedFor[key]
		case wantAwaiting:
			ok = t.payments[key] == 0 && awaiting[inv.company+":"+inv.id]
		}
		switch c.state {
		case "paid_out":
			gt.paidOut++
			t.collected++
		case "failed", "charged_back":
			gt.failed++
			t.failed++
		}
		if raisedFor[key] {
			gt.exceptions++
		}
		if ok {
			t.reached++
		} else {
			why := fmt.Sprintf("is %q", c.state)
			switch {
			case !inLedger:
				why = "not in the ledger"
			case inv.want == wantRefunded && c.refund != "paid":
				why = fmt.Sprintf("is %q, refund %q", c.state, c.refund)
			case inv.want == wantRefunded && c.refundPosted == 0:
				why = fmt.Sprintf("is %q, refund %q but not posted to the ERP", c.state, c.refund)
			case c.paymentPosted == 0 && inv.want != wantException:
				why = fmt.Sprintf("is %q, nothing posted to the ERP", c.state)
			}
			t.missing = append(t.missing, fmt.Sprintf("%s %s %s want %s, %s", inv.erp, inv.company, inv.id, inv.want, why))
		}
	}
	return t, nil
}

// settled says every invoice is in its expected end state and every
// outcome recorded has been posted.
func (t tally) settled(invoices int) bool { return t.reached == invoices && t.unposted == 0 }

// state is the ledger state of an invoice's collection ("" if none).
func (t tally) state(inv invoice) string { return t.states[inv.company+"/"+inv.id] }

// progress is the one-line summary printed while the book runs and, from
// the same figures, as the last line before the reconciliation.
func (t tally) progress(day string, invoices int) string {
	return fmt.Sprintf("%s  settled %d/%d  paid out %d  failed %d  refunded %d  exceptions %d (%d unexpected)  posted to ERP %d (%d not yet)",
		day, t.reached, invoices, t.collected, t.failed, t.refunded, len(t.exceptions), len(t.unexpected), t.posted, t.unposted)
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
