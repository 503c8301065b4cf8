package secrets

import "strings"

// RedactURL replaces the password in the userinfo of every URL in
// s, which may be free text such as an error message:
// "dial postgres://app:pw@db:5432/mlc: refused" becomes
// "dial postgres://app:[REDACTED]@db:5432/mlc: refused". It also works on
// URLs that do not parse, such as a password with an unescaped '/' or '@',
// since that is exactly when drivers tend to quote the URL back.
func RedactURL(s string) string {
	var b strings.Builder
	rest := s
	for {
		i := strings.Index(rest, "://")
		if i < 0 {
			break
		}
		start := i + len("://")
		colon, at := userinfoPassword(rest[start:])
		if colon < 0 {
			b.WriteString(rest[:start])
			rest = rest[start:]
			continue
		}
		b.WriteString(rest[:start+colon+1])
		b.WriteString(Redacted)
		rest = rest[start+at:]
	}
	if b.Len() == 0 {
		return s
	}
	b.WriteString(rest)
	return b.String()
}

// userinfoPassword finds the password in the text after "://": it is
// between colon+1 and at. colon is -1 if there is none.
func userinfoPassword(s string) (colon, at int) {
	// The URL ends where running text does.
	if end := strings.IndexAny(s, "\"'` \t\r\n<>"); end >= 0 {
		s = s[:end]
	}
	// Well-formed: the authority ends at the path, query or fragment, and
	// the userinfo at its last '@' (an unescaped '@' in a password).
	auth := s
	if end := strings.IndexAny(s, "/?#"); end >= 0 {
		auth = s[:end]
	}
	if at := strings.LastIndexByte(auth, '@'); at >= 0 {
		if colon := strings.IndexByte(auth[:at], ':'); colon >= 0 {
			return colon, at
		}
		return -1, -1
	}
	// Malformed: a password with an unescaped '/' ends the authority early
	// ("u:pa/ss@host"). Accept it if the part before the first '@' looks
	// like user:password, not like host:port/path?query.
	if at := strings.IndexByte(s, '@'); at >= 0 {
		info := s[:at]
		if colon := strings.IndexByte(info, ':'); colon >= 0 && !strings.ContainsAny(info, "?#") {
			return colon, at
		}
	}
	return -1, -1
}
