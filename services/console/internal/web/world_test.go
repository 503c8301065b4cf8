package web_test

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/connectors/gocardless/gcsim"
	"github.com/ml-connector/ml-connector/platform/audit"
	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/platform/secrets"
	"github.com/ml-connector/ml-connector/platform/testsupport"
	"github.com/ml-connector/ml-connector/services/console/internal/session"
	"github.com/ml-connector/ml-connector/services/console/internal/views"
	"github.com/ml-connector/ml-connector/services/console/internal/web"
	"github.com/ml-connector/ml-connector/services/console/users"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/operator"
)

// Secrets the tests store; no page or answer may ever contain them.
const (
	gcToken    = "gc-token-never-shown-0123456789"
	ifsSecret  = "ifs-secret-never-shown-987654"
	adminPass  = "admin-password-long-enough"
	opPass     = "operator-password-long-enough"
	viewerPass = "viewer-password-long-enough"
)

// world is a console on a fresh database with a GoCardless simulator, an
// IFS connection collecting through it, one customer with a mandate, and
// three failed payments: GBP 4,000.00 and GBP 310.00 (insufficient funds)
// and EUR 12.34 (cancelled), plus one invalid invoice exception.
type world struct {
	t     *testing.T
	DB    *pgxpool.Pool
	Sim   *gcsim.Server
	Conns *connections.Store
	Srv   *httptest.Server
	log   *strings.Builder
	// newServer makes another console over the same database and stores,
	// as a second replica would be.
	newServer func(edit func(*web.Config)) (*web.Server, error)
}

func newWorld(t *testing.T) *world {
	t.Helper()
	return newWorldWith(t, nil)
}

