package jde_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/connectors/jde"
	"github.com/ml-connector/ml-connector/connectors/jde/jdesim"
)

var paidAt = time.Date(2026, 2, 3, 10, 0, 0, 0, time.UTC)

func writerEnv(t *testing.T, cfg jde.WriterConfig) (*env, *jde.Writer) {
	t.Helper()
	e := newEnv(t, jdesim.Options{}, nil)
	if cfg.GLAccounts == nil {
		cfg.GLAccounts = map[string]string{"M30": "M30.1110.GC", "M40": "M40.1110.GC"}
	}
	e.sim.PutCustomerMaster(jdesim.CustomerMaster{AN8: 4242, CO: "00001", TRAR: "N30", RYIN: "D"})
	return e, jde.NewWriter(e.client, cfg)
}

func invoiceKey(doc string) jde.DocumentKey {
	return jde.DocumentKey{Company: "00001", Document: doc, DocType: "RI", Suffix: "001"}
}

func confirmed(id string, minor int64, currency string) jde.Payment {
	return jde.Payment{OutcomeID: id, Kind: jde.PaymentConfirmed, Invoice: invoiceKey("1001"), PaymentID: "PM001",
		AmountMinor: minor, Currency: currency, OccurredAt: paidAt}
}

func TestReceiptLandsOnceWhenPostedTwice(t *testing.T) {
	for _, preset := range []jde.Preset{jde.PresetStandard, jde.PresetOrchestrations} {
		t.Run(string(preset), func(t *testing.T) {
			e, w := writerEnv(t, jde.WriterConfig{Preset: preset})
			e.sim.AddInvoices(jdesim.Invoice{DOC: 1001, DCT: "RI", KCO: "00001", SFX: "001", AN8: 4242, CO: "00001",
				AG: 12550, AAP: 12550, CRCD: "USD", MCU: "M30", PST: "A"})
			ctx := context.Background()
			first, err := w.PostPayment(ctx, confirmed("EV001", 12550, "USD"))
			if err != nil {
				t.Fatal(err)
			}
			second, err := w.PostPayment(ctx, confirmed("EV001", 12550, "USD"))
			if err != nil {
				t.Fatal(err)
			}
			if first.AlreadyPosted || !second.AlreadyPosted || second.Reference != first.Reference || !second.PostedAt.Equal(first.PostedAt) {
				t.Fatalf("first = %+v, second = %+v", first, second)
			}
			receipts := e.sim.Receipts()
			if len(receipts) != 1 {
				t.Fatalf("receipts = %+v, want exactly one", receipts)
			}
			r := receipts[0]
			if r.RUCKAM != 12550 || r.RUDOC != 1001 || r.RUDCT != "RI" || r.RUKCO != "00001" || r.RUSFX != "001" ||
				r.RUCRCD != "USD" || r.RUCRRM != "D" || r.RUAN8 != 4242 || r.RUGLBA != "M30.1110.GC" ||
				r.RUEDUS != "JDE" || r.RUEDBT == "" || r.RUEDTN == "" || r.RUEDLN == 0 ||
				!r.RUDMTJ.Equal(jdesim.Date(2026, 2, 3)) {
				t.Fatalf("receipt row = %+v", r)
			}
			switch preset {
			case jde.PresetStandard:
				// The F03B13Z1 key comes from the outcome id; the receipt
				// number is the transaction number, the payment the reference.
				if r.RUCKNU != r.RUEDTN || len(r.RUEDTN) != 22 || r.RUEDBT != "GC260203" || r.RUVR01 != "PM001" ||
					first.Reference != "F03B13Z1 JDE/GC260203/"+r.RUEDTN+"/1" {
					t.Fatalf("standard receipt row = %+v, reference %q", r, first.Reference)
				}
			case jde.PresetOrchestrations:
				if r.RUCKNU != "PM001" || r.RUVR01 != "EV001" {
					t.Fatalf("receipt row = %+v", r)
				}
			}
			gl := e.sim.GLEntries()
			if len(gl) != 2 || gl[0].GLANI != "M30.1110.GC" || gl[0].GLAA != 12550 || gl[1].GLANI != "M30.1210" || gl[1].GLAA != -12550 || gl[0].GLMCU != "M30" {
				t.Fatalf("GL = %+v", gl)
			}
			inv, _ := e.sim.Invoice(jdesim.DocKey{DOC: 1001, DCT: "RI", KCO: "00001", SFX: "001"})
			if inv.AAP != 0 || inv.PST != "P" {
				t.Fatalf("invoice after receipt = %+v", inv)
			}
		})
	}
}

