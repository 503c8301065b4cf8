package ifscloud_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/connectors/ifscloud"
	"github.com/ml-connector/ml-connector/connectors/ifscloud/ifssim"
)

var base = time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)

// readAll polls invoices of company from the start, page by page.
func readAll(t *testing.T, c *ifscloud.Client, company string) ([]ifscloud.Invoice, []ifscloud.Invalid, ifscloud.Watermark) {
	t.Helper()
	var got []ifscloud.Invoice
	var bad []ifscloud.Invalid
	var last ifscloud.Watermark
	err := c.Invoices(context.Background(), company, ifscloud.Watermark{}, func(p ifscloud.InvoicePage) error {
		got = append(got, p.Invoices...)
		bad = append(bad, p.Invalid...)
		last = p.Last
		return nil
	})
	if err != nil {
		t.Fatalf("invoices: %v", err)
	}
	return got, bad, last
}

// TestInvoicesPaging reads many ready invoices, several sharing each
// modified time, among others that are not ready or of another company,
// with server pages smaller than, equal to and across the client's $top.
func TestInvoicesPaging(t *testing.T) {
	tests := []struct {
		name         string
		serverPage   int
		pageSize     int
		ready        int
		wantRequests int
	}{
		{"12000 in three windows of 5000", 5000, 5000, 12000, 3},
		{"server pages of 1000 within windows", 1000, 5000, 12000, 12},
		{"exact multiple needs one empty read", 5000, 5000, 10000, 3},
		{"tiny pages and windows", 3, 4, 10, 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := startSim(t, ifssim.Config{PageSize: tc.serverPage, Budget: -1})
			var invs []ifssim.Invoice
			for i := range tc.ready {
				// Seven invoices share every modified time.
				invs = append(invs, inv("10", int64(i+1), ifssim.StatePostedAuth, base.Add(time.Duration(i/7)*time.Second)))
			}
			for i := range 50 {
				invs = append(invs,
					inv("10", int64(100000+i), ifssim.StatePreliminary, base),
					inv("10", int64(200000+i), ifssim.StatePaidPosted, base),
					inv("20", int64(i+1), ifssim.StatePostedAuth, base))
			}
			if err := e.sim.PutInvoices(invs...); err != nil {
				t.Fatal(err)
			}
			c := e.client(t, map[string]any{"page_size": float64(tc.pageSize)}, ifscloud.Options{})
			got, bad, last := readAll(t, c, "10")
			if len(bad) != 0 {
				t.Fatalf("invalid rows: %v", bad)
			}
			seen := map[string]bool{}
			for i, g := range got {
				if g.Company != "10" || seen[g.InvoiceID] {
					t.Fatalf("row %d: %+v (company 10 only, each once)", i, g)
				}
				seen[g.InvoiceID] = true
				if want := fmt.Sprint(i + 1); g.InvoiceID != want {
					t.Fatalf("row %d is invoice %s, want %s in (modified, key) order", i, g.InvoiceID, want)
				}
			}
			if len(got) != tc.ready {
				t.Fatalf("read %d invoices, want %d", len(got), tc.ready)
			}
			if want := (ifscloud.Watermark{Time: base.Add(time.Duration((tc.ready-1)/7) * time.Second), Key: fmt.Sprint(tc.ready)}); last != want {
				t.Errorf("watermark %+v, want %+v", last, want)
			}
			st := e.sim.Stats()
			if st.Queries != tc.wantRequests || st.APIRequests != tc.wantRequests || st.TokensIssued != 1 {
				t.Errorf("requests: %+v, want %d queries and one token", st, tc.wantRequests)
			}
			for _, r := range e.sim.Requests() {
				q, _ := url.ParseQuery(r.Query)
				if f := q.Get("$filter"); f != "" && !strings.HasPrefix(f, "Company eq '10' and (") {
					t.Errorf("query not limited to company 10: %s", f)
				}
			}
		})
	}
}

// TestResumeAcrossEqualTimestamps stops after each page and resumes from
// the page's watermark, with every row sharing one modified time: nothing
// is skipped at the page boundaries and nothing read twice.
func TestResumeAcrossEqualTimestamps(t *testing.T) {
	e := startSim(t, ifssim.Config{PageSize: 3})
	for i := int64(1); i <= 10; i++ {
		if err := e.sim.PutInvoices(inv("10", i, ifssim.StatePostedAuth, base)); err != nil {
			t.Fatal(err)
		}
	}
	c := e.client(t, map[string]any{"page_size": float64(3)}, ifscloud.Options{})
	errStop := errors.New("stop after one page")
	var ids []string
	wm := ifscloud.Watermark{}
	for range 10 {
		err := c.Invoices(context.Background(), "10", wm, func(p ifscloud.InvoicePage) error {
			for _, i := range p.Invoices {
				ids = append(ids, i.InvoiceID)
			}
			wm = p.Last
			return errStop
		})
		if err == nil {
			break
		}
		if !errors.Is(err, errStop) {
			t.Fatal(err)
		}
	}
	if got := strings.Join(ids, ","); got != "1,2,3,4,5,6,7,8,9,10" {
		t.Errorf("read %s", got)
	}
	if wm != (ifscloud.Watermark{Time: base, Key: "10"}) {
		t.Errorf("watermark %+v", wm)
	}
}

