package ifssim

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// kind is the EDM type of a field, as far as the simulator distinguishes.
type kind uint8

const (
	kNull     kind = iota
	kString        // Edm.String
	kEnum          // an IFS enumeration, compared only with qualified literals
	kInt           // Edm.Int64 / integral Edm.Decimal keys
	kDecimal       // Edm.Decimal amounts
	kDate          // Edm.Date
	kDateTime      // Edm.DateTimeOffset
	kBool          // Edm.Boolean
)

// value is one field value, kept small because the simulator scans every
// row of a set for each query. Empty strings are stored as null, as IFS
// returns them.
type value struct {
	k kind
	s string   // string, enum, date and decimal text
	n int64    // int; date-time as Unix nanoseconds (UTC); bool as 0 or 1
	r *big.Rat // decimal
}

var null = value{}

func str(s string) value {
	if s == "" {
		return null
	}
	return value{k: kString, s: s}
}

func enum(s string) value {
	if s == "" {
		return null
	}
	return value{k: kEnum, s: s}
}

func integer(i int64) value { return value{k: kInt, n: i} }

func boolean(b bool) value {
	if b {
		return value{k: kBool, n: 1}
	}
	return value{k: kBool}
}

func dateValue(s string) value {
	if s == "" {
		return null
	}
	return value{k: kDate, s: s}
}

func instant(t time.Time) value {
	if t.IsZero() {
		return null
	}
	return value{k: kDateTime, n: t.UnixNano()}
}

var decimalRE = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)

// decimal parses exact decimal text; callers validated it.
func decimal(s string) value {
	if s == "" {
		return null
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return null
	}
	return value{k: kDecimal, s: s, r: r}
}

func (v value) text() string {
	switch v.k {
	case kNull:
		return ""
	case kInt:
		return strconv.FormatInt(v.n, 10)
	case kDateTime:
		return v.time().Format(time.RFC3339Nano)
	case kBool:
		return strconv.FormatBool(v.n == 1)
	}
	return v.s
}

func (v value) time() time.Time { return time.Unix(0, v.n).UTC() }

// rat returns a numeric value as a rational.
func (v value) rat() *big.Rat {
	if v.k == kInt {
		return new(big.Rat).SetInt64(v.n)
	}
	return v.r
}

// compare orders two values; null sorts first. Callers make sure the kinds
// are comparable.
func compare(a, b value) int {
	if a.k == kNull || b.k == kNull {
		switch {
		case a.k == b.k:
			return 0
		case a.k == kNull:
			return -1
		default:
			return 1
		}
	}
	switch a.k {
	case kInt:
		if b.k == kInt {
			return cmp.Compare(a.n, b.n)
		}
		return a.rat().Cmp(b.rat())
	case kDecimal:
		return a.rat().Cmp(b.rat())
	case kDateTime, kBool:
		return cmp.Compare(a.n, b.n)
	}
	return strings.Compare(a.s, b.s)
}

// writeJSON appends the value as IFS sends it. With ieee754, Int64 and
// Decimal values are strings, as OData's IEEE754Compatible=true asks.
func (v value) writeJSON(b *bytes.Buffer, ieee754 bool) {
	switch v.k {
	case kNull:
		b.WriteString("null")
	case kInt:
		if ieee754 {
			b.WriteByte('"')
		}
		b.WriteString(strconv.FormatInt(v.n, 10))
		if ieee754 {
			b.WriteByte('"')
		}
	case kDecimal:
		if ieee754 {
			b.WriteByte('"')
		}
		b.WriteString(v.s)
		if ieee754 {
			b.WriteByte('"')
		}
	case kBool:
		b.WriteString(strconv.FormatBool(v.n == 1))
	default:
		writeString(b, v.text())
	}
}

// writeString writes s as a JSON string, copying plain text directly.
func writeString(b *bytes.Buffer, s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			quoted, _ := json.Marshal(s)
			b.Write(quoted)
			return
		}
	}
	b.WriteByte('"')
	b.WriteString(s)
	b.WriteByte('"')
}

// fieldDef describes one field of an entity type.
type fieldDef struct {
	name string
	k    kind
	enum string // qualified enumeration type, for kEnum
	idx  int    // position in row.vals
}

// parseLiteralFor converts the text of a skip token or key back into a
// value of the field's kind.
func parseLiteralFor(f fieldDef, text string) (value, error) {
	switch f.k {
	case kString:
		return str(text), nil
	case kEnum:
		return enum(text), nil
	case kInt:
		i, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return null, fmt.Errorf("%s: %q is not an integer", f.name, text)
		}
		return integer(i), nil
	case kDecimal:
		if !decimalRE.MatchString(text) {
			return null, fmt.Errorf("%s: %q is not a decimal", f.name, text)
		}
		return decimal(text), nil
	case kDate:
		if _, err := time.Parse(time.DateOnly, text); err != nil {
			return null, fmt.Errorf("%s: %q is not a date", f.name, text)
		}
		return dateValue(text), nil
	case kDateTime:
		t, err := time.Parse(time.RFC3339Nano, text)
		if err != nil {
			return null, fmt.Errorf("%s: %q is not a date and time", f.name, text)
		}
		return instant(t), nil
	case kBool:
		b, err := strconv.ParseBool(text)
		if err != nil {
			return null, fmt.Errorf("%s: %q is not a boolean", f.name, text)
		}
		return boolean(b), nil
	}
	return null, fmt.Errorf("%s: unsupported type", f.name)
}
