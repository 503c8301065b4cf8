package ifscloud_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/connectors/ifscloud"
	"github.com/ml-connector/ml-connector/connectors/ifscloud/ifssim"
	"github.com/ml-connector/ml-connector/platform/testsupport/fake"
)

// TestRefusedObjstateFilterFallsBackToOurSide: an IFS that answers 400 to
// a $filter on Objstate still yields exactly the ready invoices, the
// watermark moves past the others, and the log says so once.
func TestRefusedObjstateFilterFallsBackToOurSide(t *testing.T) {
	e := startSim(t, ifssim.Config{RefuseObjstateFilter: true, PageSize: 3, Budget: -1})
	states := []string{ifssim.StatePostedAuth, ifssim.StatePreliminary, ifssim.StatePartlyPaidPosted, ifssim.StatePaidPosted, ifssim.StateCancelled}
	var invs []ifssim.Invoice
	for i := range 20 {
		invs = append(invs, inv("10", int64(i+1), states[i%len(states)], base.Add(time.Duration(i)*time.Second)))
	}
	if err := e.sim.PutInvoices(invs...); err != nil {
		t.Fatal(err)
	}
	var logs fake.Log
	c := e.client(t, map[string]any{"page_size": float64(5)}, ifscloud.Options{Log: slog.New(slog.NewTextHandler(&logs, nil))})
	got, bad, last := readAll(t, c, "10")
	var ids []string
	for _, g := range got {
		ids = append(ids, g.InvoiceID)
		if st := g.Fields["Objstate"]; st != ifssim.StatePostedAuth && st != ifssim.StatePartlyPaidPosted {
			t.Errorf("invoice %s in state %s was read as ready", g.InvoiceID, st)
		}
	}
	if want := "1 3 6 8 11 13 16 18"; strings.Join(ids, " ") != want || len(bad) != 0 {
		t.Fatalf("read %v (invalid %v), want %s", ids, bad, want)
	}
	if want := (ifscloud.Watermark{Time: base.Add(19 * time.Second), Key: "20"}); last != want {
		t.Errorf("watermark %+v, want %+v: past the rows that are not ready", last, want)
	}

	// Later polls go straight to filtering on our side: one refusal in all.
	if err := e.sim.PutInvoices(inv("10", 21, ifssim.StatePostedAuth, base.Add(time.Minute)), inv("10", 22, ifssim.StatePreliminary, base.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	var more []string
	if err := c.Invoices(context.Background(), "10", last, func(p ifscloud.InvoicePage) error {
		for _, i := range p.Invoices {
			more = append(more, i.InvoiceID)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(more) != 1 || more[0] != "21" {
		t.Errorf("second poll read %v, want [21]", more)
	}
	if st := e.sim.Stats(); st.BadRequests != 1 {
		t.Errorf("%d refused requests, want the first only", st.BadRequests)
	}
	if n := strings.Count(logs.String(), "refused the $filter on Objstate"); n != 1 {
		t.Errorf("logged %d times, want once:\n%s", n, logs.String())
	}

	// A site's own filter cannot be checked on our side: the 400 stands.
	own := e.client(t, map[string]any{"invoice_ready_filter": "Objstate eq IfsApp.CustomerOrderInvoiceHandling.CustomerOrderInvState'PostedAuth'"}, ifscloud.Options{})
	err := own.Invoices(context.Background(), "10", ifscloud.Watermark{}, func(ifscloud.InvoicePage) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "Objstate") {
		t.Errorf("own filter refused: %v, want the 400", err)
	}
}

// hostGuard is a transport that lets requests reach only one host and
// records every host asked for.
type hostGuard struct {
	allowed string
	mu      sync.Mutex
	hosts   map[string]int
}

func (g *hostGuard) RoundTrip(r *http.Request) (*http.Response, error) {
	g.mu.Lock()
	g.hosts[r.URL.Host]++
	g.mu.Unlock()
	if r.URL.Host != g.allowed {
		return nil, fmt.Errorf("request to %s (Authorization %q) must not leave %s", r.URL.Host, r.Header.Get("Authorization"), g.allowed)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestNextLinkOnAnInternalHostIsRebased: IFS behind a proxy names its
// internal host (and path root) in @odata.nextLink; the client follows the
// link on the configured base URL, the token never leaves for the other
// host, and every row is read.
func TestNextLinkOnAnInternalHostIsRebased(t *testing.T) {
	e := startSim(t, ifssim.Config{PageSize: 4, Budget: -1, NextLinkBase: "http://ifs-internal.corp.example:8080/behind-proxy"})
	var invs []ifssim.Invoice
	for i := range 30 {
		invs = append(invs, inv("10", int64(i+1), ifssim.StatePostedAuth, base.Add(time.Duration(i)*time.Second)))
	}
	if err := e.sim.PutInvoices(invs...); err != nil {
		t.Fatal(err)
	}
	srv, _ := url.Parse(e.srv.URL)
	guard := &hostGuard{allowed: srv.Host, hosts: map[string]int{}}
	var logs fake.Log
	c := e.client(t, nil, ifscloud.Options{HTTPClient: &http.Client{Transport: guard}, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	got, _, _ := readAll(t, c, "10")
	if len(got) != 30 {
		t.Fatalf("read %d invoices, want 30", len(got))
	}
	followed := 0
	for _, r := range e.sim.Requests() {
		if strings.Contains(r.Query, "skiptoken") {
			followed++
		}
	}
	if followed < 7 {
		t.Errorf("%d nextLinks followed, want the 7 of 8 pages", followed)
	}
	if len(guard.hosts) != 1 {
		t.Errorf("hosts asked: %v, want %s only", guard.hosts, srv.Host)
	}
	if n := strings.Count(logs.String(), "nextLink names another host"); n != 1 {
		t.Errorf("logged %d times, want once:\n%s", n, logs.String())
	}
}
