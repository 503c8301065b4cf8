package jde

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/ml-connector/ml-connector/platform/money"
)

// Orchestrations names the AIS orchestrations the Writer runs. Their
// definitions ship in docs/jde/ for a site to import; the names are
// configurable. ReceiptsInput is keyed by its F03B13Z1 row; the others
// take an ExternalReference. Each must write nothing when it has seen the
// key before, answering with the original result and AlreadyPosted true.
// A refusal is read from the answer's body: jde__status ERROR with
// jde__simpleMessage, a failed step's userDefinedErrorText, or AIS's
// error body with 400 or 404 (see Writer.orchestrate).
type Orchestrations struct {
	// ReceiptsInput, of the standard preset, adds an F03B13Z1
	// (Electronic Receipts Input) row matched to the invoice and runs
	// R03B551 (Update Receipts Header) over it.
	ReceiptsInput string
	// Receipt writes an F03B13Z1 electronic receipt matched to the invoice
	// (RUDOC/RUDCT/RUKCO/RUSFX) with the GL bank account, for R03B551 to
	// turn into a receipt and F0911 entries.
	Receipt string
	// Failure records a failed, charged-back or cancelled collection and
	// reverses the receipt posted for the payment, if any.
	Failure string
	// Refund records the outcome of a refund document (paid, failed,
	// cancelled).
	Refund string
	// Mandate records a customer's GoCardless mandate status.
	Mandate string
	// JournalEntry adds the lines of one journal entry to F0911Z1
	// (Journal Entry Transactions - Batch File) and runs the Journal
	// Entries Batch Processor (R09110Z) over them: a payout's fees.
	JournalEntry string
}

// DefaultOrchestrations are jdesim's names.
var DefaultOrchestrations = Orchestrations{
	ReceiptsInput: "MLC_ReceiptsInput",
	Receipt:       "MLC_PostReceipt",
	Failure:       "MLC_PaymentFailure",
	Refund:        "MLC_RefundOutcome",
	Mandate:       "MLC_MandateStatus",
	JournalEntry:  "MLC_JournalEntry",
}

// ReceiptOn says which payment outcome books the cash receipt.
type ReceiptOn string

const (
	// ReceiptOnConfirmed books it when GoCardless confirms the collection.
	ReceiptOnConfirmed ReceiptOn = "confirmed"
	// ReceiptOnPaidOut books it when the money is paid out to the creditor.
	ReceiptOnPaidOut ReceiptOn = "paid_out"
	// ReceiptOnPayout books the receipts of a payout as one batch when the
	// payout is posted (PostPayout); payment outcomes of collections book
	// none.
	ReceiptOnPayout ReceiptOn = "payout"
)

// Preset is how receipts are written into JDE.
type Preset string

const (
	// PresetStandard writes a receipt as JDE takes bank receipts in: an
	// F03B13Z1 row processed by R03B551, through the ReceiptsInput
	// orchestration. The default.
	PresetStandard Preset = "standard"
	// PresetOrchestrations writes it through ml-connector's own Receipt
	// orchestration, for sites that built it before the standard preset.
	PresetOrchestrations Preset = "orchestrations"
)

// WriterConfig is the posting part of a connection's settings.
type WriterConfig struct {
	Preset Preset
	// ReceiptsUser is the F03B13Z1 EDUS of the standard preset: the JDE
	// user running the process (the connection's AIS user, at most 10
	// characters).
	ReceiptsUser   string
	Orchestrations Orchestrations
	// GLAccounts maps a business unit (F03B11 MCU, trimmed) to the GL bank
	// account receipts are posted to.
	GLAccounts map[string]string
	// DefaultGLAccount is used for documents without a business unit.
	DefaultGLAccount string
	ReceiptOn        ReceiptOn
	// PayoutAccounts are, per company, the GL accounts of payouts.
	PayoutAccounts map[string]PayoutAccounts
}

// PayoutAccounts are one company's GL accounts for GoCardless payouts.
type PayoutAccounts struct {
	Fee    string // debited with the fees (tax included unless FeeTax)
	FeeTax string // debited with the tax in the fees; optional
	Bank   string // the GL bank account the payout reaches
}

// Writer posts GoCardless outcomes into JDE through orchestrations. Every
// posting is idempotent by its outcome id, which it passes as the
// orchestration's ExternalReference.
type Writer struct {
	c   *Client
	cfg WriterConfig
}

