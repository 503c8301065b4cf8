package ifssim_test

import (
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/connectors/ifscloud/ifssim"
	"github.com/ml-connector/ml-connector/platform/testsupport/fake"
)

// newClock is a clock at 2026-03-01 12:00 UTC.
func newClock() *fake.Clock { return fake.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)) }

const (
	invoicesPath = "/main/ifsapplications/projection/v1/CustomerOrderInvoiceHandling.svc/CustomerOrderInvHeadSet"
	stateEnum    = "IfsApp.CustomerOrderInvoiceHandling.CustomerOrderInvState"
	mixedPath    = "/main/ifsapplications/projection/v1/MixedPaymentHandling.svc/"
)

// harness is a simulator behind a real HTTP server.
type harness struct {
	t     *testing.T
	sim   *ifssim.Sim
	srv   *httptest.Server
	clock *fake.Clock
}

func start(t *testing.T, cfg ifssim.Config) *harness {
	t.Helper()
	h := &harness{t: t, clock: newClock()}
	if cfg.Now == nil {
		cfg.Now = h.clock.Now
	}
	h.sim = ifssim.New(cfg)
	h.srv = httptest.NewServer(h.sim)
	t.Cleanup(h.srv.Close)
	return h
}

func (h *harness) token() string {
	h.t.Helper()
	res, err := http.PostForm(h.srv.URL+"/auth/realms/ifs/protocol/openid-connect/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {"mlc"}, "client_secret": {"secret"}})
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if res.StatusCode != 200 || json.NewDecoder(res.Body).Decode(&tok) != nil {
		h.t.Fatalf("token: %s", res.Status)
	}
	return tok.AccessToken
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (a answer) code() string {
	e, _ := a.body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func (a answer) values() []map[string]any {
	vs, _ := a.body["value"].([]any)
	out := make([]map[string]any, len(vs))
	for i, v := range vs {
		out[i] = v.(map[string]any)
	}
	return out
}

func (h *harness) do(method, target, token string, header map[string]string, body string) answer {
	h.t.Helper()
	if !strings.HasPrefix(target, "http") {
		target = h.srv.URL + target
	}
	req, err := http.NewRequest(method, target, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	a := answer{status: res.StatusCode, header: res.Header, raw: string(raw)}
	d := json.NewDecoder(strings.NewReader(a.raw))
	d.UseNumber()
	_ = d.Decode(&a.body)
	return a
}

func (h *harness) get(path string, q url.Values, token string) answer {
	h.t.Helper()
	if q != nil {
		path += "?" + q.Encode()
	}
	return h.do(http.MethodGet, path, token, nil, "")
}

func invoice(company string, id int64, state string, modified time.Time) ifssim.Invoice {
	return ifssim.Invoice{
		Company: company, InvoiceID: id, InvoiceNo: fmt.Sprintf("CI-%d", id), CustomerID: "C1",
		Currency: "EUR", State: state, GrossAmount: "100.10", OpenAmount: "100.10",
		DueDate: "2026-04-01", Modified: modified,
	}
}

func TestTokenEndpoint(t *testing.T) {
	h := start(t, ifssim.Config{})
	tests := []struct {
		name   string
		path   string
		form   url.Values
		basic  [2]string
		status int
		error  string
	}{
		{"form credentials", "/auth/realms/ifs/protocol/openid-connect/token",
			url.Values{"grant_type": {"client_credentials"}, "client_id": {"mlc"}, "client_secret": {"secret"}}, [2]string{}, 200, ""},
		{"basic credentials", "/auth/realms/ifs/protocol/openid-connect/token",
			url.Values{"grant_type": {"client_credentials"}}, [2]string{"mlc", "secret"}, 200, ""},
		{"wrong secret", "/auth/realms/ifs/protocol/openid-connect/token",
			url.Values{"grant_type": {"client_credentials"}, "client_id": {"mlc"}, "client_secret": {"nope"}}, [2]string{}, 401, "unauthorized_client"},
		{"unknown client", "/auth/realms/ifs/protocol/openid-connect/token",
			url.Values{"grant_type": {"client_credentials"}, "client_id": {"other"}, "client_secret": {"secret"}}, [2]string{}, 401, "unauthorized_client"},
		{"password grant", "/auth/realms/ifs/protocol/openid-connect/token",
			url.Values{"grant_type": {"password"}, "client_id": {"mlc"}, "client_secret": {"secret"}}, [2]string{}, 400, "unsupported_grant_type"},
		{"unknown realm", "/auth/realms/other/protocol/openid-connect/token",
			url.Values{"grant_type": {"client_credentials"}, "client_id": {"mlc"}, "client_secret": {"secret"}}, [2]string{}, 404, "not_found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, h.srv.URL+tc.path, strings.NewReader(tc.form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tc.basic[0] != "" {
				req.SetBasicAuth(tc.basic[0], tc.basic[1])
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var body map[string]any
			_ = json.NewDecoder(res.Body).Decode(&body)
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%v)", res.StatusCode, tc.status, body)
			}
			if tc.error != "" && body["error"] != tc.error {
				t.Errorf("error %v, want %s", body["error"], tc.error)
			}
			if tc.status == 200 && (body["access_token"] == "" || body["expires_in"] != float64(3600) || body["token_type"] != "Bearer") {
				t.Errorf("token answer %v", body)
			}
		})
	}
}

func TestTokensExpireAndCanBeRevoked(t *testing.T) {
	h := start(t, ifssim.Config{TokenTTL: 3 * time.Minute})
	tok := h.token()
	if a := h.get(invoicesPath, nil, tok); a.status != 200 {
		t.Fatalf("fresh token: %d %s", a.status, a.raw)
	}
	h.clock.Advance(3 * time.Minute)
	a := h.get(invoicesPath, nil, tok)
	if a.status != 401 || !strings.Contains(a.header.Get("WWW-Authenticate"), "invalid_token") {
		t.Fatalf("expired token: %d %v", a.status, a.header)
	}
	tok = h.token()
	h.sim.RevokeTokens()
	if a := h.get(invoicesPath, nil, tok); a.status != 401 {
		t.Fatalf("revoked token: %d", a.status)
	}
	if a := h.get(invoicesPath, nil, ""); a.status != 401 {
		t.Fatalf("no token: %d", a.status)
	}
	if st := h.sim.Stats(); st.Unauthorized != 3 || st.TokensIssued != 2 {
		t.Errorf("stats %+v", st)
	}
}

func TestFilterSubset(t *testing.T) {
	h := start(t, ifssim.Config{})
	base := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	if err := h.sim.PutInvoices(
		invoice("10", 1, ifssim.StatePostedAuth, base),
		invoice("10", 2, ifssim.StatePreliminary, base.Add(time.Second)),
		invoice("10", 3, ifssim.StatePartlyPaidPosted, base.Add(2*time.Second)),
		invoice("20", 4, ifssim.StatePostedAuth, base),
	); err != nil {
		t.Fatal(err)
	}
	tok := h.token()
	tests := []struct {
		filter string
		want   int    // rows, when code is empty
		code   string // expected error code
	}{
		{"Company eq '10'", 3, ""},
		{"Company eq '10' and (Objstate eq " + stateEnum + "'PostedAuth' or Objstate eq " + stateEnum + "'PartlyPaidPosted')", 2, ""},
		{"Company eq '10' and (Rowversion gt 2026-01-01T10:00:00Z or (Rowversion eq 2026-01-01T10:00:00Z and InvoiceId gt 1))", 2, ""},
		{"Rowversion ge 2026-01-01T10:00:01.000Z", 2, ""},
		{"not (Company eq '10')", 1, ""},
		{"OpenAmount gt 100.09 and OpenAmount le 100.10", 4, ""},
		{"DueDate eq 2026-04-01", 4, ""},
		{"InvoiceDate eq null", 4, ""},
		{"InvoiceNo eq 'CI-''1'", 0, ""},
		{"contains(InvoiceNo,'1')", 0, "ODP_UNSUPPORTED_URL"},
		{"startswith(Company,'1')", 0, "ODP_UNSUPPORTED_URL"},
		{"Company in ('10','20')", 0, "ODP_UNSUPPORTED_URL"},
		{"Objstate eq 'PostedAuth'", 0, "ODP_UNSUPPORTED_URL"},
		{"Objstate eq IfsApp.Other.State'PostedAuth'", 0, "ODP_UNSUPPORTED_URL"},
		{"Objstate gt " + stateEnum + "'PostedAuth'", 0, "ODP_UNSUPPORTED_URL"},
		{"InvoiceId add 1 gt 2", 0, "ODP_UNSUPPORTED_URL"},
		{"Lines/any(l: l/Amount gt 0)", 0, "ODP_UNSUPPORTED_URL"},
		{"Nope eq '10'", 0, "ODP_UNSUPPORTED_URL"},
		{"Company eq InvoiceNo", 0, "ODP_UNSUPPORTED_URL"},
		{"InvoiceId eq '1'", 0, "ODP_UNSUPPORTED_URL"},
		{"(Company eq '10'", 0, "ODP_UNSUPPORTED_URL"},
		{"Company eq 'unterminated", 0, "ODP_UNSUPPORTED_URL"},
	}
	for _, tc := range tests {
		t.Run(tc.filter, func(t *testing.T) {
			a := h.get(invoicesPath, url.Values{"$filter": {tc.filter}}, tok)
			if tc.code != "" {
				if a.status != 400 || a.code() != tc.code {
					t.Fatalf("got %d %s, want 400 %s", a.status, a.raw, tc.code)
				}
				return
			}
			if a.status != 200 || len(a.values()) != tc.want {
				t.Fatalf("got %d with %d rows, want %d: %s", a.status, len(a.values()), tc.want, a.raw)
			}
		})
	}
}

func TestQueryOptions(t *testing.T) {
	h := start(t, ifssim.Config{})
	if err := h.sim.PutInvoices(invoice("10", 1, ifssim.StatePostedAuth, time.Time{})); err != nil {
		t.Fatal(err)
	}
	tok := h.token()
	tests := []struct {
		name string
		q    url.Values
		code string
	}{
		{"expand", url.Values{"$expand": {"Lines"}}, "ODP_UNSUPPORTED_URL"},
		{"count", url.Values{"$count": {"true"}}, "ODP_UNSUPPORTED_URL"},
		{"top above 5000", url.Values{"$top": {"5001"}}, "ODP_UNSUPPORTED_URL"},
		{"top zero", url.Values{"$top": {"0"}}, "ODP_UNSUPPORTED_URL"},
		{"unknown select", url.Values{"$select": {"Company,Nope"}}, "ODP_UNSUPPORTED_URL"},
		{"unknown orderby", url.Values{"$orderby": {"Nope asc"}}, "ODP_UNSUPPORTED_URL"},
		{"bad direction", url.Values{"$orderby": {"Company sideways"}}, "ODP_UNSUPPORTED_URL"},
		{"forged skiptoken", url.Values{"$skiptoken": {"bm9wZQ"}}, "ODP_INVALID_SKIPTOKEN"},
		{"top 5000", url.Values{"$top": {"5000"}, "$select": {"Company,InvoiceId"}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := h.get(invoicesPath, tc.q, tok)
			if tc.code == "" {
				if a.status != 200 {
					t.Fatalf("%d %s", a.status, a.raw)
				}
				if got := a.values()[0]; len(got) != 3 || got["@odata.etag"] == nil {
					t.Errorf("selected row %v, want etag, Company, InvoiceId", got)
				}
				return
			}
			if a.status != 400 || a.code() != tc.code {
				t.Fatalf("got %d %s, want 400 %s", a.status, a.raw, tc.code)
			}
		})
	}
	if a := h.get(invoicesPath+"(Company='10',InvoiceId=9)", nil, tok); a.status != 404 || a.code() != "ODP_NOT_FOUND" {
		t.Errorf("missing entity: %d %s", a.status, a.raw)
	}
	if a := h.get(invoicesPath+"(Company='10')", nil, tok); a.status != 400 || a.code() != "ODP_INVALID_KEY" {
		t.Errorf("partial key: %d %s", a.status, a.raw)
	}
	if a := h.get("/main/ifsapplications/projection/v1/Nope.svc/Set", nil, tok); a.status != 404 || a.code() != "MI_METADATA_NOTFOUND" {
		t.Errorf("unknown projection: %d %s", a.status, a.raw)
	}
}

// TestPagingFollowsKeysNotOffsets pages through rows while one already
// returned changes (moving to the end) and one not yet returned leaves the
// filter: key-based skip tokens neither skip nor repeat what is left.
func TestPagingFollowsKeysNotOffsets(t *testing.T) {
	h := start(t, ifssim.Config{PageSize: 3})
	base := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	for i := int64(1); i <= 10; i++ {
		if err := h.sim.PutInvoices(invoice("10", i, ifssim.StatePostedAuth, base)); err != nil {
			t.Fatal(err)
		}
	}
	tok := h.token()
	q := url.Values{
		"$filter":  {"Company eq '10' and Objstate eq " + stateEnum + "'PostedAuth'"},
		"$orderby": {"Rowversion asc,InvoiceId asc"},
		"$top":     {"8"},
		"$select":  {"InvoiceId"},
	}
	a := h.get(invoicesPath, q, tok)
	var ids []string
	for {
		if a.status != 200 {
			t.Fatalf("%d %s", a.status, a.raw)
		}
		for _, v := range a.values() {
			ids = append(ids, fmt.Sprint(v["InvoiceId"]))
		}
		if len(ids) == 3 {
			_ = h.sim.UpdateInvoice("10", 2, func(inv *ifssim.Invoice) { inv.Modified = base.Add(time.Hour) })
			_ = h.sim.UpdateInvoice("10", 5, func(inv *ifssim.Invoice) { inv.State = ifssim.StatePaidPosted })
		}
		next, _ := a.body["@odata.nextLink"].(string)
		if next == "" {
			break
		}
		a = h.do(http.MethodGet, next, tok, nil, "")
	}
	if got, want := strings.Join(ids, ","), "1,2,3,4,6,7,8,9"; got != want {
		t.Errorf("paged ids %s, want %s ($top 8 across pages of 3)", got, want)
	}
}

func TestBudgetAnswers429WithRetryAfter(t *testing.T) {
	h := start(t, ifssim.Config{Budget: 3, BudgetWindow: time.Minute})
	tok := h.token()
	for i := range 3 {
		if a := h.get(invoicesPath, nil, tok); a.status != 200 {
			t.Fatalf("request %d: %d", i+1, a.status)
		}
	}
	h.clock.Advance(15 * time.Second)
	a := h.get(invoicesPath, nil, tok)
	if a.status != 429 || a.header.Get("Retry-After") != "45" || a.code() != "TOO_MANY_REQUESTS" {
		t.Fatalf("over budget: %d Retry-After %q %s", a.status, a.header.Get("Retry-After"), a.raw)
	}
	h.clock.Advance(45 * time.Second)
	if a := h.get(invoicesPath, nil, tok); a.status != 200 {
		t.Fatalf("next window: %d", a.status)
	}
}

func TestInjectedFaults(t *testing.T) {
	h := start(t, ifssim.Config{})
	tok := h.token()
	h.sim.FailNext(1, 502)
	if a := h.get(invoicesPath, nil, tok); a.status != 502 || !strings.Contains(a.raw, "ORA-") {
		t.Fatalf("injected 5xx: %d %s", a.status, a.raw)
	}
	h.sim.ThrottleNext(1, 2*time.Second)
	if a := h.get(invoicesPath, nil, tok); a.status != 429 || a.header.Get("Retry-After") != "2" {
		t.Fatalf("injected 429: %d %v", a.status, a.header)
	}
	h.sim.SetLatency(50 * time.Millisecond)
	began := time.Now()
	if a := h.get(invoicesPath, nil, tok); a.status != 200 || time.Since(began) < 50*time.Millisecond {
		t.Fatalf("latency: %d after %s", a.status, time.Since(began))
	}
	if st := h.sim.Stats(); st.ServerErrors != 1 || st.Throttled != 1 || st.Queries != 1 || st.APIRequests != 3 {
		t.Errorf("stats %+v", st)
	}
}

// TestMixedPaymentRules drives a mixed payment through the API: create,
// lump sum, customer payment line, approve and cancel with If-Match, and
// the rules each step enforces (see mixed.go for their sources).
func TestMixedPaymentRules(t *testing.T) {
	h := start(t, ifssim.Config{})
	if err := h.sim.PutInvoices(invoice("10", 7, ifssim.StatePostedAuth, time.Time{})); err != nil {
		t.Fatal(err)
	}
	if err := h.sim.PutCustomers(ifssim.Customer{CustomerID: "C1", Company: "10", Name: "Acme"},
		ifssim.Customer{CustomerID: "C2", Company: "10", Name: "Other"}); err != nil {
		t.Fatal(err)
	}
	tok := h.token()
	post := func(set, body string, header map[string]string) answer {
		hdr := map[string]string{"Content-Type": "application/json"}
		for k, v := range header {
			hdr[k] = v
		}
		return h.do(http.MethodPost, mixedPath+set, tok, hdr, body)
	}
	refused := func(what string, a answer, status int, text string) {
		t.Helper()
		if a.status != status || !strings.Contains(a.raw, text) {
			t.Fatalf("%s: %d %s, want %d mentioning %s", what, a.status, a.raw, status, text)
		}
	}
	refused("no cash account", post("MixedPaymentSet", `{"Company":"10","VoucherDate":"2026-03-05"}`, nil), 400, "InstituteId is required")
	refused("unknown cash account", post("MixedPaymentSet", `{"Company":"10","InstituteId":"BANK","ShortName":"X","VoucherDate":"2026-03-05"}`, nil), 400, "NOTEXIST")
	refused("unknown property", post("MixedPaymentSet", `{"Company":"10","InstituteId":"GOCARDLESS","ShortName":"GOCARDLESS","VoucherDate":"2026-03-05","Objstate":"Approved"}`, nil), 400, "cannot be set")
	created := post("MixedPaymentSet", `{"Company":"10","InstituteId":"GOCARDLESS","ShortName":"GOCARDLESS","VoucherDate":"2026-03-05","Description":"EV1"}`, nil)
	if created.status != 201 || created.body["MixedPaymentId"] != json.Number("1") || created.body["Objstate"] != "NotApproved" || created.header.Get("ETag") == "" {
		t.Fatalf("create: %d %s", created.status, created.raw)
	}
	if a := post("MixedPaymentLumpSumSet", `{"Company":"10","MixedPaymentId":1,"LumpSumAmount":"100.10","Currency":"EUR"}`, nil); a.status != 201 {
		t.Fatalf("lump sum: %d %s", a.status, a.raw)
	}
	line := func(identity, amount string) string {
		return `{"Company":"10","MixedPaymentId":1,"LumpSumId":1,"TransactionType":"CustomerPayment","PartyType":"Customer",` +
			`"Identity":"` + identity + `","InvoiceId":7,"CurrAmount":"` + amount + `","Currency":"EUR","PaymentReference":"PM1"}`
	}
	refused("other customer's invoice", post("MixedPaymentTransactionSet", line("C2", "60"), nil), 400, "IDENTITY")
	direct := func(extra string) string {
		return `{"Company":"10","MixedPaymentId":1,"LumpSumId":1,"TransactionType":"DirectCashPayment","CurrAmount":"-1.50","Currency":"EUR"` + extra + `}`
	}
	refused("direct cash without account", post("MixedPaymentTransactionSet", direct(""), nil), 400, "Account is required")
	refused("direct cash to an unknown account", post("MixedPaymentTransactionSet", direct(`,"Account":"9999"`), nil), 400, "Account.NOTEXIST")
	refused("direct cash with a party", post("MixedPaymentTransactionSet", direct(`,"Account":"6570","PartyType":"Customer","Identity":"C1"`), nil), 400, "no PartyType")
	refused("account on a customer payment", post("MixedPaymentTransactionSet", strings.Replace(line("C1", "60"), `"PaymentReference"`, `"Account":"6570","PaymentReference"`, 1), nil), 400, "Account is set only")
	if a := post("MixedPaymentTransactionSet", line("C1", "60"), nil); a.status != 201 {
		t.Fatalf("line: %d %s", a.status, a.raw)
	}
	entity := mixedPath + "MixedPaymentSet(Company='10',MixedPaymentId=1)"
	approve := func(ifMatch string) answer {
		hdr := map[string]string{"Content-Type": "application/json"}
		if ifMatch != "" {
			hdr["If-Match"] = ifMatch
		}
		return h.do(http.MethodPost, entity+"/IfsApp.MixedPaymentHandling.MixedPayment_Approve", tok, hdr, `{}`)
	}
	etag := func() string { return h.get(entity, nil, tok).header.Get("ETag") }
	refused("approve without If-Match", approve(""), 428, "If-Match")
	refused("stale ETag", approve(created.header.Get("ETag")), 412, "ODP_PRECONDITION_FAILED")
	refused("lump sum not matched in full", approve(etag()), 400, "UNBALANCED")
	if a := post("MixedPaymentTransactionSet", line("C1", "40.10"), nil); a.status != 201 {
		t.Fatalf("second line: %d %s", a.status, a.raw)
	}
	h.sim.RaceNextWrites(1)
	refused("raced approval", approve(etag()), 412, "ODP_PRECONDITION_FAILED")
	if a := approve(etag()); a.status != 200 || a.body["Objstate"] != "Approved" {
		t.Fatalf("approve: %d %s", a.status, a.raw)
	}
	if inv, _ := h.sim.Invoice("10", 7); inv.OpenAmount != "0.00" || inv.State != ifssim.StatePaidPosted {
		t.Errorf("invoice after approval: %+v", inv)
	}
	refused("line after approval", post("MixedPaymentTransactionSet", line("C1", "1"), nil), 400, "NOT_MODIFIABLE")
	refused("approve twice", approve(etag()), 400, "NOT_APPROVABLE")
	byRef := h.get(mixedPath+"MixedPaymentTransactionSet", url.Values{"$filter": {"Company eq '10' and PaymentReference eq 'PM1' and InvoiceId eq 7"}}, tok)
	if got := byRef.values(); len(got) != 2 || got[0]["MixedPaymentId"] != json.Number("1") {
		t.Errorf("lines by reference: %s", byRef.raw)
	}

	cancel := func() answer {
		return h.do(http.MethodPost, entity+"/IfsApp.MixedPaymentHandling.MixedPayment_Cancel", tok,
			map[string]string{"Content-Type": "application/json", "If-Match": etag()}, `{}`)
	}
	if a := cancel(); a.status != 200 || a.body["Objstate"] != "Cancelled" {
		t.Fatalf("cancel: %d %s", a.status, a.raw)
	}
	if inv, _ := h.sim.Invoice("10", 7); inv.OpenAmount != "100.10" || inv.State != ifssim.StatePostedAuth {
		t.Errorf("invoice after cancellation: %+v", inv)
	}
	refused("cancel twice", cancel(), 400, "NOT_CANCELLABLE")
	if mp := h.sim.MixedPayments(); len(mp) != 1 || mp[0].State != ifssim.MixedCancelled || len(mp[0].LumpSums[0].Transactions) != 2 {
		t.Errorf("mixed payments %+v", mp)
	}
}

func TestDecimalsFollowIEEE754Compatible(t *testing.T) {
	for _, ignore := range []bool{false, true} {
		t.Run(fmt.Sprintf("ignore=%v", ignore), func(t *testing.T) {
			h := start(t, ifssim.Config{IgnoreIEEE754: ignore})
			inv := invoice("10", 1, ifssim.StatePostedAuth, time.Time{})
			inv.OpenAmount, inv.GrossAmount = "9007199254740993.01", "9007199254740993.01"
			if err := h.sim.PutInvoices(inv); err != nil {
				t.Fatal(err)
			}
			a := h.do(http.MethodGet, invoicesPath+"?$select=OpenAmount,InvoiceId", h.token(),
				map[string]string{"Accept": "application/json;IEEE754Compatible=true"}, "")
			want := `"OpenAmount":"9007199254740993.01"`
			if ignore {
				want = `"OpenAmount":9007199254740993.01`
			}
			if !strings.Contains(a.raw, want) {
				t.Errorf("answer %s lacks %s", a.raw, want)
			}
		})
	}
}

func TestControlAPI(t *testing.T) {
	h := start(t, ifssim.Config{})
	put := h.do(http.MethodPut, "/_sim/invoices", "", nil,
		`[{"company":"10","invoice_id":5,"customer_id":"C1","currency":"EUR","state":"PostedAuth","gross_amount":"10.00","open_amount":"10.00"}]`)
	if put.status != 200 {
		t.Fatalf("put: %d %s", put.status, put.raw)
	}
	if bad := h.do(http.MethodPut, "/_sim/invoices", "", nil, `[{"company":"10","invoice_id":6,"state":"Nope"}]`); bad.status != 400 {
		t.Errorf("invalid invoice accepted: %d", bad.status)
	}
	if f := h.do(http.MethodPost, "/_sim/faults", "", nil, `{"fail_next":1,"fail_status":500}`); f.status != 200 {
		t.Fatalf("faults: %d %s", f.status, f.raw)
	}
	if a := h.get(invoicesPath, nil, h.token()); a.status != 500 {
		t.Errorf("fault not applied: %d", a.status)
	}
	stats := h.get("/_sim/stats", nil, "")
	if stats.body["server_errors"] != json.Number("1") {
		t.Errorf("stats %s", stats.raw)
	}
	if inv, ok := h.sim.Invoice("10", 5); !ok || inv.OpenAmount != "10.00" {
		t.Errorf("stored %+v", inv)
	}
}

func TestSeed(t *testing.T) {
	h := start(t, ifssim.Config{})
	if err := h.sim.Seed(ifssim.Seed{Companies: []string{"10", "20"}, Customers: 3, Invoices: 8}); err != nil {
		t.Fatal(err)
	}
	if n := len(h.sim.Invoices()); n != 16 {
		t.Errorf("%d invoices, want 16", n)
	}
	ready := 0
	for _, inv := range h.sim.Invoices() {
		if inv.State == ifssim.StatePostedAuth {
			ready++
		}
	}
	if ready != 12 {
		t.Errorf("%d ready invoices, want 12", ready)
	}
	for _, c := range h.sim.Customers() {
		if c.Country != "DE" {
			continue
		}
		// ISO 13616: the IBAN rearranged and read as a number is 1 mod 97.
		n, _ := new(big.Int).SetString(c.IBAN[4:]+"1314"+c.IBAN[2:4], 10)
		if len(c.IBAN) != 22 || new(big.Int).Mod(n, big.NewInt(97)).Int64() != 1 {
			t.Errorf("IBAN %s of %s has wrong check digits", c.IBAN, c.CustomerID)
		}
	}
}

// TestCustomerEntities: the customer is served as IFS keeps it, the
// enterprise-wide CustomerInfo without a company and the company-specific,
// address, contact and payment address rows in their own sets.
func TestCustomerEntities(t *testing.T) {
	h := start(t, ifssim.Config{})
	if err := h.sim.PutCustomers(ifssim.Customer{CustomerID: "C1", Company: "10", Name: "Acme", Email: "ap@acme.example",
		City: "Berlin", Country: "DE", Currency: "EUR", IBAN: "DE89370400440532013000"}); err != nil {
		t.Fatal(err)
	}
	tok := h.token()
	const svc = "/main/ifsapplications/projection/v1/CustomerHandling.svc/"
	if a := h.get(svc+"CustomerInfoSet(CustomerId='C1')", nil, tok); a.status != 200 || a.body["Name"] != "Acme" || a.body["Company"] != nil {
		t.Errorf("CustomerInfoSet(CustomerId='C1'): %d %s", a.status, a.raw)
	}
	if a := h.get(svc+"CustomerInfoSet", url.Values{"$filter": {"Company eq '10'"}}, tok); a.status != 400 {
		t.Errorf("CustomerInfoSet filtered on a company it does not have: %d %s", a.status, a.raw)
	}
	for set, filter := range map[string]string{
		"IdentityInvoiceInfoSet":    "Company eq '10' and Identity eq 'C1'",
		"CustomerInfoAddressSet":    "CustomerId eq 'C1'",
		"CustomerInfoCommMethodSet": "CustomerId eq 'C1' and MethodId eq 'E_MAIL'",
		"PaymentAddressSet":         "Company eq '10' and Identity eq 'C1'",
	} {
		if a := h.get(svc+set, url.Values{"$filter": {filter}}, tok); a.status != 200 || len(a.values()) != 1 {
			t.Errorf("%s: %d %s", set, a.status, a.raw)
		}
	}
	if a := h.get(svc+"IdentityInvoiceInfoSet", url.Values{"$filter": {"Company eq '20'"}}, tok); len(a.values()) != 0 {
		t.Errorf("customer of company 10 found in 20: %s", a.raw)
	}
}

// A customer's parts are entities of their own: changing the address
// leaves CustomerInfo's ETag and modified time as they were (the part's
// own new ETag is checked through the poller, ifs-poller's
// TestCustomerPartChangesArePublished). Changing CustomerInfo's own
// fields that way is refused.
func TestUpdateCustomerPartsTouchesOnlyTheParts(t *testing.T) {
	s := ifssim.New(ifssim.Config{})
	if err := s.PutCustomers(ifssim.Customer{CustomerID: "C1", Company: "10", Name: "Acme", Address1: "Old", Email: "a@acme.example",
		Modified: time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	before, _ := s.Customer("C1")
	if err := s.UpdateCustomerParts("C1", func(c *ifssim.Customer) { c.Address1 = "New" }); err != nil {
		t.Fatal(err)
	}
	after, _ := s.Customer("C1")
	if after.ETag != before.ETag || !after.Modified.Equal(before.Modified) || after.Address1 != "New" {
		t.Errorf("CustomerInfo changed: %+v, was %+v", after, before)
	}
	if err := s.UpdateCustomerParts("C1", func(c *ifssim.Customer) { c.Name = "Renamed" }); err == nil {
		t.Error("a change to CustomerInfo's name through UpdateCustomerParts was accepted")
	}
	if err := s.UpdateCustomerParts("C9", func(*ifssim.Customer) {}); err == nil {
		t.Error("an unknown customer was accepted")
	}
}
