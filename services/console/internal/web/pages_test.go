package web_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestCollectionPage(t *testing.T) {
	w := newWorld(t)
	op := w.signIn("oscar", opPass)
	csrf := field(op.get("/exceptions", 200), "csrf_token")
	var id int64
	if err := w.DB.QueryRow(t.Context(), `SELECT id FROM collections WHERE invoice_id = 'INV-4000'`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	// Replayed from the collection page: the timeline tells it in words.
	status, body := op.post("/exceptions/replay", url.Values{"csrf_token": {csrf}, "ref": {"collection:" + itoa(id)}, "back": {"/collections/ifs-acme/10/INV-4000"}})
	if status != 200 {
		t.Fatalf("replay: %d\n%s", status, body)
	}
	for _, want := range []string{
		"Replayed INV-4000", "GBP 4,000.00", "Why: console:oscar: new payment, attempt 2", "state: failed → ", "attempts: 1 → 2",
		"Audit trail verified: every record's hash chain checks out, and every record's signature", "<code>" + w.mandate(t) + "</code>",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("collection page lacks %q", want)
		}
	}
	status, js := op.getJSON("/collections/ifs-acme/10/INV-4000")
	var d struct {
		Collection struct {
			Amount struct {
				Minor   int64  `json:"amount_minor"`
				Decimal string `json:"amount"`
			} `json:"amount"`
			State string `json:"state"`
		} `json:"collection"`
		Verified bool `json:"audit_verified"`
		Signed   bool `json:"audit_macs_checked"`
		Timeline []struct {
			What    string   `json:"what"`
			Who     string   `json:"who"`
			Changes []string `json:"changes"`
		} `json:"timeline"`
	}
	if err := json.Unmarshal([]byte(js), &d); err != nil || status != 200 {
		t.Fatalf("JSON: %d %v", status, err)
	}
	if d.Collection.Amount.Minor != 400000 || d.Collection.Amount.Decimal != "4000.00" || !d.Verified || len(d.Timeline) == 0 {
		t.Errorf("collection JSON: %s", js)
	}
	if status, _ := op.getJSON("/collections/ifs-acme/10/NOPE"); status != http.StatusNotFound {
		t.Errorf("unknown document: %d, want 404", status)
	}
	if !d.Signed {
		t.Error("the page does not say the MACs were checked")
	}
	// A row whose MAC was dropped keeps its hash chain intact: only the
	// keyed check (as mlcctl audit verify's) sees it.
	w.exec(`ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only`)
	w.exec(`UPDATE audit_log SET mac = NULL, mac_key_id = NULL WHERE aggregate_type = 'collection' AND seq = 2`)
	w.exec(`ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only`)
	if body := op.get("/collections/ifs-acme/10/INV-4000", 200); !strings.Contains(body, "Audit trail does NOT verify") || !strings.Contains(body, "row not signed") {
		t.Errorf("a row without its MAC is shown as verified")
	}
	// A tampered audit row is reported, not hidden.
	w.exec(`ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only`)
	w.exec(`UPDATE audit_log SET actor = 'someone-else' WHERE aggregate_type = 'collection' AND seq = 1`)
	w.exec(`ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only`)
	if body := op.get("/collections/ifs-acme/10/INV-4000", 200); !strings.Contains(body, "Audit trail does NOT verify") {
		t.Errorf("a tampered trail is shown as verified")
	}
}

func (w *world) mandate(t *testing.T) string {
	var m string
	if err := w.DB.QueryRow(t.Context(), `SELECT gc_mandate_id FROM customer_links LIMIT 1`).Scan(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestConnectionsAddRotatePing(t *testing.T) {
	w := newWorld(t)
	admin := w.signIn("alice", adminPass)
	page := admin.get("/connections", 200)
	csrf := field(page, "csrf_token")
	const newToken = "gc-new-token-also-never-shown"
	status, body := admin.post("/connections", url.Values{"csrf_token": {csrf}, "name": {"gc-two"}, "kind": {"gocardless"},
		"base_url": {w.Sim.URL}, "secret_access_token": {"wrong-token-never-shown-123"}})
	if status != 200 || !strings.Contains(body, "Added gocardless connection gc-two") || !strings.Contains(body, "access_token (encrypted)") {
		t.Fatalf("add: %d\n%s", status, body)
	}
	if strings.Contains(body, "wrong-token-never-shown-123") {
		t.Fatal("the page shows the secret just entered")
	}
	// A ping with the wrong token says what to check.
	status, body = admin.post("/connections/gc-two/ping", url.Values{"csrf_token": {csrf}})
	if status != 200 || !strings.Contains(body, "credentials refused") {
		t.Errorf("ping with a wrong token: %d\n%s", status, body)
	}
	status, body = admin.post("/connections/gc-two/secrets", url.Values{"csrf_token": {csrf}, "secret_access_token": {newToken}})
	if status != 200 || !strings.Contains(body, "Replaced access_token of gc-two") || strings.Contains(body, newToken) {
		t.Fatalf("rotate: %d\n%s", status, body)
	}
	// Still refused: the simulator accepts only the world's token; the
	// ping of the world's own account succeeds step by step.
	status, body = admin.post("/connections/gc/ping", url.Values{"csrf_token": {csrf}})
	for _, want := range []string{"it works", "access token accepted", "creditors CR"} {
		if status != 200 || !strings.Contains(body, want) {
			t.Errorf("ping gc: %d, lacks %q", status, want)
		}
	}
	// Bad input is refused with the reason, and what was typed is kept
	// (but not the secret).
	status, body = admin.post("/connections", url.Values{"csrf_token": {csrf}, "name": {"ifs bad"}, "kind": {"ifs"},
		"base_url": {"ftp://x"}, "secret_client_secret": {"typed-secret-not-echoed"}})
	if status != http.StatusBadRequest || !strings.Contains(body, "Not added") || strings.Contains(body, "typed-secret-not-echoed") {
		t.Errorf("bad connection: %d\n%s", status, body)
	}
	if n := w.count(`SELECT count(*) FROM audit_log WHERE aggregate_id = 'gc-two' AND actor = 'console:alice'`); n != 2 {
		t.Errorf("%d audit records of the admin's changes to gc-two, want 2 (added, secrets replaced)", n)
	}
	if n := w.count(`SELECT count(*) FROM connection_secrets WHERE position('never-shown'::bytea IN ciphertext) > 0`); n != 0 {
		t.Errorf("a secret is stored in plaintext")
	}
}

func TestOverview(t *testing.T) {
	w := newWorld(t)
	w.exec(`INSERT INTO poll_state (connection_id, entity, watermark_time) SELECT id, 'invoices', now() FROM connections WHERE name = 'ifs-acme'`)
	v := w.signIn("vera", viewerPass)
	body := v.get("/", 200)
	for _, want := range []string{
		"ifs-acme / 10", "GBP 4,310.00", "ifs-acme / 20", "EUR 12.34",
		"4 open exceptions need someone",             // ifs-acme: amber, with the reason
		"no GoCardless event has ever been received", // gc: red
		"unknown (kept in the services&#39; metrics, not the database)",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("overview lacks %q", want)
		}
	}
	status, js := v.getJSON("/")
	if status != 200 || !strings.Contains(js, `"customers_waiting_for_mandate": 1`) || !strings.Contains(js, `"amount": "4310.00"`) {
		t.Errorf("overview JSON: %d\n%s", status, js)
	}
}
