package jdesim

import (
	"fmt"
	"time"
)

// kind is how a column is stored and rendered.
type kind int

const (
	kNum    kind = iota // integer (DOC, AN8, UPMT)
	kStr                // character, padded by JDE
	kDate               // Julian CYYDDD
	kAmount             // integer with the currency's implied decimals
	kRate               // exchange rate, a decimal kept as its text
)

// column describes one column of a table.
type column struct {
	name  string
	kind  kind
	title string
}

// table is the schema of one JDE table the simulator serves.
type table struct {
	name     string
	title    string
	columns  []column
	currency string // column holding the currency of kAmount columns
	// domestic lists the kAmount columns held in the company's own
	// currency (F0010) rather than in the currency column, and company
	// names the column holding the company (see currency.go).
	domestic map[string]bool
	company  string
}

func (t *table) column(name string) (column, bool) {
	for _, c := range t.columns {
		if c.name == name {
			return c, true
		}
	}
	return column{}, false
}

var schemas = map[string]*table{
	"F03B11": {name: "F03B11", title: "Customer Ledger", currency: "CRCD", domestic: map[string]bool{"AG": true, "AAP": true}, company: "KCO", columns: []column{
		{"DOC", kNum, "Document Number"}, {"DCT", kStr, "Document Type"}, {"KCO", kStr, "Document Company"},
		{"SFX", kStr, "Pay Item"}, {"AN8", kNum, "Address Number"}, {"CO", kStr, "Company"},
		{"AG", kAmount, "Gross Amount"}, {"AAP", kAmount, "Open Amount"}, {"CRCD", kStr, "Currency Code"},
		{"CRRM", kStr, "Currency Mode"}, {"CRR", kRate, "Exchange Rate"},
		{"ACR", kAmount, "Amount - Currency"}, {"FAP", kAmount, "Amount - Foreign Open"},
		{"DDJ", kDate, "Due Date"}, {"DIVJ", kDate, "Invoice Date"}, {"DGJ", kDate, "G/L Date"},
		{"MCU", kStr, "Business Unit"}, {"PTC", kStr, "Payment Terms"}, {"PST", kStr, "Pay Status"},
		{"RMK", kStr, "Remark"}, {"VINV", kStr, "Customer Invoice Number"},
		{"ODOC", kNum, "Original Document"}, {"ODCT", kStr, "Original Document Type"},
		{"OKCO", kStr, "Original Document Company"}, {"OSFX", kStr, "Original Pay Item"},
		{"UPMJ", kDate, "Date Updated"}, {"UPMT", kNum, "Time Last Updated"},
	}},
	"F03012": {name: "F03012", title: "Customer Master by Line of Business", columns: []column{
		{"AN8", kNum, "Address Number"}, {"CO", kStr, "Company"}, {"TRAR", kStr, "Payment Terms - A/R"},
		{"RYIN", kStr, "Payment Instrument"}, {"CRCA", kStr, "Currency Code - A/B Amounts"},
		{"UPMJ", kDate, "Date Updated"}, {"UPMT", kNum, "Time Last Updated"},
	}},
	"F0101": {name: "F0101", title: "Address Book Master", columns: []column{
		{"AN8", kNum, "Address Number"}, {"ALPH", kStr, "Alpha Name"}, {"AT1", kStr, "Search Type"},
		{"TAX", kStr, "Tax ID"}, {"TAXC", kStr, "Person/Corporation Code"}, {"LNGP", kStr, "Language"},
		{"UPMJ", kDate, "Date Updated"}, {"UPMT", kNum, "Time Last Updated"},
	}},
	"F01151": {name: "F01151", title: "Electronic Address", columns: []column{
		{"AN8", kNum, "Address Number"}, {"IDLN", kNum, "Who's Who Line"}, {"RCK7", kNum, "Line Number"},
		{"ETP", kStr, "Electronic Address Type"}, {"EMAL", kStr, "Electronic Address"},
		{"UPMJ", kDate, "Date Updated"}, {"UPMT", kNum, "Time Last Updated"},
	}},
	"F0116": {name: "F0116", title: "Address by Date", columns: []column{
		{"AN8", kNum, "Address Number"}, {"EFTB", kDate, "Beginning Effective Date"},
		{"ADD1", kStr, "Address Line 1"}, {"ADD2", kStr, "Address Line 2"}, {"ADD3", kStr, "Address Line 3"},
		{"ADD4", kStr, "Address Line 4"}, {"ADDZ", kStr, "Postal Code"}, {"CTY1", kStr, "City"},
		{"ADDS", kStr, "State"}, {"CTR", kStr, "Country"},
		{"UPMJ", kDate, "Date Updated"}, {"UPMT", kNum, "Time Last Updated"},
	}},
	"F0030": {name: "F0030", title: "Bank Transit Master", columns: []column{
		{"AN8", kNum, "Address Number"}, {"BKTP", kStr, "Record Type"}, {"TNST", kStr, "Bank Transit Number"},
		{"CBNK", kStr, "Customer Bank Account Number"}, {"IBAN", kStr, "IBAN"}, {"SWFT", kStr, "SWIFT Code"},
		{"CTR", kStr, "Country"}, {"BKAT", kStr, "Bank Account Type"},
		{"UPMJ", kDate, "Date Updated"}, {"UPMT", kNum, "Time Last Updated"},
	}},
	"F03B13Z1": {name: "F03B13Z1", title: "Electronic Receipts Input", currency: "RUCRCD", columns: []column{
		{"RUEDUS", kStr, "EDI - User ID"}, {"RUEDBT", kStr, "EDI - Batch Number"},
		{"RUEDTN", kStr, "EDI - Transaction Number"}, {"RUEDLN", kNum, "EDI - Line Number"},
		{"RUCKAM", kAmount, "Receipt Amount"}, {"RUDOC", kNum, "Document Number"}, {"RUDCT", kStr, "Document Type"},
		{"RUKCO", kStr, "Document Company"}, {"RUSFX", kStr, "Pay Item"}, {"RUCRCD", kStr, "Currency Code"},
		{"RUCRRM", kStr, "Currency Mode"}, {"RUCRR", kRate, "Exchange Rate"},
		{"RUAN8", kNum, "Address Number"}, {"RUDMTJ", kDate, "Receipt Date"}, {"RUGLBA", kStr, "G/L Bank Account"},
		{"RUCKNU", kStr, "Receipt Number"}, {"RUMCU", kStr, "Business Unit"}, {"RUVR01", kStr, "Reference"},
		{"RUEDSP", kStr, "EDI - Successfully Processed"}, {"RURMK", kStr, "Remark"},
	}},
	"F0010": {name: "F0010", title: "Company Constants", columns: []column{
		{"CO", kStr, "Company"}, {"NAME", kStr, "Name"}, {"CRCD", kStr, "Currency Code"},
	}},
	"F0911": {name: "F0911", title: "Account Ledger", currency: "GLCRCD", domestic: map[string]bool{"GLAA": true}, company: "GLKCO", columns: []column{
		{"GLDOC", kNum, "Document Number"}, {"GLDCT", kStr, "Document Type"}, {"GLKCO", kStr, "Document Company"},
		{"GLJELN", kNum, "Journal Entry Line"}, {"GLDGJ", kDate, "G/L Date"}, {"GLANI", kStr, "Account Number"},
		{"GLMCU", kStr, "Business Unit"}, {"GLLT", kStr, "Ledger Type"}, {"GLAA", kAmount, "Amount"},
		{"GLCRCD", kStr, "Currency Code"}, {"GLCRRM", kStr, "Currency Mode"}, {"GLACR", kAmount, "Amount - Currency"},
		{"GLAN8", kNum, "Address Number"}, {"GLEXA", kStr, "Explanation"},
		{"GLVINV", kStr, "Invoice Number"},
	}},
	// Site-specific tables (F55…) written by ml-connector's orchestrations.
	"F5503B01": {name: "F5503B01", title: "GoCardless Payment Events", currency: "CRCD", columns: []column{
		{"UKID", kNum, "Unique Key"}, {"EXTREF", kStr, "External Reference"}, {"DOC", kNum, "Document Number"},
		{"DCT", kStr, "Document Type"}, {"KCO", kStr, "Document Company"}, {"SFX", kStr, "Pay Item"},
		{"AN8", kNum, "Address Number"}, {"EVNT", kStr, "Event"}, {"CAUSE", kStr, "Cause"},
		{"RSCD", kStr, "Reason Code"}, {"DSC1", kStr, "Description"}, {"PYID", kStr, "Payment Reference"},
		{"AMT", kAmount, "Amount"}, {"CRCD", kStr, "Currency Code"}, {"EVDJ", kDate, "Event Date"},
		{"RVRS", kStr, "Receipt Reversed"},
	}},
	"F5503B02": {name: "F5503B02", title: "GoCardless Mandate Status", columns: []column{
		{"AN8", kNum, "Address Number"}, {"CO", kStr, "Company"}, {"MDID", kStr, "Mandate ID"},
		{"MDST", kStr, "Mandate Status"}, {"SCHM", kStr, "Scheme"}, {"CAUSE", kStr, "Cause"},
		{"RSCD", kStr, "Reason Code"}, {"DSC1", kStr, "Description"}, {"EVTS", kStr, "Event Time"},
		{"EXTREF", kStr, "External Reference"}, {"AURL", kStr, "Authorisation Link"}, {"AUEX", kStr, "Link Expires At"},
	}},
	"F5503B03": {name: "F5503B03", title: "GoCardless Refund Outcomes", currency: "CRCD", columns: []column{
		{"UKID", kNum, "Unique Key"}, {"EXTREF", kStr, "External Reference"}, {"DOC", kNum, "Document Number"},
		{"DCT", kStr, "Document Type"}, {"KCO", kStr, "Document Company"}, {"SFX", kStr, "Pay Item"},
		{"AN8", kNum, "Address Number"}, {"RFST", kStr, "Refund Status"}, {"GCRF", kStr, "GoCardless Refund"},
		{"PYID", kStr, "Payment Reference"}, {"AMT", kAmount, "Amount"}, {"CRCD", kStr, "Currency Code"},
		{"CAUSE", kStr, "Cause"}, {"RSCD", kStr, "Reason Code"}, {"EVDJ", kDate, "Event Date"},
	}},
}

