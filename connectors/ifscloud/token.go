package ifscloud

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/ml-connector/ml-connector/platform/secrets"
)

// tokenSource caches the client-credentials token of one connection. Unlike
// oauth2.ReuseTokenSource it caps a token's use at maxAge whatever its
// expires_in says (the product promises a 60-minute cycle), refreshes a
// margin before the end so a request never leaves with a token about to
// expire, and can drop a token IFS refused.
type tokenSource struct {
	clientID string
	secret   secrets.Value
	tokenURL string
	scopes   []string
	maxAge   time.Duration
	http     *http.Client
	now      func() time.Time

	mu        sync.Mutex // held while fetching, so concurrent callers share one refresh
	tok       *oauth2.Token
	refreshAt time.Time
}

// token returns the cached token or fetches a new one.
func (t *tokenSource) token(ctx context.Context) (*oauth2.Token, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tok != nil && t.now().Before(t.refreshAt) {
		return t.tok, nil
	}
	// The plaintext secret lives only in this short-lived config, never in
	// a field that could be printed.
	cc := clientcredentials.Config{
		ClientID:     t.clientID,
		ClientSecret: t.secret.Reveal(),
		TokenURL:     t.tokenURL,
		Scopes:       t.scopes,
		AuthStyle:    oauth2.AuthStyleInParams,
	}
	start := t.now()
	tok, err := cc.Token(context.WithValue(ctx, oauth2.HTTPClient, t.http))
	if err != nil {
		return nil, tokenError(err)
	}
	lifetime := t.maxAge
	if d := expiresIn(tok); d > 0 {
		lifetime = min(lifetime, d)
	}
	// Refresh a tenth of the lifetime early (at most a minute): long enough
	// for a request in flight to arrive with a valid token, short enough
	// not to waste a 180 s token.
	margin := min(lifetime/10, time.Minute)
	t.tok, t.refreshAt = tok, start.Add(lifetime-margin)
	return tok, nil
}

// expiresIn reads expires_in from the token answer. clientcredentials
// keeps it only among the raw fields (Expiry is computed on the wall clock,
// which a test clock cannot steer).
func expiresIn(tok *oauth2.Token) time.Duration {
	switch v := tok.Extra("expires_in").(type) {
	case float64:
		return time.Duration(v * float64(time.Second))
	case string:
		if secs, err := strconv.Atoi(v); err == nil {
			return time.Duration(secs) * time.Second
		}
	}
	if !tok.Expiry.IsZero() {
		return time.Until(tok.Expiry)
	}
	return 0
}

// invalidate drops tok if it is still the cached one, so the next call
// fetches a fresh token; a token already replaced by a concurrent refresh
// is left alone.
func (t *tokenSource) invalidate(tok *oauth2.Token) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tok == tok {
		t.tok = nil
	}
}

// tokenError classifies a failed token request: refused credentials are
// ErrUnauthorized; 5xx and network failures are transient.
func tokenError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		status := re.Response.StatusCode
		e := &Error{Status: status, Code: re.ErrorCode, Message: re.ErrorDescription}
		if e.Message == "" {
			e.Message = "token request refused"
		}
		if status >= 400 && status < 500 && status != http.StatusTooManyRequests {
			// Whatever the IAM's reason (credentials, realm, scope), the
			// connection cannot authenticate until an operator fixes it.
			e.Status = http.StatusUnauthorized
			e.Message = fmt.Sprintf("token endpoint answered %d: %s", status, e.Message)
		}
		return tokenFailure{e}
	}
	return tokenFailure{err}
}

// tokenFailure marks an error as coming from the token endpoint.
type tokenFailure struct{ err error }

func (f tokenFailure) Error() string { return "ifs token: " + f.err.Error() }
func (f tokenFailure) Unwrap() error { return f.err }
