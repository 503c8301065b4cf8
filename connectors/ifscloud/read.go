package ifscloud

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Watermark is the position of a poll: the modified time and key of the
// newest row already handled. Rows are read in (modified, key) order, so
// rows sharing a modified time are told apart by their key and none is
// skipped at a page boundary. The zero Watermark reads from the beginning;
// a Watermark with a time and no key reads from that time on, rows
// modified at it included (a poller reading again over an overlap window).
type Watermark struct {
	Time time.Time
	Key  string
}

// IsZero reports whether w is the start.
func (w Watermark) IsZero() bool { return w.Time.IsZero() }

// Invoice is an IFS invoice as read: amounts as exact decimal text, dates
// as YYYY-MM-DD.
type Invoice struct {
	Company      string
	InvoiceID    string
	InvoiceNo    string
	CustomerID   string
	OpenAmount   string
	GrossAmount  string
	Currency     string
	InvoiceDate  string
	DueDate      string
	PaymentTerms string
	BusinessUnit string
	Modified     time.Time
	// ETag is the entity's @odata.etag, its change stamp.
	ETag string
	// Fields holds the extra fields read (invoice_extra_fields) as text.
	Fields map[string]string
}

// Customer is an IFS customer as read.
type Customer struct {
	Company        string
	CustomerID     string
	Name           string
	Email          string
	Phone          string
	Address1       string
	Address2       string
	City           string
	Region         string
	PostalCode     string
	Country        string
	Language       string
	IdentityNumber string
	Bank           BankAccount
	// Modified is CustomerInfo's own modified time, which the customers'
	// watermark follows.
	Modified time.Time
	// PartsModified is the newest modified time of the customer's parts
	// (company row, addresses, contact methods, payment addresses) read
	// with it; zero when none was readable.
	PartsModified time.Time
	ETag          string
	Fields        map[string]string
}

// Changed is when IFS last changed any row the customer was read from:
// editing only a part (a new payment address) leaves Modified as it was.
// A part row deleted is not seen, so a snapshot read after one may be
// older by this than the one before it.
func (cu Customer) Changed() time.Time {
	if cu.PartsModified.After(cu.Modified) {
		return cu.PartsModified
	}
	return cu.Modified
}

// BankAccount is the customer's account to collect from, as IFS holds it.
type BankAccount struct {
	Holder        string
	IBAN          string
	AccountNumber string
	BranchCode    string
	BankCode      string
	Country       string
	Currency      string
}

// Invalid is a row that could not be read as a record (a missing or
// malformed required field). It is reported, not dropped silently, and the
// watermark moves past it: once fixed in IFS, its new modified time brings
// it back.
type Invalid struct {
	Key      string
	Version  string
	Modified time.Time
	Err      error
}

// InvoicePage is one page of changed invoices, in (modified, key) order.
type InvoicePage struct {
	Invoices []Invoice
	Invalid  []Invalid
	// Last is the watermark after this page.
	Last Watermark
}

// CustomerPage is one page of changed customers.
type CustomerPage struct {
	Customers []Customer
	Invalid   []Invalid
	Last      Watermark
}

// Invoices reads, for one company, the invoices that are ready for
// collection and changed after the watermark, calling fn once per page.
// It stops at the first error fn returns; the pages before it were
// handled, so a caller that saves each page's Last resumes exactly there.
func (c *Client) Invoices(ctx context.Context, company string, after Watermark, fn func(InvoicePage) error) error {
	es := c.s.Invoices
	return c.list(ctx, es, company, after, func(recs []record, last Watermark) error {
		p := InvoicePage{Last: last}
		for _, rec := range recs {
			inv, err := readInvoice(es, company, rec)
			if err != nil {
				p.Invalid = append(p.Invalid, rec.invalid(err))
				continue
			}
			p.Invoices = append(p.Invoices, inv)
		}
		return fn(p)
	})
}

