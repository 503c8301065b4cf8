package main

import (
	"maps"
	"strings"
	"testing"

	"github.com/ml-connector/ml-connector/platform/config"
	"github.com/ml-connector/ml-connector/services/console/users"
)

func TestOIDCSettings(t *testing.T) {
	env := config.FromMap(map[string]string{})
	if loadOIDC(env) != nil || env.Err() != nil {
		t.Fatalf("OIDC is on without an issuer: %v", env.Err())
	}
	good := map[string]string{
		"CONSOLE_OIDC_ISSUER":          "https://login.example.com/tenant/v2.0/",
		"CONSOLE_OIDC_CLIENT_ID":       "console",
		"CONSOLE_OIDC_CLIENT_SECRET":   "client-secret-never-echoed",
		"CONSOLE_OIDC_REDIRECT_URL":    "https://console.example.com/auth/oidc/callback",
		"CONSOLE_OIDC_OPERATOR_GROUPS": "ar-team, finance",
		"CONSOLE_OIDC_ADMIN_GROUPS":    "it-admins,finance",
	}
	env = config.FromMap(good)
	cfg := loadOIDC(env)
	if err := env.Err(); err != nil || cfg == nil {
		t.Fatalf("good settings refused: %v", err)
	}
	if cfg.Issuer != "https://login.example.com/tenant/v2.0/" || cfg.Roles["ar-team"] != users.Operator || cfg.Roles["finance"] != users.Admin ||
		cfg.NameClaim != "email" || cfg.RoleClaim != "groups" || cfg.ClientSecret.Reveal() != "client-secret-never-echoed" {
		t.Errorf("settings read as %+v", cfg)
	}
	for name, bad := range map[string]string{
		"CONSOLE_OIDC_ISSUER":          "http://login.example.com",
		"CONSOLE_OIDC_CLIENT_ID":       "",
		"CONSOLE_OIDC_REDIRECT_URL":    "https://console.example.com/elsewhere",
		"CONSOLE_OIDC_ROLE_CLAIM":      "groups; drop",
		"CONSOLE_OIDC_SCOPES":          "email,bad scope",
		"CONSOLE_OIDC_OPERATOR_GROUPS": strings.Repeat("g,", 101),
	} {
		m := map[string]string{}
		for k, v := range good {
			m[k] = v
		}
		m[name] = bad
		env := config.FromMap(m)
		loadOIDC(env)
		err := env.Err()
		if err == nil || !strings.Contains(err.Error(), name) || strings.Contains(err.Error(), "client-secret-never-echoed") {
			t.Errorf("%s=%q: %v", name, bad, err)
		}
	}
	// A callback over http only on loopback (the demo's console).
	for redirect, ok := range map[string]bool{
		"http://127.0.0.1:8090/auth/oidc/callback":      true,
		"http://localhost:8090/auth/oidc/callback":      true,
		"http://[::1]:8090/auth/oidc/callback":          true,
		"http://console.example.com/auth/oidc/callback": false,
		"http://10.0.0.7:8090/auth/oidc/callback":       false,
		// Lookalikes that a prefix or substring test would let through.
		"http://localhost.evil.com/auth/oidc/callback":      false,
		"http://127.0.0.1.nip.io/auth/oidc/callback":        false,
		"http://127.0.0.1@evil.com/auth/oidc/callback":      false,
		"http://localhost./auth/oidc/callback":              false,
		"http://0.0.0.0:8090/auth/oidc/callback":            false,
		"http://[::]:8090/auth/oidc/callback":               false,
		"http://127.1:8090/auth/oidc/callback":              false,
		"http://[::ffff:127.0.0.1]:8090/auth/oidc/callback": false,
		"http://[::1%25eth0]:8090/auth/oidc/callback":       false,
		"http://evil.com@127.0.0.1:8090/auth/oidc/callback": false, // no user part at all
		"http://127.0.0.2:8090/auth/oidc/callback":          true,
	} {
		m := maps.Clone(good)
		m["CONSOLE_OIDC_REDIRECT_URL"] = redirect
		env := config.FromMap(m)
		loadOIDC(env)
		if err := env.Err(); (err == nil) != ok {
			t.Errorf("%s: %v", redirect, err)
		}
	}
	m := map[string]string{}
	for k, v := range good {
		m[k] = v
	}
	delete(m, "CONSOLE_OIDC_OPERATOR_GROUPS")
	delete(m, "CONSOLE_OIDC_ADMIN_GROUPS")
	env = config.FromMap(m)
	loadOIDC(env)
	if err := env.Err(); err == nil || !strings.Contains(err.Error(), "map at least one group") {
		t.Errorf("no group mapped: %v", err)
	}
}

func TestTrustedProxiesSettings(t *testing.T) {
	env := config.FromMap(map[string]string{"CONSOLE_TRUSTED_PROXIES": "10.244.0.0/16, fd00::1/64"})
	got := loadProxies(env)
	if err := env.Err(); err != nil || len(got) != 2 || got[0].String() != "10.244.0.0/16" || got[1].String() != "fd00::/64" {
		t.Errorf("read as %v (%v)", got, err)
	}
	for _, bad := range []string{"10.244.0.0", "nginx", strings.Repeat("10.0.0.0/8,", 65)} {
		env := config.FromMap(map[string]string{"CONSOLE_TRUSTED_PROXIES": bad})
		loadProxies(env)
		if err := env.Err(); err == nil || !strings.Contains(err.Error(), "CONSOLE_TRUSTED_PROXIES") {
			t.Errorf("%.30q: %v", bad, err)
		}
	}
}
