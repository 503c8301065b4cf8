package secrets

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

func newKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func mustKeyring(t *testing.T, primary []byte, previous ...[]byte) *Keyring {
	t.Helper()
	k, err := NewKeyring(primary, previous...)
	if err != nil {
		t.Fatalf("NewKeyring: %v", err)
	}
	return k
}

var aad = AAD("connection", "6f1c2d4e", "client_secret")

func TestRoundTrip(t *testing.T) {
	kr := mustKeyring(t, newKey(t))
	for _, pt := range [][]byte{nil, []byte("x"), []byte("s3cr3t-client-secret"), bytes.Repeat([]byte{0xff}, 4096)} {
		s, err := kr.Seal(pt, aad)
		if err != nil {
			t.Fatalf("Seal: %v", err)
		}
		if s.KeyID != kr.PrimaryID() {
			t.Errorf("KeyID = %q, want primary %q", s.KeyID, kr.PrimaryID())
		}
		if len(pt) >= 4 && bytes.Contains(s.Ciphertext, pt) {
			t.Error("ciphertext contains plaintext")
		}
		if got, want := len(s.Ciphertext), len(pt)+overhead; got != want {
			t.Errorf("len(ciphertext) = %d, want %d", got, want)
		}
		got, err := kr.Open(s, aad)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if !bytes.Equal(got, pt) {
			t.Errorf("Open = %q, want %q", got, pt)
		}
	}
}

func TestSealIsRandomized(t *testing.T) {
	kr := mustKeyring(t, newKey(t))
	a, _ := kr.Seal([]byte("same"), aad)
	b, _ := kr.Seal([]byte("same"), aad)
	if bytes.Equal(a.Ciphertext, b.Ciphertext) {
		t.Fatal("two seals of the same plaintext are identical; nonce reused")
	}
}

func TestOpenErrors(t *testing.T) {
	key := newKey(t)
	kr := mustKeyring(t, key)
	const secret = "very-secret-token-value"
	sealed, err := kr.Seal([]byte(secret), aad)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) Sealed {
		c := bytes.Clone(sealed.Ciphertext)
		c[i] ^= 0x01
		return Sealed{KeyID: sealed.KeyID, Ciphertext: c}
	}
	other := newKey(t)
	// A keyring whose only key is different but which claims the id of the
	// sealing key: models a forged or corrupted key id.
	forged := mustKeyring(t, other)
	forged.keys[sealed.KeyID] = forged.keys[forged.primary]

	tests := []struct {
		name string
		kr   *Keyring
		s    Sealed
		aad  []byte
		want error
	}{
		{"wrong key", mustKeyring(t, other), sealed, aad, ErrUnknownKey},
		{"forged key id", forged, sealed, aad, ErrDecrypt},
		{"flip in version", kr, flip(0), aad, ErrMalformed},
		{"flip in nonce", kr, flip(1), aad, ErrDecrypt},
		{"flip in body", kr, flip(1 + nonceSize), aad, ErrDecrypt},
		{"flip in tag", kr, flip(len(sealed.Ciphertext) - 1), aad, ErrDecrypt},
		{"wrong aad field", kr, sealed, AAD("connection", "6f1c2d4e", "webhook_secret"), ErrDecrypt},
		{"wrong aad row", kr, sealed, AAD("connection", "6f1c2d4f", "client_secret"), ErrDecrypt},
		{"nil aad", kr, sealed, nil, ErrDecrypt},
		{"truncated", kr, Sealed{KeyID: sealed.KeyID, Ciphertext: sealed.Ciphertext[:overhead-1]}, aad, ErrMalformed},
		{"empty ciphertext", kr, Sealed{KeyID: sealed.KeyID}, aad, ErrMalformed},
		{"empty key id", kr, Sealed{Ciphertext: sealed.Ciphertext}, aad, ErrMalformed},
		{"key id of unknown key", kr, Sealed{KeyID: "0011223344556677", Ciphertext: sealed.Ciphertext}, aad, ErrUnknownKey},
		{"key id swapped to another known key", mustKeyring(t, other, key), Sealed{KeyID: KeyID(other), Ciphertext: sealed.Ciphertext}, aad, ErrDecrypt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pt, err := tt.kr.Open(tt.s, tt.aad)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open error = %v, want %v", err, tt.want)
			}
			if pt != nil {
				t.Errorf("Open returned plaintext %q with error", pt)
			}
			msg := err.Error()
			if strings.Contains(msg, secret) || strings.Contains(msg, fmt.Sprintf("%x", key)) ||
				strings.Contains(msg, base64.StdEncoding.EncodeToString(key)) {
				t.Errorf("error leaks secret or key: %s", msg)
			}
		})
	}
}