// Customers reads, for one company, the customers changed after the
// watermark, calling fn once per page. The changes are those of the
// enterprise-wide customer (CustomerInfoSet, no company); a customer is
// one of the company's when the company-specific set has it, and its
// contact, address and bank details are read from their own sets, a
// chunk of customers per request (see readParts).
func (c *Client) Customers(ctx context.Context, company string, after Watermark, fn func(CustomerPage) error) error {
	return c.list(ctx, c.s.Customers, company, after, func(recs []record, last Watermark) error {
		p, err := c.customerPage(ctx, company, recs)
		if err != nil {
			return err
		}
		p.Last = last
		return fn(p)
	})
}

// customerPage reads the parts of the customers recs in company and
// makes them customers; those that are not the company's are left out.
func (c *Client) customerPage(ctx context.Context, company string, recs []record) (CustomerPage, error) {
	var p CustomerPage
	var ids []string
	for _, rec := range recs {
		if rec.err == nil {
			ids = append(ids, rec.key)
		}
	}
	parts, err := c.readParts(ctx, company, ids)
	if err != nil {
		return CustomerPage{}, err
	}
	for _, rec := range recs {
		part := parts[rec.key]
		if rec.err == nil && part == nil {
			continue // not a customer of this company
		}
		cu, err := readCustomer(c.s.Customers, c.s.CustomerParts, company, rec, part)
		if err != nil {
			p.Invalid = append(p.Invalid, rec.invalid(err))
			continue
		}
		p.Customers = append(p.Customers, cu)
	}
	return p, nil
}

// record is a row with its position.
type record struct {
	row      row
	key      string
	modified time.Time
	err      error // key or modified unreadable
}

func (r record) invalid(err error) Invalid {
	return Invalid{Key: r.key, Version: r.row.etag(), Modified: r.modified, Err: err}
}

// list reads the rows of es changed after the watermark, in windows of
// page_size rows ($top): within a window it follows @odata.nextLink, and a
// full window is followed by a new query from the watermark it reached.
// That keeps every request a page and never trusts a server-side cursor
// across more than one window.
//
// Some IFS releases refuse a $filter on Objstate (400). When the entity's
// filter was built from its ready states, the client then asks once more
// without it, reading Objstate instead, and from then on keeps only the
// rows in a ready state itself (and says so once in the log); the
// watermark still moves past the others, as the server's filter would
// have skipped them.
func (c *Client) list(ctx context.Context, es EntitySettings, company string, after Watermark, fn func([]record, Watermark) error) error {
	modified, key := es.Fields[FieldModified], es.Fields[FieldKey]
	for {
		local := len(es.ReadyStates) > 0 && c.stateFilter.Load()
		query := es
		if local {
			query.Filter = ""
			query.Extra = append(slices.Clone(es.Extra), "Objstate")
		}
		u := withQuery(c.setURL(es.Projection, es.EntitySet),
			[2]string{"$filter", changesFilter(query, company, after)},
			[2]string{"$select", selectList(query)},
			[2]string{"$orderby", modified + " asc," + key + " asc"},
			[2]string{"$top", fmt.Sprint(c.s.PageSize)},
		)
		start, got := after, 0
		first := true
		for u != "" {
			var p page
			if _, err := c.get(ctx, u, "list "+es.EntitySet, &p); err != nil {
				if first && !local && len(es.ReadyStates) > 0 && errors.Is(err, ErrInvalid) && c.stateFilterRefused(ctx, es, company) {
					break
				}
				return err
			}
			first = false
			if len(p.Value) > 0 {
				recs, last, err := position(es, p.Value, after)
				if err != nil {
					return fmt.Errorf("ifs list %s: %w", es.EntitySet, err)
				}
				if local {
					recs = slices.DeleteFunc(recs, func(r record) bool {
						st, _ := r.row.text("Objstate")
						return !slices.Contains(es.ReadyStates, st)
					})
				}
				if err := fn(recs, last); err != nil {
					return err
				}
				after = last
			}
			got += len(p.Value)
			u = ""
			if p.NextLink != "" {
				next, err := c.resolve(p.NextLink)
				if err != nil {
					return err
				}
				u = next
			}
		}
		if first && !local && c.stateFilter.Load() {
			continue // the same window again, filtering on our side
		}
		if got < c.s.PageSize {
			return nil
		}
		if after == start {
			return fmt.Errorf("ifs list %s: a full window of %d rows did not move the watermark past %s/%s",
				es.EntitySet, got, timeLit(after.Time), after.Key)
		}
	}
}

