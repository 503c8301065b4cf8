// Package accounts routes an ERP company to the GoCardless account and
// creditor that collect for it, from the connection registry: an ERP
// connection's settings name its GoCardless connection ("gocardless", or
// the only GoCardless connection when there is one) and map each company
// code to a creditor ("creditors": {"10": "CR123"}). Clients are built
// once per GoCardless connection and kept, so their rate-limit pacing and
// circuit breaker see all of the process's traffic.
package accounts

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ml-connector/ml-connector/connectors/gocardless"
	"github.com/ml-connector/ml-connector/platform/connections"
	"github.com/ml-connector/ml-connector/platform/logging"
	"github.com/ml-connector/ml-connector/platform/secrets"
)

// ErrNotRoutable means the registry cannot say who collects for a company:
// a configuration problem for an operator, not something a retry fixes.
var ErrNotRoutable = errors.New("no gocardless route")

// Registry is the part of the connection registry used here.
type Registry interface {
	Get(ctx context.Context, name string) (connections.Connection, error)
	ListKind(ctx context.Context, kind connections.Kind) ([]connections.Connection, error)
	Secrets(ctx context.Context, name string) (map[string]secrets.Value, error)
}

// Route is who collects for one ERP company.
type Route struct {
	ERP        connections.Connection
	Company    string
	GoCardless connections.Connection
	Client     *gocardless.Client
	// Creditor is the GoCardless creditor of the company; "" lets GoCardless
	// use the account's only creditor.
	Creditor string
	// GC are the GoCardless connection's optional settings.
	GC GCSettings
}

// Directory resolves routes, caching what it read for ttl.
type Directory struct {
	reg  Registry
	ttl  time.Duration
	opts func(name string) []gocardless.Option

	mu      sync.Mutex
	conns   map[string]cachedConn
	clients map[string]cachedClient
}

type cachedConn struct {
	conn  connections.Connection
	until time.Time
}

type cachedClient struct {
	client      *gocardless.Client
	fingerprint [32]byte
	until       time.Time
}

// New returns a directory over reg; opts gives the client options of a
// GoCardless connection by name (breaker name, logger, transport).
func New(reg Registry, ttl time.Duration, opts func(name string) []gocardless.Option) *Directory {
	if opts == nil {
		opts = func(string) []gocardless.Option { return nil }
	}
	return &Directory{reg: reg, ttl: ttl, opts: opts, conns: map[string]cachedConn{}, clients: map[string]cachedClient{}}
}

// Connection returns a registered connection by name.
func (d *Directory) Connection(ctx context.Context, name string) (connections.Connection, error) {
	d.mu.Lock()
	c, ok := d.conns[name]
	d.mu.Unlock()
	if ok && time.Now().Before(c.until) {
		return c.conn, nil
	}
	conn, err := d.reg.Get(ctx, name)
	if errors.Is(err, connections.ErrNotFound) {
		return conn, fmt.Errorf("%w: connection %q is not registered", ErrNotRoutable, name)
	}
	if err != nil {
		return conn, err
	}
	d.mu.Lock()
	d.conns[name] = cachedConn{conn: conn, until: time.Now().Add(d.ttl)}
	d.mu.Unlock()
	return conn, nil
}

// Route returns who collects for company of the ERP connection named erp.
func (d *Directory) Route(ctx context.Context, erp, company string) (Route, error) {
	conn, err := d.Connection(ctx, erp)
	if err != nil {
		return Route{}, err
	}
	if conn.Kind == connections.KindGoCardless {
		return Route{}, fmt.Errorf("%w: %q is a GoCardless connection, not an ERP", ErrNotRoutable, erp)
	}
	if !slices.Contains(conn.CompanyCodes(), company) {
		return Route{}, fmt.Errorf("%w: company %q is not configured on connection %q", ErrNotRoutable, company, erp)
	}
	gcName, _ := conn.Settings["gocardless"].(string)
	if gcName == "" {
		all, err := d.reg.ListKind(ctx, connections.KindGoCardless)
		if err != nil {
			return Route{}, err
		}
		if len(all) != 1 {
			return Route{}, fmt.Errorf("%w: connection %q names no \"gocardless\" connection and %d exist", ErrNotRoutable, erp, len(all))
		}
		gcName = all[0].Name
	}
	gc, client, err := d.GoCardless(ctx, gcName)
	if err != nil {
		return Route{}, err
	}
	r := Route{ERP: conn, Company: company, GoCardless: gc, Client: client}
	if r.GC, err = ParseGCSettings(gc.Settings); err != nil {
		return Route{}, fmt.Errorf("%w: connection %q: %w", ErrNotRoutable, gcName, err)
	}
	if creditors, ok := conn.Settings["creditors"].(map[string]any); ok && len(creditors) > 0 {
		r.Creditor, _ = creditors[company].(string)
		if r.Creditor == "" {
			return Route{}, fmt.Errorf("%w: company %q of %q has no creditor in \"creditors\"", ErrNotRoutable, company, erp)
		}
	}
	return r, nil
}

// GoCardless returns a GoCardless connection and its client.
func (d *Directory) GoCardless(ctx context.Context, name string) (connections.Connection, *gocardless.Client, error) {
	conn, err := d.Connection(ctx, name)
	if err != nil {
		return conn, nil, err
	}
	if conn.Kind != connections.KindGoCardless {
		return conn, nil, fmt.Errorf("%w: %q is not a GoCardless connection", ErrNotRoutable, name)
	}
	d.mu.Lock()
	cached, ok := d.clients[name]
	d.mu.Unlock()
	if ok && time.Now().Before(cached.until) {
		return conn, cached.client, nil
	}
	vals, err := d.reg.Secrets(ctx, name)
	if err != nil {
		return conn, nil, err
	}
	token := vals["access_token"]
	baseURL, _ := conn.Settings["base_url"].(string)
	fingerprint := sha256.Sum256([]byte(baseURL + "\x00" + token.Reveal()))
	if ok && cached.fingerprint == fingerprint {
		// Same account: keep the client, whose pacing and breaker carry state.
		cached.until = time.Now().Add(d.ttl)
		d.mu.Lock()
		d.clients[name] = cached
		d.mu.Unlock()
		return conn, cached.client, nil
	}
	logging.Register(token.Reveal())
	client, err := gocardless.New(baseURL, token, d.opts(name)...)
	if err != nil {
		return conn, nil, fmt.Errorf("gocardless client for %q: %w", name, err)
	}
	d.mu.Lock()
	d.clients[name] = cachedClient{client: client, fingerprint: fingerprint, until: time.Now().Add(d.ttl)}
	d.mu.Unlock()
	return conn, client, nil
}

// GoCardlessConnections lists the GoCardless connections, for the
// /events catch-up.
func (d *Directory) GoCardlessConnections(ctx context.Context) ([]connections.Connection, error) {
	return d.reg.ListKind(ctx, connections.KindGoCardless)
}

// ByID finds a connection by id among those of kind.
func (d *Directory) ByID(ctx context.Context, kind connections.Kind, id int64) (connections.Connection, error) {
	all, err := d.reg.ListKind(ctx, kind)
	if err != nil {
		return connections.Connection{}, err
	}
	for _, c := range all {
		if c.ID == id {
			return c, nil
		}
	}
	return connections.Connection{}, fmt.Errorf("%w: no %s connection with id %d", ErrNotRoutable, kind, id)
}