// Stamp is JDE's "updated" audit stamp: UPMJ (Julian date) and UPMT
// (HHMMSS). The simulator sets it whenever a row is added or changed.
type Stamp struct {
	UPMJ int64 `json:"UPMJ"`
	UPMT int64 `json:"UPMT"`
}

func stampOf(t time.Time) Stamp {
	return Stamp{UPMJ: julian(t), UPMT: int64(t.Hour()*10000 + t.Minute()*100 + t.Second())}
}

// julian returns t's date as CYYDDD. The simulator keeps its own
// conversion rather than sharing the client's, so a bug in one is caught
// by the other.
func julian(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return int64((t.Year()-1900)/100*100000 + t.Year()%100*1000 + t.YearDay())
}

// Date makes a date value for the Date columns of the simulator's rows.
func Date(year int, month time.Month, day int) time.Time {
	return time.Date(year, month, day, 0, 0, 0, 0, time.UTC)
}

// Invoice is an F03B11 row: an AR document (invoice RI, credit memo RM,
// refund RF, unapplied receipt RU, ...) pay item. Amounts are stored as
// JDE stores them: integers with the currency's implied decimals (12345
// USD is 123.45).
type Invoice struct {
	DOC int64  `json:"DOC"`
	DCT string `json:"DCT"`
	KCO string `json:"KCO"`
	SFX string `json:"SFX"`
	AN8 int64  `json:"AN8"`
	CO  string `json:"CO"`
	// AG and AAP are in the company's currency; with CRRM F, ACR and FAP
	// are the same amounts in CRCD (currency.go).
	AG   int64  `json:"AG"`
	AAP  int64  `json:"AAP"`
	CRCD string `json:"CRCD"`
	CRRM string `json:"CRRM"`
	CRR  string `json:"CRR"`
	ACR  int64  `json:"ACR"`
	FAP  int64  `json:"FAP"`
	// Dates; the zero time is JDE's blank date.
	DDJ  time.Time `json:"DDJ"`
	DIVJ time.Time `json:"DIVJ"`
	DGJ  time.Time `json:"DGJ"`
	MCU  string    `json:"MCU"`
	PTC  string    `json:"PTC"`
	PST  string    `json:"PST"` // pay status: A open, P paid
	RMK  string    `json:"RMK"`
	VINV string    `json:"VINV"`
	// Original document a credit memo or refund is matched to.
	ODOC int64  `json:"ODOC"`
	ODCT string `json:"ODCT"`
	OKCO string `json:"OKCO"`
	OSFX string `json:"OSFX"`
	Stamp
}

