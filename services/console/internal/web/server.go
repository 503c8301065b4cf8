// Package web is the console's HTTP side: server-rendered pages
// (html/template, no script at all, so the Content-Security-Policy allows
// none) and the same routes as JSON for scripts (Accept: application/json).
//
// This page can move money, so: every route but sign-in needs a session;
// a state-changing request needs the session's CSRF token and must come
// from the console's own origin; each action checks the user's role and
// is recorded in the audit log under "console:<user>"; secrets entered in
// forms are sealed at once and never rendered, logged or sent back.
package web

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/services/console/internal/loginlimit"
	"github.com/ml-connector/ml-connector/services/console/internal/session"
	"github.com/ml-connector/ml-connector/services/console/internal/views"
	"github.com/ml-connector/ml-connector/services/console/users"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/operator"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Cookie names. The __Host- prefix makes the browser insist on Secure,
// Path=/ and no Domain, so no other host can set or read them.
const (
	sessionCookie = "__Host-mlc_session"
	loginCookie   = "__Host-mlc_login"
	flashCookie   = "__Host-mlc_flash"
)

// Config is what the server needs besides its stores.
type Config struct {
	// LoginAttempts is how many failed sign-ins a user name or a client
	// address may make per LoginWindow before being refused, counted
	// across every console replica on the same database.
	LoginAttempts int
	LoginWindow   time.Duration
	// TrustedProxies are the reverse proxies (the ingress controller)
	// whose X-Forwarded-For names the client; without them every client
	// behind the ingress shares the ingress's address and its limit.
	TrustedProxies []netip.Prefix
	// OIDC, when set, offers sign-in through the company's provider.
	OIDC *OIDC
	// Overview keeps the overview page's figures.
	Overview *views.Refresher
}

// Server serves the console.
type Server struct {
	cfg      Config
	db       *pgxpool.Pool
	log      *slog.Logger
	users    *users.Store
	sessions *session.Store
	views    *views.Views
	desk     *operator.Desk
	conns    *connections.Store
	limiter  *loginlimit.Limiter
	pages    map[string]*template.Template
}

// New returns the console over its stores.
func New(cfg Config, log *slog.Logger, db *pgxpool.Pool, us *users.Store, ss *session.Store, desk *operator.Desk, conns *connections.Store, v *views.Views) (*Server, error) {
	if cfg.LoginAttempts < 1 || cfg.LoginWindow <= 0 || cfg.Overview == nil {
		return nil, errors.New("web: login attempts and window must be positive, and an overview refresher given")
	}
	limiter, err := loginlimit.New(db, cfg.LoginAttempts, cfg.LoginWindow)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, db: db, log: log, users: us, sessions: ss, desk: desk, conns: conns, views: v,
		limiter: limiter, pages: map[string]*template.Template{}}
	names, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		page := strings.TrimSuffix(strings.TrimPrefix(name, "templates/"), ".html")
		if page == "layout" {
			continue
		}
		t, err := template.New(page).Funcs(funcs).ParseFS(assets, "templates/layout.html", name)
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", page, err)
		}
		s.pages[page] = t
	}
	return s, nil
}

var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"ago": func(t time.Time) string { return ago(time.Since(t)) },
	"collectionURL": func(conn, company, doc string) string {
		return "/collections/" + url.PathEscape(conn) + "/" + url.PathEscape(company) + "/" + escapeDoc(doc)
	},
	"join": strings.Join,
}

