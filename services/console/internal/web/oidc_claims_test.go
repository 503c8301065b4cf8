package web

import (
	"testing"

	"github.com/ml-connector/ml-connector/services/console/users"
)

func TestOIDCClaims(t *testing.T) {
	o := &OIDC{cfg: OIDCConfig{NameClaim: "email", RoleClaim: "groups",
		Roles: map[string]users.Role{"ops": users.Operator, "admins": users.Admin, "readers": users.Viewer}}}
	for _, c := range []struct {
		claim any
		want  users.Role
	}{
		{[]any{"readers", "admins", "ops"}, users.Admin}, // the highest wins, in any order
		{[]any{"ops", "readers"}, users.Operator},
		{"readers ops", users.Operator}, // a space-separated string
		{[]any{"staff", 42}, ""},        // nothing mapped, non-strings ignored
		{nil, ""},
	} {
		if got := o.role(c.claim); got != c.want {
			t.Errorf("role(%v) = %q, want %q", c.claim, got, c.want)
		}
	}
	for _, c := range []struct {
		claims map[string]any
		ok     bool
	}{
		{map[string]any{"email": "ann@example.com", "email_verified": true}, true},
		{map[string]any{"email": "ann@example.com", "email_verified": "true"}, true},
		{map[string]any{"email": "ann@example.com", "email_verified": false}, false},
		{map[string]any{"email": "ann@example.com"}, false},
		{map[string]any{"email": "ann <script>@example.com", "email_verified": true}, false},
		{map[string]any{"email_verified": true}, false},
	} {
		if _, err := o.name(c.claims); (err == nil) != c.ok {
			t.Errorf("name(%v): %v", c.claims, err)
		}
	}
	o.cfg.NameClaim = "preferred_username"
	if n, err := o.name(map[string]any{"preferred_username": "ann"}); err != nil || n != "ann" {
		t.Errorf("preferred_username needs no verification: %q %v", n, err)
	}
}