func TestInvoiceFieldsAndExactAmounts(t *testing.T) {
	for _, ignore := range []bool{false, true} {
		t.Run(fmt.Sprintf("ignoreIEEE754=%v", ignore), func(t *testing.T) {
			e := startSim(t, ifssim.Config{IgnoreIEEE754: ignore})
			amounts := []string{"9007199254740993.01", "0.10", "1234.50", "7"}
			for i, a := range amounts {
				v := inv("10", int64(i+1), ifssim.StatePartlyPaidPosted, base.Add(time.Duration(i)*time.Second))
				v.OpenAmount, v.GrossAmount = a, "9007199254740999.99"
				if err := e.sim.PutInvoices(v); err != nil {
					t.Fatal(err)
				}
			}
			got, _, _ := readAll(t, e.client(t, nil, ifscloud.Options{}), "10")
			if len(got) != len(amounts) {
				t.Fatalf("%d invoices", len(got))
			}
			for i, g := range got {
				if g.OpenAmount != amounts[i] || g.GrossAmount != "9007199254740999.99" {
					t.Errorf("invoice %s: open %q gross %q, want %q exactly", g.InvoiceID, g.OpenAmount, g.GrossAmount, amounts[i])
				}
			}
			stored, _ := e.sim.Invoice("10", 1)
			want := ifscloud.Invoice{
				Company: "10", InvoiceID: "1", InvoiceNo: stored.InvoiceNo, CustomerID: "C10",
				OpenAmount: amounts[0], GrossAmount: "9007199254740999.99", Currency: "EUR",
				InvoiceDate: "2026-03-01", DueDate: "2026-04-01", PaymentTerms: "30",
				Modified: base, ETag: stored.ETag,
				Fields: map[string]string{"Objstate": "PartlyPaidPosted", "PartyType": "Customer"},
			}
			if fmt.Sprint(got[0]) != fmt.Sprint(want) {
				t.Errorf("invoice\n got %+v\nwant %+v", got[0], want)
			}
		})
	}
}

// TestInvalidRowsAreReportedAndPassed: rows the client cannot turn into
// records come back as Invalid with the reason, and the watermark moves
// past them.
func TestInvalidRowsAreReportedAndPassed(t *testing.T) {
	e := startSim(t, ifssim.Config{})
	good := inv("10", 1, ifssim.StatePostedAuth, base)
	noCustomer := inv("10", 2, ifssim.StatePostedAuth, base.Add(time.Second))
	noCustomer.CustomerID = ""
	badCurrency := inv("10", 3, ifssim.StatePostedAuth, base.Add(2*time.Second))
	badCurrency.Currency = "eur"
	if err := e.sim.PutInvoices(good, noCustomer, badCurrency); err != nil {
		t.Fatal(err)
	}
	got, bad, last := readAll(t, e.client(t, nil, ifscloud.Options{}), "10")
	if len(got) != 1 || got[0].InvoiceID != "1" {
		t.Fatalf("valid invoices %+v", got)
	}
	wantErr := map[string]string{"2": "field Identity is missing", "3": `"eur" is not an ISO 4217 currency code`}
	if len(bad) != 2 {
		t.Fatalf("invalid %+v", bad)
	}
	for _, b := range bad {
		if b.Version == "" || !strings.Contains(b.Err.Error(), wantErr[b.Key]) {
			t.Errorf("invalid %s: %v (version %q), want %q", b.Key, b.Err, b.Version, wantErr[b.Key])
		}
	}
	if last.Key != "3" {
		t.Errorf("watermark %+v did not pass the invalid rows", last)
	}
}

