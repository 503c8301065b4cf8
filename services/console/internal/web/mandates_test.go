package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"google.golang.org/protobuf/proto"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/connectors/gocardless/gcsim"
	"github.com/ml-connector/ml-connector/platform/secrets"
	mlcv1 "github.com/ml-connector/ml-connector/proto/mlc/v1"
)

// askForMandate does what the orchestrator does for an ERP customer of
// ifs-acme company 10 without a mandate: a GoCardless customer, a billing
// request and a flow at the simulator, recorded in mandate_requests, and
// the customer's invoices parked in awaiting_invoices (amounts as the ERP
// sends them). It returns the request's id and the flow's link.
func (w *world) askForMandate(customer, notified string, invoices map[string]string) (int64, string) {
	w.t.Helper()
	ctx := context.Background()
	gc, err := gocardless.New(w.Sim.URL, secrets.NewValue(gcToken))
	if err != nil {
		w.t.Fatal(err)
	}
	cu, _, err := gc.CreateCustomer(ctx, "cu-"+customer, gocardless.CustomerParams{Email: "ap@" + customer + ".example", CompanyName: customer + " Ltd", CountryCode: "GB"})
	if err != nil {
		w.t.Fatal(err)
	}
	p := gocardless.BillingRequestParams{MandateRequest: gocardless.MandateRequestParams{Currency: "GBP"}}
	p.Links.Customer = cu.ID
	br, _, err := gc.CreateBillingRequest(ctx, "br-"+customer, p)
	if err != nil {
		w.t.Fatal(err)
	}
	fp := gocardless.BillingRequestFlowParams{LockCurrency: true}
	fp.Links.BillingRequest = br.ID
	flow, err := gc.CreateBillingRequestFlow(ctx, fp)
	if err != nil {
		w.t.Fatal(err)
	}
	var id int64
	if err := w.DB.QueryRow(ctx, `INSERT INTO mandate_requests (erp, connection_id, company, erp_customer_id, gc_connection_id,
			gc_customer_id, attempt, idempotency_key, currency, state, billing_request_id, flow_id, authorisation_url, flow_expires_at, notified)
		SELECT 'ifs', i.id, '10', $1, g.id, $2, 1, 'mr-' || $1, 'GBP', 'awaiting_payer', $3, $4, $5, $6, nullif($7, '')
		FROM connections i, connections g WHERE i.name = 'ifs-acme' AND g.name = 'gc' RETURNING id`,
		customer, cu.ID, br.ID, flow.ID, flow.AuthorisationURL, flow.ExpiresAt, notified).Scan(&id); err != nil {
		w.t.Fatal(err)
	}
	for doc, amount := range invoices {
		m := &mlcv1.InvoiceReady{Erp: &mlcv1.ErpRef{Erp: mlcv1.Erp_ERP_IFS, Connection: "ifs-acme", Company: "10"},
			Invoice: &mlcv1.InvoiceKey{InvoiceId: doc}, CustomerId: customer, Version: "v1", Amount: amount, Currency: "GBP"}
		data, err := proto.Marshal(m)
		if err != nil {
			w.t.Fatal(err)
		}
		// Parked under the ledger's invoice identity, as the orchestrator does.
		w.exec(`INSERT INTO awaiting_invoices (aggregate_id, version, message)
			SELECT 'ifs:' || id || ':10:' || $1, 'v1', $2 FROM connections WHERE name = 'ifs-acme'`, doc, data)
	}
	return id, flow.AuthorisationURL
}

