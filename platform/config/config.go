// Package config reads a service's settings from environment variables,
// validates them at start-up and documents them for --help.
//
// A service registers each setting as it reads it, then checks all of them
// at once, so an operator sees every mistake in one run rather than one per
// restart:
//
//	env := config.FromOS()
//	common := config.LoadCommon(env)
//	keys := config.LoadKeyring(env)
//	addr := env.Addr(config.VarWebhookAddr, config.DefaultWebhookAddr, "Public listener for GoCardless webhooks.")
//	if config.HelpRequested(os.Args[1:]) {
//		env.Usage(os.Stdout)
//		os.Exit(0)
//	}
//	if err := env.Err(); err != nil {
//		fmt.Fprintf(os.Stderr, "gc-webhook: invalid configuration:\n%v\n", err)
//		os.Exit(2)
//	}
//
// Values are trimmed of surrounding white space, and a variable that is set
// but empty counts as unset: a blank entry in a manifest falls back to the
// default (or fails as missing) rather than meaning "empty", and a trailing
// newline from a mounted Secret file does not become part of a password.
//
// Errors name the variable and say what is wrong. They quote ordinary
// values to help the operator, but never the value of a secret, and URLs
// only with their password replaced.
package config

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/ml-connector/ml-connector/platform/secrets"
)

// Env reads and validates environment variables and records every setting
// read through it, for [Env.Usage], and every failure, for [Env.Err].
// It is meant for start-up and is not safe for concurrent use.
type Env struct {
	lookup   func(string) (string, bool)
	settings []*setting
	byName   map[string]*setting
	errs     []error
	secrets  []secrets.Value
}

type setting struct {
	name     string
	kind     string // shown in Usage, e.g. "duration"
	def      string // as shown in Usage; already redacted
	help     string
	required bool
	secret   bool
}

// VarError is a problem with one variable. [Env.Err] joins them.
type VarError struct {
	Name string
	Err  error
}

func (e *VarError) Error() string { return e.Name + ": " + e.Err.Error() }
func (e *VarError) Unwrap() error { return e.Err }

// ErrMissing is wrapped by the error for a required variable that is unset.
var ErrMissing = errors.New("required but not set")

// New returns an Env that reads variables with lookup, which has the
// signature of [os.LookupEnv].
func New(lookup func(string) (string, bool)) *Env {
	return &Env{lookup: lookup, byName: make(map[string]*setting)}
}

// FromOS returns an Env reading the process environment.
func FromOS() *Env { return New(os.LookupEnv) }

// FromMap returns an Env reading m; convenient in tests.
func FromMap(m map[string]string) *Env {
	return New(func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	})
}

// Err returns every failure recorded so far, joined with [errors.Join]
// (one per line), or nil. Each is a [*VarError].
func (e *Env) Err() error { return errors.Join(e.errs...) }

// Errorf records a failure for the variable name, for checks a service
// makes itself (a bound, a combination of settings). Never pass it the
// value of a secret.
func (e *Env) Errorf(name, format string, args ...any) {
	e.fail(name, fmt.Errorf(format, args...))
}

func (e *Env) fail(name string, err error) {
	e.errs = append(e.errs, &VarError{Name: name, Err: err})
}

// Secrets returns every non-empty secret read so far (for a URL, only its
// password), so that main can register them for
// scrubbing from logs, e.g. with logging.Register.
func (e *Env) Secrets() []secrets.Value { return slices.Clone(e.secrets) }

func (e *Env) addSecret(s string) {
	if s != "" {
		e.secrets = append(e.secrets, secrets.NewValue(s))
	}
}

// register records a setting for Usage; the first registration of a name
// wins, so shared helpers may be called more than once.
func (e *Env) register(s setting) {
	if _, ok := e.byName[s.name]; ok {
		return
	}
	e.byName[s.name] = &s
	e.settings = append(e.settings, &s)
}

