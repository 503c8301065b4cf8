package poller

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ml-connector/ml-connector/connectors/jde"
	"github.com/ml-connector/ml-connector/platform/watermark"
	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
)

var documentColumns = []string{
	"DOC", "DCT", "KCO", "SFX", "AN8", "CO", "AG", "AAP", "CRCD", "CRRM", "CRR", "ACR", "FAP", "DDJ", "DIVJ", "MCU", "PTC", "PST",
	"RMK", "VINV", "ODOC", "ODCT", "OKCO", "OSFX", "UPMJ", "UPMT",
}

// document is an F03B11 row read in a cycle.
type document struct {
	row   jde.Row
	key   jde.DocumentKey
	stamp stamp
	mark  watermark.Mark
	err   error // the row's stamp could not be read
}

// seen is what poll_seen records of the row once it is handled.
func (d document) seen() watermark.Row {
	return watermark.Row{Key: d.mark.Key, Version: d.version(), At: d.mark.At}
}

// version is the row's version in its message id and in poll_seen
// (versionOf). The second of two writes in one second is our receipt and
// then the reversal of a charge-back, posted back to back when both
// outcomes are flushed together: with the stamp alone the invoice stayed
// at the open amount our receipt left (#17).
func (d document) version() string {
	return versionOf(d.stamp, columns(d.row, "F03B11", documentColumns))
}

func (d document) text(col string) string { return d.row.Text("F03B11", col) }

// documents publishes the F03B11 pay items of company co that changed
// since its watermark. The first poll of a company reads only open items
// (AAP not zero); after that every change counts, so an invoice paid or
// credited in JDE is published again with its new open amount. Rows from
// Overlap before the watermark are read again; those whose version was
// handled already are dropped.
func (p *Poller) documents(ctx context.Context, co string, res *Result) error {
	entity := "F03B11:" + co
	wm, err := p.marks.Load(ctx, p.cfg.ConnectionID, entity)
	if err != nil {
		return err
	}
	q := jde.Query{Table: "F03B11", Columns: documentColumns, Conditions: []jde.Condition{{Column: "KCO", Op: jde.Equal, Value: co}}}
	queries := p.since(q, wm.From)
	if wm.Mark.IsZero() {
		q.Conditions = append(q.Conditions, jde.Condition{Column: "AAP", Op: jde.NotEqual, Value: "0"})
		queries = []jde.Query{q}
	}
	domestic, err := p.companyCurrency(ctx, co)
	if err != nil {
		return err
	}
	var docs []document
	collect := func(r jde.Row) error {
		d := document{row: r, key: jde.DocumentKey{
			Company: r.Text("F03B11", "KCO"), Document: r.Text("F03B11", "DOC"),
			DocType: r.Text("F03B11", "DCT"), Suffix: r.Text("F03B11", "SFX"),
		}}
		if d.key.Company != co {
			return nil // AIS answered outside the condition; only configured companies pass
		}
		if d.stamp, d.err = p.readStamp(r, "F03B11"); d.err == nil {
			d.mark = watermark.Mark{At: p.at(d.stamp), Key: orderKey(d.key.Document, d.key.DocType, d.key.Suffix)}
			if !wm.Fresh(d.seen()) {
				return nil // before the overlap window, or handled in an earlier cycle
			}
		}
		docs = append(docs, d)
		return nil
	}
	for _, q := range queries {
		n := len(docs)
		if err := p.read(ctx, q, func() { docs = docs[:n] }, collect); err != nil {
			return fmt.Errorf("connection %s: read F03B11 of %s: %w", p.cfg.ConnectionName, co, err)
		}
	}
	slices.SortFunc(docs, func(a, b document) int { return a.mark.Compare(b.mark) })
	items := make([]pending, 0, len(docs))
	for _, d := range docs {
		it, rj := p.documentEvent(co, domestic, d)
		if rj != nil {
			if err := p.reject(ctx, *rj, res); err != nil {
				return err
			}
		}
		items = append(items, it)
	}
	return p.publish(ctx, entity, items, res)
}

