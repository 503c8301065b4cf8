package jdesim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

type rawEnv struct {
	t   *testing.T
	sim *Server
	srv *httptest.Server
}

func newRaw(t *testing.T, opts Options) *rawEnv {
	t.Helper()
	if opts.Clock == nil {
		opts.Clock = NewClock(time.Date(2026, 1, 31, 9, 0, 0, 0, time.UTC))
	}
	sim := New(opts)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return &rawEnv{t: t, sim: sim, srv: srv}
}

// do sends a request and returns the status and decoded JSON body.
func (e *rawEnv) do(method, path, token string, body any, header ...string) (int, map[string]any, http.Header) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	target := path
	if !strings.HasPrefix(path, "http") {
		target = e.srv.URL + path
	}
	req, _ := http.NewRequest(method, target, rd)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("jde-AIS-Auth", token)
		req.Header.Set("jde-AIS-Auth-Device", "dev")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	_ = dec.Decode(&out)
	return resp.StatusCode, out, resp.Header
}

func (e *rawEnv) login() string {
	e.t.Helper()
	return e.loginAt("")
}

func (e *rawEnv) loginAt(base string) string {
	e.t.Helper()
	status, body, _ := e.do("POST", base+"/jderest/v2/tokenrequest", "", map[string]string{"username": "JDE", "password": "JDE", "deviceName": "dev"})
	if status != 200 {
		e.t.Fatalf("login: %d %v", status, body)
	}
	return body["userInfo"].(map[string]any)["token"].(string)
}

func browse(table, cols string, pageSize int, conds ...map[string]any) map[string]any {
	return map[string]any{
		"targetName": table, "targetType": "table", "dataServiceType": "BROWSE", "returnControlIDs": cols,
		"maxPageSize": pageSize, "enableNextPageProcessing": "true", "outputType": "GRID_DATA",
		"query": map[string]any{"autoFind": true, "matchType": "MATCH_ALL", "condition": conds},
	}
}

func cond(id, op, value string) map[string]any {
	return map[string]any{"controlId": id, "operator": op, "value": []map[string]string{{"content": value, "specialValueId": "LITERAL"}}}
}

func rowset(body map[string]any, table string) []any {
	grid := body["fs_DATABROWSE_"+table].(map[string]any)["data"].(map[string]any)["gridData"].(map[string]any)
	return grid["rowset"].([]any)
}

func nextHref(body map[string]any) string {
	links, _ := body["links"].([]any)
	for _, l := range links {
		if m := l.(map[string]any); m["rel"] == "next" {
			return m["href"].(string)
		}
	}
	return ""
}

func fiveInvoices(s *Server) {
	for i := range 5 {
		s.AddInvoices(Invoice{DOC: int64(100 + i), DCT: "RI", KCO: "00001", SFX: "001", AAP: 100, CRCD: "USD"})
	}
}