// Key returns the document key DOC/DCT/KCO/SFX.
func (i Invoice) Key() DocKey { return DocKey{DOC: i.DOC, DCT: i.DCT, KCO: i.KCO, SFX: i.SFX} }

// DocKey identifies an F03B11 pay item.
type DocKey struct {
	DOC int64  `json:"DOC"`
	DCT string `json:"DCT"`
	KCO string `json:"KCO"`
	SFX string `json:"SFX"`
}

func (k DocKey) String() string { return fmt.Sprintf("%d/%s/%s/%s", k.DOC, k.DCT, k.KCO, k.SFX) }

// CustomerMaster is an F03012 row: a customer's AR settings in one
// company.
type CustomerMaster struct {
	AN8  int64  `json:"AN8"`
	CO   string `json:"CO"`
	TRAR string `json:"TRAR"` // payment terms
	RYIN string `json:"RYIN"` // payment instrument
	CRCA string `json:"CRCA"` // currency
	Stamp
}

// AddressBook is an F0101 row.
type AddressBook struct {
	AN8  int64  `json:"AN8"`
	ALPH string `json:"ALPH"` // alpha name
	AT1  string `json:"AT1"`  // search type: C customer, V supplier, E employee
	TAX  string `json:"TAX"`
	TAXC string `json:"TAXC"` // P person, C corporation
	LNGP string `json:"LNGP"` // language preference
	Stamp
}

