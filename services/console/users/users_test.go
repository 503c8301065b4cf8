package users_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ml-connector/ml-connector/platform/secrets"
	"github.com/ml-connector/ml-connector/platform/testsupport"
	"github.com/ml-connector/ml-connector/services/console/users"
)

func TestHashAndVerify(t *testing.T) {
	p := secrets.NewValue("correct horse battery staple")
	h := users.HashPassword(p)
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q is not an argon2id PHC string", h)
	}
	if h == users.HashPassword(p) {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
	if err := users.VerifyPassword(h, p); err != nil {
		t.Errorf("right password: %v", err)
	}
	if err := users.VerifyPassword(h, secrets.NewValue("correct horse battery stapler")); !errors.Is(err, users.ErrBadCredentials) {
		t.Errorf("wrong password: %v", err)
	}
	// A hash whose parameters would cost a gigabyte per sign-in is refused.
	if err := users.VerifyPassword(strings.Replace(h, "m=19456", "m=4194304", 1), p); err == nil {
		t.Error("out-of-range parameters accepted")
	}
}

func TestAddAndAuthenticate(t *testing.T) {
	ctx := context.Background()
	db := testsupport.Pool(t)
	s := users.NewStore(db)
	pw := secrets.NewValue("a long enough password")
	if _, err := s.Add(ctx, users.New{Name: "ann", Role: users.Operator, Password: secrets.NewValue("short"), Actor: "t"}); err == nil {
		t.Error("a short password was accepted")
	}
	if _, err := s.Add(ctx, users.New{Name: "bad name", Role: users.Operator, Password: pw, Actor: "t"}); err == nil {
		t.Error("a name with a space was accepted")
	}
	u, err := s.Add(ctx, users.New{Name: "ann", Role: users.Operator, Password: pw, Actor: "t"})
	if err != nil || !u.Local {
		t.Fatalf("add: %+v %v", u, err)
	}
	if _, err := s.Add(ctx, users.New{Name: "ann", Role: users.Admin, Password: pw, Actor: "t"}); !errors.Is(err, users.ErrExists) {
		t.Errorf("second ann: %v", err)
	}
	if _, err := s.Add(ctx, users.New{Name: "sso@example.com", Role: users.Viewer, Actor: "t"}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Authenticate(ctx, "ann", pw)
	if err != nil || got.Role != users.Operator {
		t.Errorf("authenticate: %+v %v", got, err)
	}
	for _, c := range []struct{ name, pw string }{{"ann", "a wrong password"}, {"nobody", "a long enough password"}, {"sso@example.com", ""}} {
		if _, err := s.Authenticate(ctx, c.name, secrets.NewValue(c.pw)); !errors.Is(err, users.ErrBadCredentials) {
			t.Errorf("%s: %v, want ErrBadCredentials", c.name, err)
		}
	}
	var stored string
	if err := db.QueryRow(ctx, `SELECT password_hash FROM console_users WHERE name = 'ann'`).Scan(&stored); err != nil || strings.Contains(stored, "long enough") {
		t.Errorf("stored %q", stored)
	}
	if !users.Admin.Allows(users.Operator) || users.Viewer.Allows(users.Operator) || users.Role("root").Allows(users.Viewer) {
		t.Error("role ranks are wrong")
	}
}
