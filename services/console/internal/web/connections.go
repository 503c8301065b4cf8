package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"

	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/platform/secrets"
	"github.com/ml-connector/ml-connector/services/console/ping"
)

// secretNames are the secrets a form may set, per kind: the required one
// first. Their values are sealed on arrival and never shown again.
var secretNames = map[connections.Kind][]string{
	connections.KindIFS:        {"client_secret"},
	connections.KindJDE:        {"password"},
	connections.KindGoCardless: {"access_token", "webhook_secret"},
}

// connectionView is a connection as the page and the JSON show it: the
// names of its secrets, never a value.
type connectionView struct {
	Name      string         `json:"name"`
	Kind      string         `json:"kind"`
	Companies []string       `json:"company_codes"`
	BaseURL   string         `json:"base_url"`
	Settings  map[string]any `json:"settings"`
	Secrets   []string       `json:"secrets_stored"`
	Rotatable []string       `json:"-"`
	UpdatedAt string         `json:"updated_at"`
}

type connectionsData struct {
	Connections []connectionView  `json:"connections"`
	Ping        *ping.Result      `json:"ping,omitempty"`
	Error       string            `json:"error,omitempty"`
	IsAdmin     bool              `json:"-"`
	Form        map[string]string `json:"-"`
}

func (s *Server) connectionsData(r *http.Request) (connectionsData, error) {
	list, err := s.conns.List(r.Context())
	if err != nil {
		return connectionsData{}, err
	}
	d := connectionsData{Connections: []connectionView{}, IsAdmin: who(r).user.Role.Allows("admin"), Form: map[string]string{}}
	for _, c := range list {
		v := connectionView{Name: c.Name, Kind: string(c.Kind), Companies: c.CompanyCodes(), Settings: c.Settings,
			Rotatable: secretNames[c.Kind], UpdatedAt: c.UpdatedAt.UTC().Format("2006-01-02 15:04 UTC")}
		v.BaseURL, _ = c.Settings["base_url"].(string)
		for name := range c.Secrets {
			v.Secrets = append(v.Secrets, name)
		}
		sort.Strings(v.Secrets)
		d.Connections = append(d.Connections, v)
	}
	return d, nil
}

func (s *Server) connectionsPage(w http.ResponseWriter, r *http.Request) {
	d, err := s.connectionsData(r)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	s.render(w, r, http.StatusOK, "connections", "Connections", d)
}

var (
	validConnName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	validCode     = regexp.MustCompile(`^[A-Za-z0-9._-]{1,32}$`)
)

// formField bounds every text field of the connection form.
const formField = 2048

// newConnection reads the add form into a connection to add.
func newConnection(r *http.Request, actor string) (connections.New, error) {
	if err := r.ParseForm(); err != nil {
		return connections.New{}, errors.New("the form could not be read")
	}
	get := func(k string) string { return strings.TrimSpace(r.PostFormValue(k)) }
	for k, v := range r.PostForm {
		if len(v) > 1 || len(v) == 1 && len(v[0]) > formField {
			return connections.New{}, fmt.Errorf("field %s: one value of at most %d characters", k, formField)
		}
	}
	kind, err := connections.ParseKind(get("kind"))
	if err != nil {
		return connections.New{}, err
	}
	n := connections.New{Name: get("name"), Kind: kind, Settings: map[string]any{}, Secrets: map[string]secrets.Value{}, Actor: actor}
	if !validConnName.MatchString(n.Name) {
		return n, errors.New("name: 1-64 letters, digits, dots, dashes or underscores")
	}
	if extra := get("extra_settings"); extra != "" {
		if err := json.Unmarshal([]byte(extra), &n.Settings); err != nil {
			return n, fmt.Errorf("more settings must be a JSON object: %w", err)
		}
	}
	if v := get("base_url"); v != "" {
		if !strings.HasPrefix(v, "https://") && !strings.HasPrefix(v, "http://") {
			return n, errors.New("base URL must start with https:// (or http:// for a local simulator)")
		}
		n.Settings["base_url"] = v
	}
	for _, k := range []string{"client_id", "username", "gocardless"} {
		if v := get(k); v != "" {
			n.Settings[k] = v
		}
	}
	if v := get("company_codes"); v != "" {
		var codes []any
		for _, c := range strings.Split(v, ",") {
			c = strings.TrimSpace(c)
			if !validCode.MatchString(c) {
				return n, fmt.Errorf("company code %q: 1-32 letters, digits, dots, dashes or underscores", c)
			}
			codes = append(codes, c)
		}
		n.Settings["company_codes"] = codes
	}
	if v := get("creditors"); v != "" {
		creditors := map[string]any{}
		for _, pair := range strings.Split(v, ",") {
			company, creditor, ok := strings.Cut(strings.TrimSpace(pair), "=")
			if !ok || !validCode.MatchString(company) || !validCode.MatchString(creditor) {
				return n, fmt.Errorf("creditors: %q is not COMPANY=CREDITOR", pair)
			}
			creditors[company] = creditor
		}
		n.Settings["creditors"] = creditors
	}
	for _, name := range secretNames[kind] {
		if v := r.PostFormValue("secret_" + name); v != "" {
			n.Secrets[name] = secrets.NewValue(v)
		}
	}
	return n, nil
}

