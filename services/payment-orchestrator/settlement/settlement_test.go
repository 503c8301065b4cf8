package settlement_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"strings"
	"testing"

	"github.com/ml-connector/ml-connector/platform/testsupport"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/settlement"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/settlement/settlementtest"
)

func TestMonthEnd(t *testing.T) {
	db := testsupport.Pool(t)
	settlementtest.New(t, db).Seed()
	ctx := context.Background()
	r := settlement.New(db)
	rep, err := r.MonthEnd(ctx, settlement.ReportQuery{From: settlementtest.Day("2026-11-01"), To: settlementtest.Day("2026-11-30")})
	if err != nil {
		t.Fatal(err)
	}
	type figures struct{ collected, fees, refunds, chargeBacks, other, paidOut, inFlight string }
	of := func(l settlement.Line) figures {
		return figures{l.Collected, l.Fees, l.Refunds, l.ChargeBacks, l.Other, l.PaidOut, l.InFlight}
	}
	want := map[[4]string]figures{
		// 1000.00 + 500.00 - 2.005 - 1.00 - 10.00 (refund) - 7.00 + 1.00 (fee given back)
		{"invoices", "ifs-acme", "10", "GBP"}: {"150.00", "2.005", "10.00", "7.00", "0.00", "130.995", "25.00"},
		{"invoices", "ifs-acme", "20", "GBP"}: {"0.00", "0.00", "0.00", "0.00", "0.00", "0.00", "30.00"},
		{"not_ours", "gc", "", "GBP"}:         {"10.00", "0.494", "0.00", "0.00", "0.00", "9.506", "0.00"},
		// PO1's items add up to 140.501 and its fees to 2.499; GoCardless
		// paid 140.50 and deducted 2.50.
		{"rounding", "gc", "", "GBP"}:    {"0.00", "0.001", "0.00", "0.00", "0.00", "-0.001", "0.00"},
		{"not_ours", "gc", "", "EUR"}:    {"9.99", "0.00", "0.00", "0.00", "0.00", "9.99", "0.00"},
		{"unexplained", "gc", "", "EUR"}: {"0.00", "0.00", "0.00", "0.00", "-0.01", "0.01", "0.00"},
	}
	if len(rep.Lines) != len(want) {
		t.Errorf("%d lines, want %d: %+v", len(rep.Lines), len(want), rep.Lines)
	}
	for _, l := range rep.Lines {
		w, ok := want[[4]string{l.Kind, l.Connection, l.Company, l.Currency}]
		if !ok {
			t.Errorf("unexpected line %+v", l)
			continue
		}
		if got := of(l); got != w {
			t.Errorf("%s %s/%s %s: %+v, want %+v", l.Kind, l.Connection, l.Company, l.Currency, got, w)
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
	if got, w := totals["GBP"], (figures{"160.00", "2.50", "10.00", "7.00", "0.00", "140.50", "55.00"}); got != w {
		t.Errorf("GBP totals %+v, want %+v", got, w)
	}
	// EUR: GoCardless paid 10.00 though PO3's items say 9.99; the total
	// is what reached the bank, the difference is on a line of its own.
	if got, w := totals["EUR"], (figures{"9.99", "0.00", "0.00", "0.00", "-0.01", "10.00", "0.00"}); got != w {
		t.Errorf("EUR totals %+v, want %+v", got, w)
	}
	if len(rep.Unbalanced) != 1 || !strings.Contains(rep.Unbalanced[0], "PO3") || !strings.Contains(rep.Unbalanced[0], "GoCardless paid EUR 10.00, its items add up to 9.99") {
		t.Errorf("unbalanced: %q", rep.Unbalanced)
	}

	// One connection: its lines only.
	only, err := r.MonthEnd(ctx, settlement.ReportQuery{From: settlementtest.Day("2026-11-01"), To: settlementtest.Day("2026-11-30"), Connection: "ifs-acme"})
	if err != nil {
		t.Fatal(err)
	}
	if len(only.Lines) != 2 || only.Lines[0].Connection != "ifs-acme" || only.Lines[1].Connection != "ifs-acme" || len(only.Unbalanced) != 0 {
		t.Errorf("ifs-acme only: %+v, unbalanced %q", only.Lines, only.Unbalanced)
	}

	// The GoCardless connection: every line, its rounding too.
	if byGC, err := r.MonthEnd(ctx, settlement.ReportQuery{From: settlementtest.Day("2026-11-01"), To: settlementtest.Day("2026-11-30"), Connection: "gc"}); err != nil || len(byGC.Lines) != len(want) {
		t.Errorf("gc only: %v, %d lines, want %d", err, len(byGC.Lines), len(want))
	}

	// A day later INV-4's payout has arrived: paid out, no longer in
	// flight; INV-9's has not.
	dec, err := r.MonthEnd(ctx, settlement.ReportQuery{From: settlementtest.Day("2026-12-01"), To: settlementtest.Day("2026-12-01")})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range dec.Lines {
		if l.Connection == "ifs-acme" && l.Company == "10" && l.Currency == "GBP" && (l.PaidOut != "19.60" || l.InFlight != "5.00") {
			t.Errorf("1 December, company 10: paid out %s in flight %s, want 19.60 and 5.00", l.PaidOut, l.InFlight)
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
	if strings.Join(rows[0], ",") != "kind,connection,company,gc_connection,currency,collected,fees,refunds,charge_backs,other,paid_out,in_flight,payouts" {
		t.Errorf("CSV header %q", rows[0])
	}
	last := rows[len(rows)-1]
	if strings.Join(last, ",") != "total,,,,GBP,160.00,2.50,10.00,7.00,0.00,140.50,55.00,1" {
		t.Errorf("CSV GBP total %q", last)
	}
}

func TestCSVKeepsFormulasAsText(t *testing.T) {
	rep := settlement.Report{Lines: []settlement.Line{{Kind: "invoices", Connection: "=HYPERLINK(\"x\")", Company: "+10", GCConnection: "@gc",
		Currency: "GBP", Collected: "1.00", Fees: "0.00", Refunds: "0.00", ChargeBacks: "0.00", Other: "0.00", PaidOut: "-1.00", InFlight: "0.00"}}}
	var buf bytes.Buffer
	if err := rep.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rows[1], "|"); got != `invoices|'=HYPERLINK("x")|'+10|'@gc|GBP|1.00|0.00|0.00|0.00|0.00|-1.00|0.00|0` {
		t.Errorf("CSV row %q", got)
	}
}

func TestMonthEndRefusesBadQueries(t *testing.T) {
	db := testsupport.Pool(t)
	settlementtest.New(t, db)
	r := settlement.New(db)
	ctx := context.Background()
	for _, q := range []settlement.ReportQuery{
		{},
		{From: settlementtest.Day("2026-11-30"), To: settlementtest.Day("2026-11-01")},
		{From: settlementtest.Day("2025-01-01"), To: settlementtest.Day("2026-11-30")},
		{From: settlementtest.Day("2026-11-01"), To: settlementtest.Day("2026-11-30"), Connection: strings.Repeat("x", 201)},
	} {
		if _, err := r.MonthEnd(ctx, q); !errors.Is(err, settlement.ErrInput) {
			t.Errorf("%+v: %v, want ErrInput", q, err)
		}
	}
	if _, err := r.MonthEnd(ctx, settlement.ReportQuery{From: settlementtest.Day("2026-11-01"), To: settlementtest.Day("2026-11-30"), Connection: "nope"}); !errors.Is(err, settlement.ErrNotFound) {
		t.Errorf("unknown connection: %v", err)
	}
}

func TestPayouts(t *testing.T) {
	db := testsupport.Pool(t)
	settlementtest.New(t, db).Seed()
	ctx := context.Background()
	r := settlement.New(db)
	list, err := r.ListPayouts(ctx, settlement.PayoutQuery{From: settlementtest.Day("2026-11-01"), To: settlementtest.Day("2026-11-30")})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != "PO1" || list[1].ID != "PO3" {
		t.Fatalf("November's payouts: %+v", list)
	}
	po1 := list[0]
	if po1.BankReference != "REF-NOV" || po1.ArrivalDate != "2026-11-30" || po1.Amount.Decimal != "140.50" || po1.Fees.Decimal != "2.50" ||
		po1.Items != 9 || po1.Unmatched != 2 || po1.Invoices != 3 || po1.State != "posted" || po1.Difference != "0.001" {
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
		if s.Connection != "ifs-acme" || s.Company != "10" || s.InvoiceNo != "No "+s.InvoiceID || s.Posting != "posted" {
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
	for _, q := range []settlement.PayoutQuery{
		{From: settlementtest.Day("2026-11-30"), To: settlementtest.Day("2026-11-01")},
		{Limit: settlement.MaxPayouts + 1},
		{State: strings.Repeat("x", 41)},
	} {
		if _, err := r.ListPayouts(ctx, q); !errors.Is(err, settlement.ErrInput) {
			t.Errorf("%+v: %v, want ErrInput", q, err)
		}
	}
	if _, err := r.ShowPayout(ctx, strings.Repeat("x", 201)); !errors.Is(err, settlement.ErrInput) {
		t.Errorf("a 201-character payout id: %v", err)
	}
	if _, err := r.ShowPayout(ctx, "PO404"); !errors.Is(err, settlement.ErrNotFound) {
		t.Errorf("unknown payout: %v", err)
	}
}
