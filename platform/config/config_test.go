package config

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ml-connector/ml-connector/platform/secrets"
)

// errLines returns the messages Err joined, one per failure.
func errLines(e *Env) []string {
	err := e.Err()
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

func checkErrs(t *testing.T, e *Env, want []string) {
	t.Helper()
	got := errLines(e)
	if len(want) == 0 && len(got) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("errors:\n got  %q\n want %q", got, want)
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"unset", nil, "def"},
		{"set", map[string]string{"X": "val"}, "val"},
		{"trimmed", map[string]string{"X": "  val\n"}, "val"},
		{"empty means unset", map[string]string{"X": ""}, "def"},
		{"blank means unset", map[string]string{"X": " \t"}, "def"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := FromMap(tt.env)
			if got := e.String("X", "def", "h"); got != tt.want {
				t.Errorf("String = %q, want %q", got, tt.want)
			}
			checkErrs(t, e, nil)
		})
	}
}

func TestRequired(t *testing.T) {
	e := FromMap(map[string]string{"A": "a", "B": " "})
	if got := e.Required("A", "h"); got != "a" {
		t.Errorf("A = %q", got)
	}
	e.Required("B", "h")
	e.Required("C", "h")
	checkErrs(t, e, []string{"B: required but not set", "C: required but not set"})
	if !errors.Is(e.Err(), ErrMissing) {
		t.Error("Err does not wrap ErrMissing")
	}
	var ve *VarError
	if !errors.As(e.Err(), &ve) || ve.Name != "B" {
		t.Errorf("errors.As VarError = %v", ve)
	}
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

func TestBool(t *testing.T) {
	tests := []struct {
		v       string
		want    bool
		wantErr bool
	}{
		{"", true, false},
		{"true", true, false}, {"TRUE", true, false}, {"1", true, false}, {"yes", true, false}, {"On", true, false},
		{"false", false, false}, {"0", false, false}, {"no", false, false}, {"off", false, false}, {"F", false, false},
		{"maybe", false, true},
		{"2", false, true},
	}
	for _, tt := range tests {
		e := FromMap(map[string]string{"B": tt.v})
		if got := e.Bool("B", true, "h"); got != tt.want {
			t.Errorf("Bool(%q) = %v, want %v", tt.v, got, tt.want)
		}
		if (e.Err() != nil) != tt.wantErr {
			t.Errorf("Bool(%q) err = %v", tt.v, e.Err())
		}
	}
	e := FromMap(map[string]string{"B": "maybe"})
	e.Bool("B", false, "h")
	checkErrs(t, e, []string{`B: "maybe" is not a boolean (want true or false)`})
}

func TestOneOf(t *testing.T) {
	tests := []struct {
		v       string
		want    string
		wantErr string
	}{
		{"", "info", ""},
		{"debug", "debug", ""},
		{"WARN", "warn", ""},
		{"verbose", "", `L: "verbose" not allowed (want debug, info, warn, error)`},
	}
	for _, tt := range tests {
		e := FromMap(map[string]string{"L": tt.v})
		if got := e.OneOf("L", "info", "h", "debug", "info", "warn", "error"); got != tt.want {
			t.Errorf("OneOf(%q) = %q, want %q", tt.v, got, tt.want)
		}
		checkErrs(t, e, nonEmpty(tt.wantErr))
	}
	e := FromMap(nil)
	e.OneOf("L", "loud", "h", "a", "b")
	checkErrs(t, e, []string{`L: default "loud" not allowed (want a, b)`})
	e = FromMap(nil)
	if got := e.OneOf("L", "", "h", "a", "b"); got != "" || e.Err() != nil {
		t.Errorf("optional OneOf = %q, %v", got, e.Err())
	}
}

func TestList(t *testing.T) {
	tests := []struct {
		v    string
		want []string
	}{
		{"", []string{"a", "b"}},
		{"x", []string{"x"}},
		{" x , y,,z , ", []string{"x", "y", "z"}},
		{",", nil},
	}
	for _, tt := range tests {
		e := FromMap(map[string]string{"L": tt.v})
		got := e.List("L", "a,b", "h")
		if len(got) != len(tt.want) || (len(got) > 0 && !reflect.DeepEqual(got, tt.want)) {
			t.Errorf("List(%q) = %q, want %q", tt.v, got, tt.want)
		}
	}
}

func TestAddr(t *testing.T) {
	tests := []struct {
		v       string
		want    string
		wantErr string
	}{
		{"", ":8080", ""},
		{":9000", ":9000", ""},
		{"0.0.0.0:443", "0.0.0.0:443", ""},
		{"erp-poster.mlc.svc:9090", "erp-poster.mlc.svc:9090", ""},
		{"[::1]:9090", "[::1]:9090", ""},
		{"127.0.0.1:0", "127.0.0.1:0", ""},
		{"8080", "", `A: "8080" is not host:port: missing port in address`},
		{"host:", "", `A: "host:" has no port`},
		{"host:http", "", `A: "host:http": port "http" is not a number`},
		{"host:+80", "", `A: "host:+80": port "+80" is not a number`},
		{"host:65536", "", `A: "host:65536": port 65536 out of range (0-65535)`},
		{"::1:80", "", `A: "::1:80" is not host:port: too many colons in address`},
	}
	for _, tt := range tests {
		e := FromMap(map[string]string{"A": tt.v})
		if got := e.Addr("A", ":8080", "h"); got != tt.want {
			t.Errorf("Addr(%q) = %q, want %q", tt.v, got, tt.want)
		}
		checkErrs(t, e, nonEmpty(tt.wantErr))
	}
	e := FromMap(nil)
	e.Addr("A", "nope", "h")
	checkErrs(t, e, []string{`A: default: "nope" is not host:port: missing port in address`})
	e = FromMap(nil)
	if got := e.Addr("A", "", "h"); got != "" || e.Err() != nil {
		t.Errorf("optional Addr = %q, %v", got, e.Err())
	}
}

func TestURL(t *testing.T) {
	schemes := []string{"nats", "tls"}
	tests := []struct {
		v       string
		want    string
		wantErr string
	}{
		{"", "nats://127.0.0.1:4222", ""},
		{"nats://nats.mlc.svc:4222", "nats://nats.mlc.svc:4222", ""},
		{"TLS://h", "tls://h", ""},
		{"http://h:4222", "", `U: scheme "http" not allowed (want nats, tls)`},
		{"nats:///x", "", `U: "nats:///x" has no host`},
		{"nats://:4222", "", `U: "nats://:4222" has no host`},
		{"nats://h:0", "", `U: "nats://h:0": port 0 out of range (1-65535)`},
		{"nats://h:99999", "", `U: "nats://h:99999": port 99999 out of range (1-65535)`},
		{"nats.mlc.svc:4222", "", `U: "nats.mlc.svc:4222" is not of the form scheme://host[:port]`},
		{"127.0.0.1:4222", "", `U: "127.0.0.1:4222" is not a valid URL: first path segment in URL cannot contain colon`},
		{"nats://h:x", "", `U: "nats://h:x" is not a valid URL: invalid port ":x" after host`},
		{"nats://u:p@h:x", "", `U: "nats://u:[REDACTED]@h:x" is not a valid URL`},
	}
	for _, tt := range tests {
		e := FromMap(map[string]string{"U": tt.v})
		u := e.URL("U", "nats://127.0.0.1:4222", "h", schemes...)
		got := ""
		if u != nil {
			got = u.String()
		}
		if got != tt.want {
			t.Errorf("URL(%q) = %q, want %q", tt.v, got, tt.want)
		}
		checkErrs(t, e, nonEmpty(tt.wantErr))
	}
	e := FromMap(nil)
	if u := e.URL("U", "", "h"); u != nil || e.Err() != nil {
		t.Errorf("unset URL without default = %v, %v", u, e.Err())
	}
	if u := e.URL("V", "https://x", "h"); u == nil || u.Host != "x" {
		t.Errorf("no schemes = %v", u)
	}
}

func TestURLList(t *testing.T) {
	e := FromMap(map[string]string{"U": "nats://a:4222, tls://user:nats-pw@b:4222 ,"})
	got := e.URLList("U", "", "h", "nats", "tls")
	if len(got) != 2 || got[0].Host != "a:4222" || got[1].Host != "b:4222" {
		t.Errorf("URLList = %v", got)
	}
	checkErrs(t, e, nil)
	if ss := e.Secrets(); len(ss) != 1 || ss[0].Reveal() != "nats-pw" {
		t.Errorf("URLList password not in Secrets: %d", len(ss))
	}

	e = FromMap(map[string]string{"U": "nats://a, http://b, nats://"})
	if got := e.URLList("U", "", "h", "nats"); got != nil {
		t.Errorf("URLList with errors = %v", got)
	}
	checkErrs(t, e, []string{`U: URL 2: scheme "http" not allowed (want nats)`, `U: URL 3: "nats://" has no host`})
}

func TestSecretURL(t *testing.T) {
	const pw = "Pg-Pa55word!"
	tests := []struct {
		name    string
		v       string
		wantErr string
	}{
		{"ok", "postgres://app:" + pw + "@db:5432/mlc?sslmode=require", ""},
		{"postgresql", "postgresql://app:" + pw + "@db/mlc", ""},
		{"bad scheme", "mysql://app:" + pw + "@db/mlc", `DB: scheme "mysql" not allowed (want postgres, postgresql)`},
		{"no host", "postgres://app:" + pw + "@/mlc", `DB: "postgres://app:[REDACTED]@/mlc" has no host`},
		{"bad port", "postgres://app:" + pw + "@db:99999/mlc", `DB: "postgres://app:[REDACTED]@db:99999/mlc": port 99999 out of range (1-65535)`},
		// An unescaped '/' in the password makes "Pg-Pa55word!" look like a port.
		{"unparsable", "postgres://app:Pg/Pa55word!@db/mlc", `DB: "postgres://app:[REDACTED]@db/mlc" is not a valid URL`},
		{"bad escape in password", "postgres://app:Pa%zzword@db/mlc", `DB: "postgres://app:[REDACTED]@db/mlc" is not a valid URL`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := FromMap(map[string]string{"DB": tt.v})
			v := e.SecretURL("DB", "", "h", "postgres", "postgresql")
			checkErrs(t, e, nonEmpty(tt.wantErr))
			if tt.wantErr == "" && v.Reveal() != tt.v {
				t.Errorf("Reveal = %q", v.Reveal())
			}
			if tt.wantErr != "" && !v.Empty() {
				t.Errorf("value returned with error")
			}
			if err := e.Err(); err != nil {
				for _, frag := range []string{pw, "Pa55word", "Pa%zzword", "%zz"} {
					if strings.Contains(err.Error(), frag) {
						t.Errorf("error leaks %q: %v", frag, err)
					}
				}
			}
		})
	}
}

