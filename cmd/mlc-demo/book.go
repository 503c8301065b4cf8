package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ml-connector/ml-connector/connectors/gocardless/gcsim"
	"github.com/ml-connector/ml-connector/connectors/ifscloud/ifssim"
	"github.com/ml-connector/ml-connector/connectors/jde/jdesim"
	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/platform/secrets"
)

// Names of the demo's connections and its simulator credentials.
const (
	gcConnection  = "gc-demo"
	ifsConnection = "ifs-demo"
	jdeConnection = "jde-demo"
	gcToken       = "sandbox_demo_access_token_0123456789"
	webhookSecret = "demo-webhook-secret-0123456789"
	jdeCompany    = "00001"
)

// Expected end states of an invoice.
const (
	wantCollected   = "collected"    // paid out
	wantFailed      = "failed"       // the bank refused it
	wantChargedBack = "charged_back" // collected, then disputed by the payer
	wantRefunded    = "refunded"     // collected, then partly refunded from the ERP
	wantException   = "exception"    // never reaches GoCardless: an operator must look
	// wantAwaiting: the customer was asked for a mandate and never
	// authorised it; the invoice waits, visibly (mlcctl mandates list).
	wantAwaiting = "awaiting_mandate"
)

// payers play the customers in billing_request mode: customer 7 of each
// group authorises three working days late, customer 8 (the one without
// bank details in the ERP) never does, the others at GoCardless's next
// daily run.
var payers = []gcsim.Rule{
	{Name: "late payer", Resource: "billing_requests", CompanyName: "Customer * 7", Outcome: "authorised", AfterDays: 3},
	{Name: "silent payer", Resource: "billing_requests", CompanyName: "Customer * 8", Outcome: "ignored"},
	{Name: "payers", Resource: "billing_requests", CompanyName: "*", Outcome: "authorised"},
}

// awaitNoBankCustomers: with billing requests, a customer without bank
// details in the ERP is asked for a mandate like any other, so its
// invoices wait for its authorisation (which the silent payer never
// gives) instead of being refused.
func (b *book) awaitNoBankCustomers() {
	for i, inv := range b.invoices {
		if inv.want == wantException && strings.HasSuffix(inv.customer, "08") {
			b.invoices[i].want = wantAwaiting
		}
	}
}

// invoice is one invoice of the book and what must become of it.
type invoice struct {
	erp, company, id, customer string
	amount                     string
	currency                   string
	want                       string
	refundDoc                  int64 // JDE: the refund document to raise once collected
}

// book is the demo's seeded ERP data.
type book struct {
	invoices []invoice
}

// group is a set of customers sharing a company and currency.
type group struct {
	erp, company, currency, country string
	businessUnit                    string // JDE only
}

var groups = []group{
	{erp: "ifs", company: "10", currency: "GBP", country: "GB"},
	{erp: "ifs", company: "20", currency: "EUR", country: "DE"},
	{erp: "ifs", company: "30", currency: "SEK", country: "SE"},
	{erp: "jde", company: jdeCompany, currency: "USD", country: "US", businessUnit: "M30"},
	{erp: "jde", company: jdeCompany, currency: "CAD", country: "CA", businessUnit: "M40"},
	// EUR invoices in the USD company: foreign mode, collected in EUR for
	// their EUR amounts (FAP), receipts posted in mode F.
	{erp: "jde", company: jdeCompany, currency: "EUR", country: "DE", businessUnit: "M50"},
}

// scenarios make GoCardless fail payments whose minor units end in 01 and
// charge back those ending in 02; everything else succeeds. Insufficient
// funds fail the first submission only: the money is there when an
// operator replays the payment (the console's journey on the demo stack
// does), as GoCardless's own retries of that cause count on
// (gcsim/doc.go: retry_if_possible retries insufficient_funds failures).
var scenarios = []gcsim.Rule{
	{Name: "insufficient funds", Resource: "payments", AmountSuffix: "01", Outcome: "failed", Cause: "insufficient_funds", Attempts: 1},
	{Name: "disputed", Resource: "payments", AmountSuffix: "02", Outcome: "charged_back", Cause: "authorisation_disputed"},
}

// seed writes n invoices over the groups into the simulators, with
// customers that have mandates and one per group that has no bank details.
func seed(ifs *ifssim.Sim, jde *jdesim.Server, n int, today time.Time) (book, error) {
	return seedRange(ifs, jde, 0, n, today)
}

