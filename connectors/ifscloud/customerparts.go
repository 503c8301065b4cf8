package ifscloud

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"
)

// customerPart is what a customer's other entities say about it in one
// company.
type customerPart struct {
	currency string
	address  row
	email    string
	phone    string
	bank     row
	// etags of every row read, so the customer's version changes when any
	// of them does.
	etags []string
	// modified is the newest modified time of the rows read.
	modified time.Time
}

// saw folds row r into the customer's version and modified time.
func (p *customerPart) saw(r row, modifiedField string) {
	p.etags = append(p.etags, r.etag())
	if t, err := r.instant(modifiedField); err == nil && t.After(p.modified) {
		p.modified = t
	}
}

// partsChunk bounds the customers one request asks about: an OR of 100
// keys keeps the URL well under the 8 KB proxies commonly accept.
const partsChunk = 100

// readParts reads, for the customers ids, their company-specific row in
// company, addresses, contact methods and payment addresses. A customer
// without a company row is not in the map.
func (c *Client) readParts(ctx context.Context, company string, ids []string) (map[string]*customerPart, error) {
	cp := c.s.CustomerParts
	proj := c.s.Customers.Projection
	// The parts carry the customers' modified field (partChanges reads
	// them by it).
	modified := c.s.Customers.Fields[FieldModified]
	out := map[string]*customerPart{}
	for start := 0; start < len(ids); start += partsChunk {
		chunk := ids[start:min(start+partsChunk, len(ids))]
		anyOf := func(field string) string {
			terms := make([]string, len(chunk))
			for i, id := range chunk {
				terms[i] = field + " eq " + stringLit(id)
			}
			return "(" + strings.Join(terms, " or ") + ")"
		}
		inCompany := "Company eq " + stringLit(company) + " and "

		rows, err := c.query(ctx, proj, cp.CompanySet, inCompany+anyOf("Identity"), selectOf("Identity", "PartyType", "DefCurrency", modified))
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			id, _ := r.text("Identity")
			// IdentityInvoiceInfo holds suppliers too; its PartyType is an
			// enumeration, compared here rather than in the filter.
			if party, _ := r.text("PartyType"); party != "Customer" || !slices.Contains(chunk, id) {
				continue
			}
			cur, _ := r.text("DefCurrency")
			out[id] = &customerPart{currency: cur}
			out[id].saw(r, modified)
		}

		rows, err = c.query(ctx, proj, cp.AddressSet, anyOf("CustomerId"),
			selectOf("CustomerId", "AddressId", "Address1", "Address2", "City", "County", "ZipCode", "Country", modified))
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			id, _ := r.text("CustomerId")
			p := out[id]
			if p == nil {
				continue
			}
			// The lowest address id: the customer's first address.
			if p.address == nil || lessKey(r, p.address, "AddressId") {
				p.address = r
			}
			p.saw(r, modified)
		}

		rows, err = c.query(ctx, proj, cp.CommMethodSet, anyOf("CustomerId"), selectOf("CustomerId", "CommId", "MethodId", "Value", "MethodDefault", modified))
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			id, _ := r.text("CustomerId")
			p := out[id]
			if p == nil {
				continue
			}
			method, _ := r.text("MethodId")
			value, _ := r.text("Value")
			def, _ := r.text("MethodDefault")
			switch {
			case method == "E_MAIL" && (p.email == "" || def == "true"):
				p.email = value
			case method == "PHONE" && (p.phone == "" || def == "true"):
				p.phone = value
			}
			p.saw(r, modified)
		}

		sel := []string{"Identity", "AddressId", "DefaultAddress", modified}
		for _, f := range cp.BankFields {
			if f != "" {
				sel = append(sel, f)
			}
		}
		rows, err = c.query(ctx, proj, cp.BankSet, inCompany+anyOf("Identity"), selectOf(sel...))
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			id, _ := r.text("Identity")
			p := out[id]
			if p == nil {
				continue
			}
			if def, _ := r.text("DefaultAddress"); p.bank == nil || def == "true" {
				p.bank = r
			}
			p.saw(r, modified)
		}
	}
	return out, nil
}

// selectOf is a $select of fields, each once.
func selectOf(fields ...string) string {
	return strings.Join(slices.Compact(slices.Sorted(slices.Values(fields))), ",")
}

func lessKey(a, b row, field string) bool {
	x, _ := a.text(field)
	y, _ := b.text(field)
	if len(x) != len(y) {
		return len(x) < len(y) // numeric ids as text: shorter is smaller
	}
	return x < y
}

// fill copies the parts into cu and folds their ETags into its version
// and their modified times into its PartsModified.
func (p *customerPart) fill(cu *Customer, cp CustomerParts) error {
	text := func(r row, field string) string {
		if r == nil || field == "" {
			return ""
		}
		s, _ := r.text(field)
		return s
	}
	cu.Address1 = text(p.address, "Address1")
	cu.Address2 = text(p.address, "Address2")
	cu.City = text(p.address, "City")
	cu.Region = text(p.address, "County")
	cu.PostalCode = text(p.address, "ZipCode")
	if country := text(p.address, "Country"); cu.Country == "" {
		cu.Country = country
	}
	cu.Email, cu.Phone = p.email, p.phone
	bf := cp.BankFields
	cu.Bank = BankAccount{
		Holder:        text(p.bank, bf[FieldAccountHolder]),
		IBAN:          text(p.bank, bf[FieldIBAN]),
		AccountNumber: text(p.bank, bf[FieldAccountNumber]),
		BranchCode:    text(p.bank, bf[FieldBranchCode]),
		BankCode:      text(p.bank, bf[FieldBankCode]),
		Country:       text(p.bank, bf[FieldBankCountry]),
	}
	if cu.Bank != (BankAccount{}) {
		cu.Bank.Currency = p.currency
	}
	if p.currency != "" && !currencyCode.MatchString(p.currency) {
		return fmt.Errorf("company currency %q is not an ISO 4217 code", p.currency)
	}
	cu.PartsModified = p.modified
	if len(p.etags) > 0 {
		slices.Sort(p.etags)
		h := sha256.New()
		for _, e := range p.etags {
			h.Write([]byte(e + "\x00"))
		}
		cu.ETag += "+" + hex.EncodeToString(h.Sum(nil)[:8])
	}
	return nil
}
