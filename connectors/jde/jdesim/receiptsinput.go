package jdesim

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The standard way into JDE for bank receipts: rows of the Electronic
// Receipts Input table F03B13Z1, turned into receipts (F03B13/F03B14) by
// Update Receipts Header (R03B551) and matched to invoices by the Known
// Invoice Match algorithms. ml-connector ships an orchestration
// (docs/jde/MLC_ReceiptsInput.json) that adds one F03B13Z1 row through
// Review Electronic Receipts and runs R03B551; the simulator does both at
// once. Sources:
//
//   - Required fields, "Mapping Fields for Automatic Receipts Processing"
//     (https://docs.oracle.com/en/applications/jd-edwards/financials/9.2/eoaar/required-fields-2.html):
//     EDUS (alpha 10), EDBT (15), EDTN (22) and EDLN (number 7) identify a
//     receipt line; CKNU (25) takes the same value as EDTN; ICUT is 9B.
//   - Multicurrency, "Multicurrency Fields Required in the F03B13Z1 Table"
//     (https://docs.oracle.com/en/applications/jd-edwards/financials/9.2/eoamp/multicurrency-fields-required-in-the-f03b13z1-table.html):
//     CRCD; CRRM F for a receipt in another currency than the invoice's
//     base currency, given whether domestic or foreign; the receipt amount
//     in CKAM (and AG for Known Invoice Match With Amount) whatever its
//     currency; FAP left blank; CRR from F0015 when blank.
//   - Optional fields (https://docs.oracle.com/en/applications/jd-edwards/financials/9.2/eoaar/optional-ignored-and-output-fields.html):
//     VR01 (alpha 25) is an informational reference; EDSP is set by the
//     system once processed.
//
// The documented page lists further required columns (receipt date, amount,
// bank account, payor) which the simulator requires too, as R03B551 cannot
// make a receipt without them. What the pages leave open (the date format
// of orchestration inputs) the simulator takes as ISO dates, as the shipped
// orchestration declares them.
//
// Outcomes are reported in the response body, as orchestrations do
// ("Defining Orchestration Response Messages", Tools 9.2.5.4,
// https://docs.oracle.com/en/applications/jd-edwards/cross-product/9.2/eotos/defining-orchestration-response-messages-tools-release-9-2-5-4.html):
// jde__status SUCCESS, WARNING or ERROR with jde__simpleMessage. A step
// that fails outright answers HTTP 500 with the ServiceErrorResponse body
// and the step's userDefinedErrorText ("Execute an Orchestration v2",
// https://docs.oracle.com/en/applications/jd-edwards/cross-product/9.2/rest-api/op-v2-orchestrator-orchestration-post.html).
// Which of the two a site's orchestration uses is its designer's choice;
// Options.RefusalsAsErrors picks the second.

// receiptsInputKey is the unique key of an F03B13Z1 row.
type receiptsInputKey struct {
	EDUS, EDBT, EDTN string
	EDLN             int64
}

// refuseReceipt answers a refused receipt the way the options say.
func (s *Server) refuseReceipt(w http.ResponseWriter, msg string) {
	if s.opts.RefusalsAsErrors {
		writeJSON(w, http.StatusInternalServerError, map[string]any{
			"message":              "Orchestration step failed",
			"exception":            "com.oracle.e1.jdemf.OrchestrationException",
			"status":               "ERROR",
			"timeStamp":            time.Now().UTC().Format("2006-01-02:15.04.05"),
			"userDefinedErrorText": msg,
		})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"jde__status": "ERROR", "jde__simpleMessage": msg})
}

