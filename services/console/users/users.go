// Package users is the console's accounts: who may sign in, with which
// role, and the argon2id hash of a local account's password. mlcctl users
// add creates them; the console authenticates against them. Passwords are
// only ever held as secrets.Value and stored as a salted argon2id hash;
// every change to an account is audited.
package users

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/argon2"

	"github.com/ml-connector/ml-connector/platform/audit"
	"github.com/ml-connector/ml-connector/platform/database"
	"github.com/ml-connector/ml-connector/platform/secrets"
)

// Role is what an account may do. Each role may do everything the one
// before it may.
type Role string

const (
	// Viewer reads every page.
	Viewer Role = "viewer"
	// Operator also replays, escalates and resolves.
	Operator Role = "operator"
	// Admin also manages connections.
	Admin Role = "admin"
)

var rank = map[Role]int{Viewer: 1, Operator: 2, Admin: 3}

// ParseRole validates a role name.
func ParseRole(s string) (Role, error) {
	r := Role(strings.ToLower(strings.TrimSpace(s)))
	if rank[r] == 0 {
		return "", fmt.Errorf("unknown role %q (want viewer, operator or admin)", s)
	}
	return r, nil
}

// Allows reports whether r may do what need requires.
func (r Role) Allows(need Role) bool { return rank[r] > 0 && rank[r] >= rank[need] }

// User is an account, without its password hash.
type User struct {
	ID       int64  `json:"id"`
	Name     string `json:"name"`
	Role     Role   `json:"role"`
	Local    bool   `json:"local"` // has a password (else signs in through OIDC)
	Disabled bool   `json:"disabled"`
}

// Errors callers branch on.
var (
	ErrExists = errors.New("user already exists")
	// ErrBadCredentials is the one answer to a wrong name, a wrong
	// password, a disabled account or an account without a password, so
	// that the answer does not tell which.
	ErrBadCredentials = errors.New("unknown user or wrong password")
	ErrNotFound       = errors.New("user not found")
	// ErrLocalAccount: a company account may not sign in to an account
	// that has a console password (the provider does not vouch for it).
	ErrLocalAccount = errors.New("account signs in with a password")
	ErrDisabled     = errors.New("account disabled")
)

var validName = regexp.MustCompile(`^[A-Za-z0-9._@+-]{1,254}$`)

// ValidName reports whether name can name an account.
func ValidName(name string) bool { return validName.MatchString(name) }

// MinPasswordLength and MaxPasswordLength bound a local password: long
// enough to resist guessing once rate limited, short enough that hashing
// it costs what argon2 says and no more.
const (
	MinPasswordLength = 12
	MaxPasswordLength = 256
)

// Store reads and writes accounts.
type Store struct {
	db *pgxpool.Pool
	// decoy is compared against when a name is unknown, so that the time a
	// failed sign-in takes does not reveal whether the account exists.
	decoy string
}

// NewStore returns the accounts in db.
func NewStore(db *pgxpool.Pool) *Store {
	return &Store{db: db, decoy: HashPassword(secrets.NewValue(base64.RawStdEncoding.EncodeToString(randomBytes(18))))}
}

// New is an account to add. Password is empty for an account that signs
// in through the OpenID provider.
type New struct {
	Name     string
	Role     Role
	Password secrets.Value
	Actor    string
}

