package database

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// pgx already masks passwords in the errors it builds; these cases feed
// redact messages that do contain the password, as a future pgx change or
// a wrapped driver error might, to prove the second line of defence holds.
func TestRedactRemovesPasswords(t *testing.T) {
	tests := []struct {
		name    string
		conn    string
		extra   []string
		msg     string
		secrets []string // must not survive
		keep    []string // must survive
	}{
		{
			name:    "url userinfo",
			conn:    "postgres://mlc:Tr0ub4dor@db.internal:5432/mlc?sslmode=require",
			msg:     "dial postgres://mlc:Tr0ub4dor@db.internal:5432/mlc: refused",
			secrets: []string{"Tr0ub4dor"},
			keep:    []string{"mlc", "db.internal:5432", "refused"},
		},
		{
			name:    "percent-encoded userinfo, raw and decoded forms",
			conn:    "postgres://mlc:p%40ss%2Fw0rd@db:5432/mlc",
			msg:     "cannot parse postgres://mlc:p%40ss%2Fw0rd@db:5432/mlc (password p@ss/w0rd)",
			secrets: []string{"p%40ss%2Fw0rd", "p@ss/w0rd"},
			keep:    []string{"cannot parse", "db:5432"},
		},
		{
			name:    "unencoded @ in password",
			conn:    "postgres://mlc:a@b@db:5432/mlc",
			msg:     "invalid url postgres://mlc:a@b@db:5432/mlc",
			secrets: []string{"a@b"},
			keep:    []string{"db:5432"},
		},
		{
			name:    "password query parameter",
			conn:    "postgres://db/mlc?user=mlc&password=qu3ry-secret",
			msg:     "bad setting password=qu3ry-secret",
			secrets: []string{"qu3ry-secret"},
		},
		{
			name:    "key value",
			conn:    "host=db user=mlc password=kv-secret sslmode=disable",
			msg:     "failed: host=db user=mlc password=kv-secret",
			secrets: []string{"kv-secret"},
			keep:    []string{"host=db", "user=mlc"},
		},
		{
			name:    "quoted key value with space",
			conn:    "host=db password='two words' user=mlc",
			msg:     "failed: password='two words' (two words)",
			secrets: []string{"two words"},
		},
		{
			name:    "password from passfile or environment",
			conn:    "postgres://mlc@db/mlc",
			extra:   []string{"from-pgpass"},
			msg:     "auth failed for from-pgpass",
			secrets: []string{"from-pgpass"},
			keep:    []string{"auth failed"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cause := errors.New(tt.msg)
			err := redact(cause, tt.conn, tt.extra)
			got := err.Error()
			for _, s := range tt.secrets {
				if strings.Contains(got, s) {
					t.Errorf("redacted message %q still contains %q", got, s)
				}
			}
			for _, s := range tt.keep {
				if !strings.Contains(got, s) {
					t.Errorf("redacted message %q lost %q", got, s)
				}
			}
			if !errors.Is(err, cause) {
				t.Errorf("redacted error does not wrap its cause")
			}
		})
	}
}

func TestRedactKeepsErrorIdentity(t *testing.T) {
	err := redact(context.DeadlineExceeded, "postgres://u:pw@h/db", nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("errors.Is(%v, DeadlineExceeded) = false", err)
	}
	if redact(nil, "postgres://u:pw@h/db", nil) != nil {
		t.Fatal("redact(nil) != nil")
	}
}