func TestProtocolRefusals(t *testing.T) {
	e := newRaw(t, Options{})
	tok := e.login()
	tests := []struct {
		name    string
		method  string
		path    string
		token   string
		body    any
		header  []string
		status  int
		message string
	}{
		{name: "wrong password", path: "/jderest/v2/tokenrequest", body: map[string]string{"username": "JDE", "password": "guess-me-123"}, status: 403, message: "Authorization Failure"},
		{name: "wrong environment", path: "/jderest/v2/tokenrequest", body: map[string]string{"username": "JDE", "password": "JDE", "environment": "JPD920"}, status: 403},
		{name: "no token", path: "/jderest/v2/dataservice", body: browse("F03B11", "F03B11.DOC", 10), status: 444, message: "Invalid token"},
		{name: "unknown token", path: "/jderest/v2/dataservice", token: "044nope", body: browse("F03B11", "F03B11.DOC", 10), status: 444},
		{name: "other device", path: "/jderest/v2/dataservice", token: tok, body: browse("F03B11", "F03B11.DOC", 10), header: []string{"jde-AIS-Auth-Device", "elsewhere"}, status: 444},
		{name: "not JSON", path: "/jderest/v2/dataservice", token: tok, header: []string{"Content-Type", "text/plain"}, body: browse("F03B11", "F03B11.DOC", 10), status: 415},
		{name: "COUNT", path: "/jderest/v2/dataservice", token: tok, body: func() any { b := browse("F03B11", "F03B11.DOC", 10); b["dataServiceType"] = "COUNT"; return b }(), status: 400},
		{name: "unsupported operator", path: "/jderest/v2/dataservice", token: tok, body: browse("F03B11", "F03B11.DOC", 10, cond("F03B11.DCT", "STR_CONTAIN", "R")), status: 400},
		{name: "column of another table", path: "/jderest/v2/dataservice", token: tok, body: browse("F03B11", "F0101.AN8", 10), status: 400},
		{name: "unknown orchestration", path: "/jderest/v3/orchestrator/Nope", token: tok, body: map[string]string{}, status: 404},
	}
	for _, tt := range tests {
		if tt.method == "" {
			tt.method = "POST"
		}
		status, body, _ := e.do(tt.method, tt.path, tt.token, tt.body, tt.header...)
		if status != tt.status {
			t.Errorf("%s: status %d, want %d (%v)", tt.name, status, tt.status, body)
		}
		if msg, _ := body["message"].(string); !strings.Contains(msg, tt.message) || body["status"] != "ERROR" {
			t.Errorf("%s: body %v, want an AIS error mentioning %q", tt.name, body, tt.message)
		}
		if strings.Contains(body["message"].(string), "guess-me") {
			t.Errorf("%s: error repeats the password", tt.name)
		}
	}
}

func TestNextLinks(t *testing.T) {
	e := newRaw(t, Options{})
	fiveInvoices(e.sim)
	tok := e.login()
	status, body, _ := e.do("POST", "/jderest/v2/dataservice", tok, browse("F03B11", "F03B11.DOC", 2))
	href := nextHref(body)
	if status != 200 || len(rowset(body, "F03B11")) != 2 || href == "" {
		t.Fatalf("first page: %d %v", status, body)
	}
	u, _ := url.Parse(href)
	if u.Query().Get("token") != tok || u.Query().Get("rid") == "" || u.Query().Get("stateId") != "2" {
		t.Fatalf("next link %s lacks AIS's parameters", href)
	}
	// AIS accepts the link as is, by GET, with the token in the query.
	req, _ := http.NewRequest("GET", href, nil)
	req.Header.Set("jde-AIS-Auth-Device", "dev")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET next: %v %v", resp, err)
	}
	resp.Body.Close()
	// Replaying a used link finds no result set in that state.
	status, body, _ = e.do("POST", href, tok, map[string]any{})
	if status != 500 || !strings.Contains(body["sysErrors"].([]any)[0].(map[string]any)["TITLE"].(string), "JAS_MSG347") {
		t.Fatalf("replayed link: %d %v", status, body)
	}
	// A result set belongs to its session.
	_, body, _ = e.do("POST", "/jderest/v2/dataservice", tok, browse("F03B11", "F03B11.DOC", 2))
	other := e.login()
	if status, _, _ := e.do("POST", nextHref(body), other, map[string]any{}); status != 500 {
		t.Fatalf("next link of another session: %d", status)
	}
	// Logging out drops the session and its result sets.
	_, body, _ = e.do("POST", "/jderest/v2/dataservice", tok, browse("F03B11", "F03B11.DOC", 2))
	if status, _, _ := e.do("POST", "/jderest/v2/tokenrequest/logout", tok, map[string]string{"token": tok}); status != 200 {
		t.Fatalf("logout: %d", status)
	}
	if status, _, _ := e.do("POST", nextHref(body), tok, map[string]any{}); status != 444 {
		t.Fatalf("next link after logout: %d", status)
	}
	// Without enableNextPageProcessing AIS says there is more but gives no link.
	b := browse("F03B11", "F03B11.DOC", 2)
	delete(b, "enableNextPageProcessing")
	_, body, _ = e.do("POST", "/jderest/v2/dataservice", other, b)
	if nextHref(body) != "" || len(rowset(body, "F03B11")) != 2 {
		t.Fatalf("unpaged browse: %v", body)
	}
}

