package ifssim

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// apiError is an error answer in IFS's shape.
type apiError struct {
	status int
	code   string
	msg    string
	header http.Header
}

func notFound(format string, args ...any) *apiError {
	return &apiError{status: http.StatusNotFound, code: "MI_METADATA_NOTFOUND", msg: fmt.Sprintf(format, args...)}
}

func badRequest(code, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: code, msg: fmt.Sprintf(format, args...)}
}

// dbError is how IFS reports a business rule refused by the database layer.
func dbError(format string, args ...any) *apiError {
	return badRequest("DATABASE_ERROR", format, args...)
}

func (e *apiError) write(w http.ResponseWriter) {
	for k, v := range e.header {
		w.Header()[k] = v
	}
	body, _ := json.Marshal(map[string]any{"error": map[string]any{"code": e.code, "message": e.msg, "details": []any{}}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.status)
	_, _ = w.Write(body)
}

// Stats counts what the simulator served.
type Stats struct {
	TokensIssued  int `json:"tokens_issued"`
	TokensRefused int `json:"tokens_refused"`
	// APIRequests is every request to the OData API, whatever its answer.
	APIRequests        int `json:"api_requests"`
	Queries            int `json:"queries"` // collection reads answered 200
	Reads              int `json:"reads"`   // single-entity reads answered 200
	Writes             int `json:"writes"`  // creates and bound actions that succeeded
	Unauthorized       int `json:"unauthorized"`
	Throttled          int `json:"throttled"`
	PreconditionFailed int `json:"precondition_failed"`
	ServerErrors       int `json:"server_errors"`
	BadRequests        int `json:"bad_requests"`
}

// Request is one API request as the simulator saw it.
type Request struct {
	At        time.Time `json:"at"`
	Method    string    `json:"method"`
	Path      string    `json:"path"`
	Query     string    `json:"query,omitempty"`
	UserAgent string    `json:"user_agent,omitempty"`
	// Token is the serial number of the access token used (1 for the first
	// issued), 0 when none was valid.
	Token  int `json:"token"`
	Status int `json:"status"`
}

// maxRequests bounds the request log.
const maxRequests = 10000

// Stats returns the counters since New or the last ResetStats.
func (s *Sim) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Requests returns the API requests served (the last 10000).
func (s *Sim) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// ResetStats clears the counters and the request log.
func (s *Sim) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats, s.requests = Stats{}, nil
}

// ServeHTTP serves the IAM token endpoint
// (/auth/realms/<realm>/protocol/openid-connect/token), the OData API under
// APIPath, and the control API under /_sim/ (see control.go).
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch p := r.URL.Path; {
	case strings.HasPrefix(p, "/_sim/"):
		s.control(w, r)
	case strings.HasPrefix(p, "/auth/realms/"):
		s.token(w, r)
	case strings.HasPrefix(p, s.cfg.APIPath+"/"):
		s.api(w, r)
	default:
		notFound("no resource at %s", p).write(w)
	}
}

// token is the client-credentials grant of the IAM realm.
func (s *Sim) token(w http.ResponseWriter, r *http.Request) {
	oauthError := func(status int, code, desc string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
	}
	if r.URL.Path != "/auth/realms/"+s.cfg.Realm+"/protocol/openid-connect/token" {
		oauthError(http.StatusNotFound, "not_found", "Realm does not exist")
		return
	}
	if r.Method != http.MethodPost {
		oauthError(http.StatusMethodNotAllowed, "invalid_request", "POST required")
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthError(http.StatusBadRequest, "invalid_request", "unreadable form")
		return
	}
	id, secret, basic := r.BasicAuth()
	if !basic {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.PostForm.Get("grant_type") != "client_credentials" {
		s.stats.TokensRefused++
		oauthError(http.StatusBadRequest, "unsupported_grant_type", "Unsupported grant_type")
		return
	}
	if id != s.cfg.ClientID || secret != s.cfg.ClientSecret {
		s.stats.TokensRefused++
		oauthError(http.StatusUnauthorized, "unauthorized_client", "Invalid client or Invalid client credentials")
		return
	}
	raw := make([]byte, 24)
	_, _ = rand.Read(raw)
	tok := hex.EncodeToString(raw)
	s.tokenSerial++
	s.tokens[tok] = issued{expires: s.now().Add(s.cfg.TokenTTL), serial: s.tokenSerial}
	s.stats.TokensIssued++
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token":       tok,
		"expires_in":         int(s.cfg.TokenTTL / time.Second),
		"refresh_expires_in": 0,
		"token_type":         "Bearer",
		"not-before-policy":  0,
		"scope":              r.PostForm.Get("scope"),
	})
}

