package web_test

import (
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/ml-connector/ml-connector/services/console/internal/web"
)

// replica is the same world served by a second console, as a second pod
// on the same database would serve it.
func (w *world) replica(edit func(*web.Config)) *world {
	w.t.Helper()
	srv, err := w.newServer(edit)
	if err != nil {
		w.t.Fatal(err)
	}
	r := *w
	r.Srv = httptest.NewTLSServer(srv.Handler())
	w.t.Cleanup(r.Srv.Close)
	return &r
}

// browserFrom is a browser whose connections come from ip (any 127.0.0.0/8
// address works on loopback), so the console sees another client address.
func (w *world) browserFrom(ip string) *browser {
	c := *w.Srv.Client()
	tr := c.Transport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}).DialContext
	c.Transport = tr
	c.Jar, _ = cookiejar.New(nil)
	return &browser{w: w, c: &c}
}

// Two console replicas share the sign-in limits: an attacker spreading
// guesses over the pods gets the limit once, per name and per address.
func TestSignInLimitsSharedByReplicas(t *testing.T) {
	a := newWorld(t)
	b := a.replica(nil)
	try := func(w *world, ip, name, pass string) int {
		t.Helper()
		br := w.browserFrom(ip)
		page := br.get("/login", 200)
		status, _ := br.post("/login", url.Values{"name": {name}, "password": {pass}, "login_token": {field(page, "login_token")}, "next": {"/"}})
		return status
	}
	// Five failures (the world's limit) from one address against one
	// name, spread over both replicas.
	for i := range 5 {
		w := a
		if i%2 == 1 {
			w = b
		}
		if status := try(w, "127.0.0.2", "alice", "wrong-password-123"); status != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d, want 401", i+1, status)
		}
	}
	// The name is used up on both replicas, even from a fresh address
	// and with the right password.
	for _, w := range []*world{a, b} {
		if status := try(w, "127.0.0.3", "alice", adminPass); status != http.StatusTooManyRequests {
			t.Errorf("alice from another address: %d, want 429", status)
		}
	}
	// So is the address, even for another name.
	for _, w := range []*world{a, b} {
		if status := try(w, "127.0.0.2", "oscar", opPass); status != http.StatusTooManyRequests {
			t.Errorf("oscar from the guessing address: %d, want 429", status)
		}
	}
	// Another name from another address signs in: the limit is per key,
	// not a lock on the console.
	if status := try(b, "127.0.0.3", "oscar", opPass); status != http.StatusOK {
		t.Errorf("oscar from another address: %d, want 200", status)
	}
}

// Behind the ingress (a trusted proxy) the limit is per real client, read
// from X-Forwarded-For; a client not behind it cannot pick its address.
func TestSignInLimitPerClientBehindTrustedProxy(t *testing.T) {
	w := newWorld(t).replica(func(c *web.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}
	})
	try := func(ip, forwarded, name, pass string) int {
		t.Helper()
		br := w.browserFrom(ip)
		page := br.get("/login", 200)
		form := url.Values{"name": {name}, "password": {pass}, "login_token": {field(page, "login_token")}, "next": {"/"}}
		req, _ := http.NewRequest(http.MethodPost, w.Srv.URL+"/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", w.Srv.URL)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		req.Header.Set("X-Forwarded-For", forwarded)
		status, _ := br.do(req)
		return status
	}
	// One client behind the ingress uses up its address with five names
	// (so no name's own limit is reached).
	for _, name := range []string{"n1", "n2", "n3", "n4", "n5"} {
		if status := try("127.0.0.2", "203.0.113.9", name, "wrong-password-123"); status != http.StatusUnauthorized {
			t.Fatalf("failure for %s: %d, want 401", name, status)
		}
	}
	// It is refused, even when it puts another address first...
	if status := try("127.0.0.2", "198.51.100.1, 203.0.113.9", "oscar", opPass); status != http.StatusTooManyRequests {
		t.Errorf("the guessing client behind the ingress: %d, want 429", status)
	}
	// ...while another client behind the same ingress signs in.
	if status := try("127.0.0.2", "203.0.113.10", "oscar", opPass); status != http.StatusOK {
		t.Errorf("another client behind the ingress: %d, want 200", status)
	}
	// A client that is not the proxy is limited by its own address,
	// whatever X-Forwarded-For it sends.
	for i, name := range []string{"n6", "n7", "n8", "n9", "n10"} {
		if status := try("127.0.0.3", "192.0.2."+string(rune('1'+i)), name, "wrong-password-123"); status != http.StatusUnauthorized {
			t.Fatalf("failure for %s: %d, want 401", name, status)
		}
	}
	if status := try("127.0.0.3", "192.0.2.200", "vera", viewerPass); status != http.StatusTooManyRequests {
		t.Errorf("a forged X-Forwarded-For from outside the proxies: %d, want 429", status)
	}
}
