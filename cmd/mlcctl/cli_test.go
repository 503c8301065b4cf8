package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ml-connector/ml-connector/platform/testsupport"
)

const masterKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

// mlcctl runs the command in-process against dbURL with stdin as input.
func mlcctl(t *testing.T, dbURL, stdin string, args ...string) (string, error) {
	t.Helper()
	return mlcctlEnv(t, map[string]string{"DATABASE_URL": dbURL, "MLC_MASTER_KEY": masterKey}, stdin, args...)
}

// mlcctlEnv runs the command in-process with env as its environment.
func mlcctlEnv(t *testing.T, env map[string]string, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	c := &cli{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut, lookup: func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}}
	err := c.run(context.Background(), args)
	return out.String() + errOut.String(), err
}

func TestConnectionsLifecycle(t *testing.T) {
	db := testsupport.PostgresURL(t)
	const clientSecret = "ifs-secret-from-file-42"
	const gcToken = "sandbox_token-from-stdin-99"
	const webhookSecret = "webhook-secret-from-stdin-7"
	secretFile := filepath.Join(t.TempDir(), "client_secret")
	if err := os.WriteFile(secretFile, []byte(clientSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		name    string
		stdin   string
		args    []string
		want    string // substring of the output, or of the error when wantErr
		wantErr bool
	}{
		{name: "migrate", args: []string{"migrate"}, want: "database at migration"},
		{name: "migrate again", args: []string{"migrate"}, want: "database at migration"},
		{name: "add ifs from file", args: []string{"connections", "add", "--name", "ifs-acme", "--kind", "ifs",
			"--settings", `{"base_url":"https://acme.ifs.cloud","client_id":"mlc","company_codes":["10","20"]}`,
			"--secret", "client_secret=@" + secretFile}, want: "added ifs connection ifs-acme"},
		{name: "add gocardless from stdin", stdin: gcToken + "\n" + webhookSecret + "\n", args: []string{"connections", "add",
			"--name", "gc-main", "--kind", "gocardless", "--settings", `{"base_url":"https://api-sandbox.gocardless.com"}`,
			"--secret", "access_token=-", "--secret", "webhook_secret=-"}, want: "added gocardless connection gc-main"},
		{name: "inline secret refused", args: []string{"connections", "add", "--name", "x", "--kind", "gocardless",
			"--settings", `{"base_url":"https://x"}`, "--secret", "access_token=hunter2hunter2"}, want: "inline values are refused", wantErr: true},
		{name: "missing secret", args: []string{"connections", "add", "--name", "jde", "--kind", "jde",
			"--settings", `{"base_url":"https://jde","username":"u","company_codes":["00001"]}`}, want: `secret "password" is required`, wantErr: true},
		{name: "unknown kind", args: []string{"connections", "add", "--name", "sap", "--kind", "sap"}, want: "unknown connection kind", wantErr: true},
		// ERP settings the services would refuse are refused when saved.
		{name: "fee account of a company not served", args: []string{"connections", "add", "--name", "ifs-x", "--kind", "ifs",
			"--settings", `{"base_url":"https://acme.ifs.cloud","client_id":"mlc","company_codes":["10"],"payout_fee_accounts":{"20":"6570"}}`,
			"--secret", "client_secret=@" + secretFile}, want: `payout_fee_accounts: company "20" is not one of company_codes`, wantErr: true},
		{name: "jde fees without a bank account", args: []string{"connections", "add", "--name", "jde-x", "--kind", "jde",
			"--settings", `{"base_url":"https://jde","username":"u","company_codes":["00001"],"payout_fee_accounts":{"00001":"HQ.6570"}}`,
			"--secret", "password=@" + secretFile}, want: "payout_bank_accounts.00001 is required", wantErr: true},
		// Issue #17: a secret in settings was stored in plaintext, audited and listed.
		{name: "secret key in settings refused", stdin: gcToken + "\n", args: []string{"connections", "add", "--name", "gc-x", "--kind", "gocardless",
			"--settings", `{"base_url":"https://x","client_secret":"plain-s3cret"}`, "--secret", "access_token=-"}, want: "secrets belong in --secret", wantErr: true},
		{name: "url credentials in settings refused", stdin: gcToken + "\n", args: []string{"connections", "add", "--name", "gc-x", "--kind", "gocardless",
			"--settings", `{"base_url":"https://user:plain-s3cret@x"}`, "--secret", "access_token=-"}, want: "URL with credentials", wantErr: true},
		{name: "duplicate settings key refused", stdin: gcToken + "\n", args: []string{"connections", "add", "--name", "gc-x", "--kind", "gocardless",
			"--settings", `{"base_url":"https://a","base_url":"https://b"}`, "--secret", "access_token=-"}, want: "appears twice", wantErr: true},
		{name: "list", args: []string{"connections", "list"}, want: "ifs-acme  ifs"},
		{name: "list json", args: []string{"connections", "list", "--json"}, want: `"name": "gc-main"`},
		{name: "remove", args: []string{"connections", "remove", "gc-main"}, want: "removed gc-main"},
		{name: "remove unknown", args: []string{"connections", "remove", "gc-main"}, want: "not found", wantErr: true},
		{name: "audit verify", args: []string{"audit", "verify"}, want: "audit log verified: 2 chains, 3 records"},
		{name: "unknown command", args: []string{"frobnicate"}, want: "unknown command", wantErr: true},
	}
	for _, st := range steps {
		out, err := mlcctl(t, db, st.stdin, st.args...)
		if (err != nil) != st.wantErr {
			t.Fatalf("%s: err %v, output %s", st.name, err, out)
		}
		got := out
		if err != nil {
			got = err.Error()
		}
		if !strings.Contains(got, st.want) {
			t.Errorf("%s: %q does not contain %q", st.name, got, st.want)
		}
		for _, secret := range []string{clientSecret, gcToken, webhookSecret, "hunter2hunter2"} {
			if strings.Contains(got, secret) {
				t.Errorf("%s: output shows a secret: %s", st.name, got)
			}
		}
	}
}

func TestHelpListsSettings(t *testing.T) {
	out, err := mlcctl(t, "", "", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"connections add", "DATABASE_URL", "MLC_MASTER_KEY"} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %s:\n%s", want, out)
		}
	}
}
