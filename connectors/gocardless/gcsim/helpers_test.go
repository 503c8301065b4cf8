package gcsim_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/connectors/gocardless/gcsim"
)

const testToken = "sandbox_test_token"

// start runs a simulator with a manual clock at gcsim.DefaultStart (a
// Monday, 08:00 UTC), a fixed seed and testToken. Its creditor is
// approved for custom payment pages, so tests of the direct mandate path
// can create bank accounts and mandates; tests of the default refuse
// that with their own creditors.
func start(t testing.TB, opts ...func(*gcsim.Options)) *gcsim.Server {
	t.Helper()
	o := gcsim.Options{Tokens: []string{testToken}, Seed: 42, Creditors: []gcsim.Creditor{gcsim.ApprovedCreditor()}}
	for _, f := range opts {
		f(&o)
	}
	return gcsim.NewServer(t, o)
}

// reply is an HTTP response as the tests inspect it.
type reply struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

// api sends requests the way a well-behaved client does; tests strip or
// change headers with the options.
type api struct {
	t     testing.TB
	base  string
	token string
}

func newAPI(t testing.TB, srv *gcsim.Server) *api {
	return &api{t: t, base: srv.URL, token: testToken}
}

type reqOpt func(*http.Request)

func header(k, v string) reqOpt { return func(r *http.Request) { r.Header.Set(k, v) } }
func noHeader(k string) reqOpt  { return func(r *http.Request) { r.Header.Del(k) } }
func idem(key string) reqOpt    { return header("Idempotency-Key", key) }

func (a *api) do(method, path string, body any, opts ...reqOpt) reply {
	a.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			a.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, a.base+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("GoCardless-Version", "2015-07-06")
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, o := range opts {
		o(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	r := reply{status: resp.StatusCode, header: resp.Header, raw: raw}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			a.t.Fatalf("%s %s: response is not a JSON object: %v\n%s", method, path, err, raw)
		}
	}
	return r
}

// must asserts the status and returns the envelope member.
func (r reply) must(t testing.TB, status int, member string) map[string]any {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	m, ok := r.body[member].(map[string]any)
	if !ok {
		t.Fatalf("response has no %q object: %s", member, r.raw)
	}
	return m
}

// apiErr is the error member of an error response.
type apiErr struct {
	Message          string `json:"message"`
	Type             string `json:"type"`
	Code             int    `json:"code"`
	RequestID        string `json:"request_id"`
	DocumentationURL string `json:"documentation_url"`
	Errors           []struct {
		Reason         string            `json:"reason"`
		Message        string            `json:"message"`
		Field          string            `json:"field"`
		RequestPointer string            `json:"request_pointer"`
		Links          map[string]string `json:"links"`
	} `json:"errors"`
}

func (r reply) err(t testing.TB) apiErr {
	t.Helper()
	var e struct {
		Error apiErr `json:"error"`
	}
	if err := json.Unmarshal(r.raw, &e); err != nil || e.Error.Type == "" {
		t.Fatalf("not a GoCardless error body (status %d): %s", r.status, r.raw)
	}
	if e.Error.Code != r.status {
		t.Fatalf("error.code %d differs from HTTP status %d", e.Error.Code, r.status)
	}
	if e.Error.RequestID == "" || !strings.HasPrefix(e.Error.DocumentationURL, "https://developer.gocardless.com/") {
		t.Fatalf("error lacks request_id or documentation_url: %s", r.raw)
	}
	return e.Error
}

func str(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}

func link(m map[string]any, key string) string {
	l, _ := m["links"].(map[string]any)
	s, _ := l[key].(string)
	return s
}

// Fixtures.

type fixture struct {
	customer, account, mandate string
}

var seq int

// gbCustomer creates a GB customer, bank account and mandate.
func gbCustomer(t testing.TB, a *api, email, family string) fixture {
	t.Helper()
	seq++
	cu := a.do("POST", "/customers", map[string]any{"customers": map[string]any{
		"email": email, "given_name": "Ada", "family_name": family, "country_code": "GB"}}).must(t, 201, "customers")
	ba := a.do("POST", "/customer_bank_accounts", map[string]any{"customer_bank_accounts": map[string]any{
		"account_holder_name": "Ada " + family, "account_number": fmt.Sprintf("%08d", 55779911+seq), "branch_code": "200000",
		"country_code": "GB", "links": map[string]any{"customer": cu["id"]}}}).must(t, 201, "customer_bank_accounts")
	md := a.do("POST", "/mandates", map[string]any{"mandates": map[string]any{
		"links": map[string]any{"customer_bank_account": ba["id"]}}}).must(t, 201, "mandates")
	return fixture{customer: str(cu, "id"), account: str(ba, "id"), mandate: str(md, "id")}
}

// activeGB is gbCustomer with the mandate made active by advancing the
// clock.
func activeGB(t testing.TB, srv *gcsim.Server, a *api, email, family string) fixture {
	t.Helper()
	f := gbCustomer(t, a, email, family)
	for range 10 {
		if md := a.do("GET", "/mandates/"+f.mandate, nil).must(t, 200, "mandates"); str(md, "status") == "active" {
			return f
		}
		srv.Advance(24 * time.Hour)
	}
	t.Fatalf("mandate %s never became active", f.mandate)
	return f
}

func payment(amount int64, mandate string, extra map[string]any) map[string]any {
	p := map[string]any{"amount": amount, "currency": "GBP", "links": map[string]any{"mandate": mandate}}
	for k, v := range extra {
		p[k] = v
	}
	return map[string]any{"payments": p}
}

// eventsOf returns the events of a resource (oldest first) as "action" or
// "action:cause"; linkKey is its singular type ("payment").
func eventsOf(srv *gcsim.Server, linkKey, id string, withCause bool) []string {
	var out []string
	for _, e := range srv.Events() {
		if e.Links[linkKey] != id || e.ResourceType != linkKey+"s" {
			continue
		}
		if withCause {
			out = append(out, e.Action+":"+e.Details.Cause)
		} else {
			out = append(out, e.Action)
		}
	}
	return out
}