// Email is an F01151 row (electronic address).
type Email struct {
	AN8  int64  `json:"AN8"`
	IDLN int64  `json:"IDLN"` // who's who line, 0 = the entity itself
	RCK7 int64  `json:"RCK7"`
	ETP  string `json:"ETP"` // E e-mail, I internet
	EMAL string `json:"EMAL"`
	Stamp
}

// Address is an F0116 row (address by effective date).
type Address struct {
	AN8  int64     `json:"AN8"`
	EFTB time.Time `json:"EFTB"`
	ADD1 string    `json:"ADD1"`
	ADD2 string    `json:"ADD2"`
	ADD3 string    `json:"ADD3"`
	ADD4 string    `json:"ADD4"`
	ADDZ string    `json:"ADDZ"`
	CTY1 string    `json:"CTY1"`
	ADDS string    `json:"ADDS"`
	CTR  string    `json:"CTR"`
	Stamp
}

// BankAccount is an F0030 row: a bank account of an address number.
type BankAccount struct {
	AN8  int64  `json:"AN8"`
	BKTP string `json:"BKTP"` // record type, C for a customer account
	TNST string `json:"TNST"` // transit / routing / sort code
	CBNK string `json:"CBNK"` // account number
	IBAN string `json:"IBAN"`
	SWFT string `json:"SWFT"`
	CTR  string `json:"CTR"`
	BKAT string `json:"BKAT"` // C checking, S savings
	Stamp
}

// ReceiptInput is an F03B13Z1 row written by the receipt orchestration.
// RUCKAM is negative on the row that reverses a receipt.
type ReceiptInput struct {
	RUEDUS string    `json:"RUEDUS"`
	RUEDBT string    `json:"RUEDBT"`
	RUEDTN string    `json:"RUEDTN"`
	RUEDLN int64     `json:"RUEDLN"`
	RUCKAM int64     `json:"RUCKAM"`
	RUDOC  int64     `json:"RUDOC"`
	RUDCT  string    `json:"RUDCT"`
	RUKCO  string    `json:"RUKCO"`
	RUSFX  string    `json:"RUSFX"`
	RUCRCD string    `json:"RUCRCD"`
	RUCRRM string    `json:"RUCRRM"`
	RUCRR  string    `json:"RUCRR"`
	RUAN8  int64     `json:"RUAN8"`
	RUDMTJ time.Time `json:"RUDMTJ"`
	RUGLBA string    `json:"RUGLBA"`
	RUCKNU string    `json:"RUCKNU"`
	RUMCU  string    `json:"RUMCU"`
	RUVR01 string    `json:"RUVR01"` // the posting's external reference
	RUEDSP string    `json:"RUEDSP"`
	RURMK  string    `json:"RURMK"`
}