// seedRange writes invoices from..from+n-1 of the book (and, with from 0,
// its customers first), so a load test can add the book while it runs.
func seedRange(ifs *ifssim.Sim, jde *jdesim.Server, from, n int, today time.Time) (book, error) {
	var b book
	const customersPerGroup = 8
	due := today.AddDate(0, 0, 3)
	for gi, g := range groups {
		for c := range customersPerGroup + 1 {
			if from > 0 {
				break
			}
			withBank := c < customersPerGroup
			if err := addCustomer(ifs, jde, g, gi, c, withBank, today); err != nil {
				return b, err
			}
		}
	}
	for i := from; i < from+n; i++ {
		g := groups[i%len(groups)]
		gi := i % len(groups)
		customer := i / len(groups) % 8
		inv := invoice{erp: g.erp, company: g.company, currency: g.currency, customer: customerID(g, gi, customer)}
		// The amount picks the outcome: x.01 fails, x.02 is charged back.
		major := 20 + (i*37)%900
		cents := (i * 7) % 100
		switch {
		case i%50 == 7:
			cents, inv.want = 1, wantFailed
		case i%50 == 19:
			cents, inv.want = 2, wantChargedBack
		default:
			if cents == 1 || cents == 2 {
				cents = 3
			}
			inv.want = wantCollected
		}
		if g.currency == "SEK" {
			major += 20 // above autogiro's 10 SEK minimum with room
		}
		inv.amount = fmt.Sprintf("%d.%02d", major, cents)
		switch {
		case i%50 == 29:
			// A customer without bank details: no mandate, so the invoice
			// can never be collected.
			inv.customer, inv.want = customerID(g, gi, 8), wantException
		case i%50 == 41 && g.erp == "ifs":
			inv.amount, inv.want = fmt.Sprintf("%d.005", major), wantException // more decimals than the currency has
		case i%50 >= 43 && i%50 <= 48 && g.erp == "jde": // one in each JDE group
			inv.want = wantRefunded
		}
		doc := int64(100000 + i)
		inv.id = fmt.Sprint(doc)
		if g.erp == "ifs" {
			if err := ifs.PutInvoices(ifssim.Invoice{Company: g.company, InvoiceID: doc, InvoiceNo: fmt.Sprintf("CI-%d", doc),
				CustomerID: inv.customer, Currency: g.currency, State: ifssim.StatePostedAuth, GrossAmount: inv.amount,
				OpenAmount: inv.amount, InvoiceDate: today.AddDate(0, 0, -27).Format(time.DateOnly), DueDate: due.Format(time.DateOnly),
				PayTermID: "30"}); err != nil {
				return b, err
			}
		} else {
			minor := int64(major*100 + cents)
			an8 := int64(5000 + gi*100 + customer)
			if inv.want == wantException {
				an8 = int64(5000 + gi*100 + 8)
			}
			err := jde.AddInvoices(jdesim.Invoice{DOC: doc, DCT: "RI", KCO: jdeCompany, SFX: "001", AN8: an8, CO: jdeCompany, AG: minor, AAP: minor,
				CRCD: g.currency, DDJ: jdesim.Date(due.Year(), due.Month(), due.Day()), DIVJ: jdesim.Date(today.Year(), today.Month(), today.Day()),
				MCU: g.businessUnit, PTC: "N30", PST: "A"})
			if err != nil {
				return b, err
			}
			inv.id = fmt.Sprintf("%d/RI/001", doc)
			if inv.want == wantRefunded {
				inv.refundDoc = 900000 + doc
			}
		}
		b.invoices = append(b.invoices, inv)
	}
	return b, nil
}

func customerID(g group, gi, i int) string {
	if g.erp == "jde" {
		return fmt.Sprint(5000 + gi*100 + i)
	}
	return fmt.Sprintf("C%s-%02d", g.company, i)
}

