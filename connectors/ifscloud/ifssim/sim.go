// Package ifssim is a faithful, in-process simulator of the parts of IFS
// Cloud that ml-connector uses, for tests, benchmarks and the demo
// (cmd/ifssim serves it over HTTP).
//
// It implements the OAuth2 client-credentials token endpoint of the IAM
// realm (bad credentials → 401, tokens that expire after TokenTTL → 401 on
// use), the customer (CustomerHandling.svc/CustomerInfoSet) and invoice
// (CustomerOrderInvoiceHandling.svc/CustomerOrderInvHeadSet) entity sets of
// several companies, with ETags that change on every change; server paging
// with $skiptoken next links within the $top a query asks for (at most
// 5000); the $filter subset ml-connector's queries use (anything else →
// 400 ODP_UNSUPPORTED_URL); a per-window request budget answering 429 with
// Retry-After; and the write side as standard IFS has it, the Mixed
// Payment (mixed.go, with the sources of each rule): creating a mixed
// payment, its lump sum and its customer payment lines (OData create),
// approving it (the matched invoices are paid) and cancelling it (they are
// unpaid again), the actions with If-Match (missing → 428, stale → 412).
// The legacy mandate log (not standard IFS, kept for sites that built it)
// records mandate statuses on a customer.
//
// Tests steer it through Go methods, and the demo through the same
// operations under /_sim/ (see [Sim.ServeHTTP]): data, mixed payments, request
// statistics, and faults (latency, 5xx, 429, revoked tokens, and ETag races
// that change the entity between a client's read and its write).
package ifssim

