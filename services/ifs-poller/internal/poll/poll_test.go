package poll_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ml-connector/ml-connector/connectors/ifscloud"
	"github.com/ml-connector/ml-connector/connectors/ifscloud/ifssim"
	"github.com/ml-connector/ml-connector/platform/audit"
	"github.com/ml-connector/ml-connector/platform/testsupport/fake"
	"github.com/ml-connector/ml-connector/platform/watermark"
	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
	"github.com/ml-connector/ml-connector/services/ifs-poller/internal/poll"
)

func TestOnlyConfiguredCompaniesAreRead(t *testing.T) {
	f := setup(t, ifssim.Config{}, map[string]any{"company_codes": []any{"10", "20"}}, ifscloud.Options{})
	if err := f.sim.Seed(ifssim.Seed{Companies: []string{"10", "20", "30"}, Customers: 5, Invoices: 40}); err != nil {
		t.Fatal(err)
	}
	st, err := f.poller(nil).Cycle(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{
		"mlc.erp.ifs.10.customer": 5, "mlc.erp.ifs.10.invoice": 30,
		"mlc.erp.ifs.20.customer": 5, "mlc.erp.ifs.20.invoice": 30,
	}
	if got := f.counts(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stream holds %v, want %v", got, want)
	}
	if st.Published != 70 || st.Duplicates != 0 || st.Rejected != 0 {
		t.Errorf("stats %+v", st)
	}
	// CustomerInfo has no company: a customer is the company's when the
	// company-specific set has it, and that read is limited to the company.
	var scoped []string
	for _, set := range []string{"CustomerOrderInvHeadSet", "IdentityInvoiceInfoSet", "PaymentAddressSet"} {
		scoped = append(scoped, f.queries(set)...)
	}
	if len(scoped) < 6 {
		t.Errorf("only %d company-scoped queries", len(scoped))
	}
	for _, q := range scoped {
		if !strings.HasPrefix(q, "Company eq '10'") && !strings.HasPrefix(q, "Company eq '20'") {
			t.Errorf("query outside the configured companies: %s", q)
		}
	}
}

// TestPublishesEveryEligibleInvoiceOnce reads 12,000 invoices ready for
// collection (among others that are not) in three pages of 5000: every one
// is in the stream exactly once, and a second cycle adds nothing.
func TestPublishesEveryEligibleInvoiceOnce(t *testing.T) {
	f := setup(t, ifssim.Config{PageSize: 5000, Budget: -1}, nil, ifscloud.Options{})
	var invs []ifssim.Invoice
	for i := range 12000 {
		invs = append(invs, invoice("10", int64(i+1), ifssim.StatePostedAuth, base.Add(time.Duration(i/3)*time.Second)))
	}
	for i := range 300 {
		invs = append(invs, invoice("10", int64(20000+i), []string{ifssim.StatePreliminary, ifssim.StatePaidPosted, ifssim.StateCancelled}[i%3], base))
	}
	if err := f.sim.PutInvoices(invs...); err != nil {
		t.Fatal(err)
	}
	p := f.poller(nil)
	st, err := p.Cycle(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := f.counts()["mlc.erp.ifs.10.invoice"]; got != 12000 || st.Published != 12000 || st.Duplicates != 0 {
		t.Fatalf("stream holds %d invoices, stats %+v; want 12000 each once", got, st)
	}
	if n := len(f.queries("CustomerOrderInvHeadSet")); n != 3 {
		t.Errorf("%d invoice pages read, want 3", n)
	}
	if tok := f.sim.Stats().TokensIssued; tok != 1 {
		t.Errorf("%d tokens, want 1", tok)
	}

	st, err = p.Cycle(context.Background())
	if err != nil || st.Published != 0 || st.Duplicates != 0 {
		t.Errorf("second cycle: %+v, %v; want nothing new", st, err)
	}
	if got := f.counts()["mlc.erp.ifs.10.invoice"]; got != 12000 {
		t.Errorf("stream holds %d after the second cycle", got)
	}

	// The event of invoice 1, as consumers see it.
	first := f.messages("mlc.erp.ifs.10.invoice")[0]
	stored, _ := f.sim.Invoice("10", 1)
	if id := first.Headers().Get("Nats-Msg-Id"); id != "ifs:"+connName+":10:invoice:1:"+stored.ETag {
		t.Errorf("Nats-Msg-Id %q", id)
	}
	var ev mlcv1.InvoiceReady
	if err := proto.Unmarshal(first.Data(), &ev); err != nil {
		t.Fatal(err)
	}
	want := &mlcv1.InvoiceReady{
		SchemaVersion: 1,
		Erp:           &mlcv1.ErpRef{Erp: mlcv1.Erp_ERP_IFS, Connection: connName, Company: "10"},
		Invoice:       &mlcv1.InvoiceKey{InvoiceId: "1", InvoiceNo: "CI-10-1"},
		CustomerId:    "C1", Version: stored.ETag, Amount: "100.10", GrossAmount: "120.00", Currency: "EUR",
		InvoiceDate: "2026-03-01", DueDate: "2026-04-01", PaymentTerms: "30",
		UpdatedAt: ev.UpdatedAt,
		ErpFields: map[string]string{"Objstate": "PostedAuth", "PartyType": "Customer"},
	}
	if !proto.Equal(&ev, want) || !ev.UpdatedAt.AsTime().Equal(base) {
		t.Errorf("event\n got %v\nwant %v", &ev, want)
	}
}

// failingSave crashes (returns an error) instead of saving the n-th
// invoice watermark, after that page was published.
type failingSave struct {
	poll.Watermarks
	mu    sync.Mutex
	n     int
	saves int
}

func (f *failingSave) Save(ctx context.Context, id int64, entity string, wm ifscloud.Watermark, rej []poll.Rejected, handled []watermark.Row) error {
	if strings.HasPrefix(entity, poll.KindInvoice) {
		f.mu.Lock()
		f.saves++
		crash := f.saves == f.n
		f.mu.Unlock()
		if crash {
			return errors.New("simulated crash before the watermark was saved")
		}
	}
	return f.Watermarks.Save(ctx, id, entity, wm, rej, handled)
}

// TestCrashBetweenPublishAndWatermark: the page published before the
// crash is read and published again by the next cycle, and JetStream keeps
// one copy of each message.
func TestCrashBetweenPublishAndWatermark(t *testing.T) {
	tests := []struct {
		name     string
		rows     int
		pageSize int
		modified func(i int) time.Time
	}{
		{"three pages of distinct times", 12000, 5000, func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) }},
		{"equal timestamps across page boundaries", 10, 3, func(int) time.Time { return base }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := setup(t, ifssim.Config{PageSize: tc.pageSize, Budget: -1}, map[string]any{"page_size": float64(tc.pageSize)}, ifscloud.Options{})
			var invs []ifssim.Invoice
			for i := range tc.rows {
				invs = append(invs, invoice("10", int64(i+1), ifssim.StatePostedAuth, tc.modified(i)))
			}
			if err := f.sim.PutInvoices(invs...); err != nil {
				t.Fatal(err)
			}
			state := f.state()
			_, err := f.poller(&failingSave{Watermarks: state, n: 2}).Cycle(context.Background())
			if err == nil || !strings.Contains(err.Error(), "simulated crash") {
				t.Fatalf("first cycle: %v", err)
			}
			if got := f.counts()["mlc.erp.ifs.10.invoice"]; got != uint64(2*tc.pageSize) {
				t.Fatalf("after the crash the stream holds %d, want the two published pages", got)
			}
			st, err := f.poller(state).Cycle(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if st.Duplicates != tc.pageSize || st.Published != tc.rows-2*tc.pageSize {
				t.Errorf("second cycle %+v: want %d re-published duplicates and %d new", st, tc.pageSize, tc.rows-2*tc.pageSize)
			}
			if got := f.counts()["mlc.erp.ifs.10.invoice"]; got != uint64(tc.rows) {
				t.Errorf("stream holds %d invoices, want %d", got, tc.rows)
			}
			wm, err := state.Load(context.Background(), f.conn.ID, poll.Entity(poll.KindInvoice, "10"))
			if err != nil || wm.Mark.Key != fmt.Sprint(tc.rows) || !wm.Mark.At.Equal(tc.modified(tc.rows-1)) {
				t.Errorf("watermark %+v, %v", wm, err)
			}
		})
	}
}