func TestSecret(t *testing.T) {
	e := FromMap(map[string]string{"S": " tok_live_123\n", "L": "whsec-one, whsec-two,,"})
	s := e.Secret("S", "h")
	if s.Reveal() != "tok_live_123" {
		t.Errorf("Secret = %q", s.Reveal())
	}
	if e.Secret("UNSET", "h").Reveal() != "" {
		t.Error("unset secret not empty")
	}
	l := e.SecretList("L", "h")
	if len(l) != 2 || l[0].Reveal() != "whsec-one" || l[1].Reveal() != "whsec-two" {
		t.Errorf("SecretList = %d items", len(l))
	}
	e.RequiredSecret("R", "h")
	checkErrs(t, e, []string{"R: required but not set"})

	var got []string
	for _, v := range e.Secrets() {
		got = append(got, v.Reveal())
	}
	if want := []string{"tok_live_123", "whsec-one", "whsec-two"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Secrets = %q, want %q", got, want)
	}
}

func TestErrorsCollected(t *testing.T) {
	e := FromMap(map[string]string{
		"NATS_URL":  "http://nats:4222",
		"HTTP_ADDR": "8080",
		"LOG_LEVEL": "chatty",
		"N":         "x",
	})
	LoadCommon(e)
	e.IntRange("N", 1, 1, 10, "h")
	e.Errorf("N", "must be at most %d", 10)
	checkErrs(t, e, []string{
		`NATS_URL: scheme "http" not allowed (want nats, tls, ws, wss)`,
		`HTTP_ADDR: "8080" is not host:port: missing port in address`,
		`LOG_LEVEL: "chatty" not allowed (want debug, info, warn, error)`,
		`N: "x" is not an integer (want 1 to 10)`,
		`N: must be at most 10`,
	})
}

