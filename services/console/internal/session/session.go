// Package session keeps who is signed in to the console. A session is a
// random 256-bit token in the browser's cookie; the database holds only its
// SHA-256, so a copy of the table signs nobody in. The CSRF token of a
// session is derived from its token, so it needs no storage and dies with
// the session.
package session

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNoSession is returned for a missing, unknown or expired token.
var ErrNoSession = errors.New("no session")

// Store keeps sessions in Postgres.
type Store struct {
	db  *pgxpool.Pool
	ttl time.Duration
}

// NewStore returns sessions in db that last ttl from sign-in.
func NewStore(db *pgxpool.Pool, ttl time.Duration) *Store { return &Store{db: db, ttl: ttl} }

// TTL is how long a session lasts.
func (s *Store) TTL() time.Duration { return s.ttl }

// tokenLen is the token's length in bytes before encoding.
const tokenLen = 32

func hash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// Create starts a session for a user and returns its token.
func (s *Store) Create(ctx context.Context, userID int64) (string, error) {
	b := make([]byte, tokenLen)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	token := base64.RawURLEncoding.EncodeToString(b)
	if _, err := s.db.Exec(ctx, `INSERT INTO console_sessions (token_hash, user_id, expires_at) VALUES ($1, $2, $3)`,
		hash(token), userID, time.Now().Add(s.ttl)); err != nil {
		return "", fmt.Errorf("create session: %w", err)
	}
	return token, nil
}

// User returns the user id of a live session.
func (s *Store) User(ctx context.Context, token string) (int64, error) {
	if len(token) != base64.RawURLEncoding.EncodedLen(tokenLen) {
		return 0, ErrNoSession
	}
	var id int64
	err := s.db.QueryRow(ctx, `SELECT user_id FROM console_sessions WHERE token_hash = $1 AND expires_at > now()`, hash(token)).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, ErrNoSession
	}
	if err != nil {
		return 0, fmt.Errorf("session: %w", err)
	}
	return id, nil
}

// Delete ends a session.
func (s *Store) Delete(ctx context.Context, token string) error {
	if _, err := s.db.Exec(ctx, `DELETE FROM console_sessions WHERE token_hash = $1`, hash(token)); err != nil {
		return fmt.Errorf("end session: %w", err)
	}
	return nil
}

// Sweep deletes expired sessions and returns how many.
func (s *Store) Sweep(ctx context.Context) (int64, error) {
	tag, err := s.db.Exec(ctx, `DELETE FROM console_sessions WHERE expires_at <= now()`)
	if err != nil {
		return 0, fmt.Errorf("sweep sessions: %w", err)
	}
	return tag.RowsAffected(), nil
}

// CSRF is the anti-forgery token of the session with token: forms carry
// it, and a state-changing request without it is refused.
func CSRF(token string) string {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("mlc-console-csrf-v1"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// CheckCSRF reports whether got is the session's CSRF token, in constant
// time.
func CheckCSRF(token, got string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(CSRF(token)), []byte(got)) == 1
}
