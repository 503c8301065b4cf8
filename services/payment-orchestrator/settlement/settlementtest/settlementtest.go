// Package settlementtest writes a month of collections, refunds and
// GoCardless payouts into a test database, as the orchestrator would, so
// that the settlement package, mlcctl and the console are tested against
// the same book and the same expected figures. For tests only.
package settlementtest

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/platform/secrets"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/ledger"
)

// Day parses a YYYY-MM-DD date of the book.
func Day(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err) // the book's own dates are literals
	}
	return t
}

// Book is a database with a GoCardless connection and an IFS connection
// (companies 10 and 20) collecting through it; Seed writes November 2026
// into it.
type Book struct {
	t    testing.TB
	db   *pgxpool.Pool
	ids  map[string]int64 // connection ids by name
	cols map[string]int64 // collection ids by GoCardless payment id
	// GC and ERP are the names of the GoCardless and the IFS connection.
	GC, ERP string
}

// New adds the connections "gc" and "ifs-acme" to db and returns their
// book.
func New(t testing.TB, db *pgxpool.Pool) *Book {
	t.Helper()
	ctx := context.Background()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	keys, err := secrets.NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	store := connections.NewStore(db, keys)
	for _, c := range []connections.New{
		{Name: "gc", Kind: connections.KindGoCardless, Settings: map[string]any{"base_url": "https://gc.example"},
			Secrets: map[string]secrets.Value{"access_token": secrets.NewValue("tok")}},
		{Name: "ifs-acme", Kind: connections.KindIFS, Settings: map[string]any{"base_url": "https://acme.ifs.example", "client_id": "mlc",
			"company_codes": []any{"10", "20"}, "gocardless": "gc"}, Secrets: map[string]secrets.Value{"client_secret": secrets.NewValue("s")}},
	} {
		c.Actor = "test"
		if _, err := store.Add(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	return Existing(t, db, "gc", "ifs-acme")
}

// Existing returns the book of connections already in db: gc a
// GoCardless connection, erp an IFS connection with companies 10 and 20.
func Existing(t testing.TB, db *pgxpool.Pool, gc, erp string) *Book {
	t.Helper()
	b := &Book{t: t, db: db, ids: map[string]int64{}, cols: map[string]int64{}, GC: gc, ERP: erp}
	for _, name := range []string{gc, erp} {
		var id int64
		if err := db.QueryRow(context.Background(), `SELECT id FROM connections WHERE name = $1`, name).Scan(&id); err != nil {
			t.Fatalf("connection %s: %v", name, err)
		}
		b.ids[name] = id
	}
	return b
}

// collection records an invoice's collection through the ledger, as the
// orchestrator does: started, then moved to state with its payment.
func (b *Book) collection(company, invoice, currency string, minor int64, state ledger.CollectionState, payment, chargeDate string, lastEvent time.Time) ledger.Collection {
	b.t.Helper()
	ctx := context.Background()
	led := ledger.New(b.db)
	key := ledger.InvoiceKey{ERP: "ifs", ConnectionID: b.ids[b.ERP], Company: company, InvoiceID: invoice}
	var after ledger.Collection
	err := led.Tx(ctx, func(tx pgx.Tx) error {
		c, _, err := ledger.StartCollection(ctx, tx, ledger.Collection{Key: key, InvoiceNo: "No " + invoice, CustomerID: "C1", Kind: "payment",
			AmountMinor: minor, Currency: currency, GCConnectionID: b.ids[b.GC], IdempotencyKey: ledger.PaymentKey(key, 1), Attempts: 1})
		if err != nil {
			return err
		}
		after = c
		after.State, after.GCPaymentID, after.ChargeDate, after.LastEventAt = state, payment, Day(chargeDate), lastEvent
		return ledger.SaveCollection(ctx, tx, c, after, "collection."+string(state), "test")
	})
	if err != nil {
		b.t.Fatal(err)
	}
	b.cols[payment] = after.ID
	return after
}

// refund records a refund of col through the ledger.
func (b *Book) refund(col ledger.Collection, erpID string, minor int64, state ledger.RefundState, gcRefund string) {
	b.t.Helper()
	ctx := context.Background()
	err := ledger.New(b.db).Tx(ctx, func(tx pgx.Tx) error {
		r, _, err := ledger.StartRefund(ctx, tx, ledger.Refund{Key: ledger.RefundKey{ERP: "ifs", ConnectionID: col.Key.ConnectionID, Company: col.Key.Company, RefundID: erpID},
			CollectionID: col.ID, AmountMinor: minor, Currency: col.Currency, GCPaymentID: col.GCPaymentID})
		if err != nil {
			return err
		}
		after := r
		after.State, after.GCRefundID = state, gcRefund
		return ledger.SaveRefund(ctx, tx, r, after, "refund."+string(state), "test")
	})
	if err != nil {
		b.t.Fatal(err)
	}
}

// item is a payout item: its type, amount in tenths of a minor unit, the
// payment (or refund) it links, and the invoice it is for ("" unmatched).
type item struct {
	typ              string
	tenths           int64
	payment, refund  string
	company, invoice string
}

// payout stores a payout and its items through the ledger, as the
// orchestrator does on the payout's paid event: fetched, then posting
// with one deposit per company, which erp-poster posts ("posted"), or a
// mismatch ("mismatch").
func (b *Book) payout(id, ref, currency, arrival, state string, amount, fees int64, items []item) {
	b.t.Helper()
	ctx := context.Background()
	po := ledger.Payout{GCConnectionID: b.ids[b.GC], GCPayoutID: id, CreditorID: "CR1", PayoutType: "merchant", Currency: currency,
		AmountMinor: amount, DeductedFeesMinor: fees, Reference: ref, ArrivalDate: Day(arrival), GCStatus: "paid",
		GCCreatedAt: Day(arrival).AddDate(0, 0, -1), ItemsCount: len(items), EventID: "EV" + id}
	var rows []ledger.PayoutItem
	deposits := map[string]*ledger.PayoutDeposit{}
	var companies []string
	for n, it := range items {
		po.ItemsTotalTenths += it.tenths
		fee := strings.HasSuffix(it.typ, "_fee")
		if fee {
			po.FeesTotalTenths += it.tenths
		}
		row := ledger.PayoutItem{Seq: n + 1, Type: it.typ, AmountTenths: it.tenths, PaymentID: it.payment, RefundID: it.refund}
		if it.invoice == "" {
			po.UnmatchedCount++
			rows = append(rows, row)
			continue
		}
		row.Matched, row.CollectionID, row.ERP, row.ERPConnectionID = true, b.cols[it.payment], "ifs", b.ids[b.ERP]
		row.Company, row.InvoiceID = it.company, it.invoice
		if it.refund != "" {
			if err := b.db.QueryRow(ctx, `SELECT id FROM refunds WHERE gc_refund_id = $1`, it.refund).Scan(&row.RefundRowID); err != nil {
				b.t.Fatal(err)
			}
		}
		rows = append(rows, row)
		d, ok := deposits[it.company]
		if !ok {
			d = &ledger.PayoutDeposit{ERP: "ifs", ERPConnectionID: b.ids[b.ERP], Company: it.company, OutcomeID: "payout:" + id + ":" + it.company}
			deposits[it.company] = d
			companies = append(companies, it.company)
		}
		if fee {
			d.FeesTenths += it.tenths
		} else {
			d.LinesTenths += it.tenths
			d.LineCount++
		}
	}
	err := ledger.New(b.db).Tx(ctx, func(tx pgx.Tx) error {
		stored, _, err := ledger.InsertPayout(ctx, tx, po, rows)
		if err != nil {
			return err
		}
		if state == "mismatch" {
			_, err = ledger.SetPayoutState(ctx, tx, stored, ledger.PayoutMismatch, "test: items do not add up")
			return err
		}
		if stored, err = ledger.SetPayoutState(ctx, tx, stored, ledger.PayoutPosting, "test"); err != nil {
			return err
		}
		for _, c := range companies {
			if err := ledger.QueuePayoutPosting(ctx, tx, stored, *deposits[c], nil); err != nil {
				return err
			}
		}
		// erp-poster's answers, as the outbox records them.
		if _, err := tx.Exec(ctx, `UPDATE payout_postings SET state = 'posted', erp_reference = 'DEP-' || $2, posted_at = now()
			WHERE payout_id = $1`, stored.ID, id); err != nil {
			return err
		}
		_, err = ledger.SetPayoutState(ctx, tx, stored, ledger.PayoutPosted, "test: every deposit posted")
		return err
	})
	if err != nil {
		b.t.Fatal(err)
	}
}

// Seed writes November 2026:
//
//   - PO1 (arrives 30 Nov, GBP 140.50, fees 2.50): INV-1 100.00 with a fee
//     of 2.005 and refund RF1 of 10.00; INV-2 50.00, fee 1.00; INV-7's
//     charge-back of 7.00 with its fee of 1.00 given back; a payment PMX
//     of 10.00 (fee 0.494) collected outside ml-connector. Its items add
//     up to 140.501 and its fees to 2.499: GoCardless rounded both.
//   - PO0 (arrived 31 Oct) and PO2 (arrives 1 Dec, INV-4 20.00 less 0.40):
//     outside the period.
//   - PO3 (EUR, arrives 15 Nov): GoCardless paid 10.00, its one item says
//     9.99.
//   - In flight at the end of November: INV-4 (paid out on 30 Nov in PO2),
//     INV-9 (paid out on 29 Nov, its payout not stored yet) and INV-3
//     (company 20, confirmed); not INV-5 (charged in December), INV-6
//     (failed) nor INV-8 (paid out in October, before payouts were kept).
func (b *Book) Seed() {
	november := Day("2026-11-30")
	inv1 := b.collection("10", "INV-1", "GBP", 10000, ledger.CollectionPaidOut, "PM1", "2026-11-25", november)
	b.collection("10", "INV-2", "GBP", 5000, ledger.CollectionPaidOut, "PM2", "2026-11-26", november)
	b.collection("20", "INV-3", "GBP", 3000, ledger.CollectionConfirmed, "PM3", "2026-11-27", november)
	b.collection("10", "INV-4", "GBP", 2000, ledger.CollectionPaidOut, "PM4", "2026-11-27", november)
	b.collection("10", "INV-5", "EUR", 1234, ledger.CollectionSubmitted, "PM5", "2026-12-03", november)
	b.collection("10", "INV-6", "GBP", 900, ledger.CollectionFailed, "PM6", "2026-11-20", november)
	b.collection("10", "INV-7", "GBP", 700, ledger.CollectionChargedBack, "PM7", "2026-10-28", november)
	// Paid out in October in a payout never stored; paid out on 29
	// November in a payout not paid yet.
	b.collection("10", "INV-8", "GBP", 800, ledger.CollectionPaidOut, "PM8", "2026-09-28", Day("2026-10-01"))
	b.collection("10", "INV-9", "GBP", 500, ledger.CollectionPaidOut, "PM9", "2026-11-25", Day("2026-11-29"))
	b.refund(inv1, "CN-1", 1000, ledger.RefundPaid, "RF1")

	b.payout("PO0", "REF-OCT", "GBP", "2026-10-31", "posted", 686, 14, []item{
		{typ: "payment_paid_out", tenths: 7000, payment: "PM7", company: "10", invoice: "INV-7"},
		{typ: "gocardless_fee", tenths: -140, payment: "PM7", company: "10", invoice: "INV-7"},
	})
	b.payout("PO1", "REF-NOV", "GBP", "2026-11-30", "posted", 14050, 250, []item{
		{typ: "payment_paid_out", tenths: 100000, payment: "PM1", company: "10", invoice: "INV-1"},
		{typ: "gocardless_fee", tenths: -2005, payment: "PM1", company: "10", invoice: "INV-1"},
		{typ: "payment_paid_out", tenths: 50000, payment: "PM2", company: "10", invoice: "INV-2"},
		{typ: "gocardless_fee", tenths: -1000, payment: "PM2", company: "10", invoice: "INV-2"},
		{typ: "payment_paid_out", tenths: 10000, payment: "PMX"},
		{typ: "gocardless_fee", tenths: -494, payment: "PMX"},
		{typ: "payment_refunded", tenths: -10000, payment: "PM1", refund: "RF1", company: "10", invoice: "INV-1"},
		{typ: "payment_charged_back", tenths: -7000, payment: "PM7", company: "10", invoice: "INV-7"},
		{typ: "gocardless_fee", tenths: 1000, payment: "PM7", company: "10", invoice: "INV-7"},
	})
	b.payout("PO2", "REF-DEC", "GBP", "2026-12-01", "posted", 1960, 40, []item{
		{typ: "payment_paid_out", tenths: 20000, payment: "PM4", company: "10", invoice: "INV-4"},
		{typ: "gocardless_fee", tenths: -400, payment: "PM4", company: "10", invoice: "INV-4"},
	})
	b.payout("PO3", "REF-EUR", "EUR", "2026-11-15", "mismatch", 1000, 0, []item{
		{typ: "payment_paid_out", tenths: 9990, payment: "PMY"},
	})
}
