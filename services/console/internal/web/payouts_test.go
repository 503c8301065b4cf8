package web_test

import (
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/ml-connector/ml-connector/services/payment-orchestrator/settlement/settlementtest"
)

// november is the world with settlementtest's November 2026 written into
// it: payouts PO0 to PO3, collections INV-1 to INV-7 of ifs-acme.
func november(t *testing.T) *world {
	w := newWorld(t)
	settlementtest.Existing(t, w.DB, "gc", "ifs-acme").Seed()
	return w
}

func TestPayoutsPages(t *testing.T) {
	w := november(t)
	v := w.signIn("vera", viewerPass)

	list := v.get("/payouts?from=2026-11-01&to=2026-11-30", 200)
	for _, want := range []string{`<a href="/payouts/PO1">REF-NOV</a>`, "GBP 140.50", "GBP 2.50", "<mark>2 unmatched</mark>",
		"items do not add up (differ by -0.01)", "REF-EUR"} {
		if !strings.Contains(list, want) {
			t.Errorf("payouts page lacks %q", want)
		}
	}
	if strings.Contains(list, "REF-DEC") || strings.Contains(list, "REF-OCT") {
		t.Error("payouts outside the dates are listed")
	}
	if body := v.get("/payouts?from=30/11/2026", 400); !strings.Contains(body, "is not a date") {
		t.Errorf("bad date: %s", body)
	}

	one := v.get("/payouts/PO1", 200)
	for _, want := range []string{"Payout REF-NOV", `<a href="/collections/ifs-acme/10/INV-1">No INV-1</a>`, "GBP 87.995",
		`<tr class="unmatched">`, "<mark>unmatched</mark>", "payment <code>PMX</code>", "-2.005", "-0.494", "<mark>2 tied to no invoice of ours</mark>"} {
		if !strings.Contains(one, want) {
			t.Errorf("payout page lacks %q", want)
		}
	}
	if strings.Count(one, `<tr class="unmatched">`) != 2 {
		t.Errorf("%d unmatched rows, want 2", strings.Count(one, `<tr class="unmatched">`))
	}
	if status, _ := v.getJSON("/payouts/PO404"); status != http.StatusNotFound {
		t.Errorf("unknown payout: %d", status)
	}

	// The JSON is mlcctl --json's: the same names from the same code.
	status, js := v.getJSON("/payouts/PO1")
	var d map[string]any
	if err := json.Unmarshal([]byte(js), &d); err != nil || status != 200 {
		t.Fatalf("payout JSON: %d %v", status, err)
	}
	if d["bank_reference"] != "REF-NOV" || d["unmatched_items"] != float64(2) || len(d["item_list"].([]any)) != 9 {
		t.Errorf("payout JSON: %s", js)
	}

	// The report: shown, and downloaded as CSV and JSON.
	page := v.get("/reports/month-end?from=2026-11-01&to=2026-11-30", 200)
	for _, want := range []string{"130.995", "140.50", "GoCardless paid EUR 10.00, its items add up to 9.99", "gc: GoCardless’s rounding",
		"unexplained difference",
		`href="/reports/month-end?format=csv&amp;from=2026-11-01&amp;to=2026-11-30"`} {
		if !strings.Contains(page, want) {
			t.Errorf("report page lacks %q", want)
		}
	}
	resp := v.raw("/reports/month-end?from=2026-11-01&to=2026-11-30&format=csv")
	rows, err := csv.NewReader(strings.NewReader(resp.body)).ReadAll()
	if err != nil || resp.status != 200 {
		t.Fatalf("CSV: %d %v\n%s", resp.status, err, resp.body)
	}
	if ct, cd := resp.header.Get("Content-Type"), resp.header.Get("Content-Disposition"); ct != "text/csv; charset=utf-8" ||
		cd != `attachment; filename="month-end-2026-11-01-2026-11-30.csv"` {
		t.Errorf("CSV headers %q %q", ct, cd)
	}
	if got := strings.Join(rows[len(rows)-1], ","); got != "total,,,,GBP,160.00,2.50,10.00,7.00,0.00,140.50,55.00,1" {
		t.Errorf("CSV GBP total %q", got)
	}
	resp = v.raw("/reports/month-end?from=2026-11-01&to=2026-11-30&connection=ifs-acme&format=json")
	var rep struct {
		Lines []struct {
			Connection string `json:"connection"`
			PaidOut    string `json:"paid_out"`
		} `json:"lines"`
	}
	if err := json.Unmarshal([]byte(resp.body), &rep); err != nil || len(rep.Lines) != 2 || rep.Lines[0].PaidOut != "130.995" {
		t.Errorf("JSON report: %v %s", err, resp.body)
	}
	for _, bad := range []string{"?format=csv", "?from=2026-11-30&to=2026-11-01&format=csv", "?from=2026-11-01&to=2026-11-30&format=xlsx"} {
		if r := v.raw("/reports/month-end" + bad); r.status != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", bad, r.status)
		}
	}
	if r := v.raw("/reports/month-end?from=2026-11-01&to=2026-11-30&connection=nope&format=csv"); r.status != http.StatusNotFound {
		t.Errorf("unknown connection: %d", r.status)
	}

	// Signed out, nothing is shown.
	if r := w.browser().raw("/reports/month-end?from=2026-11-01&to=2026-11-30&format=csv"); r.status != http.StatusOK || strings.Contains(r.body, "140.50") {
		t.Errorf("signed out: %d %q", r.status, r.body)
	}
}

