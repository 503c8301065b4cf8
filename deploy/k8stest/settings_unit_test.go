package k8stest

import (
	"go/constant"
	"testing"
	"testing/fstest"
)

// A small repository: a platform module with a config package and a
// loader, and a service whose main reads settings directly, through the
// loader and through a method of its own.
var fixtureRepo = fstest.MapFS{
	"lib/go.mod": {Data: []byte("module example.com/lib\n")},
	"lib/config/config.go": {Data: []byte(`package config

const (
	VarAddr    = "LISTEN_ADDR"
	DefaultAddr = ":" + port
	port        = "7000"
)

type Env struct{}

func (e *Env) String(name, def, help string) string       { return def }
func (e *Env) Addr(name, def, help string) string         { return def }
func (e *Env) RequiredSecret(name, help string) string    { return "" }
func (e *Env) OneOf(name, def, help string, allowed ...string) string { return def }
`)},
	"lib/load/load.go": {Data: []byte(`package loader

import (
	"time"

	"example.com/lib/config"
)

func Common(e *config.Env) {
	e.Addr(config.VarAddr, config.DefaultAddr, "listen")
	e.RequiredSecret("API_TOKEN", "token")
	e.Duration("GRACE", 3*time.Second+500*time.Millisecond, "grace")
}

// Never called by the service.
func Unused(e *config.Env) { e.String("UNUSED_SETTING", "x", "") }

type Pool struct{}

// Configure is called as a method on a value of this package's type.
func (p *Pool) Configure(e *config.Env) { e.String("POOL_SIZE_NAME", "small", "") }
`)},
	"svc/go.mod": {Data: []byte("module example.com/svc\n")},
	"svc/main.go": {Data: []byte(`package main

import (
	"os"

	"example.com/lib/config"
	loader "example.com/lib/load"
)

const maxBody = 2 << 20

type app struct{ env *config.Env }

func (a *app) settings() {
	a.env.OneOf("MODE", "fast", "mode", "fast", "safe")
}

func main() {
	env := &config.Env{}
	loader.Common(env)
	env.Int("MAX_BODY", maxBody, "max")
	env.String("not an env name", "", "")
	os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
	(&app{env}).settings()
	var pool loader.Pool
	pool.Configure(env)
}
`)},
}

func TestProgramReads(t *testing.T) {
	tree, err := newSourceTree(fixtureRepo)
	if err != nil {
		t.Fatal(err)
	}
	r, err := tree.programReads("svc")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		method   string
		def      string // ExactString of the default, "" for none
		required bool
		secret   bool
		allowed  []string
	}{
		{"LISTEN_ADDR", "Addr", `":7000"`, false, false, nil},
		{"API_TOKEN", "RequiredSecret", "", true, true, nil},
		{"GRACE", "Duration", "3500000000", false, false, nil},
		{"MAX_BODY", "Int", "2097152", false, false, nil},
		{"MODE", "OneOf", `"fast"`, false, false, []string{"fast", "safe"}},
		{"POOL_SIZE_NAME", "String", `"small"`, false, false, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, ok := r.Settings[tc.name]
			if !ok {
				t.Fatalf("not found; found %v", sortedKeys(r.Settings))
			}
			def := ""
			if s.Def != nil {
				def = s.Def.ExactString()
			}
			if s.Method != tc.method || def != tc.def || s.Required() != tc.required || s.Secret() != tc.secret ||
				len(s.Allowed) != len(tc.allowed) {
				t.Errorf("got %s default %s required %v secret %v allowed %v", s.Method, def, s.Required(), s.Secret(), s.Allowed)
			}
			for i := range tc.allowed {
				if s.Allowed[i] != tc.allowed[i] {
					t.Errorf("allowed %v, want %v", s.Allowed, tc.allowed)
				}
			}
		})
	}
	if len(r.Settings) != len(cases) {
		t.Errorf("found %v, want exactly the %d above (not UNUSED_SETTING, not lower-case names)", sortedKeys(r.Settings), len(cases))
	}
	if !r.OTEL["OTEL_EXPORTER_OTLP_ENDPOINT"] {
		t.Error("OTEL_EXPORTER_OTLP_ENDPOINT literal not found")
	}
	if got := constant.StringVal(r.Settings["LISTEN_ADDR"].Def); got != ":7000" {
		t.Errorf("LISTEN_ADDR default %q", got)
	}
}

func TestProgramReadsErrors(t *testing.T) {
	tree, err := newSourceTree(fixtureRepo)
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"lib/config", "nowhere"} {
		if _, err := tree.programReads(dir); err == nil {
			t.Errorf("%s: want an error (no main)", dir)
		}
	}
}