// receiptsInput is the standard receipt orchestration.
func (s *Server) receiptsInput(w http.ResponseWriter, sess *session, in inputs) {
	if err := in.required("EDUS", "EDBT", "EDTN", "EDLN", "CKNU", "ICUT", "DMTJ", "CKAM", "CRCD", "CRRM", "AN8", "GLBA"); err != nil {
		s.refuseReceipt(w, err.Error())
		return
	}
	for name, max := range map[string]int{"EDUS": 10, "EDBT": 15, "EDTN": 22, "CKNU": 25, "VR01": 25, "GLBA": 29, "ICUT": 2} {
		if len(in[name]) > max {
			s.refuseReceipt(w, fmt.Sprintf("%s is longer than %d characters", name, max))
			return
		}
	}
	edln, err := in.num("EDLN")
	if err != nil || edln < 1 || edln > 9999999 {
		s.refuseReceipt(w, "EDLN must be a line number of up to 7 digits")
		return
	}
	switch {
	case in["ICUT"] != "9B":
		s.refuseReceipt(w, fmt.Sprintf("ICUT %q must be 9B (automatic receipts)", in["ICUT"]))
		return
	case in["CKNU"] != in["EDTN"]:
		s.refuseReceipt(w, "CKNU must be the same value as EDTN")
		return
	case in["EDUS"] != sess.user:
		s.refuseReceipt(w, fmt.Sprintf("EDUS %q is not the user running the process", in["EDUS"]))
		return
	}
	key := receiptsInputKey{EDUS: in["EDUS"], EDBT: in["EDBT"], EDTN: in["EDTN"], EDLN: edln}
	if prev, ok := s.receiptsByKey[key]; ok {
		// The shipped orchestration looks the row up before adding it:
		// a repeat adds nothing and answers with the original.
		out := map[string]any{}
		for k, v := range prev {
			out[k] = v
		}
		out["AlreadyPosted"] = true
		writeJSON(w, http.StatusOK, out)
		return
	}
	out, msg := s.addReceiptsInput(key, in)
	if msg != "" {
		s.refuseReceipt(w, msg)
		return
	}
	s.receiptsByKey[key] = out
	res := map[string]any{}
	for k, v := range out {
		res[k] = v
	}
	res["AlreadyPosted"] = false
	writeJSON(w, http.StatusOK, res)
}

// addReceiptsInput writes the F03B13Z1 row and processes it as R03B551 and
// Known Invoice Match With Amount would, or says why it cannot.
func (s *Server) addReceiptsInput(key receiptsInputKey, in inputs) (map[string]any, string) {
	doc, err := in.num("DOC")
	if err != nil {
		return nil, "DOC must be the invoice's document number"
	}
	k := DocKey{DOC: doc, DCT: in["DCT"], KCO: in["KCO"], SFX: in["SFX"]}
	inv := s.findInvoice(k)
	if inv == nil {
		return nil, fmt.Sprintf("invoice %s not found in F03B11", k)
	}
	if inv.CRCD != in["CRCD"] {
		return nil, fmt.Sprintf("invoice %s is in %s, the receipt in %s", k, inv.CRCD, in["CRCD"])
	}
	if an8, err := in.num("AN8"); err != nil || an8 != inv.AN8 {
		return nil, fmt.Sprintf("invoice %s belongs to customer %d, not %s", k, inv.AN8, in["AN8"])
	}
	if err := s.checkMode(inv, in["CRRM"]); err != nil {
		return nil, err.Error()
	}
	if fap := strings.TrimSpace(in["FAP"]); fap != "" && fap != "0" {
		return nil, "FAP must be left blank; the amount goes in CKAM"
	}
	in["Amount"] = in["CKAM"]
	amount, err := in.amount(inv.CRCD)
	if err != nil {
		return nil, err.Error()
	}
	if ag := strings.TrimSpace(in["AG"]); ag != "" && ag != in["CKAM"] {
		return nil, "AG must equal CKAM for Known Invoice Match With Amount"
	}
	date, err := in.date("DMTJ", s.now())
	if err != nil {
		return nil, err.Error()
	}
	s.next.receipt++
	receiptNo := s.next.receipt
	s.data.receipts = append(s.data.receipts, &ReceiptInput{
		RUEDUS: key.EDUS, RUEDBT: key.EDBT, RUEDTN: key.EDTN, RUEDLN: key.EDLN,
		RUCKAM: amount, RUDOC: inv.DOC, RUDCT: inv.DCT, RUKCO: inv.KCO, RUSFX: inv.SFX,
		RUCRCD: inv.CRCD, RUCRRM: in["CRRM"], RUCRR: inv.CRR, RUAN8: inv.AN8, RUDMTJ: date, RUGLBA: in["GLBA"],
		RUCKNU: in["CKNU"], RUMCU: inv.MCU, RUVR01: in["VR01"], RUEDSP: "1", RURMK: in["RMK"],
	})
	if unapplied := s.apply(inv, amount); unapplied > 0 {
		if err := s.unappliedReceipt(inv, receiptNo, unapplied, date, inv.MCU, in["VR01"]); err != nil {
			return nil, err.Error()
		}
	}
	s.journal(receiptNo, inv, date, in["GLBA"], inv.MCU, amount, "Receipt "+in["VR01"])
	return map[string]any{
		"jde__status":        "SUCCESS",
		"jde__simpleMessage": fmt.Sprintf("Receipt %s added to batch %s and processed by R03B551", key.EDTN, key.EDBT),
		"BatchNumber":        key.EDBT,
		"TransactionNumber":  key.EDTN,
		"ReceiptNumber":      strconv.FormatInt(receiptNo, 10),
		"PostedAt":           s.now().UTC().Format(time.RFC3339),
	}, ""
}
