package poller_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/connectors/jde/jdesim"
	"github.com/ml-connector/ml-connector/platform/bus"
	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
	"github.com/ml-connector/ml-connector/services/jde-poller/internal/poller"
)

func TestCycleMapsCustomersInvoicesAndRefunds(t *testing.T) {
	h := newHarness(t, jdesim.Options{}, nil)
	customer(h.sim, 4001, "Acme", "GBP", "00001", "00002")
	h.sim.PutAddressBook(jdesim.AddressBook{AN8: 4002, ALPH: "Smith, Jane", AT1: "C", TAXC: "P", TAX: "19800101-1234", LNGP: "F"})
	h.sim.PutCustomerMaster(jdesim.CustomerMaster{AN8: 4002, CO: "00001", TRAR: "M01", RYIN: "D", CRCA: "SEK"})
	h.sim.PutEmail(jdesim.Email{AN8: 4002, IDLN: 1, ETP: "E", EMAL: "contact@smith.example"})
	h.sim.PutEmail(jdesim.Email{AN8: 4002, IDLN: 0, RCK7: 2, ETP: "E", EMAL: "jane@smith.example"})
	h.sim.PutEmail(jdesim.Email{AN8: 4002, IDLN: 0, RCK7: 1, ETP: "I", EMAL: "https://smith.example"})
	h.sim.PutAddress(jdesim.Address{AN8: 4002, EFTB: jdesim.Date(2019, 1, 1), ADD1: "Old road", CTY1: "Malmo", CTR: "SE"})
	h.sim.PutAddress(jdesim.Address{AN8: 4002, EFTB: jdesim.Date(2025, 6, 1), ADD1: "Storgatan 1", ADD3: "Box 12", ADD4: "Vån 2", CTY1: "Stockholm", ADDZ: "111 22", CTR: "SE"})
	h.sim.PutAddress(jdesim.Address{AN8: 4002, EFTB: jdesim.Date(2027, 1, 1), ADD1: "Future street", CTY1: "Uppsala", CTR: "SE"})
	h.sim.PutBankAccount(jdesim.BankAccount{AN8: 4002, BKTP: "V", CBNK: "999", CTR: "SE"})
	h.sim.PutBankAccount(jdesim.BankAccount{AN8: 4002, BKTP: "C", IBAN: "SE4550000000058398257466", SWFT: "ESSESESS", CTR: "SE", BKAT: "S"})
	h.sim.PutAddressBook(jdesim.AddressBook{AN8: 9000, ALPH: "Supplier Ltd", AT1: "V"})
	h.sim.PutBankAccount(jdesim.BankAccount{AN8: 9000, BKTP: "V", CBNK: "1"})
	h.sim.AddInvoices(
		jdesim.Invoice{DOC: 1001, DCT: "RI", KCO: "00001", SFX: "001", AN8: 4001, CO: "00001", AG: 125000, AAP: 100000, CRCD: "GBP",
			DDJ: jdesim.Date(2026, 3, 2), DIVJ: jdesim.Date(2026, 1, 31), MCU: "M30", PTC: "N30", PST: "A", VINV: "INV-1001"},
		jdesim.Invoice{DOC: 1002, DCT: "RI", KCO: "00001", SFX: "002", AN8: 4002, CO: "00001", AG: 49900, AAP: 49900, CRCD: "SEK",
			DDJ: jdesim.Date(2026, 2, 1), DIVJ: jdesim.Date(2026, 1, 2), MCU: "M40", PTC: "M01", PST: "A"},
		jdesim.Invoice{DOC: 5001, DCT: "RF", KCO: "00001", SFX: "001", AN8: 4001, CO: "00001", AG: -2500, AAP: -2500, CRCD: "GBP",
			MCU: "M30", PST: "A", RMK: "Goodwill", ODOC: 900, ODCT: "RI", OKCO: "00001", OSFX: "001"},
		jdesim.Invoice{DOC: 7001, DCT: "RU", KCO: "00001", SFX: "001", AN8: 4001, AG: -100, AAP: -100, CRCD: "GBP"},
		jdesim.Invoice{DOC: 2001, DCT: "RI", KCO: "00002", SFX: "001", AN8: 4001, CO: "00002", AG: 100, AAP: 100, CRCD: "GBP"},
	)
	p := h.poller(nil)
	res := h.cycle(p)
	if res != (poller.Result{Customers: 2, Invoices: 2, Refunds: 1}) {
		t.Fatalf("result = %+v", res)
	}
	msgs := h.drain()
	version := "126031090000" // the simulator stamps every row 2026-01-31 09:00:00
	bySubject := map[string][]published{}
	for _, m := range msgs {
		if !strings.HasPrefix(m.subject, "mlc.erp.jde.00001.") {
			t.Errorf("message on %s: only company 00001 is configured", m.subject)
		}
		bySubject[m.subject] = append(bySubject[m.subject], m)
	}
	wantIDs := map[string]int{
		"jde:jde-test:00001:customer:4001:" + version:       1,
		"jde:jde-test:00001:customer:4002:" + version:       1,
		"jde:jde-test:00001:invoice:1001/RI/001:" + version: 1,
		"jde:jde-test:00001:invoice:1002/RI/002:" + version: 1,
		"jde:jde-test:00001:refund:5001/RF/001:" + version:  1,
	}
	if got := ids(msgs); fmt.Sprint(got) != fmt.Sprint(wantIDs) {
		t.Fatalf("message ids = %v\nwant %v", got, wantIDs)
	}

	customers := map[string]*mlcv1.CustomerChanged{}
	for _, m := range bySubject["mlc.erp.jde.00001.customer"] {
		c := decode(t, m.data, &mlcv1.CustomerChanged{})
		customers[c.CustomerId] = c
	}
	acme, smith := customers["4001"], customers["4002"]
	if acme.SchemaVersion != 1 || acme.Erp.Erp != mlcv1.Erp_ERP_JDE || acme.Erp.Connection != "jde-test" || acme.Erp.Company != "00001" ||
		stampOnly(acme.Version) != version || acme.Name != "Acme" || acme.CompanyName != "Acme" || acme.Email != "ap@Acme.example" ||
		acme.AddressLine1 != "1 High Street" || acme.City != "London" || acme.PostalCode != "EC1A 1BB" || acme.CountryCode != "GB" ||
		acme.Language != "en" || acme.BankDetails.GetAccountNumber() != "55779911" || acme.BankDetails.GetBranchCode() != "200000" ||
		acme.BankDetails.GetCurrency() != "GBP" || acme.BankDetails.GetAccountHolderName() != "Acme" ||
		acme.ErpFields["TRAR"] != "N30" || acme.ErpFields["RYIN"] != "D" || !acme.UpdatedAt.AsTime().Equal(start) {
		t.Errorf("Acme = %v", acme)
	}
	if smith.GivenName != "Jane" || smith.FamilyName != "Smith" || smith.CompanyName != "" || smith.Language != "fr" ||
		smith.Email != "jane@smith.example" || smith.AddressLine1 != "Storgatan 1" || smith.AddressLine3 != "Box 12 Vån 2" ||
		smith.City != "Stockholm" || smith.BankDetails.GetIban() != "SE4550000000058398257466" || smith.BankDetails.GetAccountNumber() != "" ||
		smith.BankDetails.GetAccountType() != "" || smith.BankDetails.GetCountryCode() != "SE" || // savings, but GoCardless takes an account type for US accounts only
		smith.SwedishIdentityNumber != "19800101-1234" || smith.ErpFields["SWFT"] != "ESSESESS" {
		t.Errorf("Smith = %v", smith)
	}

	invs := map[string]*mlcv1.InvoiceReady{}
	for _, m := range bySubject["mlc.erp.jde.00001.invoice"] {
		inv := decode(t, m.data, &mlcv1.InvoiceReady{})
		invs[inv.Invoice.InvoiceId] = inv
	}
	one, two := invs["1001"], invs["1002"]
	if one.SchemaVersion != 1 || one.Invoice.DocType != "RI" || one.Invoice.Suffix != "001" || one.CustomerId != "4001" ||
		one.Amount != "1000.00" || one.GrossAmount != "1250.00" || one.Currency != "GBP" || one.DueDate != "2026-03-02" ||
		one.InvoiceDate != "2026-01-31" || one.PaymentTerms != "N30" || one.BusinessUnit != "M30" || one.Recurrence != nil ||
		stampOnly(one.Version) != version || one.ErpFields["VINV"] != "INV-1001" || one.ErpFields["PST"] != "A" {
		t.Errorf("invoice 1001 = %v", one)
	}
	if two.PaymentTerms != "M01" || two.Recurrence.GetIntervalUnit() != mlcv1.IntervalUnit_INTERVAL_UNIT_MONTHLY ||
		two.Recurrence.GetDayOfMonth() != 1 || two.Amount != "499.00" || two.Invoice.Suffix != "002" {
		t.Errorf("invoice 1002 = %v", two)
	}
	refund := decode(t, bySubject["mlc.erp.jde.00001.refund"][0].data, &mlcv1.RefundRequested{})
	if refund.RefundId != "5001/RF/001" || refund.Amount != "25.00" || refund.Currency != "GBP" || refund.CustomerId != "4001" ||
		refund.Invoice.GetInvoiceId() != "900" || refund.Invoice.GetDocType() != "RI" || refund.Invoice.GetSuffix() != "001" ||
		refund.Reason != "Goodwill" || refund.SchemaVersion != 1 || stampOnly(refund.Version) != version {
		t.Errorf("refund = %v", refund)
	}

	// Nothing changed: the next cycle publishes nothing.
	if res := h.cycle(p); res != (poller.Result{}) {
		t.Fatalf("second cycle = %+v", res)
	}
	if msgs := h.drain(); len(msgs) != 0 {
		t.Fatalf("second cycle published %d messages", len(msgs))
	}
}

