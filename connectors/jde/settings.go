package jde

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ml-connector/ml-connector/platform/secrets"
)

// Settings is what a JDE connection's settings (the JSON object in the
// connection registry) say to the client and the writer. Keys:
//
//	base_url, username         required
//	ais_nodes                  base URLs of the AIS nodes behind base_url's
//	                           load balancer whose next-page links may be
//	                           followed (e.g. ["https://ais1:9300"])
//	environment, role          AIS login; role defaults to *ALL
//	device_name                default "ml-connector"
//	refresh_every, timeout     durations ("50m", "60s")
//	page_size                  data service maxPageSize (default 500)
//	company_codes              JDE companies (KCO/CO) this connection serves
//	amount_format              "decimal" (default) or "implied"
//	implied_decimals           with "implied": a number, or "currency" (default)
//	timezone                   IANA zone of JDE's UPMJ/UPMT stamps (default UTC)
//	gl_accounts                business unit -> GL bank account for receipts
//	default_gl_account         for documents without a business unit
//	receipt_on                 "confirmed" (default), "paid_out" or "payout"
//	payout_fee_accounts        company -> GL account (BU.Object.Sub) of
//	                           GoCardless fees, debited by the payout's
//	                           fee journal entry
//	payout_fee_tax_accounts    company -> GL account of the tax in the fees
//	                           (optional; else it stays in the fee account)
//	payout_bank_accounts       company -> GL bank account the payouts reach,
//	                           credited by the fee journal entry (and, with
//	                           receipt_on "payout", the receipts' GLBA);
//	                           required for every company with a fee account
//	write_preset               "standard" (default): receipts as F03B13Z1
//	                           rows processed by R03B551; "orchestrations":
//	                           ml-connector's receipt orchestration
//	orchestrations             {"receipts_input","receipt","failure",
//	                           "refund","mandate","journal_entry"} names
//	invoice_doc_types          F03B11 document types collected (default ["RI"])
//	refund_doc_types           F03B11 document types that are refunds (default ["RF"])
//	terms_recurrence           payment terms code -> subscription schedule, e.g.
//	                           {"M01": {"interval_unit": "monthly", "day_of_month": 1}}
type Settings struct {
	BaseURL      string
	Nodes        []string
	Username     string
	Environment  string
	Role         string
	DeviceName   string
	RefreshEvery time.Duration
	Timeout      time.Duration
	PageSize     int
	Companies    []string
	Amounts      AmountFormat
	Location     *time.Location
	Writer       WriterConfig
	// InvoiceDocTypes and RefundDocTypes sort F03B11 rows into invoices
	// to collect and refunds to pay; rows of other types are ignored.
	InvoiceDocTypes []string
	RefundDocTypes  []string
	// TermsRecurrence maps a payment terms code (F03B11 PTC) to the
	// schedule of a subscription; invoices with other terms are one-off
	// payments.
	TermsRecurrence map[string]Recurrence
}

// Recurrence is a subscription schedule in GoCardless's terms.
type Recurrence struct {
	IntervalUnit string `json:"interval_unit"` // weekly, monthly or yearly
	Interval     int    `json:"interval"`      // 0 means 1
	DayOfMonth   int    `json:"day_of_month"`  // 1-28, -1 last day, 0 any
	Count        int    `json:"count"`         // 0 until cancelled
	Month        int    `json:"month"`         // 1-12 for yearly, 0 any
}

func (rc Recurrence) validate() error {
	switch rc.IntervalUnit {
	case "weekly", "monthly", "yearly":
	default:
		return fmt.Errorf("interval_unit %q must be weekly, monthly or yearly", rc.IntervalUnit)
	}
	if rc.Interval < 0 || rc.Count < 0 || rc.DayOfMonth < -1 || rc.DayOfMonth > 28 || rc.Month < 0 || rc.Month > 12 {
		return errors.New("interval and count must not be negative, day_of_month must be -1 to 28, month 0 to 12")
	}
	return nil
}