func TestRotation(t *testing.T) {
	oldKey, newK := newKey(t), newKey(t)
	before := mustKeyring(t, oldKey)
	sealed, err := before.Seal([]byte("ais-password"), aad)
	if err != nil {
		t.Fatal(err)
	}
	if before.NeedsRotation(sealed) {
		t.Error("NeedsRotation true for a value sealed under the primary")
	}

	after := mustKeyring(t, newK, oldKey)
	if got := after.KeyIDs(); len(got) != 2 || got[0] != KeyID(newK) || got[1] != KeyID(oldKey) {
		t.Errorf("KeyIDs = %v", got)
	}
	pt, err := after.Open(sealed, aad)
	if err != nil || string(pt) != "ais-password" {
		t.Fatalf("Open under previous key = %q, %v", pt, err)
	}
	if !after.NeedsRotation(sealed) {
		t.Fatal("NeedsRotation false for a value sealed under a previous key")
	}
	resealed, err := after.Reseal(sealed, aad)
	if err != nil {
		t.Fatalf("Reseal: %v", err)
	}
	if resealed.KeyID != KeyID(newK) || after.NeedsRotation(resealed) {
		t.Errorf("Reseal left KeyID %s, want primary %s", resealed.KeyID, KeyID(newK))
	}
	if pt, err := after.Open(resealed, aad); err != nil || string(pt) != "ais-password" {
		t.Fatalf("Open resealed = %q, %v", pt, err)
	}
	// Once the old key is dropped, only the re-sealed value opens.
	final := mustKeyring(t, newK)
	if _, err := final.Open(sealed, aad); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("old value after dropping old key: %v, want ErrUnknownKey", err)
	}
	if _, err := final.Open(resealed, aad); err != nil {
		t.Errorf("resealed value after dropping old key: %v", err)
	}

	// Resealing a primary value is a no-op; resealing with the wrong aad fails.
	same, err := after.Reseal(resealed, aad)
	if err != nil || !bytes.Equal(same.Ciphertext, resealed.Ciphertext) {
		t.Errorf("Reseal of primary value changed it (err %v)", err)
	}
	if _, err := after.Reseal(sealed, AAD("other")); !errors.Is(err, ErrDecrypt) {
		t.Errorf("Reseal with wrong aad: %v, want ErrDecrypt", err)
	}
	// A key the keyring does not hold needs rotation but cannot be resealed.
	unknown := Sealed{KeyID: "0011223344556677", Ciphertext: sealed.Ciphertext}
	if !after.NeedsRotation(unknown) {
		t.Error("NeedsRotation false for unknown key")
	}
	if _, err := after.Reseal(unknown, aad); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Reseal unknown: %v, want ErrUnknownKey", err)
	}
}

func TestNewKeyringValidation(t *testing.T) {
	good := newKey(t)
	tests := []struct {
		name     string
		primary  []byte
		previous [][]byte
		wantErr  string
	}{
		{"ok", good, nil, ""},
		{"ok with previous", good, [][]byte{newKey(t)}, ""},
		{"previous equals primary", good, [][]byte{good}, ""},
		{"nil primary", nil, nil, "primary key: key is 0 bytes, want 32"},
		{"short primary", good[:16], nil, "primary key: key is 16 bytes, want 32"},
		{"long primary", append(bytes.Clone(good), 1), nil, "primary key: key is 33 bytes, want 32"},
		{"zero primary", make([]byte, 32), nil, "primary key: key is all zeros"},
		{"bad previous", good, [][]byte{newKey(t), good[:31]}, "previous key 2: key is 31 bytes, want 32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kr, err := NewKeyring(tt.primary, tt.previous...)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				if kr.PrimaryID() != KeyID(tt.primary) {
					t.Errorf("PrimaryID = %s", kr.PrimaryID())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
			}
		})
	}
	kr := mustKeyring(t, good, good, good)
	if n := len(kr.KeyIDs()); n != 1 {
		t.Errorf("duplicate keys kept: %d ids", n)
	}
}

func TestNewKeyringDoesNotAlias(t *testing.T) {
	key := newKey(t)
	orig := bytes.Clone(key)
	kr := mustKeyring(t, key)
	s, _ := kr.Seal([]byte("x"), aad)
	clear(key) // caller wipes its copy
	if _, err := kr.Open(s, aad); err != nil {
		t.Fatalf("keyring depends on caller's slice: %v", err)
	}
	if KeyID(orig) != kr.PrimaryID() {
		t.Fatal("id changed")
	}
}

