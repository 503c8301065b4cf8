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
	// Version changes whenever the registry does.
	Version(ctx context.Context) (string, error)
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
	kinds   map[connections.Kind]cachedList
	byID    map[int64]connections.Connection
	snap    *Snapshot
	// version is the registry's version the caches were read at, checked
	// at most every VersionCheck: a change drops them all.
	version    string
	checked    time.Time
	checkEvery time.Duration
}

// VersionCheck is how often, at most, a directory asks the registry
// whether it changed: a connection added, edited or removed is seen within
// it, and the registry is asked nothing per message.
const VersionCheck = time.Second

type cachedList struct {
	conns []connections.Connection
	until time.Time
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
	return &Directory{reg: reg, ttl: ttl, opts: opts, conns: map[string]cachedConn{}, clients: map[string]cachedClient{},
		kinds: map[connections.Kind]cachedList{}, byID: map[int64]connections.Connection{}, checkEvery: VersionCheck}
}

// fresh drops what the directory cached when the registry changed since
// it was read; it asks at most every VersionCheck. Should the registry
// not answer, the caches stay (each entry still expires after ttl).
func (d *Directory) fresh(ctx context.Context) {
	d.mu.Lock()
	due := time.Since(d.checked) >= d.checkEvery
	if due {
		d.checked = time.Now()
	}
	d.mu.Unlock()
	if !due {
		return
	}
	v, err := d.reg.Version(ctx)
	if err != nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if v == d.version {
		return
	}
	d.version = v
	clear(d.conns)
	clear(d.kinds)
	clear(d.byID)
	d.snap = nil
	for name, c := range d.clients {
		c.until = time.Time{} // secrets re-read; the client is kept if they did not change
		d.clients[name] = c
	}
}

// listKind returns the connections of a kind, cached.
func (d *Directory) listKind(ctx context.Context, kind connections.Kind) ([]connections.Connection, error) {
	d.fresh(ctx)
	d.mu.Lock()
	l, ok := d.kinds[kind]
	d.mu.Unlock()
	if ok && time.Now().Before(l.until) {
		return l.conns, nil
	}
	all, err := d.reg.ListKind(ctx, kind)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.kinds[kind] = cachedList{conns: all, until: time.Now().Add(d.ttl)}
	for _, c := range all {
		d.byID[c.ID] = c
	}
	d.mu.Unlock()
	return all, nil
}

// Connection returns a registered connection by name.
func (d *Directory) Connection(ctx context.Context, name string) (connections.Connection, error) {
	d.fresh(ctx)
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
	d.byID[conn.ID] = conn
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
		all, err := d.listKind(ctx, connections.KindGoCardless)
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

// GoCardlessConnections lists the GoCardless connections.
func (d *Directory) GoCardlessConnections(ctx context.Context) ([]connections.Connection, error) {
	return d.listKind(ctx, connections.KindGoCardless)
}

// ByID finds a connection of kind by its id (kind "" for any), cached.
func (d *Directory) ByID(ctx context.Context, kind connections.Kind, id int64) (connections.Connection, error) {
	d.fresh(ctx)
	d.mu.Lock()
	c, ok := d.byID[id]
	d.mu.Unlock()
	if !ok {
		kinds := []connections.Kind{kind}
		if kind == "" {
			kinds = []connections.Kind{connections.KindIFS, connections.KindJDE, connections.KindGoCardless}
		}
		for _, k := range kinds {
			if _, err := d.listKind(ctx, k); err != nil {
				return connections.Connection{}, err
			}
		}
		d.mu.Lock()
		c, ok = d.byID[id]
		d.mu.Unlock()
	}
	if !ok || (kind != "" && c.Kind != kind) {
		return connections.Connection{}, fmt.Errorf("%w: no %s connection with id %d", ErrNotRoutable, kind, id)
	}
	return c, nil
}

// A Snapshot is the registry's connections as read at one moment, for
// lookups inside a database transaction: they never touch the database,
// so a transaction never waits for a second pooled connection.
type Snapshot struct {
	byID   map[int64]connections.Connection
	byName map[string]connections.Connection
	until  time.Time
}

// ByID returns the connection with id.
func (s *Snapshot) ByID(id int64) (connections.Connection, bool) {
	c, ok := s.byID[id]
	return c, ok
}

// ByName returns the connection named name.
func (s *Snapshot) ByName(name string) (connections.Connection, bool) {
	c, ok := s.byName[name]
	return c, ok
}

// Snapshot returns the registry's connections, cached until the registry
// changes (or ttl passes).
func (d *Directory) Snapshot(ctx context.Context) (*Snapshot, error) {
	d.fresh(ctx)
	d.mu.Lock()
	s := d.snap
	d.mu.Unlock()
	if s != nil && time.Now().Before(s.until) {
		return s, nil
	}
	s = &Snapshot{byID: map[int64]connections.Connection{}, byName: map[string]connections.Connection{}, until: time.Now().Add(d.ttl)}
	for _, k := range []connections.Kind{connections.KindIFS, connections.KindJDE, connections.KindGoCardless} {
		all, err := d.listKind(ctx, k)
		if err != nil {
			return nil, err
		}
		for _, c := range all {
			s.byID[c.ID], s.byName[c.Name] = c, c
		}
	}
	d.mu.Lock()
	d.snap = s
	d.mu.Unlock()
	return s, nil
}
