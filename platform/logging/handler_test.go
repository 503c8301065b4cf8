package logging

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/slogtest"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/ml-connector/ml-connector/platform/secrets"
)

// lines decodes every line of buf as a JSON object, failing on any line
// that is not one.
func lines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(buf.Bytes()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line is not a JSON object: %v\n%s", err, sc.Bytes())
		}
		out = append(out, m)
	}
	return out
}

func one(t *testing.T, buf *bytes.Buffer) map[string]any {
	t.Helper()
	ls := lines(t, buf)
	if len(ls) != 1 {
		t.Fatalf("got %d lines, want 1:\n%s", len(ls), buf)
	}
	return ls[0]
}

func newTest(r *Redactor) (*slog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	h := slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})
	return slog.New(NewHandler(h, r)), &buf
}

func spanContext(t *testing.T) (context.Context, trace.SpanContext) {
	t.Helper()
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true})
	if !sc.IsValid() {
		t.Fatal("span context not valid")
	}
	return trace.ContextWithSpanContext(context.Background(), sc), sc
}

func TestSlogConformance(t *testing.T) {
	var buf bytes.Buffer
	slogtest.Run(t, func(t *testing.T) slog.Handler {
		buf.Reset()
		return NewHandler(slog.NewJSONHandler(&buf, nil), NewRedactor())
	}, func(t *testing.T) map[string]any {
		return one(t, &buf)
	})
}

func TestNew(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, slog.LevelInfo, "gc-webhook")
	l.Debug("hidden")
	l.Info("hello", "n", 1)
	m := one(t, &buf)
	if m["service"] != "gc-webhook" || m["msg"] != "hello" || m["level"] != "INFO" || m["n"] != 1.0 {
		t.Errorf("got %v", m)
	}
	if _, ok := m["time"]; !ok {
		t.Error("no time")
	}

	buf.Reset()
	var lv slog.LevelVar
	l = New(&buf, &lv, "x")
	l.Debug("hidden")
	lv.Set(slog.LevelDebug)
	l.Debug("shown")
	if m := one(t, &buf); m["msg"] != "shown" {
		t.Errorf("got %v", m)
	}
}

func TestTraceIDs(t *testing.T) {
	ctx, sc := spanContext(t)
	tests := []struct {
		name string
		log  func(l *slog.Logger)
		want bool
	}{
		{"InfoContext with span", func(l *slog.Logger) { l.InfoContext(ctx, "m") }, true},
		{"LogAttrs with span", func(l *slog.Logger) { l.LogAttrs(ctx, slog.LevelWarn, "m") }, true},
		{"in group with span", func(l *slog.Logger) { l.With("a", 1).WithGroup("g").With("b", 2).InfoContext(ctx, "m", "c", 3) }, true},
		{"Info without context", func(l *slog.Logger) { l.Info("m") }, false},
		{"background context", func(l *slog.Logger) { l.InfoContext(context.Background(), "m") }, false},
		{"invalid span context", func(l *slog.Logger) {
			l.InfoContext(trace.ContextWithSpanContext(context.Background(), trace.SpanContext{}), "m")
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, buf := newTest(nil)
			tt.log(l)
			m := one(t, buf)
			tid, hasT := m[TraceIDKey]
			sid, hasS := m[SpanIDKey]
			if !tt.want {
				if hasT || hasS {
					t.Errorf("trace ids present: %v", m)
				}
				return
			}
			if tid != sc.TraceID().String() || sid != sc.SpanID().String() {
				t.Errorf("trace_id=%v span_id=%v, want %s %s (top level) in %v", tid, sid, sc.TraceID(), sc.SpanID(), m)
			}
		})
	}
}

func TestTraceIDsStayTopLevelInGroups(t *testing.T) {
	ctx, sc := spanContext(t)
	l, buf := newTest(nil)
	l.With("a", 1).WithGroup("g").With("b", 2).WithGroup("h").InfoContext(ctx, "m", "c", 3)
	got := strings.TrimSpace(buf.String())
	want := fmt.Sprintf(`"msg":"m","a":1,"trace_id":"%s","span_id":"%s","g":{"b":2,"h":{"c":3}}}`, sc.TraceID(), sc.SpanID())
	if !strings.HasSuffix(got, want) {
		t.Errorf("got  %s\nwant suffix %s", got, want)
	}
}

type creds struct {
	User         string
	ClientSecret string `json:"client_secret"`
	Nested       map[string]any
	Note         string
}

type stringerErr struct{ msg string }

func (e stringerErr) Error() string { return e.msg }

type logValuer struct{ s string }

func (v logValuer) LogValue() slog.Value { return slog.StringValue(v.s) }