// Orchestrations report a refusal in their answer, not by an HTTP status
// of their own: jde__status ERROR in a 200, or a failed step's
// userDefinedErrorText in a 500. Either is a refusal (never retried),
// and nothing is written.
func TestOrchestrationRefusalsReadFromTheBody(t *testing.T) {
	for _, asErrors := range []bool{false, true} {
		t.Run(fmt.Sprintf("step errors %v", asErrors), func(t *testing.T) {
			e := newEnv(t, jdesim.Options{RefusalsAsErrors: asErrors}, nil)
			w := jde.NewWriter(e.client, jde.WriterConfig{GLAccounts: map[string]string{"M30": "M30.1110.GC"}, ReceiptsUser: "JDE"})
			// A EUR invoice stored in domestic mode in the USD company: the
			// receipt's mode (D, the document's) is wrong for its currency.
			e.sim.AddInvoices(jdesim.Invoice{DOC: 1001, DCT: "RI", KCO: "00001", SFX: "001", AN8: 4242, AG: 500, AAP: 500,
				CRCD: "EUR", CRRM: "D", MCU: "M30"})
			e.sim.ResetStats()
			_, err := w.PostPayment(context.Background(), confirmed("EV1", 500, "EUR"))
			if !errors.Is(err, jde.ErrInvalid) || errors.Is(err, jde.ErrUnavailable) || !strings.Contains(err.Error(), "currency mode F") {
				t.Fatalf("err = %v", err)
			}
			if st := e.sim.Stats(); st.Orchestrations != 1 {
				t.Fatalf("orchestration called %d times, want once (a refusal is not retried)", st.Orchestrations)
			}
			if n := len(e.sim.Receipts()); n != 0 {
				t.Fatalf("refused receipt wrote %d rows", n)
			}
		})
	}
}

// The receipt carries the collected amount in the currency's own
// decimals: 0 for JPY, 2 for USD, 3 for KWD and BHD.
func TestReceiptAmountsInCurrencyDecimals(t *testing.T) {
	tests := []struct {
		currency string
		minor    int64
		want     string // as the data service shows the open amount left
	}{
		{"JPY", 15000, "0"},
		{"USD", 15000, "0.00"},
		{"KWD", 15000, "0.000"},
		{"BHD", 1, "14.999"},
	}
	for _, tt := range tests {
		t.Run(tt.currency, func(t *testing.T) {
			e, w := writerEnv(t, jde.WriterConfig{})
			e.sim.AddInvoices(jdesim.Invoice{DOC: 1001, DCT: "RI", KCO: "00001", SFX: "001", AN8: 4242,
				AG: 15000, AAP: 15000, CRCD: tt.currency, MCU: "M30", PST: "A"})
			if _, err := w.PostPayment(context.Background(), confirmed("EV-"+tt.currency, tt.minor, tt.currency)); err != nil {
				t.Fatal(err)
			}
			if r := e.sim.Receipts(); len(r) != 1 || r[0].RUCKAM != tt.minor {
				t.Fatalf("receipts = %+v, want RUCKAM %d", r, tt.minor)
			}
			var open string
			err := e.client.Browse(context.Background(), jde.Query{Table: "F03B11", Columns: []string{"AAP", "FAP", "CRRM", "CRCD"}}, func(rows []jde.Row) error {
				col := "AAP" // the USD company's own currency
				if rows[0].Text("F03B11", "CRRM") == "F" {
					col = "FAP"
				}
				open, _ = jde.ParseAmount(rows[0].Text("F03B11", col), tt.currency, jde.AmountFormat{Decimals: jde.CurrencyDecimals})
				return nil
			})
			if err != nil || open != tt.want {
				t.Fatalf("open amount = %q, %v; want %s", open, err, tt.want)
			}
		})
	}
}

func TestOverpaymentBecomesUnappliedCash(t *testing.T) {
	e, w := writerEnv(t, jde.WriterConfig{})
	e.sim.AddInvoices(jdesim.Invoice{DOC: 1001, DCT: "RI", KCO: "00001", SFX: "001", AN8: 4242, AG: 10000, AAP: 4000, CRCD: "USD", MCU: "M30"})
	if _, err := w.PostPayment(context.Background(), confirmed("EV1", 10000, "USD")); err != nil {
		t.Fatal(err)
	}
	var ru *jdesim.Invoice
	for _, inv := range e.sim.Invoices() {
		if inv.DCT == "RU" {
			ru = &inv
		}
	}
	if ru == nil || ru.AAP != -6000 || ru.AN8 != 4242 {
		t.Fatalf("unapplied receipt = %+v", ru)
	}
}

