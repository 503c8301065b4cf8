package ifscloud

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

// The camt054 write-back preset. IFS loads bank files into mixed payments
// through External Files: file type ExtMixedPayment with the installed
// template MXP_CAMT, "used to facilitate the bank to customer debit/credit
// notification (camt.054) message in IFS Cloud" (docs.ifs.com techdocs
// "External Interface for Mixed Payment on File"); the loaded payments are
// matched to invoices by the identifiers set up in External Payment
// Parameters (ifsclouddocs MixedPayment/ProcessExtMixedPaymentOnFile), and
// a file may carry "return debit notes for which the customer payment
// transaction have been already acknowledged earlier" (same page).
//
// So each outcome becomes one camt.054.001.02 notification with one entry:
// a collected payment a credit (CRDT), a failure or charge-back after it a
// reversal (DBIT, RvslInd), a paid refund a debit. The remittance carries
// the invoice number, the entry's end-to-end id the GoCardless id. The
// file is written to camt054_dir, which the site's IFS picks up (an IFS
// Connect file reader, or an operator loading it in the External File
// Assistant). Which XML elements MXP_CAMT reads is not published; the
// choice here follows the ISO 20022 camt.054 message definition and is the
// site's to check against its template.
//
// Idempotency: a file's name and its GrpHdr/MsgId derive from the company,
// the GoCardless id and the entry kind, never from a clock, so a repeat
// writes the same file again and IFS's external file identity control
// (ifsclouddocs ProcessExternalInputFile, "Handle External File Identity
// Control") can refuse a second load. A record of every file written is
// kept under camt054_dir/.sent, so confirmed-then-paid-out books once and a
// failure reverses only what was booked.

// Outbox receives the camt.054 files.
type Outbox interface {
	// Put stores data under name unless a file of that name was put
	// before; it reports whether it was new.
	Put(ctx context.Context, name string, data []byte) (bool, error)
	// Get returns the file put under name, and whether there is one.
	Get(ctx context.Context, name string) ([]byte, bool, error)
}

// DirOutbox is an Outbox on a directory (a volume the site's IFS reads).
type DirOutbox struct{ Dir string }

const sentDir = ".sent"

// Put writes the file for IFS, then records it as sent. A crash between
// the two writes it again on the next attempt, under the same name and
// MsgId.
func (d DirOutbox) Put(_ context.Context, name string, data []byte) (bool, error) {
	if _, ok, err := d.Get(context.Background(), name); err != nil || ok {
		return false, err
	}
	if err := os.MkdirAll(filepath.Join(d.Dir, sentDir), 0o750); err != nil {
		return false, fmt.Errorf("camt054 outbox: %w: %w", ErrUnavailable, err)
	}
	for _, path := range []string{filepath.Join(d.Dir, name), filepath.Join(d.Dir, sentDir, name)} {
		if err := writeAtomic(path, data); err != nil {
			return false, fmt.Errorf("camt054 outbox: %w: %w", ErrUnavailable, err)
		}
	}
	return true, nil
}

// Get reads the record of a file sent.
func (d DirOutbox) Get(_ context.Context, name string) ([]byte, bool, error) {
	data, err := os.ReadFile(filepath.Join(d.Dir, sentDir, name))
	switch {
	case err == nil:
		return data, true, nil
	case errors.Is(err, fs.ErrNotExist):
		return nil, false, nil
	}
	return nil, false, fmt.Errorf("camt054 outbox: %w: %w", ErrUnavailable, err)
}

// writeAtomic writes through a temporary file and a rename, so IFS never
// reads half a file.
func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// WithOutbox returns a Writer that puts camt.054 files into o instead of
// the connection's camt054_dir.
func (w *Writer) WithOutbox(o Outbox) *Writer { return &Writer{c: w.c, files: o, locks: w.locks} }

func (w *Writer) outbox() (Outbox, error) {
	if w.files != nil {
		return w.files, nil
	}
	if w.c.s.Camt054.Dir == "" {
		return nil, fmt.Errorf("%w: writeback camt054 needs camt054_dir", ErrInvalid)
	}
	return DirOutbox{Dir: w.c.s.Camt054.Dir}, nil
}

// Entry kinds of a file name.
const (
	camtCredit   = "CRDT" // a collected payment
	camtReversal = "RVSL" // its failure or charge-back after collection
	camtRepay    = "DBIT" // a paid refund
	camtRepayRev = "DRVS" // a paid refund that came back
)

var fileSafe = regexp.MustCompile(`[^A-Za-z0-9_-]`)

func camtName(company, reference, kind string) string {
	return "mlc-" + fileSafe.ReplaceAllString(company, "_") + "-" + fileSafe.ReplaceAllString(reference, "_") + "-" + kind + ".xml"
}

