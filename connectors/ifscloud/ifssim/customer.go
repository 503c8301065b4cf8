package ifssim

// A customer as standard IFS keeps it is several entities, and the
// simulator serves them so (Customer, the Go input, stays flat):
//
//   - CustomerInfoSet, keyed by CustomerId alone, with no company: the
//     enterprise-wide customer (public client code:
//     knakit/ifs-mcp-server-local src/resources/ifs-sales-customers.md,
//     "CustomerHandling.svc/CustomerInfoSet(CustomerId='{id}')", fields
//     CustomerId, Name, Country, DefaultLanguage, AssociationNo, PartyType).
//   - IdentityInvoiceInfoSet, keyed by Company, Identity and PartyType: the
//     customer's company-specific data (IFS entity IdentityInvoiceInfo with
//     Company, Identity, PartyType, PayTermId, DefCurrency, as public code
//     mirroring the IFS schema shows). A customer is a customer of a
//     company when it has this row.
//   - CustomerInfoAddressSet (CustomerId, AddressId, Address1, Address2,
//     City, County, ZipCode, Country: IFS entity CustomerInfoAddress).
//   - CustomerInfoCommMethodSet (CustomerId, CommId, MethodId, Value,
//     MethodDefault: IFS entity CustomerInfoCommMethod, table
//     customer_info_comm_method_tab in public schema dumps).
//   - PaymentAddressSet, keyed by Company, Identity and AddressId: the
//     customer's bank account for payments in a company. That IFS keeps it
//     per company and identity is documented (Customer > Payment Address);
//     the set and field names (Account, Iban, BicCode, BankCode,
//     ClearingNumber, AccountHolder, BankCountry, DefaultAddress) are not
//     public and are settings in the client.
//
// The OData set names of the last four are not public either; the client
// takes them from settings with these defaults.

// Communication method ids (CustomerInfoCommMethod.MethodId).
const (
	MethodEmail = "E_MAIL"
	MethodPhone = "PHONE"
)

type customerParts struct {
	company *row
	address *row
	comm    []*row
	bank    *row
}

func (s *Sim) customerParts(c Customer) customerParts {
	var p customerParts
	id := c.CustomerID
	p.company = s.companySet.row(s.etag(objkey("identity-invoice-info", c.Company, id)), map[string]value{
		"Company":     str(c.Company),
		"Identity":    str(id),
		"PartyType":   str("Customer"),
		"DefCurrency": str(c.Currency),
		"Rowversion":  instant(c.Modified),
	})
	if c.Address1 != "" || c.City != "" || c.ZipCode != "" {
		p.address = s.addressSet.row(s.etag(objkey("customer-address", id)), map[string]value{
			"CustomerId": str(id),
			"AddressId":  str("1"),
			"Address1":   str(c.Address1),
			"Address2":   str(c.Address2),
			"City":       str(c.City),
			"County":     str(c.County),
			"ZipCode":    str(c.ZipCode),
			"Country":    str(c.Country),
			"Rowversion": instant(c.Modified),
		})
	}
	for i, m := range []struct{ method, value string }{{MethodEmail, c.Email}, {MethodPhone, c.Phone}} {
		if m.value == "" {
			continue
		}
		p.comm = append(p.comm, s.commSet.row(s.etag(objkey("customer-comm", id, m.method)), map[string]value{
			"CustomerId":    str(id),
			"CommId":        integer(int64(i + 1)),
			"MethodId":      str(m.method),
			"Value":         str(m.value),
			"MethodDefault": boolean(true),
			"Rowversion":    instant(c.Modified),
		}))
	}
	if c.IBAN != "" || c.AccountNo != "" {
		p.bank = s.bankSet.row(s.etag(objkey("payment-address", c.Company, id)), map[string]value{
			"Company":        str(c.Company),
			"Identity":       str(id),
			"AddressId":      str("1"),
			"AccountHolder":  str(c.AccountHolder),
			"Iban":           str(c.IBAN),
			"Account":        str(c.AccountNo),
			"ClearingNumber": str(c.BranchCode),
			"BankCode":       str(c.BankCode),
			"BankCountry":    str(c.BankCountry),
			"DefaultAddress": boolean(true),
			"Rowversion":     instant(c.Modified),
		})
	}
	return p
}