func TestLoadCommonDefaults(t *testing.T) {
	e := FromMap(nil)
	c := LoadCommon(e)
	checkErrs(t, e, nil)
	if c.NATSURL != DefaultNATSURL || c.DatabaseURL.Reveal() != DefaultDatabaseURL ||
		c.HTTPAddr != DefaultHTTPAddr || c.LogLevel != slog.LevelInfo {
		t.Errorf("defaults = %+v (db %q)", c, c.DatabaseURL.Reveal())
	}
}

func TestLoadCommon(t *testing.T) {
	e := FromMap(map[string]string{
		"NATS_URL":     "nats://n1:4222,nats://n2:4222",
		"DATABASE_URL": "postgres://app:s3cr3t-pw@pg:5432/mlc",
		"HTTP_ADDR":    "0.0.0.0:8081",
		"LOG_LEVEL":    "DEBUG",
	})
	c := LoadCommon(e)
	checkErrs(t, e, nil)
	if c.NATSURL != "nats://n1:4222,nats://n2:4222" || c.HTTPAddr != "0.0.0.0:8081" || c.LogLevel != slog.LevelDebug {
		t.Errorf("Common = %+v", c)
	}
	if c.DatabaseURL.Reveal() != "postgres://app:s3cr3t-pw@pg:5432/mlc" {
		t.Errorf("DatabaseURL = %q", c.DatabaseURL.Reveal())
	}
	if s := fmt.Sprintf("%v %+v %#v", c, c, c); strings.Contains(s, "s3cr3t-pw") {
		t.Errorf("Common prints the password: %s", s)
	}
	if ss := e.Secrets(); len(ss) != 1 || ss[0].Reveal() != "s3cr3t-pw" {
		t.Errorf("Secrets = %d", len(ss))
	}
}