func TestMandatesPage(t *testing.T) {
	w := newWorld(t)
	waitID, waitLink := w.askForMandate("C2", "", map[string]string{"INV-W1": "120.00", "INV-W2": "30.50"})
	goneID, goneLink := w.askForMandate("C3", "refused: notify is for Pay by Bank requests only", map[string]string{"INV-W3": "9.99"})
	// C3's payer abandoned it: GoCardless cancelled the request.
	gc, _ := gocardless.New(w.Sim.URL, secrets.NewValue(gcToken))
	var brC3 string
	if err := w.DB.QueryRow(t.Context(), `SELECT billing_request_id FROM mandate_requests WHERE id = $1`, goneID).Scan(&brC3); err != nil {
		t.Fatal(err)
	}
	if _, err := gc.CancelBillingRequest(t.Context(), "cancel-c3", brC3, gocardless.ActionParams{}); err != nil {
		t.Fatal(err)
	}
	w.exec(`UPDATE mandate_requests SET state = 'cancelled' WHERE id = $1`, goneID)
	// A released invoice no longer waits.
	paidID, _ := w.askForMandate("C4", "", map[string]string{"INV-PAID": "1.00"})
	w.exec(`UPDATE awaiting_invoices SET released_at = now() WHERE aggregate_id LIKE '%:10:INV-PAID'`)

	// A viewer sees who is waiting, the link to send, and what waits on it,
	// but no resend.
	v := w.signIn("vera", viewerPass)
	page := v.get("/mandates", 200)
	for _, want := range []string{"C2", waitLink, "INV-W1", "GBP 120.00", "INV-W2", "GBP 30.50", "total <span class=\"amount\">GBP 150.50</span>",
		"not asked: send the link yourself", "waiting for the customer"} {
		if !strings.Contains(page, want) {
			t.Errorf("mandates page lacks %q", want)
		}
	}
	// A customer is matched by its row, not by "C3" anywhere: GoCardless
	// IDs and the CSRF token are random and may contain "C3".
	if strings.Contains(page, customerRow("C3")) || strings.Contains(page, rowID(goneID)) || strings.Contains(page, goneLink) || strings.Contains(page, "INV-W3") ||
		strings.Contains(page, "INV-PAID") || strings.Contains(page, "Resend link") {
		t.Errorf("the waiting list shows a cancelled request, a released invoice or a viewer's resend button:\n%s", page)
	}
	// C4 still waits, with nothing left waiting on it.
	if !strings.Contains(page, customerRow("C4")) || !strings.Contains(page, rowID(paidID)) {
		t.Errorf("the waiting list lacks C4, whose request still waits:\n%s", page)
	}
	if status, _ := v.post("/mandates/"+itoa(waitID)+"/resend", url.Values{"csrf_token": {field(page, "csrf_token")}}); status != http.StatusForbidden {
		t.Errorf("a viewer's resend: %d, want 403", status)
	}
	if status, _ := v.getJSON("/mandates?state=bogus"); status != http.StatusBadRequest {
		t.Errorf("unknown state: %d, want 400", status)
	}
	// A link past its expiry says so.
	w.exec(`UPDATE mandate_requests SET flow_expires_at = now() - interval '1 hour' WHERE id = $1`, waitID)
	if page := v.get("/mandates", 200); !strings.Contains(page, "link expired") {
		t.Errorf("an expired link is not shown as expired")
	}
	cancelled := v.get("/mandates?state=cancelled", 200)
	if !strings.Contains(cancelled, customerRow("C3")) || !strings.Contains(cancelled, rowID(goneID)) || !strings.Contains(cancelled, "no: refused: notify is for Pay by Bank requests only") || !strings.Contains(cancelled, "GBP 9.99") {
		t.Errorf("cancelled list:\n%s", cancelled)
	}

	// An operator resends the pending one: a new flow of the same billing
	// request, its link recorded and shown, the resend audited.
	op := w.signIn("oscar", opPass)
	page = op.get("/mandates", 200)
	status, body := op.post("/mandates/"+itoa(waitID)+"/resend", url.Values{"csrf_token": {field(page, "csrf_token")}, "back": {"/mandates"}})
	if status != 200 || !strings.Contains(body, "New link for customer C2") || !strings.Contains(body, "resent ") || !strings.Contains(body, "by console:oscar") {
		t.Fatalf("resend: %d\n%s", status, body)
	}
	var newLink string
	if err := w.DB.QueryRow(t.Context(), `SELECT authorisation_url FROM mandate_requests WHERE id = $1`, waitID).Scan(&newLink); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(body, "link expired") {
		t.Errorf("the new link is shown as expired")
	}
	if newLink == waitLink || !strings.Contains(body, newLink) || strings.Contains(body, waitLink) {
		t.Errorf("after the resend the page shows %q (old %q, new %q)", body, waitLink, newLink)
	}
	if !simHasFlow(w.Sim.Sim.Flows(), newLink) {
		t.Errorf("the new link %s is not a flow GoCardless made", newLink)
	}
	if n := w.count(`SELECT count(*) FROM audit_log WHERE aggregate_type = 'mandate_request' AND aggregate_id LIKE 'ifs:%:10:C2'
			AND action = 'mandate_request.resent' AND actor = 'console:oscar'`); n != 1 {
		t.Errorf("%d audit records of the resend, want 1", n)
	}

	// The cancelled one is asked again as a new billing request: its
	// invoices now wait on attempt 2, and the old attempt cannot be resent.
	status, body = op.post("/mandates/"+itoa(goneID)+"/resend", url.Values{"csrf_token": {field(page, "csrf_token")}, "back": {"/mandates"}})
	if status != 200 || !strings.Contains(body, "New link for customer C3") || strings.Contains(body, goneLink) {
		t.Fatalf("resend of a cancelled request: %d\n%s", status, body)
	}
	if n := len(w.Sim.Sim.BillingRequests()); n != 4 {
		t.Errorf("GoCardless holds %d billing requests, want 4 (C2, C3 twice, C4)", n)
	}
	status, js := op.getJSON("/mandates?state=all")
	var d struct {
		Requests []struct {
			ID        int64  `json:"id"`
			Customer  string `json:"erp_customer_id"`
			Attempt   int    `json:"attempt"`
			State     string `json:"state"`
			Link      string `json:"authorisation_url"`
			Latest    bool   `json:"latest"`
			CanResend bool   `json:"can_resend"`
			Invoices  []struct {
				Document string `json:"document"`
				Amount   struct {
					Minor int64 `json:"amount_minor"`
				} `json:"amount"`
			} `json:"waiting_invoices"`
		} `json:"mandate_requests"`
	}
	if err := json.Unmarshal([]byte(js), &d); err != nil || status != 200 {
		t.Fatalf("JSON: %d %v\n%s", status, err, js)
	}
	for _, r := range d.Requests {
		switch {
		case r.ID == goneID && (r.Latest || r.CanResend || len(r.Invoices) != 0):
			t.Errorf("the replaced attempt: %+v", r)
		case r.Customer == "C3" && r.ID != goneID && (r.Attempt != 2 || r.State != "awaiting_payer" || !r.CanResend ||
			len(r.Invoices) != 1 || r.Invoices[0].Document != "INV-W3" || r.Invoices[0].Amount.Minor != 999):
			t.Errorf("attempt 2 of C3: %+v", r)
		}
	}
	// A fulfilled request cannot be resent: the operator code says why.
	w.exec(`UPDATE mandate_requests SET state = 'fulfilled' WHERE id = $1`, waitID)
	if status, body := op.post("/mandates/"+itoa(waitID)+"/resend", url.Values{"csrf_token": {field(page, "csrf_token")}}); status != http.StatusConflict || !strings.Contains(body, "fulfilled; nothing to resend") {
		t.Errorf("resend of a fulfilled request: %d\n%s", status, body)
	}
}