type camtEntry struct {
	company, reference, kind string
	amount, currency, date   string
	// credit is the entry's own indicator (CRDT, else DBIT); reversal
	// marks it as undoing an earlier entry of the opposite indicator
	// (ISO 20022 camt.054 Entry/ReversalIndicator); payer says the
	// customer paid (a debtor) rather than was paid (a creditor).
	credit, reversal, payer bool
	family, subFamily       string // ISO bank transaction code
	invoiceNo, customer     string
	reason                  string
}

func (w *Writer) camtPayment(ctx context.Context, o PaymentOutcome) (Posting, error) {
	box, err := w.outbox()
	if err != nil {
		return Posting{}, err
	}
	if o.Status == PaymentReinstated {
		// Entries are files named by payment and kind, written once: the
		// credit of this payment exists already, and a second one under
		// the same name would be taken for it. Refused, so that AR books
		// the reinstatement by hand rather than nobody at all.
		return Posting{}, fmt.Errorf("%w: the camt054 preset keeps one credit entry per payment, so the reinstated payment %s (charge-back cancelled) must be booked by hand", ErrInvalid, o.PaymentID)
	}
	if o.Status != PaymentPaid {
		credit, booked, err := box.Get(ctx, camtName(o.Company, o.PaymentID, camtCredit))
		if err != nil || !booked || o.PaymentID == "" {
			return Posting{NothingToPost: err == nil}, err
		}
		inv, err := w.invoice(ctx, o.Company, o.InvoiceID)
		if err != nil {
			return Posting{}, err
		}
		// The reversal takes back exactly what was booked.
		amount, err := entryAmount(credit)
		if err != nil {
			return Posting{}, err
		}
		reason := o.ReasonCode
		if reason == "" {
			reason = o.Cause
		}
		// A return of a collected direct debit: ISO bank transaction code
		// PMNT / IDDT (issued direct debits) / UPDD (reversal due to return).
		return w.putCamt(ctx, box, camtEntry{company: o.Company, reference: o.PaymentID, kind: camtReversal,
			amount: amount, currency: inv.currency, date: o.Date, reversal: true, payer: true,
			family: "IDDT", subFamily: "UPDD", invoiceNo: inv.number, customer: inv.customer, reason: reason})
	}
	inv, err := w.invoice(ctx, o.Company, o.InvoiceID)
	if err != nil {
		return Posting{}, err
	}
	if inv.currency != o.Currency {
		return Posting{}, fmt.Errorf("%w: payment in %s of an invoice in %s", ErrInvalid, o.Currency, inv.currency)
	}
	// A collected direct debit: PMNT / IDDT / ESDD.
	return w.putCamt(ctx, box, camtEntry{company: o.Company, reference: o.PaymentID, kind: camtCredit,
		amount: o.Amount, currency: o.Currency, date: o.Date, credit: true, payer: true,
		family: "IDDT", subFamily: "ESDD", invoiceNo: inv.number, customer: inv.customer})
}

func (w *Writer) camtRefund(ctx context.Context, o RefundOutcome) (Posting, error) {
	box, err := w.outbox()
	if err != nil {
		return Posting{}, err
	}
	inv, err := w.invoice(ctx, o.Company, o.InvoiceID)
	if err != nil {
		return Posting{}, err
	}
	number := inv.number
	if o.RefundDoc != "" {
		number = o.RefundDoc
	}
	if o.Status != RefundPaid {
		_, booked, err := box.Get(ctx, camtName(o.Company, o.RefundID, camtRepay))
		if err != nil || !booked {
			return Posting{NothingToPost: err == nil}, err
		}
		return w.putCamt(ctx, box, camtEntry{company: o.Company, reference: o.RefundID, kind: camtRepayRev,
			amount: o.Amount, currency: o.Currency, date: o.Date, credit: true, reversal: true,
			family: "ICDT", subFamily: "RRTN", invoiceNo: number, customer: inv.customer, reason: o.Cause})
	}
	// A refund paid to the payer: an issued credit transfer, PMNT / ICDT / ESCT.
	return w.putCamt(ctx, box, camtEntry{company: o.Company, reference: o.RefundID, kind: camtRepay,
		amount: o.Amount, currency: o.Currency, date: o.Date, credit: false,
		family: "ICDT", subFamily: "ESCT", invoiceNo: number, customer: inv.customer})
}

func entryAmount(data []byte) (string, error) {
	var doc camtDocument
	if err := xml.Unmarshal(data, &doc); err != nil || len(doc.Notification.Entries) != 1 {
		return "", fmt.Errorf("%w: a sent camt.054 file cannot be read back: %v", ErrInvalid, err)
	}
	return doc.Notification.Entries[0].Amount.Value, nil
}

func (w *Writer) putCamt(ctx context.Context, box Outbox, e camtEntry) (Posting, error) {
	name := camtName(e.company, e.reference, e.kind)
	data, err := w.camtFile(e)
	if err != nil {
		return Posting{}, err
	}
	fresh, err := box.Put(ctx, name, data)
	if err != nil {
		return Posting{}, err
	}
	return Posting{Reference: name, AlreadyPosted: !fresh, PostedAt: w.c.now().UTC()}, nil
}