// stateFilterRefused tells whether the 400 a list met was IFS refusing
// the Objstate filter: the same query without it must be accepted. If so,
// the client filters on the ready states itself from now on.
func (c *Client) stateFilterRefused(ctx context.Context, es EntitySettings, company string) bool {
	probe := es
	probe.Filter = ""
	u := withQuery(c.setURL(es.Projection, es.EntitySet),
		[2]string{"$filter", changesFilter(probe, company, Watermark{})},
		[2]string{"$select", es.Fields[FieldKey] + ",Objstate"},
		[2]string{"$top", "1"},
	)
	var p page
	if _, err := c.get(ctx, u, "probe "+es.EntitySet, &p); err != nil {
		return false
	}
	c.stateFilter.Store(true)
	c.stateNotice.Do(func() {
		c.log.Warn("ifs refused the $filter on Objstate; reading every state and keeping the ready ones on our side",
			"connection", c.name, "entity_set", es.EntitySet, "ready_states", es.ReadyStates)
	})
	return true
}

// changesFilter selects one company's rows that meet the entity's filter
// and come after the watermark in (modified, key) order.
func changesFilter(es EntitySettings, company string, after Watermark) string {
	var terms []string
	if cf := es.Fields[FieldCompany]; cf != "" {
		terms = append(terms, cf+" eq "+stringLit(company))
	}
	if es.Filter != "" {
		terms = append(terms, "("+es.Filter+")")
	}
	f := strings.Join(terms, " and ")
	if !after.IsZero() {
		m, k, t := es.Fields[FieldModified], es.Fields[FieldKey], timeLit(after.Time)
		cond := m + " ge " + t
		if after.Key != "" {
			cond = "(" + m + " gt " + t + " or (" + m + " eq " + t + " and " + k + " gt " + keyLit(after.Key, es.KeyNumeric) + "))"
		}
		if f != "" {
			f += " and "
		}
		f += cond
	}
	return f
}

// readRecord reads a row's key and modified time.
func readRecord(es EntitySettings, r row) record {
	rec := record{row: r}
	var kerr, merr error
	rec.key, kerr = r.text(es.Fields[FieldKey])
	if kerr == nil && rec.key == "" {
		kerr = fmt.Errorf("key field %s is missing", es.Fields[FieldKey])
	}
	if kerr == nil && es.KeyNumeric && !numericKey.MatchString(rec.key) {
		kerr = fmt.Errorf("key field %s: %q is not a number", es.Fields[FieldKey], rec.key)
	}
	rec.modified, merr = r.instant(es.Fields[FieldModified])
	rec.err = errors.Join(kerr, merr)
	return rec
}

// position reads each row's key and modified time and returns the
// watermark after the page. Rows must come in modified order and after the
// previous watermark: a server that ignored $orderby or the filter would
// otherwise move the watermark past rows nobody read.
func position(es EntitySettings, rows []row, after Watermark) ([]record, Watermark, error) {
	recs := make([]record, len(rows))
	last := Watermark{}
	prev := after
	for i, r := range rows {
		rec := readRecord(es, r)
		recs[i] = rec
		if rec.err != nil {
			continue
		}
		if rec.modified.Before(prev.Time) || (rec.modified.Equal(prev.Time) && rec.key == prev.Key) {
			return nil, Watermark{}, fmt.Errorf("row %s (%s) is not after %s (%s): the server did not keep the order or filter",
				rec.key, timeLit(rec.modified), prev.Key, timeLit(prev.Time))
		}
		prev = Watermark{Time: rec.modified, Key: rec.key}
		last = prev
	}
	if last.IsZero() {
		return nil, Watermark{}, errors.New("no row of the page has a readable key and modified time")
	}
	return recs, last, nil
}

var currencyCode = regexp.MustCompile(`^[A-Z]{3}$`)

