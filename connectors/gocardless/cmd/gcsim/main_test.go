package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/platform/config"
)

func TestHelp(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--help"}, config.FromMap(nil), &out, nil); err != nil {
		t.Fatalf("--help: %v", err)
	}
	for _, v := range []string{"GCSIM_ADDR", "GCSIM_ACCESS_TOKENS", "GCSIM_WEBHOOK_URL", "GCSIM_WEBHOOK_SECRET",
		"GCSIM_RATE_LIMIT", "GCSIM_RATE_WINDOW", "GCSIM_CLOCK", "GCSIM_SEED_FILE", "GCSIM_SCENARIOS", "GCSIM_WEBHOOK_BATCH_SIZE",
		"GCSIM_APPROVED_CREDITORS", "GCSIM_NOTIFY_MANDATE_REQUESTS"} {
		if !strings.Contains(out.String(), v) {
			t.Errorf("--help does not list %s", v)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	badJSON := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(badJSON, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"no token", map[string]string{}, "GCSIM_ACCESS_TOKENS: required"},
		{"webhook URL without secret", map[string]string{"GCSIM_ACCESS_TOKENS": "t", "GCSIM_WEBHOOK_URL": "http://127.0.0.1:1/hook"},
			"GCSIM_WEBHOOK_SECRET"},
		{"bad clock", map[string]string{"GCSIM_ACCESS_TOKENS": "t", "GCSIM_CLOCK": "sundial"}, "GCSIM_CLOCK"},
		{"bad creditor", map[string]string{"GCSIM_ACCESS_TOKENS": "t", "GCSIM_CREDITORS": "XX1=Acme"}, "GCSIM_CREDITORS"},
		{"approved creditor unknown", map[string]string{"GCSIM_ACCESS_TOKENS": "t", "GCSIM_APPROVED_CREDITORS": "CR000000000XX1"},
			"GCSIM_APPROVED_CREDITORS"},
		{"bad batch size", map[string]string{"GCSIM_ACCESS_TOKENS": "t", "GCSIM_WEBHOOK_BATCH_SIZE": "0"}, "GCSIM_WEBHOOK_BATCH_SIZE"},
		{"batch size over the range", map[string]string{"GCSIM_ACCESS_TOKENS": "t", "GCSIM_WEBHOOK_BATCH_SIZE": "1001"},
			"GCSIM_WEBHOOK_BATCH_SIZE: 1001 is out of range (want 1 to 1000)"},
		{"negative seed", map[string]string{"GCSIM_ACCESS_TOKENS": "t", "GCSIM_RANDOM_SEED": "-1"}, "GCSIM_RANDOM_SEED: -1 is out of range"},
		{"zero tick", map[string]string{"GCSIM_ACCESS_TOKENS": "t", "GCSIM_TICK": "0s"}, "GCSIM_TICK: 0s is out of range"},
		{"retry max below base", map[string]string{"GCSIM_ACCESS_TOKENS": "t", "GCSIM_WEBHOOK_RETRY_BASE": "1m", "GCSIM_WEBHOOK_RETRY_MAX": "30s"},
			"GCSIM_WEBHOOK_RETRY_MAX: 30s is shorter than GCSIM_WEBHOOK_RETRY_BASE"},
		{"bad start", map[string]string{"GCSIM_ACCESS_TOKENS": "t", "GCSIM_CLOCK_START": "monday"}, "GCSIM_CLOCK_START"},
		{"bad scenarios", map[string]string{"GCSIM_ACCESS_TOKENS": "t", "GCSIM_SCENARIOS": `[{"resource": "payments", "outcome": "boom"}]`},
			"outcome"},
		{"scenario file missing", map[string]string{"GCSIM_ACCESS_TOKENS": "t", "GCSIM_SCENARIOS": filepath.Join(dir, "none.json")},
			"GCSIM_SCENARIOS"},
		{"bad seed file", map[string]string{"GCSIM_ACCESS_TOKENS": "t", "GCSIM_SEED_FILE": badJSON}, "GCSIM_SEED_FILE"},
		{"bad address", map[string]string{"GCSIM_ACCESS_TOKENS": "t", "GCSIM_ADDR": "nowhere"}, "GCSIM_ADDR"},
		{"fee rate above 100%", map[string]string{"GCSIM_ACCESS_TOKENS": "t", "GCSIM_FEE_BASIS_POINTS": "10001"}, "GCSIM_FEE_BASIS_POINTS"},
		{"negative fixed fee", map[string]string{"GCSIM_ACCESS_TOKENS": "t", "GCSIM_FEE_FIXED": "-1"}, "GCSIM_FEE_FIXED"},
		{"fee cap too large", map[string]string{"GCSIM_ACCESS_TOKENS": "t", "GCSIM_FEE_CAP": "10000001"}, "GCSIM_FEE_CAP"},
		{"surcharge not a number", map[string]string{"GCSIM_ACCESS_TOKENS": "t", "GCSIM_FEE_SURCHARGE": "lots"}, "GCSIM_FEE_SURCHARGE"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, ok := tc.env["GCSIM_ADDR"]; !ok {
				tc.env["GCSIM_ADDR"] = "127.0.0.1:0"
			}
			// A case that wrongly passes would serve until the deadline.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := run(ctx, nil, config.FromMap(tc.env), io.Discard, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	// Secrets never appear in errors.
	err := run(context.Background(), nil, config.FromMap(map[string]string{
		"GCSIM_ACCESS_TOKENS": "tok_s3cr3t", "GCSIM_WEBHOOK_SECRET": "hook_s3cr3t", "GCSIM_CLOCK": "sundial"}), io.Discard, nil)
	if err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("error %v leaks a secret", err)
	}
}

func TestServe(t *testing.T) {
	seed := filepath.Join(t.TempDir(), "seed.json")
	data := `{"customers": [{"id": "CU00000000SEED", "given_name": "Grace", "family_name": "Hopper", "email": "grace@example.com"}],
	 "customer_bank_accounts": [{"id": "BA00000000SEED", "account_holder_name": "G Hopper", "country_code": "GB", "currency": "GBP",
	   "links": {"customer": "CU00000000SEED"}}],
	 "mandates": [{"id": "MD00000000SEED", "links": {"customer_bank_account": "BA00000000SEED"}}]}`
	if err := os.WriteFile(seed, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	env := config.FromMap(map[string]string{
		"GCSIM_ADDR": "127.0.0.1:0", "GCSIM_ACCESS_TOKENS": "tok_a, tok_b", "GCSIM_CLOCK": "manual",
		"GCSIM_CLOCK_START": "2025-03-03T08:00:00Z", "GCSIM_SCENARIOS": "builtin", "GCSIM_SEED_FILE": seed,
		"GCSIM_CREDITORS": "CR0000000000A1=Acme Ltd", "GCSIM_RANDOM_SEED": "5", "LOG_LEVEL": "error",
	})
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, env, io.Discard, func(a net.Addr) { addr <- a }) }()
	var base string
	select {
	case a := <-addr:
		base = "http://" + a.String()
	case err := <-done:
		t.Fatalf("run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("gcsim did not start")
	}
	call := func(method, path, token, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("GoCardless-Version", "2015-07-06")
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&v)
		return resp.StatusCode, v
	}
	if status, body := call("GET", "/creditors/CR0000000000A1", "tok_b", ""); status != 200 ||
		body["creditors"].(map[string]any)["name"] != "Acme Ltd" {
		t.Fatalf("creditor: %d %v", status, body)
	}
	if status, body := call("GET", "/mandates/MD00000000SEED", "tok_a", ""); status != 200 ||
		body["mandates"].(map[string]any)["status"] != "active" {
		t.Fatalf("seeded mandate: %d %v", status, body)
	}
	if status, _ := call("GET", "/mandates", "wrong", ""); status != 401 {
		t.Fatalf("wrong token: %d", status)
	}
	status, body := call("POST", "/payments", "tok_a", `{"payments": {"amount": 1001, "currency": "GBP", "links": {"mandate": "MD00000000SEED"}}}`)
	if status != 201 {
		t.Fatalf("payment: %d %v", status, body)
	}
	id := body["payments"].(map[string]any)["id"].(string)
	if status, body := call("POST", "/_sim/clock/advance", "", `{"by": "240h"}`); status != 200 || body["mode"] != "manual" {
		t.Fatalf("advance: %d %v", status, body)
	}
	if _, body := call("GET", "/payments/"+id, "tok_a", ""); body["payments"].(map[string]any)["status"] != "failed" {
		t.Fatalf("a payment ending in 01 under the builtin scenarios: %v", body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("gcsim did not stop")
	}
}