// api serves one OData request: latency, budget and injected faults first
// (as a gateway would), then authentication, then the request itself.
func (s *Sim) api(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	latency := s.faults.latency
	s.mu.Unlock()
	if latency > 0 {
		select {
		case <-time.After(latency):
		case <-r.Context().Done():
			return
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	req := Request{At: s.now(), Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, UserAgent: r.UserAgent()}
	status, body, header, aerr := s.serveAPI(r, &req)
	if aerr != nil {
		status = aerr.status
		aerr.write(w)
	} else {
		for k, v := range header {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Type", "application/json;odata.metadata=minimal")
		w.Header().Set("OData-Version", "4.0")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}
	req.Status = status
	s.count(status)
	if len(s.requests) >= maxRequests {
		s.requests = s.requests[1:]
	}
	s.requests = append(s.requests, req)
}

func (s *Sim) count(status int) {
	s.stats.APIRequests++
	switch {
	case status == http.StatusUnauthorized:
		s.stats.Unauthorized++
	case status == http.StatusTooManyRequests:
		s.stats.Throttled++
	case status == http.StatusPreconditionFailed:
		s.stats.PreconditionFailed++
	case status == http.StatusBadRequest:
		s.stats.BadRequests++
	case status >= 500:
		s.stats.ServerErrors++
	}
}

func (s *Sim) serveAPI(r *http.Request, req *Request) (int, []byte, http.Header, *apiError) {
	now := s.now()
	if s.cfg.Budget > 0 {
		if now.Sub(s.windowStart) >= s.cfg.BudgetWindow {
			s.windowStart, s.windowCount = now, 0
		}
		s.windowCount++
		if s.windowCount > s.cfg.Budget {
			return 0, nil, nil, throttled(s.windowStart.Add(s.cfg.BudgetWindow).Sub(now),
				fmt.Sprintf("Request limit of %d per %s exceeded", s.cfg.Budget, s.cfg.BudgetWindow))
		}
	}
	if s.faults.throttleNext > 0 {
		s.faults.throttleNext--
		return 0, nil, nil, throttled(s.faults.retryAfter, "Too many requests")
	}
	if s.faults.failNext > 0 {
		s.faults.failNext--
		return 0, nil, nil, &apiError{status: s.faults.failStatus, code: "DATABASE_ERROR",
			msg: "ORA-00060: deadlock detected while waiting for resource"}
	}

	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	t, known := s.tokens[tok]
	if !ok || !known || !now.Before(t.expires) {
		e := &apiError{status: http.StatusUnauthorized, code: "UNAUTHORIZED", msg: "The access token is missing, invalid or expired",
			header: http.Header{"Www-Authenticate": {`Bearer realm="` + s.cfg.Realm + `", error="invalid_token"`}}}
		return 0, nil, nil, e
	}
	req.Token = t.serial

	es, pred, actionName, aerr := s.route(r.URL.Path)
	if aerr != nil {
		return 0, nil, nil, aerr
	}
	ieee := !s.cfg.IgnoreIEEE754 && strings.Contains(strings.ToLower(r.Header.Get("Accept")), "ieee754compatible=true")
	switch {
	case pred == "" && actionName == "" && r.Method == http.MethodPost && es.create != nil:
		// OData create (OData 4.0 Protocol 11.4.2): 201 with the entity and
		// its ETag. A create carries no If-Match: there is nothing to match.
		d := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
		d.UseNumber()
		m := map[string]any{}
		if err := d.Decode(&m); err != nil {
			return 0, nil, nil, badRequest("ODP_INVALID_BODY", "the entity is not a JSON object: %v", err)
		}
		rw, aerr := es.create(m)
		if aerr != nil {
			return 0, nil, nil, aerr
		}
		var b bytes.Buffer
		writeEntity(&b, rw, es.fields, ieee, s.context(r, es)+"/$entity")
		s.stats.Writes++
		return http.StatusCreated, b.Bytes(), http.Header{"Etag": {rw.etag}}, nil
	case pred == "" && actionName == "":
		if r.Method != http.MethodGet {
			return 0, nil, nil, &apiError{status: http.StatusMethodNotAllowed, code: "ODP_METHOD_NOT_ALLOWED", msg: r.Method + " is not allowed on " + es.name}
		}
		body, aerr := s.query(r, es, ieee)
		if aerr != nil {
			return 0, nil, nil, aerr
		}
		s.stats.Queries++
		return http.StatusOK, body, nil, nil
	case actionName == "":
		if r.Method != http.MethodGet {
			return 0, nil, nil, &apiError{status: http.StatusMethodNotAllowed, code: "ODP_METHOD_NOT_ALLOWED", msg: r.Method + " is not allowed on an entity; use a bound action"}
		}
		key, aerr := parseKey(pred, es)
		if aerr != nil {
			return 0, nil, nil, aerr
		}
		rw, found := es.lookup(key)
		if !found {
			return 0, nil, nil, &apiError{status: http.StatusNotFound, code: "ODP_NOT_FOUND", msg: "No " + es.name + " with key " + pred}
		}
		sel, aerr := selectFields(r.URL.Query().Get("$select"), es)
		if aerr != nil {
			return 0, nil, nil, aerr
		}
		var b bytes.Buffer
		writeEntity(&b, rw, sel, ieee, s.context(r, es))
		s.stats.Reads++
		return http.StatusOK, b.Bytes(), http.Header{"Etag": {rw.etag}}, nil
	default:
		if r.Method != http.MethodPost {
			return 0, nil, nil, &apiError{status: http.StatusMethodNotAllowed, code: "ODP_METHOD_NOT_ALLOWED", msg: "actions are invoked with POST"}
		}
		body, aerr := s.invoke(r, es, pred, actionName, ieee)
		if aerr != nil {
			return 0, nil, nil, aerr
		}
		s.stats.Writes++
		return http.StatusOK, body, nil, nil
	}
}

func throttled(after time.Duration, msg string) *apiError {
	secs := max(1, int(math.Ceil(after.Seconds())))
	return &apiError{status: http.StatusTooManyRequests, code: "TOO_MANY_REQUESTS", msg: msg,
		header: http.Header{"Retry-After": {strconv.Itoa(secs)}}}
}

// route splits <APIPath>/<Projection>.svc/<Set>[(<key>)][/IfsApp.<Projection>.<Action>].
func (s *Sim) route(path string) (es *entitySet, pred, action string, aerr *apiError) {
	rest := strings.TrimPrefix(path, s.cfg.APIPath+"/")
	svc, rest, _ := strings.Cut(rest, "/")
	projection, ok := strings.CutSuffix(svc, ".svc")
	if !ok {
		return nil, "", "", notFound("%s is not a projection service", svc)
	}
	end := strings.IndexAny(rest, "(/")
	if end < 0 {
		end = len(rest)
	}
	name := rest[:end]
	es, ok = s.sets[projection+"/"+name]
	if !ok {
		return nil, "", "", notFound("entity set %s not found in projection %s", name, projection)
	}
	rest = rest[end:]
	if strings.HasPrefix(rest, "(") {
		closeAt := closingParen(rest)
		if closeAt < 0 {
			return nil, "", "", badRequest("ODP_UNSUPPORTED_URL", "unbalanced key predicate in %s", path)
		}
		pred, rest = rest[1:closeAt], rest[closeAt+1:]
		if pred == "" {
			return nil, "", "", badRequest("ODP_UNSUPPORTED_URL", "empty key predicate")
		}
	}
	if rest == "" {
		return es, pred, "", nil
	}
	if pred == "" {
		return nil, "", "", notFound("unbound operation %s", rest)
	}
	qualified, ok := strings.CutPrefix(rest, "/IfsApp."+es.projection+".")
	if !ok || es.actions[qualified] == nil {
		return nil, "", "", notFound("operation %s not found on %s", strings.TrimPrefix(rest, "/"), es.name)
	}
	return es, pred, qualified, nil
}

// closingParen finds the ) that closes the ( at s[0], skipping quoted text.
func closingParen(s string) int {
	inQuote := false
	for i := 1; i < len(s); i++ {
		switch {
		case s[i] == '\'':
			inQuote = !inQuote
		case s[i] == ')' && !inQuote:
			return i
		}
	}
	return -1
}

// parseKey reads a key predicate: a single literal for single-key sets, or
// Name=literal pairs.
func parseKey(pred string, es *entitySet) (map[string]value, *apiError) {
	bad := badRequest("ODP_INVALID_KEY", "key predicate (%s) does not match the keys %v of %s", pred, es.keys, es.name)
	parts := splitOutsideQuotes(pred, ',')
	key := map[string]value{}
	for _, part := range parts {
		kv := splitOutsideQuotes(part, '=')
		var name, lit string
		switch {
		case len(kv) == 2:
			name, lit = strings.TrimSpace(kv[0]), kv[1]
		case len(kv) == 1 && len(parts) == 1 && len(es.keys) == 1:
			name, lit = es.keys[0], kv[0]
		default:
			return nil, bad
		}
		if !slices.Contains(es.keys, name) {
			return nil, bad
		}
		toks, lerr := lex(strings.TrimSpace(lit))
		if lerr != nil || len(toks) != 2 {
			return nil, bad
		}
		v, aerr := literalFor(es.schema[name], "eq", toks[0])
		if aerr != nil || v.k == kNull {
			return nil, bad
		}
		key[name] = v
	}
	if len(key) != len(es.keys) {
		return nil, bad
	}
	return key, nil
}

// splitOutsideQuotes splits s at sep where sep is not inside '...'.
func splitOutsideQuotes(s string, sep byte) []string {
	var parts []string
	inQuote, start := false, 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\'':
			inQuote = !inQuote
		case s[i] == sep && !inQuote:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}