// connectionAdd registers a connection; its secrets are sealed at once.
func (s *Server) connectionAdd(w http.ResponseWriter, r *http.Request) {
	n, err := newConnection(r, who(r).actor())
	if err == nil {
		_, err = s.conns.Add(r.Context(), n)
	}
	if err != nil {
		s.log.InfoContext(r.Context(), "connection not added", "user", who(r).user.Name, "connection", n.Name, "error", err)
		d, derr := s.connectionsData(r)
		if derr != nil {
			s.fail(w, r, http.StatusInternalServerError, derr)
			return
		}
		d.Error = "Not added: " + err.Error()
		// Echo what was typed back into the form, except the secrets.
		for _, k := range []string{"name", "kind", "base_url", "client_id", "username", "gocardless", "company_codes", "creditors", "extra_settings"} {
			d.Form[k] = r.PostFormValue(k)
		}
		s.render(w, r, http.StatusBadRequest, "connections", "Connections", d)
		return
	}
	s.log.InfoContext(r.Context(), "connection added", "user", who(r).user.Name, "connection", n.Name, "kind", n.Kind)
	r.PostForm.Set("back", "/connections")
	s.done(w, r, fmt.Sprintf("Added %s connection %s. Its secrets are stored encrypted and will not be shown again. Ping it to check it works.", n.Kind, n.Name),
		map[string]string{"added": n.Name, "kind": string(n.Kind)})
}

// connectionRotate replaces secrets of a connection.
func (s *Server) connectionRotate(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	conn, err := s.conns.Get(r.Context(), name)
	if errors.Is(err, connections.ErrNotFound) {
		s.problem(w, r, http.StatusNotFound, "no connection "+name)
		return
	}
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	vals := map[string]secrets.Value{}
	for _, n := range secretNames[conn.Kind] {
		v := r.PostFormValue("secret_" + n)
		if len(v) > formField {
			s.problem(w, r, http.StatusBadRequest, n+": too long")
			return
		}
		if v != "" {
			vals[n] = secrets.NewValue(v)
		}
	}
	if len(vals) == 0 {
		s.problem(w, r, http.StatusBadRequest, "enter at least one new secret")
		return
	}
	if err := s.conns.SetSecrets(r.Context(), name, vals, who(r).actor()); err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	names := make([]string, 0, len(vals))
	for n := range vals {
		names = append(names, n)
	}
	sort.Strings(names)
	s.log.InfoContext(r.Context(), "connection secrets replaced", "user", who(r).user.Name, "connection", name, "secrets", names)
	r.PostForm.Set("back", "/connections")
	s.done(w, r, fmt.Sprintf("Replaced %s of %s. Ping it to check the new credentials.", strings.Join(names, " and "), name),
		map[string]any{"connection": name, "replaced": names})
}

// connectionPing runs the same checks as mlcctl connections ping and shows
// each step.
func (s *Server) connectionPing(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	conn, err := s.conns.Get(r.Context(), name)
	if errors.Is(err, connections.ErrNotFound) {
		s.problem(w, r, http.StatusNotFound, "no connection "+name)
		return
	}
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	res := ping.Connection(r.Context(), s.conns, conn)
	s.log.InfoContext(r.Context(), "ping", "user", who(r).user.Name, "connection", name, "ok", res.OK)
	if wantsJSON(r) || r.Header.Get("X-CSRF-Token") != "" {
		writeJSON(w, http.StatusOK, res)
		return
	}
	d, err := s.connectionsData(r)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	d.Ping = &res
	s.render(w, r, http.StatusOK, "connections", "Connections", d)
}
