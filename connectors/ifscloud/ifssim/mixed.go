package ifssim

import (
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Mixed Payment: how standard IFS Cloud records a payment received from a
// customer. What the simulator enforces, and where it comes from:
//
//   - A mixed payment is created for a payment institute and cash account,
//     in state Not Approved; transactions can be added only then
//     (docs.ifs.com ifsclouddocs MixedPayment/ActivityEnterCashAccInfoMixedPayment:
//     "a payment institute and a cash account should exist"; "a mixed payment
//     of the Not Approved status is created ... it will be possible to add
//     transactions to it").
//   - Amounts arrive as lump sums; a customer payment transaction matches a
//     lump sum against the customer's invoices, and what is not matched to an
//     invoice is a payment on account (ifsclouddocs CustomerPayments/
//     ActivityAnalyzeLumpSumsperCustPaym; MixedPayment/ActivityCustomerPaymentCashBox:
//     "If only part of the payment is matched, a Payment On Account will be
//     automatically created").
//   - Approving creates the payments: matched invoices become PaidPosted or
//     PartlyPaidPosted (ifsclouddocs CustomerPayments/ActivityCreateAuoCashPayment:
//     "The status of all the invoices matched ... will be in the Paid/Posted
//     or PartlyPaid/Posted status").
//   - Only an Approved mixed payment can be cancelled, and only as a whole: all
//     its payment transactions are reversed and the invoices are unpaid again
//     (ifsclouddocs GeneralIFSApplications/ActivityCancelMixedPayment; CustomerPayments/
//     ProcessMainCustPaym: "The cancellation rolls back the payment and sets the
//     invoices and pre-payments as unpaid").
//
// Not documented publicly, and therefore configurable in the client with
// these defaults: the projection and entity-set names (MixedPaymentHandling,
// MixedPaymentSet, MixedPaymentLumpSumSet, MixedPaymentTransactionSet), the
// field names, and the bound actions MixedPayment_Approve and
// MixedPayment_Cancel (named after the IFS convention
// IfsApp.<Projection>.<Entity>_<Action>, see /work/shared/reference/erp-apis.md).
// Where the documentation is silent the simulator is the stricter reading:
// a lump sum must be fully matched by its transactions before approval
// (rather than IFS balancing it silently), the transaction's customer must
// be the invoice's, and a payment may not exceed what is open.

// Mixed payment states (Objstate).
const (
	MixedNotApproved = "NotApproved"
	MixedApproved    = "Approved"
	MixedCancelled   = "Cancelled"
)

// TransactionCustomerPayment is the transaction type of a customer payment
// line (ifsclouddocs MixedPayment "Customer Payment Mixed Payment").
const TransactionCustomerPayment = "CustomerPayment"

// TransactionDirectCash is the transaction type of a direct cash payment:
// an amount of the cash account posted straight to a GL account, with no
// party (ifsclouddocs MixedPayment/ProcessExtMixedPaymentOnFile: message
// codes define the transaction type, "e.g. Direct Cash Transaction", and
// "direct cash payments are automatically completed with a manual posting",
// "posting on a defined account for direct cash transactions";
// GeneralIFSApplications/ActivityEnterMixedPaymPostControlInfo lists the
// mixed payment posting types, among them PP4 payment fee and the tax
// posting types of direct cash). The OData value "DirectCashPayment" is
// inferred, like the other names of the projection. The simulator requires
// the account to exist in the company's chart (Config.Accounts), as IFS
// validates a posting's code string, and refuses a party or invoice on it.
const TransactionDirectCash = "DirectCashPayment"

// DefaultAccounts are the GL accounts every company's chart has when
// Config.Accounts does not name the company: a bank fee expense account
// and an input tax account (seed data, not IFS defaults).
var DefaultAccounts = []string{"6570", "2640"}

func (s *Sim) accountExists(company, account string) bool {
	accounts, ok := s.cfg.Accounts[company]
	if !ok {
		accounts = DefaultAccounts
	}
	return slices.Contains(accounts, account)
}

// MixedPayment is a mixed payment with its lump sums and transactions.
type MixedPayment struct {
	Company        string     `json:"company"`
	MixedPaymentID int64      `json:"mixed_payment_id"`
	InstituteID    string     `json:"institute_id"`
	ShortName      string     `json:"short_name"` // the cash account
	VoucherDate    string     `json:"voucher_date"`
	Description    string     `json:"description,omitempty"`
	State          string     `json:"state"`
	LumpSums       []LumpSum  `json:"lump_sums"`
	Created        time.Time  `json:"created"`
	Approved       time.Time  `json:"approved,omitzero"`
	Cancelled      time.Time  `json:"cancelled,omitzero"`
	ETag           string     `json:"etag"`
	row            *row       `json:"-"`
	lumpRows       []*lumpRec `json:"-"`
}

// LumpSum is one amount received (or, negative, paid out) on the cash account.
type LumpSum struct {
	LumpSumID    int64              `json:"lump_sum_id"`
	Amount       string             `json:"amount"`
	Currency     string             `json:"currency"`
	Transactions []MixedTransaction `json:"transactions"`
}

// MixedTransaction is a customer payment line of a lump sum.
type MixedTransaction struct {
	TransactionID    int64  `json:"transaction_id"`
	TransactionType  string `json:"transaction_type"`
	Identity         string `json:"identity"`
	InvoiceID        int64  `json:"invoice_id,omitempty"` // 0: a payment on account
	Amount           string `json:"amount"`
	Currency         string `json:"currency"`
	PaymentReference string `json:"payment_reference,omitempty"`
	Text             string `json:"text,omitempty"`
	// Account is the GL account of a direct cash transaction.
	Account string `json:"account,omitempty"`
}

type lumpRec struct {
	ls    LumpSum
	row   *row
	trans []*row
}

// CashAccount is a payment institute's cash account that mixed payments may use.
type CashAccount struct {
	Company     string
	InstituteID string
	ShortName   string
}

// MixedPayments returns every mixed payment, in the order created.
func (s *Sim) MixedPayments() []MixedPayment {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]MixedPayment, len(s.mixed))
	for i, mp := range s.mixed {
		out[i] = mp.snapshot()
	}
	return out
}

