// Package secrets protects the credentials ml-connector holds: it encrypts
// connection secrets (ERP client secrets, AIS passwords, GoCardless tokens,
// webhook secrets) for storage in Postgres with AES-256-GCM under a master
// key taken from the environment, and it provides [Value], a string that
// refuses to print itself so plaintext cannot slip into logs or errors.
//
// # Keys and rotation
//
// A [Keyring] holds one primary key, used for every new [Keyring.Seal], and
// any number of previous keys, which are only used to open data sealed
// before a rotation. Each [Sealed] value carries the id of the key that
// sealed it; the id is a fingerprint (the first 8 bytes of the key's SHA-256,
// hex encoded), so it is safe to store next to the ciphertext and to log.
// Rotating the master key is therefore: deploy with the new key as primary
// and the old one as previous, re-seal every row for which
// [Keyring.NeedsRotation] reports true (see [Keyring.Reseal]), then drop the
// old key.
//
// # Associated data
//
// Every Seal and Open takes additional authenticated data (AAD). It is not
// secret and not stored, but it must be identical at Seal and Open time or
// Open fails with [ErrDecrypt]. Callers bind each ciphertext to the row and
// field it belongs to, e.g. AAD("connection", id, "client_secret"), so that a
// ciphertext copied into another row or another column (say, one tenant's
// token pasted over another's, or a webhook secret moved into the token
// column) fails to decrypt instead of silently authenticating as someone
// else. Use [AAD] to build it so every caller encodes it the same way.
package secrets

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// KeySize is the length in bytes of a master key (AES-256).
const KeySize = 32

// Errors returned by [Keyring.Open]; test for them with [errors.Is].
// Messages never contain plaintext or key material.
var (
	// ErrUnknownKey means the value was sealed under a key this keyring does
	// not hold: the wrong master key is configured, or a previous key was
	// dropped before every row had been re-sealed.
	ErrUnknownKey = errors.New("secrets: unknown key id")
	// ErrDecrypt means authentication failed: the ciphertext was altered,
	// the associated data differs from the one used to seal it (the
	// ciphertext was moved to another row or field), or the key with the
	// right id is not the key that sealed it.
	ErrDecrypt = errors.New("secrets: decryption failed")
	// ErrMalformed means the value is not something Seal could have
	// produced: truncated, empty key id, or an unsupported format version.
	ErrMalformed = errors.New("secrets: malformed sealed value")
)

const (
	// formatV1 is the first byte of every ciphertext. It lets a later
	// format (another cipher, a KDF) coexist with stored v1 rows.
	formatV1 = 1

	idBytes   = 8
	nonceSize = 12 // standard GCM nonce
	tagSize   = 16
	overhead  = 1 + nonceSize + tagSize
)

// Sealed is an encrypted secret as stored: the id of the key that sealed it
// and the ciphertext (format version, random nonce, AES-GCM output).
// Neither field is secret.
type Sealed struct {
	KeyID      string
	Ciphertext []byte
}

// A Keyring seals with its primary key and opens with any of its keys.
// It holds no raw key bytes after construction and is safe for concurrent use.
type Keyring struct {
	primary string
	keys    map[string]cipher.AEAD
	order   []string // primary first, then previous keys as given
	// roots are one-way derivations of each key, from which Derive makes
	// keys for other purposes without keeping the key itself.
	roots map[string][]byte
}

// KeyID returns the fingerprint that identifies key in [Sealed.KeyID]:
// the first 8 bytes of its SHA-256, hex encoded.
func KeyID(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:idBytes])
}

// NewKeyring returns a keyring that seals under primary and can open values
// sealed under primary or any of previous. Each key must be [KeySize] bytes
// and not all zeros. A previous key equal to the primary, or repeated, is
// ignored, so it is harmless to list the current key among the previous ones
// during a rollout. The keyring does not retain the slices passed in.
func NewKeyring(primary []byte, previous ...[]byte) (*Keyring, error) {
	if err := checkKey(primary); err != nil {
		return nil, fmt.Errorf("secrets: primary key: %w", err)
	}
	k := &Keyring{keys: make(map[string]cipher.AEAD, 1+len(previous))}
	if err := k.add(primary); err != nil {
		return nil, fmt.Errorf("secrets: primary key: %w", err)
	}
	k.primary = k.order[0]
	for i, p := range previous {
		if err := checkKey(p); err != nil {
			return nil, fmt.Errorf("secrets: previous key %d: %w", i+1, err)
		}
		if err := k.add(p); err != nil {
			return nil, fmt.Errorf("secrets: previous key %d: %w", i+1, err)
		}
	}
	return k, nil
}