func b64key(t *testing.T) (string, []byte) {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(k), k
}

func TestLoadKeyring(t *testing.T) {
	k1, raw1 := b64key(t)
	k2, raw2 := b64key(t)
	short := base64.StdEncoding.EncodeToString(raw1[:16])

	e := FromMap(map[string]string{"MLC_MASTER_KEY": k1 + "\n", "MLC_PREVIOUS_MASTER_KEYS": k2 + ","})
	kr := LoadKeyring(e)
	checkErrs(t, e, nil)
	if kr == nil || kr.PrimaryID() != secrets.KeyID(raw1) || len(kr.KeyIDs()) != 2 || kr.KeyIDs()[1] != secrets.KeyID(raw2) {
		t.Fatalf("keyring = %v", kr)
	}

	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"missing", nil, []string{"MLC_MASTER_KEY: required but not set"}},
		{"not base64", map[string]string{"MLC_MASTER_KEY": "correct horse battery staple"}, []string{"MLC_MASTER_KEY: key is not valid base64"}},
		{"short", map[string]string{"MLC_MASTER_KEY": short}, []string{"MLC_MASTER_KEY: key is 16 bytes, want 32"}},
		{"bad previous", map[string]string{"MLC_MASTER_KEY": k1, "MLC_PREVIOUS_MASTER_KEYS": k2 + "," + short},
			[]string{"MLC_PREVIOUS_MASTER_KEYS: key 2: key is 16 bytes, want 32"}},
		{"both bad", map[string]string{"MLC_MASTER_KEY": short, "MLC_PREVIOUS_MASTER_KEYS": "%%"},
			[]string{"MLC_MASTER_KEY: key is 16 bytes, want 32", "MLC_PREVIOUS_MASTER_KEYS: key 1: key is not valid base64"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := FromMap(tt.env)
			if kr := LoadKeyring(e); kr != nil {
				t.Errorf("keyring returned with errors")
			}
			checkErrs(t, e, tt.want)
			for _, v := range tt.env {
				if v != "" && strings.Contains(e.Err().Error(), v) {
					t.Errorf("error leaks key material")
				}
			}
		})
	}
}

