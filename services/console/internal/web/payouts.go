package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/ml-connector/ml-connector/services/payment-orchestrator/operator"
	"github.com/ml-connector/ml-connector/services/payment-orchestrator/settlement"
)

// The payouts pages show what GoCardless paid into the bank (one payout
// per bank line), what each payout settled, and the month-end report,
// all read through the settlement package as mlcctl reads them, so the
// JSON here and mlcctl --json carry the same names and figures.

// payoutStates are the states a payout can be filtered by ("" for all).
var payoutStates = []string{"", "fetched", "mismatch", "posting", "posted", "refused", "nothing_to_post"}

// period is a filter's dates as typed, for the form to show again.
type period struct {
	From       string `json:"from"`
	To         string `json:"to"`
	Connection string `json:"connection"`
	State      string `json:"state,omitempty"`
}

type payoutsData struct {
	Payouts     []settlement.Payout `json:"payouts"`
	Filter      period              `json:"filter"`
	Connections []string            `json:"-"`
	States      []string            `json:"-"`
	// Month is the last whole month, offered for the report.
	Month period `json:"-"`
}

// dates reads the from and to parameters (YYYY-MM-DD, either may be
// empty) and the connection; a bad value is said to the user.
func dates(r *http.Request) (p period, from, to time.Time, problem string) {
	q := r.URL.Query()
	p = period{From: q.Get("from"), To: q.Get("to"), Connection: q.Get("connection"), State: q.Get("state")}
	for _, f := range []struct {
		name, v string
		dst     *time.Time
	}{{"from", p.From, &from}, {"to", p.To, &to}} {
		if f.v == "" {
			continue
		}
		t, err := time.Parse(time.DateOnly, f.v)
		if err != nil {
			return p, from, to, fmt.Sprintf("%q is not a date: give %s as YYYY-MM-DD", truncate(f.v, 40), f.name)
		}
		*f.dst = t
	}
	return p, from, to, ""
}

// lastMonth is the last whole calendar month before now.
func lastMonth(now time.Time) period {
	first := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	return period{From: first.AddDate(0, -1, 0).Format(time.DateOnly), To: first.AddDate(0, 0, -1).Format(time.DateOnly)}
}

func (s *Server) payoutsPage(w http.ResponseWriter, r *http.Request) {
	p, from, to, problem := dates(r)
	if problem != "" {
		s.problem(w, r, http.StatusBadRequest, problem)
		return
	}
	list, err := settlement.New(s.db).ListPayouts(r.Context(), settlement.PayoutQuery{From: from, To: to, Connection: p.Connection, State: p.State})
	if errors.Is(err, settlement.ErrInput) {
		s.problem(w, r, http.StatusBadRequest, err.Error())
		return
	}
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	d := payoutsData{Payouts: list, Filter: p, States: payoutStates, Month: lastMonth(time.Now().UTC())}
	if conns, err := s.conns.List(r.Context()); err == nil {
		for _, c := range conns {
			d.Connections = append(d.Connections, c.Name)
		}
	}
	s.render(w, r, http.StatusOK, "payouts", "Payouts", d)
}

func (s *Server) payoutPage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	d, err := settlement.New(s.db).ShowPayout(r.Context(), id)
	switch {
	case errors.Is(err, settlement.ErrNotFound):
		s.problem(w, r, http.StatusNotFound, "no payout "+truncate(id, 200))
		return
	case errors.Is(err, settlement.ErrInput):
		s.problem(w, r, http.StatusBadRequest, err.Error())
		return
	case err != nil:
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	s.render(w, r, http.StatusOK, "payout", "Payout "+d.BankReference, payoutPageData{PayoutDetail: d,
		CanRepost: (d.State == "refused" || d.State == "posting") && who(r).user.Role.Allows("operator")})
}

// payoutPageData is a payout as mlcctl payouts show --json gives it, with
// whether this user may post it again.
type payoutPageData struct {
	settlement.PayoutDetail
	CanRepost bool `json:"-"`
}