func TestWriterRefusesBadOutcomes(t *testing.T) {
	e, w := writerEnv(t, jde.WriterConfig{GLAccounts: map[string]string{"M30": "M30.1110"}})
	e.sim.AddInvoices(
		jdesim.Invoice{DOC: 1001, DCT: "RI", KCO: "00001", SFX: "001", AN8: 4242, AG: 100, AAP: 100, CRCD: "USD", MCU: "M30"},
		jdesim.Invoice{DOC: 1002, DCT: "RI", KCO: "00001", SFX: "001", AN8: 4242, AG: 100, AAP: 100, CRCD: "USD", MCU: "M99"},
		jdesim.Invoice{DOC: 1003, DCT: "RI", KCO: "00001", SFX: "001", AN8: 4242, AG: 100, AAP: 100, CRCD: "USD"},
	)
	ctx := context.Background()
	with := func(change func(*jde.Payment)) jde.Payment {
		p := confirmed("EV9", 100, "USD")
		change(&p)
		return p
	}
	tests := []struct {
		name string
		p    jde.Payment
		want error
	}{
		{"no outcome id", with(func(p *jde.Payment) { p.OutcomeID = " " }), jde.ErrInvalid},
		{"zero amount", with(func(p *jde.Payment) { p.AmountMinor = 0 }), jde.ErrInvalid},
		{"bad currency", with(func(p *jde.Payment) { p.Currency = "XYZ" }), jde.ErrInvalid},
		{"unknown kind", with(func(p *jde.Payment) { p.Kind = "refunded" }), jde.ErrInvalid},
		{"no pay item", with(func(p *jde.Payment) { p.Invoice.Suffix = "" }), jde.ErrInvalid},
		{"non-numeric document", with(func(p *jde.Payment) { p.Invoice.Document = "10O1" }), jde.ErrInvalid},
		{"currency differs from invoice", with(func(p *jde.Payment) { p.Currency = "EUR" }), jde.ErrInvalid},
		{"customer differs from invoice", with(func(p *jde.Payment) { p.Customer = "7" }), jde.ErrInvalid},
		{"business unit without GL account", with(func(p *jde.Payment) { p.Invoice.Document = "1002" }), jde.ErrInvalid},
		{"no business unit and no default", with(func(p *jde.Payment) { p.Invoice.Document = "1003" }), jde.ErrInvalid},
		{"unknown invoice", with(func(p *jde.Payment) { p.Invoice.Document = "999" }), jde.ErrNotFound},
		{"no receipt date", with(func(p *jde.Payment) { p.OccurredAt = time.Time{} }), jde.ErrInvalid},
	}
	for _, tt := range tests {
		if _, err := w.PostPayment(ctx, tt.p); !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
	}
	if st := e.sim.Stats(); st.Orchestrations != 0 || len(e.sim.Receipts()) != 0 {
		t.Fatalf("a refused outcome reached the orchestration: %+v", st)
	}
}

func TestDefaultGLAccountForDocumentsWithoutBusinessUnit(t *testing.T) {
	e, w := writerEnv(t, jde.WriterConfig{GLAccounts: map[string]string{}, DefaultGLAccount: "1.1110"})
	e.sim.AddInvoices(jdesim.Invoice{DOC: 1001, DCT: "RI", KCO: "00001", SFX: "001", AN8: 4242, AG: 100, AAP: 100, CRCD: "USD"})
	if _, err := w.PostPayment(context.Background(), confirmed("EV1", 100, "USD")); err != nil {
		t.Fatal(err)
	}
	if r := e.sim.Receipts(); len(r) != 1 || r[0].RUGLBA != "1.1110" {
		t.Fatalf("receipts = %+v", r)
	}
}