func TestUsage(t *testing.T) {
	e := FromMap(map[string]string{"DATABASE_URL": "postgres://app:live-password@pg/mlc", "MLC_MASTER_KEY": "c2VjcmV0"})
	LoadCommon(e)
	LoadKeyring(e)
	e.Addr(VarWebhookAddr, DefaultWebhookAddr, "Public listener for GoCardless webhooks.")
	e.SecretList(VarGCWebhookSecret, "Webhook endpoint secrets, comma-separated; the first is current.")
	e.SecretURL("OTHER_DB", "postgres://u:default-pw@h/db", "A URL with a password in its default.", "postgres")
	e.DurationRange("POLL_INTERVAL", 30*time.Second, time.Second, time.Hour, "How often to poll.\nShorter is faster.")
	e.String(VarLogLevel, "ignored", "re-registration is ignored")

	var buf bytes.Buffer
	e.Usage(&buf)
	got := buf.String()
	want := `Environment variables:
  NATS_URL  comma-separated URLs (nats, tls, ws, wss)  (default "nats://127.0.0.1:4222")
      NATS server URL; several may be given, comma-separated.
  NATS_USER  string
      NATS user name of this service (empty: no authentication).
  NATS_PASSWORD  string  (secret)
      Password of NATS_USER.
  NATS_CA_FILE  string
      PEM file of the CA that signed the NATS servers' certificates; requires TLS.
  DATABASE_URL  Postgres URL or keyword=value  (default "postgres://postgres@127.0.0.1:5432/mlc?sslmode=disable", secret)
      Postgres connection URL, or keyword=value connection string (may include the password).
  HTTP_ADDR  host:port  (default ":8080")
      Listen address for /healthz, /readyz and /metrics.
  LOG_LEVEL  one of debug|info|warn|error  (default "info")
      Minimum log level.
  MLC_MASTER_KEY  base64 key (32 bytes)  (required, secret)
      Master key that encrypts stored connection secrets: base64 of 32 random bytes
      (e.g. head -c 32 /dev/urandom | base64).
  MLC_PREVIOUS_MASTER_KEYS  comma-separated base64 keys  (secret)
      Earlier master keys, comma-separated, kept during a key rotation
      until every stored secret has been re-sealed under MLC_MASTER_KEY.
  WEBHOOK_ADDR  host:port  (default ":8443")
      Public listener for GoCardless webhooks.
  GC_WEBHOOK_SECRET  comma-separated list  (secret)
      Webhook endpoint secrets, comma-separated; the first is current.
  OTHER_DB  URL (postgres)  (default "postgres://u:[REDACTED]@h/db", secret)
      A URL with a password in its default.
  POLL_INTERVAL  duration 1s-1h0m0s  (default "30s")
      How often to poll.
      Shorter is faster.
`
	if got != want {
		t.Errorf("Usage:\n%s\nwant:\n%s", got, want)
	}
	for _, leak := range []string{"live-password", "c2VjcmV0", "default-pw"} {
		if strings.Contains(got, leak) {
			t.Errorf("Usage leaks %q", leak)
		}
	}
}