func TestRedaction(t *testing.T) {
	const reg = "registered-secret-123"
	r := NewRedactor()
	r.Add(reg, "short") // "short" is below MinSecretLen and ignored

	tests := []struct {
		name string
		log  func(l *slog.Logger)
		want string // the JSON after "msg":..., without the closing brace
	}{
		{"password key", func(l *slog.Logger) { l.Info("m", "password", "pw") }, `"password":"[REDACTED]"`},
		{"case and separators", func(l *slog.Logger) {
			l.Info("m", "DB_Password", "a", "X-Api-Key", "b", "clientSecret", "c", "Authorization", "Bearer x", "set-cookie", "d")
		}, `"DB_Password":"[REDACTED]","X-Api-Key":"[REDACTED]","clientSecret":"[REDACTED]","Authorization":"[REDACTED]","set-cookie":"[REDACTED]"`},
		{"every listed word", func(l *slog.Logger) {
			l.Info("m", "passwd", 1, "webhook_secret", 2, "access_token", 3, "apikey", 4, "private_key", 5, "credentials", 6, "MLC_MASTER_KEY", 7, "api_key", 8)
		}, `"passwd":"[REDACTED]","webhook_secret":"[REDACTED]","access_token":"[REDACTED]","apikey":"[REDACTED]","private_key":"[REDACTED]","credentials":"[REDACTED]","MLC_MASTER_KEY":"[REDACTED]","api_key":"[REDACTED]"`},
		{"non-secret keys untouched", func(l *slog.Logger) {
			l.Info("m", "key_id", "abc", "idempotency_key", "k1", "user", "u", "n", 42)
		}, `"key_id":"abc","idempotency_key":"k1","user":"u","n":42`},
		{"secret key in group attr", func(l *slog.Logger) {
			l.Info("m", slog.Group("conn", "id", 7, "token", "t", slog.Group("oauth", "client_secret", "s")))
		}, `"conn":{"id":7,"token":"[REDACTED]","oauth":{"client_secret":"[REDACTED]"}}`},
		{"group named secret", func(l *slog.Logger) { l.Info("m", slog.Group("credentials", "user", "u", "pw", "p")) }, `"credentials":"[REDACTED]"`},
		{"WithAttrs", func(l *slog.Logger) { l.With("token", "t", "id", 1).Info("m") }, `"token":"[REDACTED]","id":1`},
		{"WithGroup then secret", func(l *slog.Logger) { l.WithGroup("ifs").Info("m", "client_secret", "s", "tenant", "t1") }, `"ifs":{"client_secret":"[REDACTED]","tenant":"t1"}`},
		{"WithGroup secret name", func(l *slog.Logger) { l.WithGroup("secret").Info("m", "a", 1) }, `"secret":"[REDACTED]"`},
		{"WithGroup WithAttrs", func(l *slog.Logger) {
			l.WithGroup("g").With("password", "p", "s", "x "+reg).Info("m", "k", "v")
		}, `"g":{"password":"[REDACTED]","s":"x [REDACTED]","k":"v"}`},
		{"registered in string", func(l *slog.Logger) { l.Info("m", "body", "token="+reg+"&x=1") }, `"body":"token=[REDACTED]&x=1"`},
		{"registered URL-escaped", func(l *slog.Logger) { l.Info("m", "u", "a b&c=d+e") }, `"u":"a b&c=d+e"`},
		{"short secret ignored", func(l *slog.Logger) { l.Info("m", "s", "short") }, `"s":"short"`},
		{"registered in error", func(l *slog.Logger) {
			err := fmt.Errorf("ifs: token request: %w", fmt.Errorf("invalid_client %s", reg))
			l.Error("m", "err", err)
		}, `"err":"ifs: token request: invalid_client [REDACTED]"`},
		{"registered in joined error", func(l *slog.Logger) {
			l.Error("m", "err", errors.Join(errors.New("a"), stringerErr{"b " + reg}))
		}, `"err":"a\nb [REDACTED]"`},
		{"clean error kept", func(l *slog.Logger) { l.Error("m", "err", errors.New("boom")) }, `"err":"boom"`},
		{"registered in LogValuer", func(l *slog.Logger) { l.Info("m", "v", logValuer{reg}) }, `"v":"[REDACTED]"`},
		{"secrets.Value", func(l *slog.Logger) { l.Info("m", "v", secrets.NewValue("plain-text-value")) }, `"v":"[REDACTED]"`},
		{"URL password", func(l *slog.Logger) {
			l.Info("m", "db", "postgres://app:pw@db:5432/mlc?sslmode=disable")
		}, `"db":"postgres://app:[REDACTED]@db:5432/mlc?sslmode=disable"`},
		{"URL without password", func(l *slog.Logger) { l.Info("m", "u", "nats://app@nats:4222", "v", "https://h:8443/x") }, `"u":"nats://app@nats:4222","v":"https://h:8443/x"`},
		{"URL password in error", func(l *slog.Logger) {
			l.Error("m", "err", fmt.Errorf("connect %s: %w", "postgres://u:p4ss@db/mlc", errors.New("refused")))
		}, `"err":"connect postgres://u:[REDACTED]@db/mlc: refused"`},
		{"keyword password", func(l *slog.Logger) { l.Info("m", "dsn", "host=db user=app password=s3cret dbname=mlc") }, `"dsn":"host=db user=app password=[REDACTED] dbname=mlc"`},
		{"struct field", func(l *slog.Logger) {
			l.Info("m", "c", creds{User: "u", ClientSecret: "cs", Nested: map[string]any{"Token": "t", "ok": 1.5}, Note: "see " + reg})
		}, `"c":{"User":"u","client_secret":"[REDACTED]","Nested":{"Token":"[REDACTED]","ok":1.5},"Note":"see [REDACTED]"}`},
		{"struct unchanged keeps value", func(l *slog.Logger) { l.Info("m", "c", map[string]int{"b": 2, "a": 1}) }, `"c":{"a":1,"b":2}`},
		{"slice of strings", func(l *slog.Logger) { l.Info("m", "l", []string{"x", reg, "<&>"}) }, `"l":["x","[REDACTED]","<&>"]`},
		{"non-string kinds untouched", func(l *slog.Logger) {
			l.Info("m", "d", time.Second, "b", true, "f", 1.25, "u", uint64(7))
		}, `"d":1000000000,"b":true,"f":1.25,"u":7`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, buf := newTest(r)
			tt.log(l)
			one(t, buf) // valid JSON
			line := strings.TrimSpace(buf.String())
			i := strings.Index(line, `"msg":"m",`)
			if i < 0 {
				t.Fatalf("no msg in %s", line)
			}
			got := strings.TrimSuffix(line[i+len(`"msg":"m",`):], "}")
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			if strings.Contains(line, reg) {
				t.Errorf("registered secret leaked: %s", line)
			}
		})
	}
}