// escapeDoc escapes each segment of a document id ("4711/RI/001").
func escapeDoc(doc string) string {
	parts := strings.Split(doc, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

func ago(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	return fmt.Sprintf("%d days ago", int(d.Hours()/24))
}

// Handler is the console's routes behind the security headers and the
// cross-origin check.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /login", s.loginPage)
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("GET /auth/oidc", s.oidcStart)
	mux.HandleFunc("GET /auth/oidc/callback", s.oidcCallback)
	mux.Handle("POST /logout", s.need(users.Viewer, s.logout))
	mux.Handle("GET /session", s.need(users.Viewer, s.sessionInfo))

	mux.Handle("GET /{$}", s.need(users.Viewer, s.overview))
	mux.Handle("GET /exceptions", s.need(users.Viewer, s.exceptions))
	mux.Handle("POST /exceptions/{action}", s.need(users.Operator, s.exceptionAction))
	mux.Handle("POST /exceptions/bulk", s.need(users.Operator, s.bulkPreview))
	mux.Handle("POST /exceptions/bulk/confirm", s.need(users.Operator, s.bulkConfirm))
	mux.Handle("GET /collections/{connection}/{company}/{document...}", s.need(users.Viewer, s.collection))
	mux.Handle("GET /mandates", s.need(users.Viewer, s.mandates))
	mux.Handle("POST /mandates/{id}/resend", s.need(users.Operator, s.mandateResend))
	mux.Handle("GET /payouts", s.need(users.Viewer, s.payoutsPage))
	mux.Handle("GET /payouts/{id}", s.need(users.Viewer, s.payoutPage))
	mux.Handle("POST /payouts/{id}/repost", s.need(users.Operator, s.payoutRepost))
	mux.Handle("GET /reports/month-end", s.need(users.Viewer, s.monthEnd))
	mux.Handle("GET /connections", s.need(users.Viewer, s.connectionsPage))
	mux.Handle("POST /connections", s.need(users.Admin, s.connectionAdd))
	mux.Handle("POST /connections/{name}/secrets", s.need(users.Admin, s.connectionRotate))
	mux.Handle("POST /connections/{name}/ping", s.need(users.Admin, s.connectionPing))
	mux.Handle("GET /users", s.need(users.Admin, s.usersPage))

	// Refuses a state-changing request another site's page makes the
	// browser send (Sec-Fetch-Site / Origin), before the CSRF token check.
	cop := http.NewCrossOriginProtection()
	return securityHeaders(cop.Handler(mux))
}

// csp allows the console's own stylesheet and images and nothing else: no
// script of any kind, no framing, forms only to itself.
const csp = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'"

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
		h.Set("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
		if !strings.HasPrefix(r.URL.Path, "/static/") {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

// maxForm bounds a request body: forms are small.
const maxForm = 64 << 10

type ctxKey struct{}

// principal is the signed-in user of a request.
type principal struct {
	user  users.User
	token string
}

func (p principal) actor() string { return "console:" + p.user.Name }

func who(r *http.Request) principal {
	p, _ := r.Context().Value(ctxKey{}).(principal)
	return p
}

// need wraps h so that it runs only for a signed-in user whose role allows
// need, and, for state-changing methods, only with the session's CSRF
// token.
func (s *Server) need(role users.Role, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(sessionCookie)
		var p principal
		if err == nil {
			p.token = c.Value
			var id int64
			if id, err = s.sessions.User(r.Context(), c.Value); err == nil {
				p.user, err = s.users.ByID(r.Context(), id)
			}
		}
		if err != nil {
			if !errors.Is(err, http.ErrNoCookie) && !errors.Is(err, session.ErrNoSession) && !errors.Is(err, users.ErrNotFound) {
				s.fail(w, r, http.StatusInternalServerError, err)
				return
			}
			if wantsJSON(r) || r.Method != http.MethodGet {
				s.problem(w, r, http.StatusUnauthorized, "sign in first")
				return
			}
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
			token := r.Header.Get("X-CSRF-Token")
			if token == "" {
				token = r.PostFormValue("csrf_token")
			}
			if !session.CheckCSRF(p.token, token) {
				s.problem(w, r, http.StatusForbidden, "the form has expired or did not come from this console: reload the page and try again")
				return
			}
		}
		if !p.user.Role.Allows(role) {
			s.log.WarnContext(r.Context(), "action refused", "user", p.user.Name, "role", p.user.Role, "needs", role, "path", r.URL.Path)
			s.problem(w, r, http.StatusForbidden, fmt.Sprintf("refused: this needs the %s role, and %s is a %s", role, p.user.Name, p.user.Role))
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, p)))
	})
}

func wantsJSON(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "application/json")
}

// page is what every page's template gets.
type page struct {
	Title string
	User  users.User
	CSRF  string
	Flash string
	Nav   string
	Data  any
}

// render writes a page, or its Data as JSON when the client asked for it.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name, title string, data any) {
	if wantsJSON(r) {
		writeJSON(w, status, data)
		return
	}
	p := who(r)
	pg := page{Title: title, User: p.user, Data: data, Nav: name, Flash: s.takeFlash(w, r)}
	if p.token != "" {
		pg.CSRF = session.CSRF(p.token)
	}
	t, ok := s.pages[name]
	if !ok {
		s.fail(w, r, http.StatusInternalServerError, fmt.Errorf("no template %s", name))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := t.ExecuteTemplate(w, "layout", pg); err != nil {
		s.log.ErrorContext(r.Context(), "render", "page", name, "error", err)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// problem answers with a message meant for the user.
func (s *Server) problem(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if wantsJSON(r) || r.Method != http.MethodGet && r.Header.Get("X-CSRF-Token") != "" {
		writeJSON(w, status, map[string]string{"error": msg})
		return
	}
	s.render(w, r, status, "problem", http.StatusText(status), map[string]string{"error": msg})
}

// fail logs an internal error and answers without its detail, which may
// name tables or hosts.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, err error) {
	s.log.ErrorContext(r.Context(), "request failed", "path", r.URL.Path, "error", err)
	s.problem(w, r, status, "something went wrong on our side; it has been logged")
}

// done ends a successful action: JSON clients get the result, browsers are
// sent back to the page they came from with msg shown once.
func (s *Server) done(w http.ResponseWriter, r *http.Request, msg string, result any) {
	if wantsJSON(r) || r.Header.Get("X-CSRF-Token") != "" {
		writeJSON(w, http.StatusOK, result)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: url.QueryEscape(truncate(msg, 1000)), Path: "/",
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: 60})
	http.Redirect(w, r, localPath(r.PostFormValue("back"), "/exceptions"), http.StatusSeeOther)
}

func (s *Server) takeFlash(w http.ResponseWriter, r *http.Request) string {
	c, err := r.Cookie(flashCookie)
	if err != nil {
		return ""
	}
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: -1})
	msg, err := url.QueryUnescape(c.Value)
	if err != nil {
		return ""
	}
	return truncate(msg, 1000)
}

// localPath returns p if it is a path on this site, else def: a "back" or
// "next" parameter must not send the user elsewhere.
func localPath(p, def string) string {
	if p == "" || !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") || len(p) > 2000 {
		return def
	}
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" {
		return def
	}
	return p
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