func TestHelpRequested(t *testing.T) {
	tests := []struct {
		args []string
		want bool
	}{
		{nil, false},
		{[]string{"-h"}, true},
		{[]string{"serve", "--help"}, true},
		{[]string{"-help"}, true},
		{[]string{"--", "-h"}, false},
		{[]string{"-hx", "help"}, false},
	}
	for _, tt := range tests {
		if got := HelpRequested(tt.args); got != tt.want {
			t.Errorf("HelpRequested(%q) = %v", tt.args, got)
		}
	}
}

func TestRedactURL(t *testing.T) {
	if got := RedactURL("postgres://u:pw@h/db"); got != "postgres://u:[REDACTED]@h/db" {
		t.Error(got)
	}
	if got := RedactURL(DefaultDatabaseURL); got != DefaultDatabaseURL {
		t.Error(got)
	}
}

func TestFromOS(t *testing.T) {
	t.Setenv("MLC_TEST_SETTING", "from-os")
	if got := FromOS().String("MLC_TEST_SETTING", "", "h"); got != "from-os" {
		t.Errorf("FromOS = %q", got)
	}
}

// Issue #17: a keyword/value DATABASE_URL, or a URL with a space in it, was
// echoed with its password. Every form is now either accepted (with its
// password registered for scrubbing) or refused without the password.
func TestConnectionStringsNeverEchoThePassword(t *testing.T) {
	const pw = "Zq9-secret-pw"
	tests := []struct {
		name, db, nats string
		ok             bool
	}{
		{name: "keyword value", db: "host=db port=5432 user=app password=" + pw + " dbname=mlc sslmode=disable", ok: true},
		{name: "keyword value quoted", db: "host=db user=app password='" + pw + " x' dbname=mlc", ok: true},
		{name: "keyword value malformed", db: "host=db password=" + pw + " dbname='mlc"},
		{name: "keyword value unknown key", db: "host=db password=" + pw + " nonsense"},
		{name: "url with a space", db: "postgres://app:" + pw + " x@db/mlc"},
		{name: "url with a slash and space", db: "postgres://app:" + pw + "/ x@db:5432/mlc"},
		{name: "url password in query", db: "postgres://db/mlc?password=" + pw + "&sslmode=nope"},
		{name: "url percent escapes", db: "postgres://app:" + pw + "%zz@db/mlc"},
		{name: "nats with a space", nats: "nats://app:" + pw + " x@nats:4222"},
		{name: "nats with a slash", nats: "nats://app:" + pw + "/x@nats:4222"},
		{name: "nats list, second bad", nats: "nats://n1:4222,nats://app:" + pw + " x@n2:4222"},
		{name: "nats without scheme", nats: "app:" + pw + "@nats:4222"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vars := map[string]string{}
			if tc.db != "" {
				vars[VarDatabaseURL] = tc.db
			}
			if tc.nats != "" {
				vars[VarNATSURL] = tc.nats
			}
			e := FromMap(vars)
			c := LoadCommon(e)
			err := e.Err()
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if c.DatabaseURL.Reveal() != tc.db {
					t.Errorf("DatabaseURL = %q", c.DatabaseURL.Reveal())
				}
				found := false
				for _, s := range e.Secrets() {
					found = found || strings.HasPrefix(s.Reveal(), pw)
				}
				if !found {
					t.Error("the password is not registered for scrubbing")
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			want := VarDatabaseURL + ": "
			if tc.nats != "" {
				want = VarNATSURL + ": "
			}
			if !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error does not name the variable: %v", err)
			}
			if strings.Contains(err.Error(), "Zq9") || strings.Contains(err.Error(), "secret-pw") {
				t.Errorf("error echoes the password: %v", err)
			}
		})
	}
}