func TestChangesArePublishedAgain(t *testing.T) {
	h := newHarness(t, jdesim.Options{}, nil)
	customer(h.sim, 4001, "Acme", "GBP", "00001")
	customer(h.sim, 4003, "Other", "GBP", "00001")
	h.sim.AddInvoices(invoices("00001", 4001, 1001, 3)...)
	p := h.poller(nil)
	h.cycle(p)
	h.drain()
	steps := []struct {
		name   string
		change func()
		want   []string // message ids without the version
	}{
		{"partial payment", func() {
			_ = h.sim.UpdateInvoice(jdesim.DocKey{DOC: 1002, DCT: "RI", KCO: "00001", SFX: "001"}, func(i *jdesim.Invoice) { i.AAP = 5000 })
		}, []string{"jde:jde-test:00001:invoice:1002/RI/001"}},
		{"new e-mail", func() { h.sim.PutEmail(jdesim.Email{AN8: 4001, ETP: "E", EMAL: "new@acme.example"}) }, []string{"jde:jde-test:00001:customer:4001"}},
		{"new address", func() {
			h.sim.PutAddress(jdesim.Address{AN8: 4003, EFTB: jdesim.Date(2020, 1, 1), ADD1: "2 Low St", CTR: "GB"})
		}, []string{"jde:jde-test:00001:customer:4003"}},
		{"new bank account", func() { h.sim.PutBankAccount(jdesim.BankAccount{AN8: 4001, BKTP: "C", IBAN: "GB33BUKB20201555555555"}) }, []string{"jde:jde-test:00001:customer:4001"}},
		{"renamed", func() { h.sim.PutAddressBook(jdesim.AddressBook{AN8: 4003, ALPH: "Other Renamed", AT1: "C"}) }, []string{"jde:jde-test:00001:customer:4003"}},
		{"paid in full", func() {
			_ = h.sim.UpdateInvoice(jdesim.DocKey{DOC: 1001, DCT: "RI", KCO: "00001", SFX: "001"}, func(i *jdesim.Invoice) { i.AAP, i.FAP, i.PST = 0, 0, "P" })
		}, []string{"jde:jde-test:00001:invoice:1001/RI/001"}},
		{"same second, next key", func() {
			h.sim.AddInvoices(invoices("00001", 4001, 1000, 1)...)
			h.sim.AddInvoices(invoices("00001", 4001, 1004, 1)...)
		}, []string{"jde:jde-test:00001:invoice:1000/RI/001", "jde:jde-test:00001:invoice:1004/RI/001"}},
	}
	for _, st := range steps {
		h.clock.Advance(90 * time.Second)
		st.change()
		h.cycle(p)
		msgs := h.drain()
		var got []string
		for _, m := range msgs {
			got = append(got, m.id[:strings.LastIndex(m.id, ":")])
		}
		if strings.Join(got, ",") != strings.Join(st.want, ",") {
			t.Fatalf("%s: published %v, want %v", st.name, got, st.want)
		}
		if v := msgs[0].id[strings.LastIndex(msgs[0].id, ":")+1:]; v <= "126031090000" {
			t.Fatalf("%s: version %s did not move on", st.name, v)
		}
		if st.name == "paid in full" {
			if inv := decode(t, msgs[0].data, &mlcv1.InvoiceReady{}); inv.Amount != "0.00" {
				t.Fatalf("paid invoice amount = %q", inv.Amount)
			}
		}
	}
}

