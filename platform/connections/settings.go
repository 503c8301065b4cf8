package connections

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// MaxSettingsBytes bounds a connection's settings as JSON. Real settings
// are a few hundred bytes; the bound keeps a mistake (or a pasted file)
// out of the registry, the audit log and every replica's memory.
const MaxSettingsBytes = 64 << 10

// namePattern is what a connection name may be: it appears in webhook
// URLs, NATS message fields, lock names and logs.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// ValidName reports whether name can be a connection's name: 1 to 63
// letters, digits, '.', '_' or '-', starting with a letter or digit.
func ValidName(name string) bool { return namePattern.MatchString(name) }

// ErrSecretInSettings is wrapped by the error for settings that carry what
// looks like a secret: those go through --secret, sealed, never into the
// plain settings that connections list, the audit log and errors show.
var ErrSecretInSettings = errors.New("secrets belong in --secret, not in settings")

// secretWords mark a setting name as holding a secret. "token" alone is
// not one of them: token_url and token_max_age are ordinary settings.
var secretWords = []string{
	"password", "passwd", "pwd", "secret", "credential", "cookie", "apikey", "api_key",
	"private_key", "access_token", "refresh_token", "id_token", "bearer", "authorization",
}

// secretKey reports whether a setting name looks like it holds a secret.
func secretKey(key string) bool {
	k := strings.ToLower(strings.NewReplacer("-", "_", " ", "_").Replace(key))
	if k == "token" || strings.HasSuffix(k, "_token") {
		return true
	}
	return slices.ContainsFunc(secretWords, func(w string) bool { return strings.Contains(k, w) })
}

// ParseSettings reads a settings JSON object, refusing one larger than
// MaxSettingsBytes, with a duplicate key at any depth (JSON decoders keep
// the last silently, so what was reviewed is not what runs), or one that
// CheckSettings refuses.
func ParseSettings(raw []byte) (map[string]any, error) {
	if len(raw) > MaxSettingsBytes {
		return nil, fmt.Errorf("settings of %d bytes exceed %d", len(raw), MaxSettingsBytes)
	}
	settings := map[string]any{}
	if len(bytes.TrimSpace(raw)) == 0 {
		return settings, nil
	}
	if err := checkDuplicateKeys(raw); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, &settings); err != nil {
		return nil, fmt.Errorf("settings must be a JSON object: %w", err)
	}
	if err := CheckSettings(settings); err != nil {
		return nil, err
	}
	return settings, nil
}

// CheckSettings refuses settings that are too large or that carry a
// secret: a key that names one (client_secret, password, api_key, ...),
// or a URL with a password or a secret-looking query parameter
// (https://user:pw@host, ?access_token=...). Neither the values nor the
// URLs are quoted in the error.
func CheckSettings(settings map[string]any) error {
	b, err := json.Marshal(settings)
	if err != nil {
		return fmt.Errorf("settings: %w", err)
	}
	if len(b) > MaxSettingsBytes {
		return fmt.Errorf("settings of %d bytes exceed %d", len(b), MaxSettingsBytes)
	}
	var errs []error
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, sub := range v {
				p := k
				if path != "" {
					p = path + "." + k
				}
				if secretKey(k) {
					errs = append(errs, fmt.Errorf("setting %q: %w", p, ErrSecretInSettings))
					continue
				}
				walk(p, sub)
			}
		case []any:
			for i, sub := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), sub)
			}
		case string:
			if urlCarriesSecret(v) {
				errs = append(errs, fmt.Errorf("setting %q: URL with credentials: %w", path, ErrSecretInSettings))
			}
		}
	}
	walk("", settings)
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}

// urlCarriesSecret reports whether s holds a URL with a password in its
// userinfo or a secret-looking query parameter. Text that does not parse
// as a URL is checked for the userinfo shape by hand, since a malformed
// URL is no less a leak.
func urlCarriesSecret(s string) bool {
	i := strings.Index(s, "://")
	if i < 0 {
		return false
	}
	rest := s[i+3:]
	auth := rest
	if end := strings.IndexAny(rest, "/?#"); end >= 0 {
		auth = rest[:end]
	}
	if at := strings.LastIndexByte(auth, '@'); at >= 0 && strings.Contains(auth[:at], ":") {
		return true
	}
	if at := strings.IndexByte(rest, '@'); at >= 0 && strings.Contains(rest[:at], ":") && !strings.ContainsAny(rest[:at], "?#") {
		return true // u:pa/ss@host: an unescaped '/' in the password
	}
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return false
	}
	if _, ok := u.User.Password(); ok {
		return true
	}
	for k := range u.Query() {
		if secretKey(k) {
			return true
		}
	}
	return false
}

// checkDuplicateKeys walks raw's tokens and fails on an object holding a
// key twice.
func checkDuplicateKeys(raw []byte) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var walk func(path string) error
	walk = func(path string) error {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("settings must be a JSON object: %w", err)
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return fmt.Errorf("settings must be a JSON object: %w", err)
				}
				k, _ := kt.(string)
				p := k
				if path != "" {
					p = path + "." + k
				}
				if seen[k] {
					return fmt.Errorf("settings: key %q appears twice", p)
				}
				seen[k] = true
				if err := walk(p); err != nil {
					return err
				}
			}
			_, err := dec.Token() // '}'
			return err
		case json.Delim('['):
			for i := 0; dec.More(); i++ {
				if err := walk(fmt.Sprintf("%s[%d]", path, i)); err != nil {
					return err
				}
			}
			_, err := dec.Token() // ']'
			return err
		}
		return nil
	}
	if err := walk(""); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("settings must be a single JSON object")
	}
	return nil
}
