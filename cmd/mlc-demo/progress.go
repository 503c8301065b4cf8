package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
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
	// deadLetters are the messages in MLC_DLQ; deadLetterExceptions the
	// exceptions the orchestrator made of them (equal once it caught up).
	deadLetters, deadLetterExceptions int
	// collected and failed count invoices by ledger state; refunded counts
	// refunds paid by GoCardless and posted to the ERP.
	collected, failed, refunded int
	// exceptions are every row of the exceptions table, as mlcctl
	// exceptions list --status all shows them; expected are those the book
	// meant to raise (an invoice that cannot be collected), unexpected the rest.
	exceptions []exceptionRow
	expected   int
	unexpected []exceptionRow
	payouts    payoutTally
}

// payoutTally is where GoCardless's payouts stand against the ledger:
// every one counted, whatever became of it.
type payoutTally struct {
	paid     int            // payouts GoCardless has paid
	stored   int            // of those, stored in the ledger
	byState  map[string]int // every stored payout, by state
	deposits int            // deposits queued for the ERPs
	posted   int            // of those, written (erp_postings posted)
	// problems are what contradicts the reconciliation of a paid payout:
	// one not stored, items not adding up to the amount GoCardless paid, a
	// payment GoCardless paid out in none or several of the stored payouts.
	problems []string
	// paidOut counts the book's payments GoCardless paid out in a paid
	// payout; once counts those in exactly one stored payout, tied to
	// their invoice.
	paidOut, once int
}

// settled says every payout GoCardless paid is stored, adds up, settles
// each payment it paid out exactly once and is posted to its ERPs.
func (p payoutTally) settled() bool {
	final := p.byState["posted"] + p.byState["nothing_to_post"]
	return len(p.problems) == 0 && p.stored == p.paid && final == p.stored && p.posted == p.deposits && p.once == p.paidOut
}

// String is the reconciliation's payouts line.
func (p payoutTally) String() string {
	states := make([]string, 0, len(p.byState))
	for _, st := range slices.Sorted(maps.Keys(p.byState)) {
		states = append(states, fmt.Sprintf("%s %d", st, p.byState[st]))
	}
	return fmt.Sprintf("payouts: %d paid by GoCardless, %d stored (%s), %d deposits posted to ERP (%d not), paid-out payments in exactly one payout %d/%d, %d problems",
		p.paid, p.stored, strings.Join(states, ", "), p.posted, p.deposits-p.posted, p.once, p.paidOut, len(p.problems))
}

// payoutsQuery reads every stored payout with what its items add up to.
const payoutsQuery = `
	SELECT p.gc_payout_id, p.state, p.amount_minor, p.items_count, p.items_total_tenths,
	       coalesce(i.n, 0), coalesce(i.total, 0)
	FROM payouts p
	LEFT JOIN (SELECT payout_id, count(*) AS n, sum(amount_tenths)::bigint AS total FROM payout_items GROUP BY payout_id) i
	  ON i.payout_id = p.id`

// paidOutQuery reads, for every payment paid out in a stored payout, the
// payouts it is paid out in and the invoice its items are tied to.
const paidOutQuery = `
	SELECT i.gc_payment_id, p.gc_payout_id, coalesce(i.company, ''), coalesce(i.invoice_id, '')
	FROM payout_items i JOIN payouts p ON p.id = i.payout_id
	WHERE i.type = 'payment_paid_out' AND i.gc_payment_id IS NOT NULL`

