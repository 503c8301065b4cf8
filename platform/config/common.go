package config

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ml-connector/ml-connector/platform/secrets"
)

// Names of the variables the services share (see DESIGN.md, "Conventions
// every part keeps"). The service-specific ones are read by the service
// that needs them, with the defaults below.
const (
	VarNATSURL            = "NATS_URL"
	VarNATSUser           = "NATS_USER"     // this service's NATS user (deploy/k8s/base/accounts.conf)
	VarNATSPassword       = "NATS_PASSWORD" // its password; read with Env.Secret
	VarNATSCAFile         = "NATS_CA_FILE"  // PEM CA that signed the NATS servers' certificates
	VarDatabaseURL        = "DATABASE_URL"
	VarMasterKey          = "MLC_MASTER_KEY"
	VarPreviousMasterKeys = "MLC_PREVIOUS_MASTER_KEYS"
	VarHTTPAddr           = "HTTP_ADDR"
	VarLogLevel           = "LOG_LEVEL"

	VarWebhookAddr     = "WEBHOOK_ADDR"      // gc-webhook's public listener
	VarGRPCAddr        = "GRPC_ADDR"         // erp-poster's gRPC listener
	VarERPPosterAddr   = "ERP_POSTER_ADDR"   // where the orchestrator dials erp-poster
	VarGCWebhookSecret = "GC_WEBHOOK_SECRET" // comma-separated, for rotation; read with Env.SecretList
)

// Defaults for the variables above.
const (
	DefaultNATSURL       = "nats://127.0.0.1:4222"
	DefaultDatabaseURL   = "postgres://postgres@127.0.0.1:5432/mlc?sslmode=disable"
	DefaultHTTPAddr      = ":8080"
	DefaultLogLevel      = "info"
	DefaultWebhookAddr   = ":8443"
	DefaultGRPCAddr      = ":9090"
	DefaultERPPosterAddr = "127.0.0.1:9090"
)

// URL schemes accepted for NATS_URL and DATABASE_URL.
var (
	natsSchemes     = []string{"nats", "tls", "ws", "wss"}
	postgresSchemes = []string{"postgres", "postgresql"}
)

// Common holds the settings every service reads.
type Common struct {
	// NATSURL is one or more NATS server URLs, comma-separated, in the
	// form nats.Connect accepts. It may carry credentials; log it through
	// RedactURL.
	NATSURL string
	// NATSUser and NATSPassword authenticate to NATS; both empty when the
	// server asks for no credentials (development).
	NATSUser     string
	NATSPassword secrets.Value
	// NATSCAFile, when set, is the CA the servers' TLS certificates must
	// chain to; the connection then requires TLS.
	NATSCAFile string
	// DatabaseURL is the Postgres connection URL. It usually carries the
	// password, so it is a secrets.Value: Reveal it only to connect.
	DatabaseURL secrets.Value
	// HTTPAddr is the internal listener for /healthz, /readyz and /metrics.
	HTTPAddr string
	// LogLevel is the minimum level to log.
	LogLevel slog.Level
}

// LoadCommon reads NATS_URL, DATABASE_URL, HTTP_ADDR and LOG_LEVEL from e,
// recording any problem in e. The master key is read separately by
// [LoadKeyring], since only the services that handle stored secrets need it.
func LoadCommon(e *Env) Common {
	var c Common
	var urls []string
	for _, u := range e.URLList(VarNATSURL, DefaultNATSURL,
		"NATS server URL; several may be given, comma-separated.", natsSchemes...) {
		urls = append(urls, u.String())
	}
	c.NATSURL = strings.Join(urls, ",")
	c.NATSUser = e.String(VarNATSUser, "", "NATS user name of this service (empty: no authentication).")
	c.NATSPassword = e.Secret(VarNATSPassword, "Password of NATS_USER.")
	if c.NATSUser == "" && !c.NATSPassword.Empty() {
		e.Errorf(VarNATSPassword, "set without %s", VarNATSUser)
	}
	c.NATSCAFile = e.String(VarNATSCAFile, "", "PEM file of the CA that signed the NATS servers' certificates; requires TLS.")
	if c.NATSCAFile != "" {
		if _, err := os.Stat(c.NATSCAFile); err != nil {
			e.Errorf(VarNATSCAFile, "%v", err)
		}
	}
	c.DatabaseURL = e.PostgresURL(VarDatabaseURL, DefaultDatabaseURL,
		"Postgres connection URL, or keyword=value connection string (may include the password).")
	c.HTTPAddr = e.Addr(VarHTTPAddr, DefaultHTTPAddr,
		"Listen address for /healthz, /readyz and /metrics.")
	lvl := e.OneOf(VarLogLevel, DefaultLogLevel, "Minimum log level.", "debug", "info", "warn", "error")
	if lvl != "" {
		if err := c.LogLevel.UnmarshalText([]byte(lvl)); err != nil {
			e.fail(VarLogLevel, err)
		}
	}
	return c
}

