package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"slices"

	"go.opentelemetry.io/otel/trace"
)

// Keys of the trace attributes added to every record logged with a context
// that carries a valid span.
const (
	TraceIDKey = "trace_id"
	SpanIDKey  = "span_id"
)

// NewHandler wraps next so that every record gets trace_id and span_id from
// its context and is redacted as the package documentation describes, with
// r as the registry of known secrets (nil for none). Structured values
// (slog.Any of structs, maps, slices) are inspected through their JSON
// encoding, which is how a JSON handler prints them, so next should be a
// JSON handler.
//
// Attributes and groups added with WithAttrs and WithGroup are kept by the
// wrapper and re-checked on every record, so that a secret registered after
// a logger was derived is still scrubbed, and so that trace ids stay at the
// top level however deep the logger's group.
func NewHandler(next slog.Handler, r *Redactor) slog.Handler {
	return &handler{next: next, r: r}
}

type handler struct {
	next slog.Handler
	r    *Redactor
	// chain holds WithAttrs and WithGroup calls in order; at Handle the
	// record's attributes are nested inside it, innermost group last.
	chain []link
}

// link is either a group (group != "") or a set of attributes.
type link struct {
	group string
	attrs []slog.Attr
}

func (h *handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	// Resolve (and redact) now, as slog's own handlers do for WithAttrs.
	return h.with(link{attrs: h.redactAttrs(attrs)})
}

func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return h.with(link{group: name})
}

func (h *handler) with(l link) *handler {
	return &handler{next: h.next, r: h.r, chain: append(slices.Clip(h.chain), l)}
}

func (h *handler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, h.r.Scrub(rec.Message), rec.PC)

	attrs := make([]slog.Attr, 0, rec.NumAttrs())
	rec.Attrs(func(a slog.Attr) bool {
		attrs = append(attrs, h.redact(a))
		return true
	})
	top := 0 // attributes before the first group stay at the top level
	for i := len(h.chain) - 1; i >= 0; i-- {
		l := h.chain[i]
		switch {
		case l.group == "":
			attrs = append(h.redactAttrs(l.attrs), attrs...)
		case len(attrs) == 0:
			// slog omits a group with no attributes; so do we.
		case IsSecretKey(l.group):
			attrs = []slog.Attr{slog.String(l.group, Redacted)}
		default:
			attrs = []slog.Attr{{Key: l.group, Value: slog.GroupValue(attrs...)}}
		}
	}
	for _, l := range h.chain {
		if l.group != "" {
			break
		}
		top += len(l.attrs)
	}
	if ctx != nil {
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			attrs = slices.Insert(attrs, top,
				slog.String(TraceIDKey, sc.TraceID().String()),
				slog.String(SpanIDKey, sc.SpanID().String()))
		}
	}
	out.AddAttrs(attrs...)
	return h.next.Handle(ctx, out)
}

func (h *handler) redactAttrs(attrs []slog.Attr) []slog.Attr {
	out := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		out[i] = h.redact(a)
	}
	return out
}

// redact returns a with its value resolved and redacted. It never modifies
// the caller's attribute or group slices.
func (h *handler) redact(a slog.Attr) slog.Attr {
	a.Value = a.Value.Resolve()
	if a.Key != "" && IsSecretKey(a.Key) {
		if a.Value.Kind() == slog.KindGroup && len(a.Value.Group()) == 0 {
			return a // omitted by the handler anyway
		}
		return slog.String(a.Key, Redacted)
	}
	switch a.Value.Kind() {
	case slog.KindString:
		if s := h.r.Scrub(a.Value.String()); s != a.Value.String() {
			a.Value = slog.StringValue(s)
		}
	case slog.KindGroup:
		a.Value = slog.GroupValue(h.redactAttrs(a.Value.Group())...)
	case slog.KindAny:
		a.Value = h.redactAny(a.Value)
	}
	return a
}