// TestMisbehavingServer: a server that ignores the company condition or
// the ordering must not make the client publish foreign rows or move its
// watermark past unread rows.
func TestMisbehavingServer(t *testing.T) {
	rewrite := func(fn func(q url.Values)) func(http.Handler) http.Handler {
		return func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				q := r.URL.Query()
				fn(q)
				r.URL.RawQuery = q.Encode()
				next.ServeHTTP(w, r)
			})
		}
	}
	put := func(t *testing.T, e *env) {
		t.Helper()
		if err := e.sim.PutInvoices(
			inv("10", 1, ifssim.StatePostedAuth, base), inv("20", 2, ifssim.StatePostedAuth, base.Add(time.Second)),
			inv("10", 3, ifssim.StatePostedAuth, base.Add(2*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("company condition ignored", func(t *testing.T) {
		e := startSim(t, ifssim.Config{}, rewrite(func(q url.Values) {
			q.Set("$filter", strings.Replace(q.Get("$filter"), "Company eq '10' and ", "", 1))
		}))
		put(t, e)
		got, bad, _ := readAll(t, e.client(t, nil, ifscloud.Options{}), "10")
		if len(got) != 2 || got[0].InvoiceID != "1" || got[1].InvoiceID != "3" {
			t.Errorf("read %+v, want invoices 1 and 3 of company 10", got)
		}
		if len(bad) != 1 || !strings.Contains(bad[0].Err.Error(), `row of company "20"`) {
			t.Errorf("foreign row not flagged: %+v", bad)
		}
	})
	t.Run("order ignored", func(t *testing.T) {
		e := startSim(t, ifssim.Config{}, rewrite(func(q url.Values) {
			if q.Has("$orderby") {
				q.Set("$orderby", "Rowversion desc")
			}
		}))
		put(t, e)
		err := e.client(t, nil, ifscloud.Options{}).Invoices(context.Background(), "10", ifscloud.Watermark{},
			func(ifscloud.InvoicePage) error { t.Error("page handed out despite bad order"); return nil })
		if err == nil || !strings.Contains(err.Error(), "did not keep the order") {
			t.Errorf("error %v", err)
		}
	})
}

// TestCustomers reads customers as standard IFS keeps them: the
// enterprise-wide CustomerInfo (no company), the company-specific row that
// makes it a customer of the company, and its address, contact methods and
// payment address from their own sets, in a few requests per page.
func TestCustomers(t *testing.T) {
	e := startSim(t, ifssim.Config{})
	if err := e.sim.Seed(ifssim.Seed{Companies: []string{"10", "20"}, Customers: 4, Invoices: 0, Start: base}); err != nil {
		t.Fatal(err)
	}
	c := e.client(t, nil, ifscloud.Options{})
	read := func() []ifscloud.Customer {
		var got []ifscloud.Customer
		err := c.Customers(context.Background(), "10", ifscloud.Watermark{}, func(p ifscloud.CustomerPage) error {
			if len(p.Invalid) > 0 {
				t.Errorf("invalid customers %+v", p.Invalid)
			}
			got = append(got, p.Customers...)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	e.sim.ResetStats()
	got := read()
	if len(got) != 4 {
		t.Fatalf("%d customers of company 10, want 4 (of 8 in CustomerInfoSet)", len(got))
	}
	if st := e.sim.Stats(); st.Queries != 5 {
		t.Errorf("%d queries, want 5: customers, then company rows, addresses, contacts and bank accounts for the page", st.Queries)
	}
	for _, r := range e.sim.Requests() {
		if strings.Contains(r.Path, "CustomerInfoSet") && strings.Contains(r.Query, "Company") {
			t.Errorf("CustomerInfoSet has no company, yet it was filtered on one: %s", r.Query)
		}
	}
	want, _ := e.sim.Customer("C10-00001")
	g := got[0]
	if g.CustomerID != want.CustomerID || g.Company != "10" || g.Name != want.Name || g.Email != want.Email ||
		g.Address1 != want.Address1 || g.City != want.City || g.PostalCode != want.ZipCode || g.Country != "DE" || g.Language != "de" ||
		g.Bank.IBAN != want.IBAN || g.Bank.Holder != want.AccountHolder || g.Bank.Country != "DE" || g.Bank.Currency != "EUR" ||
		!strings.HasPrefix(g.ETag, want.ETag+"+") || !g.Modified.Equal(base) {
		t.Errorf("customer\n got %+v\nfrom %+v", g, want)
	}
	ids := make([]string, len(got))
	for i, cu := range got {
		ids[i] = cu.CustomerID
	}
	if !slices.IsSorted(ids) {
		t.Errorf("customers not in key order: %v", ids)
	}
	if again := read(); again[0].ETag != g.ETag {
		t.Errorf("version changed without a change: %s, then %s", g.ETag, again[0].ETag)
	}
	// A new bank account is a new version of the customer.
	if err := e.sim.UpdateCustomer("C10-00001", func(cu *ifssim.Customer) { cu.IBAN = "DE89370400440532013000" }); err != nil {
		t.Fatal(err)
	}
	for _, cu := range read() {
		if cu.CustomerID == "C10-00001" && (cu.Bank.IBAN != "DE89370400440532013000" || cu.ETag == g.ETag) {
			t.Errorf("after a bank change: %+v", cu)
		}
	}
}