func TestMessageScrubbed(t *testing.T) {
	r := NewRedactor()
	r.Add("tok_live_abcdef")
	l, buf := newTest(r)
	l.Info("token tok_live_abcdef rejected by postgres://u:pw@h/db")
	if m := one(t, buf); m["msg"] != "token [REDACTED] rejected by postgres://u:[REDACTED]@h/db" {
		t.Errorf("msg = %q", m["msg"])
	}
}

func TestSecretRegisteredAfterWith(t *testing.T) {
	r := NewRedactor()
	l, buf := newTest(r)
	l = l.With("endpoint", "https://ifs.example/?x=late-secret-value").WithGroup("g").With("a", "late-secret-value")
	r.Add("late-secret-value")
	l.Info("m")
	if strings.Contains(buf.String(), "late-secret-value") {
		t.Errorf("late-registered secret leaked: %s", buf)
	}
}

func TestDoesNotMutateCallerAttrs(t *testing.T) {
	l, _ := newTest(nil)
	group := []slog.Attr{slog.String("token", "t")}
	attrs := []slog.Attr{slog.String("password", "p"), {Key: "g", Value: slog.GroupValue(group...)}}
	l.LogAttrs(context.Background(), slog.LevelInfo, "m", attrs...)
	l.With(attrs[0]).Info("m")
	if attrs[0].Value.String() != "p" || group[0].Value.String() != "t" {
		t.Error("handler modified caller's attributes")
	}
}

func TestConcurrentRegisterAndLog(t *testing.T) {
	r := NewRedactor()
	var mu sync.Mutex
	var buf bytes.Buffer
	h := slog.NewJSONHandler(&lockedWriter{mu: &mu, w: &buf}, nil)
	l := slog.New(NewHandler(h, r))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			s := fmt.Sprintf("concurrent-secret-%d", i)
			r.Add(s)
			for range 50 {
				l.Info("m", "v", s)
			}
		})
	}
	wg.Wait()
	if strings.Contains(buf.String(), "concurrent-secret-") {
		t.Error("registered secret leaked")
	}
	if n := len(lines(t, &buf)); n != 400 {
		t.Errorf("%d lines", n)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

func TestRegisterDefault(t *testing.T) {
	Register("default-registry-secret")
	var buf bytes.Buffer
	New(&buf, slog.LevelInfo, "s").Info("x default-registry-secret y")
	if m := one(t, &buf); m["msg"] != "x [REDACTED] y" {
		t.Errorf("msg = %q", m["msg"])
	}
}

func TestParseLevel(t *testing.T) {
	tests := []struct {
		in      string
		want    slog.Level
		wantErr bool
	}{
		{"debug", slog.LevelDebug, false},
		{"INFO", slog.LevelInfo, false},
		{" warn ", slog.LevelWarn, false},
		{"Warning", slog.LevelWarn, false},
		{"error", slog.LevelError, false},
		{"", 0, true},
		{"trace", 0, true},
		{"info+1", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseLevel(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseLevel(%q) = %v, %v", tt.in, got, err)
		}
	}
}
