package web_test

import (
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"testing"
)

// replica is the same world served by a second console, as a second pod
// on the same database would serve it.
func (w *world) replica() *world {
	w.t.Helper()
	srv, err := w.newServer()
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
	b := a.replica()
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