func (mp *MixedPayment) snapshot() MixedPayment {
	c := *mp
	c.LumpSums = make([]LumpSum, len(mp.lumpRows))
	for i, l := range mp.lumpRows {
		c.LumpSums[i] = l.ls
		c.LumpSums[i].Transactions = slices.Clone(l.ls.Transactions)
	}
	c.row, c.lumpRows = nil, nil
	return c
}

func (s *Sim) mixedPayment(company string, id int64) *MixedPayment {
	for _, mp := range s.mixed {
		if mp.Company == company && mp.MixedPaymentID == id {
			return mp
		}
	}
	return nil
}

// storeMixed lays out a mixed payment's header row with a new ETag.
func (s *Sim) storeMixed(mp *MixedPayment) {
	key := objkey("mixed-payment", mp.Company, fmt.Sprint(mp.MixedPaymentID))
	mp.ETag = s.etag(key)
	mp.row = s.mixedSet.row(mp.ETag, map[string]value{
		"Company":        str(mp.Company),
		"MixedPaymentId": integer(mp.MixedPaymentID),
		"InstituteId":    str(mp.InstituteID),
		"ShortName":      str(mp.ShortName),
		"VoucherDate":    dateValue(mp.VoucherDate),
		"Description":    str(mp.Description),
		"Objstate":       enum(mp.State),
		"Objversion":     str(s.now().Format("20060102150405")),
		"Objkey":         str(key),
	})
}

// body reads an OData create request's properties: every property must be
// one of the set's, and of its type.
type body struct {
	es  *entitySet
	m   map[string]any
	err *apiError
}

func (b *body) check(allowed ...string) {
	for name := range b.m {
		if !slices.Contains(allowed, name) {
			if _, known := b.es.schema[name]; known {
				b.fail("property %s of %s cannot be set on create", name, b.es.name)
			} else {
				b.fail("property %s does not exist in %s", name, b.es.name)
			}
		}
	}
}

func (b *body) fail(format string, args ...any) {
	if b.err == nil {
		b.err = badRequest("ODP_INVALID_BODY", format, args...)
	}
}

func (b *body) str(name string, required bool) string {
	p := params{m: b.m}
	v := p.str(name, required)
	if p.err != nil && b.err == nil {
		b.err = p.err
	}
	return v
}

func (b *body) integer(name string, required bool) int64 {
	v := b.str(name, required)
	if v == "" {
		return 0
	}
	var n int64
	if _, err := fmt.Sscan(v, &n); err != nil || fmt.Sprint(n) != v {
		b.fail("property %s must be an integer, got %q", name, v)
	}
	return n
}

func (b *body) amount(name string) string {
	v := b.str(name, true)
	if v != "" && (!decimalRE.MatchString(v) || decimal(v).r.Sign() == 0) {
		b.fail("property %s must be a non-zero decimal, got %q", name, v)
	}
	return v
}

