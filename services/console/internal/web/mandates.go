package web

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ml-connector/ml-connector/services/console/internal/views"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/operator"
)

// mandatesData is the page of customers asked to authorise a mandate.
type mandatesData struct {
	Requests []views.MandateRequest `json:"mandate_requests"`
	State    string                 `json:"state"`
	Cut      bool                   `json:"truncated"`
	States   []string               `json:"-"`
	CanAct   bool                   `json:"-"`
	Back     string                 `json:"-"`
}

// mandates lists the mandate requests, by default those still waiting for
// the payer, with the link, when it was asked for and resent, and the
// invoices waiting on each.
func (s *Server) mandates(w http.ResponseWriter, r *http.Request) {
	state := r.URL.Query().Get("state")
	if state == "" {
		state = "waiting"
	}
	if !validState(state) {
		s.problem(w, r, http.StatusBadRequest, "state: want one of "+strings.Join(views.MandateStates, ", "))
		return
	}
	list, cut, err := s.views.Mandates(r.Context(), state, time.Now())
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	s.render(w, r, http.StatusOK, "mandates", "Mandates awaiting the customer", mandatesData{
		Requests: list, State: state, Cut: cut, States: views.MandateStates, Back: r.URL.RequestURI(),
		CanAct: who(r).user.Role.Allows("operator")})
}

func validState(state string) bool {
	for _, s := range views.MandateStates {
		if s == state {
			return true
		}
	}
	return false
}

// mandateResend gives a payer a new link through the operator desk, the
// same code as mlcctl mandates resend, under the user's name.
func (s *Server) mandateResend(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		s.problem(w, r, http.StatusBadRequest, "no such mandate request")
		return
	}
	p := who(r)
	mr, err := s.desk.ResendMandateRequest(r.Context(), id, p.actor())
	if errors.Is(err, operator.ErrNotFound) {
		s.problem(w, r, http.StatusNotFound, fmt.Sprintf("mandate request %d: not found", id))
		return
	}
	if err != nil {
		s.log.WarnContext(r.Context(), "resend failed", "user", p.user.Name, "mandate_request", id, "error", err)
		s.problem(w, r, http.StatusConflict, fmt.Sprintf("nothing was resent: %s", plain(err)))
		return
	}
	s.log.InfoContext(r.Context(), "action", "user", p.user.Name, "action", "resend", "mandate_request", id, "now", mr.ID)
	s.done(w, r, fmt.Sprintf("New link for customer %s (company %s): %s, valid until %s. Send it to the customer.",
		mr.Key.CustomerID, mr.Key.Company, mr.AuthorisationURL, mr.FlowExpiresAt.UTC().Format("2006-01-02 15:04 UTC")), mr)
}
