package ifscloud

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// A customer's address, contact methods, payment addresses and company
// data are entities of their own in IFS, each with its own modified time
// and ETag; changing one does not touch CustomerInfo. So besides the
// customers' own changes, a poll reads each part's changes and publishes
// the customers they belong to (#16).
const (
	PartCompany = "company" // CompanySet (IdentityInvoiceInfo), per company
	PartAddress = "address" // AddressSet (CustomerInfoAddress)
	PartContact = "contact" // CommMethodSet (CustomerInfoCommMethod)
	PartBank    = "bank"    // BankSet (payment addresses), per company
)

// Parts are the customer parts whose changes are polled, in poll order.
var Parts = []string{PartCompany, PartAddress, PartContact, PartBank}

// partSet is where a part lives and how its rows name their customer.
type partSet struct {
	set      string
	customer string   // the field naming the customer
	keys     []string // the row's key fields
	company  bool     // the set has a Company field, and is read per company
}

func (c *Client) partSet(part string) (partSet, error) {
	cp := c.s.CustomerParts
	switch part {
	case PartCompany:
		return partSet{set: cp.CompanySet, customer: "Identity", keys: []string{"Identity", "PartyType"}, company: true}, nil
	case PartAddress:
		return partSet{set: cp.AddressSet, customer: "CustomerId", keys: []string{"CustomerId", "AddressId"}}, nil
	case PartContact:
		return partSet{set: cp.CommMethodSet, customer: "CustomerId", keys: []string{"CustomerId", "CommId"}}, nil
	case PartBank:
		return partSet{set: cp.BankSet, customer: "Identity", keys: []string{"Identity", "AddressId"}, company: true}, nil
	}
	return partSet{}, fmt.Errorf("%w: no customer part %q", ErrInvalid, part)
}

// PartRow is a changed row of a customer part.
type PartRow struct {
	CustomerID string
	// Key is the row's key fields joined with "/" (unique within the part
	// and company).
	Key      string
	ETag     string
	Modified time.Time
}

// partFilter selects part rows of company modified at or after from.
func (c *Client) partFilter(ps partSet, company string, from time.Time) string {
	var terms []string
	if ps.company {
		terms = append(terms, "Company eq "+stringLit(company))
	}
	if !from.IsZero() {
		terms = append(terms, c.s.Customers.Fields[FieldModified]+" ge "+timeLit(from))
	}
	return strings.Join(terms, " and ")
}

// PartChanges reads the rows of part (of company, for the parts kept per
// company) modified at or after from, oldest first, and calls fn once per
// page the server sends (following @odata.nextLink, so memory is one
// page whatever changed). A row without a
// readable customer, key or modified time is skipped: the customer it
// belongs to cannot be named.
func (c *Client) PartChanges(ctx context.Context, company, part string, from time.Time, fn func([]PartRow) error) error {
	ps, err := c.partSet(part)
	if err != nil {
		return err
	}
	modified := c.s.Customers.Fields[FieldModified]
	sel := slices.Compact(slices.Sorted(slices.Values(append([]string{ps.customer, modified}, ps.keys...))))
	u := withQuery(c.setURL(c.s.Customers.Projection, ps.set),
		[2]string{"$filter", c.partFilter(ps, company, from)},
		[2]string{"$select", strings.Join(sel, ",")},
		[2]string{"$orderby", modified + " asc," + strings.Join(ps.keys, " asc,") + " asc"},
	)
	// No $top: it would cap the whole answer, and more rows than that
	// changed in one instant would be read again and again, never past
	// them. The server pages; each page is handled and saved in turn.
	for u != "" {
		var p page
		if _, err := c.get(ctx, u, "changes "+ps.set, &p); err != nil {
			return err
		}
		rows := make([]PartRow, 0, len(p.Value))
		for _, r := range p.Value {
			pr := PartRow{ETag: r.etag()}
			var errs []error
			pr.CustomerID, err = r.text(ps.customer)
			errs = append(errs, err)
			pr.Modified, err = r.instant(modified)
			errs = append(errs, err)
			parts := make([]string, len(ps.keys))
			for i, k := range ps.keys {
				parts[i], err = r.text(k)
				errs = append(errs, err)
			}
			pr.Key = strings.Join(parts, "/")
			if errors.Join(errs...) != nil || pr.CustomerID == "" {
				c.log.Warn("ifs customer part row without a readable customer, key or modified time",
					"connection", c.name, "entity_set", ps.set, "key", pr.Key)
				continue
			}
			rows = append(rows, pr)
		}
		if len(rows) > 0 {
			if err := fn(rows); err != nil {
				return err
			}
		}
		u = ""
		if p.NextLink != "" {
			if u, err = c.resolve(p.NextLink); err != nil {
				return err
			}
		}
	}
	return nil
}

// LatestPartChange returns the newest modified time among the rows of
// part (of company), zero when there are none: where a first poll of the
// part starts, the customers' own first read having covered what the part
// held then.
func (c *Client) LatestPartChange(ctx context.Context, company, part string) (time.Time, error) {
	ps, err := c.partSet(part)
	if err != nil {
		return time.Time{}, err
	}
	modified := c.s.Customers.Fields[FieldModified]
	u := withQuery(c.setURL(c.s.Customers.Projection, ps.set),
		[2]string{"$filter", c.partFilter(ps, company, time.Time{})},
		[2]string{"$select", modified},
		[2]string{"$orderby", modified + " desc"},
		[2]string{"$top", "1"},
	)
	var p page
	if _, err := c.get(ctx, u, "latest "+ps.set, &p); err != nil {
		return time.Time{}, err
	}
	if len(p.Value) == 0 {
		return time.Time{}, nil
	}
	t, err := p.Value[0].instant(modified)
	if err != nil {
		return time.Time{}, fmt.Errorf("ifs latest %s: %w", ps.set, err)
	}
	return t, nil
}

// CustomersByID reads the customers ids of company as Customers does
// (their CustomerInfo rows, then their parts), at most partsChunk per
// request. A customer that is not the company's, or no longer exists, is
// left out.
func (c *Client) CustomersByID(ctx context.Context, company string, ids []string) (CustomerPage, error) {
	es := c.s.Customers
	key := es.Fields[FieldKey]
	var out CustomerPage
	for start := 0; start < len(ids); start += partsChunk {
		chunk := ids[start:min(start+partsChunk, len(ids))]
		terms := make([]string, len(chunk))
		for i, id := range chunk {
			terms[i] = key + " eq " + keyLit(id, es.KeyNumeric)
		}
		filter := changesFilter(es, company, Watermark{})
		if filter != "" {
			filter += " and "
		}
		filter += "(" + strings.Join(terms, " or ") + ")"
		rows, err := c.query(ctx, es.Projection, es.EntitySet, filter, selectList(es))
		if err != nil {
			return CustomerPage{}, err
		}
		recs := make([]record, 0, len(rows))
		for _, r := range rows {
			rec := readRecord(es, r)
			if rec.err == nil && !slices.Contains(chunk, rec.key) {
				continue // not asked for: the server's filter is not trusted
			}
			recs = append(recs, rec)
		}
		pg, err := c.customerPage(ctx, company, recs)
		if err != nil {
			return CustomerPage{}, err
		}
		out.Customers = append(out.Customers, pg.Customers...)
		out.Invalid = append(out.Invalid, pg.Invalid...)
	}
	return out, nil
}
