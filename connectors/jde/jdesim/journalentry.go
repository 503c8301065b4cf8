package jdesim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ml-connector/ml-connector/platform/money"
)

// The standard way into JDE for journal entries from another system: rows
// of Journal Entry Transactions - Batch File (F0911Z1), processed by the
// Journal Entries Batch Processor (R09110Z) into F0911. ml-connector ships
// an orchestration (docs/jde/orchestrations/MLC_JournalEntry.json) that
// adds one entry's lines and runs R09110Z over them; the simulator does
// both at once, and keeps the rows (JournalInputs) and the F0911 lines
// (GLEntries, document type JE). Sources:
//
//   - Required fields (https://docs.oracle.com/en/applications/jd-edwards/financials/9.2/eoaga/required-fields-1.html):
//     EDUS (alpha 10), EDTN (alpha 22), EDLN (number 7) and EDBT (alpha 15)
//     identify a line, "each new transaction number indicates a new journal
//     entry"; EDSP must be 0 ("Do not leave this field blank"); EDTC must be
//     A ("No other values are valid"); EDTR must be J for journal entries.
//   - Multicurrency (https://docs.oracle.com/en/applications/jd-edwards/financials/9.2/eoamp/multicurrency-fields-required-in-the-f0911z1-table-1.html):
//     one currency per journal entry ("You can assign only one currency code
//     to a journal entry"), CRCD must exist, CRRM D or F.
//
// The page's further columns (document type, company, G/L date, account,
// ledger type, amount) the simulator requires too, as R09110Z cannot post
// without them; it posts only to the AA (actual amounts) ledger, requires
// the account in business unit.object.subsidiary form (account mode
// blank), and refuses an entry whose lines do not balance to zero, since a
// journal entry posts in balance or not at all. The balance is checked in
// the entry's currency (CRCD); in foreign mode each line's domestic amount
// is converted on its own at the F0015 rate, and how R09110Z settles a
// rounding difference on the domestic side the pages do not say, so the
// simulator does not refuse one. What the pages leave open
// (lines as an array input; ISO dates) follows the shipped orchestration.

// JournalInput is an F0911Z1 row.
type JournalInput struct {
	VNEDUS string    `json:"VNEDUS"`
	VNEDBT string    `json:"VNEDBT"`
	VNEDTN string    `json:"VNEDTN"`
	VNEDLN int64     `json:"VNEDLN"`
	VNEDSP string    `json:"VNEDSP"`
	VNDCT  string    `json:"VNDCT"`
	VNDOC  int64     `json:"VNDOC"`
	VNKCO  string    `json:"VNKCO"`
	VNDGJ  time.Time `json:"VNDGJ"`
	VNANI  string    `json:"VNANI"`
	VNLT   string    `json:"VNLT"`
	VNAA   int64     `json:"VNAA"` // domestic minor units, positive debit
	VNACR  int64     `json:"VNACR"`
	VNCRCD string    `json:"VNCRCD"`
	VNCRRM string    `json:"VNCRRM"`
	VNEXA  string    `json:"VNEXA"`
}

type journalKey struct{ EDUS, EDBT, EDTN string }

type journalEntryIn struct {
	EDUS, EDBT, EDTN, EDSP, EDTC, EDTR, DCT, KCO, DGJ, CRCD, CRRM, EXA string
	Lines                                                              []struct {
		EDLN, ANI, LT, AA, EXA string
	}
}

// accountForm is business unit.object[.subsidiary] (12.6.8).
var accountForm = regexp.MustCompile(`^[A-Za-z0-9]{1,12}\.[A-Za-z0-9]{1,6}(\.[A-Za-z0-9]{1,8})?$`)

// JournalInputs returns the F0911Z1 rows the journal entry orchestration
// wrote.
func (s *Server) JournalInputs() []JournalInput {
	return copies(s, func(d *data) []*JournalInput { return d.journal })
}

