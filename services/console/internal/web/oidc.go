package web

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/ml-connector/ml-connector/platform/secrets"
	"github.com/ml-connector/ml-connector/services/console/users"
)

// OIDCConfig is sign-in through the company's OpenID provider: the
// authorization code flow with PKCE (S256), state and nonce, the ID token
// verified against the provider's published keys, and the person's role
// taken from a claim (typically their groups).
type OIDCConfig struct {
	// Issuer is the provider's issuer URL; its discovery document is read
	// from Issuer + "/.well-known/openid-configuration".
	Issuer       string
	ClientID     string
	ClientSecret secrets.Value
	// RedirectURL is this console's callback as the provider knows it:
	// https://<console>/auth/oidc/callback.
	RedirectURL string
	// Scopes asked for besides openid (email, profile, groups, ...).
	Scopes []string
	// NameClaim names the console account: "email" (then the provider
	// must say email_verified) or another claim such as
	// preferred_username.
	NameClaim string
	// RoleClaim holds the person's groups or roles (a string or a list of
	// strings); Roles maps its values to console roles, and the highest
	// wins. A person none of whose values maps signs in only if an admin
	// added them (mlcctl users add --oidc), with that account's role.
	RoleClaim string
	Roles     map[string]users.Role
	// HTTPClient reaches the provider (nil: one with a 10 s timeout).
	HTTPClient *http.Client
}

// OIDC signs people in through the provider. The provider's discovery
// document is read on first use and kept, so that a provider that is down
// when the console starts does not stop local sign-in.
type OIDC struct {
	cfg    OIDCConfig
	client *http.Client

	mu       sync.Mutex
	provider *oidc.Provider
	oauth    *oauth2.Config
	verifier *oidc.IDTokenVerifier
}

// NewOIDC checks cfg and returns sign-in through its provider.
func NewOIDC(cfg OIDCConfig) (*OIDC, error) {
	if cfg.Issuer == "" || cfg.ClientID == "" || cfg.RedirectURL == "" || cfg.NameClaim == "" || cfg.RoleClaim == "" {
		return nil, errors.New("oidc: issuer, client id, redirect URL, name claim and role claim are all needed")
	}
	u, err := url.Parse(cfg.RedirectURL)
	if err != nil || u.Path != oidcCallbackPath {
		return nil, fmt.Errorf("oidc: the redirect URL must end in %s", oidcCallbackPath)
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	return &OIDC{cfg: cfg, client: client}, nil
}

const oidcCallbackPath = "/auth/oidc/callback"

// oidcCookie carries the flow's state, nonce and PKCE verifier from the
// start to the callback in the browser that started it. SameSite=Lax: the
// provider sends the browser back with a top-level GET, which Lax allows.
const oidcCookie = "__Host-mlc_oidc"

// maxOIDCFlow is how long a person has to sign in at the provider.
const maxOIDCFlow = 10 * time.Minute

type oidcFlow struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Next     string `json:"x"`
}

// setup reads the provider's discovery document once it is reachable.
// The provider is built on a context that outlives the request, because
// go-oidc fetches the signing keys with it later (and again when the
// provider rotates them); the client's timeout bounds each fetch.
func (o *OIDC) setup() (*oauth2.Config, *oidc.IDTokenVerifier, *oidc.Provider, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.provider == nil {
		p, err := oidc.NewProvider(oidc.ClientContext(context.Background(), o.client), o.cfg.Issuer)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("oidc discovery of %s: %w", o.cfg.Issuer, err)
		}
		scopes := []string{oidc.ScopeOpenID}
		for _, s := range o.cfg.Scopes {
			if s != oidc.ScopeOpenID {
				scopes = append(scopes, s)
			}
		}
		o.provider = p
		o.oauth = &oauth2.Config{ClientID: o.cfg.ClientID, ClientSecret: o.cfg.ClientSecret.Reveal(),
			Endpoint: p.Endpoint(), RedirectURL: o.cfg.RedirectURL, Scopes: scopes}
		o.verifier = p.Verifier(&oidc.Config{ClientID: o.cfg.ClientID})
	}
	return o.oauth, o.verifier, o.provider, nil
}

