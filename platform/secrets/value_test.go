package secrets

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

const plaintext = "hunter2-super-secret"

type withExported struct {
	Name  string
	Token Value
}

type withUnexported struct {
	name  string
	token Value
}

type withPointer struct {
	Token *Value
}

func TestValueReveal(t *testing.T) {
	v := NewValue(plaintext)
	if v.Reveal() != plaintext {
		t.Errorf("Reveal = %q", v.Reveal())
	}
	if v.Empty() {
		t.Error("Empty = true")
	}
	var zero Value
	if zero.Reveal() != "" || !zero.Empty() || !NewValue("").Empty() {
		t.Error("zero Value not empty")
	}
	if zero.String() != Redacted {
		t.Error("zero Value String")
	}
}

func TestValueNeverPrints(t *testing.T) {
	v := NewValue(plaintext)
	p := &v
	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10s", "%-20v", "%T %v", "%[1]v"}
	args := map[string]any{
		"value":      v,
		"pointer":    p,
		"exported":   withExported{"n", v},
		"unexported": withUnexported{"n", v},
		"struct ptr": &withUnexported{"n", v},
		"field ptr":  withPointer{p},
		"slice":      []Value{v, v},
		"map":        map[string]Value{"k": v},
		"any slice":  []any{v},
	}
	for name, arg := range args {
		for _, verb := range verbs {
			out := fmt.Sprintf(verb, arg)
			if strings.Contains(out, plaintext) {
				t.Errorf("%s with %s leaks: %s", name, verb, out)
			}
		}
		if out := fmt.Sprint(arg) + fmt.Sprintln(arg); strings.Contains(out, plaintext) {
			t.Errorf("%s with Sprint leaks: %s", name, out)
		}
	}
	if got := fmt.Sprintf("%v|%s|%q|%#v", v, v, v, v); got != "[REDACTED]|[REDACTED]|[REDACTED]|[REDACTED]" {
		t.Errorf("formatted = %s", got)
	}
	if v.GoString() != Redacted {
		t.Error("GoString")
	}
}

func TestValueNeverMarshals(t *testing.T) {
	v := NewValue(plaintext)
	for name, arg := range map[string]any{
		"value":    v,
		"pointer":  &v,
		"exported": withExported{"n", v},
		"map":      map[string]Value{"k": v},
	} {
		b, err := json.Marshal(arg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if bytes.Contains(b, []byte(plaintext)) || !bytes.Contains(b, []byte(Redacted)) {
			t.Errorf("json %s: %s", name, b)
		}
		x, err := xml.Marshal(struct{ V any }{arg})
		if err == nil && bytes.Contains(x, []byte(plaintext)) {
			t.Errorf("xml %s: %s", name, x)
		}
	}
	b, _ := json.Marshal(v)
	if string(b) != `"[REDACTED]"` {
		t.Errorf("json = %s", b)
	}
	txt, _ := v.MarshalText()
	if string(txt) != Redacted {
		t.Errorf("text = %s", txt)
	}
}

func TestValueNeverLogs(t *testing.T) {
	v := NewValue(plaintext)
	var buf bytes.Buffer
	for _, h := range []slog.Handler{slog.NewJSONHandler(&buf, nil), slog.NewTextHandler(&buf, nil)} {
		l := slog.New(h)
		l.Info("msg", "token", v, "ptr", &v, "struct", withExported{"n", v}, "unexported", withUnexported{"n", v},
			slog.Group("g", "token", v), slog.Any("any", v))
		l.With("token", v).WithGroup("g").Info("msg", "token", v)
	}
	if strings.Contains(buf.String(), plaintext) {
		t.Errorf("slog output leaks:\n%s", buf.String())
	}
	if !strings.Contains(buf.String(), Redacted) {
		t.Errorf("slog output has no placeholder:\n%s", buf.String())
	}
	if got := v.LogValue(); got.Kind() != slog.KindString || got.String() != Redacted {
		t.Errorf("LogValue = %v", got)
	}
}

func TestValueNeverLeaksThroughErrors(t *testing.T) {
	v := NewValue(plaintext)
	base := errors.New("401 unauthorized")
	errs := []error{
		fmt.Errorf("login with %v: %w", v, base),
		fmt.Errorf("login with %s: %w", v, base),
		fmt.Errorf("login with %q: %w", v, base),
		fmt.Errorf("login with %+v: %w", withUnexported{"u", v}, base),
		fmt.Errorf("outer: %w", fmt.Errorf("inner %v", v)),
		fmt.Errorf("outer: %v", fmt.Errorf("inner %#v", v)),
		errors.Join(base, fmt.Errorf("token %v", v)),
	}
	for _, err := range errs {
		if strings.Contains(err.Error(), plaintext) || strings.Contains(fmt.Sprintf("%+v", err), plaintext) {
			t.Errorf("error leaks: %v", err)
		}
	}
}

func TestValueUnmarshal(t *testing.T) {
	var req struct {
		Name   string
		Secret Value
	}
	if err := json.Unmarshal([]byte(`{"Name":"ifs","Secret":"from-operator"}`), &req); err != nil {
		t.Fatal(err)
	}
	if req.Secret.Reveal() != "from-operator" {
		t.Errorf("Reveal = %q", req.Secret.Reveal())
	}
	// Reading back a marshalled config must not store the placeholder.
	out, _ := json.Marshal(req)
	if err := json.Unmarshal(out, &req); err == nil {
		t.Error("unmarshalling the placeholder succeeded")
	}
	var v Value
	if err := v.UnmarshalText([]byte("abc")); err != nil || v.Reveal() != "abc" {
		t.Errorf("UnmarshalText = %q, %v", v.Reveal(), err)
	}
}
