package audit

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/ml-connector/ml-connector/platform/secrets"
)

// Keys sign audit entries (each row's MAC) and checkpoints of the chains'
// heads, under keys the database never holds. New entries are signed with
// the primary key; rows and checkpoints signed with any of the keys
// verify, so the keys rotate with the master keyring they derive from.
type Keys struct {
	primary string
	keys    map[string][]byte
}

// KeysFrom derives the audit keys from the master keyring: one per master
// key, under the key's id.
func KeysFrom(k *secrets.Keyring) *Keys {
	primary, keys := k.Derive("mlc-audit-mac")
	return &Keys{primary: primary, keys: keys}
}

// NewKeys returns keys with primary as the signing key's id; keys maps
// every id to its key (at least 32 bytes).
func NewKeys(primary string, keys map[string][]byte) (*Keys, error) {
	if _, ok := keys[primary]; !ok {
		return nil, errors.New("audit: the primary key is not among the keys")
	}
	for id, k := range keys {
		if len(k) < 32 {
			return nil, fmt.Errorf("audit: key %s is %d bytes, want at least 32", id, len(k))
		}
	}
	return &Keys{primary: primary, keys: keys}, nil
}

// sign returns the MAC of msg (in domain) under the primary key.
func (k *Keys) sign(domain string, msg []byte) (keyID string, mac []byte) {
	return k.primary, k.mac(k.keys[k.primary], domain, msg)
}

// check reports whether mac is msg's MAC under key keyID; known is false
// for a key id these keys do not have.
func (k *Keys) check(keyID, domain string, msg, mac []byte) (ok, known bool) {
	key, known := k.keys[keyID]
	if !known {
		return false, false
	}
	return hmac.Equal(mac, k.mac(key, domain, msg)), true
}

func (k *Keys) mac(key []byte, domain string, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(domain))
	m.Write([]byte{0})
	m.Write(msg)
	return m.Sum(nil)
}

const rowMACDomain = "mlc-audit-row-v1"

// signing holds the keys Append signs with (nil: rows are not signed).
var signing atomic.Pointer[Keys]

// SignWith makes every later Append in this process sign its rows with
// keys. Services call it once at start-up (platform/service), with keys
// derived from the master keyring; nil stops signing.
func SignWith(keys *Keys) { signing.Store(keys) }
