// Package oidcprovider starts a real OpenID provider for tests of sign-in
// through a company's identity provider: zitadel/oidc's example provider
// (discovery, JWKS, authorize with its own login form, token with PKCE,
// userinfo) over TLS, with one confidential web client registered and
// people whose groups it asserts, as a company's provider does.
package oidcprovider

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
	"golang.org/x/text/language"
)

// Person is someone who can sign in at the provider, by their user name
// (the key of the map given to Start) and the provider's password.
type Person struct {
	Email    string
	Verified bool // email_verified
	Groups   []string
}

// Client is the relying party registered at the provider: a confidential
// web client with one callback.
type Client struct {
	ID, Secret, RedirectURL string
}

// Start starts the provider over TLS on a loopback port; its URL is the
// issuer, and its Certificate what a client must trust. Everyone's
// password is password. It stops when t ends.
func Start(t testing.TB, client Client, password string, people map[string]Person) *httptest.Server {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	issuer := "https://" + ts.Listener.Addr().String()
	st := storage.NewStorageWithClients(peopleStore{people: people, password: password}, map[string]*storage.Client{
		client.ID: storage.WebClient(client.ID, client.Secret, client.RedirectURL),
	})
	ts.Config.Handler = exampleop.SetupServer(issuer, groupsStorage{Storage: st, people: people}, nil, false)
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return ts
}

type peopleStore struct {
	people   map[string]Person
	password string
}

func (s peopleStore) GetUserByID(id string) *storage.User {
	p, ok := s.people[id]
	if !ok {
		return nil
	}
	return &storage.User{ID: id, Username: id, Password: s.password, FirstName: id, LastName: "Example",
		Email: p.Email, EmailVerified: p.Verified, PreferredLanguage: language.English}
}
func (s peopleStore) GetUserByUsername(name string) *storage.User { return s.GetUserByID(name) }
func (peopleStore) ExampleClientID() string                       { return "service" }

// groupsStorage is the example provider's storage that also asserts each
// person's groups claim.
type groupsStorage struct {
	*storage.Storage
	people map[string]Person
}

func (s groupsStorage) SetUserinfoFromScopes(ctx context.Context, ui *zoidc.UserInfo, userID, clientID string, scopes []string) error {
	if err := s.Storage.SetUserinfoFromScopes(ctx, ui, userID, clientID, scopes); err != nil {
		return err
	}
	ui.AppendClaims("groups", s.people[userID].Groups)
	return nil
}

func (s groupsStorage) SetUserinfoFromToken(ctx context.Context, ui *zoidc.UserInfo, tokenID, subject, origin string) error {
	if err := s.Storage.SetUserinfoFromToken(ctx, ui, tokenID, subject, origin); err != nil {
		return err
	}
	ui.AppendClaims("groups", s.people[subject].Groups)
	return nil
}

// LogIn is a person filling in the provider's own login form in a
// browser, by keyboard as a person would: the form shows once the relying
// party sent the browser here, and submitting it sends the browser back
// to the party's callback.
func LogIn(username, password string) chromedp.Tasks {
	return chromedp.Tasks{
		chromedp.WaitVisible("#username", chromedp.ByQuery),
		chromedp.Focus("#username", chromedp.ByQuery),
		chromedp.KeyEvent(username),
		chromedp.KeyEvent(kb.Tab),
		chromedp.KeyEvent(password),
		chromedp.KeyEvent(kb.Enter),
	}
}