// redactAny handles the values a JSON handler prints through
// error.Error or encoding/json.
func (h *handler) redactAny(v slog.Value) slog.Value {
	x := v.Any()
	if x == nil {
		return v
	}
	if err, ok := x.(error); ok {
		if _, ok := x.(json.Marshaler); !ok {
			msg := err.Error()
			if s := h.r.Scrub(msg); s != msg {
				return slog.StringValue(s)
			}
			return v
		}
	}
	b, err := marshal(x)
	if err != nil {
		return v // the handler reports the marshalling error itself
	}
	red, changed, err := h.redactJSON(b)
	if err != nil {
		// Our own encoder's output did not parse back; withhold rather
		// than print something unchecked.
		return slog.StringValue(Redacted)
	}
	if !changed {
		return v
	}
	return slog.AnyValue(rawJSON(red))
}

// rawJSON is a redacted structured value, already encoded.
type rawJSON []byte

func (r rawJSON) MarshalJSON() ([]byte, error) { return r, nil }
func (r rawJSON) MarshalText() ([]byte, error) { return r, nil }

// marshal encodes like slog's JSON handler: no HTML escaping.
func marshal(x any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(x); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// redactJSON rewrites a JSON document token by token, preserving key order
// and number text, redacting values under secret keys and scrubbing every
// string (object keys included).
func (h *handler) redactJSON(b []byte) (out []byte, changed bool, err error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	w := &jsonRewriter{dec: dec, r: h.r}
	if err := w.value(); err != nil {
		return nil, false, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false, errors.New("trailing data")
	}
	return w.buf.Bytes(), w.changed, nil
}

type jsonRewriter struct {
	dec     *json.Decoder
	r       *Redactor
	buf     bytes.Buffer
	changed bool
}

func (w *jsonRewriter) value() error {
	tok, err := w.dec.Token()
	if err != nil {
		return err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			w.buf.WriteByte('{')
			for i := 0; w.dec.More(); i++ {
				if i > 0 {
					w.buf.WriteByte(',')
				}
				ktok, err := w.dec.Token()
				if err != nil {
					return err
				}
				key, ok := ktok.(string)
				if !ok {
					return errors.New("object key is not a string")
				}
				w.string(key)
				w.buf.WriteByte(':')
				if IsSecretKey(key) {
					if err := w.skip(); err != nil {
						return err
					}
					w.changed = true
					w.buf.WriteString(`"` + Redacted + `"`)
					continue
				}
				if err := w.value(); err != nil {
					return err
				}
			}
			w.buf.WriteByte('}')
		case '[':
			w.buf.WriteByte('[')
			for i := 0; w.dec.More(); i++ {
				if i > 0 {
					w.buf.WriteByte(',')
				}
				if err := w.value(); err != nil {
					return err
				}
			}
			w.buf.WriteByte(']')
		default:
			return errors.New("unexpected delimiter")
		}
		_, err := w.dec.Token() // the closing delimiter
		return err
	case string:
		w.string(t)
	case json.Number:
		w.buf.WriteString(t.String())
	case bool:
		if t {
			w.buf.WriteString("true")
		} else {
			w.buf.WriteString("false")
		}
	case nil:
		w.buf.WriteString("null")
	default:
		return errors.New("unexpected token")
	}
	return nil
}

func (w *jsonRewriter) string(s string) {
	if r := w.r.Scrub(s); r != s {
		s, w.changed = r, true
	}
	b, _ := marshal(s) // a string always encodes
	w.buf.Write(b)
}

// skip consumes one value.
func (w *jsonRewriter) skip() error {
	depth := 0
	for {
		tok, err := w.dec.Token()
		if err != nil {
			return err
		}
		if d, ok := tok.(json.Delim); ok {
			if d == '{' || d == '[' {
				depth++
			} else {
				depth--
			}
		}
		if depth == 0 {
			return nil
		}
	}
}