// NewWriter returns a writer over c.
func NewWriter(c *Client, cfg WriterConfig) *Writer {
	if cfg.Orchestrations == (Orchestrations{}) {
		cfg.Orchestrations = DefaultOrchestrations
	}
	if cfg.ReceiptOn == "" {
		cfg.ReceiptOn = ReceiptOnConfirmed
	}
	if cfg.Preset == "" {
		cfg.Preset = PresetStandard
	}
	if cfg.ReceiptsUser == "" {
		cfg.ReceiptsUser = c.cfg.Username
	}
	return &Writer{c: c, cfg: cfg}
}

// DocumentKey identifies an F03B11 document (pay item).
type DocumentKey struct {
	Company  string // KCO
	Document string // DOC
	DocType  string // DCT
	Suffix   string // SFX (pay item)
}

// String formats the key as DOC/DCT/SFX, the form used in message ids and
// refund ids (the company travels separately).
func (k DocumentKey) String() string { return k.Document + "/" + k.DocType + "/" + k.Suffix }

// ParseDocumentKey reads the DOC/DCT/SFX form back, within company.
func ParseDocumentKey(company, s string) (DocumentKey, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 {
		return DocumentKey{}, fmt.Errorf("%w: document key %q is not DOC/DCT/SFX", ErrInvalid, s)
	}
	k := DocumentKey{Company: company, Document: parts[0], DocType: parts[1], Suffix: parts[2]}
	return k, k.validate()
}

func (k DocumentKey) validate() error {
	if k.Company == "" || k.Document == "" || k.DocType == "" || k.Suffix == "" {
		return fmt.Errorf("%w: document key needs company, document number, type and pay item (got %q in %q)", ErrInvalid, k.String(), k.Company)
	}
	if !isDigits(k.Document) {
		return fmt.Errorf("%w: document number %q is not numeric", ErrInvalid, k.Document)
	}
	return nil
}

// PaymentKind is what happened to a collection.
type PaymentKind string

const (
	PaymentConfirmed   PaymentKind = "confirmed"
	PaymentPaidOut     PaymentKind = "paid_out"
	PaymentFailed      PaymentKind = "failed"
	PaymentChargedBack PaymentKind = "charged_back"
	PaymentCancelled   PaymentKind = "cancelled"
	// PaymentReinstated: the payer's bank cancelled its charge-back
	// (GoCardless chargeback_cancelled); the receipt the charge-back
	// reversed is entered again, whichever kind receipts are booked on.
	PaymentReinstated PaymentKind = "reinstated"
)

// Payment is one payment outcome to post.
type Payment struct {
	OutcomeID    string // idempotency key
	Kind         PaymentKind
	Invoice      DocumentKey
	Customer     string // AN8; read from the invoice when empty
	BusinessUnit string // MCU; read from the invoice when empty
	PaymentID    string // GoCardless PM…, kept as the receipt number
	PayoutID     string
	AmountMinor  int64
	Currency     string
	OccurredAt   time.Time // receipt / event date
	Cause        string
	ReasonCode   string
	Description  string
}

// Result describes a posting.
type Result struct {
	// Reference is JDE's reference for what was written.
	Reference string
	// AlreadyPosted is true when the outcome id had been posted before and
	// nothing was written now.
	AlreadyPosted bool
	// PostedAt is when it was written (the first time).
	PostedAt time.Time
	// NothingToPost is true when the outcome needs no JDE entry (a payout
	// when receipts are booked on confirmation, or the reverse).
	NothingToPost bool
}

type postingOutput struct {
	Reference     string   `json:"Reference"`
	AlreadyPosted flexBool `json:"AlreadyPosted"`
	PostedAt      string   `json:"PostedAt"`
	Status        string   `json:"jde__status"`
	Message       string   `json:"jde__simpleMessage"`
	EndTimestamp  string   `json:"jde__endTimestamp"`
}

// flexBool reads a boolean output as JSON true/false or, as orchestration
// outputs usually are, the strings "true"/"false".
type flexBool bool

func (b *flexBool) UnmarshalJSON(data []byte) error {
	switch strings.Trim(string(data), `"`) {
	case "true", "1", "Y":
		*b = true
	case "false", "0", "N", "", "null":
		*b = false
	default:
		return fmt.Errorf("not a boolean: %s", data)
	}
	return nil
}

