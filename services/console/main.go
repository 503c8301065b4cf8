// Command console is the AR console: a web page for the people who run
// collections (exceptions to act on, what happened to an invoice, whether
// each connection works, connections to add) and the same routes as JSON
// for scripts. It reads the services' Postgres and acts through the
// orchestrator's operator package, as mlcctl does.
//
// Its settings are environment variables; run it with --help to list them.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"github.com/ml-connector/ml-connector/platform/audit"
	"github.com/ml-connector/ml-connector/platform/command"
	"github.com/ml-connector/ml-connector/platform/config"
	"github.com/ml-connector/ml-connector/platform/service"
	"github.com/ml-connector/ml-connector/services/console/internal/session"
	"github.com/ml-connector/ml-connector/services/console/internal/views"
	"github.com/ml-connector/ml-connector/services/console/internal/web"
	"github.com/ml-connector/ml-connector/services/console/users"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/operator"
)

func main() { command.Main("console", run) }

// settings are the console's own variables, range-checked.
type settings struct {
	addr          string
	sessionTTL    time.Duration
	loginAttempts int
	loginWindow   time.Duration
	proxies       []netip.Prefix
	refresh       time.Duration
	oidc          *web.OIDCConfig
}

func loadSettings(env *config.Env) settings {
	return settings{
		addr:          env.Addr("CONSOLE_ADDR", ":8090", "Listener for the console's pages and JSON API (put TLS in front: its cookies are Secure)."),
		sessionTTL:    env.DurationRange("CONSOLE_SESSION_TTL", 8*time.Hour, 5*time.Minute, 24*time.Hour, "How long a sign-in lasts."),
		loginAttempts: env.IntRange("CONSOLE_LOGIN_ATTEMPTS", 10, 1, 1000, "Failed sign-ins allowed per user name and per client address in CONSOLE_LOGIN_WINDOW."),
		loginWindow:   env.DurationRange("CONSOLE_LOGIN_WINDOW", 15*time.Minute, time.Minute, 24*time.Hour, "Window of CONSOLE_LOGIN_ATTEMPTS."),
		proxies:       loadProxies(env),
		refresh:       env.DurationRange("CONSOLE_OVERVIEW_REFRESH", 15*time.Second, time.Second, 10*time.Minute, "How often the overview's figures are recounted."),
		oidc:          loadOIDC(env),
	}
}

// maxProxies bounds CONSOLE_TRUSTED_PROXIES.
const maxProxies = 64

// loadProxies reads the reverse proxies whose X-Forwarded-For is believed.
func loadProxies(env *config.Env) []netip.Prefix {
	const name = "CONSOLE_TRUSTED_PROXIES"
	items := env.List(name, "", "Address ranges (CIDR) of the reverse proxies in front of the console, such as the ingress\n"+
		"controller's pods: from these, the client address of the sign-in limit is read from X-Forwarded-For.\n"+
		"Unset: the peer's address (behind an ingress, every client shares the ingress's).")
	if len(items) > maxProxies {
		env.Errorf(name, "%d ranges, at most %d", len(items), maxProxies)
		return nil
	}
	var out []netip.Prefix
	for _, it := range items {
		p, err := netip.ParsePrefix(it)
		if err != nil {
			env.Errorf(name, "%q is not an address range such as 10.0.0.0/8: %v", it, err)
			continue
		}
		out = append(out, p.Masked())
	}
	return out
}

// claimName is what a claim's name may be.
var claimName = regexp.MustCompile(`^[A-Za-z0-9_.:/-]{1,100}$`)

