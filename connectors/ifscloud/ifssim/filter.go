package ifssim

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The $filter subset the simulator understands: comparisons of a field with
// a literal (eq ne gt ge lt le), combined with and, or, not and
// parentheses. Literals: 'strings' (with '' for a quote), numbers,
// 2026-01-01 dates, 2026-01-01T00:00:00Z date-times, true, false, null and
// qualified enumerations IfsApp.<Projection>.<Enum>'Value'. Everything
// else (functions, lambdas, in, has, arithmetic, field-to-field
// comparisons, unqualified enumeration values) is refused with 400
// ODP_UNSUPPORTED_URL, as IFS refuses what its OData provider does not
// implement.

type tokKind int

const (
	tEOF tokKind = iota
	tLParen
	tRParen
	tComma
	tIdent
	tString
	tEnum
	tNumber
	tDate
	tDateTime
)

type token struct {
	k        tokKind
	text     string
	enumType string
	pos      int
}

var (
	dateTimeRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$`)
	dateRE     = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
	numberRE   = regexp.MustCompile(`^-?\d+(\.\d+)?$`)
)

func unsupported(format string, args ...any) *apiError {
	return &apiError{status: 400, code: "ODP_UNSUPPORTED_URL", msg: fmt.Sprintf(format, args...)}
}

func lex(s string) ([]token, *apiError) {
	var toks []token
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			i++
		case c == '(':
			toks = append(toks, token{k: tLParen, pos: i})
			i++
		case c == ')':
			toks = append(toks, token{k: tRParen, pos: i})
			i++
		case c == ',':
			toks = append(toks, token{k: tComma, pos: i})
			i++
		case c == '\'':
			text, n, err := quoted(s[i:])
			if err != nil {
				return nil, unsupported("$filter: %v at %d", err, i)
			}
			toks = append(toks, token{k: tString, text: text, pos: i})
			i += n
		case isLetter(c):
			j := i
			for j < len(s) && (isLetter(s[j]) || isDigit(s[j]) || s[j] == '.') {
				j++
			}
			ident := s[i:j]
			if j < len(s) && s[j] == '\'' {
				text, n, err := quoted(s[j:])
				if err != nil {
					return nil, unsupported("$filter: %v at %d", err, j)
				}
				toks = append(toks, token{k: tEnum, text: text, enumType: ident, pos: i})
				i = j + n
				continue
			}
			toks = append(toks, token{k: tIdent, text: ident, pos: i})
			i = j
		case isDigit(c) || (c == '-' && i+1 < len(s) && isDigit(s[i+1])):
			j := i + 1
			for j < len(s) && (isDigit(s[j]) || isLetter(s[j]) || strings.IndexByte(":.+-", s[j]) >= 0) {
				j++
			}
			lit := s[i:j]
			switch {
			case dateTimeRE.MatchString(lit):
				toks = append(toks, token{k: tDateTime, text: lit, pos: i})
			case dateRE.MatchString(lit):
				toks = append(toks, token{k: tDate, text: lit, pos: i})
			case numberRE.MatchString(lit):
				toks = append(toks, token{k: tNumber, text: lit, pos: i})
			default:
				return nil, unsupported("$filter: literal %q at %d is not supported", lit, i)
			}
			i = j
		default:
			return nil, unsupported("$filter: %q at %d is not supported", string(c), i)
		}
	}
	return append(toks, token{k: tEOF, pos: len(s)}), nil
}

// quoted reads a '...' literal at the start of s, ” standing for a quote.
func quoted(s string) (string, int, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] != '\'' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '\'' {
			b.WriteByte('\'')
			i++
			continue
		}
		return b.String(), i + 1, nil
	}
	return "", 0, fmt.Errorf("unterminated string")
}

func isLetter(c byte) bool { return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }

// node is a parsed filter condition.
type node interface {
	eval(vals []value) bool
}

type orNode struct{ a, b node }
type andNode struct{ a, b node }
type notNode struct{ a node }
type cmpNode struct {
	idx int // field position in the row
	op  string
	lit value
}

func (n orNode) eval(v []value) bool  { return n.a.eval(v) || n.b.eval(v) }
func (n andNode) eval(v []value) bool { return n.a.eval(v) && n.b.eval(v) }
func (n notNode) eval(v []value) bool { return !n.a.eval(v) }

func (n cmpNode) eval(vals []value) bool {
	v := vals[n.idx]
	if v.k == kNull || n.lit.k == kNull {
		switch n.op {
		case "eq":
			return v.k == n.lit.k
		case "ne":
			return v.k != n.lit.k
		}
		return false
	}
	c := compare(v, n.lit)
	switch n.op {
	case "eq":
		return c == 0
	case "ne":
		return c != 0
	case "gt":
		return c > 0
	case "ge":
		return c >= 0
	case "lt":
		return c < 0
	}
	return c <= 0 // le
}

// parseFilter parses a $filter for the fields of schema.
func parseFilter(s string, schema map[string]fieldDef) (node, *apiError) {
	toks, err := lex(s)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks, schema: schema}
	n, err := p.or()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.k != tEOF {
		return nil, unsupported("$filter: unexpected %s at %d", describe(t), t.pos)
	}
	return n, nil
}

type parser struct {
	toks   []token
	i      int
	schema map[string]fieldDef
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token {
	t := p.toks[p.i]
	if t.k != tEOF {
		p.i++
	}
	return t
}

func (p *parser) keyword(word string) bool {
	if t := p.peek(); t.k == tIdent && t.text == word {
		p.i++
		return true
	}
	return false
}

func (p *parser) or() (node, *apiError) {
	n, err := p.and()
	for err == nil && p.keyword("or") {
		var m node
		if m, err = p.and(); err == nil {
			n = orNode{n, m}
		}
	}
	return n, err
}

func (p *parser) and() (node, *apiError) {
	n, err := p.not()
	for err == nil && p.keyword("and") {
		var m node
		if m, err = p.not(); err == nil {
			n = andNode{n, m}
		}
	}
	return n, err
}

func (p *parser) not() (node, *apiError) {
	if p.keyword("not") {
		n, err := p.not()
		return notNode{n}, err
	}
	return p.atom()
}

var comparisons = map[string]bool{"eq": true, "ne": true, "gt": true, "ge": true, "lt": true, "le": true}

func (p *parser) atom() (node, *apiError) {
	t := p.next()
	if t.k == tLParen {
		n, err := p.or()
		if err != nil {
			return nil, err
		}
		if c := p.next(); c.k != tRParen {
			return nil, unsupported("$filter: expected ) at %d, got %s", c.pos, describe(c))
		}
		return n, nil
	}
	if t.k != tIdent {
		return nil, unsupported("$filter: expected a field at %d, got %s", t.pos, describe(t))
	}
	if p.peek().k == tLParen {
		return nil, unsupported("$filter: function %s() is not supported", t.text)
	}
	f, ok := p.schema[t.text]
	if !ok {
		return nil, unsupported("$filter: property %s does not exist", t.text)
	}
	op := p.next()
	if op.k != tIdent || !comparisons[op.text] {
		return nil, unsupported("$filter: operator %s at %d is not supported", describe(op), op.pos)
	}
	litTok := p.next()
	lit, err := literalFor(f, op.text, litTok)
	if err != nil {
		return nil, err
	}
	return cmpNode{idx: f.idx, op: op.text, lit: lit}, nil
}

// literalFor checks that the literal suits the field and converts it.
func literalFor(f fieldDef, op string, t token) (value, *apiError) {
	if t.k == tIdent && t.text == "null" {
		if op != "eq" && op != "ne" {
			return null, unsupported("$filter: %s %s null is not supported", f.name, op)
		}
		return null, nil
	}
	mismatch := func() (value, *apiError) {
		return null, unsupported("$filter: %s cannot be compared with %s", f.name, describe(t))
	}
	switch f.k {
	case kString:
		if t.k != tString {
			return mismatch()
		}
		return str(t.text), nil
	case kEnum:
		if t.k == tString {
			return null, unsupported("$filter: enumeration %s needs a qualified value such as %s'%s'", f.name, f.enum, t.text)
		}
		if t.k != tEnum {
			return mismatch()
		}
		if t.enumType != f.enum {
			return null, unsupported("$filter: %s is of type %s, not %s", f.name, f.enum, t.enumType)
		}
		if op != "eq" && op != "ne" {
			return null, unsupported("$filter: enumeration %s only supports eq and ne", f.name)
		}
		return enum(t.text), nil
	case kInt:
		if t.k != tNumber {
			return mismatch()
		}
		if i, err := strconv.ParseInt(t.text, 10, 64); err == nil {
			return integer(i), nil
		}
		return decimal(t.text), nil
	case kDecimal:
		if t.k != tNumber {
			return mismatch()
		}
		return decimal(t.text), nil
	case kDate:
		if t.k != tDate {
			return mismatch()
		}
		return dateValue(t.text), nil
	case kDateTime:
		if t.k != tDateTime {
			return mismatch()
		}
		ts, err := time.Parse(time.RFC3339Nano, t.text)
		if err != nil {
			if ts, err = time.Parse("2006-01-02T15:04Z07:00", t.text); err != nil {
				return mismatch()
			}
		}
		return instant(ts), nil
	case kBool:
		if t.k != tIdent || (t.text != "true" && t.text != "false") {
			return mismatch()
		}
		return boolean(t.text == "true"), nil
	}
	return mismatch()
}

func describe(t token) string {
	switch t.k {
	case tEOF:
		return "end of filter"
	case tLParen:
		return "("
	case tRParen:
		return ")"
	case tComma:
		return ","
	case tString:
		return "'" + t.text + "'"
	case tEnum:
		return t.enumType + "'" + t.text + "'"
	}
	return t.text
}
