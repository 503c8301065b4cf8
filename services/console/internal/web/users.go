package web

import "net/http"

// usersPage lists the console's accounts (admins only); accounts are
// added with mlcctl users add.
func (s *Server) usersPage(w http.ResponseWriter, r *http.Request) {
	list, err := s.users.List(r.Context())
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	s.render(w, r, http.StatusOK, "users", "Users", map[string]any{"users": list})
}
