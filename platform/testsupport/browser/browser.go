// Package browser drives a headless Debian Chromium through chromedp for
// the console's browser journeys: those of the console's own test world
// and those through the demo stack share its start-up, sign-in, page
// reading and screenshots.
//
// Methods return errors rather than failing a test, because the demo's
// journeys run inside the demo (a settled hook), not on a test's
// goroutine.
package browser

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// Browser is one Chromium with its own profile (and so its own cookies),
// pointed at a console.
type Browser struct {
	// URL is the console's base URL, without a trailing slash.
	URL string
	// Shots is where Shot writes screenshots; empty: nowhere.
	Shots string

	ctx  context.Context
	stop func()
}

// Start starts Chromium (the binary at chrome, from testsupport.Chromium)
// for a console at url. Every action together must finish within
// timeout. Close stops it.
func Start(ctx context.Context, chrome, url string, timeout time.Duration) (*Browser, error) {
	// Not t.TempDir: Chromium may still be writing its profile while it
	// exits, which would fail a test's cleanup.
	profile, err := os.MkdirTemp("", "mlc-chromium-")
	if err != nil {
		return nil, err
	}
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
		// Test servers (the console's test world, an OpenID provider)
		// serve TLS with certificates of their own.
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.WindowSize(1400, 1000),
		chromedp.UserDataDir(profile),
	)...)
	bctx, cancelB := chromedp.NewContext(actx)
	bctx, cancelT := context.WithTimeout(bctx, timeout)
	b := &Browser{URL: strings.TrimSuffix(url, "/"), ctx: bctx, stop: func() {
		_ = chromedp.Cancel(bctx) // closes the browser and waits for it
		cancelT()
		cancelB()
		cancelA()
		_ = os.RemoveAll(profile)
	}}
	if err := chromedp.Run(bctx); err != nil {
		b.Close()
		return nil, fmt.Errorf("start chromium: %w", err)
	}
	return b, nil
}

// Close stops the browser and removes its profile.
func (b *Browser) Close() { b.stop() }

// Run runs actions, saying what they were for in an error.
func (b *Browser) Run(what string, actions ...chromedp.Action) error {
	if err := chromedp.Run(b.ctx, actions...); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// Text is the visible text of the page's main element.
func (b *Browser) Text() (string, error) {
	var txt string
	err := b.Run("read the page", chromedp.Text("main", &txt, chromedp.ByQuery))
	return txt, err
}

// Expect says which of wants the page's main element does not show.
func (b *Browser) Expect(what string, wants ...string) error {
	txt, err := b.Text()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	var missing []string
	for _, want := range wants {
		if !strings.Contains(txt, want) {
			missing = append(missing, fmt.Sprintf("%q", want))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s: the page does not say %s:\n%s", what, strings.Join(missing, ", "), txt)
	}
	return nil
}

// Shot writes a screenshot of the whole page as name.png into Shots,
// when set.
func (b *Browser) Shot(name string) error {
	if b.Shots == "" {
		return nil
	}
	var png []byte
	if err := b.Run("screenshot "+name, chromedp.FullScreenshot(&png, 100)); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(b.Shots, name+".png"), png, 0o644)
}

// SignIn signs in with a console password the way a person does with the
// keyboard: the name field found by its label, the name typed, Tab to the
// password, typed, Enter.
func (b *Browser) SignIn(name, password string) error {
	return b.Run("sign in as "+name,
		chromedp.Navigate(b.URL+"/login"),
		chromedp.WaitVisible(`//label[text()="Password"]`, chromedp.BySearch),
		chromedp.Click(`//label[text()="User name"]`, chromedp.BySearch),
		chromedp.KeyEvent(name),
		chromedp.KeyEvent(kb.Tab),
		chromedp.KeyEvent(password),
		chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(`nav[aria-label="Main"]`, chromedp.ByQuery),
	)
}

// ScreenshotDir is dir (docs/console/ of the repository, relative to the
// calling test's package) when MLC_SCREENSHOTS is set, else empty: a test
// run changes tracked files only when asked to.
func ScreenshotDir(dir string) string {
	if os.Getenv("MLC_SCREENSHOTS") == "" {
		return ""
	}
	return dir
}