// Add validates and stores an account.
func (s *Store) Add(ctx context.Context, n New) (User, error) {
	if !validName.MatchString(n.Name) {
		return User{}, fmt.Errorf("add user: name %q must be 1-254 letters, digits or ._@+-", n.Name)
	}
	if rank[n.Role] == 0 {
		return User{}, fmt.Errorf("add user: unknown role %q", n.Role)
	}
	var hash *string
	if !n.Password.Empty() {
		if err := CheckPassword(n.Password); err != nil {
			return User{}, fmt.Errorf("add user: %w", err)
		}
		h := HashPassword(n.Password)
		hash = &h
	}
	u := User{Name: n.Name, Role: n.Role, Local: hash != nil}
	err := database.WithTx(ctx, s.db, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO console_users (name, role, password_hash) VALUES ($1, $2, $3) RETURNING id`,
			n.Name, string(n.Role), hash).Scan(&u.ID)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" {
			return fmt.Errorf("%q: %w", n.Name, ErrExists)
		}
		if err != nil {
			return err
		}
		_, err = audit.Append(ctx, tx, audit.Entry{AggregateType: "console_user", AggregateID: n.Name, Actor: n.Actor,
			Action: "user.added", Payload: map[string]any{"role": n.Role, "local": u.Local}})
		return err
	})
	if err != nil {
		return User{}, fmt.Errorf("add user: %w", err)
	}
	return u, nil
}

// CheckPassword says what is wrong with a password for a local account.
func CheckPassword(p secrets.Value) error {
	n := utf8.RuneCountInString(p.Reveal())
	if n < MinPasswordLength || len(p.Reveal()) > MaxPasswordLength {
		return fmt.Errorf("password must be %d to %d characters", MinPasswordLength, MaxPasswordLength)
	}
	return nil
}

// Authenticate returns the local account name and password belong to.
func (s *Store) Authenticate(ctx context.Context, name string, password secrets.Value) (User, error) {
	if len(password.Reveal()) > MaxPasswordLength || !validName.MatchString(name) {
		_ = VerifyPassword(s.decoy, password)
		return User{}, ErrBadCredentials
	}
	var u User
	var hash *string
	err := s.db.QueryRow(ctx, `SELECT id, name, role, password_hash, disabled FROM console_users WHERE name = $1`, name).
		Scan(&u.ID, &u.Name, &u.Role, &hash, &u.Disabled)
	if errors.Is(err, pgx.ErrNoRows) {
		_ = VerifyPassword(s.decoy, password)
		return User{}, ErrBadCredentials
	}
	if err != nil {
		return User{}, fmt.Errorf("authenticate: %w", err)
	}
	if hash == nil {
		_ = VerifyPassword(s.decoy, password)
		return User{}, ErrBadCredentials
	}
	u.Local = true
	if err := VerifyPassword(*hash, password); err != nil || u.Disabled {
		return User{}, ErrBadCredentials
	}
	return u, nil
}

// SignInExternal returns the account of a person the OpenID provider
// vouched for. role is what the provider's claims map to ("" when
// nothing does): an account that does not exist yet is created with it,
// and an existing one takes it when it differs, so the provider's groups
// stay the source of truth; without one, only an account an admin added
// (mlcctl users add --oidc) may sign in, with its own role. Creation and
// role changes are audited under actor.
func (s *Store) SignInExternal(ctx context.Context, name string, role Role, actor string) (User, error) {
	if !validName.MatchString(name) {
		return User{}, fmt.Errorf("sign in %q: %w", name, ErrNotFound)
	}
	if role != "" && rank[role] == 0 {
		return User{}, fmt.Errorf("sign in %s: unknown role %q", name, role)
	}
	var u User
	err := database.WithTx(ctx, s.db, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT id, name, role, password_hash IS NOT NULL, disabled FROM console_users WHERE name = $1 FOR UPDATE`, name).
			Scan(&u.ID, &u.Name, &u.Role, &u.Local, &u.Disabled)
		switch {
		case errors.Is(err, pgx.ErrNoRows) && role == "":
			return ErrNotFound
		case errors.Is(err, pgx.ErrNoRows):
			u = User{Name: name, Role: role}
			if err := tx.QueryRow(ctx, `INSERT INTO console_users (name, role) VALUES ($1, $2) RETURNING id`, name, string(role)).Scan(&u.ID); err != nil {
				return err
			}
			_, err = audit.Append(ctx, tx, audit.Entry{AggregateType: "console_user", AggregateID: name, Actor: actor,
				Action: "user.added", Payload: map[string]any{"role": role, "local": false}})
			return err
		case err != nil:
			return err
		case u.Local:
			return ErrLocalAccount
		case u.Disabled:
			return ErrDisabled
		case role == "" || role == u.Role:
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE console_users SET role = $2 WHERE id = $1`, u.ID, string(role)); err != nil {
			return err
		}
		_, err = audit.Append(ctx, tx, audit.Entry{AggregateType: "console_user", AggregateID: name, Actor: actor,
			Action: "user.role_changed", Payload: map[string]any{"from": u.Role, "to": role}})
		u.Role = role
		return err
	})
	if err != nil {
		return User{}, fmt.Errorf("sign in %s: %w", name, err)
	}
	return u, nil
}

// ByID returns an enabled account.
func (s *Store) ByID(ctx context.Context, id int64) (User, error) {
	return s.one(ctx, `WHERE id = $1 AND NOT disabled`, id)
}

func (s *Store) one(ctx context.Context, where string, arg any) (User, error) {
	var u User
	err := s.db.QueryRow(ctx, `SELECT id, name, role, password_hash IS NOT NULL, disabled FROM console_users `+where, arg).
		Scan(&u.ID, &u.Name, &u.Role, &u.Local, &u.Disabled)
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("user: %w", err)
	}
	return u, nil
}

// List returns every account, by name.
func (s *Store) List(ctx context.Context) ([]User, error) {
	rows, err := s.db.Query(ctx, `SELECT id, name, role, password_hash IS NOT NULL, disabled FROM console_users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (User, error) {
		var u User
		err := r.Scan(&u.ID, &u.Name, &u.Role, &u.Local, &u.Disabled)
		return u, err
	})
}

// argon2id parameters: OWASP's recommended configuration of 19 MiB, two
// passes, one lane (Password Storage Cheat Sheet). More memory would cost
// an attacker more, but every concurrent sign-in holds it, and the pods'
// memory limit is small; the parameters are stored with each hash, so they
// can be raised later.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024 // KiB
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16
)

// HashPassword returns the argon2id hash of p as a PHC string
// ($argon2id$v=19$m=...,t=...,p=...$salt$hash), salted at random.
func HashPassword(p secrets.Value) string {
	salt := randomBytes(argonSaltLen)
	key := argon2.IDKey([]byte(p.Reveal()), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// VerifyPassword checks p against a PHC string made by HashPassword, with
// the parameters the string records (so they can be raised later).
func VerifyPassword(encoded string, p secrets.Value) error {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return errors.New("password hash is not argon2id")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return errors.New("password hash has an unknown argon2 version")
	}
	var m, t uint32
	var threads uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &threads); err != nil {
		return errors.New("password hash parameters unreadable")
	}
	// Bounds keep a tampered row from making one sign-in take all memory.
	if m < 8*1024 || m > 1024*1024 || t < 1 || t > 10 || threads < 1 || threads > 16 {
		return errors.New("password hash parameters out of range")
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		return errors.New("password hash salt unreadable")
	}
	want, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(want) < 16 || len(want) > 64 {
		return errors.New("password hash unreadable")
	}
	got := argon2.IDKey([]byte(p.Reveal()), salt, t, m, threads, uint32(len(want)))
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return ErrBadCredentials
	}
	return nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return b
}
