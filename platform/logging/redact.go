package logging

import (
	"encoding/json"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"

	"github.com/ml-connector/ml-connector/platform/secrets"
)

// Redacted replaces every value the handler withholds.
const Redacted = secrets.Redacted

// MinSecretLen is the shortest secret a [Redactor] will scrub. Shorter
// strings ("1234", "test") occur naturally in log lines, and replacing every
// occurrence would destroy the logs while adding little protection.
const MinSecretLen = 6

// secretKeyParts are matched case-insensitively as substrings of attribute
// keys, with '-' and ' ' read as '_' (so "X-Api-Key" and "clientSecret"
// match). A false positive costs a log value; a false negative leaks a
// credential.
var secretKeyParts = []string{
	"password", "passwd", "secret", "token", "authorization", "api_key",
	"apikey", "client_secret", "private_key", "credential", "cookie",
	"master_key",
}

// IsSecretKey reports whether an attribute with this key has its value
// replaced by [Redacted] regardless of the value.
func IsSecretKey(key string) bool {
	k := strings.Map(normalizeKeyRune, key)
	for _, p := range secretKeyParts {
		if strings.Contains(k, p) {
			return true
		}
	}
	return false
}

func normalizeKeyRune(r rune) rune {
	if r == '-' || r == ' ' {
		return '_'
	}
	return unicode.ToLower(r)
}

// A Redactor scrubs known secret strings from text. Code registers a
// plaintext with [Redactor.Add] as soon as it holds one (after decrypting a
// connection secret, after reading one from the environment), so that a
// dependency echoing it in an error message cannot put it in the log.
// It is safe for concurrent use; scrubbing does not take a lock.
//
// Registered secrets are kept for the life of the process; that is
// deliberate, since an old secret in a late log line is still a secret.
type Redactor struct {
	mu      sync.Mutex
	secrets map[string]struct{}
	rep     atomic.Pointer[strings.Replacer] // nil until a secret is added
}

// NewRedactor returns an empty Redactor.
func NewRedactor() *Redactor {
	return &Redactor{secrets: make(map[string]struct{})}
}

// Add registers secrets to scrub, together with their URL- and
// JSON-escaped forms (which is how they appear in a logged URL or request
// body). Secrets shorter than [MinSecretLen] are ignored.
func (r *Redactor) Add(secrets ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	changed := false
	for _, s := range secrets {
		if len(s) < MinSecretLen {
			continue
		}
		for _, form := range encodings(s) {
			if _, ok := r.secrets[form]; !ok {
				r.secrets[form] = struct{}{}
				changed = true
			}
		}
	}
	if !changed {
		return
	}
	all := make([]string, 0, len(r.secrets))
	for s := range r.secrets {
		all = append(all, s)
	}
	// strings.Replacer prefers earlier pairs at the same position; longest
	// first makes a secret that extends another one vanish completely.
	slices.SortFunc(all, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	pairs := make([]string, 0, 2*len(all))
	for _, s := range all {
		pairs = append(pairs, s, Redacted)
	}
	r.rep.Store(strings.NewReplacer(pairs...))
}

func encodings(s string) []string {
	forms := []string{s, url.QueryEscape(s), url.PathEscape(s)}
	if b, err := json.Marshal(s); err == nil {
		forms = append(forms, string(b[1:len(b)-1]))
	}
	slices.Sort(forms)
	return slices.Compact(forms)
}

// Scrub returns s with every registered secret, every password in a URL's
// userinfo and every password=… keyword setting replaced by [Redacted].
// A nil Redactor only does the latter two.
func (r *Redactor) Scrub(s string) string {
	if r != nil {
		if rep := r.rep.Load(); rep != nil {
			s = rep.Replace(s)
		}
	}
	return scrubPatterns(s)
}

func scrubPatterns(s string) string {
	if strings.Contains(s, "://") {
		s = secrets.RedactURL(s)
	}
	if strings.Contains(s, "=") {
		s = scrubKeywordPasswords(s)
	}
	return s
}

// keywordPassword matches libpq-style settings ("host=db password=x") and
// query parameters ("?password=x&"), which drivers include in errors.
var keywordPassword = regexp.MustCompile(`(?i)\b(password|passwd|pwd)(\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&;,'"]+)`)

func scrubKeywordPasswords(s string) string {
	return keywordPassword.ReplaceAllString(s, "${1}${2}"+Redacted)
}