// A simulated AIS restart in the middle of paging (session and result set
// gone, 444 on the next call) makes the client log in again and the
// poller read again; every invoice is published exactly once.
func TestRestartMidPollMissesAndDuplicatesNothing(t *testing.T) {
	tests := []struct {
		name    string
		restart int // requests before the restart
	}{
		{name: "while reading customers", restart: 3},
		{name: "while paging invoices", restart: 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, jdesim.Options{}, nil)
			customer(h.sim, 4001, "Acme", "GBP", "00001")
			h.sim.AddInvoices(invoices("00001", 4001, 100000, 3000)...)
			p := h.poller(nil)
			h.sim.ResetStats()
			h.sim.SetFaults(jdesim.Faults{RestartAfter: tt.restart})
			res := h.cycle(p)
			st := h.sim.Stats()
			if st.Restarts != 1 || st.InvalidTokens == 0 || st.Logins < 2 {
				t.Fatalf("the restart did not hit the cycle: %+v", st)
			}
			msgs := h.drain()
			got := ids(msgs)
			if res.Invoices != 3000 || len(msgs) != 3001 || len(got) != 3001 {
				t.Fatalf("result %+v, %d messages, %d distinct", res, len(msgs), len(got))
			}
			for doc := 100000; doc < 103000; doc++ {
				if got[fmt.Sprintf("jde:jde-test:00001:invoice:%d/RI/001:126031090000", doc)] != 1 {
					t.Fatalf("invoice %d missing", doc)
				}
			}
			if res := h.cycle(p); res != (poller.Result{}) || len(h.drain()) != 0 {
				t.Fatalf("next cycle = %+v", res)
			}
		})
	}
}