// companyCurrency reads the domestic currency of company co from the
// Company Constants (F0010). Every JDE company has that row; a company
// code without one is a wrong setting, and nothing of it is read.
func (p *Poller) companyCurrency(ctx context.Context, co string) (string, error) {
	cur := ""
	q := jde.Query{Table: "F0010", Columns: []string{"CO", "CRCD"}, Conditions: []jde.Condition{{Column: "CO", Op: jde.Equal, Value: co}}, PageSize: 2}
	err := p.read(ctx, q, func() { cur = "" }, func(r jde.Row) error {
		if r.Text("F0010", "CO") == co {
			cur = r.Text("F0010", "CRCD")
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("connection %s: read F0010 of %s: %w", p.cfg.ConnectionName, co, err)
	}
	if cur == "" {
		return "", fmt.Errorf("connection %s: company %s has no currency in the company constants (F0010); check company_codes", p.cfg.ConnectionName, co)
	}
	return cur, nil
}

// transactionAmounts picks the open and gross amounts of a pay item in its
// transaction currency CRCD. In foreign mode (CRRM F) AG and AAP are the
// company's domestic amounts and ACR and FAP the transaction's; in
// domestic mode (D, or blank where multi-currency is off) CRCD is the
// company's currency and AG and AAP are the amounts (Oracle,
// "Multicurrency Fields Required in the F03B11Z1 Table",
// https://docs.oracle.com/en/applications/jd-edwards/financials/9.2/eoamp/multicurrency-fields-required-in-the-f03b11z1-table.html).
// A mode that contradicts the currencies is refused rather than guessed.
func (p *Poller) transactionAmounts(d document, domestic string) (open, gross string, err error) {
	cur := d.text("CRCD")
	openCol, grossCol := "AAP", "AG"
	switch mode := d.text("CRRM"); mode {
	case jde.ModeForeign:
		if cur == domestic {
			return "", "", fmt.Errorf("F03B11.CRRM is F (foreign) but CRCD %s is the company's own currency", cur)
		}
		openCol, grossCol = "FAP", "ACR"
	case jde.ModeDomestic, "":
		if cur != domestic {
			return "", "", fmt.Errorf("F03B11.CRCD %s is not the company's currency %s, but CRRM is %q, not F (foreign)", cur, domestic, mode)
		}
	default:
		return "", "", fmt.Errorf("F03B11.CRRM %q is not D or F", mode)
	}
	if open, err = jde.ParseAmount(d.text(openCol), cur, p.cfg.Settings.Amounts); err != nil {
		return "", "", fmt.Errorf("F03B11.%s: %w", openCol, err)
	}
	if gross, err = jde.ParseAmount(d.text(grossCol), cur, p.cfg.Settings.Amounts); err != nil {
		return "", "", fmt.Errorf("F03B11.%s: %w", grossCol, err)
	}
	return open, gross, nil
}

// documentEvent maps a pay item to its event: InvoiceReady for invoice
// document types, RefundRequested for open refund documents, nothing for
// other types (receipts, credit memos, ...) or a rejection. domestic is
// the company's currency.
func (p *Poller) documentEvent(co, domestic string, d document) (pending, *rejection) {
	it := pending{co: co, mark: d.mark}
	if d.err == nil {
		it.seen = d.seen()
	}
	dct := d.key.DocType
	kind := ""
	switch {
	case slices.Contains(p.cfg.Settings.InvoiceDocTypes, dct):
		kind = kindInvoice
	case slices.Contains(p.cfg.Settings.RefundDocTypes, dct):
		kind = kindRefund
	default:
		return it, nil
	}
	rejected := func(err error) (pending, *rejection) {
		return it, &rejection{kind: kind, company: co, key: d.key.String(), version: d.version(), table: "F03B11", err: err}
	}
	if d.err != nil {
		return rejected(d.err)
	}
	if d.key.Document == "" || d.key.Suffix == "" || d.text("AN8") == "" {
		return rejected(fmt.Errorf("F03B11 row without document number, pay item or customer"))
	}
	cur := d.text("CRCD")
	open, gross, err := p.transactionAmounts(d, domestic)
	if err != nil {
		return rejected(err)
	}
	erp := &mlcv1.ErpRef{Erp: mlcv1.Erp_ERP_JDE, Connection: p.cfg.ConnectionName, Company: co}
	updated := timestamppb.New(p.at(d.stamp))
	version := d.version()
	fields := map[string]string{}
	for _, col := range []string{"CO", "PST", "RMK", "VINV", "CRRM", "CRR"} {
		if v := d.text(col); v != "" {
			fields[col] = v
		}
	}
	if kind == kindRefund {
		amount := strings.TrimPrefix(open, "-")
		if isZero(amount) {
			return it, nil // settled: nothing left to refund
		}
		orig := jde.DocumentKey{Company: d.text("OKCO"), Document: d.text("ODOC"), DocType: d.text("ODCT"), Suffix: d.text("OSFX")}
		if orig.Document == "" || orig.Document == "0" || orig.DocType == "" {
			return rejected(fmt.Errorf("refund document has no original invoice (ODOC/ODCT/OSFX)"))
		}
		if orig.Company != "" && orig.Company != co {
			return rejected(fmt.Errorf("refund's original invoice is in company %s, not %s", orig.Company, co))
		}
		// The refund's outcome is booked to the GL bank account of its
		// business unit; a refund whose outcome could not be posted back
		// is an exception now, before any money moves.
		if _, err := p.cfg.Settings.Writer.GLAccount(d.text("MCU")); err != nil {
			return rejected(fmt.Errorf("refund could not be posted back to JDE: %w", err))
		}
		fields["AG"] = gross
		ev := &mlcv1.RefundRequested{
			SchemaVersion: 1,
			Erp:           erp,
			RefundId:      d.key.String(),
			Invoice:       &mlcv1.InvoiceKey{InvoiceId: orig.Document, InvoiceNo: orig.Document, DocType: orig.DocType, Suffix: orig.Suffix},
			CustomerId:    d.text("AN8"),
			Version:       version,
			Amount:        amount,
			Currency:      cur,
			Reason:        d.text("RMK"),
			UpdatedAt:     updated,
			ErpFields:     fields,
		}
		if it.msg, err = p.message(co, kindRefund, ev.RefundId, version, ev); err != nil {
			return rejected(err)
		}
		it.kind = kindRefund
		return it, nil
	}
	due, err := jde.ParseDate(d.text("DDJ"), p.format)
	if err != nil {
		return rejected(fmt.Errorf("F03B11.DDJ: %w", err))
	}
	issued, err := jde.ParseDate(d.text("DIVJ"), p.format)
	if err != nil {
		return rejected(fmt.Errorf("F03B11.DIVJ: %w", err))
	}
	terms := d.text("PTC")
	ev := &mlcv1.InvoiceReady{
		SchemaVersion: 1,
		Erp:           erp,
		Invoice:       &mlcv1.InvoiceKey{InvoiceId: d.key.Document, InvoiceNo: d.key.Document, DocType: dct, Suffix: d.key.Suffix},
		CustomerId:    d.text("AN8"),
		Version:       version,
		Amount:        open,
		GrossAmount:   gross,
		Currency:      cur,
		InvoiceDate:   issued.String(),
		DueDate:       due.String(),
		PaymentTerms:  terms,
		BusinessUnit:  d.text("MCU"),
		UpdatedAt:     updated,
		ErpFields:     fields,
	}
	if rc, ok := p.cfg.Settings.TermsRecurrence[terms]; ok {
		ev.Recurrence = recurrence(rc)
	}
	if it.msg, err = p.message(co, kindInvoice, d.key.String(), version, ev); err != nil {
		return rejected(err)
	}
	it.kind = kindInvoice
	return it, nil
}

func isZero(amount string) bool { return strings.Trim(amount, "0.") == "" }

func recurrence(rc jde.Recurrence) *mlcv1.Recurrence {
	unit := map[string]mlcv1.IntervalUnit{
		"weekly":  mlcv1.IntervalUnit_INTERVAL_UNIT_WEEKLY,
		"monthly": mlcv1.IntervalUnit_INTERVAL_UNIT_MONTHLY,
		"yearly":  mlcv1.IntervalUnit_INTERVAL_UNIT_YEARLY,
	}[rc.IntervalUnit]
	return &mlcv1.Recurrence{
		IntervalUnit: unit,
		Interval:     int32(rc.Interval),
		DayOfMonth:   int32(rc.DayOfMonth),
		Count:        int32(rc.Count),
		Month:        int32(rc.Month),
	}
}