// ParseKeyring is [NewKeyring] for keys given in base64 (see [DecodeKey]),
// as they appear in MLC_MASTER_KEY and MLC_PREVIOUS_MASTER_KEYS.
// Empty entries in previous are skipped.
func ParseKeyring(primaryB64 string, previousB64 []string) (*Keyring, error) {
	primary, err := DecodeKey(primaryB64)
	if err != nil {
		return nil, fmt.Errorf("secrets: primary key: %w", err)
	}
	var previous [][]byte
	for i, s := range previousB64 {
		if strings.TrimSpace(s) == "" {
			continue
		}
		p, err := DecodeKey(s)
		if err != nil {
			return nil, fmt.Errorf("secrets: previous key %d: %w", i+1, err)
		}
		previous = append(previous, p)
	}
	k, err := NewKeyring(primary, previous...)
	clear(primary)
	for _, p := range previous {
		clear(p)
	}
	return k, err
}

// DecodeKey decodes a base64 master key and checks it is [KeySize] bytes.
// Standard and URL alphabets, padded or not, are accepted, and surrounding
// whitespace (a trailing newline from a mounted file) is ignored. The error
// never includes the input.
func DecodeKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("key is empty")
	}
	var key []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if key, err = enc.DecodeString(s); err == nil {
			break
		}
	}
	if err != nil {
		// err names a byte offset only, but a generic message is enough.
		return nil, errors.New("key is not valid base64")
	}
	if err := checkKey(key); err != nil {
		clear(key)
		return nil, err
	}
	return key, nil
}

func checkKey(key []byte) error {
	if len(key) != KeySize {
		return fmt.Errorf("key is %d bytes, want %d", len(key), KeySize)
	}
	// An all-zero key is what a template placeholder or a failed read of
	// /dev/urandom produces; accepting it would "encrypt" with a public key.
	if bytes.Count(key, []byte{0}) == len(key) {
		return errors.New("key is all zeros")
	}
	return nil
}