// journalEntry is the journal entry orchestration; the caller holds s.mu.
func (s *Server) journalEntry(w http.ResponseWriter, sess *session, raw json.RawMessage) {
	var in journalEntryIn
	if err := json.Unmarshal(raw, &in); err != nil {
		s.refuseReceipt(w, "inputs must be strings and Lines an array of lines: "+err.Error())
		return
	}
	out, msg := s.addJournalEntry(sess, in)
	if msg != "" {
		s.refuseReceipt(w, msg)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) addJournalEntry(sess *session, in journalEntryIn) (map[string]any, string) {
	for name, v := range map[string]string{"EDUS": in.EDUS, "EDBT": in.EDBT, "EDTN": in.EDTN, "EDSP": in.EDSP, "EDTC": in.EDTC,
		"EDTR": in.EDTR, "DCT": in.DCT, "KCO": in.KCO, "DGJ": in.DGJ, "CRCD": in.CRCD, "CRRM": in.CRRM} {
		if strings.TrimSpace(v) == "" {
			return nil, "missing required input " + name
		}
	}
	for name, f := range map[string]struct {
		v   string
		max int
	}{"EDUS": {in.EDUS, 10}, "EDBT": {in.EDBT, 15}, "EDTN": {in.EDTN, 22}, "DCT": {in.DCT, 2}, "KCO": {in.KCO, 5}, "EXA": {in.EXA, 30}} {
		if len(f.v) > f.max {
			return nil, fmt.Sprintf("%s is longer than %d characters", name, f.max)
		}
	}
	switch {
	case in.EDSP != "0":
		return nil, fmt.Sprintf("EDSP %q must be 0", in.EDSP)
	case in.EDTC != "A":
		return nil, fmt.Sprintf("EDTC %q must be A; no other values are valid", in.EDTC)
	case in.EDTR != "J":
		return nil, fmt.Sprintf("EDTR %q must be J for journal entries", in.EDTR)
	case in.EDUS != sess.user:
		return nil, fmt.Sprintf("EDUS %q is not the user running the process", in.EDUS)
	case len(in.Lines) < 2 || len(in.Lines) > 999:
		return nil, fmt.Sprintf("a journal entry needs 2 to 999 lines, got %d", len(in.Lines))
	}
	key := journalKey{in.EDUS, in.EDBT, in.EDTN}
	if prev, ok := s.journalByKey[key]; ok {
		// The shipped orchestration looks the entry up before adding it.
		out := map[string]any{}
		for k, v := range prev {
			out[k] = v
		}
		out["AlreadyPosted"] = true
		return out, ""
	}
	dom := s.companyCurrency(in.KCO)
	if dom == "" {
		return nil, fmt.Sprintf("company %s is not in F0010", in.KCO)
	}
	if _, err := money.Exponent(in.CRCD); err != nil {
		return nil, fmt.Sprintf("CRCD %q is not a currency of F0013", in.CRCD)
	}
	want := ModeDomestic
	if in.CRCD != dom {
		want = ModeForeign
	}
	if in.CRRM != want {
		return nil, fmt.Sprintf("an entry in %s in a %s company must be in currency mode %s, not %s", in.CRCD, dom, want, in.CRRM)
	}
	crr := ""
	if want == ModeForeign {
		rate, ok := s.rate(in.CRCD, dom)
		if !ok {
			return nil, fmt.Sprintf("no exchange rate %s/%s in F0015", in.CRCD, dom)
		}
		crr = rate
	}
	date, err := time.Parse(time.DateOnly, in.DGJ)
	if err != nil {
		return nil, fmt.Sprintf("DGJ %q is not a YYYY-MM-DD date", in.DGJ)
	}
	s.next.journal++
	doc := s.next.journal
	rows := make([]*JournalInput, 0, len(in.Lines))
	var balance int64
	seen := map[int64]bool{}
	for i, l := range in.Lines {
		edln, err := strconv.ParseInt(strings.TrimSpace(l.EDLN), 10, 64)
		switch {
		case err != nil || edln < 1 || edln > 9999999 || seen[edln]:
			return nil, fmt.Sprintf("line %d: EDLN %q must be a line number of up to 7 digits, unique in the entry", i+1, l.EDLN)
		case !accountForm.MatchString(l.ANI):
			return nil, fmt.Sprintf("line %d: ANI %q is not an account in business unit.object.subsidiary form", i+1, l.ANI)
		case l.LT != "AA":
			return nil, fmt.Sprintf("line %d: LT %q: the batch processor posts the AA ledger only", i+1, l.LT)
		case len(l.EXA) > 30:
			return nil, fmt.Sprintf("line %d: EXA is longer than 30 characters", i+1)
		}
		seen[edln] = true
		// AA is signed: positive a debit, negative a credit.
		aa := strings.TrimSpace(l.AA)
		neg := strings.HasPrefix(aa, "-")
		amount, err := money.ToMinor(strings.TrimPrefix(aa, "-"), in.CRCD)
		if neg {
			amount = -amount
		}
		if err != nil || amount == 0 {
			return nil, fmt.Sprintf("line %d: AA %q is not a non-zero amount in %s", i+1, l.AA, in.CRCD)
		}
		balance += amount
		r := &JournalInput{VNEDUS: in.EDUS, VNEDBT: in.EDBT, VNEDTN: in.EDTN, VNEDLN: edln, VNEDSP: "1", VNDCT: in.DCT, VNDOC: doc,
			VNKCO: in.KCO, VNDGJ: date, VNANI: l.ANI, VNLT: l.LT, VNAA: amount, VNCRCD: in.CRCD, VNCRRM: in.CRRM, VNEXA: l.EXA}
		if want == ModeForeign {
			d, err := toDomestic(amount, in.CRCD, dom, crr)
			if err != nil {
				return nil, err.Error()
			}
			r.VNAA, r.VNACR = d, amount
		}
		rows = append(rows, r)
	}
	if balance != 0 {
		s.next.journal--
		return nil, fmt.Sprintf("journal entry %s is out of balance by %d minor units of %s", in.EDTN, balance, in.CRCD)
	}
	for _, r := range rows {
		s.data.journal = append(s.data.journal, r)
		s.data.gl = append(s.data.gl, &GLEntry{GLDOC: doc, GLDCT: in.DCT, GLKCO: in.KCO, GLJELN: r.VNEDLN, GLDGJ: date,
			GLANI: r.VNANI, GLMCU: strings.SplitN(r.VNANI, ".", 2)[0], GLLT: r.VNLT, GLAA: r.VNAA, GLCRCD: in.CRCD,
			GLCRRM: in.CRRM, GLACR: r.VNACR, GLEXA: r.VNEXA})
	}
	out := map[string]any{
		"jde__status":        "SUCCESS",
		"jde__simpleMessage": fmt.Sprintf("Journal entry %s of batch %s processed by R09110Z", in.EDTN, in.EDBT),
		"BatchNumber":        in.EDBT,
		"TransactionNumber":  in.EDTN,
		"DocumentNumber":     strconv.FormatInt(doc, 10),
		"PostedAt":           s.now().UTC().Format(time.RFC3339),
	}
	s.journalByKey[key] = out
	res := map[string]any{}
	for k, v := range out {
		res[k] = v
	}
	res["AlreadyPosted"] = false
	return res, ""
}