// customerSets are the entity sets a customer is split into.
func (s *Sim) customerSets() []*entitySet {
	c := s.cfg
	each := func(pick func(customerParts) []*row) func() []*row {
		return func() []*row {
			var out []*row
			for _, cr := range s.customerRows {
				rec := s.customers[cr.vals[s.customerSet.schema["CustomerId"].idx].s]
				for _, r := range pick(rec.parts) {
					if r != nil {
						out = append(out, r)
					}
				}
			}
			return out
		}
	}
	byKey := func(es **entitySet, keys ...string) func(map[string]value) (*row, bool) {
		return func(key map[string]value) (*row, bool) {
			for _, r := range (*es).rows() {
				match := true
				for _, k := range keys {
					if compare(r.vals[(*es).schema[k].idx], key[k]) != 0 {
						match = false
					}
				}
				if match {
					return r, true
				}
			}
			return nil, false
		}
	}
	company := newSet(c.CustomerProjection, c.CompanySet, []string{"Company", "Identity", "PartyType"},
		fieldDef{name: "Company", k: kString},
		fieldDef{name: "Identity", k: kString},
		fieldDef{name: "PartyType", k: kString},
		fieldDef{name: "DefCurrency", k: kString},
		fieldDef{name: "Rowversion", k: kDateTime},
	)
	company.rows = each(func(p customerParts) []*row { return []*row{p.company} })
	company.lookup = byKey(&s.companySet, "Company", "Identity", "PartyType")

	address := newSet(c.CustomerProjection, c.AddressSet, []string{"CustomerId", "AddressId"},
		fieldDef{name: "CustomerId", k: kString},
		fieldDef{name: "AddressId", k: kString},
		fieldDef{name: "Address1", k: kString},
		fieldDef{name: "Address2", k: kString},
		fieldDef{name: "City", k: kString},
		fieldDef{name: "County", k: kString},
		fieldDef{name: "ZipCode", k: kString},
		fieldDef{name: "Country", k: kString},
		fieldDef{name: "Rowversion", k: kDateTime},
	)
	address.rows = each(func(p customerParts) []*row { return []*row{p.address} })
	address.lookup = byKey(&s.addressSet, "CustomerId", "AddressId")

	comm := newSet(c.CustomerProjection, c.CommMethodSet, []string{"CustomerId", "CommId"},
		fieldDef{name: "CustomerId", k: kString},
		fieldDef{name: "CommId", k: kInt},
		fieldDef{name: "MethodId", k: kString},
		fieldDef{name: "Value", k: kString},
		fieldDef{name: "MethodDefault", k: kBool},
		fieldDef{name: "Rowversion", k: kDateTime},
	)
	comm.rows = each(func(p customerParts) []*row { return p.comm })
	comm.lookup = byKey(&s.commSet, "CustomerId", "CommId")

	bank := newSet(c.CustomerProjection, c.PaymentAddressSet, []string{"Company", "Identity", "AddressId"},
		fieldDef{name: "Company", k: kString},
		fieldDef{name: "Identity", k: kString},
		fieldDef{name: "AddressId", k: kString},
		fieldDef{name: "AccountHolder", k: kString},
		fieldDef{name: "Iban", k: kString},
		fieldDef{name: "Account", k: kString},
		fieldDef{name: "ClearingNumber", k: kString},
		fieldDef{name: "BankCode", k: kString},
		fieldDef{name: "BankCountry", k: kString},
		fieldDef{name: "DefaultAddress", k: kBool},
		fieldDef{name: "Rowversion", k: kDateTime},
	)
	bank.rows = each(func(p customerParts) []*row { return []*row{p.bank} })
	bank.lookup = byKey(&s.bankSet, "Company", "Identity", "AddressId")
	return []*entitySet{company, address, comm, bank}
}