// customerRow is how the mandates page heads an ERP customer's row.
func customerRow(customer string) string { return `<th scope="row">` + customer + `<br>` }

// rowID is the id of a mandate request's row on the mandates page.
func rowID(id int64) string { return `id="mandate-request-` + itoa(id) + `"` }

func simHasFlow(flows []gcsim.BillingRequestFlow, link string) bool {
	for _, f := range flows {
		if f.AuthorisationURL == link {
			return true
		}
	}
	return false
}

// TestBrowserMandates: an operator finds the customers who have not
// authorised their mandate from the menu, reads the link to send and the
// invoices waiting, and resends the link with the keyboard.
func TestBrowserMandates(t *testing.T) {
	w := newWorld(t)
	_, link := w.askForMandate("C2", "", map[string]string{"INV-W1": "120.00", "INV-W2": "30.50"})
	b := w.chrome(t)
	b.signIn("oscar", opPass)
	b.run("open mandates", chromedp.Click(`a[href="/mandates"]`, chromedp.ByQuery), chromedp.WaitVisible("table.mandates", chromedp.ByQuery))
	b.expect("mandates", "Mandates awaiting the customer", "C2", link, "INV-W1", "GBP 120.00", "GBP 150.50", "send the link yourself")
	b.run("resend with the keyboard",
		chromedp.Focus(`button[aria-label="Resend the link to C2"]`, chromedp.ByQuery),
		chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(".flash", chromedp.ByQuery))
	b.expect("resent", "New link for customer C2", "by console:oscar")
	var now string
	if err := w.DB.QueryRow(t.Context(), `SELECT authorisation_url FROM mandate_requests WHERE erp_customer_id = 'C2'`).Scan(&now); err != nil {
		t.Fatal(err)
	}
	if now == link {
		t.Fatal("the link did not change")
	}
	b.expect("new link shown", now)
}