type answer struct {
	status int
	header http.Header
	body   string
}

// raw GETs path and returns the whole answer.
func (b *browser) raw(path string) answer {
	b.w.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.w.Srv.URL+path, nil)
	resp, err := b.c.Do(req)
	if err != nil {
		b.w.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(body)}
}

// TestBrowserJourneysPayouts: AR at month end, in a real browser: the payouts of
// November, one opened with its invoices and the payment that is not
// ours marked, then the month-end report for the month.
func TestBrowserJourneysPayouts(t *testing.T) {
	w := november(t)
	b := w.chrome(t)
	b.signIn("vera", viewerPass)
	b.run("open payouts", chromedp.Click(`a[href="/payouts"]`, chromedp.ByQuery), chromedp.WaitVisible("table.payouts", chromedp.ByQuery))
	b.expect("payouts", "REF-NOV", "GBP 140.50", "2 unmatched", "items do not add up (differ by -0.01)")

	b.run("open REF-NOV", chromedp.Click(`//a[text()="REF-NOV"]`, chromedp.BySearch), chromedp.WaitVisible("table.items", chromedp.ByQuery))
	b.expect("payout", "Payout REF-NOV", "Invoices settled", "No INV-1", "GBP 87.995", "tied to no invoice of ours")
	var unmatched int
	b.run("count unmatched rows", chromedp.Evaluate(`document.querySelectorAll("table.items tr.unmatched mark").length`, &unmatched))
	if unmatched != 2 {
		t.Errorf("%d items marked unmatched, want 2", unmatched)
	}

	b.run("choose the period",
		chromedp.Navigate(b.url+"/payouts"),
		chromedp.Click(`//a[text()="choose the period"]`, chromedp.BySearch),
		chromedp.WaitVisible("#r-from", chromedp.ByQuery),
		chromedp.SetValue("#r-from", "2026-11-01", chromedp.ByQuery),
		chromedp.SetValue("#r-to", "2026-11-30", chromedp.ByQuery),
		chromedp.Click(`//button[text()="Show"]`, chromedp.BySearch),
		chromedp.WaitVisible("table.report", chromedp.ByQuery))
	b.expect("report", "Payouts that arrived from 2026-11-01 to 2026-11-30", "ifs-acme / 10", "130.995", "140.50", "55.00",
		"GoCardless paid EUR 10.00, its items add up to 9.99")
	var csvLink string
	b.run("CSV link", chromedp.AttributeValue(`//a[text()="CSV"]`, "href", &csvLink, nil, chromedp.BySearch))
	if csvLink != "/reports/month-end?format=csv&from=2026-11-01&to=2026-11-30" {
		t.Errorf("CSV link %q", csvLink)
	}
}