func TestMatchAny(t *testing.T) {
	e := newRaw(t, Options{})
	fiveInvoices(e.sim)
	tok := e.login()
	b := browse("F03B11", "F03B11.DOC", 10, cond("F03B11.DOC", "EQUAL", "100"), cond("F03B11.DOC", "EQUAL", "104"))
	b["query"].(map[string]any)["matchType"] = "MATCH_ANY"
	_, body, _ := e.do("POST", "/jderest/v2/dataservice", tok, b)
	if rows := rowset(body, "F03B11"); len(rows) != 2 {
		t.Fatalf("MATCH_ANY rows = %v", rows)
	}
}

func TestRendering(t *testing.T) {
	inv := Invoice{DOC: 1, DCT: "RI", KCO: "00001", SFX: "001", AG: 123450, AAP: 0, CRCD: "USD", DDJ: Date(2026, 1, 31), MCU: "M30"}
	tests := []struct {
		name               string
		opts               Options
		inv                Invoice
		ddj, divj, ag, aap any
	}{
		{name: "formatted MDE", opts: Options{}, inv: inv, ddj: "01/31/2026", divj: "", ag: json.Number("1234.50"), aap: json.Number("0.00")},
		{name: "formatted DME", opts: Options{DateFormat: "DME", DateSeparator: "."}, inv: inv, ddj: "31.01.2026", divj: "", ag: json.Number("1234.50"), aap: json.Number("0.00")},
		{name: "formatted YMD", opts: Options{DateFormat: "YMD", DateSeparator: "-"}, inv: inv, ddj: "26-01-31", divj: "", ag: json.Number("1234.50"), aap: json.Number("0.00")},
		{name: "julian", opts: Options{DateOutput: DatesJulian}, inv: inv, ddj: json.Number("126031"), divj: json.Number("0"), ag: json.Number("1234.50"), aap: json.Number("0.00")},
		{name: "compact", opts: Options{DateOutput: DatesCompact}, inv: inv, ddj: "20260131", divj: "", ag: json.Number("1234.50"), aap: json.Number("0.00")},
		{name: "amount strings", opts: Options{AmountOutput: AmountsString}, inv: inv, ddj: "01/31/2026", divj: "", ag: "1234.50", aap: "0.00"},
		{name: "implied", opts: Options{AmountOutput: AmountsImplied}, inv: inv, ddj: "01/31/2026", divj: "", ag: json.Number("123450"), aap: json.Number("0")},
		{name: "JPY", opts: Options{}, inv: Invoice{DOC: 1, AG: 1000, AAP: 5, CRCD: "JPY", MCU: "M30"}, ddj: "", divj: "", ag: json.Number("1000"), aap: json.Number("5")},
		{name: "KWD", opts: Options{}, inv: Invoice{DOC: 1, AG: 1234, AAP: -5, CRCD: "KWD", MCU: "M30"}, ddj: "", divj: "", ag: json.Number("1.234"), aap: json.Number("-0.005")},
	}
	for _, tt := range tests {
		e := newRaw(t, tt.opts)
		e.sim.AddInvoices(tt.inv)
		tok := e.login()
		_, body, _ := e.do("POST", "/jderest/v2/dataservice", tok, browse("F03B11", "F03B11.DDJ|F03B11.DIVJ|F03B11.AG|F03B11.AAP|F03B11.MCU|F03B11.UPMJ", 10))
		row := rowset(body, "F03B11")[0].(map[string]any)
		if row["F03B11_DDJ"] != tt.ddj || row["F03B11_DIVJ"] != tt.divj || row["F03B11_AG"] != tt.ag || row["F03B11_AAP"] != tt.aap {
			t.Errorf("%s: row = %#v", tt.name, row)
		}
		if row["F03B11_MCU"] != "         M30" {
			t.Errorf("%s: MCU %q is not right-justified to 12", tt.name, row["F03B11_MCU"])
		}
	}
}

