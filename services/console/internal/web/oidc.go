package web

import "net/http"

// OIDC is sign-in through the company's OpenID provider. Not configured
// yet: the routes answer 404.
type OIDC struct{}

func (s *Server) oidcStart(w http.ResponseWriter, r *http.Request) {
	if s.cfg.OIDC == nil {
		http.NotFound(w, r)
		return
	}
}

func (s *Server) oidcCallback(w http.ResponseWriter, r *http.Request) {
	if s.cfg.OIDC == nil {
		http.NotFound(w, r)
		return
	}
}
