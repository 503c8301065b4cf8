package ifscloud

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// MaxPageSize is the largest $top IFS Cloud accepts.
const MaxPageSize = 5000

// Settings is the configuration of one IFS Cloud connection; see the
// package documentation for the keys and defaults.
type Settings struct {
	BaseURL           string
	ClientID          string
	CompanyCodes      []string
	Realm             string
	TokenURL          string
	Scope             string
	TokenMaxAge       time.Duration
	APIPath           string
	PageSize          int
	RequestsPerMinute int
	RequestTimeout    time.Duration
	WriteAttempts     int

	Invoices      EntitySettings
	Customers     EntitySettings
	CustomerParts CustomerParts

	// Writeback is how outcomes are written: WritebackMixedPayment or
	// WritebackCamt054.
	Writeback    string
	MixedPayment MixedPaymentSettings
	Camt054      Camt054Settings
	// MandateWriteback is MandateNone (standard IFS has no place for a
	// GoCardless mandate status) or MandateLegacyLog.
	MandateWriteback    string
	MandateLogEntitySet string
	MandateAction       string

	// ReceiptOn is ReceiptOnConfirmed (each payment outcome books its
	// invoice's payment; a payout then books only its fees) or
	// ReceiptOnPayout (the payout books the payments, its fees and its
	// refunds and charge-backs; payment and refund outcomes book nothing).
	ReceiptOn string
	// PayoutFees are the GL accounts a payout's fees go to, per company.
	PayoutFees map[string]FeeAccounts
}

// FeeAccounts are one company's GL accounts (code part A) for GoCardless
// fees: Account takes the fees, TaxAccount, when set, the tax included in
// them (else the tax stays in Account).
type FeeAccounts struct {
	Account    string
	TaxAccount string
}

// Receipt modes (receipt_on).
const (
	ReceiptOnConfirmed = "confirmed"
	ReceiptOnPayout    = "payout"
)

