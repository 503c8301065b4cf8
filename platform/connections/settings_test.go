package connections_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/platform/secrets"
	"github.com/ml-connector/ml-connector/platform/testsupport"
)

func TestParseSettings(t *testing.T) {
	tests := []struct {
		name, raw string
		secret    bool   // refused as carrying a secret
		wantErr   string // otherwise, a part of the error
		leak      string // must not appear in the error
	}{
		{name: "ordinary", raw: `{"base_url":"https://acme.ifs.cloud","client_id":"mlc","token_url":"https://acme/token","token_max_age":"5m","company_codes":["10"]}`},
		{name: "empty", raw: ``},
		{name: "client_secret key", raw: `{"base_url":"https://x","client_secret":"hunter2-value"}`, secret: true, leak: "hunter2-value"},
		{name: "nested password", raw: `{"auth":{"Password":"hunter2-value"}}`, secret: true, leak: "hunter2-value"},
		{name: "access token", raw: `{"access_token":"tok-value-1"}`, secret: true, leak: "tok-value-1"},
		{name: "url credentials", raw: `{"base_url":"https://user:pw-value-1@host/x"}`, secret: true, leak: "pw-value-1"},
		{name: "url credentials with slash", raw: `{"base_url":"https://user:pw/value-1@host/x"}`, secret: true, leak: "value-1"},
		{name: "url credentials in a list", raw: `{"mirrors":["https://a","https://u:pw-value-2@b"]}`, secret: true, leak: "pw-value-2"},
		{name: "url token query", raw: `{"base_url":"https://host/x?access_token=tok-value-3"}`, secret: true, leak: "tok-value-3"},
		{name: "duplicate key", raw: `{"base_url":"https://a","base_url":"https://b"}`, wantErr: `key "base_url" appears twice`},
		{name: "nested duplicate key", raw: `{"x":{"a":1,"a":2}}`, wantErr: `key "x.a" appears twice`},
		{name: "not an object", raw: `[1,2]`, wantErr: "JSON object"},
		{name: "two objects", raw: `{} {}`, wantErr: "single JSON object"},
		{name: "too large", raw: `{"x":"` + strings.Repeat("a", connections.MaxSettingsBytes) + `"}`, wantErr: "exceed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := connections.ParseSettings([]byte(tc.raw))
			switch {
			case tc.secret:
				if !errors.Is(err, connections.ErrSecretInSettings) {
					t.Fatalf("err %v, want ErrSecretInSettings", err)
				}
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
			case err != nil:
				t.Fatalf("err %v", err)
			}
			if tc.leak != "" && strings.Contains(err.Error(), tc.leak) {
				t.Errorf("error quotes the secret: %v", err)
			}
		})
	}
}

// Store.Add refuses what ParseSettings refuses, whoever calls it, so a
// secret never reaches connections.settings or the audit log.
func TestAddRefusesSecretsInSettingsAndBadNames(t *testing.T) {
	db := testsupport.Pool(t)
	keys, _ := keyring(t)
	store := connections.NewStore(db, keys)
	gc := func(name string, settings map[string]any) connections.New {
		return connections.New{Name: name, Kind: connections.KindGoCardless, Settings: settings,
			Secrets: map[string]secrets.Value{"access_token": secrets.NewValue(gcToken)}, Actor: "test"}
	}
	for _, n := range []connections.New{
		gc("gc-a", map[string]any{"base_url": "https://x", "client_secret": "plain-secret-1"}),
		gc("gc-b", map[string]any{"base_url": "https://u:plain-secret-2@x"}),
		gc("gc-c", map[string]any{"base_url": "https://x", "blob": strings.Repeat("a", connections.MaxSettingsBytes)}),
		gc(strings.Repeat("n", 64), map[string]any{"base_url": "https://x"}),
		gc("has space", map[string]any{"base_url": "https://x"}),
		gc("a/b", map[string]any{"base_url": "https://x"}),
	} {
		if _, err := store.Add(t.Context(), n); err == nil {
			t.Errorf("added %.20q with settings of %d keys", n.Name, len(n.Settings))
		} else if strings.Contains(err.Error(), "plain-secret") {
			t.Errorf("error quotes the secret: %v", err)
		}
	}
	var rows int
	if err := db.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM connections) + (SELECT count(*) FROM audit_log)`).Scan(&rows); err != nil || rows != 0 {
		t.Errorf("%d rows written (%v), want none", rows, err)
	}
}
