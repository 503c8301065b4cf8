package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/ml-connector/ml-connector/platform/testsupport"
)

// chromium finds Debian's Chromium, as the console's own browser journeys
// do: a machine without it skips the journey, saying so, unless
// MLC_BROWSER_REQUIRED is set (.ci/run sets it), when its absence fails.
func chromium(t *testing.T) string {
	t.Helper()
	p, found := testsupport.Chromium(t)
	if !found {
		t.Log("console journey skipped: Chromium is not installed (apt-get install -y chromium)")
	}
	return p
}

// consoleJourney walks through the demo's console in a browser while the
// stack is up, as an operator would after the run: sign in with the demo
// login, then check that each page shows what the database holds. It is
// a settled hook (the whole book is in), so every figure is final.
func consoleJourney(t *testing.T) func(ctx context.Context, s *simulators) error {
	chrome := chromium(t) // before the run: a skip or failure must not wait for the book
	return func(ctx context.Context, s *simulators) error {
		if chrome == "" {
			return nil
		}
		if s.console.url == "" {
			return errors.New("console journey: the demo did not say where its console is")
		}
		// Not t.TempDir: Chromium may still be writing its profile while
		// it exits, which would fail the test's cleanup.
		profile, err := os.MkdirTemp("", "mlc-demo-chromium-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(profile)
		actx, cancelA := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(chrome),
			chromedp.Flag("headless", true),
			chromedp.NoSandbox,
			chromedp.DisableGPU,
			chromedp.Flag("disable-background-networking", true),
			chromedp.Flag("disable-extensions", true),
			chromedp.Flag("disable-sync", true),
			chromedp.Flag("no-first-run", true),
			chromedp.Flag("disable-dev-shm-usage", true),
			chromedp.WindowSize(1400, 1000),
			chromedp.UserDataDir(profile),
		)...)
		defer cancelA()
		bctx, cancelB := chromedp.NewContext(actx)
		defer cancelB()
		bctx, cancelT := context.WithTimeout(bctx, 60*time.Second)
		defer cancelT()
		defer func() { _ = chromedp.Cancel(bctx) }() // closes the browser and waits for it
		b := &journey{ctx: bctx, url: s.console.url}
		return b.walk(ctx, s)
	}
}

type journey struct {
	ctx context.Context
	url string
}

func (b *journey) run(what string, actions ...chromedp.Action) error {
	if err := chromedp.Run(b.ctx, actions...); err != nil {
		return fmt.Errorf("console journey: %s: %w", what, err)
	}
	return nil
}