// fieldReader collects the first error of a series of field reads.
type fieldReader struct {
	r   row
	f   map[string]string
	err error
}

func (fr *fieldReader) text(logical string) string {
	s, err := fr.r.text(fr.f[logical])
	fr.keep(err)
	return s
}

func (fr *fieldReader) required(logical string) string {
	s := fr.text(logical)
	if s == "" && fr.err == nil {
		fr.err = fmt.Errorf("field %s is missing", fr.f[logical])
	}
	return s
}

func (fr *fieldReader) decimal(logical string, required bool) string {
	s, err := fr.r.decimal(fr.f[logical], required)
	fr.keep(err)
	return s
}

func (fr *fieldReader) date(logical string) string {
	s, err := fr.r.date(fr.f[logical])
	fr.keep(err)
	return s
}

func (fr *fieldReader) currency(logical string, required bool) string {
	s := fr.text(logical)
	if (s != "" || required) && !currencyCode.MatchString(s) && fr.err == nil {
		fr.err = fmt.Errorf("field %s: %q is not an ISO 4217 currency code", fr.f[logical], s)
	}
	return s
}

func (fr *fieldReader) extra(names []string) map[string]string {
	if len(names) == 0 {
		return nil
	}
	out := make(map[string]string, len(names))
	for _, n := range names {
		s, err := fr.r.text(n)
		fr.keep(err)
		if s != "" {
			out[n] = s
		}
	}
	return out
}

func (fr *fieldReader) keep(err error) {
	if fr.err == nil {
		fr.err = err
	}
}

// company checks that the row belongs to the company asked for, so a row
// from another company can never be published under this one's subject.
func (fr *fieldReader) company(want string) string {
	got := fr.required(FieldCompany)
	if fr.err == nil && got != want {
		fr.err = fmt.Errorf("row of company %q in an answer for company %q", got, want)
	}
	return got
}

func readInvoice(es EntitySettings, company string, rec record) (Invoice, error) {
	if rec.err != nil {
		return Invoice{}, rec.err
	}
	fr := &fieldReader{r: rec.row, f: es.Fields}
	inv := Invoice{
		Company:      fr.company(company),
		InvoiceID:    rec.key,
		InvoiceNo:    fr.text(FieldNumber),
		CustomerID:   fr.required(FieldCustomer),
		OpenAmount:   fr.decimal(FieldOpenAmount, true),
		GrossAmount:  fr.decimal(FieldGrossAmount, false),
		Currency:     fr.currency(FieldCurrency, true),
		InvoiceDate:  fr.date(FieldInvoiceDate),
		DueDate:      fr.date(FieldDueDate),
		PaymentTerms: fr.text(FieldPaymentTerms),
		BusinessUnit: fr.text(FieldBusinessUnit),
		Modified:     rec.modified,
		ETag:         rec.row.etag(),
		Fields:       fr.extra(es.Extra),
	}
	if inv.ETag == "" {
		fr.keep(errors.New("the row has no @odata.etag"))
	}
	if fr.err != nil {
		return Invoice{}, fr.err
	}
	return inv, nil
}

func readCustomer(es EntitySettings, cp CustomerParts, company string, rec record, part *customerPart) (Customer, error) {
	if rec.err != nil {
		return Customer{}, rec.err
	}
	fr := &fieldReader{r: rec.row, f: es.Fields}
	cu := Customer{
		Company:        company,
		CustomerID:     rec.key,
		Name:           fr.required(FieldName),
		Country:        fr.text(FieldCountry),
		Language:       fr.text(FieldLanguage),
		IdentityNumber: fr.text(FieldIdentityNumber),
		Modified:       rec.modified,
		ETag:           rec.row.etag(),
		Fields:         fr.extra(es.Extra),
	}
	if cu.ETag == "" {
		fr.keep(errors.New("the row has no @odata.etag"))
	}
	if fr.err != nil {
		return Customer{}, fr.err
	}
	if err := part.fill(&cu, cp); err != nil {
		return Customer{}, err
	}
	return cu, nil
}
