package web_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ml-connector/ml-connector/platform/testsupport"
	headless "github.com/ml-connector/ml-connector/platform/testsupport/browser"
)

// chromium finds Debian's Chromium. Outside CI a machine without it skips
// the browser journeys, saying so; with MLC_BROWSER_REQUIRED set (.ci/run
// sets it) its absence fails them.
func chromium(t *testing.T) string {
	t.Helper()
	p, found := testsupport.Chromium(t)
	if !found {
		t.Skip("browser journeys skipped: Chromium is not installed (apt-get install -y chromium)")
	}
	return p
}

// browserSession is one browser (its own profile and cookies) on the
// world's console, failing the test on any error.
type browserSession struct {
	t   *testing.T
	b   *headless.Browser
	url string
}

func (w *world) chrome(t *testing.T) *browserSession {
	t.Helper()
	b, err := headless.Start(context.Background(), chromium(t), w.Srv.URL, 90*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	b.Shots = headless.ScreenshotDir(filepath.Join("..", "..", "..", "..", "docs", "console"))
	return &browserSession{t: t, b: b, url: b.URL}
}

func (s *browserSession) run(what string, actions ...chromedp.Action) {
	s.t.Helper()
	if err := s.b.Run(what, actions...); err != nil {
		s.t.Fatal(err)
	}
}

func (s *browserSession) expect(what string, wants ...string) {
	s.t.Helper()
	if err := s.b.Expect(what, wants...); err != nil {
		s.t.Error(err)
	}
}

// shot writes a screenshot into docs/console/ with MLC_SCREENSHOTS set.
// The README's screenshots come from the journeys through the demo stack
// (cmd/mlc-demo), with real data; only the bulk confirmation, which those
// do not reach, comes from here.
func (s *browserSession) shot(name string) {
	s.t.Helper()
	if err := s.b.Shot(name); err != nil {
		s.t.Fatal(err)
	}
}

// signIn fills the form with the keyboard, as a person would.
func (s *browserSession) signIn(name, password string) {
	s.t.Helper()
	if err := s.b.SignIn(name, password); err != nil {
		s.t.Fatal(err)
	}
}

func TestBrowserJourneys(t *testing.T) {
	w := newWorld(t)
	w.exec(`INSERT INTO poll_state (connection_id, entity, watermark_time) SELECT id, 'invoices', now() FROM connections WHERE name = 'ifs-acme'`)
	b := w.chrome(t)

	// Sign in.
	b.run("open sign-in", chromedp.Navigate(b.url+"/"), chromedp.WaitVisible("#password", chromedp.ByQuery))
	b.signIn("alice", adminPass)
	b.expect("overview", "Overview", "ifs-acme / 10", "GBP 4,310.00", "4 open exceptions need someone")

	// See the exceptions, each said in plain words.
	b.run("open exceptions", chromedp.Click(`a[href="/exceptions"]`, chromedp.ByQuery), chromedp.WaitVisible("table.queue", chromedp.ByQuery))
	b.expect("exceptions", "4 matching", "failed at the customer's bank", "Replay it: GoCardless tries the payment again",
		"Invoice INV-BAD from ifs-acme could not be collected as sent")

	// Open a collection and read its timeline.
	b.run("open INV-310", chromedp.Click(`//a[text()="INV-310"]`, chromedp.BySearch), chromedp.WaitVisible("#audit-status", chromedp.ByQuery))
	b.expect("collection", "Invoice INV-310", "GBP 310.00", "insufficient_funds", "Timeline")

	// Replay the failed payment from its page: a payment is made at
	// GoCardless, and the timeline tells it, verified.
	b.run("replay INV-310", chromedp.Click(`//button[text()="Replay this payment"]`, chromedp.BySearch),
		chromedp.WaitVisible(".flash", chromedp.ByQuery))
	b.expect("replayed", "Replayed INV-310", "Why: console:alice: new payment, attempt 2", "Audit trail verified")
	if n := len(w.Sim.Sim.Payments()); n != 1 {
		t.Errorf("GoCardless has %d payments after the replay, want 1", n)
	}

	// Escalate with a note; the note and its author show on the queue.
	b.run("escalate INV-BAD",
		chromedp.Navigate(b.url+"/exceptions"),
		chromedp.SendKeys(`input[id="esc-exception:1"]`, "AR to correct the amount in IFS", chromedp.ByQuery),
		chromedp.Click(`//tr[@id="exception:1"]//button[text()="Escalate"]`, chromedp.BySearch),
		chromedp.WaitVisible(".flash", chromedp.ByQuery),
		chromedp.Navigate(b.url+"/exceptions?status=escalated"),
		chromedp.WaitVisible("table.queue", chromedp.ByQuery))
	b.expect("escalated", "console:alice", "AR to correct the amount in IFS", "Escalated: waiting for whoever it was handed to")

	// A bulk replay states exactly what it will do before doing it.
	b.run("bulk review",
		chromedp.Navigate(b.url+"/exceptions?status=all"),
		chromedp.WaitVisible("table.queue", chromedp.ByQuery),
		chromedp.Click(`//tr[.//a[text()="INV-4000"]]//input[@type="checkbox"]`, chromedp.BySearch),
		chromedp.Click(`//tr[@id="exception:1"]//input[@type="checkbox"]`, chromedp.BySearch),
		chromedp.Click(`//button[text()="Review…"]`, chromedp.BySearch),
		chromedp.WaitVisible("#summary", chromedp.ByQuery))
	b.expect("bulk confirmation", "This will retry 1 payment totalling GBP 4,000.00; 1 selected item cannot be replayed and will be left as it is.")
	b.shot("confirm")
	b.run("bulk confirm", chromedp.Click(`//button[starts-with(text(), "Yes, retry 1 payment")]`, chromedp.BySearch),
		chromedp.WaitVisible(".flash", chromedp.ByQuery))
	b.expect("bulk done", "Done: 1 of 1 succeeded")
	if n := len(w.Sim.Sim.Payments()); n != 2 {
		t.Errorf("GoCardless has %d payments after the bulk replay, want 2", n)
	}

	// Add a connection and ping it: each step is shown.
	b.run("add a connection",
		chromedp.Navigate(b.url+"/connections"),
		chromedp.SendKeys("#c-name", "gc-sandbox", chromedp.ByQuery),
		chromedp.SetValue("#c-kind", "gocardless", chromedp.ByQuery),
		chromedp.SendKeys("#c-base", w.Sim.URL, chromedp.ByQuery),
		chromedp.SendKeys("#c-secret-gc", gcToken, chromedp.ByQuery),
		chromedp.Click(`//button[text()="Add connection"]`, chromedp.BySearch),
		chromedp.WaitVisible(".flash", chromedp.ByQuery))
	b.expect("added", "Added gocardless connection gc-sandbox", "access_token (encrypted)")
	b.run("ping it", chromedp.Click(`button[aria-label="Ping gc-sandbox"]`, chromedp.ByQuery), chromedp.WaitVisible(".ping", chromedp.ByQuery))
	b.expect("ping", "Ping of gc-sandbox: it works", "access token accepted", "creditors CR")
	b.run("users", chromedp.Click(`a[href="/users"]`, chromedp.ByQuery), chromedp.WaitVisible("table", chromedp.ByQuery))
	b.expect("users", "alice", "admin", "vera", "viewer")

	// A viewer sees the pages but is refused an admin action.
	v := w.chrome(t)
	v.signIn("vera", viewerPass)
	v.run("viewer's exceptions", chromedp.Navigate(v.url+"/exceptions"), chromedp.WaitVisible("table.queue", chromedp.ByQuery))
	var buttons int
	v.run("count buttons", chromedp.Evaluate(`document.querySelectorAll("main button").length`, &buttons))
	if buttons != 1 { // Filter only: no Replay, Escalate, Resolve or bulk action
		t.Errorf("a viewer sees %d buttons on the queue, want only Filter", buttons)
	}
	v.run("viewer opens users", chromedp.Navigate(v.url+"/users"), chromedp.WaitVisible(".error", chromedp.ByQuery))
	v.expect("refused", "refused: this needs the admin role, and vera is a viewer")
	if n := w.count(`SELECT count(*) FROM connections WHERE name = 'gc-sandbox'`); n != 1 {
		t.Errorf("%d gc-sandbox connections", n)
	}
}