// ParseSettings reads and checks a JDE connection's settings, reporting
// every problem at once.
func ParseSettings(m map[string]any) (Settings, error) {
	r := settingsReader{m: m}
	s := Settings{
		BaseURL:      r.str("base_url", ""),
		Nodes:        r.strList("ais_nodes", nil),
		Username:     r.str("username", ""),
		Environment:  r.str("environment", ""),
		Role:         r.str("role", DefaultRole),
		DeviceName:   r.str("device_name", DefaultDeviceName),
		RefreshEvery: r.duration("refresh_every", DefaultRefreshEvery),
		Timeout:      r.duration("timeout", DefaultTimeout),
		PageSize:     r.int("page_size", DefaultPageSize),
		Companies:    r.strList("company_codes", nil),
		Amounts:      AmountFormat{Decimals: CurrencyDecimals},
		Location:     time.UTC,
		Writer: WriterConfig{
			GLAccounts:       map[string]string{},
			DefaultGLAccount: r.str("default_gl_account", ""),
			ReceiptOn:        ReceiptOn(r.str("receipt_on", string(ReceiptOnConfirmed))),
			Preset:           Preset(r.str("write_preset", string(PresetStandard))),
			Orchestrations:   DefaultOrchestrations,
		},
		InvoiceDocTypes: r.strList("invoice_doc_types", []string{"RI"}),
		RefundDocTypes:  r.strList("refund_doc_types", []string{"RF"}),
		TermsRecurrence: map[string]Recurrence{},
	}
	if s.BaseURL == "" || s.Username == "" {
		r.fail("base_url and username are required")
	}
	if len(s.Nodes) > 64 {
		r.fail("ais_nodes must list at most 64 nodes")
	}
	for _, n := range s.Nodes {
		switch u, err := url.Parse(n); {
		case err == nil && u.User != nil:
			r.fail("ais_nodes: an entry carries credentials; list plain base URLs")
		case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
			r.fail(fmt.Sprintf("ais_nodes: %q must be an absolute http(s) URL", n))
		}
	}
	if len(s.Companies) == 0 {
		r.fail("company_codes must list at least one company")
	}
	if s.PageSize < 1 {
		r.fail("page_size must be at least 1")
	}
	switch format := r.str("amount_format", "decimal"); format {
	case "decimal":
	case "implied":
		s.Amounts.Implied = true
		switch v := m["implied_decimals"].(type) {
		case nil:
		case string:
			if v != "currency" {
				r.fail(`implied_decimals must be a number or "currency"`)
			}
		default:
			s.Amounts.Decimals = r.int("implied_decimals", 0)
			if s.Amounts.Decimals < 0 || s.Amounts.Decimals > 6 {
				r.fail("implied_decimals must be between 0 and 6")
			}
		}
	default:
		r.fail(fmt.Sprintf(`amount_format %q must be "decimal" or "implied"`, format))
	}
	if tz := r.str("timezone", "UTC"); tz != "UTC" {
		loc, err := time.LoadLocation(tz)
		if err != nil {
			r.fail(fmt.Sprintf("timezone %q: %v", tz, err))
		} else {
			s.Location = loc
		}
	}
	for bu, acct := range r.strMap("gl_accounts") {
		s.Writer.GLAccounts[strings.TrimSpace(bu)] = acct
	}
	switch s.Writer.Preset {
	case PresetStandard:
		// F03B13Z1 EDUS, the user running the process, is alpha 10.
		if s.Writer.ReceiptsUser = s.Username; len(s.Username) > 10 {
			r.fail(`username must be at most 10 characters for write_preset "standard" (F03B13Z1 EDUS)`)
		}
	case PresetOrchestrations:
	default:
		r.fail(fmt.Sprintf(`write_preset %q must be "standard" or "orchestrations"`, s.Writer.Preset))
	}
	if s.Writer.ReceiptOn != ReceiptOnConfirmed && s.Writer.ReceiptOn != ReceiptOnPaidOut && s.Writer.ReceiptOn != ReceiptOnPayout {
		r.fail(fmt.Sprintf(`receipt_on %q must be "confirmed", "paid_out" or "payout"`, s.Writer.ReceiptOn))
	}
	s.Writer.PayoutAccounts = r.payoutAccounts(s.Companies)
	if s.Writer.ReceiptOn == ReceiptOnPayout {
		for _, co := range s.Companies {
			if s.Writer.PayoutAccounts[co].Bank == "" {
				r.fail(fmt.Sprintf(`receipt_on "payout" needs payout_bank_accounts.%s: the GL bank account of company %s's deposits`, co, co))
			}
		}
	}
	for key, name := range r.strMap("orchestrations") {
		if !isIdent(name) {
			r.fail(fmt.Sprintf("orchestrations.%s %q is not an orchestration name", key, name))
			continue
		}
		switch key {
		case "receipts_input":
			s.Writer.Orchestrations.ReceiptsInput = name
		case "receipt":
			s.Writer.Orchestrations.Receipt = name
		case "failure":
			s.Writer.Orchestrations.Failure = name
		case "refund":
			s.Writer.Orchestrations.Refund = name
		case "mandate":
			s.Writer.Orchestrations.Mandate = name
		case "journal_entry":
			s.Writer.Orchestrations.JournalEntry = name
		default:
			r.fail(fmt.Sprintf("orchestrations.%s is unknown (want receipts_input, receipt, failure, refund, mandate, journal_entry)", key))
		}
	}
	for _, t := range s.InvoiceDocTypes {
		if slices.Contains(s.RefundDocTypes, t) {
			r.fail(fmt.Sprintf("document type %q cannot be both an invoice and a refund type", t))
		}
	}
	if raw, ok := m["terms_recurrence"]; ok {
		terms, ok := raw.(map[string]any)
		if !ok {
			r.fail("terms_recurrence must be an object")
		}
		for code, v := range terms {
			var rc Recurrence
			b, _ := json.Marshal(v)
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.DisallowUnknownFields()
			err := dec.Decode(&rc)
			if err == nil {
				err = rc.validate()
			}
			if err != nil {
				r.fail(fmt.Sprintf("terms_recurrence.%s: %v", code, err))
				continue
			}
			s.TermsRecurrence[strings.TrimSpace(code)] = rc
		}
	}
	if err := r.err(); err != nil {
		return Settings{}, fmt.Errorf("%w: jde settings: %w", ErrInvalid, err)
	}
	return s, nil
}