// expect reads the page's main element and says which of wants it lacks.
func (b *journey) expect(what string, wants ...string) error {
	var txt string
	if err := b.run("read "+what, chromedp.Text("main", &txt, chromedp.ByQuery)); err != nil {
		return err
	}
	var missing []string
	for _, want := range wants {
		if !strings.Contains(txt, want) {
			missing = append(missing, fmt.Sprintf("%q", want))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("console journey: %s does not say %s:\n%s", what, strings.Join(missing, ", "), txt)
	}
	return nil
}

func (b *journey) walk(ctx context.Context, s *simulators) error {
	// Sign in with the keyboard, by the form's labels: type the name, Tab
	// to the password, type it, Enter.
	if err := b.run("sign in as "+s.console.name,
		chromedp.Navigate(b.url+"/"),
		chromedp.WaitVisible(`//label[text()="Password"]`, chromedp.BySearch),
		chromedp.Click(`//label[text()="User name"]`, chromedp.BySearch),
		chromedp.KeyEvent(s.console.name),
		chromedp.KeyEvent(kb.Tab),
		chromedp.KeyEvent(s.console.password),
		chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(`nav[aria-label="Main"]`, chromedp.ByQuery),
	); err != nil {
		return err
	}

	// The overview lists every connection.
	var conns []string
	rows, err := s.db.Query(ctx, `SELECT name FROM connections ORDER BY name`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return err
		}
		conns = append(conns, name)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(conns) < 3 {
		return fmt.Errorf("console journey: the demo has only connections %v", conns)
	}
	if err := b.run("open the overview", chromedp.Click(`nav[aria-label="Main"] a[href="/"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`//h2[text()="Connections"]`, chromedp.BySearch)); err != nil {
		return err
	}
	if err := b.expect("the overview", append([]string{"Overview"}, conns...)...); err != nil {
		return err
	}

	// The queue lists what needs someone: the open exceptions and the
	// book's failed collections no exception speaks for (the book's
	// expected failures and charge-backs; the run fails on any other).
	var open int
	var docs []string
	rows, err = s.db.Query(ctx, `SELECT 'exception:' || id FROM exceptions WHERE status = 'open'
		UNION ALL
		SELECT c.invoice_id FROM collections c WHERE c.state IN ('failed', 'cancelled', 'charged_back', 'exception')
		  AND NOT EXISTS (SELECT 1 FROM exceptions x WHERE x.aggregate_id LIKE '%:' || c.company || ':' || c.invoice_id)`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return err
		}
		docs = append(docs, doc)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	open = len(docs)
	if err := b.run("open the exceptions", chromedp.Click(`nav[aria-label="Main"] a[href="/exceptions"]`, chromedp.ByQuery),
		chromedp.WaitVisible("table.queue", chromedp.ByQuery)); err != nil {
		return err
	}
	if err := b.expect("the exceptions queue", fmt.Sprintf("%d matching", open)); err != nil {
		return err
	}
	if open <= 10 { // all on the first page
		var shown string
		if err := b.run("read the queue", chromedp.Text("table.queue", &shown, chromedp.ByQuery)); err != nil {
			return err
		}
		for _, d := range docs {
			if !strings.HasPrefix(d, "exception:") && !strings.Contains(shown, d) {
				return fmt.Errorf("console journey: the queue does not show invoice %s:\n%s", d, shown)
			}
		}
	}
	var rowsShown int
	if err := b.run("count the queue", chromedp.Evaluate(`document.querySelectorAll("table.queue tbody tr[id]").length`, &rowsShown)); err != nil {
		return err
	}
	if rowsShown > open || (open > 0) != (rowsShown > 0) { // the first page of them

		return fmt.Errorf("console journey: the queue shows %d exceptions of the %d open", rowsShown, open)
	}

	// One collected invoice: its GoCardless payment and its timeline.
	var conn, company, invoiceID, invoiceNo, payment string
	if err := s.db.QueryRow(ctx, `SELECT k.name, c.company, c.invoice_id, c.invoice_no, c.gc_payment_id
		FROM collections c JOIN connections k ON k.id = c.connection_id
		WHERE c.state = 'paid_out' AND c.gc_payment_id IS NOT NULL ORDER BY c.id LIMIT 1`).Scan(&conn, &company, &invoiceID, &invoiceNo, &payment); err != nil {
		return fmt.Errorf("console journey: a collected invoice: %w", err)
	}
	page := b.url + "/collections/" + url.PathEscape(conn) + "/" + url.PathEscape(company) + "/" + url.PathEscape(invoiceID)
	var events int
	if err := b.run("open invoice "+invoiceNo, chromedp.Navigate(page), chromedp.WaitVisible("#audit-status", chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelectorAll("ol.timeline > li").length`, &events)); err != nil {
		return err
	}
	if events < 2 { // at least its creation and its payout
		return fmt.Errorf("console journey: invoice %s's timeline has %d events", invoiceNo, events)
	}
	if err := b.expect("invoice "+invoiceNo, "Invoice "+invoiceNo, "paid_out", payment, "Timeline", "Audit trail verified"); err != nil {
		return err
	}

	// The payouts page lists every payout stored.
	payouts, err := column(ctx, s, `SELECT gc_payout_id FROM payouts ORDER BY id`)
	if err != nil {
		return err
	}
	if len(payouts) == 0 {
		return errors.New("console journey: no payout stored to see")
	}
	if err := b.run("open the payouts", chromedp.Click(`nav[aria-label="Main"] a[href="/payouts"]`, chromedp.ByQuery),
		chromedp.WaitVisible("table.payouts", chromedp.ByQuery)); err != nil {
		return err
	}
	if err := b.expect("the payouts", payouts...); err != nil {
		return err
	}

	// The mandates page lists every customer still asked for a mandate
	// (the book's silent payers never authorise).
	waiting, err := column(ctx, s, `SELECT erp_customer_id FROM mandate_requests WHERE state IN ('requesting', 'awaiting_payer') ORDER BY id`)
	if err != nil {
		return err
	}
	if len(waiting) == 0 {
		return errors.New("console journey: no customer waits for a mandate")
	}
	if err := b.run("open the mandates", chromedp.Click(`nav[aria-label="Main"] a[href="/mandates"]`, chromedp.ByQuery),
		chromedp.WaitVisible("table.mandates", chromedp.ByQuery)); err != nil {
		return err
	}
	if err := b.expect("the mandates", waiting...); err != nil {
		return err
	}

	// The connections page names every connection.
	names, err := column(ctx, s, `SELECT name FROM connections ORDER BY id`)
	if err != nil {
		return err
	}
	if err := b.run("open the connections", chromedp.Click(`nav[aria-label="Main"] a[href="/connections"]`, chromedp.ByQuery),
		chromedp.WaitVisible("main table", chromedp.ByQuery)); err != nil {
		return err
	}
	return b.expect("the connections", names...)
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