// payoutRepost posts a payout's refused or stalled deposits again through
// the operator desk, the same code as mlcctl payouts repost, under the
// user's name.
func (s *Server) payoutRepost(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	p := who(r)
	n, err := s.desk.RepostPayout(r.Context(), id, p.actor(), truncate(r.PostFormValue("note"), 2000))
	switch {
	case errors.Is(err, operator.ErrNotFound):
		s.problem(w, r, http.StatusNotFound, "no payout "+truncate(id, 200))
		return
	case err != nil:
		s.log.WarnContext(r.Context(), "repost failed", "user", p.user.Name, "payout", truncate(id, 200), "error", err)
		s.problem(w, r, http.StatusConflict, "nothing was posted again: "+plain(err))
		return
	}
	s.log.InfoContext(r.Context(), "action", "user", p.user.Name, "action", "repost", "payout", id, "deposits", n)
	s.done(w, r, fmt.Sprintf("Payout %s: %d deposit(s) queued for the ERP again under their own keys (never a second deposit); the orchestrator posts them shortly.", id, n),
		map[string]any{"gc_payout_id": id, "deposits": n})
}

type reportData struct {
	Filter      period
	Connections []string
	Report      *settlement.Report
	CSV, JSON   string
}

// monthEnd answers the month-end report: ?format=csv or json downloads
// it (as does Accept: application/json); without a format it is shown,
// with the links to download it.
func (s *Server) monthEnd(w http.ResponseWriter, r *http.Request) {
	p, from, to, problem := dates(r)
	format := r.URL.Query().Get("format")
	if problem == "" && format != "" && format != "csv" && format != "json" {
		problem = "format must be csv or json"
	}
	if problem == "" && (format != "" || wantsJSON(r)) && (from.IsZero() || to.IsZero()) {
		problem = "give the first and the last day of the period (from and to, YYYY-MM-DD)"
	}
	if problem != "" {
		s.problem(w, r, http.StatusBadRequest, problem)
		return
	}
	d := reportData{Filter: p}
	if from.IsZero() && to.IsZero() {
		d.Filter = lastMonth(time.Now().UTC())
		d.Filter.Connection = p.Connection
	} else {
		rep, err := settlement.New(s.db).MonthEnd(r.Context(), settlement.ReportQuery{From: from, To: to, Connection: p.Connection})
		switch {
		case errors.Is(err, settlement.ErrInput):
			s.problem(w, r, http.StatusBadRequest, err.Error())
			return
		case errors.Is(err, settlement.ErrNotFound):
			s.problem(w, r, http.StatusNotFound, "no connection "+truncate(p.Connection, 200))
			return
		case err != nil:
			s.fail(w, r, http.StatusInternalServerError, err)
			return
		}
		name := "month-end-" + rep.From + "-" + rep.To
		if p.Connection != "" {
			name += "-" + url.PathEscape(p.Connection)
		}
		switch {
		case format == "csv":
			w.Header().Set("Content-Type", "text/csv; charset=utf-8")
			w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.csv"`)
			if err := rep.WriteCSV(w); err != nil {
				s.log.ErrorContext(r.Context(), "month-end CSV", "error", err)
			}
			return
		case format == "json":
			w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.json"`)
			writeJSON(w, http.StatusOK, rep)
			return
		case wantsJSON(r):
			writeJSON(w, http.StatusOK, rep)
			return
		}
		d.Report = &rep
		q := url.Values{"from": {rep.From}, "to": {rep.To}}
		if p.Connection != "" {
			q.Set("connection", p.Connection)
		}
		q.Set("format", "csv")
		d.CSV = "/reports/month-end?" + q.Encode()
		q.Set("format", "json")
		d.JSON = "/reports/month-end?" + q.Encode()
	}
	if conns, err := s.conns.List(r.Context()); err == nil {
		for _, c := range conns {
			d.Connections = append(d.Connections, c.Name)
		}
	}
	s.render(w, r, http.StatusOK, "report", "Month-end report", d)
}
