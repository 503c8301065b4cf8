package web

import (
	"net/http"
	"time"

	"github.com/ml-connector/ml-connector/services/console/internal/views"
)

type overviewData struct {
	views.Overview
	Age   string `json:"age"`
	Stale string `json:"stale,omitempty"`
}

func (s *Server) overview(w http.ResponseWriter, r *http.Request) {
	o, err := s.cfg.Overview.Latest(r.Context())
	d := overviewData{Overview: o}
	if err != nil {
		if o.TakenAt.IsZero() {
			s.fail(w, r, http.StatusInternalServerError, err)
			return
		}
		s.log.WarnContext(r.Context(), "overview refresh failed; showing the last one", "error", err)
		d.Stale = "The newest figures could not be read; these are older."
	}
	d.Age = time.Since(o.TakenAt).Round(time.Second).String()
	s.render(w, r, http.StatusOK, "overview", "Overview", d)
}