// get returns the trimmed value and whether it is set and non-empty.
func (e *Env) get(name string) (string, bool) {
	v, _ := e.lookup(name)
	v = strings.TrimSpace(v)
	return v, v != ""
}

// String returns the variable's value, or def if it is unset.
func (e *Env) String(name, def, help string) string {
	e.register(setting{name: name, kind: "string", def: def, help: help})
	if v, ok := e.get(name); ok {
		return v
	}
	return def
}

// Required returns the variable's value and records an error if it is unset.
func (e *Env) Required(name, help string) string {
	e.register(setting{name: name, kind: "string", help: help, required: true})
	v, ok := e.get(name)
	if !ok {
		e.fail(name, ErrMissing)
	}
	return v
}

// Bool returns the variable as a boolean, or def if it is unset. It accepts
// true/false, 1/0, t/f, yes/no and on/off, in any case. On error it records
// it and returns false.
func (e *Env) Bool(name string, def bool, help string) bool {
	e.register(setting{name: name, kind: "bool", def: strconv.FormatBool(def), help: help})
	v, ok := e.get(name)
	if !ok {
		return def
	}
	switch strings.ToLower(v) {
	case "1", "t", "true", "yes", "y", "on":
		return true
	case "0", "f", "false", "no", "n", "off":
		return false
	}
	e.fail(name, fmt.Errorf("%q is not a boolean (want true or false)", v))
	return false
}

// OneOf returns the variable's value, which must be one of allowed
// (compared case-insensitively; the spelling in allowed is returned), or
// def if it is unset. An empty def makes the setting optional: unset, it
// returns "".
func (e *Env) OneOf(name, def, help string, allowed ...string) string {
	e.register(setting{name: name, kind: "one of " + strings.Join(allowed, "|"), def: def, help: help})
	v, ok := e.get(name)
	if !ok {
		if def == "" {
			return ""
		}
		v = def
	}
	for _, a := range allowed {
		if strings.EqualFold(v, a) {
			return a
		}
	}
	what := ""
	if !ok {
		what = "default "
	}
	e.fail(name, fmt.Errorf("%s%q not allowed (want %s)", what, v, strings.Join(allowed, ", ")))
	return ""
}

// List returns the variable split on commas, each item trimmed, empty
// items dropped; def is parsed the same way when the variable is unset.
func (e *Env) List(name, def, help string) []string {
	e.register(setting{name: name, kind: "comma-separated list", def: def, help: help})
	v, ok := e.get(name)
	if !ok {
		v = def
	}
	return splitList(v)
}

func splitList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// Addr returns the variable as a host:port address, or def if it is unset.
// The host may be empty (all interfaces, as in ":8080") and the port must
// be a number from 0 to 65535 (0 lets a listener pick one). An empty def
// makes the setting optional: unset, it returns "". On error it records it
// and returns "".
func (e *Env) Addr(name, def, help string) string {
	e.register(setting{name: name, kind: "host:port", def: def, help: help})
	v, ok := e.get(name)
	if !ok {
		if def == "" {
			return ""
		}
		v = def
	}
	if err := checkAddr(v); err != nil {
		e.fail(name, defaultPrefix(!ok, err))
		return ""
	}
	return v
}

func checkAddr(v string) error {
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			err = errors.New(ae.Err)
		}
		return fmt.Errorf("%q is not host:port: %w", v, err)
	}
	if port == "" {
		return fmt.Errorf("%q has no port", v)
	}
	n, err := strconv.Atoi(port)
	if err != nil || port[0] == '+' || port[0] == '-' {
		return fmt.Errorf("%q: port %q is not a number", v, port)
	}
	if n < 0 || n > math.MaxUint16 {
		return fmt.Errorf("%q: port %d out of range (0-65535)", v, n)
	}
	return nil
}

func defaultPrefix(isDefault bool, err error) error {
	if isDefault {
		return fmt.Errorf("default: %w", err)
	}
	return err
}

