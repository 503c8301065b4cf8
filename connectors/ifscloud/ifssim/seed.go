package ifssim

import (
	"fmt"
	"math/big"
	"strings"
	"time"
)

// Seed describes generated data: for each company, Customers customers and
// Invoices invoices spread over them. Every fourth invoice is not ready for
// collection (alternately Preliminary and PaidPosted); the others are
// PostedAuth. Modified times start at Start (default: an hour ago) and
// advance a second per invoice. Companies get currencies and bank details
// in turn: EUR (DE), GBP (GB), SEK (SE), DKK (DK), USD (US).
type Seed struct {
	Companies []string  `json:"companies"`
	Customers int       `json:"customers"`
	Invoices  int       `json:"invoices"`
	Start     time.Time `json:"start,omitzero"`
}

type locale struct {
	currency, country, language, city string
}

var locales = []locale{
	{"EUR", "DE", "de", "Berlin"},
	{"GBP", "GB", "en", "London"},
	{"SEK", "SE", "sv", "Stockholm"},
	{"DKK", "DK", "da", "Copenhagen"},
	{"USD", "US", "en", "Boston"},
}

// Seed adds generated customers and invoices (replacing any with the same
// keys).
func (s *Sim) Seed(sd Seed) error {
	if len(sd.Companies) == 0 || sd.Customers < 1 || sd.Invoices < 0 {
		return fmt.Errorf("ifssim: seed needs companies and at least one customer per company")
	}
	start := sd.Start
	if start.IsZero() {
		start = s.stamp().Add(-time.Hour)
	}
	var customers []Customer
	var invoices []Invoice
	for ci, company := range sd.Companies {
		loc := locales[ci%len(locales)]
		for i := range sd.Customers {
			id := fmt.Sprintf("C%s-%05d", company, i+1)
			c := Customer{
				CustomerID: id, Company: company, Name: fmt.Sprintf("Customer %s %d Ltd", company, i+1),
				Email: strings.ToLower(id) + "@example.com", Address1: fmt.Sprintf("%d Market Street", i+1),
				City: loc.city, ZipCode: fmt.Sprintf("%05d", 10000+i), Country: loc.country, Language: loc.language,
				AccountHolder: fmt.Sprintf("Customer %s %d", company, i+1), BankCountry: loc.country, Currency: loc.currency,
				Modified: start,
			}
			switch loc.country {
			case "DE":
				c.IBAN = germanIBAN(fmt.Sprintf("370400%02d", ci), fmt.Sprintf("%010d", 532013000+i))
			case "GB":
				c.AccountNo, c.BranchCode = fmt.Sprintf("%08d", 55779911+i), "200000"
			case "SE":
				c.AccountNo, c.BranchCode, c.AssociationNo = fmt.Sprintf("%010d", 1234567+i), "5527", fmt.Sprintf("556%07d", i)
			case "DK":
				c.AccountNo, c.BankCode, c.AssociationNo = fmt.Sprintf("%010d", 44441234+i), "345", fmt.Sprintf("%08d", 12345670+i)
			case "US":
				c.AccountNo, c.BankCode = fmt.Sprintf("%010d", 2715500356+i), "026073150"
			}
			customers = append(customers, c)
		}
		for i := range sd.Invoices {
			state := StatePostedAuth
			open := ""
			if i%4 == 3 {
				state = StatePreliminary
				if i%8 == 7 {
					state, open = StatePaidPosted, "0.00"
				}
			}
			gross := fmt.Sprintf("%d.%02d", 50+(i*7919)%4950, (i*37)%100)
			if open == "" {
				open = gross
			}
			invoices = append(invoices, Invoice{
				Company: company, InvoiceID: int64(i + 1), InvoiceNo: fmt.Sprintf("CI-%s-%06d", company, i+1),
				CustomerID:  fmt.Sprintf("C%s-%05d", company, i%sd.Customers+1),
				InvoiceDate: start.Format(time.DateOnly), DueDate: start.AddDate(0, 0, 30).Format(time.DateOnly),
				Currency: loc.currency, PayTermID: "30", State: state, GrossAmount: gross, OpenAmount: open,
				Modified: start.Add(time.Duration(i) * time.Second),
			})
		}
	}
	if err := s.PutCustomers(customers...); err != nil {
		return err
	}
	return s.PutInvoices(invoices...)
}

// germanIBAN builds a DE IBAN with valid check digits (ISO 13616 mod 97).
func germanIBAN(blz, account string) string {
	bban := blz + account
	// "DE00" moved to the end, letters as numbers: D=13, E=14.
	n, _ := new(big.Int).SetString(bban+"131400", 10)
	check := 98 - new(big.Int).Mod(n, big.NewInt(97)).Int64()
	return fmt.Sprintf("DE%02d%s", check, bban)
}
