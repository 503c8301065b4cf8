package jdesim

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ml-connector/ml-connector/platform/money"
)

// posting is the remembered answer of an orchestration, by external
// reference, so that a repeat writes nothing and answers the same.
type posting struct {
	orchestration string
	output        map[string]any
}

// orchestrationError is an answer other than success: 400 for input the
// orchestration refuses, 404 for a document it does not know.
type orchestrationError struct {
	status int
	msg    string
}

func (e *orchestrationError) Error() string { return e.msg }

func refuse(format string, args ...any) error {
	return &orchestrationError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) error {
	return &orchestrationError{status: http.StatusNotFound, msg: fmt.Sprintf(format, args...)}
}

// inputs are an orchestration's inputs, as strings.
type inputs map[string]string

func (in inputs) required(names ...string) error {
	var missing []string
	for _, n := range names {
		if strings.TrimSpace(in[n]) == "" {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return refuse("missing required inputs: %s", strings.Join(missing, ", "))
	}
	return nil
}

func (in inputs) num(name string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(in[name]), 10, 64)
	if err != nil {
		return 0, refuse("input %s %q is not a number", name, in[name])
	}
	return n, nil
}

// date reads an ISO date input; empty means today.
func (in inputs) date(name string, today time.Time) (time.Time, error) {
	v := strings.TrimSpace(in[name])
	if v == "" {
		return time.Date(today.Year(), today.Month(), today.Day(), 0, 0, 0, 0, time.UTC), nil
	}
	t, err := time.Parse(time.DateOnly, v)
	if err != nil {
		return time.Time{}, refuse("input %s %q is not a YYYY-MM-DD date", name, v)
	}
	return t, nil
}

// amount reads a positive decimal amount in currency as minor units.
func (in inputs) amount(currency string) (int64, error) {
	minor, err := money.ToMinor(strings.TrimSpace(in["Amount"]), currency)
	if err != nil {
		return 0, refuse("input Amount %q in %s: %v", in["Amount"], currency, err)
	}
	if minor <= 0 {
		return 0, refuse("input Amount must be positive")
	}
	return minor, nil
}

func (s *Server) handleOrchestration(w http.ResponseWriter, r *http.Request) {
	var body json.RawMessage
	var raw map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || json.Unmarshal(body, &raw) != nil {
		writeError(w, http.StatusBadRequest, "Bad Request - Invalid JSON Input", "")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.authenticate(w, r)
	if sess == nil {
		return
	}
	s.stats.Orchestrations++
	name := r.PathValue("name")
	if name == s.opts.JournalEntryOrchestration {
		s.journalEntry(w, sess, body)
		return
	}
	var run func(*session, inputs) (map[string]any, error)
	standard := false
	switch name {
	case s.opts.ReceiptsInputOrchestration:
		standard = true
	case s.opts.ReceiptOrchestration:
		run = s.postReceipt
	case s.opts.FailureOrchestration:
		run = s.recordFailure
	case s.opts.RefundOrchestration:
		run = s.recordRefund
	case s.opts.MandateOrchestration:
		run = s.recordMandate
	default:
		writeError(w, http.StatusNotFound, fmt.Sprintf("Orchestration %s not found", name), "com.oracle.e1.jdemf.JDERestServiceException")
		return
	}
	in := inputs{}
	for k, v := range raw {
		switch v := v.(type) {
		case string:
			in[k] = v
		case float64:
			in[k] = strconv.FormatFloat(v, 'f', -1, 64)
		case nil:
		default:
			writeError(w, http.StatusBadRequest, fmt.Sprintf("input %s must be a string or a number", k), "")
			return
		}
	}
	if standard {
		s.receiptsInput(w, sess, in)
		return
	}
	ref := strings.TrimSpace(in["ExternalReference"])
	if ref == "" {
		writeError(w, http.StatusBadRequest, "missing required inputs: ExternalReference", "")
		return
	}
	if prev, ok := s.postings[ref]; ok {
		if prev.orchestration != name {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("ExternalReference %s was already used by %s", ref, prev.orchestration), "")
			return
		}
		out := map[string]any{}
		for k, v := range prev.output {
			out[k] = v
		}
		out["AlreadyPosted"] = true
		writeJSON(w, http.StatusOK, out)
		return
	}
	out, err := run(sess, in)
	var oerr *orchestrationError
	if errors.As(err, &oerr) {
		writeError(w, oerr.status, oerr.msg, "com.oracle.e1.jdemf.OrchestrationException")
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error(), "")
		return
	}
	out["PostedAt"] = s.now().UTC().Format(time.RFC3339)
	out["AlreadyPosted"] = false
	s.postings[ref] = posting{orchestration: name, output: out}
	writeJSON(w, http.StatusOK, out)
}