import (
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Config shapes a simulator; zero fields take the defaults in brackets.
type Config struct {
	Realm        string        // IAM realm ["ifs"]
	ClientID     string        // accepted client id ["mlc"]
	ClientSecret string        // accepted client secret ["secret"]
	TokenTTL     time.Duration // expires_in of issued tokens [1h]
	// PageSize is the server's page size: a query returns at most this many
	// rows and a $skiptoken next link for the rest of its $top [5000].
	PageSize int
	// Budget is how many API requests are served per BudgetWindow before
	// 429 [1000]; negative means unlimited.
	Budget       int
	BudgetWindow time.Duration // [1m]
	// IgnoreIEEE754 makes the server send decimals as JSON numbers even
	// when the client asks for IEEE754Compatible=true, as some do.
	IgnoreIEEE754 bool
	// RefuseObjstateFilter answers a $filter that names Objstate with 400,
	// as some IFS releases do (issue #16; /work/shared/reference/erp-apis.md
	// "Some releases refuse $filter on Objstate (400)").
	RefuseObjstateFilter bool
	// NextLinkBase, when set (e.g. "http://ifs-internal:8080/ifs"), is the
	// scheme, host and path root @odata.nextLink names instead of the
	// request's: the tenant's internal address behind a proxy
	// (erp-apis.md "@odata.nextLink may carry the tenant's internal host").
	NextLinkBase string

	APIPath            string // ["/main/ifsapplications/projection/v1"]
	InvoiceProjection  string // ["CustomerOrderInvoiceHandling"]
	InvoiceSet         string // ["CustomerOrderInvHeadSet"]
	CustomerProjection string // ["CustomerHandling"]
	CustomerSet        string // ["CustomerInfoSet"]
	// The customer's other entities, in the customer projection (see
	// customer.go).
	CompanySet        string // ["IdentityInvoiceInfoSet"]
	AddressSet        string // ["CustomerInfoAddressSet"]
	CommMethodSet     string // ["CustomerInfoCommMethodSet"]
	PaymentAddressSet string // ["PaymentAddressSet"]

	// The Mixed Payment projection (see mixed.go for what is documented
	// and what is inferred).
	MixedPaymentProjection string // ["MixedPaymentHandling"]
	MixedPaymentSet        string // ["MixedPaymentSet"]
	LumpSumSet             string // ["MixedPaymentLumpSumSet"]
	TransactionSet         string // ["MixedPaymentTransactionSet"]
	ApproveAction          string // ["MixedPayment_Approve"]
	CancelAction           string // ["MixedPayment_Cancel"]
	// CashAccounts are the payment institutes' cash accounts mixed
	// payments may use [institute GOCARDLESS, cash account GOCARDLESS, in
	// every company].
	CashAccounts []CashAccount
	// Accounts are the GL accounts (code part A) of each company's chart
	// that a direct cash transaction may post to [DefaultAccounts in every
	// company].
	Accounts map[string][]string

	// The legacy mandate log: NOT standard IFS. It is ml-connector's own
	// extension, kept for sites that built it (client preset
	// mandate_writeback "legacy_mandate_log").
	MandateLogSet string // in the customer projection ["DirectDebitMandateLogSet"]
	MandateAction string // ["CustomerInfo_RegisterDirectDebitMandate"]

	// Now is the simulator's clock [time.Now].
	Now func() time.Time
}

func (c *Config) defaults() {
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&c.Realm, "ifs")
	def(&c.ClientID, "mlc")
	def(&c.ClientSecret, "secret")
	def(&c.APIPath, "/main/ifsapplications/projection/v1")
	def(&c.InvoiceProjection, "CustomerOrderInvoiceHandling")
	def(&c.InvoiceSet, "CustomerOrderInvHeadSet")
	def(&c.MixedPaymentProjection, "MixedPaymentHandling")
	def(&c.MixedPaymentSet, "MixedPaymentSet")
	def(&c.LumpSumSet, "MixedPaymentLumpSumSet")
	def(&c.TransactionSet, "MixedPaymentTransactionSet")
	def(&c.ApproveAction, "MixedPayment_Approve")
	def(&c.CancelAction, "MixedPayment_Cancel")
	def(&c.CustomerProjection, "CustomerHandling")
	def(&c.CustomerSet, "CustomerInfoSet")
	def(&c.CompanySet, "IdentityInvoiceInfoSet")
	def(&c.AddressSet, "CustomerInfoAddressSet")
	def(&c.CommMethodSet, "CustomerInfoCommMethodSet")
	def(&c.PaymentAddressSet, "PaymentAddressSet")
	def(&c.MandateLogSet, "DirectDebitMandateLogSet")
	def(&c.MandateAction, "CustomerInfo_RegisterDirectDebitMandate")
	c.APIPath = "/" + strings.Trim(c.APIPath, "/")
	if c.TokenTTL <= 0 {
		c.TokenTTL = time.Hour
	}
	if c.PageSize <= 0 {
		c.PageSize = maxTop
	}
	if c.Budget == 0 {
		c.Budget = 1000
	}
	if c.BudgetWindow <= 0 {
		c.BudgetWindow = time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// maxTop is the largest $top IFS accepts.
const maxTop = 5000

// Invoice states (Objstate).
const (
	StatePreliminary      = "Preliminary"
	StatePostedAuth       = "PostedAuth"
	StatePartlyPaidPosted = "PartlyPaidPosted"
	StatePaidPosted       = "PaidPosted"
	StateCancelled        = "Cancelled"
)

var invoiceStates = []string{StatePreliminary, StatePostedAuth, StatePartlyPaidPosted, StatePaidPosted, StateCancelled}

// Invoice is a customer order invoice (CustomerOrderInvHead).
type Invoice struct {
	Company     string `json:"company"`
	InvoiceID   int64  `json:"invoice_id"`
	InvoiceNo   string `json:"invoice_no"`
	CustomerID  string `json:"customer_id"` // Identity
	InvoiceDate string `json:"invoice_date,omitempty"`
	DueDate     string `json:"due_date,omitempty"`
	Currency    string `json:"currency"`
	PayTermID   string `json:"pay_term_id,omitempty"`
	State       string `json:"state"` // Objstate
	GrossAmount string `json:"gross_amount"`
	OpenAmount  string `json:"open_amount"`
	// Modified is Rowversion; zero on a put means now.
	Modified time.Time `json:"modified,omitzero"`
	// ETag is set by the simulator; ignored on a put.
	ETag string `json:"etag,omitempty"`
}

// Customer is a customer (CustomerInfo) with the company it belongs to and
// its payment details flattened in.
type Customer struct {
	CustomerID        string    `json:"customer_id"`
	Company           string    `json:"company"`
	Name              string    `json:"name"`
	Email             string    `json:"email,omitempty"`
	Phone             string    `json:"phone,omitempty"`
	Address1          string    `json:"address1,omitempty"`
	Address2          string    `json:"address2,omitempty"`
	City              string    `json:"city,omitempty"`
	County            string    `json:"county,omitempty"`
	ZipCode           string    `json:"zip_code,omitempty"`
	Country           string    `json:"country,omitempty"`
	Language          string    `json:"language,omitempty"`
	AssociationNo     string    `json:"association_no,omitempty"`
	AccountHolder     string    `json:"account_holder,omitempty"`
	IBAN              string    `json:"iban,omitempty"`
	AccountNo         string    `json:"account_no,omitempty"`
	BranchCode        string    `json:"branch_code,omitempty"`
	BankCode          string    `json:"bank_code,omitempty"`
	BankCountry       string    `json:"bank_country,omitempty"`
	Currency          string    `json:"currency,omitempty"`
	MandateID         string    `json:"mandate_id,omitempty"`
	MandateStatus     string    `json:"mandate_status,omitempty"`
	MandateStatusTime time.Time `json:"mandate_status_time,omitzero"`
	Modified          time.Time `json:"modified,omitzero"`
	ETag              string    `json:"etag,omitempty"`
}

// MandateLogEntry is an entry of DirectDebitMandateLogSet.
type MandateLogEntry struct {
	LogID       int64     `json:"log_id"`
	Company     string    `json:"company"`
	CustomerID  string    `json:"customer_id"`
	Reference   string    `json:"reference"`
	MandateID   string    `json:"mandate_id"`
	Status      string    `json:"status"`
	Scheme      string    `json:"scheme,omitempty"`
	EventTime   time.Time `json:"event_time"`
	Cause       string    `json:"cause,omitempty"`
	ReasonCode  string    `json:"reason_code,omitempty"`
	Description string    `json:"description,omitempty"`
	// Applied is false when a newer status was already recorded.
	Applied bool      `json:"applied"`
	Created time.Time `json:"created"`
}

var mandateStatuses = []string{"pending", "active", "suspended_by_payer", "failed", "cancelled", "expired", "consumed", "blocked"}

// Sim is the simulator. It is safe for concurrent use; requests are served
// one at a time, as if every IFS call were a short transaction.
type Sim struct {
	cfg  Config
	sets map[string]*entitySet // "<Projection>/<Set>"

	invoiceSet, customerSet, mandateSet      *entitySet
	companySet, addressSet, commSet, bankSet *entitySet
	mixedSet, lumpSet, transSet              *entitySet

	mu          sync.Mutex
	seq         int64
	tokens      map[string]issued
	tokenSerial int
	invoices    map[invoiceKey]*invoiceRec
	customers   map[string]*customerRec
	// The rows in insertion order: queries scan them, and a slice scans
	// far faster than a map.
	invoiceRows  []*row
	customerRows []*row
	mixed        []*MixedPayment
	mandateLog   []*mandateRec

	windowStart time.Time
	windowCount int

	faults faults

	stats    Stats
	requests []Request
}

type invoiceKey struct {
	company string
	id      int64
}

type invoiceRec struct {
	inv Invoice
	row *row
	pos int // in invoiceRows
}

type customerRec struct {
	cu    Customer
	row   *row
	pos   int // in customerRows
	parts customerParts
}

type mandateRec struct {
	m   MandateLogEntry
	row *row
}

// row is an entity as the OData layer sees it: values in the order of its
// set's fields.
type row struct {
	vals []value
	etag string
}

type issued struct {
	expires time.Time
	serial  int
}

// New returns a simulator without data.
func New(cfg Config) *Sim {
	cfg.defaults()
	s := &Sim{
		cfg:       cfg,
		tokens:    map[string]issued{},
		invoices:  map[invoiceKey]*invoiceRec{},
		customers: map[string]*customerRec{},
	}
	s.sets = s.entitySets()
	s.invoiceSet = s.sets[cfg.InvoiceProjection+"/"+cfg.InvoiceSet]
	s.customerSet = s.sets[cfg.CustomerProjection+"/"+cfg.CustomerSet]
	s.companySet = s.sets[cfg.CustomerProjection+"/"+cfg.CompanySet]
	s.addressSet = s.sets[cfg.CustomerProjection+"/"+cfg.AddressSet]
	s.commSet = s.sets[cfg.CustomerProjection+"/"+cfg.CommMethodSet]
	s.bankSet = s.sets[cfg.CustomerProjection+"/"+cfg.PaymentAddressSet]
	s.mixedSet = s.sets[cfg.MixedPaymentProjection+"/"+cfg.MixedPaymentSet]
	s.lumpSet = s.sets[cfg.MixedPaymentProjection+"/"+cfg.LumpSumSet]
	s.transSet = s.sets[cfg.MixedPaymentProjection+"/"+cfg.TransactionSet]
	s.mandateSet = s.sets[cfg.CustomerProjection+"/"+cfg.MandateLogSet]
	return s
}

// Config returns the simulator's configuration with defaults applied.
func (s *Sim) Config() Config { return s.cfg }

func (s *Sim) now() time.Time { return s.cfg.Now().UTC() }

// stamp is the Rowversion of a change now: IFS keeps seconds, so changes
// within one second share a modified time.
func (s *Sim) stamp() time.Time { return s.now().Truncate(time.Second) }

// etag makes the ETag of an entity's next version: opaque, as IFS's are,
// and different on every change because seq only grows.
func (s *Sim) etag(objkey string) string {
	s.seq++
	return `W/"` + base64.RawStdEncoding.EncodeToString(fmt.Appendf(nil, "%s:%d", objkey, s.seq)) + `"`
}

func objkey(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return strings.ToUpper(hex.EncodeToString(h[:8]))
}

// PutInvoices adds or replaces invoices. Each put is a change: the invoice
// gets a new ETag and, unless Modified is set, the current time as its
// modified time.
func (s *Sim) PutInvoices(invs ...Invoice) error {
	for _, inv := range invs {
		if err := checkInvoice(inv); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, inv := range invs {
		s.storeInvoice(inv)
	}
	return nil
}

// UpdateInvoice changes an invoice with fn; the change gets a new ETag and
// the current time as its modified time unless fn sets another.
func (s *Sim) UpdateInvoice(company string, id int64, fn func(*Invoice)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.invoices[invoiceKey{company, id}]
	if !ok {
		return fmt.Errorf("ifssim: no invoice %s/%d", company, id)
	}
	inv := rec.inv
	inv.Modified = time.Time{}
	fn(&inv)
	inv.Company, inv.InvoiceID = company, id
	if err := checkInvoice(inv); err != nil {
		return err
	}
	s.storeInvoice(inv)
	return nil
}

// Invoice returns an invoice as stored, with its ETag.
func (s *Sim) Invoice(company string, id int64) (Invoice, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.invoices[invoiceKey{company, id}]
	if !ok {
		return Invoice{}, false
	}
	return rec.inv, true
}

// Invoices returns every invoice, ordered by company and id.
func (s *Sim) Invoices() []Invoice {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Invoice, 0, len(s.invoices))
	for _, rec := range s.invoices {
		out = append(out, rec.inv)
	}
	slices.SortFunc(out, func(a, b Invoice) int {
		if c := strings.Compare(a.Company, b.Company); c != 0 {
			return c
		}
		return cmp.Compare(a.InvoiceID, b.InvoiceID)
	})
	return out
}

func checkInvoice(inv Invoice) error {
	switch {
	case inv.Company == "":
		return fmt.Errorf("ifssim: invoice %d has no company", inv.InvoiceID)
	case inv.InvoiceID <= 0:
		return fmt.Errorf("ifssim: invoice id %d must be positive", inv.InvoiceID)
	case !slices.Contains(invoiceStates, inv.State):
		return fmt.Errorf("ifssim: invoice %s/%d: state %q is not one of %v", inv.Company, inv.InvoiceID, inv.State, invoiceStates)
	case !decimalRE.MatchString(inv.OpenAmount) || !decimalRE.MatchString(inv.GrossAmount):
		return fmt.Errorf("ifssim: invoice %s/%d: amounts %q and %q must be decimals", inv.Company, inv.InvoiceID, inv.OpenAmount, inv.GrossAmount)
	case len(inv.Currency) != 3:
		return fmt.Errorf("ifssim: invoice %s/%d: currency %q is not an ISO code", inv.Company, inv.InvoiceID, inv.Currency)
	}
	for _, d := range []string{inv.InvoiceDate, inv.DueDate} {
		if _, err := time.Parse(time.DateOnly, d); d != "" && err != nil {
			return fmt.Errorf("ifssim: invoice %s/%d: %q is not a date", inv.Company, inv.InvoiceID, d)
		}
	}
	return nil
}

func (s *Sim) storeInvoice(inv Invoice) {
	if inv.Modified.IsZero() {
		inv.Modified = s.stamp()
	}
	inv.Modified = inv.Modified.UTC()
	key := objkey("invoice", inv.Company, fmt.Sprint(inv.InvoiceID))
	inv.ETag = s.etag(key)
	k := invoiceKey{inv.Company, inv.InvoiceID}
	rec := &invoiceRec{inv: inv, pos: len(s.invoiceRows), row: s.invoiceSet.row(inv.ETag, map[string]value{
		"Company":     str(inv.Company),
		"InvoiceId":   integer(inv.InvoiceID),
		"InvoiceNo":   str(inv.InvoiceNo),
		"Identity":    str(inv.CustomerID),
		"PartyType":   str("Customer"),
		"InvoiceDate": dateValue(inv.InvoiceDate),
		"DueDate":     dateValue(inv.DueDate),
		"Currency":    str(inv.Currency),
		"PayTermId":   str(inv.PayTermID),
		"Objstate":    enum(inv.State),
		"GrossAmount": decimal(inv.GrossAmount),
		"OpenAmount":  decimal(inv.OpenAmount),
		"Rowversion":  instant(inv.Modified),
		"Objversion":  str(inv.Modified.Format("20060102150405")),
		"Objkey":      str(key),
	})}
	if old, ok := s.invoices[k]; ok {
		rec.pos = old.pos
		s.invoiceRows[rec.pos] = rec.row
	} else {
		s.invoiceRows = append(s.invoiceRows, rec.row)
	}
	s.invoices[k] = rec
}

// PutCustomers adds or replaces customers; each put is a change.
func (s *Sim) PutCustomers(cs ...Customer) error {
	for _, c := range cs {
		if c.CustomerID == "" || c.Company == "" {
			return fmt.Errorf("ifssim: customer %q needs an id and a company", c.CustomerID)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range cs {
		s.storeCustomer(c)
	}
	return nil
}

// UpdateCustomer changes a customer with fn, as a change.
func (s *Sim) UpdateCustomer(id string, fn func(*Customer)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.customers[id]
	if !ok {
		return fmt.Errorf("ifssim: no customer %q", id)
	}
	c := rec.cu
	c.Modified = time.Time{}
	fn(&c)
	c.CustomerID = id
	s.storeCustomer(c)
	return nil
}

// UpdateCustomerParts changes, with fn, only what a customer's own
// entities hold (company currency, address, e-mail and phone, payment
// address), as IFS does when a user edits the Address, Communication
// Methods or Payment Address tab (separate entities: CustomerInfoAddress,
// CustomerInfoCommMethod, the payment address, IdentityInvoiceInfo): each
// part that changed gets a new ETag and modified time (the e-mail and
// phone rows together), CustomerInfo keeps its own. Changes to any other
// field are refused.
func (s *Sim) UpdateCustomerParts(id string, fn func(*Customer)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.customers[id]
	if !ok {
		return fmt.Errorf("ifssim: no customer %q", id)
	}
	c := rec.cu
	fn(&c)
	own := func(x Customer) Customer {
		x.Currency, x.Address1, x.Address2, x.City, x.County, x.ZipCode = "", "", "", "", "", ""
		x.Email, x.Phone = "", ""
		x.AccountHolder, x.IBAN, x.AccountNo, x.BranchCode, x.BankCode, x.BankCountry = "", "", "", "", "", ""
		return x
	}
	if own(c) != own(rec.cu) {
		return fmt.Errorf("ifssim: UpdateCustomerParts of %q changed CustomerInfo's own fields", id)
	}
	// Country is CustomerInfo's as well as the address's: it stays.
	stamped := c
	stamped.Modified = s.stamp()
	fresh := s.customerParts(stamped)
	old := rec.parts
	same := func(a, b Customer, fields func(Customer) []string) bool { return slices.Equal(fields(a), fields(b)) }
	if same(c, rec.cu, func(x Customer) []string { return []string{x.Currency} }) {
		fresh.company = old.company
	}
	if same(c, rec.cu, func(x Customer) []string { return []string{x.Address1, x.Address2, x.City, x.County, x.ZipCode} }) {
		fresh.address = old.address
	}
	if same(c, rec.cu, func(x Customer) []string { return []string{x.Email, x.Phone} }) {
		fresh.comm = old.comm
	}
	if same(c, rec.cu, func(x Customer) []string {
		return []string{x.AccountHolder, x.IBAN, x.AccountNo, x.BranchCode, x.BankCode, x.BankCountry}
	}) {
		fresh.bank = old.bank
	}
	rec.cu, rec.parts = c, fresh
	return nil
}

// Customer returns a customer as stored, with its ETag.
func (s *Sim) Customer(id string) (Customer, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.customers[id]
	if !ok {
		return Customer{}, false
	}
	return rec.cu, true
}

// Customers returns every customer, ordered by id.
func (s *Sim) Customers() []Customer {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Customer, 0, len(s.customers))
	for _, rec := range s.customers {
		out = append(out, rec.cu)
	}
	slices.SortFunc(out, func(a, b Customer) int { return strings.Compare(a.CustomerID, b.CustomerID) })
	return out
}

func (s *Sim) storeCustomer(c Customer) {
	if c.Modified.IsZero() {
		c.Modified = s.stamp()
	}
	c.Modified = c.Modified.UTC()
	key := objkey("customer", c.CustomerID)
	c.ETag = s.etag(key)
	rec := &customerRec{cu: c, pos: len(s.customerRows), row: s.customerSet.row(c.ETag, map[string]value{
		"CustomerId":      str(c.CustomerID),
		"Name":            str(c.Name),
		"Country":         str(c.Country),
		"DefaultLanguage": str(c.Language),
		"AssociationNo":   str(c.AssociationNo),
		"PartyType":       str("Customer"),
		"Rowversion":      instant(c.Modified),
		"Objversion":      str(c.Modified.Format("20060102150405")),
		"Objkey":          str(key),
	})}
	rec.parts = s.customerParts(c)
	if old, ok := s.customers[c.CustomerID]; ok {
		rec.pos = old.pos
		s.customerRows[rec.pos] = rec.row
	} else {
		s.customerRows = append(s.customerRows, rec.row)
	}
	s.customers[c.CustomerID] = rec
}

// MandateLog returns every mandate status recorded, in order.
func (s *Sim) MandateLog() []MandateLogEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]MandateLogEntry, len(s.mandateLog))
	for i, m := range s.mandateLog {
		out[i] = m.m
	}
	return out
}

func (s *Sim) addMandateLog(m MandateLogEntry) *mandateRec {
	m.LogID = int64(len(s.mandateLog) + 1)
	m.Created = s.now()
	rec := &mandateRec{m: m, row: s.mandateSet.row(s.etag(objkey("mandate-log", fmt.Sprint(m.LogID))), map[string]value{
		"LogId":       integer(m.LogID),
		"Company":     str(m.Company),
		"CustomerId":  str(m.CustomerID),
		"Reference":   str(m.Reference),
		"MandateId":   str(m.MandateID),
		"Status":      str(m.Status),
		"Scheme":      str(m.Scheme),
		"EventTime":   instant(m.EventTime),
		"Cause":       str(m.Cause),
		"ReasonCode":  str(m.ReasonCode),
		"Description": str(m.Description),
		"Applied":     boolean(m.Applied),
		"CreatedAt":   instant(m.Created),
	})}
	s.mandateLog = append(s.mandateLog, rec)
	return rec
}
