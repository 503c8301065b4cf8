package secrets

import (
	"errors"
	"fmt"
	"log/slog"
)

// Redacted is what a [Value] shows instead of its plaintext. The logging
// package uses the same placeholder.
const Redacted = "[REDACTED]"

// Value is a secret string that does not reveal itself when printed,
// formatted with any verb, marshalled to JSON or text, or logged with
// log/slog: all of these yield [Redacted]. Only [Value.Reveal] returns the
// plaintext; call it at the one place that needs it (setting an
// Authorization header, computing an HMAC) and nowhere else.
//
// The zero Value is the empty secret. Values are not comparable with ==
// (that would compare identities, not secrets); compare revealed plaintexts
// with crypto/subtle if you must.
type Value struct {
	_ [0]func() // makes == a compile error
	// p is a pointer so that reflection-based printing of a struct holding
	// a Value in an unexported field (which fmt cannot call methods on)
	// shows an address rather than the plaintext.
	p *string
}

// NewValue wraps plaintext as a secret.
func NewValue(plaintext string) Value {
	return Value{p: &plaintext}
}

// Reveal returns the plaintext.
func (v Value) Reveal() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}

// Empty reports whether the secret is the empty string.
func (v Value) Empty() bool { return v.Reveal() == "" }

// String returns [Redacted].
func (v Value) String() string { return Redacted }

// GoString returns [Redacted], for %#v.
func (v Value) GoString() string { return Redacted }

// Format writes [Redacted] whatever the verb and flags, so %x or %q cannot
// reveal the plaintext either.
func (v Value) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(Redacted)) }

// LogValue returns [Redacted] as a slog string value.
func (v Value) LogValue() slog.Value { return slog.StringValue(Redacted) }

// MarshalJSON returns [Redacted] as a JSON string.
func (v Value) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText returns [Redacted].
func (v Value) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// errPlaceholder guards against a config or request that was produced by
// marshalling a Value (and so holds the placeholder) being read back and
// stored as if it were the secret.
var errPlaceholder = errors.New("secrets: refusing the redaction placeholder as a secret")

// UnmarshalText sets the secret to text, so a Value can be decoded from
// input such as an operator's JSON request. It rejects [Redacted] itself.
func (v *Value) UnmarshalText(text []byte) error {
	if string(text) == Redacted {
		return errPlaceholder
	}
	*v = NewValue(string(text))
	return nil
}
