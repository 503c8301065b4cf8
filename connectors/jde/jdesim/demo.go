package jdesim

// SeedDemo fills the tables with a few customers of company co, with
// e-mail, address and bank details, open invoices and one refund, so that
// the demo stack has something to collect. Customer 4001 pays in GBP with
// payment terms N30 (one-off), 4002 in EUR with monthly terms M01, 4003 in
// USD.
func (s *Server) SeedDemo(co string) {
	today := s.now()
	due := Date(today.Year(), today.Month(), today.Day()).AddDate(0, 0, 10)
	issued := due.AddDate(0, 0, -30)
	type customer struct {
		an8                   int64
		name, taxc, lang, cur string
		terms                 string
		email                 string
		addr                  Address
		bank                  BankAccount
	}
	customers := []customer{
		{an8: 4001, name: "Acme Widgets Ltd", taxc: "C", lang: "E", cur: "GBP", terms: "N30", email: "ap@acme-widgets.example",
			addr: Address{ADD1: "1 High Street", CTY1: "London", ADDZ: "EC1A 1BB", CTR: "GB"},
			bank: BankAccount{BKTP: "C", TNST: "200000", CBNK: "55779911", CTR: "GB"}},
		{an8: 4002, name: "Bergmann GmbH", taxc: "C", lang: "G", cur: "EUR", terms: "M01", email: "buchhaltung@bergmann.example",
			addr: Address{ADD1: "Hauptstrasse 5", CTY1: "Berlin", ADDZ: "10115", CTR: "DE"},
			bank: BankAccount{BKTP: "C", IBAN: "DE89370400440532013000", SWFT: "COBADEFFXXX", CTR: "DE"}},
		{an8: 4003, name: "Wilson & Sons Inc", taxc: "C", lang: "E", cur: "USD", terms: "N30", email: "billing@wilson.example",
			addr: Address{ADD1: "200 Main St", CTY1: "Springfield", ADDS: "IL", ADDZ: "62701", CTR: "US"},
			bank: BankAccount{BKTP: "C", TNST: "026073150", CBNK: "2715500356", BKAT: "C", CTR: "US"}},
	}
	for _, c := range customers {
		s.PutAddressBook(AddressBook{AN8: c.an8, ALPH: c.name, AT1: "C", TAXC: c.taxc, LNGP: c.lang})
		s.PutCustomerMaster(CustomerMaster{AN8: c.an8, CO: co, TRAR: c.terms, RYIN: "D", CRCA: c.cur})
		s.PutEmail(Email{AN8: c.an8, ETP: "E", EMAL: c.email})
		c.addr.AN8, c.addr.EFTB = c.an8, issued.AddDate(-1, 0, 0)
		s.PutAddress(c.addr)
		c.bank.AN8 = c.an8
		s.PutBankAccount(c.bank)
	}
	inv := func(doc, an8 int64, cur, terms, mcu string, amount int64) Invoice {
		return Invoice{DOC: doc, DCT: "RI", KCO: co, SFX: "001", AN8: an8, CO: co, AG: amount, AAP: amount, CRCD: cur,
			DDJ: due, DIVJ: issued, DGJ: issued, MCU: mcu, PTC: terms, PST: "A"}
	}
	s.AddInvoices(
		inv(10001, 4001, "GBP", "N30", "M30", 125000),
		inv(10002, 4001, "GBP", "N30", "M30", 9950),
		inv(10003, 4002, "EUR", "M01", "M40", 49900),
		inv(10004, 4003, "USD", "N30", "M50", 310025),
		Invoice{DOC: 50001, DCT: "RF", KCO: co, SFX: "001", AN8: 4001, CO: co, AG: -2500, AAP: -2500, CRCD: "GBP",
			DGJ: Date(today.Year(), today.Month(), today.Day()), MCU: "M30", PST: "A", RMK: "Goodwill refund",
			ODOC: 10002, ODCT: "RI", OKCO: co, OSFX: "001"},
	)
}
