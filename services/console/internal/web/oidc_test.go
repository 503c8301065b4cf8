package web_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/ml-connector/ml-connector/platform/secrets"
	"github.com/ml-connector/ml-connector/platform/testsupport/oidcprovider"
	"github.com/ml-connector/ml-connector/services/console/internal/web"
	"github.com/ml-connector/ml-connector/services/console/users"
)

// The provider's people: ann is in the ops group, bob in none the console
// maps, eve's e-mail address is not verified.
const (
	oidcClientSecret = "oidc-client-secret-never-shown-42"
	oidcPassword     = "provider-password-never-shown"
)

var oidcPeople = map[string]oidcprovider.Person{
	"ann": {Email: "ann@example.com", Verified: true, Groups: []string{"staff", "mlc-ops"}},
	"bob": {Email: "bob@example.com", Verified: true, Groups: []string{"staff"}},
	"eve": {Email: "eve@example.com", Verified: false, Groups: []string{"mlc-admins"}},
}

// oidcWorld is a world whose console offers sign-in through a provider:
// ops map to operators, mlc-admins to admins.
func oidcWorld(t *testing.T) (*world, *httptest.Server) {
	var idp *httptest.Server
	w := newWorldWith(t, func(consoleURL string) *web.OIDC {
		idp = oidcprovider.Start(t, oidcprovider.Client{ID: "console", Secret: oidcClientSecret, RedirectURL: consoleURL + "/auth/oidc/callback"},
			oidcPassword, oidcPeople)
		o, err := web.NewOIDC(web.OIDCConfig{Issuer: idp.URL, ClientID: "console", ClientSecret: secrets.NewValue(oidcClientSecret),
			RedirectURL: consoleURL + "/auth/oidc/callback", Scopes: []string{"email", "profile"},
			NameClaim: "email", RoleClaim: "groups", Roles: map[string]users.Role{"mlc-ops": users.Operator, "mlc-admins": users.Admin},
			HTTPClient: idp.Client()})
		if err != nil {
			t.Fatal(err)
		}
		return o
	})
	t.Cleanup(func() {
		for _, s := range []string{oidcClientSecret, oidcPassword} {
			if strings.Contains(w.log.String(), s) {
				t.Errorf("the log contains a secret")
			}
		}
	})
	return w, idp
}

var loginFormID = regexp.MustCompile(`name="id" value="([^"]+)"`)

// oidcSignIn goes from the console's sign-in link through the provider's
// login form and back, and returns the last answer.
func (b *browser) oidcSignIn(idp, user string, tamper func(callback *url.URL)) (int, string) {
	b.w.t.Helper()
	page := b.get("/auth/oidc?next=/exceptions", 200) // redirected to the provider's login form
	m := loginFormID.FindStringSubmatch(page)
	if m == nil {
		b.w.t.Fatalf("no login form at the provider:\n%s", page)
	}
	// The provider's form posts to itself and redirects back to the
	// console's callback; stop there to look at (or tamper with) it.
	keep := b.c.CheckRedirect
	var callback *url.URL
	b.c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Path == "/auth/oidc/callback" {
			callback = req.URL
			return http.ErrUseLastResponse
		}
		return nil
	}
	resp, err := b.c.PostForm(idp+"/login/username", url.Values{"id": {m[1]}, "username": {user}, "password": {oidcPassword}})
	b.c.CheckRedirect = keep
	if err != nil {
		b.w.t.Fatal(err)
	}
	resp.Body.Close()
	if callback == nil {
		b.w.t.Fatalf("the provider did not send the browser back: %s", resp.Status)
	}
	if tamper != nil {
		tamper(callback)
	}
	req, _ := http.NewRequest(http.MethodGet, callback.String(), nil)
	return b.do(req)
}

