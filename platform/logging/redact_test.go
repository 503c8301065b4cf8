package logging

import (
	"strings"
	"testing"
)

func TestIsSecretKey(t *testing.T) {
	secret := []string{
		"password", "PASSWORD", "db_password", "passwd", "secret", "client_secret", "clientSecret",
		"gc_webhook_secret", "token", "access_token", "refreshToken", "Authorization",
		"proxy-authorization", "api_key", "X-Api-Key", "apikey", "APIKey", "private_key", "private key",
		"credential", "credentials", "cookie", "Set-Cookie", "master_key", "MLC_MASTER_KEY",
	}
	plain := []string{"", "key", "key_id", "idempotency_key", "user", "username", "auth_url", "pass", "creditor", "mandate"}
	for _, k := range secret {
		if !IsSecretKey(k) {
			t.Errorf("IsSecretKey(%q) = false", k)
		}
	}
	for _, k := range plain {
		if IsSecretKey(k) {
			t.Errorf("IsSecretKey(%q) = true", k)
		}
	}
}

func TestScrubKeywordPasswords(t *testing.T) {
	tests := []struct{ in, want string }{
		{"host=db password=s3cret user=app", "host=db password=[REDACTED] user=app"},
		{"PASSWORD = 's3 cret' user=app", "PASSWORD = [REDACTED] user=app"},
		{"?user=a&password=x%20y&sslmode=disable", "?user=a&password=[REDACTED]&sslmode=disable"},
		{"pwd=abc;Server=x", "pwd=[REDACTED];Server=x"},
		{"password reset requested", "password reset requested"},
		{"new_password=abc", "new_password=abc"}, // not a keyword boundary, key rule covers attrs
	}
	for _, tt := range tests {
		if got := scrubKeywordPasswords(tt.in); got != tt.want {
			t.Errorf("scrubKeywordPasswords(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRedactor(t *testing.T) {
	r := NewRedactor()
	if got := r.Scrub("nothing registered"); got != "nothing registered" {
		t.Error(got)
	}
	r.Add("", "abc", "abcdef", "abcdefgh", "p@ss w/rd&x")
	tests := []struct{ in, want string }{
		{"abc", "abc"}, // too short
		{"abcdef", "[REDACTED]"},
		{"abcdefgh", "[REDACTED]"}, // the longer secret wins, no "gh" left over
		{"xabcdefghx abcdefx", "x[REDACTED]x [REDACTED]x"},
		{"p@ss w/rd&x", "[REDACTED]"},
		{"q=p%40ss+w%2Frd%26x", "q=[REDACTED]"},              // QueryEscape form
		{"/p@ss%20w%2Frd&x/", "/[REDACTED]/"},                // PathEscape form
		{`{"pw":"p@ss w/rd\u0026x"}`, `{"pw":"[REDACTED]"}`}, // JSON form, & escaped as encoding/json does
	}
	for _, tt := range tests {
		if got := r.Scrub(tt.in); got != tt.want {
			t.Errorf("Scrub(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	r.Add(`quote"back\slash`)
	if got := r.Scrub(`{"v":"quote\"back\\slash"}`); got != `{"v":"[REDACTED]"}` {
		t.Errorf("JSON-escaped form not scrubbed: %s", got)
	}
	var nilR *Redactor
	if got := nilR.Scrub("postgres://u:p@h"); got != "postgres://u:[REDACTED]@h" {
		t.Errorf("nil Redactor: %s", got)
	}
	if strings.Contains(r.Scrub("abcdef"), "abcdef") {
		t.Error("leak")
	}
}