// An operator posts a refused payout again from its page, as mlcctl
// payouts repost does (the same desk code): its deposits are queued again
// under their own keys, audited under the operator's name. A viewer sees
// no button and is refused; a posted payout offers none.
func TestPayoutRepostFromItsPage(t *testing.T) {
	w := november(t)
	w.exec(`UPDATE payouts SET state = 'refused', posted_at = NULL WHERE gc_payout_id = 'PO1'`)
	w.exec(`UPDATE payout_postings SET state = 'refused', posted_at = NULL, request = '\x0a00'::bytea
		WHERE payout_id = (SELECT id FROM payouts WHERE gc_payout_id = 'PO1')`)
	deposits := w.count(`SELECT count(*) FROM payout_postings p JOIN payouts o ON o.id = p.payout_id WHERE o.gc_payout_id = 'PO1'`)

	v := w.signIn("vera", viewerPass)
	page := v.get("/payouts/PO1", 200)
	if strings.Contains(page, "Post again") {
		t.Error("a viewer is offered the re-post")
	}
	if status, _ := v.post("/payouts/PO1/repost", url.Values{"csrf_token": {field(page, "csrf_token")}}); status != http.StatusForbidden {
		t.Errorf("a viewer's re-post: %d, want 403", status)
	}

	op := w.signIn("oscar", opPass)
	page = op.get("/payouts/PO1", 200)
	if !strings.Contains(page, `action="/payouts/PO1/repost"`) || !strings.Contains(page, "Post again") {
		t.Fatalf("the operator is not offered the re-post of a refused payout:\n%s", page)
	}
	if status, _ := op.post("/payouts/PO1/repost", url.Values{"csrf_token": {"forged"}}); status != http.StatusForbidden {
		t.Errorf("a re-post without the page's CSRF token: %d, want 403", status)
	}
	if n := w.count(`SELECT count(*) FROM pending_outcomes`); n != 0 {
		t.Fatalf("%d deposits queued by a refused request", n)
	}
	status, body := op.post("/payouts/PO1/repost", url.Values{"csrf_token": {field(page, "csrf_token")}, "back": {"/payouts/PO1"},
		"note": {"period reopened"}})
	if status != 200 || !strings.Contains(body, "Payout PO1: "+strconv.Itoa(deposits)+" deposit(s) queued for the ERP again") {
		t.Fatalf("re-post: %d\n%s", status, body)
	}
	if n := w.count(`SELECT count(*) FROM pending_outcomes o JOIN payout_postings p ON p.outcome_id = o.outcome_id
			WHERE o.aggregate_id = 'PO1' AND o.outcome = p.request AND p.state = 'queued'`); n != deposits {
		t.Errorf("%d deposits queued again, want %d", n, deposits)
	}
	if n := w.count(`SELECT count(*) FROM audit_log WHERE aggregate_id = 'PO1' AND action = 'payout.repost' AND actor = 'console:oscar'`); n != 1 {
		t.Errorf("%d re-posts audited under console:oscar", n)
	}
	// A payout with nothing to post again offers no button and refuses.
	page = op.get("/payouts/PO3", 200)
	if strings.Contains(page, "Post again") {
		t.Error("a mismatched payout offers the re-post")
	}
	if status, body := op.post("/payouts/PO3/repost", url.Values{"csrf_token": {field(page, "csrf_token")}}); status != http.StatusConflict ||
		!strings.Contains(body, "does not add up") {
		t.Errorf("re-post of a mismatch: %d %s", status, body)
	}
}
