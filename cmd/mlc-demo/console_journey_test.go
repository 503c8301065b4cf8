package main

import (
	"context"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/ml-connector/ml-connector/connectors/ifscloud/ifssim"
	"github.com/ml-connector/ml-connector/platform/secrets"
	"github.com/ml-connector/ml-connector/platform/testsupport"
	"github.com/ml-connector/ml-connector/platform/testsupport/browser"
	"github.com/ml-connector/ml-connector/platform/testsupport/oidcprovider"
	"github.com/ml-connector/ml-connector/services/console/users"
)

// The OpenID provider's one person: olga, of the AR team, whom the
// demo's console maps to an operator.
const (
	oidcClientSecret = "demo-oidc-client-secret-never-shown"
	oidcPassword     = "demo-provider-password-never-shown"
	oidcOperator     = "olga@example.com"
)

// consoleJourney is a person's walk through the demo's console, in
// Chromium, while the stack is up: the pages checked against the
// database, then the actions an operator, an admin and a viewer take.
type consoleJourney struct {
	chrome string
	// addr is the console's address, chosen before the run so that the
	// provider knows the console's callback.
	addr string
	// env configures the console for the provider.
	env []string
}

// newConsoleJourney finds Chromium (as the console's own journeys do: a
// machine without it skips the journey, saying so, unless
// MLC_BROWSER_REQUIRED is set, as .ci/run does) and starts a real
// OpenID provider with the console registered at it. It runs before the
// book: a skip or failure must not wait for the run.
func newConsoleJourney(t *testing.T) *consoleJourney {
	chrome, found := testsupport.Chromium(t)
	if !found {
		t.Log("console journey skipped: Chromium is not installed (apt-get install -y chromium)")
		return &consoleJourney{}
	}
	addr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	callback := "http://" + addr + "/auth/oidc/callback"
	idp := oidcprovider.Start(t, oidcprovider.Client{ID: "mlc-console", Secret: oidcClientSecret, RedirectURL: callback}, oidcPassword,
		map[string]oidcprovider.Person{"olga": {Email: oidcOperator, Verified: true, Groups: []string{"staff", "ar-team"}}})
	// The console trusts the provider's certificate through Go's
	// documented SSL_CERT_FILE, as it would trust a company CA.
	ca := filepath.Join(t.TempDir(), "provider.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: idp.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &consoleJourney{chrome: chrome, addr: addr, env: []string{
		"CONSOLE_OIDC_ISSUER=" + idp.URL,
		"CONSOLE_OIDC_CLIENT_ID=mlc-console",
		"CONSOLE_OIDC_CLIENT_SECRET=" + oidcClientSecret,
		"CONSOLE_OIDC_REDIRECT_URL=" + callback,
		"CONSOLE_OIDC_OPERATOR_GROUPS=ar-team",
		"SSL_CERT_FILE=" + ca,
	}}
}

// walk is a settled hook: it runs once the book is in, after the demo has
// printed its final reconciliation and after runBook has checked the ERPs,
// the payouts and the audit log against the book (sims.run calls the hook
// after finish; runBook calls this last). Its actions (a failed payment
// replayed and collected, an exception escalated, a connection added)
// change the ledger only after everything was counted, so the report
// stays the truth of the book as run; the journey checks what each action
// did itself.
func (j *consoleJourney) walk(ctx context.Context, s *simulators) error {
	if j.chrome == "" {
		return nil
	}
	if s.console.url == "" {
		return errors.New("console journey: the demo did not say where its console is")
	}
	admin, err := j.browser(ctx, s)
	if err != nil {
		return err
	}
	defer admin.Close()
	for _, step := range []func(context.Context, *simulators, *browser.Browser) error{
		readPages, replayFailed, escalate, addConnection, j.viewerRefused, j.oidcSignIn,
	} {
		if err := step(ctx, s, admin); err != nil {
			return fmt.Errorf("console journey: %w", err)
		}
	}
	return nil
}

// browser starts a Chromium of its own (own cookies) on the console.
func (j *consoleJourney) browser(ctx context.Context, s *simulators) (*browser.Browser, error) {
	b, err := browser.Start(ctx, j.chrome, s.console.url, 3*time.Minute)
	if err != nil {
		return nil, err
	}
	b.Shots = browser.ScreenshotDir(filepath.Join("..", "..", "docs", "console"))
	return b, nil
}

