package settlement_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/csv"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/platform/secrets"
	"github.com/ml-connector/ml-connector/platform/testsupport"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/internal/ledger"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/settlement"
)

func day(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return t
}

// book is a database with a GoCardless connection "gc", an IFS
// connection "ifs-acme" (companies 10 and 20) collecting through it, and
// the collections, refunds and payouts of November 2026 (see seed).
type book struct {
	t   *testing.T
	db  *pgxpool.Pool
	ids map[string]int64
}

func newBook(t *testing.T) *book {
	t.Helper()
	ctx := context.Background()
	b := &book{t: t, db: testsupport.Pool(t), ids: map[string]int64{}}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	keys, err := secrets.NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	store := connections.NewStore(b.db, keys)
	for _, c := range []connections.New{
		{Name: "gc", Kind: connections.KindGoCardless, Settings: map[string]any{"base_url": "https://gc.example"},
			Secrets: map[string]secrets.Value{"access_token": secrets.NewValue("tok")}},
		{Name: "ifs-acme", Kind: connections.KindIFS, Settings: map[string]any{"base_url": "https://acme.ifs.example", "client_id": "mlc",
			"company_codes": []any{"10", "20"}, "gocardless": "gc"}, Secrets: map[string]secrets.Value{"client_secret": secrets.NewValue("s")}},
	} {
		c.Actor = "test"
		conn, err := store.Add(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		b.ids[c.Name] = conn.ID
	}
	return b
}

// collection records an invoice's collection through the ledger, as the
// orchestrator does: started, then moved to state with its payment.
func (b *book) collection(company, invoice, currency string, minor int64, state ledger.CollectionState, payment, chargeDate string, lastEvent time.Time) ledger.Collection {
	b.t.Helper()
	ctx := context.Background()
	led := ledger.New(b.db)
	key := ledger.InvoiceKey{ERP: "ifs", ConnectionID: b.ids["ifs-acme"], Company: company, InvoiceID: invoice}
	var after ledger.Collection
	err := led.Tx(ctx, func(tx pgx.Tx) error {
		c, _, err := ledger.StartCollection(ctx, tx, ledger.Collection{Key: key, InvoiceNo: "No " + invoice, CustomerID: "C1", Kind: "payment",
			AmountMinor: minor, Currency: currency, GCConnectionID: b.ids["gc"], IdempotencyKey: ledger.PaymentKey(key, 1), Attempts: 1})
		if err != nil {
			return err
		}
		after = c
		after.State, after.GCPaymentID, after.ChargeDate, after.LastEventAt = state, payment, day(chargeDate), lastEvent
		return ledger.SaveCollection(ctx, tx, c, after, "collection."+string(state), "test")
	})
	if err != nil {
		b.t.Fatal(err)
	}
	b.ids[payment] = after.ID
	return after
}

// refund records a refund of col through the ledger.
func (b *book) refund(col ledger.Collection, erpID string, minor int64, state ledger.RefundState, gcRefund string) {
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

// payout stores a payout and its items as the orchestrator does on the
// payout's paid event.
func (b *book) payout(id, ref, currency, arrival, state string, amount, fees int64, items []item) {
	b.t.Helper()
	ctx := context.Background()
	var total, feeTotal int64
	unmatched := 0
	for _, it := range items {
		total += it.tenths
		if strings.HasSuffix(it.typ, "_fee") {
			feeTotal += it.tenths
		}
		if it.invoice == "" {
			unmatched++
		}
	}
	if state == "" {
		state = "posted"
	}
	var pid int64
	err := b.db.QueryRow(ctx, `
		INSERT INTO payouts (gc_connection_id, gc_payout_id, gc_creditor_id, payout_type, currency, amount_minor,
			deducted_fees_minor, reference, arrival_date, gc_status, gc_created_at, state, items_count, items_total_tenths,
			fees_total_tenths, unmatched_count, event_id, posted_at)
		VALUES ($1, $2, 'CR1', 'merchant', $3, $4, $5, $6, $7, 'paid', $7::date - 1, $8, $9, $10, $11, $12, 'EV' || $2,
			CASE WHEN $8 = 'posted' THEN now() END)
		RETURNING id`, b.ids["gc"], id, currency, amount, fees, ref, arrival, state, len(items), total, feeTotal, unmatched).Scan(&pid)
	if err != nil {
		b.t.Fatal(err)
	}
	for n, it := range items {
		var colID, refundID *int64
		var erpConn *int64
		var company, invoice *string
		if it.invoice != "" {
			id := b.ids[it.payment]
			c := b.ids["ifs-acme"]
			colID, erpConn, company, invoice = &id, &c, &it.company, &it.invoice
			if it.refund != "" {
				var rid int64
				if err := b.db.QueryRow(ctx, `SELECT id FROM refunds WHERE gc_refund_id = $1`, it.refund).Scan(&rid); err != nil {
					b.t.Fatal(err)
				}
				refundID = &rid
			}
		}
		match := "unmatched"
		if colID != nil {
			match = "matched"
		}
		if _, err := b.db.Exec(ctx, `
			INSERT INTO payout_items (payout_id, seq, type, amount_tenths, gc_payment_id, gc_refund_id, match, collection_id,
				refund_id, erp, erp_connection_id, company, invoice_id)
			VALUES ($1, $2, $3, $4, nullif($5, ''), nullif($6, ''), $7, $8, $9, CASE WHEN $8::bigint IS NOT NULL THEN 'ifs' END, $10, $11, $12)`,
			pid, n+1, it.typ, it.tenths, it.payment, it.refund, match, colID, refundID, erpConn, company, invoice); err != nil {
			b.t.Fatal(err)
		}
	}
}

// seed writes November 2026:
//
//   - PO1 (arrives 30 Nov, GBP 140.50, fees 2.50): INV-1 100.00 with a fee
//     of 2.005 and refund RF1 of 10.00; INV-2 50.00, fee 1.00; INV-7's
//     charge-back of 7.00 with its fee of 1.00 given back; a payment PMX
//     of 10.00 (fee 0.495) collected outside ml-connector.
//   - PO0 (arrived 31 Oct) and PO2 (arrives 1 Dec, INV-4 20.00 less 0.40):
//     outside the period.
//   - PO3 (EUR, arrives 15 Nov): GoCardless paid 10.00, its one item says
//     9.99.
//   - In flight at the end of November: INV-4 (paid out on 30 Nov in PO2)
//     and INV-3 (company 20, confirmed); not INV-5 (charged in December)
//     nor INV-6 (failed).
func (b *book) seed() {
	november := day("2026-11-30")
	inv1 := b.collection("10", "INV-1", "GBP", 10000, ledger.CollectionPaidOut, "PM1", "2026-11-25", november)
	b.collection("10", "INV-2", "GBP", 5000, ledger.CollectionPaidOut, "PM2", "2026-11-26", november)
	b.collection("20", "INV-3", "GBP", 3000, ledger.CollectionConfirmed, "PM3", "2026-11-27", november)
	b.collection("10", "INV-4", "GBP", 2000, ledger.CollectionPaidOut, "PM4", "2026-11-27", november)
	b.collection("10", "INV-5", "EUR", 1234, ledger.CollectionSubmitted, "PM5", "2026-12-03", november)
	b.collection("10", "INV-6", "GBP", 900, ledger.CollectionFailed, "PM6", "2026-11-20", november)
	b.collection("10", "INV-7", "GBP", 700, ledger.CollectionChargedBack, "PM7", "2026-10-28", november)
	b.refund(inv1, "CN-1", 1000, ledger.RefundPaid, "RF1")

	b.payout("PO0", "REF-OCT", "GBP", "2026-10-31", "", 686, 14, []item{
		{typ: "payment_paid_out", tenths: 7000, payment: "PM7", company: "10", invoice: "INV-7"},
		{typ: "gocardless_fee", tenths: -140, payment: "PM7", company: "10", invoice: "INV-7"},
	})
	b.payout("PO1", "REF-NOV", "GBP", "2026-11-30", "", 14050, 250, []item{
		{typ: "payment_paid_out", tenths: 100000, payment: "PM1", company: "10", invoice: "INV-1"},
		{typ: "gocardless_fee", tenths: -2005, payment: "PM1", company: "10", invoice: "INV-1"},
		{typ: "payment_paid_out", tenths: 50000, payment: "PM2", company: "10", invoice: "INV-2"},
		{typ: "gocardless_fee", tenths: -1000, payment: "PM2", company: "10", invoice: "INV-2"},
		{typ: "payment_paid_out", tenths: 10000, payment: "PMX"},
		{typ: "gocardless_fee", tenths: -495, payment: "PMX"},
		{typ: "payment_refunded", tenths: -10000, payment: "PM1", refund: "RF1", company: "10", invoice: "INV-1"},
		{typ: "payment_charged_back", tenths: -7000, payment: "PM7", company: "10", invoice: "INV-7"},
		{typ: "gocardless_fee", tenths: 1000, payment: "PM7", company: "10", invoice: "INV-7"},
	})
	b.payout("PO2", "REF-DEC", "GBP", "2026-12-01", "", 1960, 40, []item{
		{typ: "payment_paid_out", tenths: 20000, payment: "PM4", company: "10", invoice: "INV-4"},
		{typ: "gocardless_fee", tenths: -400, payment: "PM4", company: "10", invoice: "INV-4"},
	})
	b.payout("PO3", "REF-EUR", "EUR", "2026-11-15", "mismatch", 1000, 0, []item{
		{typ: "payment_paid_out", tenths: 9990, payment: "PMY"},
	})
}

func TestMonthEnd(t *testing.T) {
	b := newBook(t)
	b.seed()
	ctx := context.Background()
	r := settlement.New(b.db)
	rep, err := r.MonthEnd(ctx, settlement.ReportQuery{From: day("2026-11-01"), To: day("2026-11-30")})
	if err != nil {
		t.Fatal(err)
	}
	type figures struct{ collected, fees, refunds, chargeBacks, other, paidOut, inFlight string }
	of := func(l settlement.Line) figures {
		return figures{l.Collected, l.Fees, l.Refunds, l.ChargeBacks, l.Other, l.PaidOut, l.InFlight}
	}
	want := map[[3]string]figures{
		// 1000.00 + 500.00 - 2.005 - 1.00 - 10.00 (refund) - 7.00 + 1.00 (fee given back)
		{"ifs-acme", "10", "GBP"}: {"150.00", "2.005", "10.00", "7.00", "0.00", "130.995", "20.00"},
		{"ifs-acme", "20", "GBP"}: {"0.00", "0.00", "0.00", "0.00", "0.00", "0.00", "30.00"},
		{"gc", "", "GBP"}:         {"10.00", "0.495", "0.00", "0.00", "0.00", "9.505", "0.00"},
		{"gc", "", "EUR"}:         {"9.99", "0.00", "0.00", "0.00", "0.00", "9.99", "0.00"},
	}
	if len(rep.Lines) != len(want) {
		t.Errorf("%d lines, want %d: %+v", len(rep.Lines), len(want), rep.Lines)
	}
	for _, l := range rep.Lines {
		w, ok := want[[3]string{l.Connection, l.Company, l.Currency}]
		if !ok {
			t.Errorf("unexpected line %+v", l)
			continue
		}
		if got := of(l); got != w {
			t.Errorf("%s/%s %s: %+v, want %+v", l.Connection, l.Company, l.Currency, got, w)
		}
		if l.GCConnection != "gc" {
			t.Errorf("%s/%s: gc_connection %q", l.Connection, l.Company, l.GCConnection)
		}
	}
	// The GBP totals are GoCardless's: PO1 paid 140.50 after 2.50 of fees.
	totals := map[string]figures{}
	for _, tl := range rep.Totals {
		totals[tl.Currency] = of(tl)
	}
	if got, w := totals["GBP"], (figures{"160.00", "2.50", "10.00", "7.00", "0.00", "140.50", "50.00"}); got != w {
		t.Errorf("GBP totals %+v, want %+v", got, w)
	}
	if len(rep.Unbalanced) != 1 || !strings.Contains(rep.Unbalanced[0], "PO3") || !strings.Contains(rep.Unbalanced[0], "GoCardless paid EUR 10.00, its items add up to 9.99") {
		t.Errorf("unbalanced: %q", rep.Unbalanced)
	}

	// One connection: its lines only.
	only, err := r.MonthEnd(ctx, settlement.ReportQuery{From: day("2026-11-01"), To: day("2026-11-30"), Connection: "ifs-acme"})
	if err != nil {
		t.Fatal(err)
	}
	if len(only.Lines) != 2 || only.Lines[0].Connection != "ifs-acme" || only.Lines[1].Connection != "ifs-acme" || len(only.Unbalanced) != 0 {
		t.Errorf("ifs-acme only: %+v, unbalanced %q", only.Lines, only.Unbalanced)
	}

	// A day later INV-4's payout has arrived: paid out, no longer in flight.
	dec, err := r.MonthEnd(ctx, settlement.ReportQuery{From: day("2026-12-01"), To: day("2026-12-01")})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range dec.Lines {
		if l.Connection == "ifs-acme" && l.Company == "10" && l.Currency == "GBP" && (l.PaidOut != "19.60" || l.InFlight != "0.00") {
			t.Errorf("1 December, company 10: paid out %s in flight %s, want 19.60 and 0.00", l.PaidOut, l.InFlight)
		}
	}

	// CSV: the same figures under the same names, totals last.
	var buf bytes.Buffer
	if err := rep.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(rows[0], ",") != "connection,company,gc_connection,currency,collected,fees,refunds,charge_backs,other,paid_out,in_flight,payouts" {
		t.Errorf("CSV header %q", rows[0])
	}
	last := rows[len(rows)-1]
	if strings.Join(last, ",") != "TOTAL,,,GBP,160.00,2.50,10.00,7.00,0.00,140.50,50.00,1" {
		t.Errorf("CSV GBP total %q", last)
	}
}

func TestMonthEndRefusesBadQueries(t *testing.T) {
	b := newBook(t)
	r := settlement.New(b.db)
	ctx := context.Background()
	for _, q := range []settlement.ReportQuery{
		{},
		{From: day("2026-11-30"), To: day("2026-11-01")},
		{From: day("2025-01-01"), To: day("2026-11-30")},
		{From: day("2026-11-01"), To: day("2026-11-30"), Connection: strings.Repeat("x", 201)},
	} {
		if _, err := r.MonthEnd(ctx, q); !errors.Is(err, settlement.ErrInput) {
			t.Errorf("%+v: %v, want ErrInput", q, err)
		}
	}
	if _, err := r.MonthEnd(ctx, settlement.ReportQuery{From: day("2026-11-01"), To: day("2026-11-30"), Connection: "nope"}); !errors.Is(err, settlement.ErrNotFound) {
		t.Errorf("unknown connection: %v", err)
	}
}

func TestPayouts(t *testing.T) {
	b := newBook(t)
	b.seed()
	ctx := context.Background()
	r := settlement.New(b.db)
	list, err := r.ListPayouts(ctx, settlement.PayoutQuery{From: day("2026-11-01"), To: day("2026-11-30")})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != "PO1" || list[1].ID != "PO3" {
		t.Fatalf("November's payouts: %+v", list)
	}
	po1 := list[0]
	if po1.BankReference != "REF-NOV" || po1.ArrivalDate != "2026-11-30" || po1.Amount.Decimal != "140.50" || po1.Fees.Decimal != "2.50" ||
		po1.Items != 9 || po1.Unmatched != 2 || po1.Invoices != 3 || po1.State != "posted" || po1.Difference != "0.00" {
		t.Errorf("PO1: %+v", po1)
	}
	if list[1].State != "mismatch" || list[1].Difference != "-0.01" {
		t.Errorf("PO3: %+v", list[1])
	}
	if all, err := r.ListPayouts(ctx, settlement.PayoutQuery{State: "posted"}); err != nil || len(all) != 3 {
		t.Errorf("posted payouts: %d, %v", len(all), err)
	}
	if byERP, err := r.ListPayouts(ctx, settlement.PayoutQuery{Connection: "ifs-acme"}); err != nil || len(byERP) != 3 {
		t.Errorf("payouts settling ifs-acme invoices: %d, %v", len(byERP), err)
	}

	d, err := r.ShowPayout(ctx, "REF-NOV")
	if err != nil {
		t.Fatal(err)
	}
	nets := map[string]string{}
	for _, s := range d.SettledInvoices {
		nets[s.InvoiceID] = s.Net
		if s.Connection != "ifs-acme" || s.Company != "10" || s.InvoiceNo != "No "+s.InvoiceID {
			t.Errorf("settled invoice %+v", s)
		}
	}
	if want := map[string]string{"INV-1": "87.995", "INV-2": "49.00", "INV-7": "-6.00"}; len(nets) != 3 || nets["INV-1"] != want["INV-1"] ||
		nets["INV-2"] != want["INV-2"] || nets["INV-7"] != want["INV-7"] {
		t.Errorf("settled invoices %v, want %v", nets, want)
	}
	if d.ItemsShown != 9 || len(d.ItemList) != 9 {
		t.Fatalf("%d items shown", d.ItemsShown)
	}
	x := d.ItemList[4]
	if x.Type != "payment_paid_out" || x.Amount != "10.00" || x.Matched || x.Links["payment"] != "PMX" || x.InvoiceID != "" {
		t.Errorf("unmatched item %+v", x)
	}
	rf := d.ItemList[6]
	if rf.Type != "payment_refunded" || rf.Amount != "-10.00" || !rf.Matched || rf.Links["refund"] != "RF1" || rf.InvoiceID != "INV-1" {
		t.Errorf("refund item %+v", rf)
	}
	if d.ItemList[1].Amount != "-2.005" {
		t.Errorf("fee of INV-1: %s, want -2.005", d.ItemList[1].Amount)
	}
	if _, err := r.ShowPayout(ctx, "PO404"); !errors.Is(err, settlement.ErrNotFound) {
		t.Errorf("unknown payout: %v", err)
	}
}