// newWorldWith is newWorld with sign-in through an OpenID provider, made
// by oidc for the console's address (nil: none).
func newWorldWith(t *testing.T, oidc func(consoleURL string) *web.OIDC) *world {
	t.Helper()
	ctx := context.Background()
	w := &world{t: t, DB: testsupport.Pool(t), log: &strings.Builder{}}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	keys, err := secrets.NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	// Every audit row is signed, as the services sign them.
	audit.SignWith(audit.KeysFrom(keys))
	t.Cleanup(func() { audit.SignWith(nil) })
	// GoCardless's clock starts now (and moves only when told): the
	// console compares the links' expiry with the wall clock, as it must
	// in production.
	w.Sim = gcsim.NewServer(t, gcsim.Options{Tokens: []string{gcToken}, Creditors: []gcsim.Creditor{gcsim.ApprovedCreditor()},
		Clock: gcsim.NewManualClock(time.Now().UTC().Truncate(time.Second))})
	w.Conns = connections.NewStore(w.DB, keys)
	if _, err := w.Conns.Add(ctx, connections.New{Name: "gc", Kind: connections.KindGoCardless, Actor: "test",
		Settings: map[string]any{"base_url": w.Sim.URL}, Secrets: map[string]secrets.Value{"access_token": secrets.NewValue(gcToken)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Conns.Add(ctx, connections.New{Name: "ifs-acme", Kind: connections.KindIFS, Actor: "test",
		Settings: map[string]any{"base_url": "https://acme.ifs.example", "client_id": "mlc", "company_codes": []any{"10", "20"}, "gocardless": "gc"},
		Secrets:  map[string]secrets.Value{"client_secret": secrets.NewValue(ifsSecret)}}); err != nil {
		t.Fatal(err)
	}
	// A real customer, bank account and mandate at the simulator, so a
	// replay makes a real payment.
	gc, err := gocardless.New(w.Sim.URL, secrets.NewValue(gcToken))
	if err != nil {
		t.Fatal(err)
	}
	cu, _, err := gc.CreateCustomer(ctx, "cu-1", gocardless.CustomerParams{Email: "ap@customer.example", CompanyName: "Customer Ltd", CountryCode: "GB"})
	if err != nil {
		t.Fatal(err)
	}
	bp := gocardless.CustomerBankAccountParams{AccountHolderName: "Customer Ltd", AccountNumber: "55779911", BranchCode: "200000", CountryCode: "GB"}
	bp.Links.Customer = cu.ID
	ba, _, err := gc.CreateCustomerBankAccount(ctx, "ba-1", bp)
	if err != nil {
		t.Fatal(err)
	}
	mp := gocardless.MandateParams{}
	mp.Links.CustomerBankAccount = ba.ID
	md, _, err := gc.CreateMandate(ctx, "md-1", mp)
	if err != nil {
		t.Fatal(err)
	}
	w.exec(`INSERT INTO customer_links (erp, connection_id, company, erp_customer_id, gc_connection_id, gc_customer_id, gc_bank_account_id, gc_mandate_id, mandate_status)
		SELECT 'ifs', i.id, c.company, 'C1', g.id, $1, $2, $3, 'pending_submission'
		FROM connections i, connections g, (VALUES ('10'), ('20')) c(company) WHERE i.name = 'ifs-acme' AND g.name = 'gc'`, cu.ID, ba.ID, md.ID)
	for _, c := range []struct {
		company, invoice, currency, state, cause string
		minor                                    int64
	}{
		{"10", "INV-4000", "GBP", "failed", "insufficient_funds", 400000},
		{"10", "INV-310", "GBP", "failed", "insufficient_funds", 31000},
		{"20", "INV-EUR", "EUR", "cancelled", "", 1234},
	} {
		w.exec(`INSERT INTO collections (erp, connection_id, gc_connection_id, company, invoice_id, invoice_no, customer_id, kind,
			amount_minor, currency, state, gc_payment_id, idempotency_key, attempts, failure_cause, failure_reason_code, failure_description)
			SELECT 'ifs', i.id, g.id, $1, $2, $2, 'C1', 'payment', $3, $4, $5, 'PM' || $2, 'key-' || $2, 1, nullif($6, ''), 'ARUDD-0',
			       CASE WHEN $6 <> '' THEN 'The customer''s account had insufficient funds' END
			FROM connections i, connections g WHERE i.name = 'ifs-acme' AND g.name = 'gc'`,
			c.company, c.invoice, c.minor, c.currency, c.state, c.cause)
	}
	w.exec(`INSERT INTO exceptions (kind, aggregate_type, aggregate_id, reason) VALUES
		('invalid_invoice', 'invoice', 'ifs-acme:10:INV-BAD', 'amount: more decimals than the currency allows')`)

	us := users.NewStore(w.DB)
	for _, u := range []struct {
		name string
		role users.Role
		pass string
	}{{"alice", users.Admin, adminPass}, {"oscar", users.Operator, opPass}, {"vera", users.Viewer, viewerPass}} {
		if _, err := us.Add(ctx, users.New{Name: u.name, Role: u.role, Password: secrets.NewValue(u.pass), Actor: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	desk := operator.NewDesk(w.DB, w.Conns, nil)
	v := views.New(w.DB, desk).CheckMACs(audit.KeysFrom(keys))
	log := slog.New(slog.NewTextHandler(w.log, nil))
	// The address is known before the server starts, for the provider's
	// redirect URI.
	w.Srv = httptest.NewUnstartedServer(nil)
	cfg := web.Config{LoginAttempts: 5, LoginWindow: time.Minute, Overview: views.NewRefresher(v, time.Minute)}
	if oidc != nil {
		cfg.OIDC = oidc("https://" + w.Srv.Listener.Addr().String())
	}
	w.newServer = func(edit func(*web.Config)) (*web.Server, error) {
		c := cfg
		if edit != nil {
			edit(&c)
		}
		return web.New(c, log, w.DB, us, session.NewStore(w.DB, time.Hour), desk, w.Conns, v)
	}
	srv, err := w.newServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Srv.Config.Handler = srv.Handler()
	w.Srv.StartTLS()
	t.Cleanup(w.Srv.Close)
	t.Cleanup(func() {
		for _, s := range []string{gcToken, ifsSecret, adminPass, opPass, viewerPass} {
			if strings.Contains(w.log.String(), s) {
				t.Errorf("the log contains a secret")
			}
		}
	})
	return w
}

func (w *world) exec(sql string, args ...any) {
	w.t.Helper()
	if _, err := w.DB.Exec(context.Background(), sql, args...); err != nil {
		w.t.Fatalf("%s: %v", sql, err)
	}
}

func (w *world) count(sql string, args ...any) int {
	w.t.Helper()
	var n int
	if err := w.DB.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		w.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// browser is an HTTP client with a cookie jar, as a browser would be.
type browser struct {
	w *world
	c *http.Client
}

func (w *world) browser() *browser {
	jar, _ := cookiejar.New(nil)
	c := w.Srv.Client()
	c.Jar = jar
	return &browser{w: w, c: c}
}

// signIn signs in through the form and fails the test if it does not work.
func (w *world) signIn(name, password string) *browser {
	w.t.Helper()
	b := w.browser()
	page := b.get("/login", 200)
	status, body := b.post("/login", url.Values{"name": {name}, "password": {password}, "login_token": {field(page, "login_token")}, "next": {"/"}})
	if status != 200 || !strings.Contains(body, "Overview") {
		w.t.Fatalf("sign-in as %s: %d\n%s", name, status, body)
	}
	return b
}

func (b *browser) do(req *http.Request) (int, string) {
	b.w.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.w.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, s := range []string{gcToken, ifsSecret, adminPass, opPass, viewerPass} {
		if strings.Contains(string(body), s) {
			b.w.t.Errorf("%s %s: the answer contains a secret", req.Method, req.URL.Path)
		}
	}
	return resp.StatusCode, string(body)
}

func (b *browser) get(path string, want int) string {
	b.w.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.w.Srv.URL+path, nil)
	status, body := b.do(req)
	if want != 0 && status != want {
		b.w.t.Fatalf("GET %s: %d, want %d\n%s", path, status, want, body)
	}
	return body
}

func (b *browser) getJSON(path string) (int, string) {
	req, _ := http.NewRequest(http.MethodGet, b.w.Srv.URL+path, nil)
	req.Header.Set("Accept", "application/json")
	return b.do(req)
}

// post sends a form as the console's own page would (same origin).
func (b *browser) post(path string, form url.Values) (int, string) {
	req, _ := http.NewRequest(http.MethodPost, b.w.Srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.w.Srv.URL)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return b.do(req)
}

var fieldRE = regexp.MustCompile(`name="([a-z_]+)" value="([^"]*)"`)

// field returns the value of the first hidden field called name.
func field(page, name string) string {
	for _, m := range fieldRE.FindAllStringSubmatch(page, -1) {
		if m[1] == name {
			return m[2]
		}
	}
	return ""
}