// readPages signs in with the demo login and checks each page against
// the database.
func readPages(ctx context.Context, s *simulators, b *browser.Browser) error {
	if err := b.Run("open sign-in", chromedp.Navigate(b.URL+"/"), chromedp.WaitVisible("#password", chromedp.ByQuery)); err != nil {
		return err
	}
	if err := b.Shot("login"); err != nil {
		return err
	}
	if err := b.SignIn(s.console.name, s.console.password); err != nil {
		return err
	}

	// The overview lists every connection.
	conns, err := column(ctx, s, `SELECT name FROM connections ORDER BY name`)
	if err != nil {
		return err
	}
	if len(conns) < 3 {
		return fmt.Errorf("the demo has only connections %v", conns)
	}
	if err := b.Run("open the overview", chromedp.Click(`nav[aria-label="Main"] a[href="/"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`//h2[text()="Connections"]`, chromedp.BySearch)); err != nil {
		return err
	}
	if err := b.Expect("the overview", append([]string{"Overview"}, conns...)...); err != nil {
		return err
	}
	if err := b.Shot("overview"); err != nil {
		return err
	}

	// The queue lists what needs someone: the open exceptions and the
	// book's failed collections no exception speaks for (the book's
	// expected failures and charge-backs; the run fails on any other).
	docs, err := column(ctx, s, `SELECT 'exception:' || id FROM exceptions WHERE status = 'open'
		UNION ALL
		SELECT c.invoice_id FROM collections c WHERE c.state IN ('failed', 'cancelled', 'charged_back', 'exception')
		  AND NOT EXISTS (SELECT 1 FROM exceptions x WHERE x.aggregate_id LIKE '%:' || c.company || ':' || c.invoice_id)`)
	if err != nil {
		return err
	}
	open := len(docs)
	if err := b.Run("open the exceptions", chromedp.Click(`nav[aria-label="Main"] a[href="/exceptions"]`, chromedp.ByQuery),
		chromedp.WaitVisible("table.queue", chromedp.ByQuery)); err != nil {
		return err
	}
	if err := b.Expect("the exceptions queue", fmt.Sprintf("%d matching", open)); err != nil {
		return err
	}
	if open <= 10 { // all on the first page
		var shown string
		if err := b.Run("read the queue", chromedp.Text("table.queue", &shown, chromedp.ByQuery)); err != nil {
			return err
		}
		for _, d := range docs {
			if !strings.HasPrefix(d, "exception:") && !strings.Contains(shown, d) {
				return fmt.Errorf("the queue does not show invoice %s:\n%s", d, shown)
			}
		}
	}
	var rowsShown int
	if err := b.Run("count the queue", chromedp.Evaluate(`document.querySelectorAll("table.queue tbody tr[id]").length`, &rowsShown)); err != nil {
		return err
	}
	if rowsShown > open || (open > 0) != (rowsShown > 0) { // the first page of them
		return fmt.Errorf("the queue shows %d exceptions of the %d open", rowsShown, open)
	}
	if err := b.Shot("exceptions"); err != nil {
		return err
	}

	// One collected invoice: its GoCardless payment and its timeline.
	var conn, company, invoiceID, invoiceNo, payment string
	if err := s.db.QueryRow(ctx, `SELECT k.name, c.company, c.invoice_id, c.invoice_no, c.gc_payment_id
		FROM collections c JOIN connections k ON k.id = c.connection_id
		WHERE c.state = 'paid_out' AND c.gc_payment_id IS NOT NULL ORDER BY c.id LIMIT 1`).Scan(&conn, &company, &invoiceID, &invoiceNo, &payment); err != nil {
		return fmt.Errorf("a collected invoice: %w", err)
	}
	var events int
	if err := b.Run("open invoice "+invoiceNo, chromedp.Navigate(collectionPage(b, conn, company, invoiceID)), chromedp.WaitVisible("#audit-status", chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelectorAll("ol.timeline > li").length`, &events)); err != nil {
		return err
	}
	if events < 2 { // at least its creation and its payout
		return fmt.Errorf("invoice %s's timeline has %d events", invoiceNo, events)
	}
	if err := b.Expect("invoice "+invoiceNo, "Invoice "+invoiceNo, "paid_out", payment, "Timeline", "Audit trail verified"); err != nil {
		return err
	}

	// The payouts page lists every payout stored; one opens with the
	// invoices it settled.
	payouts, err := column(ctx, s, `SELECT gc_payout_id FROM payouts ORDER BY id`)
	if err != nil {
		return err
	}
	if len(payouts) == 0 {
		return errors.New("no payout stored to see")
	}
	if err := b.Run("open the payouts", chromedp.Click(`nav[aria-label="Main"] a[href="/payouts"]`, chromedp.ByQuery),
		chromedp.WaitVisible("table.payouts", chromedp.ByQuery)); err != nil {
		return err
	}
	if err := b.Expect("the payouts", payouts...); err != nil {
		return err
	}
	if err := b.Shot("payouts"); err != nil {
		return err
	}
	// The first payout listed, with as many item rows as it has items.
	items := map[string]int{}
	rows, err := s.db.Query(ctx, `SELECT p.gc_payout_id, count(i.seq) FROM payouts p LEFT JOIN payout_items i ON i.payout_id = p.id GROUP BY p.gc_payout_id`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			return err
		}
		items[id] = n
	}
	if err := rows.Err(); err != nil {
		return err
	}
	var title string
	var shown int
	if err := b.Run("open a payout", chromedp.Click(`table.payouts tbody a`, chromedp.ByQuery), chromedp.WaitVisible("table.items", chromedp.ByQuery),
		chromedp.Text("h1", &title, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelectorAll("table.items tbody tr").length`, &shown)); err != nil {
		return err
	}
	opened := ""
	for id := range items {
		if strings.Contains(title, id) {
			opened = id
		}
	}
	if opened == "" || shown != items[opened] || shown == 0 {
		return fmt.Errorf("payout page %q shows %d items (the database: %v)", title, shown, items)
	}
	if err := b.Expect("payout "+opened, "Invoices settled"); err != nil {
		return err
	}
	if err := b.Shot("payout"); err != nil {
		return err
	}
	// The month-end report over the days the payouts arrived (GoCardless's
	// clock ran weeks ahead during the run) has a line per company paid.
	var from, to string
	var paid []string
	if err := s.db.QueryRow(ctx, `SELECT min(arrival_date)::text, max(arrival_date)::text FROM payouts`).Scan(&from, &to); err != nil {
		return err
	}
	if paid, err = column(ctx, s, `SELECT DISTINCT k.name || ' / ' || d.company FROM payout_postings d JOIN payouts p ON p.id = d.payout_id
		JOIN connections k ON k.id = d.erp_connection_id WHERE p.arrival_date IS NOT NULL`); err != nil {
		return err
	}
	if err := b.Run("open the month-end report", chromedp.Navigate(b.URL+"/reports/month-end?from="+from+"&to="+to),
		chromedp.WaitVisible(`//a[text()="CSV"]`, chromedp.BySearch)); err != nil {
		return err
	}
	if err := b.Expect("the month-end report", append([]string{"Payouts that arrived from " + from + " to " + to}, paid...)...); err != nil {
		return err
	}
	if err := b.Shot("report"); err != nil {
		return err
	}

	// The mandates page lists every customer still asked for a mandate
	// (the book's silent payers never authorise).
	waiting, err := column(ctx, s, `SELECT erp_customer_id FROM mandate_requests WHERE state IN ('requesting', 'awaiting_payer') ORDER BY id`)
	if err != nil {
		return err
	}
	if len(waiting) == 0 {
		return errors.New("no customer waits for a mandate")
	}
	if err := b.Run("open the mandates", chromedp.Click(`nav[aria-label="Main"] a[href="/mandates"]`, chromedp.ByQuery),
		chromedp.WaitVisible("table.mandates", chromedp.ByQuery)); err != nil {
		return err
	}
	if err := b.Expect("the mandates", waiting...); err != nil {
		return err
	}
	if err := b.Shot("mandates"); err != nil {
		return err
	}

	// The connections page names every connection.
	if err := b.Run("open the connections", chromedp.Click(`nav[aria-label="Main"] a[href="/connections"]`, chromedp.ByQuery),
		chromedp.WaitVisible("main table", chromedp.ByQuery)); err != nil {
		return err
	}
	return b.Expect("the connections", conns...)
}

// replayFailed replays the book's payment that failed for insufficient
// funds, from its page, and watches it collected: GoCardless's clock is
// moved on until the ledger has it paid out and the ERP has it paid, and
// the page then says so.
func replayFailed(ctx context.Context, s *simulators, b *browser.Browser) error {
	var conn, company, invoiceID, payment string
	if err := s.db.QueryRow(ctx, `SELECT k.name, c.company, c.invoice_id, c.gc_payment_id
		FROM collections c JOIN connections k ON k.id = c.connection_id
		WHERE c.state = 'failed' AND c.failure_cause = 'insufficient_funds' AND k.kind = 'ifs' ORDER BY c.id LIMIT 1`).Scan(&conn, &company, &invoiceID, &payment); err != nil {
		return fmt.Errorf("a failed IFS payment to replay: %w", err)
	}
	page := collectionPage(b, conn, company, invoiceID)
	if err := b.Run("replay invoice "+invoiceID,
		chromedp.Navigate(b.URL+"/exceptions"),
		chromedp.WaitVisible("table.queue", chromedp.ByQuery),
		chromedp.Click(fmt.Sprintf(`//table[@class="queue"]//a[text()=%q]`, invoiceID), chromedp.BySearch),
		chromedp.WaitVisible("#audit-status", chromedp.ByQuery),
		chromedp.Click(`//button[text()="Replay this payment"]`, chromedp.BySearch),
		chromedp.WaitVisible(".flash", chromedp.ByQuery)); err != nil {
		return err
	}
	if err := b.Expect("the replay", "Replayed", "console:"+s.console.name+": payment "+payment+" retried"); err != nil {
		return err
	}

	// Collected: paid out in the ledger, every outcome posted, and the
	// invoice paid in IFS.
	id, err := strconv.ParseInt(invoiceID, 10, 64)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		var state string
		var unposted int
		if err := s.db.QueryRow(ctx, `SELECT c.state, (SELECT count(*) FROM erp_postings e WHERE e.connection_id = c.connection_id
				AND e.company = c.company AND e.invoice_id = c.invoice_id AND e.status <> 'posted')
			FROM collections c JOIN connections k ON k.id = c.connection_id
			WHERE k.name = $1 AND c.company = $2 AND c.invoice_id = $3`, conn, company, invoiceID).Scan(&state, &unposted); err != nil {
			return err
		}
		inv, _ := s.ifs.Invoice(company, id)
		if state == "paid_out" && unposted == 0 && inv.State == ifssim.StatePaidPosted {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("replayed invoice %s not collected: ledger %s (%d outcomes not posted), IFS %s", invoiceID, state, unposted, inv.State)
		}
		s.gc.Advance(6 * time.Hour) // a quarter day, as the run's ticks
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	if err := b.Run("reload invoice "+invoiceID, chromedp.Navigate(page), chromedp.WaitVisible("#audit-status", chromedp.ByQuery)); err != nil {
		return err
	}
	if err := b.Expect("the replayed invoice", "paid_out", "attempt 2", payment, "retried", "Audit trail verified"); err != nil {
		return err
	}
	return b.Shot("collection")
}

// escalate hands the first item of the queue over with a note, typed
// into the field found by its label and sent with Enter; the note and its
// author show among the escalated, and the audit log has both.
func escalate(ctx context.Context, s *simulators, b *browser.Browser) error {
	var ref string
	if err := b.Run("the first item",
		chromedp.Navigate(b.URL+"/exceptions"),
		chromedp.WaitVisible("table.queue", chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelector("table.queue tbody tr[id]").id`, &ref)); err != nil {
		return err
	}
	note := "AR to call the customer about " + ref
	if err := b.Run("escalate "+ref,
		chromedp.Click(fmt.Sprintf(`label[for="esc-%s"]`, ref), chromedp.ByQuery),
		chromedp.KeyEvent(note),
		chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(".flash", chromedp.ByQuery),
		chromedp.Navigate(b.URL+"/exceptions?status=escalated"),
		chromedp.WaitVisible("table.queue", chromedp.ByQuery)); err != nil {
		return err
	}
	actor := "console:" + s.console.name
	if err := b.Expect("the escalated", note, actor, "Escalated"); err != nil {
		return err
	}
	var n int
	if err := s.db.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE action = 'exception.escalated' AND actor = $1 AND payload::text LIKE '%' || $2 || '%'`,
		actor, note).Scan(&n); err != nil {
		return err
	}
	if n != 1 {
		return fmt.Errorf("%d audit records of the escalation by %s", n, actor)
	}
	return nil
}

// addConnection adds a GoCardless connection to the simulator with the
// form, by its labels, and pings it: each step is shown, the secret never.
func addConnection(ctx context.Context, s *simulators, b *browser.Browser) error {
	const name = "gc-console"
	if err := b.Run("add a connection",
		chromedp.Navigate(b.URL+"/connections"),
		chromedp.WaitVisible(`//label[text()="Name"]`, chromedp.BySearch),
		chromedp.Click(`//label[text()="Name"]`, chromedp.BySearch),
		chromedp.KeyEvent(name),
		chromedp.SetValue("#c-kind", "gocardless", chromedp.ByQuery),
		chromedp.Click(`//label[text()="Base URL"]`, chromedp.BySearch),
		chromedp.KeyEvent(s.gc.URL),
		chromedp.Click(`//label[text()="Access token (GoCardless)"]`, chromedp.BySearch),
		chromedp.KeyEvent(gcToken),
		chromedp.Click(`//button[text()="Add connection"]`, chromedp.BySearch),
		chromedp.WaitVisible(".flash", chromedp.ByQuery)); err != nil {
		return err
	}
	if err := b.Expect("the added connection", "Added gocardless connection "+name, "access_token (encrypted)"); err != nil {
		return err
	}
	if err := b.Run("ping it", chromedp.Click(fmt.Sprintf(`button[aria-label="Ping %s"]`, name), chromedp.ByQuery), chromedp.WaitVisible(".ping", chromedp.ByQuery)); err != nil {
		return err
	}
	creditors := s.gc.Creditors()
	if err := b.Expect("the ping", "Ping of "+name+": it works", "token accepted: access token accepted", "creditor found: creditors "+creditors[0].ID); err != nil {
		return err
	}
	var steps int
	if err := b.Run("count the steps", chromedp.Evaluate(`document.querySelectorAll(".ping ol li.ok").length`, &steps)); err != nil {
		return err
	}
	if steps != 2 { // the token, then the creditor
		return fmt.Errorf("the ping shows %d steps that worked, want 2", steps)
	}
	txt, err := b.Text()
	if err != nil {
		return err
	}
	if strings.Contains(txt, gcToken) {
		return errors.New("the connections page shows the access token")
	}
	var n int
	if err := s.db.QueryRow(ctx, `SELECT count(*) FROM connections WHERE name = $1 AND kind = 'gocardless'`, name).Scan(&n); err != nil || n != 1 {
		return fmt.Errorf("%d connections %s in the database (%v)", n, name, err)
	}
	if err := b.Shot("connections"); err != nil {
		return err
	}
	return nil
}

// viewerRefused adds a viewer as mlcctl users add does, signs in as her
// in a browser of her own, and finds no action offered to her; a POST she
// forges with her own CSRF token is refused all the same.
func (j *consoleJourney) viewerRefused(ctx context.Context, s *simulators, admin *browser.Browser) error {
	const name = "vera"
	password := rand.Text()
	if _, err := users.NewStore(s.db).Add(ctx, users.New{Name: name, Role: users.Viewer, Password: secrets.NewValue(password), Actor: "mlc-demo journey"}); err != nil {
		return err
	}
	if err := admin.Run("the users", chromedp.Click(`nav[aria-label="Main"] a[href="/users"]`, chromedp.ByQuery), chromedp.WaitVisible("main table", chromedp.ByQuery)); err != nil {
		return err
	}
	if err := admin.Expect("the users", s.console.name, "admin", name, "viewer"); err != nil {
		return err
	}
	if err := admin.Shot("users"); err != nil {
		return err
	}

	v, err := j.browser(ctx, s)
	if err != nil {
		return err
	}
	defer v.Close()
	if err := v.SignIn(name, password); err != nil {
		return err
	}
	for page, want := range map[string]int{"/exceptions": 1, "/connections": 0} { // Filter only; nothing
		var buttons int
		if err := v.Run("the viewer's "+page, chromedp.Navigate(v.URL+page), chromedp.WaitVisible("main table", chromedp.ByQuery),
			chromedp.Evaluate(`document.querySelectorAll("main button").length`, &buttons)); err != nil {
			return err
		}
		if buttons != want {
			return fmt.Errorf("a viewer sees %d buttons on %s, want %d", buttons, page, want)
		}
	}
	// The form the page does not offer, forged with the session's own
	// cookie and CSRF token (from the sign-out form), from outside the
	// page (its Content-Security-Policy lets no script send it): the role
	// is checked, not only the token.
	var token string
	var cookies []*network.Cookie
	if err := v.Run("the viewer's session", chromedp.Value(`form.who input[name="csrf_token"]`, &token, chromedp.ByQuery),
		chromedp.ActionFunc(func(ctx context.Context) (err error) {
			cookies, err = network.GetCookies().WithURLs([]string{v.URL + "/"}).Do(ctx)
			return err
		})); err != nil {
		return err
	}
	form := url.Values{"csrf_token": {token}, "name": {"gc-forged"}, "kind": {"gocardless"}, "base_url": {s.gc.URL}, "secret_access_token": {gcToken}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, v.URL+"/connections", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	for _, c := range cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if want := "refused: this needs the admin role, and " + name + " is a viewer"; resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), want) {
		return fmt.Errorf("a viewer's forged POST /connections: %s %s", resp.Status, body)
	}
	var n int
	if err := s.db.QueryRow(ctx, `SELECT count(*) FROM connections WHERE name = 'gc-forged'`).Scan(&n); err != nil || n != 0 {
		return fmt.Errorf("the forged connection is in the database (%d, %v)", n, err)
	}
	if err := v.Run("the viewer opens users", chromedp.Navigate(v.URL+"/users"), chromedp.WaitVisible(".error", chromedp.ByQuery)); err != nil {
		return err
	}
	if err := v.Expect("refused", "refused: this needs the admin role, and "+name+" is a viewer"); err != nil {
		return err
	}
	return v.Shot("refused")
}

// oidcSignIn signs in with a company account in a browser of its own,
// through the provider's login form, with the keyboard; the console
// creates the account with the role its groups give.
func (j *consoleJourney) oidcSignIn(ctx context.Context, s *simulators, _ *browser.Browser) error {
	b, err := j.browser(ctx, s)
	if err != nil {
		return err
	}
	defer b.Close()
	if err := b.Run("the sign-in page", chromedp.Navigate(b.URL+"/login"), chromedp.WaitVisible("a.button", chromedp.ByQuery)); err != nil {
		return err
	}
	if err := b.Run("sign in with the company account",
		chromedp.Focus(`//a[text()="Sign in with your company account"]`, chromedp.BySearch),
		chromedp.KeyEvent(kb.Enter),
		oidcprovider.LogIn("olga", oidcPassword),
		chromedp.WaitVisible(`nav[aria-label="Main"]`, chromedp.ByQuery)); err != nil {
		return err
	}
	var who string
	if err := b.Run("who", chromedp.Text(".who span", &who, chromedp.ByQuery)); err != nil {
		return err
	}
	if want := oidcOperator + " (operator)"; who != want {
		return fmt.Errorf("signed in through the provider as %q, want %q", who, want)
	}
	var n int
	if err := s.db.QueryRow(ctx, `SELECT count(*) FROM console_users WHERE name = $1 AND role = 'operator' AND password_hash IS NULL`, oidcOperator).Scan(&n); err != nil || n != 1 {
		return fmt.Errorf("%d accounts for %s (%v)", n, oidcOperator, err)
	}
	return nil
}

// collectionPage is the console's page of one ERP document.
func collectionPage(b *browser.Browser, conn, company, invoiceID string) string {
	return b.URL + "/collections/" + url.PathEscape(conn) + "/" + url.PathEscape(company) + "/" + url.PathEscape(invoiceID)
}

// column reads the first column of q's rows as text.
func column(ctx context.Context, s *simulators, q string) ([]string, error) {
	rows, err := s.db.Query(ctx, q)
	if err != nil {
		return nil, err
	}
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
