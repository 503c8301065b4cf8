package connections_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ml-connector/ml-connector/platform/audit"
	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/platform/secrets"
	"github.com/ml-connector/ml-connector/platform/testsupport"
)

func keyring(t *testing.T, previous ...[]byte) (*secrets.Keyring, []byte) {
	t.Helper()
	key := make([]byte, secrets.KeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	k, err := secrets.NewKeyring(key, previous...)
	if err != nil {
		t.Fatal(err)
	}
	return k, key
}

const (
	ifsSecret = "ifs-client-secret-0123456789"
	gcToken   = "sandbox_gc-access-token-abcdef"
)

func ifsConnection() connections.New {
	return connections.New{
		Name: "ifs-acme",
		Kind: connections.KindIFS,
		Settings: map[string]any{
			"base_url":      "https://acme.ifs.cloud",
			"client_id":     "mlc",
			"company_codes": []any{"10", "20"},
		},
		Secrets: map[string]secrets.Value{"client_secret": secrets.NewValue(ifsSecret)},
		Actor:   "test",
	}
}

func gcConnection() connections.New {
	return connections.New{
		Name:     "gc-main",
		Kind:     connections.KindGoCardless,
		Settings: map[string]any{"base_url": "https://api-sandbox.gocardless.com"},
		Secrets:  map[string]secrets.Value{"access_token": secrets.NewValue(gcToken)},
		Actor:    "test",
	}
}

func TestAddListSecrets(t *testing.T) {
	db := testsupport.Pool(t)
	keys, _ := keyring(t)
	store := connections.NewStore(db, keys)
	for _, n := range []connections.New{ifsConnection(), gcConnection()} {
		if _, err := store.Add(t.Context(), n); err != nil {
			t.Fatal(err)
		}
	}

	list, err := store.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "gc-main" || list[1].Name != "ifs-acme" {
		t.Fatalf("list %+v", list)
	}
	if got := list[1].CompanyCodes(); strings.Join(got, ",") != "10,20" {
		t.Errorf("company codes %v", got)
	}
	if list[1].Secrets["client_secret"] != keys.PrimaryID() {
		t.Errorf("secret key ids %v, want client_secret sealed under %s", list[1].Secrets, keys.PrimaryID())
	}
	printed := fmt.Sprintf("%+v %v", list, list)
	encoded, _ := json.Marshal(list)
	for _, out := range []string{printed, string(encoded)} {
		if strings.Contains(out, ifsSecret) || strings.Contains(out, gcToken) {
			t.Errorf("listing leaks a secret: %s", out)
		}
	}

	got, err := store.Secrets(t.Context(), "ifs-acme")
	if err != nil {
		t.Fatal(err)
	}
	if got["client_secret"].Reveal() != ifsSecret {
		t.Errorf("secret did not round-trip")
	}
	assertNoPlaintextInDatabase(t, db, ifsSecret, gcToken)

	if err := audit.Verify(t.Context(), db, "connection", "ifs-acme"); err != nil {
		t.Errorf("audit chain: %v", err)
	}
	records, err := audit.List(t.Context(), db, "connection", "ifs-acme")
	if err != nil || len(records) != 1 || records[0].Action != "connection.added" {
		t.Errorf("audit records %+v, %v", records, err)
	}
	if bytes.Contains(records[0].Payload, []byte(ifsSecret)) {
		t.Errorf("audit payload leaks the secret: %s", records[0].Payload)
	}
}

// assertNoPlaintextInDatabase dumps every table as text and looks for the secrets.
func assertNoPlaintextInDatabase(t *testing.T, db *pgxpool.Pool, plaintexts ...string) {
	t.Helper()
	rows, err := db.Query(t.Context(), `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	for _, table := range tables {
		var dump string
		if err := db.QueryRow(t.Context(), fmt.Sprintf(`SELECT coalesce(string_agg(t::text, E'\n'), '') FROM %q t`, table)).Scan(&dump); err != nil {
			t.Fatal(err)
		}
		for _, p := range plaintexts {
			hexed := fmt.Sprintf("%x", p)
			if strings.Contains(dump, p) || strings.Contains(dump, hexed) {
				t.Errorf("table %s holds a plaintext secret", table)
			}
		}
	}
}

func TestSecretsRefuseWrongKeyAndTampering(t *testing.T) {
	db := testsupport.Pool(t)
	keys, _ := keyring(t)
	store := connections.NewStore(db, keys)
	for _, n := range []connections.New{ifsConnection(), gcConnection()} {
		if _, err := store.Add(t.Context(), n); err != nil {
			t.Fatal(err)
		}
	}
	other, _ := keyring(t)
	tests := []struct {
		name    string
		tamper  string
		store   *connections.Store
		wantErr error
	}{
		{name: "wrong master key", store: connections.NewStore(db, other), wantErr: secrets.ErrUnknownKey},
		{name: "flipped ciphertext byte", store: store, wantErr: secrets.ErrDecrypt,
			tamper: `UPDATE connection_secrets SET ciphertext = overlay(ciphertext placing '\xff'::bytea from 20 for 1) WHERE name = 'client_secret'`},
		{name: "ciphertext moved to another connection", store: store, wantErr: secrets.ErrDecrypt,
			tamper: `UPDATE connection_secrets SET ciphertext = (SELECT ciphertext FROM connection_secrets WHERE name = 'access_token'),
			                                       key_id = (SELECT key_id FROM connection_secrets WHERE name = 'access_token')
			         WHERE name = 'client_secret'`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.tamper != "" {
				if _, err := db.Exec(t.Context(), tc.tamper); err != nil {
					t.Fatal(err)
				}
			}
			_, err := tc.store.Secrets(t.Context(), "ifs-acme")
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("got %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), `"ifs-acme"`) || strings.Contains(err.Error(), ifsSecret) {
				t.Errorf("error %q should name the connection and not leak the secret", err)
			}
		})
	}
}

func TestAddValidation(t *testing.T) {
	db := testsupport.Pool(t)
	keys, _ := keyring(t)
	store := connections.NewStore(db, keys)
	tests := []struct {
		name   string
		change func(*connections.New)
		want   string
	}{
		{"missing base url", func(n *connections.New) { delete(n.Settings, "base_url") }, `setting "base_url" is required`},
		{"empty company codes", func(n *connections.New) { n.Settings["company_codes"] = []any{} }, `"company_codes" must be a non-empty list`},
		{"missing secret", func(n *connections.New) { n.Secrets = nil }, `secret "client_secret" is required`},
		{"bad name", func(n *connections.New) { n.Name = "ifs acme" }, "letters, digits"},
		{"unknown kind", func(n *connections.New) { n.Kind = "sap" }, `unknown kind "sap"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := ifsConnection()
			tc.change(&n)
			if _, err := store.Add(t.Context(), n); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if list, _ := store.List(t.Context()); len(list) != 0 {
		t.Errorf("invalid connections were stored: %+v", list)
	}
	if _, err := store.Add(t.Context(), ifsConnection()); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Add(t.Context(), ifsConnection()); !errors.Is(err, connections.ErrExists) {
		t.Errorf("second add: %v, want ErrExists", err)
	}
}

func TestRemove(t *testing.T) {
	db := testsupport.Pool(t)
	keys, _ := keyring(t)
	store := connections.NewStore(db, keys)
	if _, err := store.Add(t.Context(), ifsConnection()); err != nil {
		t.Fatal(err)
	}
	if err := store.Remove(t.Context(), "ifs-acme", "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Get(t.Context(), "ifs-acme"); !errors.Is(err, connections.ErrNotFound) {
		t.Errorf("get after remove: %v", err)
	}
	if err := store.Remove(t.Context(), "ifs-acme", "test"); !errors.Is(err, connections.ErrNotFound) {
		t.Errorf("second remove: %v", err)
	}
	var secretsLeft int
	if err := db.QueryRow(t.Context(), `SELECT count(*) FROM connection_secrets`).Scan(&secretsLeft); err != nil || secretsLeft != 0 {
		t.Errorf("%d secrets left behind (%v)", secretsLeft, err)
	}
	records, err := audit.List(t.Context(), db, "connection", "ifs-acme")
	if err != nil || len(records) != 2 || records[1].Action != "connection.removed" {
		t.Errorf("audit records %+v, %v", records, err)
	}
}

func TestRotate(t *testing.T) {
	db := testsupport.Pool(t)
	oldKeys, oldKey := keyring(t)
	if _, err := connections.NewStore(db, oldKeys).Add(t.Context(), ifsConnection()); err != nil {
		t.Fatal(err)
	}
	newKeys, newKey := keyring(t, oldKey)
	store := connections.NewStore(db, newKeys)
	n, err := store.Rotate(t.Context(), "test")
	if err != nil || n != 1 {
		t.Fatalf("rotate: %d, %v", n, err)
	}
	if n, err := store.Rotate(t.Context(), "test"); err != nil || n != 0 {
		t.Errorf("second rotate re-sealed %d (%v), want 0", n, err)
	}
	onlyNew, err := secrets.NewKeyring(newKey)
	if err != nil {
		t.Fatal(err)
	}
	got, err := connections.NewStore(db, onlyNew).Secrets(t.Context(), "ifs-acme")
	if err != nil || got["client_secret"].Reveal() != ifsSecret {
		t.Fatalf("secret after rotation: %v", err)
	}
	c, _ := store.Get(t.Context(), "ifs-acme")
	if c.Secrets["client_secret"] != newKeys.PrimaryID() {
		t.Errorf("secret still sealed under %s", c.Secrets["client_secret"])
	}
	if _, err := connections.NewStore(db, oldKeys).Secrets(t.Context(), "ifs-acme"); !errors.Is(err, secrets.ErrUnknownKey) {
		t.Errorf("old keyring alone still opens the rotated secret: %v", err)
	}
}