func (o postingOutput) result(op string) (Result, error) {
	at, err := time.Parse(time.RFC3339, o.PostedAt)
	if err != nil || o.Reference == "" {
		return Result{}, fmt.Errorf("jde: %s: %w: orchestration answered without Reference or PostedAt", op, ErrUnavailable)
	}
	return Result{Reference: o.Reference, AlreadyPosted: bool(o.AlreadyPosted), PostedAt: at}, nil
}

// document is the part of an F03B11 row the writer checks against.
type document struct {
	customer, currency, businessUnit string
	// mode is the document's currency mode (CRRM): F when its currency is
	// not its company's, so that a receipt in it is foreign too; D
	// otherwise, and when multi-currency is off (CRRM blank).
	mode string
}

// readDocument reads one F03B11 pay item, or ErrNotFound.
func (w *Writer) readDocument(ctx context.Context, k DocumentKey) (document, error) {
	var doc document
	found := false
	err := w.c.Browse(ctx, Query{
		Table:   "F03B11",
		Columns: []string{"DOC", "DCT", "KCO", "SFX", "AN8", "CRCD", "CRRM", "MCU"},
		Conditions: []Condition{
			{Column: "DOC", Op: Equal, Value: k.Document},
			{Column: "DCT", Op: Equal, Value: k.DocType},
			{Column: "KCO", Op: Equal, Value: k.Company},
			{Column: "SFX", Op: Equal, Value: k.Suffix},
		},
		PageSize: 2,
	}, func(rows []Row) error {
		for _, r := range rows {
			found = true
			doc = document{customer: r.Text("F03B11", "AN8"), currency: r.Text("F03B11", "CRCD"), businessUnit: r.Text("F03B11", "MCU"), mode: ModeDomestic}
			if r.Text("F03B11", "CRRM") == ModeForeign {
				doc.mode = ModeForeign
			}
		}
		return nil
	})
	if err != nil {
		return document{}, err
	}
	if !found {
		return document{}, fmt.Errorf("%w: F03B11 document %s in company %s", ErrNotFound, k, k.Company)
	}
	return doc, nil
}

// Currency modes (CRRM) of JDE documents and receipts: D domestic, in
// the company's currency; F foreign, in another (Oracle, "Multicurrency
// Fields Required in the F03B13Z1 Table").
const (
	ModeDomestic = "D"
	ModeForeign  = "F"
)

// glAccount picks the GL bank account of a business unit.
func (w *Writer) glAccount(bu string) (string, error) { return w.cfg.GLAccount(bu) }

// GLAccount picks the GL bank account receipts and refunds of a business
// unit (F03B11 MCU, trimmed) are booked to, or says why there is none.
func (c WriterConfig) GLAccount(bu string) (string, error) {
	if acct, ok := c.GLAccounts[bu]; ok {
		return acct, nil
	}
	if bu == "" && c.DefaultGLAccount != "" {
		return c.DefaultGLAccount, nil
	}
	if bu == "" {
		return "", fmt.Errorf("%w: document has no business unit and the connection has no default_gl_account", ErrInvalid)
	}
	return "", fmt.Errorf("%w: business unit %q has no GL account in the connection's gl_accounts", ErrInvalid, bu)
}

// checkDocument reads the document, checks currency and customer against
// it and fills the customer and business unit when the caller had none.
func (w *Writer) checkDocument(ctx context.Context, k DocumentKey, currency string, customer, bu *string) (document, error) {
	doc, err := w.readDocument(ctx, k)
	if err != nil {
		return doc, err
	}
	if doc.currency != currency {
		return doc, fmt.Errorf("%w: document %s is in %s, the outcome in %s", ErrInvalid, k, doc.currency, currency)
	}
	if *customer == "" {
		*customer = doc.customer
	} else if *customer != doc.customer {
		return doc, fmt.Errorf("%w: document %s belongs to customer %s, not %s", ErrInvalid, k, doc.customer, *customer)
	}
	if *bu == "" {
		*bu = doc.businessUnit
	}
	return doc, nil
}

func checkOutcome(id string, amountMinor int64, currency string) (string, error) {
	if strings.TrimSpace(id) == "" {
		return "", fmt.Errorf("%w: outcome id is required", ErrInvalid)
	}
	if amountMinor <= 0 {
		return "", fmt.Errorf("%w: amount must be positive, got %d minor units", ErrInvalid, amountMinor)
	}
	amount, err := money.FromMinor(amountMinor, currency)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return amount, nil
}

func isoDate(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.DateOnly)
}