// crashingPublisher publishes through the real bus but fails on the
// batch numbered crashAt: before publishing (JetStream unreachable) or
// after it (the process died before the watermark was saved).
type crashingPublisher struct {
	next         poller.Publisher
	crashAt      int
	afterPublish bool
	batches      atomic.Int32
}

var errCrash = errors.New("simulated crash")

func (c *crashingPublisher) PublishBatch(ctx context.Context, msgs []bus.Msg) ([]bus.Ack, error) {
	n := int(c.batches.Add(1))
	if n != c.crashAt {
		return c.next.PublishBatch(ctx, msgs)
	}
	if c.afterPublish {
		if _, err := c.next.PublishBatch(ctx, msgs); err != nil {
			return nil, err
		}
	}
	return nil, errCrash
}

func TestWatermarkMovesOnlyAfterAcks(t *testing.T) {
	for _, after := range []bool{false, true} {
		t.Run(fmt.Sprintf("crash after publish %v", after), func(t *testing.T) {
			h := newHarness(t, jdesim.Options{}, nil)
			h.sim.AddInvoices(invoices("00001", 4001, 1, 450)...)
			crash := &crashingPublisher{next: h.bus, crashAt: 3, afterPublish: after}
			_, err := h.poller(func(c *poller.Config) { c.Publisher = crash }).Cycle(context.Background())
			if !errors.Is(err, errCrash) {
				t.Fatalf("cycle err = %v", err)
			}
			// Batches 1 and 2 (100 invoices each) were acknowledged; batch
			// 3 never was, whether or not it reached the stream.
			if wm := h.watermark("F03B11:00001"); wm.Key != "000000000200/RI/000000000001" || !wm.At.Equal(start) {
				t.Fatalf("watermark = %+v, want the 200th invoice", wm)
			}
			stored := len(h.drain())
			if want := map[bool]int{false: 200, true: 300}[after]; stored != want {
				t.Fatalf("stream holds %d messages, want %d", stored, want)
			}
			res := h.cycle(h.poller(nil))
			if res.Invoices != 250 {
				t.Fatalf("rerun published %d, want the 250 after the watermark", res.Invoices)
			}
			msgs := h.drain()
			all := ids(msgs)
			if len(msgs) != 450-stored || len(all) != len(msgs) {
				t.Fatalf("rerun stored %d new messages (%d distinct), want %d: JetStream must drop the repeats", len(msgs), len(all), 450-stored)
			}
			if wm := h.watermark("F03B11:00001"); wm.Key != "000000000450/RI/000000000001" {
				t.Fatalf("final watermark = %+v", wm)
			}
		})
	}
}