// findInvoice returns the live F03B11 row of a key.
func (s *Server) findInvoice(k DocKey) *Invoice { return s.data.invoiceIndex[k] }

// addInvoice appends a new F03B11 row.
func (s *Server) addInvoice(inv *Invoice) {
	s.data.invoices = append(s.data.invoices, inv)
	s.data.invoiceIndex[inv.Key()] = inv
}

// document reads the document key inputs and finds the document.
func (s *Server) document(in inputs) (*Invoice, error) {
	if err := in.required("DocumentNumber", "DocumentType", "DocumentCompany", "PayItem", "Currency", "Amount"); err != nil {
		return nil, err
	}
	doc, err := in.num("DocumentNumber")
	if err != nil {
		return nil, err
	}
	k := DocKey{DOC: doc, DCT: in["DocumentType"], KCO: in["DocumentCompany"], SFX: in["PayItem"]}
	inv := s.findInvoice(k)
	if inv == nil {
		return nil, notFound("document %s not found in F03B11", k)
	}
	if inv.CRCD != in["Currency"] {
		return nil, refuse("document %s is in %s, not %s", k, inv.CRCD, in["Currency"])
	}
	if c := strings.TrimSpace(in["Customer"]); c != "" && c != strconv.FormatInt(inv.AN8, 10) {
		return nil, refuse("document %s belongs to customer %d, not %s", k, inv.AN8, c)
	}
	return inv, nil
}

// touch sets a row's updated stamp to now, as every JDE write does.
func (s *Server) touch(st *Stamp) { *st = stampOf(s.now()) }

// postReceipt is MLC_PostReceipt: an F03B13Z1 receipt line matched to the
// invoice, processed at once as R03B551 would: the invoice's open amount
// goes down by what it can take, any rest becomes an unapplied receipt
// (RU), and F0911 gets the bank debit and the AR credit.
func (s *Server) postReceipt(sess *session, in inputs) (map[string]any, error) {
	inv, err := s.document(in)
	if err != nil {
		return nil, err
	}
	if err := in.required("GLBankAccount", "CurrencyMode"); err != nil {
		return nil, err
	}
	if err := s.checkMode(inv, in["CurrencyMode"]); err != nil {
		return nil, err
	}
	amount, err := in.amount(inv.CRCD)
	if err != nil {
		return nil, err
	}
	date, err := in.date("ReceiptDate", s.now())
	if err != nil {
		return nil, err
	}
	s.next.batch++
	s.next.receipt++
	batch, receiptNo := strconv.FormatInt(s.next.batch, 10), s.next.receipt
	bu := inv.MCU
	if v := strings.TrimSpace(in["BusinessUnit"]); v != "" {
		bu = v
	}
	s.data.receipts = append(s.data.receipts, &ReceiptInput{
		RUEDUS: sess.user, RUEDBT: batch, RUEDTN: "1", RUEDLN: 1,
		RUCKAM: amount, RUDOC: inv.DOC, RUDCT: inv.DCT, RUKCO: inv.KCO, RUSFX: inv.SFX,
		RUCRCD: inv.CRCD, RUCRRM: in["CurrencyMode"], RUCRR: inv.CRR, RUAN8: inv.AN8, RUDMTJ: date, RUGLBA: in["GLBankAccount"],
		RUCKNU: in["PaymentReference"], RUMCU: bu, RUVR01: in["ExternalReference"], RUEDSP: "1",
		RURMK: in["Remark"],
	})
	unapplied := s.apply(inv, amount)
	if unapplied > 0 {
		if err := s.unappliedReceipt(inv, receiptNo, unapplied, date, bu, in["PaymentReference"]); err != nil {
			return nil, err
		}
	}
	s.journal(receiptNo, inv, date, in["GLBankAccount"], bu, amount, "Receipt "+in["PaymentReference"])
	unappliedText, _ := money.FromMinor(unapplied, inv.CRCD)
	return map[string]any{
		"Reference":       fmt.Sprintf("RC %d batch %s", receiptNo, batch),
		"BatchNumber":     batch,
		"ReceiptNumber":   strconv.FormatInt(receiptNo, 10),
		"UnappliedAmount": unappliedText,
	}, nil
}