func TestParseKeyring(t *testing.T) {
	k1, k2 := newKey(t), newKey(t)
	std := base64.StdEncoding.EncodeToString(k1)
	tests := []struct {
		name     string
		primary  string
		previous []string
		wantErr  string
	}{
		{"std", std, nil, ""},
		{"std with newline", std + "\n", nil, ""},
		{"raw std", base64.RawStdEncoding.EncodeToString(k1), nil, ""},
		{"url", base64.URLEncoding.EncodeToString(k1), nil, ""},
		{"raw url", base64.RawURLEncoding.EncodeToString(k1), nil, ""},
		{"with previous and blanks", std, []string{"", base64.StdEncoding.EncodeToString(k2), " "}, ""},
		{"empty", "", nil, "primary key: key is empty"},
		{"not base64", "not*base64!", nil, "primary key: key is not valid base64"},
		{"16 bytes", base64.StdEncoding.EncodeToString(k1[:16]), nil, "primary key: key is 16 bytes, want 32"},
		{"bad previous", std, []string{"zz*"}, "previous key 1: key is not valid base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kr, err := ParseKeyring(tt.primary, tt.previous)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				if kr.PrimaryID() != KeyID(k1) {
					t.Errorf("PrimaryID = %s, want %s", kr.PrimaryID(), KeyID(k1))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), tt.primary) && tt.primary != "" {
				t.Errorf("error echoes the key: %v", err)
			}
		})
	}
}

func TestKeyID(t *testing.T) {
	// Fixed vector: the id is part of the stored format.
	key := bytes.Repeat([]byte{0x01}, 32)
	if got, want := KeyID(key), "72cd6e8422c407fb"; got != want {
		t.Errorf("KeyID = %s, want %s", got, want)
	}
}

func TestAAD(t *testing.T) {
	if got, want := string(AAD("connection", "42", "client_secret")), "10:connection,2:42,13:client_secret,"; got != want {
		t.Errorf("AAD = %q, want %q", got, want)
	}
	if bytes.Equal(AAD("a:b", "c"), AAD("a", "b:c")) {
		t.Error("AAD is ambiguous")
	}
	if bytes.Equal(AAD("ab", ""), AAD("a", "b")) {
		t.Error("AAD is ambiguous")
	}
}

func TestKeyringPrintsNoKeyMaterial(t *testing.T) {
	key := newKey(t)
	kr := mustKeyring(t, key)
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%x", "%d"} {
		out := fmt.Sprintf(f, kr)
		if bytes.Contains([]byte(out), key) || strings.Contains(out, fmt.Sprintf("%x", key)) || strings.Contains(out, fmt.Sprint(key)) {
			t.Errorf("%s of Keyring leaks key: %s", f, out)
		}
	}
}

func TestNilKeyring(t *testing.T) {
	var kr *Keyring
	if _, err := kr.Seal([]byte("x"), nil); err == nil {
		t.Error("Seal on nil keyring succeeded")
	}
	if _, err := kr.Open(Sealed{KeyID: "x"}, nil); err == nil {
		t.Error("Open on nil keyring succeeded")
	}
	if !kr.NeedsRotation(Sealed{}) || kr.PrimaryID() != "" || kr.KeyIDs() != nil {
		t.Error("nil keyring accessors")
	}
}

func TestValueSealOpen(t *testing.T) {
	kr := mustKeyring(t, newKey(t))
	s, err := kr.SealValue(NewValue("gc-access-token"), aad)
	if err != nil {
		t.Fatal(err)
	}
	v, err := kr.OpenValue(s, aad)
	if err != nil || v.Reveal() != "gc-access-token" {
		t.Fatalf("OpenValue = %v (%q), %v", v, v.Reveal(), err)
	}
	if _, err := kr.OpenValue(s, nil); !errors.Is(err, ErrDecrypt) {
		t.Errorf("OpenValue wrong aad: %v", err)
	}
}

func TestConcurrentUse(t *testing.T) {
	kr := mustKeyring(t, newKey(t), newKey(t))
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			pt := fmt.Appendf(nil, "secret-%d", i)
			for range 100 {
				s, err := kr.Seal(pt, aad)
				if err != nil {
					t.Error(err)
					return
				}
				got, err := kr.Open(s, aad)
				if err != nil || !bytes.Equal(got, pt) {
					t.Errorf("Open = %q, %v", got, err)
					return
				}
			}
		})
	}
	wg.Wait()
}
