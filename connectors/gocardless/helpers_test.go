package gocardless_test

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/connectors/gocardless/gcsim"
	"github.com/ml-connector/ml-connector/platform/breaker"
	"github.com/ml-connector/ml-connector/platform/retry"
	"github.com/ml-connector/ml-connector/platform/secrets"
)

// token is the access token the simulator accepts. It is distinctive so
// that a leak is found by searching for it.
const token = "live_SECRETtok3n_d0_n0t_l3ak_4f9a"

// env is a simulator and a client of it.
type env struct {
	sim   *gcsim.Server
	gc    *gocardless.Client
	calls *counter
	name  string // the client's breaker name
}

// counter is a transport that counts the requests that reach the network
// and the answers by status, so tests can say "no 429 was seen" or "that
// call sent nothing".
type counter struct {
	next     http.RoundTripper
	mu       sync.Mutex
	sent     int
	byStatus map[int]int
	keys     map[string]int // Idempotency-Key -> requests sent with it
	last     http.Header
}

func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.sent++
	if k := r.Header.Get("Idempotency-Key"); k != "" {
		c.keys[k]++
	}
	c.last = r.Header.Clone()
	c.mu.Unlock()
	resp, err := c.next.RoundTrip(r)
	if err == nil {
		c.mu.Lock()
		c.byStatus[resp.StatusCode]++
		c.mu.Unlock()
	}
	return resp, err
}

func (c *counter) keyUses() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.keys)
}

func (c *counter) lastHeader() http.Header {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

func (c *counter) requests() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sent
}

func (c *counter) status(code int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byStatus[code]
}

func newCounter() *counter {
	return &counter{next: http.DefaultTransport, byStatus: map[int]int{}, keys: map[string]int{}}
}

// fastBackoff keeps retries of 5xx quick in tests.
var fastBackoff = retry.Backoff{Base: time.Millisecond, Max: 10 * time.Millisecond, Attempts: 6}

// setup starts a simulator with o (Tokens and Seed filled in) and a client
// of it with fast backoff, a breaker named after the test, and opts.
func setup(t testing.TB, o gcsim.Options, opts ...gocardless.Option) *env {
	t.Helper()
	if o.Tokens == nil {
		o.Tokens = []string{token}
	}
	if o.Seed == 0 {
		o.Seed = 7
	}
	if o.Creditors == nil {
		// Most tests here exercise the direct mandate path, which needs a
		// creditor approved for custom payment pages.
		o.Creditors = []gcsim.Creditor{gcsim.ApprovedCreditor()}
	}
	sim := gcsim.NewServer(t, o)
	calls := newCounter()
	name := strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())
	all := append([]gocardless.Option{
		gocardless.WithTransport(calls),
		gocardless.WithBackoff(fastBackoff),
		gocardless.WithBreaker(name, breaker.Options{}),
		gocardless.WithLogger(slog.New(slog.DiscardHandler)),
	}, opts...)
	gc, err := gocardless.New(sim.URL, secrets.NewValue(token), all...)
	if err != nil {
		t.Fatal(err)
	}
	return &env{sim: sim, gc: gc, calls: calls, name: "gocardless/" + name}
}

// customer creates a GB customer with a bank account and a mandate
// (pending_submission; payments may be created on it at once).
func (e *env) customer(t testing.TB, n int) (customerID, accountID, mandateID string) {
	t.Helper()
	ctx := context.Background()
	cu, _, err := e.gc.CreateCustomer(ctx, fmt.Sprintf("cu-%d", n), gocardless.CustomerParams{
		GivenName: "Ada", FamilyName: fmt.Sprintf("Lovelace%d", n), Email: fmt.Sprintf("ada%d@example.com", n),
		AddressLine1: "1 Analytical Row", City: "London", PostalCode: "N1 1AA", CountryCode: "GB",
	})
	if err != nil {
		t.Fatalf("create customer: %v", err)
	}
	bp := gocardless.CustomerBankAccountParams{
		AccountHolderName: "Ada Lovelace", AccountNumber: "55779911", BranchCode: "200000",
		CountryCode: "GB", Currency: "GBP",
	}
	bp.Links.Customer = cu.ID
	ba, _, err := e.gc.CreateCustomerBankAccount(ctx, fmt.Sprintf("ba-%d", n), bp)
	if err != nil {
		t.Fatalf("create bank account: %v", err)
	}
	var mp gocardless.MandateParams
	mp.Links.CustomerBankAccount = ba.ID
	md, _, err := e.gc.CreateMandate(ctx, fmt.Sprintf("md-%d", n), mp)
	if err != nil {
		t.Fatalf("create mandate: %v", err)
	}
	return cu.ID, ba.ID, md.ID
}

func paymentParams(mandate string, amount int64) gocardless.PaymentParams {
	p := gocardless.PaymentParams{Amount: amount, Currency: "GBP", Reference: "INV-1"}
	p.Links.Mandate = mandate
	return p
}