func TestReceiptOnPaidOut(t *testing.T) {
	tests := []struct {
		on          jde.ReceiptOn
		postedKind  jde.PaymentKind
		skippedKind jde.PaymentKind
	}{
		{jde.ReceiptOnConfirmed, jde.PaymentConfirmed, jde.PaymentPaidOut},
		{jde.ReceiptOnPaidOut, jde.PaymentPaidOut, jde.PaymentConfirmed},
	}
	for _, tt := range tests {
		t.Run(string(tt.on), func(t *testing.T) {
			e, w := writerEnv(t, jde.WriterConfig{ReceiptOn: tt.on})
			e.sim.AddInvoices(jdesim.Invoice{DOC: 1001, DCT: "RI", KCO: "00001", SFX: "001", AN8: 4242, AG: 100, AAP: 100, CRCD: "USD", MCU: "M30"})
			ctx := context.Background()
			p := confirmed("EV-skip", 100, "USD")
			p.Kind = tt.skippedKind
			res, err := w.PostPayment(ctx, p)
			if err != nil || !res.NothingToPost || e.sim.Stats().Requests != 0 {
				t.Fatalf("%s: %+v, %v, stats %+v", tt.skippedKind, res, err, e.sim.Stats())
			}
			p = confirmed("EV-post", 100, "USD")
			p.Kind = tt.postedKind
			if res, err := w.PostPayment(ctx, p); err != nil || res.NothingToPost || len(e.sim.Receipts()) != 1 {
				t.Fatalf("%s: %+v, %v", tt.postedKind, res, err)
			}
		})
	}
}

func TestLateFailureReversesTheReceipt(t *testing.T) {
	for _, kind := range []jde.PaymentKind{jde.PaymentFailed, jde.PaymentChargedBack} {
		t.Run(string(kind), func(t *testing.T) {
			e, w := writerEnv(t, jde.WriterConfig{})
			e.sim.AddInvoices(jdesim.Invoice{DOC: 1001, DCT: "RI", KCO: "00001", SFX: "001", AN8: 4242, AG: 5000, AAP: 5000, CRCD: "GBP", MCU: "M40", PST: "A"})
			ctx := context.Background()
			if _, err := w.PostPayment(ctx, confirmed("EV1", 5000, "GBP")); err != nil {
				t.Fatal(err)
			}
			fail := confirmed("EV2", 5000, "GBP")
			fail.Kind, fail.Cause, fail.ReasonCode, fail.Description = kind, "insufficient_funds", "ARUDD-0", "Refer to payer"
			res, err := w.PostPayment(ctx, fail)
			if err != nil {
				t.Fatal(err)
			}
			again, err := w.PostPayment(ctx, fail)
			if err != nil || !again.AlreadyPosted || again.Reference != res.Reference {
				t.Fatalf("repeat = %+v, %v", again, err)
			}
			inv, _ := e.sim.Invoice(jdesim.DocKey{DOC: 1001, DCT: "RI", KCO: "00001", SFX: "001"})
			if inv.FAP != 5000 || inv.AAP != 6350 || inv.PST != "A" {
				t.Fatalf("invoice not reopened: %+v", inv)
			}
			receipts := e.sim.Receipts()
			// GBP in the USD company: foreign mode, in GBP.
			if len(receipts) != 2 || receipts[1].RUCKAM != -5000 || receipts[0].RUCRRM != "F" || receipts[0].RUCRCD != "GBP" {
				t.Fatalf("receipts = %+v, want the receipt and its reversal", receipts)
			}
			net := int64(0)
			for _, g := range e.sim.GLEntries() {
				if g.GLANI == "M40.1110.GC" {
					net += g.GLAA
				}
			}
			if net != 0 || len(e.sim.GLEntries()) != 4 {
				t.Fatalf("bank account net %d over %+v", net, e.sim.GLEntries())
			}
			ev := e.sim.PaymentEvents()
			if len(ev) != 1 || ev[0].RVRS != "Y" || ev[0].CAUSE != "insufficient_funds" || ev[0].RSCD != "ARUDD-0" || ev[0].EVNT != string(kind) {
				t.Fatalf("events = %+v", ev)
			}
		})
	}
}

