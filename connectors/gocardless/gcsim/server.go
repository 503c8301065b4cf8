package gcsim

import "net/http/httptest"

// TB is the part of testing.TB that NewServer needs. It is an interface
// here so that the gcsim binary does not link the testing package.
type TB interface {
	Helper()
	Cleanup(func())
}

// Server is a simulator listening on a local port, for tests.
type Server struct {
	*Sim
	// URL is the base URL of the API (and of /_sim/).
	URL string
	srv *httptest.Server
}

// NewServer starts a simulator on a local port and stops it when the test
// ends. Pass a *testing.T (or B, F).
func NewServer(t TB, opts Options) *Server {
	t.Helper()
	sim := New(opts)
	srv := httptest.NewServer(sim)
	s := &Server{Sim: sim, URL: srv.URL, srv: srv}
	t.Cleanup(s.Close)
	return s
}

// Close stops the listener and the simulator. It is safe to call twice.
func (s *Server) Close() {
	s.srv.Close()
	s.Sim.Close()
}