func (k *Keyring) add(key []byte) error {
	id := KeyID(key)
	if _, ok := k.keys[id]; ok {
		// Either the same key listed twice, or a 64-bit fingerprint
		// collision between different keys. Distinguishing them would mean
		// keeping raw keys around; a collision is astronomically unlikely
		// and would surface as ErrDecrypt, never as a wrong plaintext.
		return nil
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return fmt.Errorf("aes: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return fmt.Errorf("gcm: %w", err)
	}
	k.keys[id] = aead
	k.order = append(k.order, id)
	if k.roots == nil {
		k.roots = map[string][]byte{}
	}
	root := hmac.New(sha256.New, key)
	root.Write([]byte("mlc-keyring-derive-v1"))
	k.roots[id] = root.Sum(nil)
	return nil
}

// Derive returns a key for purpose from each of the keyring's keys, by
// key id, and the id of the primary's: keys for another use (the audit
// log's MACs) that rotate with the master key, and from which neither the
// master key nor another purpose's keys can be computed.
func (k *Keyring) Derive(purpose string) (primary string, keys map[string][]byte) {
	keys = make(map[string][]byte, len(k.roots))
	for id, root := range k.roots {
		m := hmac.New(sha256.New, root)
		m.Write([]byte(purpose))
		keys[id] = m.Sum(nil)
	}
	return k.primary, keys
}

// PrimaryID returns the id of the key new values are sealed under.
func (k *Keyring) PrimaryID() string {
	if k == nil {
		return ""
	}
	return k.primary
}

// KeyIDs returns the ids of all keys, primary first.
func (k *Keyring) KeyIDs() []string {
	if k == nil {
		return nil
	}
	return slices.Clone(k.order)
}

// String describes the keyring by key ids only, so printing it is safe.
func (k *Keyring) String() string {
	if k == nil {
		return "secrets.Keyring(nil)"
	}
	return fmt.Sprintf("secrets.Keyring(primary=%s, keys=%d)", k.primary, len(k.order))
}

// GoString is String, so %#v cannot reach the cipher state either.
func (k *Keyring) GoString() string { return k.String() }

// Seal encrypts plaintext under the primary key, binding it to aad (see the
// package documentation). A fresh random nonce is used on every call, so
// sealing the same plaintext twice gives different ciphertexts.
func (k *Keyring) Seal(plaintext, aad []byte) (Sealed, error) {
	if k == nil || k.primary == "" {
		return Sealed{}, errors.New("secrets: seal: no keyring")
	}
	aead := k.keys[k.primary]
	out := make([]byte, 1+nonceSize, overhead+len(plaintext))
	out[0] = formatV1
	if _, err := rand.Read(out[1:]); err != nil {
		return Sealed{}, fmt.Errorf("secrets: seal: nonce: %w", err)
	}
	out = aead.Seal(out, out[1:], plaintext, gcmAAD(out[0], k.primary, aad))
	return Sealed{KeyID: k.primary, Ciphertext: out}, nil
}

// Open decrypts s, which must have been sealed with the same aad. It fails
// with an error wrapping [ErrMalformed], [ErrUnknownKey] or [ErrDecrypt].
func (k *Keyring) Open(s Sealed, aad []byte) ([]byte, error) {
	if k == nil {
		return nil, errors.New("secrets: open: no keyring")
	}
	if s.KeyID == "" {
		return nil, fmt.Errorf("%w: empty key id", ErrMalformed)
	}
	ct := s.Ciphertext
	if len(ct) < overhead {
		return nil, fmt.Errorf("%w: ciphertext is %d bytes, want at least %d", ErrMalformed, len(ct), overhead)
	}
	if ct[0] != formatV1 {
		return nil, fmt.Errorf("%w: unsupported format version %d", ErrMalformed, ct[0])
	}
	aead, ok := k.keys[s.KeyID]
	if !ok {
		return nil, fmt.Errorf("%w %s (keyring has %s)", ErrUnknownKey, strconv.Quote(s.KeyID), strings.Join(k.order, ", "))
	}
	nonce, body := ct[1:1+nonceSize], ct[1+nonceSize:]
	pt, err := aead.Open(nil, nonce, body, gcmAAD(ct[0], s.KeyID, aad))
	if err != nil {
		// GCM says only "message authentication failed"; say which key was
		// tried so an operator can tell this from ErrUnknownKey.
		return nil, fmt.Errorf("%w under key %s", ErrDecrypt, s.KeyID)
	}
	return pt, nil
}

// NeedsRotation reports whether s is sealed under a key other than the
// primary, including a key this keyring does not hold.
func (k *Keyring) NeedsRotation(s Sealed) bool {
	return k == nil || s.KeyID != k.primary
}

// Reseal opens s and seals the plaintext again under the primary key with
// the same aad. If s is already sealed under the primary key it is returned
// unchanged, so callers can re-seal every row and write back only those whose
// KeyID changed.
func (k *Keyring) Reseal(s Sealed, aad []byte) (Sealed, error) {
	if !k.NeedsRotation(s) {
		return s, nil
	}
	pt, err := k.Open(s, aad)
	if err != nil {
		return Sealed{}, err
	}
	defer clear(pt)
	return k.Seal(pt, aad)
}

// SealValue is [Keyring.Seal] for a [Value].
func (k *Keyring) SealValue(v Value, aad []byte) (Sealed, error) {
	return k.Seal([]byte(v.Reveal()), aad)
}

// OpenValue is [Keyring.Open] returning the plaintext as a [Value], so it
// stays redacted until the one place that must use it.
func (k *Keyring) OpenValue(s Sealed, aad []byte) (Value, error) {
	pt, err := k.Open(s, aad)
	if err != nil {
		return Value{}, err
	}
	v := NewValue(string(pt))
	clear(pt)
	return v, nil
}

// gcmAAD is what GCM authenticates besides the ciphertext: the format
// version and the key id (so neither can be altered without detection),
// then the caller's aad. The first two parts have fixed length, so the
// concatenation is unambiguous.
func gcmAAD(version byte, keyID string, aad []byte) []byte {
	id, err := hex.DecodeString(keyID)
	if err != nil || len(id) != idBytes {
		// Only reachable for ids that are not in the keyring, which Open
		// rejects before getting here; fall back to the raw text anyway.
		id = []byte(keyID)
	}
	b := make([]byte, 0, 1+len(id)+len(aad))
	b = append(b, version)
	b = append(b, id...)
	return append(b, aad...)
}

// AAD encodes parts (for example "connection", the row id and the column
// name) as associated data for Seal and Open. Each part is length-prefixed,
// so ("a:b", "c") and ("a", "b:c") differ. The encoding is part of the
// stored format: changing it would make every stored secret undecryptable.
func AAD(parts ...string) []byte {
	var b []byte
	for _, p := range parts {
		b = strconv.AppendInt(b, int64(len(p)), 10)
		b = append(b, ':')
		b = append(b, p...)
		b = append(b, ',')
	}
	return b
}