func TestCancelledBeforeReceiptIsOnlyRecorded(t *testing.T) {
	e, w := writerEnv(t, jde.WriterConfig{})
	e.sim.AddInvoices(jdesim.Invoice{DOC: 1001, DCT: "RI", KCO: "00001", SFX: "001", AN8: 4242, AG: 5000, AAP: 5000, CRCD: "EUR", MCU: "M30"})
	p := confirmed("EV3", 5000, "EUR")
	p.Kind, p.Cause = jde.PaymentCancelled, "mandate_cancelled"
	if _, err := w.PostPayment(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	if ev := e.sim.PaymentEvents(); len(ev) != 1 || ev[0].RVRS != "N" || len(e.sim.Receipts()) != 0 || len(e.sim.GLEntries()) != 0 {
		t.Fatalf("events = %+v, receipts = %+v", ev, e.sim.Receipts())
	}
}

func TestRefundOutcomes(t *testing.T) {
	tests := []struct {
		kind     jde.RefundKind
		closed   bool
		glBooked int
	}{
		{jde.RefundPaid, true, 2},
		{jde.RefundFailed, false, 0},
		{jde.RefundCancelled, false, 0},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			e, w := writerEnv(t, jde.WriterConfig{})
			e.sim.AddInvoices(jdesim.Invoice{DOC: 5001, DCT: "RF", KCO: "00001", SFX: "001", AN8: 4242, AG: -2500, AAP: -2500,
				CRCD: "EUR", MCU: "M30", ODOC: 1001, ODCT: "RI", OKCO: "00001", OSFX: "001"})
			r := jde.Refund{OutcomeID: "EVR1", Kind: tt.kind,
				Refund:  jde.DocumentKey{Company: "00001", Document: "5001", DocType: "RF", Suffix: "001"},
				Invoice: invoiceKey("1001"), RefundID: "RF123", PaymentID: "PM001", AmountMinor: 2500, Currency: "EUR", OccurredAt: paidAt}
			ctx := context.Background()
			first, err := w.PostRefund(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			if again, err := w.PostRefund(ctx, r); err != nil || !again.AlreadyPosted || again.Reference != first.Reference {
				t.Fatalf("repeat = %+v, %v", again, err)
			}
			doc, _ := e.sim.Invoice(jdesim.DocKey{DOC: 5001, DCT: "RF", KCO: "00001", SFX: "001"})
			if (doc.AAP == 0) != tt.closed {
				t.Fatalf("refund document = %+v", doc)
			}
			out := e.sim.RefundOutcomes()
			if len(out) != 1 || out[0].RFST != string(tt.kind) || out[0].GCRF != "RF123" || out[0].AMT != 2500 {
				t.Fatalf("refund outcomes = %+v", out)
			}
			if gl := e.sim.GLEntries(); len(gl) != tt.glBooked || (tt.glBooked > 0 && (gl[0].GLACR != -2500 || gl[0].GLCRRM != "F")) {
				t.Fatalf("GL = %+v", gl)
			}
		})
	}
	e, w := writerEnv(t, jde.WriterConfig{})
	_, err := w.PostRefund(context.Background(), jde.Refund{OutcomeID: "EVX", Kind: jde.RefundPaid,
		Refund: jde.DocumentKey{Company: "00001", Document: "5999", DocType: "RF", Suffix: "001"}, AmountMinor: 1, Currency: "EUR"})
	if !errors.Is(err, jde.ErrNotFound) || e.sim.Stats().Orchestrations != 0 {
		t.Fatalf("unknown refund document: %v", err)
	}
}

func TestMandateStatusLatestWins(t *testing.T) {
	e, w := writerEnv(t, jde.WriterConfig{})
	ctx := context.Background()
	m := jde.Mandate{OutcomeID: "EVM2", Company: "00001", Customer: "4242", MandateID: "MD001", Status: "active",
		Scheme: "bacs", OccurredAt: paidAt}
	if _, err := w.PostMandateStatus(ctx, m); err != nil {
		t.Fatal(err)
	}
	older := m
	older.OutcomeID, older.Status, older.OccurredAt = "EVM1", "pending_submission", paidAt.Add(-time.Hour)
	if _, err := w.PostMandateStatus(ctx, older); err != nil {
		t.Fatal(err)
	}
	if got := e.sim.MandateStatuses(); len(got) != 1 || got[0].MDST != "active" || got[0].EXTREF != "EVM2" {
		t.Fatalf("mandate status = %+v", got)
	}
	unknown := m
	unknown.OutcomeID, unknown.Customer = "EVM3", "777"
	if _, err := w.PostMandateStatus(ctx, unknown); !errors.Is(err, jde.ErrNotFound) {
		t.Fatalf("unknown customer: %v", err)
	}
	bad := m
	bad.OccurredAt = time.Time{}
	if _, err := w.PostMandateStatus(ctx, bad); !errors.Is(err, jde.ErrInvalid) {
		t.Fatalf("no time: %v", err)
	}
}

func TestParseDocumentKey(t *testing.T) {
	k, err := jde.ParseDocumentKey("00001", "5001/RF/001")
	if err != nil || k != (jde.DocumentKey{Company: "00001", Document: "5001", DocType: "RF", Suffix: "001"}) || k.String() != "5001/RF/001" {
		t.Fatalf("%+v, %v", k, err)
	}
	for _, bad := range []string{"", "5001/RF", "5001/RF/001/x", "50x1/RF/001", "5001//001"} {
		if _, err := jde.ParseDocumentKey("00001", bad); !errors.Is(err, jde.ErrInvalid) {
			t.Errorf("ParseDocumentKey(%q) = %v", bad, err)
		}
	}
}