// oidcStart sends the browser to the provider with a fresh state, nonce
// and PKCE challenge, kept in a short-lived cookie for the callback.
func (s *Server) oidcStart(w http.ResponseWriter, r *http.Request) {
	o := s.cfg.OIDC
	if o == nil {
		http.NotFound(w, r)
		return
	}
	conf, _, _, err := o.setup()
	if err != nil {
		s.log.WarnContext(r.Context(), "oidc provider unreachable", "error", err)
		s.showLogin(w, r, http.StatusBadGateway, "", "Your company's sign-in service could not be reached. Try again shortly, or sign in with a console password.")
		return
	}
	f := oidcFlow{State: randomToken(), Nonce: randomToken(), Verifier: oauth2.GenerateVerifier(), Next: localPath(r.URL.Query().Get("next"), "/")}
	raw, _ := json.Marshal(f)
	http.SetCookie(w, &http.Cookie{Name: oidcCookie, Value: base64.RawURLEncoding.EncodeToString(raw), Path: "/",
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: int(maxOIDCFlow.Seconds())})
	http.Redirect(w, r, conf.AuthCodeURL(f.State, oidc.Nonce(f.Nonce), oauth2.S256ChallengeOption(f.Verifier)), http.StatusFound)
}

// oidcCallback finishes the flow: the state must be this browser's, the
// code is exchanged with the PKCE verifier, the ID token's signature,
// issuer, audience, expiry and nonce are verified, and the person's name
// and role come from its claims (or the provider's userinfo for claims the
// token leaves out). Neither the code nor any token is logged or kept.
func (s *Server) oidcCallback(w http.ResponseWriter, r *http.Request) {
	o := s.cfg.OIDC
	if o == nil {
		http.NotFound(w, r)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: oidcCookie, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: -1})
	q := r.URL.Query()
	f, ok := readFlow(r)
	if !ok || q.Get("state") == "" || subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(f.State)) != 1 {
		s.log.InfoContext(r.Context(), "oidc sign-in refused", "reason", "state does not match this browser's", "client", s.clientAddr(r))
		s.showLogin(w, r, http.StatusBadRequest, "", "That sign-in did not start here, or took too long. Please try again.")
		return
	}
	if e := q.Get("error"); e != "" {
		s.log.InfoContext(r.Context(), "oidc sign-in refused by the provider", "error", truncate(e, 100), "client", s.clientAddr(r))
		s.showLogin(w, r, http.StatusForbidden, "", "Your company's sign-in service refused: "+truncate(e, 100)+".")
		return
	}
	name, role, err := o.identify(r.Context(), q.Get("code"), f)
	if err != nil {
		s.log.WarnContext(r.Context(), "oidc sign-in refused", "reason", err, "client", s.clientAddr(r))
		s.showLogin(w, r, http.StatusForbidden, "", "Signing in with your company account did not work: "+plainOIDC(err)+".")
		return
	}
	u, err := s.users.SignInExternal(r.Context(), name, role, "oidc:"+o.cfg.Issuer)
	switch {
	case errors.Is(err, users.ErrNotFound):
		s.log.InfoContext(r.Context(), "oidc sign-in refused", "user", name, "reason", "no console role")
		s.showLogin(w, r, http.StatusForbidden, "", name+" has no role in this console: ask an admin to give you one.")
		return
	case errors.Is(err, users.ErrLocalAccount), errors.Is(err, users.ErrDisabled):
		s.log.InfoContext(r.Context(), "oidc sign-in refused", "user", name, "reason", err)
		s.showLogin(w, r, http.StatusForbidden, "", name+" cannot sign in with a company account here.")
		return
	case err != nil:
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	s.startSession(w, r, u, "oidc", f.Next)
}