// The camt.054.001.02 subset written (urn:iso:std:iso:20022:tech:xsd:camt.054.001.02).
type camtDocument struct {
	XMLName      xml.Name         `xml:"urn:iso:std:iso:20022:tech:xsd:camt.054.001.02 Document"`
	MsgID        string           `xml:"BkToCstmrDbtCdtNtfctn>GrpHdr>MsgId"`
	Created      string           `xml:"BkToCstmrDbtCdtNtfctn>GrpHdr>CreDtTm"`
	Notification camtNotification `xml:"BkToCstmrDbtCdtNtfctn>Ntfctn"`
}

type camtNotification struct {
	ID      string      `xml:"Id"`
	Created string      `xml:"CreDtTm"`
	Account camtAccount `xml:"Acct"`
	Entries []camtNtry  `xml:"Ntry"`
}

type camtAccount struct {
	IBAN     string     `xml:"Id>IBAN,omitempty"`
	Other    *camtOther `xml:"Id>Othr,omitempty"`
	Currency string     `xml:"Ccy"`
}

type camtOther struct {
	ID string `xml:"Id"`
}

type camtParty struct {
	ID string `xml:"Id>OrgId>Othr>Id"`
}

type camtReturn struct {
	Reason string `xml:"Rsn>Cd"`
}

type camtAmount struct {
	Currency string `xml:"Ccy,attr"`
	Value    string `xml:",chardata"`
}

type camtNtry struct {
	Amount      camtAmount `xml:"Amt"`
	CdtDbt      string     `xml:"CdtDbtInd"`
	Reversal    bool       `xml:"RvslInd,omitempty"`
	Status      string     `xml:"Sts"`
	BookingDate string     `xml:"BookgDt>Dt"`
	ValueDate   string     `xml:"ValDt>Dt"`
	ServicerRef string     `xml:"AcctSvcrRef"`
	Domain      string     `xml:"BkTxCd>Domn>Cd"`
	Family      string     `xml:"BkTxCd>Domn>Fmly>Cd"`
	SubFamily   string     `xml:"BkTxCd>Domn>Fmly>SubFmlyCd"`
	Tx          camtTx     `xml:"NtryDtls>TxDtls"`
	// AddtlNtryInf (max 500) carries, on a payout's fee entry, the GL
	// account the site's message code rule should post it to.
	Info string `xml:"AddtlNtryInf,omitempty"`
}

type camtTx struct {
	EndToEndID string      `xml:"Refs>EndToEndId"`
	Amount     camtAmount  `xml:"AmtDtls>TxAmt>Amt"`
	Debtor     *camtParty  `xml:"RltdPties>Dbtr,omitempty"`
	Creditor   *camtParty  `xml:"RltdPties>Cdtr,omitempty"`
	Ustrd      string      `xml:"RmtInf>Ustrd"`
	Document   string      `xml:"RmtInf>Strd>RfrdDocInf>Nb"`
	Return     *camtReturn `xml:"RtrInf,omitempty"`
}

func (w *Writer) camtFile(e camtEntry) ([]byte, error) {
	cs := w.c.s.Camt054
	indicator := "DBIT"
	if e.credit {
		indicator = "CRDT"
	}
	id := e.company + "-" + e.reference + "-" + e.kind
	// Deterministic: the booking date, never the clock, so a repeat is
	// byte for byte the same file.
	stamp := e.date + "T00:00:00Z"
	if _, err := time.Parse(time.DateOnly, e.date); err != nil {
		return nil, fmt.Errorf("%w: date %q", ErrInvalid, e.date)
	}
	tx := camtTx{EndToEndID: e.reference, Amount: camtAmount{Currency: e.currency, Value: e.amount},
		Ustrd: e.invoiceNo, Document: e.invoiceNo}
	if e.reason != "" {
		tx.Return = &camtReturn{Reason: e.reason}
	}
	if e.payer {
		tx.Debtor = &camtParty{ID: e.customer}
	} else {
		tx.Creditor = &camtParty{ID: e.customer}
	}
	account := camtAccount{IBAN: cs.AccountIBAN, Currency: e.currency}
	if cs.AccountIBAN == "" {
		account.Other = &camtOther{ID: cs.AccountID}
	}
	doc := camtDocument{MsgID: id, Created: stamp, Notification: camtNotification{
		ID: id, Created: stamp, Account: account,
		Entries: []camtNtry{{Amount: camtAmount{Currency: e.currency, Value: e.amount}, CdtDbt: indicator, Reversal: e.reversal,
			Status: "BOOK", BookingDate: e.date, ValueDate: e.date, ServicerRef: id,
			Domain: "PMNT", Family: e.family, SubFamily: e.subFamily, Tx: tx}},
	}}
	var b bytes.Buffer
	b.WriteString(xml.Header)
	enc := xml.NewEncoder(&b)
	enc.Indent("", " ")
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("%w: encode camt.054: %w", ErrInvalid, err)
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}