// checkMode refuses a receipt entered in another currency mode than the
// one its currency calls for against inv (currency.go, receiptMode).
func (s *Server) checkMode(inv *Invoice, mode string) error {
	if mode != ModeDomestic && mode != ModeForeign {
		return refuse("currency mode %q must be D or F", mode)
	}
	if want := s.receiptMode(inv); mode != want {
		return refuse("receipt in %s against document %s of a %s company must be in currency mode %s, not %s",
			inv.CRCD, inv.Key(), s.companyCurrency(inv.KCO), want, mode)
	}
	return nil
}

// apply takes amount (in CRCD) off the open amount of inv, as far as it
// goes, and returns what is left over.
func (s *Server) apply(inv *Invoice, amount int64) int64 {
	applied := min(amount, max(inv.open(), 0))
	s.applyOpen(inv, -applied)
	if inv.open() == 0 {
		inv.PST = "P"
	}
	s.touch(&inv.Stamp)
	return amount - applied
}

// unappliedReceipt books what a receipt could not apply as an RU document
// in the invoice's currency and mode.
func (s *Server) unappliedReceipt(inv *Invoice, doc, amount int64, date time.Time, bu, paymentRef string) error {
	ru := &Invoice{DOC: doc, DCT: "RU", KCO: inv.KCO, SFX: "001", AN8: inv.AN8, CO: inv.CO,
		AG: -amount, AAP: -amount, CRCD: inv.CRCD, CRRM: inv.CRRM, CRR: inv.CRR, DGJ: date, MCU: bu, PST: "A",
		RMK: "Unapplied receipt " + paymentRef}
	if inv.CRRM == ModeForeign {
		d, err := toDomestic(-amount, inv.CRCD, s.companyCurrency(inv.KCO), inv.CRR)
		if err != nil {
			return err
		}
		ru.ACR, ru.FAP, ru.AG, ru.AAP = -amount, -amount, d, d
	}
	s.touch(&ru.Stamp)
	s.addInvoice(ru)
	return nil
}

// journal writes the two F0911 lines of a receipt (amount > 0) or its
// reversal (amount < 0): bank account against AR trade of the business
// unit.
func (s *Server) journal(doc int64, inv *Invoice, date time.Time, bank, bu string, amount int64, text string) {
	// GLAA is domestic; a foreign entry also keeps the amount in CRCD.
	domestic, foreign, mode := amount, int64(0), ModeDomestic
	if inv.CRRM == ModeForeign {
		if d, err := toDomestic(amount, inv.CRCD, s.companyCurrency(inv.KCO), inv.CRR); err == nil {
			domestic, foreign, mode = d, amount, ModeForeign
		}
	}
	for i, line := range []struct {
		account string
		amount  int64
		foreign int64
	}{{bank, domestic, foreign}, {bu + "." + s.opts.ARObject, -domestic, -foreign}} {
		s.data.gl = append(s.data.gl, &GLEntry{
			GLDOC: doc, GLDCT: "RC", GLKCO: inv.KCO, GLJELN: int64(i + 1), GLDGJ: date,
			GLANI: line.account, GLMCU: bu, GLLT: "AA", GLAA: line.amount, GLCRCD: inv.CRCD, GLCRRM: mode, GLACR: line.foreign,
			GLAN8: inv.AN8, GLEXA: text, GLVINV: strconv.FormatInt(inv.DOC, 10),
		})
	}
}

