package jdesim

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// An AIS deployment of several servers behind a load balancer. Oracle,
// "Using Stateless Load Balancing"
// (https://docs.oracle.com/en/applications/jd-edwards/interoperability/9.2.x/eoiis/using-stateless-load-balancing.html):
// only with stateless load balancing (Tools 9.2.5.2 and later, configured
// on every server) is a token good on any server; otherwise a session
// lives on the server that issued it and the balancer keeps a client
// there by an affinity cookie. The simulator's nodes are the stateful
// kind, the stricter: a token used on another node is refused with 444
// ("Invalid Token", REST API reference for /v2/orchestrator and
// /v2/dataservice). A node's next-page links name the node itself, as an
// AIS server builds them from its own host and port.

// node is one AIS server of a deployment.
type node struct {
	name string // "" for the simulator served on its own
	self string // the node's own base URL, for its next links
}

type nodeKey struct{}

func nodeOf(r *http.Request) node {
	n, _ := r.Context().Value(nodeKey{}).(node)
	return n
}

// Node returns a handler serving the simulator as the AIS server name of a
// deployment, whose own base URL (scheme://host:port) is self. All nodes
// share the tables; sessions and result sets belong to the node that
// opened them.
func (s *Server) Node(name, self string) http.Handler {
	n := node{name: name, self: strings.TrimRight(self, "/")}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), nodeKey{}, n)))
	})
}

// AffinityCookie is the cookie the simulated load balancer keeps a client
// on one node with, as a hardware or software balancer sets its own.
const AffinityCookie = "JDESIM_ROUTE"

// Balancer is a load balancer with cookie affinity in front of the nodes
// of a deployment: a request with the affinity cookie of a node goes to
// that node; any other goes to the next node in turn and gets the cookie.
type Balancer struct {
	names   []string
	proxies map[string]*httputil.ReverseProxy

	mu      sync.Mutex
	next    int
	byNode  map[string]int
	cookies int
}

// NewBalancer balances over nodes, node name -> base URL.
func NewBalancer(nodes map[string]string) (*Balancer, error) {
	b := &Balancer{proxies: map[string]*httputil.ReverseProxy{}, byNode: map[string]int{}}
	for name, raw := range nodes {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("jdesim: node %s: %q is not a base URL", name, raw)
		}
		b.names = append(b.names, name)
		b.proxies[name] = httputil.NewSingleHostReverseProxy(u)
	}
	if len(b.names) == 0 {
		return nil, fmt.Errorf("jdesim: a balancer needs nodes")
	}
	slices.Sort(b.names)
	return b, nil
}

// ServeHTTP routes one request.
func (b *Balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	name := ""
	if c, err := r.Cookie(AffinityCookie); err == nil && b.proxies[c.Value] != nil {
		name = c.Value
	} else {
		name = b.names[b.next%len(b.names)]
		b.next++
		b.cookies++
		http.SetCookie(w, &http.Cookie{Name: AffinityCookie, Value: name, Path: "/", HttpOnly: true})
	}
	b.byNode[name]++
	b.mu.Unlock()
	b.proxies[name].ServeHTTP(w, r)
}

// Routed returns how many requests went to each node, and how many
// affinity cookies were handed out.
func (b *Balancer) Routed() (map[string]int, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]int, len(b.byNode))
	for k, v := range b.byNode {
		out[k] = v
	}
	return out, b.cookies
}

// Deployment is the simulator served as AIS nodes behind a Balancer, each
// on its own loopback listener, for tests and the demo.
type Deployment struct {
	// URL is the balancer's base URL, a connection's base_url.
	URL string
	// Nodes are the nodes' own base URLs, a connection's ais_nodes.
	Nodes    []string
	Balancer *Balancer
	servers  []*httptest.Server
}

// ServeDeployment serves s as n nodes (n1, n2, ...) behind a balancer.
func (s *Server) ServeDeployment(n int) (*Deployment, error) {
	if n < 1 {
		return nil, fmt.Errorf("jdesim: a deployment needs at least one node")
	}
	d := &Deployment{}
	urls := map[string]string{}
	for i := 1; i <= n; i++ {
		srv := httptest.NewUnstartedServer(nil)
		self := "http://" + srv.Listener.Addr().String()
		name := fmt.Sprintf("n%d", i)
		srv.Config.Handler = s.Node(name, self)
		srv.Start()
		d.servers = append(d.servers, srv)
		d.Nodes = append(d.Nodes, self)
		urls[name] = self
	}
	b, err := NewBalancer(urls)
	if err != nil {
		d.Close()
		return nil, err
	}
	lb := httptest.NewServer(b)
	d.servers = append(d.servers, lb)
	d.URL, d.Balancer = lb.URL, b
	return d, nil
}

// Close stops the balancer and the nodes.
func (d *Deployment) Close() {
	for _, srv := range d.servers {
		srv.Close()
	}
}