func TestOnlyConfiguredCompanies(t *testing.T) {
	h := newHarness(t, jdesim.Options{Companies: map[string]string{"00001": "USD", "00002": "USD", "00003": "GBP"}},
		map[string]any{"company_codes": []any{"00001", "00003"}})
	for _, co := range []string{"00001", "00002", "00003"} {
		customer(h.sim, 4001, "Acme", "GBP", co)
	}
	h.sim.AddInvoices(invoices("00001", 4001, 1, 2)...)
	h.sim.AddInvoices(invoices("00002", 4001, 1, 2)...)
	h.sim.AddInvoices(invoices("00003", 4001, 1, 2)...)
	h.cycle(h.poller(nil))
	counts := map[string]int{}
	for _, m := range h.drain() {
		counts[m.subject]++
	}
	want := map[string]int{"mlc.erp.jde.00001.customer": 1, "mlc.erp.jde.00001.invoice": 2, "mlc.erp.jde.00003.customer": 1, "mlc.erp.jde.00003.invoice": 2}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Fatalf("subjects = %v, want %v", counts, want)
	}
	if _, err := poller.New(poller.Config{Settings: h.settings, Source: h.client, Publisher: h.bus, DB: h.pool}); err != nil {
		t.Fatal(err)
	}
	bad := h.settings
	bad.Companies = []string{"00.1"}
	if _, err := poller.New(poller.Config{Settings: bad, Source: h.client, Publisher: h.bus, DB: h.pool}); err == nil {
		t.Fatal("a company code with a dot would break the subject")
	}
}

func TestJulianDatesInEvents(t *testing.T) {
	dates := []struct {
		date time.Time
		want string
	}{
		{jdesim.Date(1999, 12, 31), "1999-12-31"},
		{jdesim.Date(2000, 1, 1), "2000-01-01"},
		{jdesim.Date(2024, 2, 29), "2024-02-29"},
		{jdesim.Date(2100, 2, 28), "2100-02-28"},
		{jdesim.Date(2100, 3, 1), "2100-03-01"},
	}
	outputs := []jdesim.Options{
		{DateOutput: jdesim.DatesJulian},
		{DateOutput: jdesim.DatesCompact},
		{DateOutput: jdesim.DatesFormatted},
		{DateOutput: jdesim.DatesFormatted, DateFormat: "DME", DateSeparator: "."},
		{DateOutput: jdesim.DatesFormatted, DateFormat: "EMD", DateSeparator: "-"},
	}
	for _, opts := range outputs {
		t.Run(fmt.Sprintf("%s %s%s", opts.DateOutput, opts.DateFormat, opts.DateSeparator), func(t *testing.T) {
			h := newHarness(t, opts, nil)
			for i, d := range dates {
				inv := invoices("00001", 4001, int64(i+1), 1)[0]
				inv.DDJ = d.date
				h.sim.AddInvoices(inv)
			}
			h.cycle(h.poller(nil))
			for _, m := range h.drain() {
				inv := decode(t, m.data, &mlcv1.InvoiceReady{})
				var doc int
				fmt.Sscan(inv.Invoice.InvoiceId, &doc)
				if want := dates[doc-1].want; inv.DueDate != want || inv.InvoiceDate != "2026-01-30" {
					t.Errorf("invoice %d: due %s, issued %s; want due %s", doc, inv.DueDate, inv.InvoiceDate, want)
				}
			}
		})
	}
}