func (b *body) currency(name string) string {
	v := b.str(name, true)
	if v != "" && (len(v) != 3 || strings.ToUpper(v) != v) {
		b.fail("property %s must be an ISO 4217 code, got %q", name, v)
	}
	return v
}

// DefaultCashAccount is the institute and cash account every company has
// when Config.CashAccounts is empty.
const DefaultCashAccount = "GOCARDLESS"

func (s *Sim) cashAccount(company, institute, short string) bool {
	if len(s.cfg.CashAccounts) == 0 {
		return institute == DefaultCashAccount && short == DefaultCashAccount
	}
	return slices.ContainsFunc(s.cfg.CashAccounts, func(c CashAccount) bool {
		return c.Company == company && c.InstituteID == institute && c.ShortName == short
	})
}

// createMixedPayment is POST MixedPaymentSet.
func (s *Sim) createMixedPayment(m map[string]any) (*row, *apiError) {
	b := &body{es: s.mixedSet, m: m}
	b.check("Company", "InstituteId", "ShortName", "VoucherDate", "Description")
	company := b.str("Company", true)
	institute := b.str("InstituteId", true)
	short := b.str("ShortName", true)
	date := b.str("VoucherDate", true)
	desc := b.str("Description", false)
	if b.err != nil {
		return nil, b.err
	}
	if _, err := time.Parse(time.DateOnly, date); err != nil {
		return nil, badRequest("ODP_INVALID_BODY", "VoucherDate %q is not a date", date)
	}
	if len(desc) > 200 {
		return nil, dbError("ORA-20124: MixedPayment.DESCRIPTION: Description is longer than 200 characters.")
	}
	if !s.cashAccount(company, institute, short) {
		return nil, dbError("ORA-20120: CashAccount.NOTEXIST: Cash account %s of payment institute %s does not exist in company %s.", short, institute, company)
	}
	var id int64 = 1
	for _, mp := range s.mixed {
		if mp.Company == company {
			id = max(id, mp.MixedPaymentID+1)
		}
	}
	mp := &MixedPayment{Company: company, MixedPaymentID: id, InstituteID: institute, ShortName: short,
		VoucherDate: date, Description: desc, State: MixedNotApproved, Created: s.now()}
	s.storeMixed(mp)
	s.mixed = append(s.mixed, mp)
	return mp.row, nil
}

// notApproved finds a mixed payment that may still take transactions.
func (s *Sim) notApproved(company string, id int64) (*MixedPayment, *apiError) {
	mp := s.mixedPayment(company, id)
	switch {
	case mp == nil:
		return nil, &apiError{status: http.StatusNotFound, code: "ODP_NOT_FOUND", msg: fmt.Sprintf("No mixed payment %s/%d", company, id)}
	case mp.State != MixedNotApproved:
		return nil, dbError("ORA-20121: MixedPayment.NOT_MODIFIABLE: Mixed payment %d is %s and cannot be changed.", id, mp.State)
	}
	return mp, nil
}

// createLumpSum is POST MixedPaymentLumpSumSet.
func (s *Sim) createLumpSum(m map[string]any) (*row, *apiError) {
	b := &body{es: s.lumpSet, m: m}
	b.check("Company", "MixedPaymentId", "LumpSumAmount", "Currency")
	company := b.str("Company", true)
	id := b.integer("MixedPaymentId", true)
	amount := b.amount("LumpSumAmount")
	currency := b.currency("Currency")
	if b.err != nil {
		return nil, b.err
	}
	mp, aerr := s.notApproved(company, id)
	if aerr != nil {
		return nil, aerr
	}
	l := &lumpRec{ls: LumpSum{LumpSumID: int64(len(mp.lumpRows) + 1), Amount: amount, Currency: currency}}
	l.row = s.lumpSet.row(s.etag(objkey("lump-sum", company, fmt.Sprint(id), fmt.Sprint(l.ls.LumpSumID))), map[string]value{
		"Company":        str(company),
		"MixedPaymentId": integer(id),
		"LumpSumId":      integer(l.ls.LumpSumID),
		"LumpSumAmount":  decimal(amount),
		"Currency":       str(currency),
	})
	mp.lumpRows = append(mp.lumpRows, l)
	s.storeMixed(mp) // a child changed: the header's version changes
	return l.row, nil
}