// measurePayouts compares GoCardless's paid payouts with the ledger's.
func measurePayouts(ctx context.Context, db *pgxpool.Pool, sim *gcsim.Server) (payoutTally, error) {
	t := payoutTally{byState: map[string]int{}}
	type stored struct {
		state                 string
		amount, total, actual int64
		items, rows           int
	}
	ledger := map[string]stored{}
	rows, err := db.Query(ctx, payoutsQuery)
	if err != nil {
		return t, err
	}
	for rows.Next() {
		var id string
		var s stored
		if err := rows.Scan(&id, &s.state, &s.amount, &s.items, &s.total, &s.rows, &s.actual); err != nil {
			return t, err
		}
		ledger[id] = s
		t.byState[s.state]++
	}
	if err := rows.Err(); err != nil {
		return t, err
	}
	// Where each payment was paid out, per the ledger.
	in := map[string][]string{}
	invoiceOf := map[string]string{}
	rows, err = db.Query(ctx, paidOutQuery)
	if err != nil {
		return t, err
	}
	for rows.Next() {
		var payment, payout, company, invoiceID string
		if err := rows.Scan(&payment, &payout, &company, &invoiceID); err != nil {
			return t, err
		}
		in[payment] = append(in[payment], payout)
		invoiceOf[payment] = company + "/" + invoiceID
	}
	if err := rows.Err(); err != nil {
		return t, err
	}
	if err := db.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE e.status = 'posted')
		FROM payout_postings d LEFT JOIN erp_postings e ON e.outcome_id = d.outcome_id`).Scan(&t.deposits, &t.posted); err != nil {
		return t, err
	}
	paid := map[string]bool{}
	for _, po := range sim.Payouts() {
		if po.Status != "paid" {
			continue
		}
		paid[po.ID] = true
		t.paid++
		s, ok := ledger[po.ID]
		switch {
		case !ok:
			t.problems = append(t.problems, fmt.Sprintf("payout %s of %d %s paid by GoCardless is not stored", po.ID, po.Amount, po.Currency))
			continue
		case s.amount != po.Amount:
			t.problems = append(t.problems, fmt.Sprintf("payout %s stored as %d, GoCardless paid %d", po.ID, s.amount, po.Amount))
		case s.rows != s.items || s.actual != s.total || (s.total-po.Amount*10 > 5 || po.Amount*10-s.total > 5):
			t.problems = append(t.problems, fmt.Sprintf("payout %s of %d: %d items stored (%d counted) add up to %d tenths (%d recorded)",
				po.ID, po.Amount, s.rows, s.items, s.actual, s.total))
		}
		t.stored++
	}
	for _, p := range sim.Payments() {
		if p.Links.Payout == "" || !paid[p.Links.Payout] || p.Metadata["invoice_id"] == "" {
			continue
		}
		t.paidOut++
		want := p.Metadata["company"] + "/" + p.Metadata["invoice_id"]
		switch got := in[p.ID]; {
		case len(got) == 1 && got[0] == p.Links.Payout && invoiceOf[p.ID] == want:
			t.once++
		case len(got) == 0:
			t.problems = append(t.problems, fmt.Sprintf("payment %s of invoice %s paid out in %s is in no stored payout", p.ID, want, p.Links.Payout))
		default:
			t.problems = append(t.problems, fmt.Sprintf("payment %s of invoice %s paid out in %s is in stored payouts %v, tied to %q",
				p.ID, want, p.Links.Payout, got, invoiceOf[p.ID]))
		}
	}
	return t, nil
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
		if e.kind == "dead_letter" {
			t.deadLetterExceptions++
		}
	}
	if err := rows.Err(); err != nil {
		return t, err
	}
	if err := db.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'posted'), count(*) FILTER (WHERE status <> 'posted') FROM erp_postings`).
		Scan(&t.posted, &t.unposted); err != nil {
		return t, err
	}
	if t.payouts, err = measurePayouts(ctx, db, sim); err != nil {
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

// settled says every invoice is in its expected end state, every outcome
// recorded has been posted, and every payout GoCardless paid is reconciled
// and posted.
func (t tally) settled(invoices int) bool {
	return t.reached == invoices && t.unposted == 0 && t.payouts.settled() && t.deadLetters == t.deadLetterExceptions
}

// state is the ledger state of an invoice's collection ("" if none).
func (t tally) state(inv invoice) string { return t.states[inv.company+"/"+inv.id] }

// progress is the one-line summary printed while the book runs and, from
// the same figures, as the last line before the reconciliation.
func (t tally) progress(day string, invoices int) string {
	return fmt.Sprintf("%s  settled %d/%d  paid out %d  failed %d  refunded %d  exceptions %d (%d unexpected)  posted to ERP %d (%d not yet)  payouts %d/%d posted",
		day, t.reached, invoices, t.collected, t.failed, t.refunded, len(t.exceptions), len(t.unexpected), t.posted, t.unposted,
		t.payouts.byState["posted"], t.payouts.paid)
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