// glAccount is the shape of an IFS code part value: IFS code parts are at
// most 20 characters; the simulator's and the usual charts are
// alphanumeric.
var glAccount = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,19}$`)

// Write-back presets.
const (
	// WritebackMixedPayment records each collected payment as an approved
	// customer Mixed Payment matched to its invoice, and reverses it by
	// cancelling that mixed payment.
	WritebackMixedPayment = "mixed_payment"
	// WritebackCamt054 writes each outcome as an ISO 20022 camt.054 file
	// for IFS External Files (file type ExtMixedPayment, template MXP_CAMT).
	WritebackCamt054 = "camt054"

	MandateNone      = "none"
	MandateLegacyLog = "legacy_mandate_log"
)

// Camt054Settings configure the camt054 preset.
type Camt054Settings struct {
	// Dir is where the files go: a volume the site's IFS reads.
	Dir string
	// AccountIBAN or AccountID identifies the cash account the entries
	// are booked on, as the site's External Payment Parameters know it.
	AccountIBAN string
	AccountID   string
}

// MixedPaymentSettings name the Mixed Payment projection's parts. The
// process is documented by IFS; these OData names are not, and must be
// checked against the tenant (see docs/ifs.md).
type MixedPaymentSettings struct {
	Projection     string
	EntitySet      string
	LumpSumSet     string
	TransactionSet string
	ApproveAction  string
	CancelAction   string
	// ReferenceField is the mixed payment field that holds the outcome id,
	// by which a repeated write finds what the first one created.
	ReferenceField string
	Institute      string
	CashAccount    string
}

// EntitySettings says where an entity set lives and how its fields are named.
type EntitySettings struct {
	Projection string
	EntitySet  string
	// Filter is an OData condition every row read must meet (for invoices:
	// ready for collection). Empty means none.
	Filter string
	// ReadyStates, when Filter was built from them, are the Objstate
	// values Filter accepts: should IFS refuse a $filter on Objstate, the
	// client filters on them itself.
	ReadyStates []string
	KeyNumeric  bool
	// Fields maps logical names (see the package documentation) to IFS
	// field names; an empty name means the tenant has no such field.
	Fields map[string]string
	// Extra are further IFS fields read into the events' erp_fields.
	Extra []string
}

// Logical field names.
const (
	FieldCompany        = "company"
	FieldKey            = "key"
	FieldModified       = "modified"
	FieldNumber         = "number"
	FieldCustomer       = "customer"
	FieldOpenAmount     = "open_amount"
	FieldGrossAmount    = "gross_amount"
	FieldCurrency       = "currency"
	FieldInvoiceDate    = "invoice_date"
	FieldDueDate        = "due_date"
	FieldPaymentTerms   = "payment_terms"
	FieldBusinessUnit   = "business_unit"
	FieldName           = "name"
	FieldEmail          = "email"
	FieldPhone          = "phone"
	FieldAddress1       = "address1"
	FieldAddress2       = "address2"
	FieldCity           = "city"
	FieldRegion         = "region"
	FieldPostalCode     = "postal_code"
	FieldCountry        = "country"
	FieldLanguage       = "language"
	FieldIdentityNumber = "identity_number"
	FieldAccountHolder  = "account_holder"
	FieldIBAN           = "iban"
	FieldAccountNumber  = "account_number"
	FieldBranchCode     = "branch_code"
	FieldBankCode       = "bank_code"
	FieldBankCountry    = "bank_country"
)

// DefaultInvoiceFields are the IFS names of the logical invoice fields.
func DefaultInvoiceFields() map[string]string {
	return map[string]string{
		FieldCompany:      "Company",
		FieldKey:          "InvoiceId",
		FieldNumber:       "InvoiceNo",
		FieldCustomer:     "Identity",
		FieldOpenAmount:   "OpenAmount",
		FieldGrossAmount:  "GrossAmount",
		FieldCurrency:     "Currency",
		FieldInvoiceDate:  "InvoiceDate",
		FieldDueDate:      "DueDate",
		FieldPaymentTerms: "PayTermId",
		FieldBusinessUnit: "",
		FieldModified:     "Rowversion",
	}
}

// DefaultCustomerFields are the IFS names of the logical fields read from
// the customer set itself (CustomerInfoSet: enterprise-wide, keyed by
// CustomerId, no company). The company, contact, address and bank details
// come from the customer's other entities, see CustomerParts.
func DefaultCustomerFields() map[string]string {
	return map[string]string{
		FieldKey:            "CustomerId",
		FieldName:           "Name",
		FieldCountry:        "Country",
		FieldLanguage:       "DefaultLanguage",
		FieldIdentityNumber: "AssociationNo",
		FieldModified:       "Rowversion",
	}
}

// DefaultBankFields are the IFS names of the logical fields of a
// customer's payment address (inferred; see docs/ifs.md).
func DefaultBankFields() map[string]string {
	return map[string]string{
		FieldAccountHolder: "AccountHolder",
		FieldIBAN:          "Iban",
		FieldAccountNumber: "Account",
		FieldBranchCode:    "ClearingNumber",
		FieldBankCode:      "BankCode",
		FieldBankCountry:   "BankCountry",
	}
}

// CustomerParts name the entity sets, in the customer projection, that
// hold what standard IFS keeps apart from CustomerInfo.
type CustomerParts struct {
	// CompanySet (IdentityInvoiceInfo: Company, Identity, PartyType,
	// DefCurrency): a customer belongs to a company when it has a row.
	CompanySet string
	// AddressSet (CustomerInfoAddress: CustomerId, AddressId, Address1,
	// Address2, City, County, ZipCode, Country); the lowest AddressId is used.
	AddressSet string
	// CommMethodSet (CustomerInfoCommMethod: CustomerId, CommId, MethodId,
	// Value, MethodDefault); the default E_MAIL and PHONE are used.
	CommMethodSet string
	// BankSet (payment addresses: Company, Identity, AddressId,
	// DefaultAddress and BankFields); the default one is used.
	BankSet    string
	BankFields map[string]string
}

// DefaultReadyStates are the invoice states ready for collection: posted
// and authorised, or partly paid.
var DefaultReadyStates = []string{"PostedAuth", "PartlyPaidPosted"}

// DefaultReadyFilter is the "ready for collection" condition for invoices
// of the given projection: posted and authorised, or partly paid.
func DefaultReadyFilter(projection string) string {
	return ReadyFilter(projection, "CustomerOrderInvState", DefaultReadyStates)
}

// ReadyFilter is the condition "Objstate is one of states", with the
// values qualified by the projection's state enumeration as IFS requires.
func ReadyFilter(projection, enum string, states []string) string {
	terms := make([]string, len(states))
	for i, st := range states {
		terms[i] = "Objstate eq IfsApp." + projection + "." + enum + "'" + st + "'"
	}
	return strings.Join(terms, " or ")
}

var (
	requiredInvoiceFields  = []string{FieldCompany, FieldKey, FieldModified, FieldOpenAmount, FieldCurrency}
	requiredCustomerFields = []string{FieldKey, FieldModified, FieldName}
	identifier             = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// ParseSettings reads a connection's settings (as stored in the registry:
// JSON decoded into map[string]any) and fills in the defaults. Every
// problem is reported, joined, in one error.
func ParseSettings(raw map[string]any) (Settings, error) {
	r := reader{raw: raw}
	s := Settings{
		BaseURL:           strings.TrimRight(r.str("base_url", ""), "/"),
		ClientID:          r.str("client_id", ""),
		CompanyCodes:      r.strs("company_codes", nil),
		Realm:             r.str("realm", "ifs"),
		Scope:             r.str("scope", "openid microprofile-jwt"),
		TokenMaxAge:       r.duration("token_max_age", 60*time.Minute),
		APIPath:           "/" + strings.Trim(r.str("api_path", "/main/ifsapplications/projection/v1"), "/"),
		PageSize:          r.integer("page_size", MaxPageSize),
		RequestsPerMinute: r.integer("requests_per_minute", 1000),
		RequestTimeout:    r.duration("request_timeout", 60*time.Second),
		WriteAttempts:     r.integer("write_attempts", 5),

		Writeback: r.str("writeback", WritebackMixedPayment),
		MixedPayment: MixedPaymentSettings{
			Projection:     r.name("mixed_payment_projection", "MixedPaymentHandling"),
			EntitySet:      r.name("mixed_payment_entity_set", "MixedPaymentSet"),
			LumpSumSet:     r.name("lump_sum_entity_set", "MixedPaymentLumpSumSet"),
			TransactionSet: r.name("mixed_payment_transaction_entity_set", "MixedPaymentTransactionSet"),
			ApproveAction:  r.name("approve_action", "MixedPayment_Approve"),
			CancelAction:   r.name("cancel_action", "MixedPayment_Cancel"),
			ReferenceField: r.name("mixed_payment_reference_field", "Description"),
			Institute:      r.str("payment_institute", "GOCARDLESS"),
			CashAccount:    r.str("cash_account", "GOCARDLESS"),
		},
		Camt054: Camt054Settings{
			Dir:         r.str("camt054_dir", ""),
			AccountIBAN: r.str("camt054_account_iban", ""),
			AccountID:   r.str("camt054_account_id", "GOCARDLESS"),
		},
		MandateWriteback:    r.str("mandate_writeback", MandateNone),
		MandateLogEntitySet: r.name("mandate_log_entity_set", "DirectDebitMandateLogSet"),
		MandateAction:       r.name("mandate_action", "CustomerInfo_RegisterDirectDebitMandate"),
		ReceiptOn:           r.str("receipt_on", ReceiptOnConfirmed),
		PayoutFees:          map[string]FeeAccounts{},
	}
	invProjection := r.name("invoice_projection", "CustomerOrderInvoiceHandling")
	states := r.names("invoice_ready_states", DefaultReadyStates)
	if len(states) == 0 {
		r.fail("invoice_ready_states", "must name at least one state")
	}
	enum := r.name("invoice_state_enum", "CustomerOrderInvState")
	filter := r.str("invoice_ready_filter", "")
	if filter != "" {
		// A filter of the site's own: it cannot be checked on our side.
		states = nil
	} else {
		filter = ReadyFilter(invProjection, enum, states)
	}
	s.Invoices = EntitySettings{
		Projection:  invProjection,
		EntitySet:   r.name("invoice_entity_set", "CustomerOrderInvHeadSet"),
		Filter:      filter,
		ReadyStates: states,
		KeyNumeric:  r.boolean("invoice_key_numeric", true),
		Fields:      r.fields("invoice_fields", DefaultInvoiceFields(), requiredInvoiceFields),
		Extra:       r.names("invoice_extra_fields", []string{"Objstate", "PartyType"}),
	}
	s.Customers = EntitySettings{
		Projection: r.name("customer_projection", "CustomerHandling"),
		EntitySet:  r.name("customer_entity_set", "CustomerInfoSet"),
		Filter:     r.str("customer_filter", ""),
		KeyNumeric: r.boolean("customer_key_numeric", false),
		Fields:     r.fields("customer_fields", DefaultCustomerFields(), requiredCustomerFields),
		Extra:      r.names("customer_extra_fields", nil),
	}
	s.CustomerParts = CustomerParts{
		CompanySet:    r.name("customer_company_entity_set", "IdentityInvoiceInfoSet"),
		AddressSet:    r.name("customer_address_entity_set", "CustomerInfoAddressSet"),
		CommMethodSet: r.name("customer_contact_entity_set", "CustomerInfoCommMethodSet"),
		BankSet:       r.name("customer_bank_entity_set", "PaymentAddressSet"),
		BankFields:    r.fields("customer_bank_fields", DefaultBankFields(), nil),
	}
	s.TokenURL = r.str("token_url", s.BaseURL+"/auth/realms/"+url.PathEscape(s.Realm)+"/protocol/openid-connect/token")

	if u, err := url.Parse(s.BaseURL); s.BaseURL == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		r.fail("base_url", "must be an http(s) URL, got %q", s.BaseURL)
	}
	if u, err := url.Parse(s.TokenURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		r.fail("token_url", "must be an http(s) URL, got %q", s.TokenURL)
	}
	if s.ClientID == "" {
		r.fail("client_id", "is required")
	}
	if len(s.CompanyCodes) == 0 {
		r.fail("company_codes", "must be a non-empty list")
	}
	for _, c := range s.CompanyCodes {
		if c == "" || strings.ContainsAny(c, ".*> \t") {
			r.fail("company_codes", "company %q cannot be part of a NATS subject", c)
		}
	}
	if s.PageSize < 1 || s.PageSize > MaxPageSize {
		r.fail("page_size", "must be between 1 and %d, got %d", MaxPageSize, s.PageSize)
	}
	if s.RequestsPerMinute < 1 {
		r.fail("requests_per_minute", "must be positive, got %d", s.RequestsPerMinute)
	}
	if s.TokenMaxAge < time.Minute {
		r.fail("token_max_age", "must be at least 1m, got %s", s.TokenMaxAge)
	}
	if s.RequestTimeout <= 0 {
		r.fail("request_timeout", "must be positive, got %s", s.RequestTimeout)
	}
	if s.Writeback != WritebackMixedPayment && s.Writeback != WritebackCamt054 {
		r.fail("writeback", "must be %q or %q, got %q", WritebackMixedPayment, WritebackCamt054, s.Writeback)
	}
	if s.Writeback == WritebackCamt054 && !filepath.IsAbs(s.Camt054.Dir) {
		r.fail("camt054_dir", "writeback camt054 needs an absolute directory, got %q", s.Camt054.Dir)
	}
	if s.MandateWriteback != MandateNone && s.MandateWriteback != MandateLegacyLog {
		r.fail("mandate_writeback", "must be %q or %q, got %q", MandateNone, MandateLegacyLog, s.MandateWriteback)
	}
	if len(s.MixedPayment.Institute) > 20 || len(s.MixedPayment.CashAccount) > 20 {
		r.fail("cash_account", "payment_institute and cash_account are IFS identifiers of at most 20 characters")
	}
	if s.WriteAttempts < 1 {
		r.fail("write_attempts", "must be at least 1, got %d", s.WriteAttempts)
	}
	if s.ReceiptOn != ReceiptOnConfirmed && s.ReceiptOn != ReceiptOnPayout {
		r.fail("receipt_on", "must be %q or %q, got %q", ReceiptOnConfirmed, ReceiptOnPayout, s.ReceiptOn)
	}
	taxes := r.strMap("payout_fee_tax_accounts")
	for company, acct := range r.strMap("payout_fee_accounts") {
		s.PayoutFees[company] = FeeAccounts{Account: acct, TaxAccount: taxes[company]}
	}
	for company := range taxes {
		if _, ok := s.PayoutFees[company]; !ok {
			r.fail("payout_fee_tax_accounts", "company %q has a tax account but no payout_fee_accounts entry", company)
		}
	}
	for _, company := range slices.Sorted(maps.Keys(s.PayoutFees)) {
		fa := s.PayoutFees[company]
		if !slices.Contains(s.CompanyCodes, company) {
			r.fail("payout_fee_accounts", "company %q is not one of company_codes", company)
		}
		if !glAccount.MatchString(fa.Account) {
			r.fail("payout_fee_accounts", "company %q: %q is not an IFS account (1-20 letters, digits, _ . -)", company, fa.Account)
		}
		if fa.TaxAccount != "" && !glAccount.MatchString(fa.TaxAccount) {
			r.fail("payout_fee_tax_accounts", "company %q: %q is not an IFS account (1-20 letters, digits, _ . -)", company, fa.TaxAccount)
		}
	}
	if err := errors.Join(r.errs...); err != nil {
		return Settings{}, fmt.Errorf("ifs settings: %w", err)
	}
	return s, nil
}

// reader reads typed values out of a settings map and collects problems.
type reader struct {
	raw  map[string]any
	errs []error
}

func (r *reader) fail(key, format string, args ...any) {
	r.errs = append(r.errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
}

func (r *reader) get(key string) (any, bool) {
	v, ok := r.raw[key]
	return v, ok && v != nil
}

func (r *reader) str(key, def string) string {
	v, ok := r.get(key)
	if !ok {
		return def
	}
	s, isStr := v.(string)
	if !isStr {
		r.fail(key, "must be a string")
		return def
	}
	if s = strings.TrimSpace(s); s == "" {
		return def
	}
	return s
}

func (r *reader) name(key, def string) string {
	s := r.str(key, def)
	if !identifier.MatchString(s) {
		r.fail(key, "%q is not an OData identifier", s)
	}
	return s
}

func (r *reader) strs(key string, def []string) []string {
	v, ok := r.get(key)
	if !ok {
		return def
	}
	list, isList := v.([]any)
	if !isList {
		r.fail(key, "must be a list of strings")
		return def
	}
	out := make([]string, 0, len(list))
	for _, e := range list {
		s, isStr := e.(string)
		if !isStr {
			r.fail(key, "must be a list of strings")
			return def
		}
		out = append(out, strings.TrimSpace(s))
	}
	return out
}

// strMap reads an object of strings (at most 1000 entries).
func (r *reader) strMap(key string) map[string]string {
	out := map[string]string{}
	v, ok := r.get(key)
	if !ok {
		return out
	}
	m, isMap := v.(map[string]any)
	if !isMap || len(m) > 1000 {
		r.fail(key, "must be an object of at most 1000 strings")
		return out
	}
	for k, e := range m {
		s, isStr := e.(string)
		if !isStr {
			r.fail(key, "%q must be a string", k)
			continue
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(s)
	}
	return out
}

func (r *reader) names(key string, def []string) []string {
	out := r.strs(key, def)
	for _, n := range out {
		if !identifier.MatchString(n) {
			r.fail(key, "%q is not an OData identifier", n)
		}
	}
	return out
}

func (r *reader) integer(key string, def int) int {
	v, ok := r.get(key)
	if !ok {
		return def
	}
	switch n := v.(type) {
	case float64:
		if n == math.Trunc(n) && math.Abs(n) < 1<<31 {
			return int(n)
		}
	case json.Number:
		if i, err := strconv.Atoi(n.String()); err == nil {
			return i
		}
	case string:
		if i, err := strconv.Atoi(strings.TrimSpace(n)); err == nil {
			return i
		}
	}
	r.fail(key, "must be an integer")
	return def
}

func (r *reader) boolean(key string, def bool) bool {
	v, ok := r.get(key)
	if !ok {
		return def
	}
	b, isBool := v.(bool)
	if !isBool {
		r.fail(key, "must be true or false")
		return def
	}
	return b
}

func (r *reader) duration(key string, def time.Duration) time.Duration {
	v, ok := r.get(key)
	if !ok {
		return def
	}
	s, isStr := v.(string)
	if !isStr {
		r.fail(key, `must be a duration string such as "60m"`)
		return def
	}
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		r.fail(key, `must be a duration string such as "60m", got %q`, s)
		return def
	}
	return d
}

// fields overlays the renames in key onto defaults.
func (r *reader) fields(key string, defaults map[string]string, required []string) map[string]string {
	v, ok := r.get(key)
	if ok {
		m, isMap := v.(map[string]any)
		if !isMap {
			r.fail(key, "must be an object of field names")
			return defaults
		}
		for logical, ifsName := range m {
			if _, known := defaults[logical]; !known {
				r.fail(key, "unknown field %q", logical)
				continue
			}
			s, isStr := ifsName.(string)
			if ifsName != nil && !isStr {
				r.fail(key, "field %q must name an IFS field", logical)
				continue
			}
			defaults[logical] = strings.TrimSpace(s)
		}
	}
	for logical, ifsName := range defaults {
		if ifsName == "" {
			if slices.Contains(required, logical) {
				r.fail(key, "field %q is required", logical)
			}
			continue
		}
		if !identifier.MatchString(ifsName) {
			r.fail(key, "field %q: %q is not an OData identifier", logical, ifsName)
		}
	}
	return defaults
}
