package poll_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ml-connector/ml-connector/connectors/ifscloud"
	"github.com/ml-connector/ml-connector/connectors/ifscloud/ifssim"
	"github.com/ml-connector/ml-connector/platform/testsupport/fake"
	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
	"github.com/ml-connector/ml-connector/services/ifs-poller/internal/poll"
)

// An IFS customer's address, contact methods, payment address and company
// data are entities of their own: editing one leaves CustomerInfo, and
// its modified time, as it was. Such a change alone must still publish the
// customer, with the new details, a new version and the part's modified
// time as updated_at: the orchestrator ignores a snapshot whose updated_at
// is before the applied one's, and with CustomerInfo's it could not tell
// a new bank account from the old one redelivered.
func TestCustomerPartChangesArePublished(t *testing.T) {
	clock := fake.NewClock(base)
	f := setup(t, ifssim.Config{Budget: -1, Now: clock.Now}, nil, ifscloud.Options{})
	put := func(id string) ifssim.Customer {
		return ifssim.Customer{CustomerID: id, Company: "10", Name: "Customer " + id, Country: "SE", Currency: "SEK",
			Email: "ap@" + id + ".se", Address1: "Storgatan 1", City: "Stockholm", ZipCode: "111 22",
			AccountHolder: id, AccountNo: "1234567", BranchCode: "5527", BankCountry: "SE"}
	}
	if err := f.sim.PutCustomers(put("C1"), put("C2")); err != nil {
		t.Fatal(err)
	}
	p := f.poller(nil)
	cycle := func() poll.Stats {
		t.Helper()
		st, err := p.Cycle(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if st := cycle(); st.Published != 2 {
		t.Fatalf("first cycle %+v", st)
	}
	info, _ := f.sim.Customer("C1")
	seen := 2 // customer messages read so far
	latest := func() *mlcv1.CustomerChanged {
		t.Helper()
		msgs := f.messages("mlc.erp.ifs.10.customer")
		if len(msgs) != seen+1 {
			t.Fatalf("%d new customer messages in the stream, want 1", len(msgs)-seen)
		}
		seen = len(msgs)
		var ev mlcv1.CustomerChanged
		if err := proto.Unmarshal(msgs[len(msgs)-1].Data(), &ev); err != nil {
			t.Fatal(err)
		}
		return &ev
	}
	// C2 changes: the customers' watermark moves on, and C1's CustomerInfo
	// row falls out of their overlap window. (The parts' first poll re-reads
	// the window before their watermark once: C1 comes back as a JetStream
	// duplicate.)
	clock.Advance(5 * time.Minute)
	if err := f.sim.UpdateCustomer("C2", func(c *ifssim.Customer) { c.Name = "Renamed" }); err != nil {
		t.Fatal(err)
	}
	if st := cycle(); st.Published != 1 {
		t.Fatalf("C2 renamed: %+v", st)
	}
	seen++
	clock.Advance(2 * time.Minute)
	if err := f.sim.UpdateCustomerParts("C1", func(c *ifssim.Customer) { c.Address1, c.City = "Drottninggatan 5", "Uppsala" }); err != nil {
		t.Fatal(err)
	}
	if st := cycle(); st.Published != 1 || st.Duplicates != 0 {
		t.Fatalf("address change: %+v", st)
	}
	versions := map[string]bool{}
	ev := latest()
	if ev.CustomerId != "C1" || ev.AddressLine1 != "Drottninggatan 5" || ev.City != "Uppsala" {
		t.Fatalf("after the address change: %v", ev)
	}
	changedAt := func(name string, ev *mlcv1.CustomerChanged) {
		t.Helper()
		if at, want := ev.GetUpdatedAt().AsTime(), clock.Now().Truncate(time.Second); !at.Equal(want) || !at.After(info.Modified) {
			t.Errorf("%s: updated_at %s, want the part's change at %s (CustomerInfo's is %s)", name, at, want, info.Modified)
		}
	}
	changedAt("address", ev)
	versions[ev.Version] = true

	for _, step := range []struct {
		name   string
		change func(*ifssim.Customer)
		check  func(*mlcv1.CustomerChanged) bool
	}{
		{"e-mail", func(c *ifssim.Customer) { c.Email = "billing@c1.se" }, func(ev *mlcv1.CustomerChanged) bool { return ev.Email == "billing@c1.se" }},
		{"bank account", func(c *ifssim.Customer) { c.AccountNo = "7654321" }, func(ev *mlcv1.CustomerChanged) bool {
			return ev.BankDetails.GetAccountNumber() == "7654321"
		}},
		{"same second as the last change", func(c *ifssim.Customer) { c.Phone = "+46 8 123 45" }, func(ev *mlcv1.CustomerChanged) bool {
			return ev.PhoneNumber == "+46 8 123 45"
		}},
	} {
		if step.name != "same second as the last change" {
			clock.Advance(30 * time.Second)
		}
		if err := f.sim.UpdateCustomerParts("C1", step.change); err != nil {
			t.Fatal(err)
		}
		if st := cycle(); st.Published != 1 || st.Duplicates != 0 {
			t.Fatalf("%s: %+v", step.name, st)
		}
		ev := latest()
		if ev.CustomerId != "C1" || !step.check(ev) || versions[ev.Version] {
			t.Fatalf("%s: %v (versions before %v)", step.name, ev, versions)
		}
		versions[ev.Version] = true
		changedAt(step.name, ev)
		if !strings.HasPrefix(ev.Version, info.ETag+"+") {
			t.Errorf("%s: version %s does not keep CustomerInfo's ETag %s: CustomerInfo must not have changed", step.name, ev.Version, info.ETag)
		}
	}
	if st := cycle(); st.Published != 0 || st.Duplicates != 0 {
		t.Fatalf("nothing changed, yet %+v", st)
	}
}

// More part rows than a page changed in one instant: every page is read
// (the server's paging, not a $top that would cap the answer and read the
// same first rows on every cycle).
func TestManyPartChangesInOneInstant(t *testing.T) {
	clock := fake.NewClock(base)
	f := setup(t, ifssim.Config{Budget: -1, Now: clock.Now, PageSize: 3}, map[string]any{"page_size": float64(3)}, ifscloud.Options{})
	ids := []string{"C1", "C2", "C3", "C4", "C5", "C6", "C7"}
	for _, id := range ids {
		if err := f.sim.PutCustomers(ifssim.Customer{CustomerID: id, Company: "10", Name: id, Currency: "EUR", Address1: "Old street"}); err != nil {
			t.Fatal(err)
		}
	}
	p := f.poller(nil)
	if _, err := p.Cycle(context.Background()); err != nil {
		t.Fatal(err)
	}
	clock.Advance(5 * time.Minute)
	if err := f.sim.UpdateCustomer("C1", func(c *ifssim.Customer) { c.Name = "moves the customers' watermark" }); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Cycle(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := f.counts()["mlc.erp.ifs.10.customer"]
	clock.Advance(5 * time.Minute)
	for _, id := range ids {
		if err := f.sim.UpdateCustomerParts(id, func(c *ifssim.Customer) { c.Address1 = "New street" }); err != nil {
			t.Fatal(err)
		}
	}
	st, err := p.Cycle(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := f.counts()["mlc.erp.ifs.10.customer"] - before; got != uint64(len(ids)) || st.Published != len(ids) {
		t.Fatalf("%d customers published (%+v), want all %d whose address changed", got, st, len(ids))
	}
}