// URL returns the variable parsed as an absolute URL with a host, or def if
// it is unset. If schemes are given, the URL's scheme must be one of them.
// On error it records it and returns nil.
func (e *Env) URL(name, def, help string, schemes ...string) *url.URL {
	e.register(setting{name: name, kind: urlKind("URL", schemes), def: RedactURL(def), help: help})
	v, ok := e.get(name)
	if !ok {
		if def == "" {
			return nil
		}
		v = def
	}
	u, err := parseURL(v, schemes)
	if err != nil {
		e.fail(name, defaultPrefix(!ok, err))
		return nil
	}
	return u
}

// URLList returns the variable as a comma-separated list of URLs, each
// checked as [Env.URL] checks one, or def parsed the same way if it is
// unset. On error it records it and returns nil.
func (e *Env) URLList(name, def, help string, schemes ...string) []*url.URL {
	e.register(setting{name: name, kind: urlKind("comma-separated URLs", schemes), def: RedactURL(def), help: help})
	v, ok := e.get(name)
	if !ok {
		v = def
	}
	items := splitList(v)
	var out []*url.URL
	var errs []error
	for i, item := range items {
		u, err := parseURL(item, schemes)
		if err != nil {
			if len(items) > 1 {
				err = fmt.Errorf("URL %d: %w", i+1, err)
			}
			errs = append(errs, err)
			continue
		}
		if pw, ok := u.User.Password(); ok {
			e.addSecret(pw)
		}
		out = append(out, u)
	}
	for _, err := range errs {
		e.fail(name, defaultPrefix(!ok, err))
	}
	if len(errs) > 0 {
		return nil
	}
	return out
}

// SecretURL is [Env.URL] for a URL that may carry a password, such as
// DATABASE_URL. It returns the URL as given, wrapped as a [secrets.Value];
// Usage and errors show it with the password replaced.
func (e *Env) SecretURL(name, def, help string, schemes ...string) secrets.Value {
	e.register(setting{name: name, kind: urlKind("URL", schemes), def: RedactURL(def), help: help, secret: true})
	v, ok := e.get(name)
	if !ok {
		if def == "" {
			return secrets.Value{}
		}
		v = def
	}
	u, err := parseURL(v, schemes)
	if err != nil {
		e.fail(name, defaultPrefix(!ok, err))
		return secrets.Value{}
	}
	if pw, ok := u.User.Password(); ok {
		e.addSecret(pw)
	}
	return secrets.NewValue(v)
}

func urlKind(what string, schemes []string) string {
	if len(schemes) == 0 {
		return what
	}
	return what + " (" + strings.Join(schemes, ", ") + ")"
}

// parseURL checks raw is an absolute URL with a host and an allowed scheme.
// Errors show the URL with any password redacted (see showURL).
func parseURL(raw string, schemes []string) (*url.URL, error) {
	shown := showURL(raw)
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse quotes the offending fragment, which may be part of a
		// malformed password; only give the detail when there is none.
		var ue *url.Error
		if shown == raw && errors.As(err, &ue) {
			return nil, fmt.Errorf("%q is not a valid URL: %w", shown, ue.Err)
		}
		return nil, fmt.Errorf("%q is not a valid URL", shown)
	}
	if u.Scheme == "" || !strings.Contains(raw, "://") {
		return nil, fmt.Errorf("%q is not of the form scheme://host[:port]", shown)
	}
	if len(schemes) > 0 && !slices.ContainsFunc(schemes, func(s string) bool { return strings.EqualFold(s, u.Scheme) }) {
		return nil, fmt.Errorf("scheme %q not allowed (want %s)", u.Scheme, strings.Join(schemes, ", "))
	}
	if u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("%q has no host", shown)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > math.MaxUint16 {
			return nil, fmt.Errorf("%q: port %s out of range (1-65535)", shown, p)
		}
	}
	return u, nil
}

