package web_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/ml-connector/ml-connector/platform/testsupport"
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

// screenshotDir is where journeys write a screenshot of every page, when
// MLC_SCREENSHOTS is set (docs/console/ of the repository), so that a test
// run does not change tracked files unless asked to.
func screenshotDir() string {
	if os.Getenv("MLC_SCREENSHOTS") == "" {
		return ""
	}
	return filepath.Join("..", "..", "..", "..", "docs", "console")
}

// session is one browser (its own profile and cookies).
type browserSession struct {
	t   *testing.T
	ctx context.Context
	url string
}

func (w *world) chrome(t *testing.T) *browserSession {
	t.Helper()
	// Not t.TempDir: Chromium may still be writing its profile while it
	// exits, which would fail the test's cleanup.
	profile, err := os.MkdirTemp("", "mlc-console-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		// The test server's certificate is its own; the cookies are
		// Secure, so the console is only usable over TLS.
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.WindowSize(1400, 1000),
		chromedp.UserDataDir(profile),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() {
		_ = chromedp.Cancel(ctx) // closes the browser and waits for it
		cancelT()
		cancelC()
		cancelA()
		_ = os.RemoveAll(profile)
	})
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return &browserSession{t: t, ctx: ctx, url: w.Srv.URL}
}

func (s *browserSession) run(what string, actions ...chromedp.Action) {
	s.t.Helper()
	if err := chromedp.Run(s.ctx, actions...); err != nil {
		s.t.Fatalf("%s: %v", what, err)
	}
}

// text returns the visible text of the page's main element.
func (s *browserSession) text() string {
	s.t.Helper()
	var txt string
	s.run("read the page", chromedp.Text("main", &txt, chromedp.ByQuery))
	return txt
}

func (s *browserSession) expect(what string, wants ...string) {
	s.t.Helper()
	txt := s.text()
	for _, want := range wants {
		if !strings.Contains(txt, want) {
			s.t.Errorf("%s: the page does not say %q:\n%s", what, want, txt)
		}
	}
}

func (s *browserSession) shot(name string) {
	s.t.Helper()
	dir := screenshotDir()
	if dir == "" {
		return
	}
	var png []byte
	s.run("screenshot "+name, chromedp.FullScreenshot(&png, 100))
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		s.t.Fatal(err)
	}
}

// signIn fills the form with the keyboard, as a person would: type the
// name, Tab to the password, type it, Enter.
func (s *browserSession) signIn(name, password string) {
	s.t.Helper()
	s.run("sign in as "+name,
		chromedp.Navigate(s.url+"/login"),
		chromedp.WaitVisible("#name", chromedp.ByQuery),
		chromedp.Focus("#name", chromedp.ByQuery),
		chromedp.KeyEvent(name),
		chromedp.KeyEvent(kb.Tab),
		chromedp.KeyEvent(password),
		chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(`nav[aria-label="Main"]`, chromedp.ByQuery),
	)
}

func TestBrowserJourneys(t *testing.T) {
	w := newWorld(t)
	w.exec(`INSERT INTO poll_state (connection_id, entity, watermark_time) SELECT id, 'invoices', now() FROM connections WHERE name = 'ifs-acme'`)
	b := w.chrome(t)

	// Sign in (the form shot before).
	b.run("open sign-in", chromedp.Navigate(b.url+"/"), chromedp.WaitVisible("#password", chromedp.ByQuery))
	b.shot("login")
	b.signIn("alice", adminPass)
	b.expect("overview", "Overview", "ifs-acme / 10", "GBP 4,310.00", "4 open exceptions need someone")
	b.shot("overview")

	// See the exceptions, each said in plain words.
	b.run("open exceptions", chromedp.Click(`a[href="/exceptions"]`, chromedp.ByQuery), chromedp.WaitVisible("table.queue", chromedp.ByQuery))
	b.expect("exceptions", "4 matching", "failed at the customer's bank", "Replay it: GoCardless tries the payment again",
		"Invoice INV-BAD from ifs-acme could not be collected as sent")
	b.shot("exceptions")

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
	b.shot("collection")

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
	b.shot("connections")
	b.run("users", chromedp.Click(`a[href="/users"]`, chromedp.ByQuery), chromedp.WaitVisible("table", chromedp.ByQuery))
	b.expect("users", "alice", "admin", "vera", "viewer")
	b.shot("users")

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
	v.shot("refused")
	if n := w.count(`SELECT count(*) FROM connections WHERE name = 'gc-sandbox'`); n != 1 {
		t.Errorf("%d gc-sandbox connections", n)
	}
}