func TestOIDCSignIn(t *testing.T) {
	w, idp := oidcWorld(t)

	// The sign-in page offers it; ann's groups make her an operator,
	// created on her first sign-in, and she lands where she was going.
	b := w.browser()
	if page := b.get("/login", 200); !strings.Contains(page, "Sign in with your company account") {
		t.Fatal("the sign-in page does not offer the company account")
	}
	status, body := b.oidcSignIn(idp.URL, "ann", nil)
	if status != 200 || !strings.Contains(body, "<h1>Exceptions</h1>") || !strings.Contains(body, "ann@example.com (operator)") {
		t.Fatalf("ann's sign-in: %d\n%s", status, body)
	}
	if n := w.count(`SELECT count(*) FROM console_users WHERE name = 'ann@example.com' AND role = 'operator' AND password_hash IS NULL`); n != 1 {
		t.Errorf("ann's account: %d rows", n)
	}
	if n := w.count(`SELECT count(*) FROM audit_log WHERE aggregate_id = 'ann@example.com' AND action IN ('user.added', 'user.signed_in')`); n != 2 {
		t.Errorf("%d audit records of ann's first sign-in, want 2", n)
	}
	csrf := field(b.get("/exceptions", 200), "csrf_token")
	if status, _ := b.post("/exceptions/escalate", url.Values{"csrf_token": {csrf}, "ref": {"exception:1"}, "note": {"to AR"}}); status != 200 {
		t.Errorf("an operator signed in through the provider cannot act: %d", status)
	}

	// The provider's groups stay the truth: demoted there, demoted here.
	w.exec(`UPDATE console_users SET role = 'admin' WHERE name = 'ann@example.com'`)
	if status, body := w.browser().oidcSignIn(idp.URL, "ann", nil); status != 200 || !strings.Contains(body, "ann@example.com (operator)") {
		t.Errorf("second sign-in did not take the role from the groups: %d", status)
	}

	// bob's groups map to nothing: refused until an admin adds him.
	status, body = w.browser().oidcSignIn(idp.URL, "bob", nil)
	if status != http.StatusForbidden || !strings.Contains(body, "bob@example.com has no role in this console") {
		t.Errorf("bob without a role: %d\n%s", status, body)
	}
	if _, err := users.NewStore(w.DB).Add(t.Context(), users.New{Name: "bob@example.com", Role: users.Viewer, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	if status, body := w.browser().oidcSignIn(idp.URL, "bob", nil); status != 200 || !strings.Contains(body, "bob@example.com (viewer)") {
		t.Errorf("bob added as a viewer: %d\n%s", status, body)
	}

	// An unverified e-mail address names no one, whatever its groups.
	status, body = w.browser().oidcSignIn(idp.URL, "eve", nil)
	if status != http.StatusForbidden || !strings.Contains(body, "is not verified") {
		t.Errorf("eve: %d\n%s", status, body)
	}

	// A callback with another state, or a code replayed in another
	// browser, signs no one in.
	status, body = w.browser().oidcSignIn(idp.URL, "ann", func(u *url.URL) {
		q := u.Query()
		q.Set("state", "forged")
		u.RawQuery = q.Encode()
	})
	if status != http.StatusBadRequest || !strings.Contains(body, "did not start here") {
		t.Errorf("forged state: %d\n%s", status, body)
	}
	var stolen *url.URL
	w.browser().oidcSignIn(idp.URL, "ann", func(u *url.URL) { c := *u; stolen = &c })
	other := w.browser()
	other.get("/login", 200)
	req, _ := http.NewRequest(http.MethodGet, stolen.String(), nil)
	if status, _ := other.do(req); status != http.StatusBadRequest {
		t.Errorf("a code used in another browser: %d, want 400", status)
	}
	// And the code itself, replayed with its own browser's state, is
	// refused by the provider (the first exchange used it).
	status, body = w.browser().oidcSignIn(idp.URL, "ann", func(u *url.URL) { *u = *stolen })
	if status == 200 {
		t.Errorf("a replayed callback signed someone in:\n%s", body)
	}
}

func TestOIDCSettingsOff(t *testing.T) {
	w := newWorld(t)
	b := w.browser()
	if page := b.get("/login", 200); strings.Contains(page, "company account") {
		t.Error("sign-in offers a provider that is not configured")
	}
	b.get("/auth/oidc", http.StatusNotFound)
	b.get("/auth/oidc/callback?code=x&state=y", http.StatusNotFound)
}

// TestBrowserOIDC: a person signs in with their company account in
// Chromium, through the provider's own login form, with the keyboard.
func TestBrowserOIDC(t *testing.T) {
	w, _ := oidcWorld(t)
	b := w.chrome(t)
	b.run("sign-in page", chromedp.Navigate(b.url+"/login"), chromedp.WaitVisible("a.button", chromedp.ByQuery))
	b.run("company sign-in",
		chromedp.Click(`//a[text()="Sign in with your company account"]`, chromedp.BySearch),
		oidcprovider.LogIn("ann", oidcPassword),
		chromedp.WaitVisible(`nav[aria-label="Main"]`, chromedp.ByQuery))
	b.expect("signed in", "Overview", "ifs-acme / 10")
	var who string
	b.run("who", chromedp.Text(".who span", &who, chromedp.ByQuery))
	if who != "ann@example.com (operator)" {
		t.Errorf("signed in as %q", who)
	}
}