func readFlow(r *http.Request) (oidcFlow, bool) {
	var f oidcFlow
	c, err := r.Cookie(oidcCookie)
	if err != nil || len(c.Value) > 1024 {
		return f, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil || json.Unmarshal(raw, &f) != nil || f.State == "" || f.Nonce == "" || f.Verifier == "" {
		return f, false
	}
	f.Next = localPath(f.Next, "/")
	return f, true
}

// oidcError is a refusal the person may read.
type oidcError struct{ msg string }

func (e *oidcError) Error() string { return e.msg }

func refuse(format string, args ...any) error { return &oidcError{fmt.Sprintf(format, args...)} }

func plainOIDC(err error) string {
	var e *oidcError
	if errors.As(err, &e) {
		return e.msg
	}
	return "the answer of your company's sign-in service could not be checked"
}

// identify exchanges code and returns the verified person's console name
// and the role their claims map to ("" when none does).
func (o *OIDC) identify(ctx context.Context, code string, f oidcFlow) (string, users.Role, error) {
	if code == "" || len(code) > 4096 {
		return "", "", refuse("no authorization code came back")
	}
	conf, verifier, provider, err := o.setup()
	if err != nil {
		return "", "", err
	}
	ctx = oidc.ClientContext(ctx, o.client) // oauth2 and go-oidc both read the client from here
	tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(f.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) { // its body is the provider's; say only what kind of refusal it was
			return "", "", fmt.Errorf("token exchange refused: %d %s", re.Response.StatusCode, re.ErrorCode)
		}
		return "", "", fmt.Errorf("token exchange: %w", err)
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok || raw == "" {
		return "", "", refuse("the sign-in service sent no ID token")
	}
	idt, err := verifier.Verify(ctx, raw)
	if err != nil {
		return "", "", fmt.Errorf("ID token: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(f.Nonce)) != 1 {
		return "", "", errors.New("ID token: nonce is not this sign-in's")
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return "", "", fmt.Errorf("ID token: %w", err)
		}
	}
	claims := map[string]any{}
	if err := idt.Claims(&claims); err != nil {
		return "", "", fmt.Errorf("ID token claims: %w", err)
	}
	// Providers put the profile, e-mail and groups in the ID token or
	// only behind userinfo: ask userinfo for what the token left out.
	_, hasName := claims[o.cfg.NameClaim]
	_, hasRole := claims[o.cfg.RoleClaim]
	if (!hasName || !hasRole) && provider.UserInfoEndpoint() != "" {
		ui, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			return "", "", fmt.Errorf("userinfo: %w", err)
		}
		if ui.Subject != idt.Subject { // OpenID Connect Core 5.3.2
			return "", "", errors.New("userinfo: subject differs from the ID token's")
		}
		more := map[string]any{}
		if err := ui.Claims(&more); err != nil {
			return "", "", fmt.Errorf("userinfo claims: %w", err)
		}
		for k, v := range more {
			if _, ok := claims[k]; !ok {
				claims[k] = v
			}
		}
	}
	name, err := o.name(claims)
	if err != nil {
		return "", "", err
	}
	return name, o.role(claims[o.cfg.RoleClaim]), nil
}

// name is the console account the claims name.
func (o *OIDC) name(claims map[string]any) (string, error) {
	name, _ := claims[o.cfg.NameClaim].(string)
	if name == "" {
		return "", refuse("your account has no %s", o.cfg.NameClaim)
	}
	if o.cfg.NameClaim == "email" {
		v := claims["email_verified"]
		if v != true && v != "true" { // some providers send it as a string
			return "", refuse("your e-mail address %s is not verified", truncate(name, 254))
		}
	}
	if !users.ValidName(name) {
		return "", refuse("%s cannot be a console account name", truncate(name, 254))
	}
	return name, nil
}

// maxGroups bounds the values of the role claim looked at.
const maxGroups = 1000

// role is the highest console role the role claim's values map to.
func (o *OIDC) role(v any) users.Role {
	var values []string
	switch t := v.(type) {
	case string:
		values = strings.Fields(t) // a space-separated list, as scope-like claims are
	case []any:
		for i, g := range t {
			if i == maxGroups {
				break
			}
			if s, ok := g.(string); ok {
				values = append(values, s)
			}
		}
	}
	var best users.Role
	for _, g := range values {
		if r, ok := o.cfg.Roles[g]; ok && (best == "" || r.Allows(best)) {
			best = r
		}
	}
	return best
}