// queryPassword finds password parameters in a URL's query.
var queryPassword = regexp.MustCompile(`(?i)([?&](?:ssl)?(?:password|passwd|pwd)=)[^&#]*`)

// showURL is raw as an error may quote it: the whole value is one URL, so
// its password runs from the first ':' of the userinfo to the last '@' of
// the value, whatever it holds (a space, a '/', an unescaped '@'), and is
// replaced; so is a password=… query parameter. A value that is not a URL
// but could hold a credential (user@host, key=value) is not shown at all.
func showURL(raw string) string {
	i := strings.Index(raw, "://")
	if i < 0 {
		if strings.ContainsAny(raw, "@=") {
			return "(value not shown)"
		}
		return raw
	}
	s := raw
	if at := strings.LastIndexByte(raw, '@'); at > i {
		if c := strings.IndexByte(raw[i+3:at], ':'); c >= 0 {
			s = raw[:i+3+c+1] + secrets.Redacted + raw[at:]
		}
	}
	return queryPassword.ReplaceAllString(s, "${1}"+secrets.Redacted)
}

// RedactURL returns s with the password of every URL in it replaced by
// [secrets.Redacted]. It is [secrets.RedactURL], here because it is mostly
// needed when printing configuration.
func RedactURL(s string) string { return secrets.RedactURL(s) }

// Secret returns the variable as a [secrets.Value], empty if unset. Its
// value is never shown by Usage or in errors.
func (e *Env) Secret(name, help string) secrets.Value {
	e.register(setting{name: name, kind: "string", help: help, secret: true})
	v, _ := e.get(name)
	e.addSecret(v)
	return secrets.NewValue(v)
}

// RequiredSecret is [Env.Secret] for a secret that must be set.
func (e *Env) RequiredSecret(name, help string) secrets.Value {
	e.register(setting{name: name, kind: "string", help: help, secret: true, required: true})
	v, ok := e.get(name)
	if !ok {
		e.fail(name, ErrMissing)
	}
	e.addSecret(v)
	return secrets.NewValue(v)
}

// SecretList returns the variable split like [Env.List], each item a
// [secrets.Value]; for secrets that rotate, such as GC_WEBHOOK_SECRET,
// where every listed secret is accepted and the first is current.
func (e *Env) SecretList(name, help string) []secrets.Value {
	e.register(setting{name: name, kind: "comma-separated list", help: help, secret: true})
	v, _ := e.get(name)
	var out []secrets.Value
	for _, item := range splitList(v) {
		e.addSecret(item)
		out = append(out, secrets.NewValue(item))
	}
	return out
}

// Usage writes every setting registered so far, in registration order,
// with its kind, default, whether it is required or secret, and its help.
// It shows no current values. Binaries print it for --help.
func (e *Env) Usage(w io.Writer) {
	var b strings.Builder
	b.WriteString("Environment variables:\n")
	for _, s := range e.settings {
		fmt.Fprintf(&b, "  %s  %s", s.name, s.kind)
		var notes []string
		switch {
		case s.required:
			notes = append(notes, "required")
		case s.def != "":
			notes = append(notes, "default "+strconv.Quote(s.def))
		}
		if s.secret {
			notes = append(notes, "secret")
		}
		if len(notes) > 0 {
			fmt.Fprintf(&b, "  (%s)", strings.Join(notes, ", "))
		}
		b.WriteByte('\n')
		for line := range strings.SplitSeq(strings.TrimSpace(s.help), "\n") {
			if line = strings.TrimSpace(line); line != "" {
				fmt.Fprintf(&b, "      %s\n", line)
			}
		}
	}
	_, _ = io.WriteString(w, b.String())
}

// HelpRequested reports whether args (os.Args[1:]) ask for help with -h,
// -help or --help before any "--".
func HelpRequested(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help", "--h":
			return true
		}
	}
	return false
}