// TestThrottlingSlowsWithoutErrors: an IFS budget far below what the
// poller wants makes it wait (Retry-After) but not fail.
func TestThrottlingSlowsWithoutErrors(t *testing.T) {
	f := setup(t, ifssim.Config{Budget: 3, BudgetWindow: time.Second}, map[string]any{"page_size": float64(2)}, ifscloud.Options{})
	for i := range 6 {
		if err := f.sim.PutInvoices(invoice("10", int64(i+1), ifssim.StatePostedAuth, base.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	st, err := f.poller(nil).Cycle(context.Background())
	if err != nil {
		t.Fatalf("cycle failed under throttling: %v", err)
	}
	if got := f.counts()["mlc.erp.ifs.10.invoice"]; got != 6 || st.Published != 6 {
		t.Errorf("stream holds %d, stats %+v", got, st)
	}
	if f.sim.Stats().Throttled == 0 {
		t.Error("the simulator never throttled: the test proves nothing")
	}
}

func TestTokenRenewedBetweenCycles(t *testing.T) {
	tests := []struct {
		name       string
		between    func(*fixture, *fake.Clock)
		wantTokens int
		want401    int
	}{
		{"expired", func(_ *fixture, c *fake.Clock) { c.Advance(3 * time.Minute) }, 2, 0},
		{"revoked", func(f *fixture, _ *fake.Clock) { f.sim.RevokeTokens() }, 2, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := fake.NewClock(time.Now().UTC())
			f := setup(t, ifssim.Config{TokenTTL: 3 * time.Minute, Now: clk.Now}, nil, ifscloud.Options{Now: clk.Now})
			p := f.poller(nil)
			if err := f.sim.PutInvoices(invoice("10", 1, ifssim.StatePostedAuth, time.Time{})); err != nil {
				t.Fatal(err)
			}
			if _, err := p.Cycle(context.Background()); err != nil {
				t.Fatal(err)
			}
			tc.between(f, clk)
			if err := f.sim.PutInvoices(invoice("10", 2, ifssim.StatePostedAuth, time.Time{})); err != nil {
				t.Fatal(err)
			}
			st, err := p.Cycle(context.Background())
			if err != nil || st.Published != 1 {
				t.Fatalf("second cycle %+v, %v", st, err)
			}
			if s := f.sim.Stats(); s.TokensIssued != tc.wantTokens || s.Unauthorized != tc.want401 {
				t.Errorf("stats %+v", s)
			}
		})
	}
}

// TestRejectedRowsBecomeExceptions: rows that cannot be events are not
// published, are recorded once each as exceptions with an audit entry, and
// do not hold back the watermark.
func TestRejectedRowsBecomeExceptions(t *testing.T) {
	f := setup(t, ifssim.Config{}, nil, ifscloud.Options{})
	good := invoice("10", 1, ifssim.StatePostedAuth, base)
	lower := invoice("10", 2, ifssim.StatePostedAuth, base.Add(time.Second))
	lower.Currency = "eur"
	orphan := invoice("10", 3, ifssim.StatePostedAuth, base.Add(2*time.Second))
	orphan.CustomerID = ""
	if err := f.sim.PutInvoices(good, lower, orphan); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for round := range 2 {
		st, err := f.poller(nil).Cycle(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if round == 0 && (st.Published != 1 || st.Rejected != 2) {
			t.Errorf("stats %+v", st)
		}
		// A re-read (watermark lost) must not open the exceptions again.
		if _, err := f.pool.Exec(ctx, `DELETE FROM poll_state`); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := f.pool.Query(ctx, `SELECT id, aggregate_type, aggregate_id, reason, detail->>'version' FROM exceptions WHERE kind = $1 ORDER BY aggregate_id`, poll.ExceptionKind)
	if err != nil {
		t.Fatal(err)
	}
	type exc struct {
		id                     int64
		typ, agg, reason, etag string
	}
	var got []exc
	for rows.Next() {
		var e exc
		if err := rows.Scan(&e.id, &e.typ, &e.agg, &e.reason, &e.etag); err != nil {
			t.Fatal(err)
		}
		got = append(got, e)
	}
	if len(got) != 2 {
		t.Fatalf("exceptions %+v, want 2", got)
	}
	wantReason := []string{`"eur" is not an ISO 4217 currency code`, "field Identity is missing"}
	for i, e := range got {
		stored, _ := f.sim.Invoice("10", int64(i+2))
		if e.typ != "ifs_invoice" || e.agg != fmt.Sprintf("%s/10/%d", connName, i+2) || !strings.Contains(e.reason, wantReason[i]) || e.etag != stored.ETag {
			t.Errorf("exception %+v", e)
		}
		recs, err := audit.List(ctx, f.pool, "exception", fmt.Sprint(e.id))
		if err != nil || len(recs) != 1 || recs[0].Action != "exception.opened" {
			t.Errorf("audit of exception %d: %+v, %v", e.id, recs, err)
		}
	}
	if got := f.counts()["mlc.erp.ifs.10.invoice"]; got != 1 {
		t.Errorf("stream holds %d invoices, want only the valid one", got)
	}
}

func TestCustomerChangedMapping(t *testing.T) {
	cu := ifscloud.Customer{
		Company: "10", CustomerID: "C1", Name: "Acme AB", Email: "ap@acme.se", Country: "SE", Language: "sv",
		IdentityNumber: "5561234567", ETag: `W/"x"`, Modified: base,
		Bank: ifscloud.BankAccount{Holder: "Acme", AccountNumber: "1234567", BranchCode: "5527", Country: "SE", Currency: "SEK"},
	}
	tests := []struct {
		name            string
		edit            func(*ifscloud.Customer)
		swedish, danish string
		bank            bool
	}{
		{"autogiro", func(*ifscloud.Customer) {}, "5561234567", "", true},
		{"betalingsservice", func(c *ifscloud.Customer) { c.Bank.Currency = "DKK" }, "", "5561234567", true},
		{"sepa keeps the number out", func(c *ifscloud.Customer) { c.Bank.Currency = "EUR" }, "", "", true},
		{"no bank details", func(c *ifscloud.Customer) { c.Bank = ifscloud.BankAccount{} }, "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := cu
			tc.edit(&c)
			ev := poll.CustomerChanged(connName, c)
			if ev.SwedishIdentityNumber != tc.swedish || ev.DanishIdentityNumber != tc.danish || (ev.BankDetails != nil) != tc.bank {
				t.Errorf("event %v", ev)
			}
			if ev.SchemaVersion != 1 || ev.Erp.GetErp() != mlcv1.Erp_ERP_IFS || ev.Erp.GetCompany() != "10" ||
				ev.Name != "Acme AB" || ev.Version != `W/"x"` || !ev.UpdatedAt.AsTime().Equal(base) {
				t.Errorf("event %v", ev)
			}
			if tc.bank && (ev.BankDetails.AccountNumber != "1234567" || ev.BankDetails.BranchCode != "5527") {
				t.Errorf("bank details %v", ev.BankDetails)
			}
		})
	}
}