func TestOrchestrationReferenceIsPerOrchestration(t *testing.T) {
	e := newRaw(t, Options{})
	e.sim.AddInvoices(Invoice{DOC: 1, DCT: "RI", KCO: "00001", SFX: "001", AN8: 7, AG: 100, AAP: 100, CRCD: "USD", MCU: "M30"})
	tok := e.login()
	in := map[string]string{"ExternalReference": "EV1", "DocumentNumber": "1", "DocumentType": "RI", "DocumentCompany": "00001",
		"PayItem": "001", "Currency": "USD", "CurrencyMode": "D", "Amount": "1.00", "GLBankAccount": "M30.1110", "Event": "failed"}
	if status, body, _ := e.do("POST", "/jderest/v3/orchestrator/MLC_PostReceipt", tok, in); status != 200 || body["AlreadyPosted"] != false {
		t.Fatalf("receipt: %d %v", status, body)
	}
	if status, body, _ := e.do("POST", "/jderest/v3/orchestrator/MLC_PaymentFailure", tok, in); status != 400 || !strings.Contains(body["message"].(string), "already used") {
		t.Fatalf("same reference, other orchestration: %d %v", status, body)
	}
	bad := map[string]any{"ExternalReference": "EV2", "DocumentNumber": []int{1}}
	if status, _, _ := e.do("POST", "/jderest/v3/orchestrator/MLC_PostReceipt", tok, bad); status != 400 {
		t.Fatalf("array input: %d", status)
	}
	for _, amount := range []string{"0", "-1.00", "1.001", "x"} {
		in := map[string]string{"ExternalReference": "EV-" + amount, "DocumentNumber": "1", "DocumentType": "RI", "DocumentCompany": "00001",
			"PayItem": "001", "Currency": "USD", "Amount": amount, "GLBankAccount": "M30.1110"}
		if status, _, _ := e.do("POST", "/jderest/v3/orchestrator/MLC_PostReceipt", tok, in); status != 400 {
			t.Errorf("amount %q: %d", amount, status)
		}
	}
	if n := len(e.sim.Receipts()); n != 1 {
		t.Fatalf("receipts = %d", n)
	}
}