func TestAmountsInCurrencyDecimals(t *testing.T) {
	amounts := []struct {
		currency string
		stored   int64
		want     string
	}{
		{"JPY", 150000, "150000"},
		{"USD", 123456, "1234.56"},
		{"GBP", 5, "0.05"},
		{"KWD", 1234567, "1234.567"},
		{"BHD", 1, "0.001"},
	}
	// The first poll selects open items by their domestic open amount
	// (AAP); a rate that keeps 0.001 BHD above a cent in USD keeps that
	// row open on both sides.
	rates := map[string]string{"BHD/USD": "100"}
	tests := []struct {
		name     string
		opts     jdesim.Options
		settings map[string]any
	}{
		{"decimal numbers", jdesim.Options{AmountOutput: jdesim.AmountsDecimal, Rates: rates}, nil},
		{"decimal strings", jdesim.Options{AmountOutput: jdesim.AmountsString, Rates: rates}, nil},
		{"implied decimals", jdesim.Options{AmountOutput: jdesim.AmountsImplied, Rates: rates}, map[string]any{"amount_format": "implied"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.opts, tt.settings)
			for i, a := range amounts {
				inv := invoices("00001", 4001, int64(i+1), 1)[0]
				inv.CRCD, inv.AG, inv.AAP = a.currency, a.stored, a.stored
				h.sim.AddInvoices(inv)
			}
			if res := h.cycle(h.poller(nil)); res.Invoices != len(amounts) || res.Rejected != 0 {
				t.Fatalf("result = %+v", res)
			}
			for _, m := range h.drain() {
				inv := decode(t, m.data, &mlcv1.InvoiceReady{})
				var doc int
				fmt.Sscan(inv.Invoice.InvoiceId, &doc)
				a := amounts[doc-1]
				if inv.Amount != a.want || inv.GrossAmount != a.want || inv.Currency != a.currency {
					t.Errorf("%s: amount %q gross %q, want %q", a.currency, inv.Amount, inv.GrossAmount, a.want)
				}
			}
		})
	}
}

