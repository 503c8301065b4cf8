package web_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestSignInRequiredAndHeaders(t *testing.T) {
	w := newWorld(t)
	b := w.browser()
	// Not signed in: pages send to the sign-in form, JSON answers 401.
	resp, err := w.Srv.Client().Get(w.Srv.URL + "/exceptions")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Request.URL.Path != "/login" {
		t.Errorf("unsigned GET /exceptions ended at %s, want /login", resp.Request.URL.Path)
	}
	for h, want := range map[string]string{
		"Content-Security-Policy": "default-src 'none'",
		"X-Content-Type-Options":  "nosniff",
		"X-Frame-Options":         "DENY",
		"Referrer-Policy":         "no-referrer",
		"Cache-Control":           "no-store",
	} {
		if got := resp.Header.Get(h); !strings.Contains(got, want) {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
	if strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src") {
		t.Errorf("the CSP allows script: %s", resp.Header.Get("Content-Security-Policy"))
	}
	if status, _ := b.getJSON("/exceptions"); status != http.StatusUnauthorized {
		t.Errorf("unsigned JSON: %d, want 401", status)
	}

	// The cookie is Secure, HttpOnly, SameSite and host-only.
	page := b.get("/login", 200)
	req, _ := http.NewRequest(http.MethodPost, w.Srv.URL+"/login", strings.NewReader(url.Values{"name": {"alice"}, "password": {adminPass},
		"login_token": {field(page, "login_token")}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	b.c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err = b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var sess *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "__Host-mlc_session" {
			sess = c
		}
	}
	if sess == nil || !sess.Secure || !sess.HttpOnly || sess.SameSite != http.SameSiteLaxMode || sess.Path != "/" || sess.Domain != "" {
		t.Fatalf("session cookie %+v, want Secure, HttpOnly, SameSite=Lax, Path=/, no Domain", sess)
	}
	if w.count(`SELECT count(*) FROM console_sessions WHERE token_hash = sha256($1::bytea)`, []byte(sess.Value)) != 1 {
		t.Errorf("the session is not kept by the hash of its token")
	}
	if w.count(`SELECT count(*) FROM audit_log WHERE action = 'user.signed_in' AND actor = 'console:alice'`) != 1 {
		t.Errorf("the sign-in is not audited")
	}
}

func TestSignInRefusedAndRateLimited(t *testing.T) {
	w := newWorld(t)
	b := w.browser()
	try := func(name, pass string) (int, string) {
		page := b.get("/login", 200)
		return b.post("/login", url.Values{"name": {name}, "password": {pass}, "login_token": {field(page, "login_token")}})
	}
	if status, body := try("alice", "wrong-password-123"); status != http.StatusUnauthorized || !strings.Contains(body, "Unknown user or wrong password") {
		t.Errorf("wrong password: %d", status)
	}
	if status, _ := try("nobody", "wrong-password-123"); status != http.StatusUnauthorized {
		t.Errorf("unknown user: %d", status)
	}
	// Without the form's token (a sign-in forged by another site).
	if status, _ := b.post("/login", url.Values{"name": {"alice"}, "password": {adminPass}, "login_token": {"forged"}}); status != http.StatusForbidden {
		t.Errorf("sign-in without the form token: %d, want 403", status)
	}
	// Five failures per name per window (world's setting); the sixth try
	// is refused even with the right password.
	for range 4 {
		try("alice", "wrong-password-123")
	}
	if status, body := try("alice", adminPass); status != http.StatusTooManyRequests || !strings.Contains(body, "Too many failed sign-ins") {
		t.Errorf("after 5 failures: %d, want 429", status)
	}
}

func TestRolesAndCSRF(t *testing.T) {
	w := newWorld(t)
	viewer := w.signIn("vera", viewerPass)
	page := viewer.get("/connections", 200)
	csrf := field(page, "csrf_token")
	if csrf == "" {
		t.Fatal("no CSRF token on the page")
	}
	status, body := viewer.post("/connections", url.Values{"csrf_token": {csrf}, "name": {"jde-x"}, "kind": {"jde"},
		"base_url": {"http://127.0.0.1:1"}, "username": {"JDE"}, "company_codes": {"00001"}, "secret_password": {"pw"}})
	if status != http.StatusForbidden || !strings.Contains(body, "needs the admin role") {
		t.Errorf("viewer adding a connection: %d, want 403 saying the admin role is needed", status)
	}
	if status, _ := viewer.post("/exceptions/escalate", url.Values{"csrf_token": {csrf}, "ref": {"exception:1"}, "note": {"x"}}); status != http.StatusForbidden {
		t.Errorf("viewer escalating: %d, want 403", status)
	}
	admin := w.signIn("alice", adminPass)
	// Without the token, or with another session's, nothing happens.
	for _, token := range []string{"", csrf} {
		if status, _ := admin.post("/exceptions/escalate", url.Values{"csrf_token": {token}, "ref": {"exception:1"}, "note": {"x"}}); status != http.StatusForbidden {
			t.Errorf("escalate with CSRF token %q: %d, want 403", token, status)
		}
	}
	// From another site's page: refused before the token is looked at.
	req, _ := http.NewRequest(http.MethodPost, w.Srv.URL+"/logout", strings.NewReader(""))
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if status, _ := admin.do(req); status != http.StatusForbidden {
		t.Errorf("cross-site POST: %d, want 403", status)
	}
	if n := w.count(`SELECT count(*) FROM exceptions WHERE status <> 'open'`); n != 0 {
		t.Errorf("%d exceptions changed by refused requests", n)
	}
}

func TestExceptionsQueue(t *testing.T) {
	w := newWorld(t)
	op := w.signIn("oscar", opPass)
	body := op.get("/exceptions", 200)
	for _, want := range []string{
		"4 matching", "EUR 12.34 and GBP 4,310.00",
		"The payment of GBP 4,000.00 for invoice INV-4000 failed at the customer&#39;s bank",
		"Replay it: GoCardless tries the payment again",
		"Invoice INV-BAD from ifs-acme could not be collected as sent",
		"was cancelled before it was collected",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("queue lacks %q", want)
		}
	}
	// Filters: company, reason (kind or GoCardless cause), state.
	for q, want := range map[string]string{
		"company=20":                           "1 matching",
		"reason=insufficient_funds":            "2 matching",
		"reason=invalid_invoice":               "1 matching",
		"connection=ifs-acme&status=escalated": "0 matching",
		"age=720h":                             "0 matching",
	} {
		if got := op.get("/exceptions?"+q, 200); !strings.Contains(got, want) {
			t.Errorf("?%s: want %q", q, want)
		}
	}
	if status, _ := op.getJSON("/exceptions?status=bogus"); status != http.StatusBadRequest {
		t.Errorf("bad status filter: %d, want 400", status)
	}

	// JSON under the same route, snake_case, exact amounts.
	status, js := op.getJSON("/exceptions?reason=insufficient_funds")
	if status != 200 {
		t.Fatalf("JSON: %d", status)
	}
	var pg struct {
		Items []struct {
			Ref        string `json:"ref"`
			Replayable bool   `json:"replayable"`
			Amount     struct {
				Minor   int64  `json:"amount_minor"`
				Decimal string `json:"amount"`
			} `json:"amount"`
			WhatToDo string `json:"what_to_do"`
		} `json:"items"`
		Total int `json:"total"`
	}
	if err := json.Unmarshal([]byte(js), &pg); err != nil {
		t.Fatal(err)
	}
	if pg.Total != 2 || len(pg.Items) != 2 || !pg.Items[0].Replayable || pg.Items[0].WhatToDo == "" {
		t.Fatalf("JSON queue: %s", js)
	}
	if strings.Contains(js, "AmountMinor") || strings.Contains(js, "\"Ref\"") {
		t.Errorf("JSON uses Go field names: %s", js)
	}

	// Escalate with a note: the note and its author are shown.
	csrf := field(body, "csrf_token")
	status, body = op.post("/exceptions/escalate", url.Values{"csrf_token": {csrf}, "ref": {"exception:1"}, "note": {"asked AR to fix the amount"}, "back": {"/exceptions?status=all"}})
	if status != 200 || !strings.Contains(body, "Escalated INV-BAD with your note") || !strings.Contains(body, "asked AR to fix the amount") || !strings.Contains(body, "console:oscar") {
		t.Errorf("escalate: %d\n%s", status, body)
	}
	if status, _ := op.post("/exceptions/resolve", url.Values{"csrf_token": {csrf}, "ref": {"exception:1"}}); status != http.StatusBadRequest {
		t.Errorf("resolve without a note: %d, want 400", status)
	}
	if w.count(`SELECT count(*) FROM audit_log WHERE action = 'exception.escalated' AND actor = 'console:oscar' AND payload->>'cause' = 'asked AR to fix the amount'`) != 1 {
		t.Errorf("the escalation is not audited under the user's name")
	}
	// A failed payment without an exception row: escalating it records one.
	status, _ = op.post("/exceptions/resolve", url.Values{"csrf_token": {csrf}, "ref": {"collection:3"}, "note": {"paid by bank transfer"}})
	if status != 200 || w.count(`SELECT count(*) FROM exceptions WHERE kind = 'operator_resolution' AND status = 'resolved'`) != 1 {
		t.Errorf("resolve of a cancelled payment: %d", status)
	}
	if got := op.get("/exceptions", 200); !strings.Contains(got, "2 matching") {
		t.Errorf("after escalating one and resolving one, the open queue should hold 2")
	}
}

func TestReplayAndBulkConfirmation(t *testing.T) {
	w := newWorld(t)
	op := w.signIn("oscar", opPass)
	page := op.get("/exceptions", 200)
	csrf := field(page, "csrf_token")
	var refs []string
	for _, inv := range []string{"INV-4000", "INV-310", "INV-BAD"} {
		var id int64
		if inv == "INV-BAD" {
			refs = append(refs, "exception:1")
			continue
		}
		if err := w.DB.QueryRow(t.Context(), `SELECT id FROM collections WHERE invoice_id = $1`, inv).Scan(&id); err != nil {
			t.Fatal(err)
		}
		refs = append(refs, "collection:"+itoa(id))
	}
	status, body := op.post("/exceptions/bulk", url.Values{"csrf_token": {csrf}, "action": {"replay"}, "ref": refs})
	want := "retry 2 payments totalling GBP 4,310.00; 1 selected item cannot be replayed and will be left as it is"
	if status != 200 || !strings.Contains(body, want) {
		t.Fatalf("bulk preview: %d, want %q\n%s", status, want, body)
	}
	if n := len(w.Sim.Sim.Payments()); n != 0 {
		t.Fatalf("the preview made %d payments", n)
	}
	summary := field(body, "summary")
	// A confirmation of something else (the selection changed) acts on
	// nothing and shows the new plan.
	status, _ = op.post("/exceptions/bulk/confirm", url.Values{"csrf_token": {csrf}, "action": {"replay"}, "ref": refs, "summary": {"retry 1 payment totalling GBP 1.00"}})
	if status != http.StatusConflict || len(w.Sim.Sim.Payments()) != 0 {
		t.Fatalf("stale confirmation: %d, payments %d", status, len(w.Sim.Sim.Payments()))
	}
	status, body = op.post("/exceptions/bulk/confirm", url.Values{"csrf_token": {csrf}, "action": {"replay"}, "ref": refs, "summary": {summary}})
	if status != 200 || !strings.Contains(body, "Done: 2 of 2 succeeded") {
		t.Fatalf("bulk replay: %d\n%s", status, body)
	}
	if n := len(w.Sim.Sim.Payments()); n != 2 {
		t.Errorf("GoCardless has %d payments, want 2", n)
	}
	if n := w.count(`SELECT count(*) FROM collections WHERE state NOT IN ('failed', 'cancelled') AND attempts = 2`); n != 2 {
		t.Errorf("%d collections replayed, want 2", n)
	}
	if n := w.count(`SELECT count(*) FROM audit_log WHERE action IN ('collection.replayed', 'collection.replaying') AND payload->>'cause' LIKE 'console:oscar: %'`); n != 2 {
		t.Errorf("%d replays audited under the user's name, want 2", n)
	}
	// Confirming the same again replays nothing twice.
	status, _ = op.post("/exceptions/bulk/confirm", url.Values{"csrf_token": {csrf}, "action": {"replay"}, "ref": refs, "summary": {summary}})
	if status != http.StatusConflict || len(w.Sim.Sim.Payments()) != 2 {
		t.Errorf("second confirmation: %d, %d payments", status, len(w.Sim.Sim.Payments()))
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }
