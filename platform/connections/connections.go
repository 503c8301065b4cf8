// Package connections is the registry of the systems ml-connector talks to:
// ERP tenants (IFS Cloud, JD Edwards) and GoCardless accounts. Settings are
// plain JSON; secrets are sealed with AES-256-GCM under the master keyring,
// bound to their connection and name, and are only ever decrypted into
// secrets.Value, which cannot be printed. Every change is audited.
package connections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ml-connector/ml-connector/platform/audit"
	"github.com/ml-connector/ml-connector/platform/database"
	"github.com/ml-connector/ml-connector/platform/secrets"
)

// Kind is the kind of system a connection reaches.
type Kind string

const (
	KindIFS        Kind = "ifs"
	KindJDE        Kind = "jde"
	KindGoCardless Kind = "gocardless"
)

// requirements lists, per kind, the settings and secrets without which a
// connection cannot work. Clients may read more settings, with defaults.
var requirements = map[Kind]struct{ settings, secrets []string }{
	KindIFS:        {settings: []string{"base_url", "client_id", "company_codes"}, secrets: []string{"client_secret"}},
	KindJDE:        {settings: []string{"base_url", "username", "company_codes"}, secrets: []string{"password"}},
	KindGoCardless: {settings: []string{"base_url"}, secrets: []string{"access_token"}},
}

// ParseKind validates a kind name.
func ParseKind(s string) (Kind, error) {
	k := Kind(strings.ToLower(strings.TrimSpace(s)))
	if _, ok := requirements[k]; !ok {
		return "", fmt.Errorf("unknown connection kind %q (want ifs, jde or gocardless)", s)
	}
	return k, nil
}

// Connection is a registry entry without its secrets.
type Connection struct {
	ID       int64          `json:"id"`
	Name     string         `json:"name"`
	Kind     Kind           `json:"kind"`
	Settings map[string]any `json:"settings"`
	// Secrets names each stored secret and the id of the key that sealed it;
	// never a value.
	Secrets   map[string]string `json:"secrets"`
	CreatedAt time.Time         `json:"created_at"`
	UpdatedAt time.Time         `json:"updated_at"`
}

// CompanyCodes returns the "company_codes" setting as strings.
func (c Connection) CompanyCodes() []string {
	raw, _ := c.Settings["company_codes"].([]any)
	codes := make([]string, 0, len(raw))
	for _, v := range raw {
		if s, ok := v.(string); ok {
			codes = append(codes, s)
		}
	}
	return codes
}

// Errors callers can branch on.
var (
	ErrNotFound = errors.New("connection not found")
	ErrExists   = errors.New("connection already exists")
	ErrInUse    = errors.New("connection has collection history")
)

// Store reads and writes the registry.
type Store struct {
	db   *pgxpool.Pool
	keys *secrets.Keyring
}

// NewStore returns a registry over db; keys seal and open secrets.
func NewStore(db *pgxpool.Pool, keys *secrets.Keyring) *Store {
	return &Store{db: db, keys: keys}
}

// New describes a connection to add.
type New struct {
	Name     string
	Kind     Kind
	Settings map[string]any
	Secrets  map[string]secrets.Value
	Actor    string // who adds it, for the audit log
}

func (n New) validate() error {
	var errs []error
	if !ValidName(n.Name) {
		errs = append(errs, fmt.Errorf("name %.80q must be 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit", n.Name))
	}
	if err := CheckSettings(n.Settings); err != nil {
		errs = append(errs, err)
	}
	req, ok := requirements[n.Kind]
	if !ok {
		return errors.Join(append(errs, fmt.Errorf("unknown kind %q", n.Kind))...)
	}
	for _, key := range req.settings {
		if v, ok := n.Settings[key]; !ok || v == nil || v == "" {
			errs = append(errs, fmt.Errorf("setting %q is required for %s connections", key, n.Kind))
		}
	}
	if v, ok := n.Settings["company_codes"]; ok {
		if list, ok := v.([]any); !ok || len(list) == 0 {
			errs = append(errs, errors.New(`setting "company_codes" must be a non-empty list`))
		}
	}
	for _, name := range req.secrets {
		if v, ok := n.Secrets[name]; !ok || v.Empty() {
			errs = append(errs, fmt.Errorf("secret %q is required for %s connections", name, n.Kind))
		}
	}
	return errors.Join(errs...)
}

// aad binds a ciphertext to its connection and secret name, so a sealed
// value copied into another row or field no longer opens.
func aad(connectionID int64, secret string) []byte {
	return secrets.AAD("connection", fmt.Sprint(connectionID), secret)
}

// Add validates and stores a new connection, sealing its secrets.
func (s *Store) Add(ctx context.Context, n New) (Connection, error) {
	if err := n.validate(); err != nil {
		return Connection{}, fmt.Errorf("add connection: %w", err)
	}
	settings, err := json.Marshal(n.Settings)
	if err != nil {
		return Connection{}, fmt.Errorf("add connection: settings: %w", err)
	}
	var c Connection
	err = database.WithTx(ctx, s.db, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx,
			`INSERT INTO connections (name, kind, settings) VALUES ($1, $2, $3)
			 RETURNING id, created_at, updated_at`,
			n.Name, string(n.Kind), settings).Scan(&c.ID, &c.CreatedAt, &c.UpdatedAt)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" {
			return fmt.Errorf("%q: %w", n.Name, ErrExists)
		}
		if err != nil {
			return err
		}
		c.Name, c.Kind, c.Settings, c.Secrets = n.Name, n.Kind, n.Settings, map[string]string{}
		for name, value := range n.Secrets {
			sealed, err := s.keys.SealValue(value, aad(c.ID, name))
			if err != nil {
				return fmt.Errorf("seal %s: %w", name, err)
			}
			if _, err := tx.Exec(ctx,
				`INSERT INTO connection_secrets (connection_id, name, key_id, ciphertext) VALUES ($1, $2, $3, $4)`,
				c.ID, name, sealed.KeyID, sealed.Ciphertext); err != nil {
				return fmt.Errorf("store secret %s: %w", name, err)
			}
			c.Secrets[name] = sealed.KeyID
		}
		_, err = audit.Append(ctx, tx, audit.Entry{
			AggregateType: "connection",
			AggregateID:   n.Name,
			Actor:         n.Actor,
			Action:        "connection.added",
			Payload:       map[string]any{"kind": n.Kind, "settings": n.Settings, "secrets": c.Secrets},
		})
		return err
	})
	if err != nil {
		return Connection{}, fmt.Errorf("add connection: %w", err)
	}
	return c, nil
}

// List returns every connection, ordered by name, without secret values.
func (s *Store) List(ctx context.Context) ([]Connection, error) {
	return s.query(ctx, "", "")
}

// ListKind returns the connections of one kind.
func (s *Store) ListKind(ctx context.Context, kind Kind) ([]Connection, error) {
	return s.query(ctx, kind, "")
}

// Get returns one connection by name.
func (s *Store) Get(ctx context.Context, name string) (Connection, error) {
	found, err := s.query(ctx, "", name)
	if err != nil {
		return Connection{}, err
	}
	if len(found) == 0 {
		return Connection{}, fmt.Errorf("%q: %w", name, ErrNotFound)
	}
	return found[0], nil
}

// Version changes whenever a connection or one of its secrets is added,
// changed or removed: a caller that caches the registry compares it with
// the version it read to know when to drop its copies.
func (s *Store) Version(ctx context.Context) (string, error) {
	var v string
	err := s.db.QueryRow(ctx, `
		SELECT (SELECT count(*) || '/' || coalesce(max(updated_at)::text, '') FROM connections) || ' ' ||
		       (SELECT count(*) || '/' || coalesce(max(updated_at)::text, '') FROM connection_secrets)`).Scan(&v)
	if err != nil {
		return "", fmt.Errorf("registry version: %w", err)
	}
	return v, nil
}

// query lists connections, optionally only of one kind or one name.
func (s *Store) query(ctx context.Context, kind Kind, name string) ([]Connection, error) {
	rows, err := s.db.Query(ctx, `
		SELECT c.id, c.name, c.kind, c.settings, c.created_at, c.updated_at,
		       coalesce(jsonb_object_agg(cs.name, cs.key_id) FILTER (WHERE cs.name IS NOT NULL), '{}')
		FROM connections c LEFT JOIN connection_secrets cs ON cs.connection_id = c.id
		WHERE ($1 = '' OR c.kind = $1) AND ($2 = '' OR c.name = $2)
		GROUP BY c.id ORDER BY c.name`, string(kind), name)
	if err != nil {
		return nil, fmt.Errorf("list connections: %w", err)
	}
	defer rows.Close()
	var out []Connection
	for rows.Next() {
		var c Connection
		var kindText string
		if err := rows.Scan(&c.ID, &c.Name, &kindText, &c.Settings, &c.CreatedAt, &c.UpdatedAt, &c.Secrets); err != nil {
			return nil, fmt.Errorf("list connections: %w", err)
		}
		c.Kind = Kind(kindText)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list connections: %w", err)
	}
	return out, nil
}

// Secrets decrypts the secrets of the named connection. A wrong master key
// or a tampered ciphertext is an error naming the secret, never its value.
func (s *Store) Secrets(ctx context.Context, name string) (map[string]secrets.Value, error) {
	rows, err := s.db.Query(ctx, `
		SELECT c.id, cs.name, cs.key_id, cs.ciphertext
		FROM connections c JOIN connection_secrets cs ON cs.connection_id = c.id
		WHERE c.name = $1`, name)
	if err != nil {
		return nil, fmt.Errorf("connection %q secrets: %w", name, err)
	}
	defer rows.Close()
	out := map[string]secrets.Value{}
	for rows.Next() {
		var id int64
		var secretName string
		var sealed secrets.Sealed
		if err := rows.Scan(&id, &secretName, &sealed.KeyID, &sealed.Ciphertext); err != nil {
			return nil, fmt.Errorf("connection %q secrets: %w", name, err)
		}
		v, err := s.keys.OpenValue(sealed, aad(id, secretName))
		if err != nil {
			return nil, fmt.Errorf("connection %q secret %q: %w", name, secretName, err)
		}
		out[secretName] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("connection %q secrets: %w", name, err)
	}
	if len(out) == 0 {
		if _, err := s.Get(ctx, name); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Remove deletes a connection and its secrets. A connection that money or
// mandates refer to cannot be removed: its history must stay explainable.
func (s *Store) Remove(ctx context.Context, name, actor string) error {
	err := database.WithTx(ctx, s.db, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM connections WHERE name = $1`, name)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23503" {
			return fmt.Errorf("%q: %w", name, ErrInUse)
		}
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("%q: %w", name, ErrNotFound)
		}
		_, err = audit.Append(ctx, tx, audit.Entry{
			AggregateType: "connection", AggregateID: name, Actor: actor, Action: "connection.removed",
			Payload: map[string]any{},
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("remove connection: %w", err)
	}
	return nil
}

// Rotate re-seals every secret not sealed under the primary key, after an
// operator made a new MLC_MASTER_KEY primary and moved the old one to
// MLC_PREVIOUS_MASTER_KEYS. It returns how many secrets it re-sealed.
func (s *Store) Rotate(ctx context.Context, actor string) (int, error) {
	var n int
	err := database.WithTx(ctx, s.db, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			SELECT c.id, c.name, cs.name, cs.key_id, cs.ciphertext
			FROM connections c JOIN connection_secrets cs ON cs.connection_id = c.id
			WHERE cs.key_id <> $1 FOR UPDATE OF cs`, s.keys.PrimaryID())
		if err != nil {
			return err
		}
		type stale struct {
			id           int64
			conn, secret string
			sealed       secrets.Sealed
		}
		var todo []stale
		for rows.Next() {
			var st stale
			if err := rows.Scan(&st.id, &st.conn, &st.secret, &st.sealed.KeyID, &st.sealed.Ciphertext); err != nil {
				rows.Close()
				return err
			}
			todo = append(todo, st)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		rotated := map[string][]string{}
		for _, st := range todo {
			fresh, err := s.keys.Reseal(st.sealed, aad(st.id, st.secret))
			if err != nil {
				return fmt.Errorf("connection %q secret %q: %w", st.conn, st.secret, err)
			}
			if _, err := tx.Exec(ctx,
				`UPDATE connection_secrets SET key_id = $3, ciphertext = $4 WHERE connection_id = $1 AND name = $2`,
				st.id, st.secret, fresh.KeyID, fresh.Ciphertext); err != nil {
				return err
			}
			rotated[st.conn] = append(rotated[st.conn], st.secret)
		}
		conns := make([]string, 0, len(rotated))
		for c := range rotated {
			conns = append(conns, c)
		}
		sort.Strings(conns)
		for _, c := range conns {
			names := rotated[c]
			slices.Sort(names)
			if _, err := audit.Append(ctx, tx, audit.Entry{
				AggregateType: "connection", AggregateID: c, Actor: actor, Action: "connection.secrets_rotated",
				Payload: map[string]any{"secrets": names, "key_id": s.keys.PrimaryID()},
			}); err != nil {
				return err
			}
		}
		n = len(todo)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("rotate secrets: %w", err)
	}
	return n, nil
}

// SetSecrets replaces or adds secrets of the named connection (a rotated
// client secret, a new GoCardless token), sealed under the primary key.
// The audit entry names the secrets, never their values.
func (s *Store) SetSecrets(ctx context.Context, name string, vals map[string]secrets.Value, actor string) error {
	if len(vals) == 0 {
		return errors.New("set secrets: none given")
	}
	names := make([]string, 0, len(vals))
	for n, v := range vals {
		if n == "" || v.Empty() {
			return fmt.Errorf("set secrets: secret %q is empty", n)
		}
		names = append(names, n)
	}
	sort.Strings(names)
	err := database.WithTx(ctx, s.db, func(tx pgx.Tx) error {
		var id int64
		err := tx.QueryRow(ctx, `SELECT id FROM connections WHERE name = $1 FOR UPDATE`, name).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%q: %w", name, ErrNotFound)
		}
		if err != nil {
			return err
		}
		for _, n := range names {
			sealed, err := s.keys.SealValue(vals[n], aad(id, n))
			if err != nil {
				return fmt.Errorf("seal %s: %w", n, err)
			}
			if _, err := tx.Exec(ctx, `
				INSERT INTO connection_secrets (connection_id, name, key_id, ciphertext) VALUES ($1, $2, $3, $4)
				ON CONFLICT (connection_id, name) DO UPDATE SET key_id = excluded.key_id, ciphertext = excluded.ciphertext`,
				id, n, sealed.KeyID, sealed.Ciphertext); err != nil {
				return fmt.Errorf("store secret %s: %w", n, err)
			}
		}
		_, err = audit.Append(ctx, tx, audit.Entry{AggregateType: "connection", AggregateID: name, Actor: actor,
			Action: "connection.secrets_replaced", Payload: map[string]any{"secrets": names, "key_id": s.keys.PrimaryID()}})
		return err
	})
	if err != nil {
		return fmt.Errorf("set secrets: %w", err)
	}
	return nil
}
