package web

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/ml-connector/ml-connector/platform/audit"
	"github.com/ml-connector/ml-connector/platform/secrets"
	"github.com/ml-connector/ml-connector/services/console/internal/loginlimit"
	"github.com/ml-connector/ml-connector/services/console/internal/session"
	"github.com/ml-connector/ml-connector/services/console/users"
)

type loginData struct {
	Next       string
	Error      string
	LoginToken string
	Name       string
	OIDC       bool
}

// loginPage shows the sign-in form. The form carries a token also set as
// a cookie, so a sign-in cannot be forged from another site (login CSRF).
func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	s.showLogin(w, r, http.StatusOK, "", "")
}

func (s *Server) showLogin(w http.ResponseWriter, r *http.Request, status int, name, msg string) {
	token := randomToken()
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: token, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: 900})
	s.render(w, r, status, "login", "Sign in", loginData{
		Next: localPath(r.FormValue("next"), "/"), Error: msg, LoginToken: token, Name: name, OIDC: s.cfg.OIDC != nil})
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// login checks a local account's name and password, rate limited per
// name and per client address, and starts a session.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		s.problem(w, r, http.StatusBadRequest, "the sign-in form could not be read")
		return
	}
	name := strings.TrimSpace(r.PostFormValue("name"))
	c, err := r.Cookie(loginCookie)
	if err != nil || subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostFormValue("login_token"))) != 1 {
		s.showLogin(w, r, http.StatusForbidden, name, "The sign-in form expired. Please try again.")
		return
	}
	client := s.clientAddr(r)
	// The address first: a client over its limit then cannot add a row
	// per name it tries.
	byAddr, ok, err := s.limiter.Begin(r.Context(), "addr:"+client)
	var byName *loginlimit.Attempt
	if err == nil && ok {
		byName, ok, err = s.limiter.Begin(r.Context(), "name:"+strings.ToLower(name))
	}
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, errors.Join(err, byAddr.Cancel(r.Context())))
		return
	}
	if !ok {
		if err := byAddr.Cancel(r.Context()); err != nil {
			s.log.WarnContext(r.Context(), "sign-in limit", "error", err)
		}
		s.log.WarnContext(r.Context(), "sign-in rate limited", "user", truncate(name, 64), "client", client)
		w.Header().Set("Retry-After", strconv.Itoa(int(s.cfg.LoginWindow.Seconds())+1))
		s.showLogin(w, r, http.StatusTooManyRequests, name, "Too many failed sign-ins. Wait a few minutes and try again.")
		return
	}
	u, err := s.users.Authenticate(r.Context(), name, secrets.NewValue(r.PostFormValue("password")))
	if errors.Is(err, users.ErrBadCredentials) {
		// Both attempts stay counted.
		s.log.InfoContext(r.Context(), "sign-in refused", "user", truncate(name, 64), "client", client)
		s.showLogin(w, r, http.StatusUnauthorized, name, "Unknown user or wrong password.")
		return
	}
	// Right password, or the check failed: not a failed guess.
	if cerr := errors.Join(byName.Cancel(r.Context()), byAddr.Cancel(r.Context())); cerr != nil {
		s.log.WarnContext(r.Context(), "sign-in limit", "error", cerr)
	}
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	s.startSession(w, r, u, "password", localPath(r.PostFormValue("next"), "/"))
}

// startSession signs u in, audits it, and sends the browser to next.
func (s *Server) startSession(w http.ResponseWriter, r *http.Request, u users.User, method, next string) {
	token, err := s.sessions.Create(r.Context(), u.ID)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	if _, err := audit.Append(r.Context(), s.db, audit.Entry{AggregateType: "console_user", AggregateID: u.Name,
		Actor: "console:" + u.Name, Action: "user.signed_in", Payload: map[string]any{"method": method, "client": s.clientAddr(r)}}); err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: token, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, MaxAge: int(s.sessions.TTL().Seconds())})
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	s.log.InfoContext(r.Context(), "signed in", "user", u.Name, "method", method)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	p := who(r)
	if err := s.sessions.Delete(r.Context(), p.token); err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: -1})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// sessionInfo tells a script who it is signed in as and the CSRF token
// its state-changing requests must carry in X-CSRF-Token.
func (s *Server) sessionInfo(w http.ResponseWriter, r *http.Request) {
	p := who(r)
	writeJSON(w, http.StatusOK, map[string]any{"user": p.user, "csrf_token": session.CSRF(p.token)})
}

// maxForwarded bounds how many X-Forwarded-For entries are looked at.
const maxForwarded = 32

// clientAddr is the client's IP address: the peer's, unless the peer is
// one of Config.TrustedProxies, in which case it is the last address in
// X-Forwarded-For that is not a trusted proxy (each proxy appends the
// address it saw, so entries left of it are the client's to forge).
func (s *Server) clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if !s.trusted(host) {
		return host
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	for i := len(hops) - 1; i >= 0 && i >= len(hops)-maxForwarded; i-- {
		ip, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a malformed hop: trust nothing left of it
		}
		if !s.trusted(ip.Unmap().String()) {
			return ip.Unmap().String()
		}
	}
	return host
}

// trusted reports whether host is one of the trusted proxies.
func (s *Server) trusted(host string) bool {
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// SweepLoginLimits deletes the sign-in counts of ended windows.
func (s *Server) SweepLoginLimits(ctx context.Context) (int64, error) {
	return s.limiter.Sweep(ctx)
}