func TestBadRowsBecomeExceptions(t *testing.T) {
	// Two implied decimals stored for every currency: a JPY amount with
	// non-zero hundredths cannot be expressed in yen without rounding.
	h := newHarness(t, jdesim.Options{AmountOutput: jdesim.AmountsImplied},
		map[string]any{"amount_format": "implied", "implied_decimals": 2, "refund_doc_types": []any{"RF"}})
	good := invoices("00001", 4001, 1, 1)[0]
	yen := invoices("00001", 4001, 2, 1)[0]
	yen.CRCD, yen.AAP, yen.AG = "JPY", 150, 150
	unknown := invoices("00001", 4001, 3, 1)[0]
	unknown = storedAsGiven(unknown, "XXX")
	orphan := jdesim.Invoice{DOC: 4, DCT: "RF", KCO: "00001", SFX: "001", AN8: 4001, AG: -100, AAP: -100, CRCD: "GBP"}
	h.sim.AddInvoices(good, yen, unknown, orphan)
	p := h.poller(nil)
	res := h.cycle(p)
	if res.Invoices != 1 || res.Rejected != 3 {
		t.Fatalf("result = %+v", res)
	}
	if msgs := h.drain(); len(msgs) != 1 || !strings.Contains(msgs[0].id, ":1/RI/001:") {
		t.Fatalf("published %v", msgs)
	}
	rows, err := h.pool.Query(context.Background(),
		`SELECT kind, aggregate_type, aggregate_id, reason, status FROM exceptions ORDER BY aggregate_id`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var kind, typ, id, reason, status string
		if err := rows.Scan(&kind, &typ, &id, &reason, &status); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s %s %s %s: %s", kind, typ, id, status, reason))
	}
	if len(got) != 3 || !strings.Contains(got[0], "jde_invoice jde-test/00001/2/RI/001 open") || !strings.Contains(got[0], "more decimals") ||
		!strings.Contains(got[1], "3/RI/001") || !strings.Contains(got[1], "unknown currency") ||
		!strings.Contains(got[2], "jde_refund jde-test/00001/4/RF/001") || !strings.Contains(got[2], "original invoice") {
		t.Fatalf("exceptions = %q", got)
	}
	var audited int
	if err := h.pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_log WHERE aggregate_type = 'exception' AND action = 'exception.opened'`).Scan(&audited); err != nil || audited != 3 {
		t.Fatalf("audit entries = %d, %v", audited, err)
	}
	// The watermark passed them; a corrected row has a new version and
	// is published, and no exception is opened twice.
	if wm := h.watermark("F03B11:00001"); wm.Key != "000000000004/RF/000000000001" {
		t.Fatalf("watermark = %+v", wm)
	}
	h.clock.Advance(time.Minute)
	_ = h.sim.UpdateInvoice(jdesim.DocKey{DOC: 2, DCT: "RI", KCO: "00001", SFX: "001"}, func(i *jdesim.Invoice) { i.FAP, i.ACR = 100, 100 })
	if res := h.cycle(p); res.Invoices != 1 || res.Rejected != 0 {
		t.Fatalf("after the fix: %+v", res)
	}
	if inv := decode(t, h.drain()[0].data, &mlcv1.InvoiceReady{}); inv.Amount != "1" {
		t.Fatalf("fixed JPY invoice amount = %q", inv.Amount)
	}
}

func TestManyCustomersReadTableByTable(t *testing.T) {
	for _, threshold := range []int{1, 50} {
		t.Run(fmt.Sprintf("threshold %d", threshold), func(t *testing.T) {
			h := newHarness(t, jdesim.Options{}, nil)
			for an8 := int64(1); an8 <= 8; an8++ {
				customer(h.sim, 5000+an8, fmt.Sprintf("C%d", an8), "GBP", "00001")
			}
			h.sim.ResetStats()
			res := h.cycle(h.poller(func(c *poller.Config) { c.SnapshotThreshold = threshold }))
			if res.Customers != 8 {
				t.Fatalf("result = %+v", res)
			}
			for _, m := range h.drain() {
				c := decode(t, m.data, &mlcv1.CustomerChanged{})
				if c.Email == "" || c.City != "London" || c.BankDetails == nil || c.Name == "" {
					t.Errorf("incomplete snapshot %v", c)
				}
			}
			// 5 delta reads, then the five tables whole (1 query each) or
			// customer by customer (5 tables x 8 customers), plus F0010
			// and F03B11.
			want := map[int]int{1: 5 + 5 + 2, 50: 5 + 40 + 2}[threshold]
			if st := h.sim.Stats(); st.DataRequests != want {
				t.Fatalf("data requests = %d, want %d", st.DataRequests, want)
			}
		})
	}
}

func TestUpdatedTimeInConnectionZone(t *testing.T) {
	h := newHarness(t, jdesim.Options{}, map[string]any{"timezone": "Europe/London"})
	h.clock.Advance(180 * 24 * time.Hour) // 2026-07-30, British Summer Time
	h.sim.AddInvoices(invoices("00001", 4001, 1, 1)...)
	h.cycle(h.poller(nil))
	inv := decode(t, h.drain()[0].data, &mlcv1.InvoiceReady{})
	if want := time.Date(2026, 7, 30, 8, 0, 0, 0, time.UTC); !inv.UpdatedAt.AsTime().Equal(want) || stampOnly(inv.Version) != "126211090000" {
		t.Fatalf("updated_at = %v, version %s; want %v", inv.UpdatedAt.AsTime(), inv.Version, want)
	}
}

// Two writes to a pay item in one second with a poll between them (our
// receipt, then the reversal of its charge-back, posted back to back) both
// reach the bus. The second has the first's UPMJ/UPMT, and while a version
// was that stamp alone it was dropped as seen (poll_seen, and JetStream's
// de-duplication of its message id): the invoice stayed, for the
// connector, at the 0.00 our receipt left (#17).
func TestSecondWriteInTheSameSecondIsPublished(t *testing.T) {
	h := newHarness(t, jdesim.Options{}, nil)
	customer(h.sim, 4001, "Acme", "GBP", "00001")
	h.sim.AddInvoices(invoices("00001", 4001, 1001, 1)...)
	p := h.poller(nil)
	h.cycle(p)
	h.drain()
	key := jdesim.DocKey{DOC: 1001, DCT: "RI", KCO: "00001", SFX: "001"}
	h.clock.Advance(90 * time.Second)
	var before jdesim.Invoice
	if err := h.sim.UpdateInvoice(key, func(i *jdesim.Invoice) { before = *i; i.AAP, i.FAP, i.PST = 0, 0, "P" }); err != nil {
		t.Fatal(err)
	}
	h.cycle(p)
	receipted := h.drain()
	if err := h.sim.UpdateInvoice(key, func(i *jdesim.Invoice) { *i = before }); err != nil { // the same second
		t.Fatal(err)
	}
	h.cycle(p)
	reopened := h.drain()
	if len(receipted) != 1 || len(reopened) != 1 {
		t.Fatalf("published %d, then %d messages; want one for each write", len(receipted), len(reopened))
	}
	first, second := decode(t, receipted[0].data, &mlcv1.InvoiceReady{}), decode(t, reopened[0].data, &mlcv1.InvoiceReady{})
	if first.Amount != "0.00" || second.Amount != "100.00" {
		t.Errorf("amounts %s then %s, want 0.00 then 100.00", first.Amount, second.Amount)
	}
	if stampOnly(first.Version) != stampOnly(second.Version) || first.Version == second.Version {
		t.Errorf("versions %s and %s: want one stamp, two versions", first.Version, second.Version)
	}
	// Read again unchanged: nothing more.
	h.cycle(p)
	if n := len(h.drain()); n != 0 {
		t.Errorf("%d messages for a row read again unchanged", n)
	}
}

// The same for a customer: a second change to any of its rows within the
// second of the first, with a poll between them, reaches the bus. With the
// stamp alone as the row's version the re-read row was dropped as seen,
// and with the newest stamp alone as the snapshot's the message id and
// the version the orchestrator compares were the first change's: a
// customer renamed twice kept the first name, and a bank account changed
// twice kept the first account, the one a mandate would be set up on.
func TestSecondCustomerChangeInTheSameSecondIsPublished(t *testing.T) {
	const an8 = 4001
	for _, tc := range []struct {
		table  string
		change func(sim *jdesim.Server, v string)
		got    func(*mlcv1.CustomerChanged) string
	}{
		{"F03012", func(sim *jdesim.Server, v string) {
			sim.PutCustomerMaster(jdesim.CustomerMaster{AN8: an8, CO: "00001", TRAR: v, RYIN: "D", CRCA: "GBP"})
		}, func(c *mlcv1.CustomerChanged) string { return c.ErpFields["TRAR"] }},
		{"F0101", func(sim *jdesim.Server, v string) {
			sim.PutAddressBook(jdesim.AddressBook{AN8: an8, ALPH: v, AT1: "C", TAXC: "C", LNGP: "E"})
		}, func(c *mlcv1.CustomerChanged) string { return c.Name }},
		{"F01151", func(sim *jdesim.Server, v string) {
			sim.PutEmail(jdesim.Email{AN8: an8, ETP: "E", EMAL: v})
		}, func(c *mlcv1.CustomerChanged) string { return c.Email }},
		{"F0116", func(sim *jdesim.Server, v string) {
			sim.PutAddress(jdesim.Address{AN8: an8, EFTB: jdesim.Date(2020, 1, 1), ADD1: v, CTY1: "London", ADDZ: "EC1A 1BB", CTR: "GB"})
		}, func(c *mlcv1.CustomerChanged) string { return c.AddressLine1 }},
		{"F0030", func(sim *jdesim.Server, v string) {
			sim.PutBankAccount(jdesim.BankAccount{AN8: an8, BKTP: "C", TNST: "200000", CBNK: v, CTR: "GB"})
		}, func(c *mlcv1.CustomerChanged) string { return c.BankDetails.GetAccountNumber() }},
	} {
		t.Run(tc.table, func(t *testing.T) {
			h := newHarness(t, jdesim.Options{}, nil)
			customer(h.sim, an8, "Acme", "GBP", "00001")
			p := h.poller(nil)
			h.cycle(p)
			h.drain()
			h.clock.Advance(90 * time.Second)
			tc.change(h.sim, "11111111")
			h.cycle(p)
			first := h.drain()
			tc.change(h.sim, "22222222") // the same second
			h.cycle(p)
			second := h.drain()
			if len(first) != 1 || len(second) != 1 {
				t.Fatalf("published %d, then %d messages; want one for each change", len(first), len(second))
			}
			a, b := decode(t, first[0].data, &mlcv1.CustomerChanged{}), decode(t, second[0].data, &mlcv1.CustomerChanged{})
			if tc.got(a) != "11111111" || tc.got(b) != "22222222" {
				t.Errorf("%s %q then %q, want 11111111 then 22222222", tc.table, tc.got(a), tc.got(b))
			}
			if stampOnly(a.Version) != stampOnly(b.Version) || a.Version == b.Version || first[0].id == second[0].id {
				t.Errorf("versions %s and %s (ids %s, %s): want one stamp, two versions", a.Version, b.Version, first[0].id, second[0].id)
			}
			h.cycle(p)
			if n := len(h.drain()); n != 0 {
				t.Errorf("%d messages for a customer read again unchanged", n)
			}
		})
	}
}