// ClientConfig is the client configuration for these settings.
func (s Settings) ClientConfig(name string, password secrets.Value) Config {
	return Config{
		Name:         name,
		BaseURL:      s.BaseURL,
		Nodes:        s.Nodes,
		Username:     s.Username,
		Password:     password,
		DeviceName:   s.DeviceName,
		Environment:  s.Environment,
		Role:         s.Role,
		RefreshEvery: s.RefreshEvery,
		PageSize:     s.PageSize,
		Timeout:      s.Timeout,
	}
}

// settingsReader reads typed values out of a JSON object and collects
// every problem, so an operator sees them all at once.
type settingsReader struct {
	m    map[string]any
	errs []error
}

func (r *settingsReader) fail(msg string) { r.errs = append(r.errs, errors.New(msg)) }
func (r *settingsReader) err() error      { return errors.Join(r.errs...) }

func (r *settingsReader) str(key, def string) string {
	switch v := r.m[key].(type) {
	case nil:
		return def
	case string:
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
		return def
	}
	r.fail(key + " must be a string")
	return def
}

func (r *settingsReader) int(key string, def int) int {
	switch v := r.m[key].(type) {
	case nil:
		return def
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1<<31 {
			return int(v)
		}
	case int:
		return v
	}
	r.fail(key + " must be a whole number")
	return def
}

func (r *settingsReader) duration(key string, def time.Duration) time.Duration {
	s := r.str(key, "")
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		r.fail(fmt.Sprintf("%s %q must be a positive duration such as \"50m\"", key, s))
		return def
	}
	return d
}

func (r *settingsReader) strList(key string, def []string) []string {
	switch v := r.m[key].(type) {
	case nil:
		return def
	case []string:
		return v
	case []any:
		out := make([]string, 0, len(v))
		for _, item := range v {
			s, ok := item.(string)
			if !ok || strings.TrimSpace(s) == "" {
				r.fail(key + " must be a list of non-empty strings")
				return def
			}
			out = append(out, strings.TrimSpace(s))
		}
		return out
	}
	r.fail(key + " must be a list of strings")
	return def
}

// glAccountShape is a JDE account in business unit.object.subsidiary form
// (account mode blank: BU alpha 12, object alpha 6, subsidiary alpha 8).
var glAccountShape = regexp.MustCompile(`^[A-Za-z0-9]{1,12}\.[A-Za-z0-9]{1,6}(\.[A-Za-z0-9]{1,8})?$`)

// payoutAccounts reads the payout_* account maps, each keyed by a company
// of companies.
func (r *settingsReader) payoutAccounts(companies []string) map[string]PayoutAccounts {
	out := map[string]PayoutAccounts{}
	fees, taxes, banks := r.strMap("payout_fee_accounts"), r.strMap("payout_fee_tax_accounts"), r.strMap("payout_bank_accounts")
	for key, m := range map[string]map[string]string{"payout_fee_accounts": fees, "payout_fee_tax_accounts": taxes, "payout_bank_accounts": banks} {
		for _, co := range slices.Sorted(maps.Keys(m)) {
			if !slices.Contains(companies, co) {
				r.fail(fmt.Sprintf("%s.%s: company %q is not one of company_codes", key, co, co))
			}
			if !glAccountShape.MatchString(m[co]) {
				r.fail(fmt.Sprintf("%s.%s: %q is not a JDE account BU.Object[.Subsidiary] (at most 12.6.8 letters and digits)", key, co, m[co]))
			}
		}
	}
	for co, acct := range fees {
		if banks[co] == "" {
			r.fail(fmt.Sprintf("payout_bank_accounts.%s is required: the fee journal entry of company %s credits it", co, co))
		}
		out[co] = PayoutAccounts{Fee: acct, FeeTax: taxes[co], Bank: banks[co]}
	}
	for co := range taxes {
		if fees[co] == "" {
			r.fail(fmt.Sprintf("payout_fee_tax_accounts.%s has no payout_fee_accounts.%s", co, co))
		}
	}
	for co, bank := range banks {
		pa := out[co]
		pa.Bank = bank
		out[co] = pa
	}
	return out
}

func (r *settingsReader) strMap(key string) map[string]string {
	out := map[string]string{}
	switch v := r.m[key].(type) {
	case nil:
	case map[string]string:
		return v
	case map[string]any:
		for k, item := range v {
			s, ok := item.(string)
			if !ok || strings.TrimSpace(s) == "" {
				r.fail(fmt.Sprintf("%s.%s must be a non-empty string", key, k))
				continue
			}
			out[k] = strings.TrimSpace(s)
		}
	default:
		r.fail(key + " must be an object of strings")
	}
	return out
}