// PostPayment posts a payment outcome against its invoice: a cash receipt
// for the kind receipts are booked on (confirmed by default) and for a
// reinstated payment (its charge-back cancelled), a recorded
// failure that reverses any receipt for failed, charged-back and cancelled
// payments, and nothing for the other of confirmed / paid out.
func (w *Writer) PostPayment(ctx context.Context, p Payment) (Result, error) {
	amount, err := checkOutcome(p.OutcomeID, p.AmountMinor, p.Currency)
	if err != nil {
		return Result{}, err
	}
	if err := p.Invoice.validate(); err != nil {
		return Result{}, err
	}
	switch p.Kind {
	case PaymentConfirmed, PaymentPaidOut:
		if string(p.Kind) != string(w.cfg.ReceiptOn) {
			return Result{NothingToPost: true}, nil
		}
		return w.postReceipt(ctx, p, amount)
	case PaymentReinstated:
		return w.postReceipt(ctx, p, amount)
	case PaymentFailed, PaymentChargedBack, PaymentCancelled:
		return w.postFailure(ctx, p, amount)
	}
	return Result{}, fmt.Errorf("%w: unknown payment outcome kind %q", ErrInvalid, p.Kind)
}

func (w *Writer) postReceipt(ctx context.Context, p Payment, amount string) (Result, error) {
	doc, err := w.checkDocument(ctx, p.Invoice, p.Currency, &p.Customer, &p.BusinessUnit)
	if err != nil {
		return Result{}, err
	}
	acct, err := w.glAccount(p.BusinessUnit)
	if err != nil {
		return Result{}, err
	}
	if w.cfg.Preset == PresetStandard {
		return w.postReceiptsInput(ctx, p, doc.mode, acct, amount)
	}
	in := map[string]string{
		"ExternalReference": p.OutcomeID,
		"DocumentCompany":   p.Invoice.Company,
		"DocumentNumber":    p.Invoice.Document,
		"DocumentType":      p.Invoice.DocType,
		"PayItem":           p.Invoice.Suffix,
		"Customer":          p.Customer,
		"Amount":            amount,
		"Currency":          p.Currency,
		"CurrencyMode":      doc.mode,
		"ReceiptDate":       isoDate(p.OccurredAt),
		"GLBankAccount":     acct,
		"BusinessUnit":      p.BusinessUnit,
		"PaymentReference":  p.PaymentID,
		"Remark":            strings.TrimSpace("GoCardless " + p.PaymentID + " " + p.PayoutID),
	}
	return w.orchestrate(ctx, w.cfg.Orchestrations.Receipt, in)
}

func (w *Writer) postFailure(ctx context.Context, p Payment, amount string) (Result, error) {
	if _, err := w.checkDocument(ctx, p.Invoice, p.Currency, &p.Customer, &p.BusinessUnit); err != nil {
		return Result{}, err
	}
	in := map[string]string{
		"ExternalReference": p.OutcomeID,
		"DocumentCompany":   p.Invoice.Company,
		"DocumentNumber":    p.Invoice.Document,
		"DocumentType":      p.Invoice.DocType,
		"PayItem":           p.Invoice.Suffix,
		"Customer":          p.Customer,
		"Amount":            amount,
		"Currency":          p.Currency,
		"Event":             string(p.Kind),
		"EventDate":         isoDate(p.OccurredAt),
		"PaymentReference":  p.PaymentID,
		"Cause":             p.Cause,
		"ReasonCode":        p.ReasonCode,
		"Description":       p.Description,
	}
	return w.orchestrate(ctx, w.cfg.Orchestrations.Failure, in)
}

// RefundKind is what happened to a refund.
type RefundKind string

const (
	RefundPaid      RefundKind = "paid"
	RefundFailed    RefundKind = "failed"
	RefundCancelled RefundKind = "cancelled"
)

// Refund is one refund outcome to post against the JDE refund document.
type Refund struct {
	OutcomeID   string
	Kind        RefundKind
	Refund      DocumentKey // the refund document (e.g. DCT RF)
	Invoice     DocumentKey // the original invoice
	Customer    string
	RefundID    string // GoCardless RF…
	PaymentID   string
	AmountMinor int64
	Currency    string
	OccurredAt  time.Time
	Cause       string
	ReasonCode  string
	Description string
}