func addCustomer(ifs *ifssim.Sim, jde *jdesim.Server, g group, gi, i int, withBank bool, today time.Time) error {
	name := fmt.Sprintf("Customer %s %s %d", g.erp, g.currency, i)
	if g.erp == "ifs" {
		c := ifssim.Customer{CustomerID: customerID(g, gi, i), Company: g.company, Name: name,
			Email: fmt.Sprintf("ap%d@%s-%s.example", i, g.company, g.currency), Address1: fmt.Sprintf("%d Market Street", i+1),
			City: map[string]string{"GB": "London", "DE": "Berlin", "SE": "Stockholm"}[g.country], ZipCode: fmt.Sprintf("%05d", 10000+i),
			Country: g.country, Language: map[string]string{"GB": "en", "DE": "de", "SE": "sv"}[g.country], Currency: g.currency}
		if withBank {
			c.AccountHolder, c.BankCountry = name, g.country
			switch g.country {
			case "GB":
				c.AccountNo, c.BranchCode = fmt.Sprintf("%08d", 55779911+i), "200000"
			case "DE":
				c.IBAN = germanIBAN(fmt.Sprintf("%010d", 532013000+i))
			case "SE":
				c.AccountNo, c.BranchCode, c.AssociationNo = fmt.Sprintf("%010d", 1234567+i), "5527", fmt.Sprintf("556%07d", i)
			}
		}
		return ifs.PutCustomers(c)
	}
	an8 := int64(5000 + gi*100 + i)
	jde.PutAddressBook(jdesim.AddressBook{AN8: an8, ALPH: name, AT1: "C", TAXC: "C", LNGP: "E"})
	jde.PutCustomerMaster(jdesim.CustomerMaster{AN8: an8, CO: jdeCompany, TRAR: "N30", RYIN: "D", CRCA: g.currency})
	jde.PutEmail(jdesim.Email{AN8: an8, ETP: "E", EMAL: fmt.Sprintf("billing%d@%s.example", i, g.currency)})
	addr := jdesim.Address{AN8: an8, ADD1: fmt.Sprintf("%d Main St", 100+i), CTY1: "Springfield", ADDS: "IL", ADDZ: "62701", CTR: g.country,
		EFTB: jdesim.Date(today.Year()-1, today.Month(), 1)}
	switch g.country {
	case "CA":
		addr.CTY1, addr.ADDS, addr.ADDZ = "Toronto", "ON", "M5H 2N2"
	case "DE":
		addr.CTY1, addr.ADDS, addr.ADDZ = "Berlin", "", "10115"
	}
	jde.PutAddress(addr)
	if withBank {
		b := jdesim.BankAccount{AN8: an8, BKTP: "C", CTR: g.country, BKAT: "C"}
		switch g.country {
		case "US":
			b.TNST, b.CBNK = "026073150", fmt.Sprintf("27155%05d", i)
		case "DE":
			b.IBAN = germanIBAN(fmt.Sprintf("%010d", 771100000+i))
		default:
			b.TNST, b.CBNK = "00312345", fmt.Sprintf("98765%03d", i)
		}
		jde.PutBankAccount(b)
	}
	return nil
}

// germanIBAN computes a valid German IBAN for bank code 37040044.
func germanIBAN(account string) string {
	bban := "37040044" + account
	// ISO 13616 check digits: move "DE00" to the end, letters to numbers, mod 97.
	digits := bban + "131400"
	rem := 0
	for _, d := range digits {
		rem = (rem*10 + int(d-'0')) % 97
	}
	return fmt.Sprintf("DE%02d%s", 98-rem, bban)
}

// register adds the demo's connections to the registry.
func register(ctx context.Context, store *connections.Store, gcURL, ifsURL string, jde *jdesim.Deployment, creditor, mandateSetup string) error {
	nodes := make([]any, len(jde.Nodes))
	for i, n := range jde.Nodes {
		nodes[i] = n
	}
	for _, n := range []connections.New{
		{Name: gcConnection, Kind: connections.KindGoCardless,
			Settings: map[string]any{"base_url": gcURL, "own_bacs_references": true, "ach_authorisation_source": "paper",
				"mandate_setup": mandateSetup},
			Secrets: map[string]secrets.Value{"access_token": secrets.NewValue(gcToken), "webhook_secret": secrets.NewValue(webhookSecret)}},
		{Name: ifsConnection, Kind: connections.KindIFS, Settings: map[string]any{
			"base_url": ifsURL, "client_id": "mlc", "company_codes": []any{"10", "20", "30"}, "gocardless": gcConnection,
			"creditors": map[string]any{"10": creditor, "20": creditor, "30": creditor}, "requests_per_minute": float64(600000),
			// GoCardless fees of payouts go to the bank fee account ifssim's
			// charts have (ifssim.DefaultAccounts).
			"payout_fee_accounts": map[string]any{"10": "6570", "20": "6570", "30": "6570"}},
			Secrets: map[string]secrets.Value{"client_secret": secrets.NewValue("secret")}},
		{Name: jdeConnection, Kind: connections.KindJDE, Settings: map[string]any{
			"base_url": jde.URL, "ais_nodes": nodes, "username": "JDE", "company_codes": []any{jdeCompany}, "gocardless": gcConnection,
			"creditors":   map[string]any{jdeCompany: creditor},
			"gl_accounts": map[string]any{"M30": "M30.1110.GC", "M40": "M40.1110.GC", "M50": "M50.1110.GC"},
			// Refund documents raised in AR carry no business unit: their
			// outcomes are booked to the company's bank account.
			"default_gl_account": "HQ.1110.GC",
			// A payout's fee journal entry: fees debited, the bank credited.
			"payout_fee_accounts": map[string]any{jdeCompany: "HQ.6570"}, "payout_bank_accounts": map[string]any{jdeCompany: "HQ.1110.GC"}},
			Secrets: map[string]secrets.Value{"password": secrets.NewValue("JDE")}},
	} {
		n.Actor = "mlc-demo"
		if _, err := store.Add(ctx, n); err != nil {
			return err
		}
	}
	return nil
}