// recordFailure is MLC_PaymentFailure: the event goes to F5503B01, and
// a receipt booked for the payment on this invoice is reversed (negative
// F03B13Z1 line, reversing F0911 lines, open amount restored).
func (s *Server) recordFailure(_ *session, in inputs) (map[string]any, error) {
	inv, err := s.document(in)
	if err != nil {
		return nil, err
	}
	if err := in.required("Event"); err != nil {
		return nil, err
	}
	switch in["Event"] {
	case "failed", "charged_back", "cancelled":
	default:
		return nil, refuse("input Event %q must be failed, charged_back or cancelled", in["Event"])
	}
	amount, err := in.amount(inv.CRCD)
	if err != nil {
		return nil, err
	}
	date, err := in.date("EventDate", s.now())
	if err != nil {
		return nil, err
	}
	reversed := ""
	if ref := in["PaymentReference"]; ref != "" {
		reversed = s.reverseReceipt(inv, ref, date)
	}
	ev := &PaymentEvent{
		UKID: s.next.event, EXTREF: in["ExternalReference"], DOC: inv.DOC, DCT: inv.DCT, KCO: inv.KCO, SFX: inv.SFX,
		AN8: inv.AN8, EVNT: in["Event"], CAUSE: in["Cause"], RSCD: in["ReasonCode"], DSC1: in["Description"],
		PYID: in["PaymentReference"], AMT: amount, CRCD: inv.CRCD, EVDJ: date, RVRS: "N",
	}
	s.next.event++
	ref := fmt.Sprintf("F5503B01 %d", ev.UKID)
	if reversed != "" {
		ev.RVRS = "Y"
		ref += ", reversed " + reversed
	}
	s.data.events = append(s.data.events, ev)
	return map[string]any{"Reference": ref, "ReversedReceipt": reversed}, nil
}

// reverseReceipt undoes the receipt of a payment on inv, if one is booked
// and not yet reversed, and returns its reference.
func (s *Server) reverseReceipt(inv *Invoice, paymentRef string, date time.Time) string {
	var orig *ReceiptInput
	net := int64(0)
	for _, r := range s.data.receipts {
		// The payment is the receipt number of the ml-connector preset and
		// the reference (VR01) of the standard F03B13Z1 one.
		if (r.RUCKNU == paymentRef || r.RUVR01 == paymentRef) && r.RUDOC == inv.DOC && r.RUDCT == inv.DCT && r.RUKCO == inv.KCO && r.RUSFX == inv.SFX {
			net += r.RUCKAM
			if r.RUCKAM > 0 {
				orig = r
			}
		}
	}
	if orig == nil || net <= 0 {
		return ""
	}
	s.next.batch++
	s.data.receipts = append(s.data.receipts, &ReceiptInput{
		RUEDUS: orig.RUEDUS, RUEDBT: strconv.FormatInt(s.next.batch, 10), RUEDTN: "1", RUEDLN: 1,
		RUCKAM: -orig.RUCKAM, RUDOC: orig.RUDOC, RUDCT: orig.RUDCT, RUKCO: orig.RUKCO, RUSFX: orig.RUSFX,
		RUCRCD: orig.RUCRCD, RUCRRM: orig.RUCRRM, RUCRR: orig.RUCRR, RUAN8: orig.RUAN8, RUDMTJ: date, RUGLBA: orig.RUGLBA, RUCKNU: orig.RUCKNU,
		RUMCU: orig.RUMCU, RUVR01: orig.RUVR01, RUEDSP: "1", RURMK: "Reversal " + paymentRef,
	})
	// Whatever went to unapplied cash comes back from there first.
	back := orig.RUCKAM
	for _, ru := range s.data.invoices {
		if ru.DCT == "RU" && ru.KCO == inv.KCO && ru.AN8 == inv.AN8 && ru.open() < 0 && ru.RMK == "Unapplied receipt "+paymentRef {
			take := min(back, -ru.open())
			s.applyOpen(ru, take)
			back -= take
			s.touch(&ru.Stamp)
		}
	}
	s.applyOpen(inv, back)
	inv.PST = "A"
	s.touch(&inv.Stamp)
	s.next.receipt++
	s.journal(s.next.receipt, inv, date, orig.RUGLBA, orig.RUMCU, -orig.RUCKAM, "Reversal "+paymentRef)
	return "batch " + orig.RUEDBT
}