// PostRefund records a refund outcome on the refund document. A paid
// refund closes the document and books the money leaving the bank account
// of the document's business unit.
func (w *Writer) PostRefund(ctx context.Context, r Refund) (Result, error) {
	amount, err := checkOutcome(r.OutcomeID, r.AmountMinor, r.Currency)
	if err != nil {
		return Result{}, err
	}
	if err := r.Refund.validate(); err != nil {
		return Result{}, err
	}
	switch r.Kind {
	case RefundPaid, RefundFailed, RefundCancelled:
	default:
		return Result{}, fmt.Errorf("%w: unknown refund outcome kind %q", ErrInvalid, r.Kind)
	}
	var bu string
	if _, err := w.checkDocument(ctx, r.Refund, r.Currency, &r.Customer, &bu); err != nil {
		return Result{}, err
	}
	acct := ""
	if r.Kind == RefundPaid {
		if acct, err = w.glAccount(bu); err != nil {
			return Result{}, err
		}
	}
	in := map[string]string{
		"ExternalReference": r.OutcomeID,
		"DocumentCompany":   r.Refund.Company,
		"DocumentNumber":    r.Refund.Document,
		"DocumentType":      r.Refund.DocType,
		"PayItem":           r.Refund.Suffix,
		"InvoiceNumber":     r.Invoice.Document,
		"InvoiceType":       r.Invoice.DocType,
		"InvoicePayItem":    r.Invoice.Suffix,
		"Customer":          r.Customer,
		"Amount":            amount,
		"Currency":          r.Currency,
		"Status":            string(r.Kind),
		"EventDate":         isoDate(r.OccurredAt),
		"GLBankAccount":     acct,
		"GoCardlessRefund":  r.RefundID,
		"PaymentReference":  r.PaymentID,
		"Cause":             r.Cause,
		"ReasonCode":        r.ReasonCode,
		"Description":       r.Description,
		"BusinessUnit":      bu,
	}
	return w.orchestrate(ctx, w.cfg.Orchestrations.Refund, in)
}

// Mandate is a customer's mandate status to record.
type Mandate struct {
	OutcomeID   string
	Company     string // CO of the customer master row
	Customer    string // AN8
	MandateID   string
	Status      string // GoCardless status, e.g. "active", "cancelled"
	Scheme      string
	OccurredAt  time.Time
	Cause       string
	ReasonCode  string
	Description string
	// AuthorisationURL is the link where the payer authorises the mandate,
	// while they have yet to (status pending, MandateID the billing
	// request); empty otherwise, which clears the one kept before.
	AuthorisationURL string
	// AuthorisationExpiresAt is until when AuthorisationURL works.
	AuthorisationExpiresAt time.Time
}

// PostMandateStatus records a mandate status for a customer (F03012 row of
// the company), with the authorisation link while the payer has yet to
// authorise (our own MLC_MandateStatus keeps it beside the status: JD
// Edwards has no standard place for either). The orchestration keeps the
// status with the latest OccurredAt, so outcomes arriving out of order
// settle on the newest.
func (w *Writer) PostMandateStatus(ctx context.Context, m Mandate) (Result, error) {
	switch {
	case strings.TrimSpace(m.OutcomeID) == "":
		return Result{}, fmt.Errorf("%w: outcome id is required", ErrInvalid)
	case m.Company == "" || !isDigits(m.Customer) || m.MandateID == "" || m.Status == "" || m.OccurredAt.IsZero():
		return Result{}, fmt.Errorf("%w: mandate status needs company, numeric customer, mandate id, status and time", ErrInvalid)
	}
	found := false
	err := w.c.Browse(ctx, Query{
		Table:      "F03012",
		Columns:    []string{"AN8", "CO"},
		Conditions: []Condition{{Column: "AN8", Op: Equal, Value: m.Customer}, {Column: "CO", Op: Equal, Value: m.Company}},
		PageSize:   2,
	}, func(rows []Row) error {
		found = found || len(rows) > 0
		return nil
	})
	if err != nil {
		return Result{}, err
	}
	if !found {
		return Result{}, fmt.Errorf("%w: customer %s has no customer master (F03012) in company %s", ErrNotFound, m.Customer, m.Company)
	}
	in := map[string]string{
		"ExternalReference": m.OutcomeID,
		"Company":           m.Company,
		"Customer":          m.Customer,
		"MandateID":         m.MandateID,
		"Status":            m.Status,
		"Scheme":            m.Scheme,
		"EventTime":         m.OccurredAt.UTC().Format(time.RFC3339),
		"Cause":             m.Cause,
		"ReasonCode":        m.ReasonCode,
		"Description":       m.Description,
		"AuthorisationURL":  m.AuthorisationURL,
		"LinkExpiresAt":     "",
	}
	if !m.AuthorisationExpiresAt.IsZero() {
		in["LinkExpiresAt"] = m.AuthorisationExpiresAt.UTC().Format(time.RFC3339)
	}
	return w.orchestrate(ctx, w.cfg.Orchestrations.Mandate, in)
}