func TestControlAPI(t *testing.T) {
	e := newRaw(t, Options{})
	rows := `[{"DOC":7,"DCT":"RI","KCO":"00001","SFX":"001","AN8":1,"AG":500,"AAP":500,"CRCD":"EUR","DDJ":"2026-02-01T00:00:00Z"}]`
	resp, err := http.Post(e.srv.URL+"/_sim/tables/F03B11", "application/json", strings.NewReader(rows))
	if err != nil || resp.StatusCode != 204 {
		t.Fatalf("put rows: %v %v", resp, err)
	}
	// EUR in the USD company 00001: the amounts given are the transaction
	// amounts; AG/AAP become their USD equivalents at 1.085.
	if inv, ok := e.sim.Invoice(DocKey{DOC: 7, DCT: "RI", KCO: "00001", SFX: "001"}); !ok || inv.CRRM != "F" || inv.FAP != 500 || inv.ACR != 500 ||
		inv.AAP != 543 || inv.UPMJ != 126031 || inv.UPMT != 90000 {
		t.Fatalf("row = %+v", inv)
	}
	for path, status := range map[string]int{"/_sim/tables/F0911": 200, "/_sim/tables/F0911Z1": 200, "/_sim/tables/F9999": 404, "/_sim/stats": 200} {
		if resp, err := http.Get(e.srv.URL + path); err != nil || resp.StatusCode != status {
			t.Errorf("GET %s: %v %v", path, resp, err)
		}
	}
	for _, bad := range []struct{ path, body string }{
		{"/_sim/tables/F03B11", `[{"DOC":"seven"}]`},
		{"/_sim/tables/F03B11", `[{"NOPE":1}]`},
		{"/_sim/clock/advance", `{"by":"-1h"}`},
	} {
		if resp, _ := http.Post(e.srv.URL+bad.path, "application/json", strings.NewReader(bad.body)); resp.StatusCode != 400 {
			t.Errorf("POST %s %s: %d", bad.path, bad.body, resp.StatusCode)
		}
	}
	put := func(body string) int {
		req, _ := http.NewRequest("PUT", e.srv.URL+"/_sim/faults", strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if put(`{"fail_status":404}`) != 400 || put(`{"latency":"soon"}`) != 400 || put(`{"fail_next":1,"fail_status":502}`) != 204 {
		t.Fatal("faults validation")
	}
	if status, _, _ := e.do("POST", "/jderest/v2/tokenrequest", "", map[string]string{"username": "JDE", "password": "JDE"}); status != 502 {
		t.Fatalf("injected fault: %d", status)
	}
	if put(`{"rate_limit_next":1,"retry_after":"3s"}`) != 204 {
		t.Fatal("faults")
	}
	if status, _, h := e.do("POST", "/jderest/v2/tokenrequest", "", map[string]string{"username": "JDE", "password": "JDE"}); status != 429 || h.Get("Retry-After") != "3" {
		t.Fatalf("rate limit: %d %v", status, h)
	}
	tok := e.login()
	if resp, _ := http.Post(e.srv.URL+"/_sim/restart", "application/json", nil); resp.StatusCode != 204 {
		t.Fatal("restart")
	}
	if status, _, _ := e.do("POST", "/jderest/v2/dataservice", tok, browse("F03B11", "F03B11.DOC", 1)); status != 444 {
		t.Fatalf("after restart: %d", status)
	}
	before := e.sim.Clock().Now()
	if resp, _ := http.Post(e.srv.URL+"/_sim/clock/advance", "application/json", strings.NewReader(`{"by":"50m"}`)); resp.StatusCode != 204 ||
		e.sim.Clock().Now().Sub(before) != 50*time.Minute {
		t.Fatal("advance")
	}
	wall := newRaw(t, Options{Clock: &Clock{}})
	if resp, _ := http.Post(wall.srv.URL+"/_sim/clock/advance", "application/json", strings.NewReader(`{"by":"1m"}`)); resp.StatusCode != 409 {
		t.Fatalf("advancing the wall clock: %d", resp.StatusCode)
	}
}

func TestRestartAfterRequests(t *testing.T) {
	e := newRaw(t, Options{})
	tok := e.login()
	e.sim.SetFaults(Faults{RestartAfter: 2})
	for i, want := range []int{200, 444} {
		if status, _, _ := e.do("POST", "/jderest/v2/dataservice", tok, browse("F03B11", "F03B11.DOC", 1)); status != want {
			t.Fatalf("request %d: %d, want %d", i+1, status, want)
		}
	}
	if st := e.sim.Stats(); st.Restarts != 1 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestSeedDemo(t *testing.T) {
	e := newRaw(t, Options{})
	e.sim.SeedDemo("00100")
	invs := e.sim.Invoices()
	if len(invs) != 5 {
		t.Fatalf("invoices = %d", len(invs))
	}
	for _, inv := range invs {
		if inv.KCO != "00100" || inv.UPMJ == 0 || (inv.DCT == "RI" && inv.AAP <= 0) {
			t.Errorf("demo invoice = %+v", inv)
		}
	}
	tok := e.login()
	_, body, _ := e.do("POST", "/jderest/v2/dataservice", tok, browse("F03012", "F03012.AN8|F03012.CO", 10, cond("F03012.CO", "EQUAL", "00100")))
	if rows := rowset(body, "F03012"); len(rows) != 3 {
		t.Fatalf("demo customers = %v", rows)
	}
}

func TestForeignInvoiceAndReceiptMode(t *testing.T) {
	e := newRaw(t, Options{})
	if err := e.sim.AddInvoices(
		Invoice{DOC: 1, DCT: "RI", KCO: "00001", SFX: "001", AN8: 7, AG: 100000, AAP: 100000, CRCD: "EUR", MCU: "M30"},
		Invoice{DOC: 2, DCT: "RI", KCO: "00001", SFX: "001", AN8: 7, AG: 1000, AAP: 1000, CRCD: "JPY", MCU: "M30"},
		Invoice{DOC: 3, DCT: "RI", KCO: "00001", SFX: "001", AN8: 7, AG: 2500, AAP: 2500, CRCD: "USD", MCU: "M30"},
	); err != nil {
		t.Fatal(err)
	}
	tok := e.login()
	_, body, _ := e.do("POST", "/jderest/v2/dataservice", tok, browse("F03B11", "F03B11.DOC|F03B11.CRCD|F03B11.CRRM|F03B11.CRR|F03B11.AG|F03B11.AAP|F03B11.ACR|F03B11.FAP", 10))
	want := map[string][]any{
		"1": {"EUR", "F", json.Number("1.0850000"), json.Number("1085.00"), json.Number("1085.00"), json.Number("1000.00"), json.Number("1000.00")},
		"2": {"JPY", "F", json.Number("0.0067000"), json.Number("6.70"), json.Number("6.70"), json.Number("1000"), json.Number("1000")},
		"3": {"USD", "D", json.Number("0"), json.Number("25.00"), json.Number("25.00"), json.Number("0.00"), json.Number("0.00")},
	}
	for _, r := range rowset(body, "F03B11") {
		row := r.(map[string]any)
		w := want[string(row["F03B11_DOC"].(json.Number))]
		got := []any{row["F03B11_CRCD"], row["F03B11_CRRM"], row["F03B11_CRR"], row["F03B11_AG"], row["F03B11_AAP"], row["F03B11_ACR"], row["F03B11_FAP"]}
		if fmt.Sprint(got) != fmt.Sprint(w) {
			t.Errorf("row %v: got %v, want %v", row["F03B11_DOC"], got, w)
		}
	}
	receipt := func(ref, doc, cur, mode, amount string) (int, map[string]any) {
		status, body, _ := e.do("POST", "/jderest/v3/orchestrator/MLC_PostReceipt", tok, map[string]string{"ExternalReference": ref,
			"DocumentNumber": doc, "DocumentType": "RI", "DocumentCompany": "00001", "PayItem": "001", "Currency": cur,
			"CurrencyMode": mode, "Amount": amount, "GLBankAccount": "M30.1110"})
		return status, body
	}
	// A EUR receipt against a EUR invoice of a USD company is foreign; a
	// USD one against a USD invoice domestic. The wrong mode writes nothing.
	if status, body := receipt("R1", "1", "EUR", "D", "1000.00"); status != 400 || !strings.Contains(body["message"].(string), "currency mode F") {
		t.Fatalf("EUR receipt in mode D: %d %v", status, body)
	}
	if status, _ := receipt("R2", "3", "USD", "F", "25.00"); status != 400 {
		t.Fatalf("USD receipt in mode F: %d", status)
	}
	if n := len(e.sim.Receipts()); n != 0 {
		t.Fatalf("refused receipts wrote %d rows", n)
	}
	if status, body := receipt("R3", "1", "EUR", "F", "400.00"); status != 200 {
		t.Fatalf("EUR receipt in mode F: %d %v", status, body)
	}
	inv, _ := e.sim.Invoice(DocKey{DOC: 1, DCT: "RI", KCO: "00001", SFX: "001"})
	if inv.FAP != 60000 || inv.AAP != 65100 || inv.PST == "P" {
		t.Fatalf("after EUR 400.00: FAP %d AAP %d PST %s, want 60000 65100 open", inv.FAP, inv.AAP, inv.PST)
	}
	if status, _ := receipt("R4", "1", "EUR", "F", "600.00"); status != 200 {
		t.Fatal("second receipt refused")
	}
	inv, _ = e.sim.Invoice(DocKey{DOC: 1, DCT: "RI", KCO: "00001", SFX: "001"})
	if inv.FAP != 0 || inv.AAP != 0 || inv.PST != "P" {
		t.Fatalf("paid in full: FAP %d AAP %d PST %s", inv.FAP, inv.AAP, inv.PST)
	}
	r := e.sim.Receipts()
	if len(r) != 2 || r[0].RUCRRM != "F" || r[0].RUCRCD != "EUR" || r[0].RUCKAM != 40000 || r[0].RUCRR != "1.0850000" {
		t.Fatalf("receipt rows = %+v", r)
	}
	gl := e.sim.GLEntries()
	if len(gl) != 4 || gl[0].GLAA != 43400 || gl[0].GLACR != 40000 || gl[0].GLCRRM != "F" || gl[1].GLAA != -43400 {
		t.Fatalf("GL = %+v", gl)
	}
}

func TestNodesBehindBalancer(t *testing.T) {
	sim := New(Options{Clock: NewClock(time.Date(2026, 1, 31, 9, 0, 0, 0, time.UTC))})
	fiveInvoices(sim)
	d, err := sim.ServeDeployment(2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	e := &rawEnv{t: t, sim: sim}
	// Without cookies each call may land on the other node, where the
	// token is unknown: 444.
	tok := e.loginAt(d.URL)
	if status, _, _ := e.do("POST", d.URL+"/jderest/v2/dataservice", tok, browse("F03B11", "F03B11.DOC", 2)); status != 444 {
		t.Fatalf("token on the other node: %d, want 444", status)
	}
	if st := sim.Stats(); st.WrongNode != 1 {
		t.Fatalf("wrong-node uses = %d", st.WrongNode)
	}
	// With the balancer's affinity cookie the session stays on its node,
	// whose next links name the node itself.
	status, body, hdr := e.do("POST", d.URL+"/jderest/v2/tokenrequest", "", map[string]string{"username": "JDE", "password": "JDE", "deviceName": "dev"})
	cookie := hdr.Get("Set-Cookie")
	if status != 200 || !strings.HasPrefix(cookie, AffinityCookie+"=") {
		t.Fatalf("login through the balancer: %d, cookie %q", status, cookie)
	}
	tok = body["userInfo"].(map[string]any)["token"].(string)
	route := strings.SplitN(cookie, ";", 2)[0]
	for range 3 {
		status, body, _ = e.do("POST", d.URL+"/jderest/v2/dataservice", tok, browse("F03B11", "F03B11.DOC", 2), "Cookie", route)
		if status != 200 {
			t.Fatalf("with affinity: %d %v", status, body)
		}
	}
	next := nextHref(body)
	if !strings.HasPrefix(next, d.Nodes[0]+"/") && !strings.HasPrefix(next, d.Nodes[1]+"/") {
		t.Fatalf("next link %q does not name a node (%v)", next, d.Nodes)
	}
	if status, _, _ := e.do("POST", next, tok, map[string]any{}); status != 200 {
		t.Fatalf("next link on its node: %d", status)
	}
}

func TestReceiptsInputFieldsAndKey(t *testing.T) {
	e := newRaw(t, Options{})
	e.sim.AddInvoices(Invoice{DOC: 1, DCT: "RI", KCO: "00001", SFX: "001", AN8: 7, AG: 10000, AAP: 10000, CRCD: "EUR", MCU: "M30"})
	tok := e.login()
	good := func() map[string]string {
		return map[string]string{"EDUS": "JDE", "EDBT": "GC260131", "EDTN": "T1", "EDLN": "1", "CKNU": "T1", "ICUT": "9B",
			"DMTJ": "2026-01-31", "CKAM": "100.00", "AG": "100.00", "CRCD": "EUR", "CRRM": "F", "AN8": "7", "DOC": "1", "DCT": "RI",
			"KCO": "00001", "SFX": "001", "GLBA": "M30.1110", "VR01": "PM1"}
	}
	run := func(in map[string]string) (int, map[string]any) {
		status, body, _ := e.do("POST", "/jderest/v3/orchestrator/MLC_ReceiptsInput", tok, in)
		return status, body
	}
	for name, change := range map[string]func(map[string]string){
		"no EDTN":         func(m map[string]string) { delete(m, "EDTN") },
		"batch type":      func(m map[string]string) { m["ICUT"] = "IB" },
		"CKNU not EDTN":   func(m map[string]string) { m["CKNU"] = "other" },
		"EDBT too long":   func(m map[string]string) { m["EDBT"] = strings.Repeat("9", 16) },
		"other user":      func(m map[string]string) { m["EDUS"] = "SOMEONE" },
		"domestic mode":   func(m map[string]string) { m["CRRM"] = "D" },
		"FAP filled":      func(m map[string]string) { m["FAP"] = "100.00" },
		"AG not CKAM":     func(m map[string]string) { m["AG"] = "99.00" },
		"unknown invoice": func(m map[string]string) { m["DOC"] = "2" },
	} {
		in := good()
		change(in)
		if status, body := run(in); status != 200 || body["jde__status"] != "ERROR" || body["jde__simpleMessage"] == "" {
			t.Errorf("%s: %d %v", name, status, body)
		}
	}
	if n := len(e.sim.Receipts()); n != 0 {
		t.Fatalf("refusals wrote %d rows", n)
	}
	status, first := run(good())
	if status != 200 || first["jde__status"] != "SUCCESS" || first["AlreadyPosted"] != false {
		t.Fatalf("good receipt: %d %v", status, first)
	}
	status, again := run(good())
	if status != 200 || again["AlreadyPosted"] != true || again["ReceiptNumber"] != first["ReceiptNumber"] {
		t.Fatalf("same key again: %d %v", status, again)
	}
	if r := e.sim.Receipts(); len(r) != 1 || r[0].RUEDSP != "1" || r[0].RUCRRM != "F" {
		t.Fatalf("rows = %+v", r)
	}
}

// TestJournalEntryFieldsAndBalance: the journal entry orchestration
// refuses what Oracle's F0911Z1 field list and R09110Z refuse, adds
// nothing then, and answers a repeated entry with the original.
func TestJournalEntryFieldsAndBalance(t *testing.T) {
	e := newRaw(t, Options{})
	tok := e.login()
	good := func() map[string]any {
		return map[string]any{"EDUS": "JDE", "EDBT": "PO1", "EDTN": "T1", "EDSP": "0", "EDTC": "A", "EDTR": "J", "DCT": "JE",
			"KCO": "00001", "DGJ": "2026-01-31", "CRCD": "USD", "CRRM": "D", "EXA": "GC fees PO1",
			"Lines": []map[string]string{{"EDLN": "1", "ANI": "HQ.6570", "LT": "AA", "AA": "1.50"}, {"EDLN": "2", "ANI": "HQ.1110", "LT": "AA", "AA": "-1.50"}}}
	}
	run := func(in map[string]any) (int, map[string]any) {
		status, body, _ := e.do("POST", "/jderest/v3/orchestrator/MLC_JournalEntry", tok, in)
		return status, body
	}
	line := func(m map[string]any, i int) map[string]string { return m["Lines"].([]map[string]string)[i] }
	for name, change := range map[string]func(map[string]any){
		"EDSP blank":       func(m map[string]any) { m["EDSP"] = "" },
		"EDTC change":      func(m map[string]any) { m["EDTC"] = "C" },
		"not a JE":         func(m map[string]any) { m["EDTR"] = "I" },
		"other user":       func(m map[string]any) { m["EDUS"] = "SOMEONE" },
		"foreign mode":     func(m map[string]any) { m["CRRM"] = "F" },
		"out of balance":   func(m map[string]any) { line(m, 1)["AA"] = "-1.49" },
		"one line":         func(m map[string]any) { m["Lines"] = m["Lines"].([]map[string]string)[:1] },
		"account form":     func(m map[string]any) { line(m, 0)["ANI"] = "6570" },
		"budget ledger":    func(m map[string]any) { line(m, 0)["LT"] = "BA" },
		"same line number": func(m map[string]any) { line(m, 1)["EDLN"] = "1" },
		"EDBT too long":    func(m map[string]any) { m["EDBT"] = strings.Repeat("9", 16) },
		"unknown company":  func(m map[string]any) { m["KCO"] = "00099" },
	} {
		in := good()
		change(in)
		if status, body := run(in); status != 200 || body["jde__status"] != "ERROR" || body["jde__simpleMessage"] == "" {
			t.Errorf("%s: %d %v", name, status, body)
		}
	}
	if n := len(e.sim.JournalInputs()); n != 0 {
		t.Fatalf("refusals wrote %d rows", n)
	}
	status, first := run(good())
	if status != 200 || first["jde__status"] != "SUCCESS" || first["AlreadyPosted"] != false || first["DocumentNumber"] == "" {
		t.Fatalf("good entry: %d %v", status, first)
	}
	if status, again := run(good()); status != 200 || again["AlreadyPosted"] != true || again["DocumentNumber"] != first["DocumentNumber"] {
		t.Fatalf("same entry again: %d %v", status, again)
	}
	if rows := e.sim.JournalInputs(); len(rows) != 2 || rows[0].VNAA != 150 || rows[1].VNAA != -150 || rows[0].VNEDSP != "1" {
		t.Fatalf("rows = %+v", rows)
	}
}