// createTransaction is POST MixedPaymentTransactionSet: a customer payment
// line, matched to an invoice or (without InvoiceId) on account, or a
// direct cash payment to a GL account.
func (s *Sim) createTransaction(m map[string]any) (*row, *apiError) {
	b := &body{es: s.transSet, m: m}
	b.check("Company", "MixedPaymentId", "LumpSumId", "TransactionType", "PartyType", "Identity", "InvoiceId",
		"CurrAmount", "Currency", "PaymentReference", "Text", "Account")
	company := b.str("Company", true)
	id := b.integer("MixedPaymentId", true)
	lumpID := b.integer("LumpSumId", true)
	typ := b.str("TransactionType", true)
	direct := typ == TransactionDirectCash
	party := b.str("PartyType", !direct)
	identity := b.str("Identity", !direct)
	invoiceID := b.integer("InvoiceId", false)
	amount := b.amount("CurrAmount")
	currency := b.currency("Currency")
	ref, text := b.str("PaymentReference", false), b.str("Text", false)
	account := b.str("Account", direct)
	if b.err != nil {
		return nil, b.err
	}
	switch {
	case typ != TransactionCustomerPayment && !direct:
		return nil, badRequest("ODP_INVALID_BODY", "TransactionType %q: the simulator implements only %s and %s", typ, TransactionCustomerPayment, TransactionDirectCash)
	case direct && (party != "" || identity != "" || invoiceID != 0):
		return nil, badRequest("ODP_INVALID_BODY", "a %s has no PartyType, Identity or InvoiceId", TransactionDirectCash)
	case direct && !s.accountExists(company, account):
		return nil, dbError("ORA-20135: Account.NOTEXIST: Account %s does not exist in company %s.", account, company)
	case !direct && account != "":
		return nil, badRequest("ODP_INVALID_BODY", "Account is set only on a %s", TransactionDirectCash)
	case !direct && party != "Customer":
		return nil, badRequest("ODP_INVALID_BODY", "PartyType %q must be Customer for a customer payment", party)
	case len(ref) > 50 || len(text) > 200:
		return nil, dbError("ORA-20125: MixedPaymentTrans.LENGTH: PaymentReference (50) or Text (200) is too long.")
	}
	mp, aerr := s.notApproved(company, id)
	if aerr != nil {
		return nil, aerr
	}
	if lumpID < 1 || lumpID > int64(len(mp.lumpRows)) {
		return nil, &apiError{status: http.StatusNotFound, code: "ODP_NOT_FOUND", msg: fmt.Sprintf("No lump sum %d in mixed payment %d", lumpID, id)}
	}
	l := mp.lumpRows[lumpID-1]
	if _, ok := s.customers[identity]; !ok && !direct {
		return nil, dbError("ORA-20130: CustomerInfo.NOTEXIST: Customer %s does not exist.", identity)
	}
	if currency != l.ls.Currency {
		return nil, dbError("ORA-20131: MixedPaymentTrans.CURRENCY: Transaction currency %s differs from the lump sum's %s.", currency, l.ls.Currency)
	}
	if invoiceID != 0 {
		rec, ok := s.invoices[invoiceKey{company, invoiceID}]
		switch {
		case !ok:
			return nil, dbError("ORA-20132: CustomerOrderInvHead.NOTEXIST: Invoice %d does not exist in company %s.", invoiceID, company)
		case rec.inv.CustomerID != identity:
			return nil, dbError("ORA-20133: MixedPaymentTrans.IDENTITY: Invoice %d belongs to customer %s, not %s.", invoiceID, rec.inv.CustomerID, identity)
		case rec.inv.Currency != currency:
			return nil, dbError("ORA-20134: MixedPaymentTrans.CURRENCY: Payment currency %s differs from invoice currency %s.", currency, rec.inv.Currency)
		}
	}
	t := MixedTransaction{TransactionID: int64(len(l.trans) + 1), TransactionType: typ, Identity: identity, InvoiceID: invoiceID,
		Amount: amount, Currency: currency, PaymentReference: ref, Text: text, Account: account}
	inv := null
	if invoiceID != 0 {
		inv = integer(invoiceID)
	}
	rw := s.transSet.row(s.etag(objkey("mixed-trans", company, fmt.Sprint(id), fmt.Sprint(lumpID), fmt.Sprint(t.TransactionID))), map[string]value{
		"Company":          str(company),
		"MixedPaymentId":   integer(id),
		"LumpSumId":        integer(lumpID),
		"TransactionId":    integer(t.TransactionID),
		"TransactionType":  str(typ),
		"PartyType":        str(party),
		"Identity":         str(identity),
		"InvoiceId":        inv,
		"CurrAmount":       decimal(amount),
		"Currency":         str(currency),
		"PaymentReference": str(ref),
		"Text":             str(text),
		"Account":          str(account),
	})
	l.ls.Transactions = append(l.ls.Transactions, t)
	l.trans = append(l.trans, rw)
	s.storeMixed(mp)
	return rw, nil
}