// orchestrate runs an orchestration and reads its outcome from the body:
// an orchestration reports a refusal in its response (jde__status ERROR
// and jde__simpleMessage, Oracle "Defining Orchestration Response
// Messages", Tools 9.2.5.4), not by an HTTP status of its own choosing.
func (w *Writer) orchestrate(ctx context.Context, name string, in map[string]string) (Result, error) {
	var out postingOutput
	if err := w.c.Orchestrate(ctx, name, in, &out); err != nil {
		return Result{}, err
	}
	if out.Status == "ERROR" {
		msg := strings.TrimSpace(out.Message)
		if msg == "" {
			msg = "the orchestration reported an error without a message"
		}
		return Result{}, fmt.Errorf("%w: jde: orchestrator %s: %s", ErrInvalid, name, msg)
	}
	return out.result("orchestrator " + name)
}

// receiptsInputKey derives the F03B13Z1 key of a payment's receipt from
// its outcome id, so a repeat names the same row: EDBT (15) groups a
// day's receipts, EDTN (22) is a digest of the outcome id, EDLN is 1.
func receiptsInputKey(outcomeID string, at time.Time) (batch, txn string) {
	sum := sha256.Sum256([]byte(outcomeID))
	return "GC" + at.UTC().Format("060102"), hex.EncodeToString(sum[:11])
}

// postReceiptsInput is the standard preset's receipt: one F03B13Z1 row
// with the fields Oracle lists as required for automatic receipts
// ("Mapping Fields for Automatic Receipts Processing") and the
// multicurrency ones: the amount in CKAM (and AG, for Known Invoice Match
// With Amount) in the invoice's currency, CRRM the invoice's mode.
func (w *Writer) postReceiptsInput(ctx context.Context, p Payment, mode, acct, amount string) (Result, error) {
	if p.OccurredAt.IsZero() {
		return Result{}, fmt.Errorf("%w: a receipt needs its date (F03B13Z1 DMTJ, and the batch EDBT)", ErrInvalid)
	}
	user := w.cfg.ReceiptsUser
	if len(user) > 10 {
		return Result{}, fmt.Errorf("%w: F03B13Z1 EDUS %q is longer than 10 characters", ErrInvalid, user)
	}
	batch, txn := receiptsInputKey(p.OutcomeID, p.OccurredAt)
	ref := p.PaymentID
	if len(ref) > 25 {
		ref = ref[:25]
	}
	in := map[string]string{
		"EDUS": user,
		"EDBT": batch,
		"EDTN": txn,
		"EDLN": "1",
		"CKNU": txn, // Oracle: the same value as EDTN
		"ICUT": "9B",
		"DMTJ": isoDate(p.OccurredAt),
		"DGJ":  isoDate(p.OccurredAt),
		"CKAM": amount,
		"AG":   amount,
		"CRCD": p.Currency,
		"CRRM": mode,
		"AN8":  p.Customer,
		"PYR":  p.Customer,
		"DOC":  p.Invoice.Document,
		"DCT":  p.Invoice.DocType,
		"KCO":  p.Invoice.Company,
		"SFX":  p.Invoice.Suffix,
		"GLBA": acct,
		"VR01": ref,
		"RMK":  strings.TrimSpace("GoCardless " + p.PaymentID + " " + p.PayoutID),
	}
	var out postingOutput
	if err := w.c.Orchestrate(ctx, w.cfg.Orchestrations.ReceiptsInput, in, &out); err != nil {
		return Result{}, err
	}
	op := "orchestrator " + w.cfg.Orchestrations.ReceiptsInput
	if out.Status == "ERROR" {
		return Result{}, fmt.Errorf("%w: jde: %s: %s", ErrInvalid, op, strings.TrimSpace(out.Message))
	}
	out.Reference = fmt.Sprintf("F03B13Z1 %s/%s/%s/1", user, batch, txn)
	if _, err := time.Parse(time.RFC3339, out.PostedAt); err != nil {
		// A site's orchestration need not say when; the answer is then.
		out.PostedAt = w.c.cfg.Now().UTC().Format(time.RFC3339)
	}
	return out.result(op)
}