// loadOIDC reads sign-in through the company's OpenID provider, nil when
// CONSOLE_OIDC_ISSUER is unset. Every value is checked here, each error
// naming its variable; the client secret is never echoed.
func loadOIDC(env *config.Env) *web.OIDCConfig {
	issuer := env.URL("CONSOLE_OIDC_ISSUER", "", "OpenID provider's issuer URL; set it to offer sign-in with company accounts.", "https")
	clientID := env.String("CONSOLE_OIDC_CLIENT_ID", "", "The console's client id at the provider (needed with CONSOLE_OIDC_ISSUER).")
	secret := env.Secret("CONSOLE_OIDC_CLIENT_SECRET", "The console's client secret at the provider (a confidential client; PKCE is used as well).")
	redirect := env.URL("CONSOLE_OIDC_REDIRECT_URL", "", "The console's callback as registered at the provider: https://<console host>/auth/oidc/callback\n"+
		"(http only on a loopback address, such as mlc-demo's console: http://127.0.0.1:<port>/auth/oidc/callback).", "https", "http")
	scopes := env.List("CONSOLE_OIDC_SCOPES", "email,profile", "Scopes asked for besides openid (add the one that brings the role claim, e.g. groups).")
	nameClaim := env.String("CONSOLE_OIDC_NAME_CLAIM", "email", "Claim naming the console account (email requires email_verified).")
	roleClaim := env.String("CONSOLE_OIDC_ROLE_CLAIM", "groups", "Claim holding the person's groups or roles.")
	groups := map[users.Role][]string{
		users.Admin:    env.List("CONSOLE_OIDC_ADMIN_GROUPS", "", "Values of the role claim that make an admin."),
		users.Operator: env.List("CONSOLE_OIDC_OPERATOR_GROUPS", "", "Values of the role claim that make an operator."),
		users.Viewer:   env.List("CONSOLE_OIDC_VIEWER_GROUPS", "", "Values of the role claim that make a viewer."),
	}
	if issuer == nil {
		return nil
	}
	if clientID == "" || len(clientID) > 256 {
		env.Errorf("CONSOLE_OIDC_CLIENT_ID", "must be set (1-256 characters) with CONSOLE_OIDC_ISSUER")
	}
	if len(secret.Reveal()) > 1024 {
		env.Errorf("CONSOLE_OIDC_CLIENT_SECRET", "longer than 1024 characters")
	}
	if redirect == nil || redirect.Path != "/auth/oidc/callback" || redirect.RawQuery != "" || redirect.Fragment != "" || redirect.User != nil {
		env.Errorf("CONSOLE_OIDC_REDIRECT_URL", "must be set with CONSOLE_OIDC_ISSUER, as https://<console host>/auth/oidc/callback")
	} else if redirect.Scheme == "http" && !config.IsLoopbackHost(redirect.Hostname()) {
		// RFC 8252 section 7.3 allows a loopback redirect over http; and
		// only on loopback do browsers keep the console's Secure cookies
		// without TLS. Anywhere else the code would cross the network
		// in clear.
		env.Errorf("CONSOLE_OIDC_REDIRECT_URL", "http only on a loopback address (127.0.0.1, ::1 or localhost); elsewhere https")
	}
	if len(scopes) > 20 {
		env.Errorf("CONSOLE_OIDC_SCOPES", "at most 20 scopes")
	}
	for _, sc := range scopes {
		if !claimName.MatchString(sc) {
			env.Errorf("CONSOLE_OIDC_SCOPES", "scope %q: 1-100 letters, digits or _.:/-", sc)
		}
	}
	for name, v := range map[string]string{"CONSOLE_OIDC_NAME_CLAIM": nameClaim, "CONSOLE_OIDC_ROLE_CLAIM": roleClaim} {
		if !claimName.MatchString(v) {
			env.Errorf(name, "%q: 1-100 letters, digits or _.:/-", v)
		}
	}
	roles := map[string]users.Role{}
	for _, role := range []users.Role{users.Viewer, users.Operator, users.Admin} { // later, higher roles win a shared group
		name := "CONSOLE_OIDC_" + strings.ToUpper(string(role)) + "_GROUPS"
		if len(groups[role]) > 100 {
			env.Errorf(name, "at most 100 groups")
		}
		for _, g := range groups[role] {
			if len(g) > 256 {
				env.Errorf(name, "a group name is longer than 256 characters")
			}
			roles[g] = role
		}
	}
	if len(roles) == 0 {
		env.Errorf("CONSOLE_OIDC_ADMIN_GROUPS", "with CONSOLE_OIDC_ISSUER, map at least one group to a role "+
			"(CONSOLE_OIDC_ADMIN_GROUPS, CONSOLE_OIDC_OPERATOR_GROUPS or CONSOLE_OIDC_VIEWER_GROUPS)")
	}
	cfg := &web.OIDCConfig{Issuer: issuer.String(), ClientID: clientID, ClientSecret: secret,
		Scopes: scopes, NameClaim: nameClaim, RoleClaim: roleClaim, Roles: roles}
	if redirect != nil {
		cfg.RedirectURL = redirect.String()
	}
	return cfg
}

func run(ctx context.Context, args []string) error {
	env := config.FromOS()
	cfg := service.LoadConfig(env, "console")
	s := loadSettings(env)
	svc, err := service.Open(ctx, env, cfg, args)
	if err != nil {
		return err
	}
	desk := operator.NewDesk(svc.DB, svc.Connections, nil)
	v := views.New(svc.DB, desk)
	if svc.Keys != nil {
		v.CheckMACs(audit.KeysFrom(svc.Keys))
	}
	overview := views.NewRefresher(v, s.refresh)
	sessions := session.NewStore(svc.DB, s.sessionTTL)
	wcfg := web.Config{LoginAttempts: s.loginAttempts, LoginWindow: s.loginWindow, TrustedProxies: s.proxies, Overview: overview}
	if s.oidc != nil {
		if wcfg.OIDC, err = web.NewOIDC(*s.oidc); err != nil {
			return err
		}
	}
	srv, err := web.New(wcfg,
		svc.Log, svc.DB, users.NewStore(svc.DB), sessions, desk, svc.Connections, v)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.addr, err)
	}
	svc.Log.InfoContext(ctx, "console listening", "addr", ln.Addr().String())
	return svc.Run(ctx,
		service.HTTPServer("console", ln, srv.Handler()),
		service.Worker{Name: "overview", Run: overview.Run},
		service.Worker{Name: "session-sweeper", Run: func(ctx context.Context) error { return sweep(ctx, sessions, srv, svc.Log) }},
	)
}

// sweep deletes expired sessions and the sign-in counts of ended windows
// now and then.
func sweep(ctx context.Context, sessions *session.Store, srv *web.Server, log *slog.Logger) error {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		if n, err := sessions.Sweep(ctx); err != nil && ctx.Err() == nil {
			log.WarnContext(ctx, "session sweep", "error", err)
		} else if n > 0 {
			log.InfoContext(ctx, "expired sessions deleted", "count", n)
		}
		if _, err := srv.SweepLoginLimits(ctx); err != nil && ctx.Err() == nil {
			log.WarnContext(ctx, "sign-in limit sweep", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