// GLEntry is an F0911 row. GLAA is positive for a debit, in the
// company's currency; in foreign mode GLACR is the amount in GLCRCD.
type GLEntry struct {
	GLDOC  int64     `json:"GLDOC"`
	GLDCT  string    `json:"GLDCT"`
	GLKCO  string    `json:"GLKCO"`
	GLJELN int64     `json:"GLJELN"`
	GLDGJ  time.Time `json:"GLDGJ"`
	GLANI  string    `json:"GLANI"`
	GLMCU  string    `json:"GLMCU"`
	GLLT   string    `json:"GLLT"`
	GLAA   int64     `json:"GLAA"`
	GLCRCD string    `json:"GLCRCD"`
	GLCRRM string    `json:"GLCRRM"`
	GLACR  int64     `json:"GLACR"`
	GLAN8  int64     `json:"GLAN8"`
	GLEXA  string    `json:"GLEXA"`
	GLVINV string    `json:"GLVINV"`
}

// PaymentEvent is an F5503B01 row: a failed, charged-back or cancelled
// collection recorded for AR staff.
type PaymentEvent struct {
	UKID   int64     `json:"UKID"`
	EXTREF string    `json:"EXTREF"`
	DOC    int64     `json:"DOC"`
	DCT    string    `json:"DCT"`
	KCO    string    `json:"KCO"`
	SFX    string    `json:"SFX"`
	AN8    int64     `json:"AN8"`
	EVNT   string    `json:"EVNT"`
	CAUSE  string    `json:"CAUSE"`
	RSCD   string    `json:"RSCD"`
	DSC1   string    `json:"DSC1"`
	PYID   string    `json:"PYID"`
	AMT    int64     `json:"AMT"`
	CRCD   string    `json:"CRCD"`
	EVDJ   time.Time `json:"EVDJ"`
	RVRS   string    `json:"RVRS"` // Y when a receipt was reversed
}

// MandateStatus is an F5503B02 row: the latest mandate status of a
// customer in a company.
type MandateStatus struct {
	AN8    int64  `json:"AN8"`
	CO     string `json:"CO"`
	MDID   string `json:"MDID"`
	MDST   string `json:"MDST"`
	SCHM   string `json:"SCHM"`
	CAUSE  string `json:"CAUSE"`
	RSCD   string `json:"RSCD"`
	DSC1   string `json:"DSC1"`
	EVTS   string `json:"EVTS"` // RFC 3339 time of the GoCardless event
	EXTREF string `json:"EXTREF"`
	// AURL is the payer's authorisation link while the mandate awaits
	// authorisation, AUEX (RFC 3339) until when it works; a site column
	// of our own table, like the rest.
	AURL string `json:"AURL"`
	AUEX string `json:"AUEX"`
}

// RefundOutcome is an F5503B03 row: what happened to a refund document.
type RefundOutcome struct {
	UKID   int64     `json:"UKID"`
	EXTREF string    `json:"EXTREF"`
	DOC    int64     `json:"DOC"`
	DCT    string    `json:"DCT"`
	KCO    string    `json:"KCO"`
	SFX    string    `json:"SFX"`
	AN8    int64     `json:"AN8"`
	RFST   string    `json:"RFST"`
	GCRF   string    `json:"GCRF"`
	PYID   string    `json:"PYID"`
	AMT    int64     `json:"AMT"`
	CRCD   string    `json:"CRCD"`
	CAUSE  string    `json:"CAUSE"`
	RSCD   string    `json:"RSCD"`
	EVDJ   time.Time `json:"EVDJ"`
}