// approveMixed is the bound action MixedPayment_Approve: every lump sum
// must be matched in full; the matched invoices are paid.
func (s *Sim) approveMixed(key map[string]value, _ map[string]any) (*row, *apiError) {
	mp := s.mixedPayment(key["Company"].s, key["MixedPaymentId"].n)
	if mp.State != MixedNotApproved {
		return nil, dbError("ORA-20140: MixedPayment.NOT_APPROVABLE: Mixed payment %d is %s.", mp.MixedPaymentID, mp.State)
	}
	if len(mp.lumpRows) == 0 {
		return nil, dbError("ORA-20141: MixedPayment.EMPTY: Mixed payment %d has no lump sum.", mp.MixedPaymentID)
	}
	// Check everything before changing anything: the approval is one
	// database transaction.
	changes := map[invoiceKey]*big.Rat{}
	for _, l := range mp.lumpRows {
		total := new(big.Rat)
		for _, t := range l.ls.Transactions {
			total.Add(total, decimal(t.Amount).r)
			if t.InvoiceID == 0 {
				continue
			}
			k := invoiceKey{mp.Company, t.InvoiceID}
			if changes[k] == nil {
				changes[k] = new(big.Rat)
			}
			changes[k].Add(changes[k], decimal(t.Amount).r)
		}
		if total.Cmp(decimal(l.ls.Amount).r) != 0 {
			return nil, dbError("ORA-20142: MixedPayment.UNBALANCED: Lump sum %d of %s is matched by %s.", l.ls.LumpSumID, l.ls.Amount, total.FloatString(2))
		}
	}
	for k, paid := range changes {
		inv := s.invoices[k].inv
		open := decimal(inv.OpenAmount).r
		if paid.Sign() > 0 && inv.State != StatePostedAuth && inv.State != StatePartlyPaidPosted {
			return nil, dbError("ORA-20143: CustomerOrderInvHead.NOT_OPEN: Invoice %d is %s and cannot be paid.", inv.InvoiceID, inv.State)
		}
		// A payment reduces what is open towards zero, never past it: a
		// debit invoice takes positive amounts, a credit note negative ones.
		left := new(big.Rat).Sub(open, paid)
		if open.Sign()*paid.Sign() <= 0 || left.Sign()*open.Sign() < 0 {
			return nil, dbError("ORA-20144: MixedPaymentTrans.EXCEEDS_OPEN: Amount %s does not fit the open amount %s of invoice %d.",
				paid.FloatString(scale(inv.OpenAmount)), inv.OpenAmount, inv.InvoiceID)
		}
	}
	for k, paid := range changes {
		s.payInvoice(k, paid)
	}
	mp.State, mp.Approved = MixedApproved, s.now()
	s.storeMixed(mp)
	return mp.row, nil
}

// cancelMixed is the bound action MixedPayment_Cancel: the whole payment
// is rolled back and its invoices are unpaid again.
func (s *Sim) cancelMixed(key map[string]value, _ map[string]any) (*row, *apiError) {
	mp := s.mixedPayment(key["Company"].s, key["MixedPaymentId"].n)
	if mp.State != MixedApproved {
		return nil, dbError("ORA-20145: MixedPayment.NOT_CANCELLABLE: Mixed payment %d is %s; only an approved mixed payment can be cancelled.", mp.MixedPaymentID, mp.State)
	}
	for _, l := range mp.lumpRows {
		for _, t := range l.ls.Transactions {
			if t.InvoiceID != 0 {
				s.payInvoice(invoiceKey{mp.Company, t.InvoiceID}, new(big.Rat).Neg(decimal(t.Amount).r))
			}
		}
	}
	mp.State, mp.Cancelled = MixedCancelled, s.now()
	s.storeMixed(mp)
	return mp.row, nil
}

// payInvoice applies a payment (negative: its reversal) to an invoice and
// sets its state from what is left open.
func (s *Sim) payInvoice(k invoiceKey, paid *big.Rat) {
	inv := s.invoices[k].inv
	left := new(big.Rat).Sub(decimal(inv.OpenAmount).r, paid)
	inv.OpenAmount = left.FloatString(max(scale(inv.OpenAmount), 2))
	switch {
	case left.Sign() == 0:
		inv.State = StatePaidPosted
	case left.Cmp(decimal(inv.GrossAmount).r) == 0:
		inv.State = StatePostedAuth
	default:
		inv.State = StatePartlyPaidPosted
	}
	inv.Modified = time.Time{}
	s.storeInvoice(inv)
}