// recordRefund is MLC_RefundOutcome: the outcome goes to F5503B03; a paid
// refund closes the refund document and books the money leaving the bank.
func (s *Server) recordRefund(_ *session, in inputs) (map[string]any, error) {
	doc, err := s.document(in)
	if err != nil {
		return nil, err
	}
	amount, err := in.amount(doc.CRCD)
	if err != nil {
		return nil, err
	}
	date, err := in.date("EventDate", s.now())
	if err != nil {
		return nil, err
	}
	status := in["Status"]
	switch status {
	case "paid":
		if err := in.required("GLBankAccount"); err != nil {
			return nil, err
		}
		s.applyOpen(doc, -doc.open())
		doc.PST = "P"
		s.touch(&doc.Stamp)
		s.next.receipt++
		bu := doc.MCU
		if v := strings.TrimSpace(in["BusinessUnit"]); v != "" {
			bu = v
		}
		s.journal(s.next.receipt, doc, date, in["GLBankAccount"], bu, -amount, "Refund "+in["GoCardlessRefund"])
	case "failed", "cancelled":
	default:
		return nil, refuse("input Status %q must be paid, failed or cancelled", status)
	}
	rec := &RefundOutcome{
		UKID: s.next.refund, EXTREF: in["ExternalReference"], DOC: doc.DOC, DCT: doc.DCT, KCO: doc.KCO, SFX: doc.SFX,
		AN8: doc.AN8, RFST: status, GCRF: in["GoCardlessRefund"], PYID: in["PaymentReference"], AMT: amount,
		CRCD: doc.CRCD, CAUSE: in["Cause"], RSCD: in["ReasonCode"], EVDJ: date,
	}
	s.next.refund++
	s.data.refunds = append(s.data.refunds, rec)
	return map[string]any{"Reference": fmt.Sprintf("F5503B03 %d", rec.UKID)}, nil
}

// recordMandate is MLC_MandateStatus: F5503B02 keeps, per customer and
// company, the status with the latest event time.
func (s *Server) recordMandate(_ *session, in inputs) (map[string]any, error) {
	if err := in.required("Company", "Customer", "MandateID", "Status", "EventTime"); err != nil {
		return nil, err
	}
	an8, err := in.num("Customer")
	if err != nil {
		return nil, err
	}
	at, err := time.Parse(time.RFC3339, in["EventTime"])
	if err != nil {
		return nil, refuse("input EventTime %q is not RFC 3339", in["EventTime"])
	}
	found := false
	for _, c := range s.data.customers {
		found = found || (c.AN8 == an8 && c.CO == in["Company"])
	}
	if !found {
		return nil, notFound("customer %d has no F03012 row in company %s", an8, in["Company"])
	}
	if u := in["AuthorisationURL"]; u != "" && !strings.HasPrefix(u, "https://") {
		return nil, refuse("input AuthorisationURL %q is not an https link", u)
	}
	if v := in["LinkExpiresAt"]; v != "" {
		if _, err := time.Parse(time.RFC3339, v); err != nil {
			return nil, refuse("input LinkExpiresAt %q is not RFC 3339", v)
		}
	}
	row := &MandateStatus{AN8: an8, CO: in["Company"], MDID: in["MandateID"], MDST: in["Status"], SCHM: in["Scheme"],
		CAUSE: in["Cause"], RSCD: in["ReasonCode"], DSC1: in["Description"], EVTS: at.UTC().Format(time.RFC3339),
		EXTREF: in["ExternalReference"], AURL: in["AuthorisationURL"], AUEX: in["LinkExpiresAt"]}
	applied := true
	for i, m := range s.data.mandates {
		if m.AN8 == an8 && m.CO == row.CO {
			prev, _ := time.Parse(time.RFC3339, m.EVTS)
			if at.Before(prev) {
				applied = false
			} else {
				s.data.mandates[i] = row
			}
			return map[string]any{"Reference": fmt.Sprintf("F5503B02 %d/%s", an8, row.CO), "Applied": applied}, nil
		}
	}
	s.data.mandates = append(s.data.mandates, row)
	return map[string]any{"Reference": fmt.Sprintf("F5503B02 %d/%s", an8, row.CO), "Applied": applied}, nil
}