// LoadKeyring reads MLC_MASTER_KEY (required: base64 of 32 bytes) and
// MLC_PREVIOUS_MASTER_KEYS (optional: comma-separated keys in the same
// form, still accepted for opening secrets sealed before a rotation) and
// returns the keyring, or nil after recording the problem in e. Errors
// never include key material.
func LoadKeyring(e *Env) *secrets.Keyring {
	primaryB64 := e.RequiredSecret(VarMasterKey,
		"Master key that encrypts stored connection secrets: base64 of 32 random bytes\n"+
			"(e.g. head -c 32 /dev/urandom | base64).")
	previousB64 := e.SecretList(VarPreviousMasterKeys,
		"Earlier master keys, comma-separated, kept during a key rotation\n"+
			"until every stored secret has been re-sealed under MLC_MASTER_KEY.")
	// Kind shown in Usage.
	e.byName[VarMasterKey].kind = "base64 key (32 bytes)"
	e.byName[VarPreviousMasterKeys].kind = "comma-separated base64 keys"

	ok := true
	var primary []byte
	if !primaryB64.Empty() {
		var err error
		if primary, err = secrets.DecodeKey(primaryB64.Reveal()); err != nil {
			e.fail(VarMasterKey, err)
			ok = false
		}
	} else {
		ok = false // already recorded as missing
	}
	var previous [][]byte
	for i, p := range previousB64 {
		k, err := secrets.DecodeKey(p.Reveal())
		if err != nil {
			e.fail(VarPreviousMasterKeys, fmt.Errorf("key %d: %w", i+1, err))
			ok = false
			continue
		}
		previous = append(previous, k)
	}
	defer func() {
		clear(primary)
		for _, p := range previous {
			clear(p)
		}
	}()
	if !ok {
		return nil
	}
	kr, err := secrets.NewKeyring(primary, previous...)
	if err != nil {
		e.fail(VarMasterKey, err)
		return nil
	}
	return kr
}

// PostgresURL reads a Postgres connection string in either form libpq and pgx
// accept: a postgres:// URL, checked like [Env.SecretURL], or keyword=value
// settings ("host=db user=app password=…"). The password pgx would send
// (from the string, PGPASSWORD or a passfile) is registered as a secret.
// Errors never quote a keyword=value string, since any part of one may be
// the password.
// An empty def makes the setting optional: unset, it returns an empty
// value.
func (e *Env) PostgresURL(name, def, help string) secrets.Value {
	e.register(setting{name: name, kind: "Postgres URL or keyword=value", def: RedactURL(def), help: help, secret: true})
	v, ok := e.get(name)
	if !ok {
		if def == "" {
			return secrets.Value{}
		}
		v = def
	}
	if strings.Contains(v, "://") {
		u, err := parseURL(v, postgresSchemes)
		if err != nil {
			e.fail(name, defaultPrefix(!ok, err))
			return secrets.Value{}
		}
		if pw, ok := u.User.Password(); ok {
			e.addSecret(pw)
		}
	}
	cfg, err := pgconn.ParseConfig(v)
	if err != nil {
		// pgx's message quotes the string, redacted only as well as it
		// can parse it: say what is wrong without it.
		e.fail(name, defaultPrefix(!ok, errors.New("not a valid Postgres connection string "+
			"(want postgres://user:password@host:port/db?sslmode=… or host=… port=… dbname=… keyword=value pairs; value not shown)")))
		return secrets.Value{}
	}
	if cfg.Password != "" && !slices.ContainsFunc(e.secrets, func(s secrets.Value) bool { return s.Reveal() == cfg.Password }) {
		e.addSecret(cfg.Password)
	}
	return secrets.NewValue(v)
}
